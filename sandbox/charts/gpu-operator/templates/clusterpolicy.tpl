{{- /* The ClusterPolicy the operator reconciles, from the values, as upstream's template. */ -}}
apiVersion: nvidia.com/v1
kind: ClusterPolicy
metadata:
  name: cluster-policy
  labels:
    {{- include "gpu-operator.labels" . | nindent 4 }}
spec:
  operator:
    defaultRuntime: {{ .Values.operator.defaultRuntime }}
    runtimeClass: {{ .Values.operator.runtimeClass }}
    use_ocp_driver_toolkit: {{ .Values.operator.use_ocp_driver_toolkit }}
  daemonsets:
    {{- with .Values.daemonsets.labels }}
    labels:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .Values.daemonsets.annotations }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    priorityClassName: {{ .Values.daemonsets.priorityClassName }}
    {{- with .Values.daemonsets.tolerations }}
    tolerations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    updateStrategy: {{ .Values.daemonsets.updateStrategy }}
    rollingUpdate:
      maxUnavailable: {{ .Values.daemonsets.rollingUpdate.maxUnavailable | quote }}
  validator:
    {{- include "gpu-operator.image" (list .Values.validator .Chart) | trim | nindent 4 }}
  mig:
    strategy: {{ .Values.mig.strategy }}
  psa:
    enabled: {{ .Values.psa.enabled }}
  cdi:
    enabled: {{ .Values.cdi.enabled }}
    default: {{ .Values.cdi.default }}
  driver:
    enabled: {{ .Values.driver.enabled }}
    usePrecompiled: {{ .Values.driver.usePrecompiled }}
    kernelModuleType: {{ .Values.driver.kernelModuleType }}
    {{- include "gpu-operator.image" (list .Values.driver .Chart) | trim | nindent 4 }}
    manager:
      {{- include "gpu-operator.image" (list .Values.driver.manager .Chart) | trim | nindent 6 }}
  toolkit:
    enabled: {{ .Values.toolkit.enabled }}
    {{- include "gpu-operator.image" (list .Values.toolkit .Chart) | trim | nindent 4 }}
  devicePlugin:
    enabled: {{ .Values.devicePlugin.enabled }}
    {{- include "gpu-operator.image" (list .Values.devicePlugin .Chart) | trim | nindent 4 }}
    {{- if .Values.devicePlugin.config.name }}
    config:
      name: {{ .Values.devicePlugin.config.name }}
      default: {{ .Values.devicePlugin.config.default | quote }}
    {{- end }}
  dcgm:
    enabled: {{ .Values.dcgm.enabled }}
    {{- include "gpu-operator.image" (list .Values.dcgm .Chart) | trim | nindent 4 }}
  dcgmExporter:
    enabled: {{ .Values.dcgmExporter.enabled }}
    {{- include "gpu-operator.image" (list .Values.dcgmExporter .Chart) | trim | nindent 4 }}
    serviceMonitor:
      enabled: {{ .Values.dcgmExporter.serviceMonitor.enabled }}
  gfd:
    enabled: {{ .Values.gfd.enabled }}
    {{- include "gpu-operator.image" (list .Values.gfd .Chart) | trim | nindent 4 }}
  migManager:
    enabled: {{ .Values.migManager.enabled }}
    {{- include "gpu-operator.image" (list .Values.migManager .Chart) | trim | nindent 4 }}
    config:
      {{- with .Values.migManager.config.name }}
      name: {{ . }}
      {{- end }}
      default: {{ .Values.migManager.config.default | quote }}
  nodeStatusExporter:
    enabled: {{ .Values.nodeStatusExporter.enabled }}
    {{- include "gpu-operator.image" (list .Values.nodeStatusExporter .Chart) | trim | nindent 4 }}
  {{- range $name := list "gds" "gdrcopy" "vgpuDeviceManager" "sandboxDevicePlugin" "kataSandboxDevicePlugin" "ccManager" }}
  {{- $component := index $.Values $name }}
  {{ $name }}:
    enabled: {{ $component.enabled }}
    {{- include "gpu-operator.image" (list $component $.Chart) | trim | nindent 4 }}
  {{- end }}
  {{- range $name := list "vgpuManager" "vfioManager" }}
  {{- $component := index $.Values $name }}
  {{ $name }}:
    enabled: {{ $component.enabled }}
    {{- include "gpu-operator.image" (list $component $.Chart) | trim | nindent 4 }}
    driverManager:
      {{- include "gpu-operator.image" (list $component.driverManager $.Chart) | trim | nindent 6 }}
  {{- end }}
  sandboxWorkloads:
    enabled: {{ .Values.sandboxWorkloads.enabled }}
    defaultWorkload: {{ .Values.sandboxWorkloads.defaultWorkload }}
