{{- if and .Values.credentials.useSecret (not .Values.credentials.existingSecret) .Values.credentials.secretContents }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "velero.secretName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "velero.labels" . | nindent 4 }}
type: Opaque
data:
  {{- range $key, $value := .Values.credentials.secretContents }}
  {{ $key }}: {{ $value | b64enc | quote }}
  {{- end }}
{{- end }}
