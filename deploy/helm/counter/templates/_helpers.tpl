{{/* The chart's name. */}}
{{- define "counter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name, at most 54 characters so "-headless" still fits in 63. */}}
{{- define "counter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The headless Service that governs the StatefulSet (its serviceName). */}}
{{- define "counter.headless" -}}
{{- printf "%s-headless" (include "counter.fullname" .) }}
{{- end }}

{{- define "counter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "counter.labels" -}}
helm.sh/chart: {{ include "counter.chart" . }}
{{ include "counter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "counter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "counter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* Labels of hook and test pods: the chart's, but never the server's selector. */}}
{{- define "counter.checkLabels" -}}
helm.sh/chart: {{ include "counter.chart" . }}
app.kubernetes.io/name: {{ include "counter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: check
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "counter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "counter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "counter.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}

{{/* A small, locked-down pod spec part shared by hooks and tests. */}}
{{- define "counter.checkPodSecurity" -}}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{- define "counter.checkContainerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
resources:
  {{- toYaml .Values.hooks.resources | nindent 2 }}
{{- end }}
