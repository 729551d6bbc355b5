{{/* The release's resource name prefix. */}}
{{- define "lastcall.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lastcall.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "lastcall.serverSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "lastcall.agentSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node-agent
{{- end -}}

{{- define "lastcall.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "lastcall.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ .Values.serviceAccount.name | default (include "lastcall.fullname" .) }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end -}}

{{- define "lastcall.agentName" -}}
{{ include "lastcall.fullname" . }}-node-agent
{{- end -}}

{{/* The state store URL the server is given. */}}
{{- define "lastcall.stateURL" -}}
{{- if eq .Values.state.type "s3" -}}
{{ required "state.s3.url is required when state.type is s3" .Values.state.s3.url }}
{{- else -}}
file:///var/lib/lastcall/state
{{- end -}}
{{- end -}}

{{- define "lastcall.pdbEnabled" -}}
{{- if kindIs "bool" .Values.server.podDisruptionBudget.enabled -}}
{{ .Values.server.podDisruptionBudget.enabled }}
{{- else -}}
{{ gt (int .Values.server.replicas) 1 }}
{{- end -}}
{{- end -}}
