{{- if .Values.snapshotsEnabled }}
{{- range .Values.configuration.volumeSnapshotLocation }}
---
apiVersion: velero.io/v1
kind: VolumeSnapshotLocation
metadata:
  name: {{ .name | default "default" }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "velero.labels" $ | nindent 4 }}
spec:
  provider: {{ .provider }}
  {{- with .credential }}
  credential:
    name: {{ .name }}
    key: {{ .key }}
  {{- end }}
  {{- with .config }}
  config:
    {{- range $key, $value := . }}
    {{ $key }}: {{ $value | toString | quote }}
    {{- end }}
  {{- end }}
{{- end }}
{{- end }}
