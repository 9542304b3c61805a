{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "danube-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "danube-connector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "danube-connector.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "danube-connector.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "danube-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "danube-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "danube-connector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "danube-connector.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | quote }}
app.kubernetes.io/component: connector
app.kubernetes.io/part-of: danube-connect
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "danube-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "danube-connector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the Secret whose keys become environment variables, or "" when there is none. */}}
{{- define "danube-connector.secretName" -}}
{{- if .Values.secretEnv.existingSecret }}
{{- .Values.secretEnv.existingSecret }}
{{- else if .Values.secretEnv.values }}
{{- include "danube-connector.fullname" . }}
{{- end }}
{{- end }}

{{/* Refuse settings that would break a connector's delivery guarantees. */}}
{{- define "danube-connector.validate" -}}
{{- if and .Values.singleInstance (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) }}
{{- fail "singleInstance is true: this connector must run one replica (replicaCount 1, autoscaling.enabled false)" }}
{{- end }}
{{- if not .Values.config.toml }}
{{- fail "config.toml is required: the connector's TOML configuration" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled .Values.podDisruptionBudget.minAvailable .Values.podDisruptionBudget.maxUnavailable }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- end }}
