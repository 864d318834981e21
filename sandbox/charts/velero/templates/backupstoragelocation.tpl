{{- range .Values.configuration.backupStorageLocation }}
---
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata:
  name: {{ .name | default "default" }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "velero.labels" $ | nindent 4 }}
spec:
  provider: {{ .provider }}
  {{- with .accessMode }}
  accessMode: {{ . }}
  {{- end }}
  default: {{ .default | default false }}
  {{- with .validationFrequency }}
  validationFrequency: {{ . }}
  {{- end }}
  {{- with .credential }}
  credential:
    name: {{ .name }}
    key: {{ .key }}
  {{- end }}
  objectStorage:
    bucket: {{ .bucket | quote }}
    {{- with .prefix }}
    prefix: {{ . | quote }}
    {{- end }}
    {{- with .caCert }}
    caCert: {{ . }}
    {{- end }}
  {{- with .config }}
  config:
    {{- range $key, $value := . }}
    {{ $key }}: {{ $value | toString | quote }}
    {{- end }}
  {{- end }}
{{- end }}
