// Package deploy holds tidegate's deployment files: the Helm chart
// (helm/tidegate) and the plain Kubernetes manifests rendered from it
// (kubernetes/). It has no code; its test renders the chart with Helm's
// own library, lints it, checks every object against the Kubernetes API
// types, and keeps kubernetes/ equal to the chart's rendering.
package deploy
