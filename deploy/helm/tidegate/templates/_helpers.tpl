{{/* The release's name for every object: the release name, with the chart's unless it already holds it. */}}
{{- define "tidegate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tidegate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tidegate.labels" -}}
{{ include "tidegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tidegate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tidegate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* tidegate.yaml: the user's config with what the chart owns set over it. */}}
{{- define "tidegate.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.service.containerPort)) -}}
{{- $server := deepCopy (default (dict) $cfg.server) -}}
{{- $_ := set $server "shutdown_grace" (printf "%ds" (int .Values.drain.graceSeconds)) -}}
{{- $_ := set $cfg "server" $server -}}
{{- with .Values.batches.s3 }}{{ if .enabled -}}
{{- $batches := deepCopy (default (dict) (get $cfg "batches")) -}}
{{- $_ := set $batches "s3" (dict "endpoint" .endpoint "region" .region "bucket" (required "batches.s3.bucket is required when batches.s3.enabled" .bucket) "prefix" .prefix "path_style" .pathStyle "access_key" "${TIDEGATE_S3_ACCESS_KEY}" "secret_key" "${TIDEGATE_S3_SECRET_KEY}") -}}
{{- $_ := set $cfg "batches" $batches -}}
{{- end }}{{ end -}}
{{- toYaml $cfg -}}
{{- end -}}
