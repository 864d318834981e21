{{/* Labels every object of the release carries (upstream's). */}}
{{- define "velero.labels" -}}
app.kubernetes.io/name: velero
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The credentials Secret's name: credentials.existingSecret, credentials.name, else the release's. */}}
{{- define "velero.secretName" -}}
{{- if .Values.credentials.existingSecret -}}
{{ .Values.credentials.existingSecret }}
{{- else -}}
{{ .Values.credentials.name | default .Release.Name }}
{{- end -}}
{{- end }}
