package deploy

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
)

var update = flag.Bool("update", false, "rewrite kubernetes/tidegate.yaml from the chart")

const (
	chartDir  = "helm/tidegate"
	manifests = "kubernetes/tidegate.yaml"
	// The release the plain manifests are rendered as.
	releaseName = "tidegate"
	namespace   = "tidegate"
)

// kubeVersion is the cluster the chart is rendered and linted for: the
// oldest its kubeVersion admits (the preStop sleep action).
var kubeVersion = chartutil.KubeVersion{Version: "v1.30.0", Major: "1", Minor: "30"}

// variants are value sets every check runs on: the defaults (what
// kubernetes/ holds) and the switches turned the other way.
var variants = map[string]map[string]any{
	"defaults": nil,
	"switches": {
		"autoscaling":         map[string]any{"enabled": false},
		"podDisruptionBudget": map[string]any{"enabled": false},
		"serviceMonitor":      map[string]any{"enabled": true, "labels": map[string]any{"release": "prom"}},
		"serviceAccount":      map[string]any{"create": false},
		"migrateOnStart":      false,
		"secrets":             map[string]any{"secretKey": map[string]any{"name": "tidegate-keys"}},
		"nodeSelector":        map[string]any{"pool": "cpu"},
		"imagePullSecrets":    []any{map[string]any{"name": "regcred"}},
		"batches":             map[string]any{"s3": map[string]any{"enabled": true, "bucket": "tidegate-batches"}},
	},
}

// render is `helm template`: the chart's templates with values, as Helm
// renders them (strict: a missing value is an error), NOTES.txt aside.
func render(t *testing.T, ch *chart.Chart, vals map[string]any) map[string]string {
	t.Helper()
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = kubeVersion
	if !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, kubeVersion.Version) {
		t.Fatalf("chart's kubeVersion %q excludes %s", ch.Metadata.KubeVersion, kubeVersion.Version)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Engine{Strict: true}.Render(ch, rv)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	for name := range out {
		if strings.HasSuffix(name, "NOTES.txt") || strings.HasPrefix(filepath.Base(name), "_") {
			delete(out, name)
		}
	}
	return out
}

// joined lays the rendered templates out as `helm template` prints them:
// by file name, each document under a "# Source:" line.
func joined(files map[string]string) string {
	names := make([]string, 0, len(files))
	for n, body := range files {
		if strings.TrimSpace(body) != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# Rendered from deploy/helm/tidegate with its default values (release \"tidegate\").\n")
	b.WriteString("# Do not edit: change the chart, then run `go test ./deploy -update`.\n")
	b.WriteString("# Create the Secret the chart names first (see values.yaml), then: kubectl apply -n NAMESPACE -f tidegate.yaml\n")
	for _, n := range names {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", n, strings.TrimSpace(files[n]))
	}
	return b.String()
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// TestChartLint is `helm lint --strict`: warnings fail too.
func TestChartLint(t *testing.T) {
	for name, vals := range variants {
		t.Run(name, func(t *testing.T) {
			l := lint.AllWithKubeVersion(chartDir, vals, namespace, &kubeVersion)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("lint: %s", m)
				}
			}
		})
	}
}

// TestManifestsInSync: kubernetes/tidegate.yaml is the chart's rendering
// with default values (run with -update after changing the chart).
func TestManifestsInSync(t *testing.T) {
	got := joined(render(t, loadChart(t), nil))
	if *update {
		if err := os.WriteFile(manifests, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(manifests)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Errorf("%s is not the chart's rendering: run `go test ./deploy -update` and commit it", manifests)
	}
}

// object is one rendered document with its kind decoded.
type object struct {
	source, apiVersion, kind string
	into                     any // the typed object it decoded into
}

// schemaTypes are the Kubernetes API types of every kind the chart makes:
// a document decodes into its type strictly (an unknown or misplaced field,
// or a value of the wrong type, fails), the check kubeconform makes against
// the OpenAPI schemas these types are generated with.
var schemaTypes = map[string]func() any{
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
}

// decodeAll splits the rendered files into documents and decodes each into
// its API type, strictly.
func decodeAll(t *testing.T, files map[string]string) []object {
	t.Helper()
	var objs []object
	for source, body := range files {
		for _, doc := range strings.Split(body, "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s: %v", source, err)
			}
			mk, ok := schemaTypes[head.APIVersion+"/"+head.Kind]
			if !ok {
				t.Errorf("%s: no schema for %s %s", source, head.APIVersion, head.Kind)
				continue
			}
			into := mk()
			if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
				t.Errorf("%s: %s does not match its schema: %v", source, head.Kind, err)
				continue
			}
			objs = append(objs, object{source, head.APIVersion, head.Kind, into})
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].source < objs[j].source })
	return objs
}

func find[T any](t *testing.T, objs []object) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.into.(T); ok {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T rendered", zero)
	return zero
}

// TestManifestsValid: every variant's objects pass their schema, the
// ConfigMap holds a config tidegate itself accepts, and the Deployment's
// probes, ports, secrets and drain agree with that config.
func TestManifestsValid(t *testing.T) {
	ch := loadChart(t)
	for name, vals := range variants {
		t.Run(name, func(t *testing.T) {
			objs := decodeAll(t, render(t, ch, vals))
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.kind)
			}
			wantKinds := []string{"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "ServiceAccount"}
			if name == "switches" {
				wantKinds = []string{"ConfigMap", "Deployment", "Service", "ServiceMonitor"}
			}
			slices.Sort(kinds)
			if !slices.Equal(kinds, wantKinds) {
				t.Errorf("kinds rendered: %v, want %v", kinds, wantKinds)
			}
			d := find[*appsv1.Deployment](t, objs)
			cfg := checkDeployment(t, d, find[*corev1.ConfigMap](t, objs), find[*corev1.Service](t, objs))
			if (cfg.Batches.S3 != nil) != (name == "switches") {
				t.Errorf("batches.s3 in the config: %+v", cfg.Batches.S3)
			}
			// PostgreSQL's connections: every replica the HPA may run, and the
			// rolling update's surge, at the most each one opens, under the
			// default max_connections (100) less its reserved 3.
			replicas := 0
			if d.Spec.Replicas != nil {
				replicas = int(*d.Spec.Replicas)
			}
			if name == "defaults" {
				replicas = int(find[*autoscalingv2.HorizontalPodAutoscaler](t, objs).Spec.MaxReplicas)
			}
			replicas += d.Spec.Strategy.RollingUpdate.MaxSurge.IntValue()
			if per := app.PostgresConnsPerReplica(cfg); replicas*per > 97 {
				t.Errorf("%d replicas × %d connections = %d, over PostgreSQL's default 97 for clients", replicas, per, replicas*per)
			}
		})
	}
}

func checkDeployment(t *testing.T, d *appsv1.Deployment, cm *corev1.ConfigMap, svc *corev1.Service) *config.Config {
	t.Helper()
	// The mounted config is one tidegate accepts, with every ${VAR} it
	// names supplied by the container's environment.
	c := d.Spec.Template.Spec.Containers[0]
	env := map[string]bool{}
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			// Go's soft limit, the one literal: it must sit under the
			// container's memory limit, or the OOM killer comes first.
			limit, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B"))
			mem := c.Resources.Limits.Memory()
			if err != nil || mem.IsZero() || limit.Cmp(*mem) >= 0 {
				t.Errorf("GOMEMLIMIT %q: want a size under limits.memory (%v)", e.Value, mem)
			}
			continue
		}
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("env %s: want a Secret reference, never a literal value", e.Name)
		}
		env[e.Name] = true
	}
	data, ok := cm.Data["tidegate.yaml"]
	if !ok {
		t.Fatal("the ConfigMap has no tidegate.yaml")
	}
	cfg, err := config.Parse([]byte(data), func(name string) (string, bool) {
		if !env[name] {
			return "", false // the config names a variable no Secret supplies
		}
		if name == "TIDEGATE_STORE" {
			return "postgres://tidegate@postgres:5432/tidegate", true
		}
		return "x-" + name, true
	})
	if err != nil {
		t.Fatalf("the ConfigMap's tidegate.yaml: %v", err)
	}

	// Probes reach the routes tidegate serves, on the port it listens on.
	if len(c.Ports) != 1 {
		t.Fatalf("container ports: %v", c.Ports)
	}
	if want := fmt.Sprintf("0.0.0.0:%d", c.Ports[0].ContainerPort); cfg.Listen != want {
		t.Errorf("config listen %q, container port %d", cfg.Listen, c.Ports[0].ContainerPort)
	}
	for name, p := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || p.HTTPGet.Port.String() != c.Ports[0].Name {
			t.Errorf("probe of %s: %+v", name, p)
		}
	}
	if svc.Spec.Ports[0].TargetPort.String() != c.Ports[0].Name {
		t.Errorf("Service targets port %s, the container's is %s", svc.Spec.Ports[0].TargetPort.String(), c.Ports[0].Name)
	}

	// The drain fits in the grace period: preStop's sleep, then tidegate's
	// shutdown_grace, with time to spare before the kubelet's SIGKILL.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatal("no preStop sleep")
	}
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if preStop+cfg.Server.ShutdownGrace >= grace {
		t.Errorf("preStop %s + shutdown_grace %s does not fit in terminationGracePeriodSeconds %s", preStop, cfg.Server.ShutdownGrace, grace)
	}

	// The pods run as non-root on a read-only root file system.
	ps := d.Spec.Template.Spec.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || c.SecurityContext == nil ||
		c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("want runAsNonRoot and a read-only root file system")
	}
	// Rolling updates never drop below the replicas there are.
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Error("want rollingUpdate.maxUnavailable 0")
	}
	// The temp dir, where uploads are spooled, is writable: a volume of
	// its own over the read-only root.
	tmp := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/tmp" && !m.ReadOnly {
			for _, v := range d.Spec.Template.Spec.Volumes {
				tmp = tmp || v.Name == m.Name && v.EmptyDir != nil
			}
		}
	}
	if !tmp {
		t.Error("no writable emptyDir at /tmp: uploads cannot be spooled on a read-only root")
	}
	return cfg
}

// TestChartValuesDocumented: every top-level value has a comment above it
// in values.yaml (it is the chart's documentation).
func TestChartValuesDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		if len(line) == 0 || line[0] == ' ' || line[0] == '#' {
			continue
		}
		if i == 0 || !bytes.HasPrefix(bytes.TrimSpace(lines[i-1]), []byte("#")) {
			t.Errorf("values.yaml line %d, %q: no comment above it", i+1, line)
		}
	}
}
