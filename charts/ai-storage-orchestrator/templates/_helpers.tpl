{{/*
Names are fixed, as in k8s/: the orchestrator finds its Lease and its admission policy by these names.
*/}}
{{- define "aiso.name" -}}
ai-storage-orchestrator
{{- end }}

{{/* The pod selector: the one label of k8s/ (equal selectors let either install path take over the other's pods). */}}
{{- define "aiso.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aiso.name" . }}
{{- end }}

{{/* Every object's labels: the selector label and Helm's standard ones. */}}
{{- define "aiso.labels" -}}
{{ include "aiso.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The orchestrator's ServiceAccount, as a subject of its bindings. */}}
{{- define "aiso.subjects" -}}
- kind: ServiceAccount
  name: {{ include "aiso.name" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/* Port name and probe scheme: https unless tls.secretName is empty. */}}
{{- define "aiso.portName" -}}
{{ ternary "https" "http" (not (empty .Values.tls.secretName)) }}
{{- end }}
