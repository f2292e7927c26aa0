{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "imagebump.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, suffixed with the chart name unless it already contains it. */}}
{{- define "imagebump.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "imagebump.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "imagebump.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imagebump.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "imagebump.labels" -}}
helm.sh/chart: {{ include "imagebump.chart" . }}
{{ include "imagebump.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "imagebump.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "imagebump.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The HTTP port the daemon listens on: the port of config.webhook.listen. */}}
{{- define "imagebump.httpPort" -}}
{{- regexFind "[0-9]+$" .Values.config.webhook.listen | int }}
{{- end }}

{{/* The port of health, readiness, metrics and status: the port of config.http.listen. */}}
{{- define "imagebump.metricsPort" -}}
{{- regexFind "[0-9]+$" .Values.config.http.listen | int }}
{{- end }}

{{/* ConfigMap key of an app file: a key cannot hold '/', the volume's items put it in apps/. */}}
{{- define "imagebump.appKey" -}}
{{- printf "app.%s.yaml" . }}
{{- end }}

{{/* The app file content: the values entry with `name` defaulting to the map key. */}}
{{- define "imagebump.appFile" -}}
{{- $app := merge (deepCopy .app) (dict "name" .name) }}
{{- toYaml $app }}
{{- end }}
