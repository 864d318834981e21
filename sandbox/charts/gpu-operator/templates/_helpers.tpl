{{/* Labels every object of the release carries (upstream's gpu-operator.labels). */}}
{{- define "gpu-operator.labels" -}}
app.kubernetes.io/name: gpu-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* repository/image/version/imagePullPolicy of a component, version defaulting to appVersion. */}}
{{- define "gpu-operator.image" -}}
{{- $component := index . 0 -}}
{{- $chart := index . 1 -}}
{{- with $component.repository }}
repository: {{ . }}
{{- end }}
{{- with $component.image }}
image: {{ . }}
{{- end }}
version: {{ $component.version | default $chart.AppVersion | quote }}
{{- with $component.imagePullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}
