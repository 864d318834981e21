# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring role's spec: validation (every error names the variable and what it allows)
and normalisation. Pure functions, no I/O."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import is_int, shown

MODES = ("operator", "scrape_config")
VIRTUAL_GPUS = ("auto", "enabled", "disabled")
# dcgm-exporter's default counters (its etc/default-counters.csv, uncommented lines).
DEFAULT_COUNTERS = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ)."),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries."),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %)."),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %)."),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB)."),
    ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter", "Total number of NVLink bandwidth counters for all lanes."),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge", "vGPU License status"),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for uncorrectable errors"),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for correctable errors"),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed"),
    ("DCGM_FI_DRIVER_VERSION", "label", "Driver Version"),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active."),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active."),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge", "Ratio of cycles the device memory interface is active."),
)
# Commented out in dcgm-exporter's list; the health alerts need them.
EXTRA_COUNTERS = {
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": ("counter", "Total number of single-bit volatile ECC errors."),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": ("counter", "Total number of double-bit volatile ECC errors."),
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL": ("counter", "Total number of single-bit persistent ECC errors."),
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL": ("counter", "Total number of double-bit persistent ECC errors."),
    "DCGM_FI_DEV_RETIRED_SBE": ("counter", "Total number of retired pages due to single-bit errors."),
    "DCGM_FI_DEV_RETIRED_DBE": ("counter", "Total number of retired pages due to double-bit errors."),
    "DCGM_FI_DEV_RETIRED_PENDING": ("counter", "Total number of pages pending retirement."),
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": ("counter", "Total number of NVLink flow-control CRC errors."),
    "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL": ("counter", "Total number of NVLink data CRC errors."),
    "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL": ("counter", "Total number of NVLink retries."),
    "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL": ("counter", "Total number of NVLink recovery errors."),
    "DCGM_FI_DEV_POWER_VIOLATION": ("counter", "Throttling duration due to power constraints (in ns)."),
    "DCGM_FI_DEV_THERMAL_VIOLATION": ("counter", "Throttling duration due to thermal constraints (in ns)."),
}
DEFAULT_THRESHOLDS = {
    "gpu_temp_c": 85,
    "memory_temp_c": 95,
    "temp_for": "5m",
    "idle_ratio": 0.05,
    "idle_for": "1h",
    "memory_used_ratio": 0.95,
    "exporter_down_for": "5m",
    "velero_rpo_hours": 25,
    "karpenter_gpu_limit_ratio": 0.9,
}
THRESHOLD_RANGES = {
    "gpu_temp_c": (40, 120),
    "memory_temp_c": (40, 130),
    "velero_rpo_hours": (1, 24 * 31),
}
RATIOS = ("idle_ratio", "memory_used_ratio", "karpenter_gpu_limit_ratio")
DURATIONS = ("temp_for", "idle_for", "exporter_down_for")
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
PROM_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
HOST_PORT = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?:[0-9]{1,5}$")


class MonitoringSpecError(ValueError):
    def __init__(self, errors):
        super().__init__("; ".join(errors))
        self.errors = list(errors)


def _dns(errors, variable, value):
    if not isinstance(value, str) or not DNS_LABEL.match(value):
        errors.append(
            "%s: %s is not a DNS-1123 label (lowercase letters, digits, '-'; at most 63)" % (variable, shown(value))
        )


def _labels(errors, variable, value):
    if not isinstance(value, dict):
        errors.append("%s: must be a dict of Kubernetes labels, got %s" % (variable, shown(value)))
        return
    for key, item in value.items():
        if not isinstance(key, str) or not LABEL_NAME.match(key):
            errors.append("%s: %s is not a valid label key" % (variable, shown(key)))
        if not isinstance(item, str) or not LABEL_VALUE.match(item):
            errors.append(
                "%s[%s]: %s is not a valid label value (a string of at most 63)" % (variable, key, shown(item))
            )


def validate(raw):
    """A complete spec from the role's variables, or MonitoringSpecError listing every problem."""
    errors = []
    spec = dict(raw)
    if spec.get("mode") not in MODES:
        errors.append("monitoring_mode: %s must be one of %s" % (shown(spec.get("mode")), ", ".join(MODES)))
    if spec.get("kubernetes_virtual_gpus") not in VIRTUAL_GPUS:
        errors.append(
            "monitoring_kubernetes_virtual_gpus: %s must be one of %s"
            % (shown(spec.get("kubernetes_virtual_gpus")), ", ".join(VIRTUAL_GPUS))
        )
    for key in ("exporter_namespace", "namespace", "grafana_namespace", "counters_configmap", "clusterpolicy"):
        _dns(errors, "monitoring_" + key, spec.get(key))
    if not isinstance(spec.get("exporter_job"), str) or not DNS_LABEL.match(spec.get("exporter_job") or ""):
        errors.append("monitoring_exporter_job: %s is not a DNS-1123 label" % shown(spec.get("exporter_job")))
    interval = spec.get("scrape_interval")
    if not isinstance(interval, str) or not DURATION.match(interval):
        errors.append("monitoring_scrape_interval: %s is not a Prometheus duration (e.g. 30s, 1m)" % shown(interval))
    extra = spec.get("extra_counters")
    if not isinstance(extra, list):
        errors.append("monitoring_extra_counters: must be a list of DCGM field names, got %s" % shown(extra))
        extra = []
    seen = set()
    for name in extra:
        if name not in EXTRA_COUNTERS:
            errors.append(
                "monitoring_extra_counters: %s is not one of the extra counters; allowed: %s"
                % (shown(name), ", ".join(sorted(EXTRA_COUNTERS)))
            )
        elif name in seen:
            errors.append("monitoring_extra_counters: %s is listed twice" % name)
        seen.add(name)
    _labels(errors, "monitoring_rule_labels", spec.get("rule_labels"))
    _labels(errors, "monitoring_grafana_sidecar_label", spec.get("grafana_sidecar_label"))
    if isinstance(spec.get("grafana_sidecar_label"), dict) and len(spec["grafana_sidecar_label"]) != 1:
        errors.append("monitoring_grafana_sidecar_label: must hold exactly one label (the sidecar's label and value)")
    node_group = spec.get("node_group_label")
    if not isinstance(node_group, str) or not LABEL_NAME.match(node_group):
        errors.append("monitoring_node_group_label: %s is not a valid Kubernetes label key" % shown(node_group))
    runbook = spec.get("runbook_url")
    if not isinstance(runbook, str) or not runbook or any(c in runbook for c in " \n\"'{}"):
        errors.append(
            "monitoring_runbook_url: %s must be a URL or path without spaces, quotes or braces" % shown(runbook)
        )
    thresholds = dict(DEFAULT_THRESHOLDS)
    given = spec.get("thresholds")
    if not isinstance(given, dict):
        errors.append("monitoring_thresholds: must be a dict, got %s" % shown(given))
        given = {}
    for key, value in given.items():
        variable = "monitoring_thresholds.%s" % key
        if key not in DEFAULT_THRESHOLDS:
            errors.append("%s: unknown threshold; allowed: %s" % (variable, ", ".join(sorted(DEFAULT_THRESHOLDS))))
        elif key in THRESHOLD_RANGES:
            low, high = THRESHOLD_RANGES[key]
            if not is_int(value) or not low <= value <= high:
                errors.append("%s: %s is out of range; allowed: %d-%d" % (variable, shown(value), low, high))
        elif key in RATIOS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                errors.append("%s: %s must be a ratio in (0, 1]" % (variable, shown(value)))
        elif key in DURATIONS and (not isinstance(value, str) or not DURATION.match(value)):
            errors.append("%s: %s is not a Prometheus duration (e.g. 5m, 1h)" % (variable, shown(value)))
        thresholds[key] = value
    spec["thresholds"] = thresholds
    targets = spec.get("static_targets")
    if not isinstance(targets, list):
        errors.append("monitoring_static_targets: must be a list, got %s" % shown(targets))
        targets = []
    for i, target in enumerate(targets):
        variable = "monitoring_static_targets[%d]" % i
        if not isinstance(target, dict) or set(target) - {"address", "host", "node_group"}:
            errors.append("%s: must be a dict with address, host and optional node_group" % variable)
            continue
        if not isinstance(target.get("address"), str) or not HOST_PORT.match(target["address"]):
            errors.append("%s.address: %s must be host:port" % (variable, shown(target.get("address"))))
        if not isinstance(target.get("host"), str) or not target["host"]:
            errors.append("%s.host: %s must be the node's name" % (variable, shown(target.get("host"))))
    if errors:
        raise MonitoringSpecError(errors)
    spec["static_targets"] = targets
    return spec


def counters(spec):
    """(field, type, help) rows of the counters CSV: dcgm-exporter's defaults, then the extras."""
    rows = list(DEFAULT_COUNTERS)
    rows.extend((name,) + EXTRA_COUNTERS[name] for name in spec["extra_counters"])
    return rows


def counters_csv(spec):
    lines = ["# DCGM FIELD, Prometheus metric type, help message (rendered by gpuops.cluster.monitoring)"]
    lines.extend("%s, %s, %s" % row for row in counters(spec))
    return "\n".join(lines) + "\n"


def virtual_gpus(spec, sharing_strategies):
    """Whether dcgm-exporter runs with --kubernetes-virtual-gpus (auto: where GPUs are shared)."""
    mode = spec["kubernetes_virtual_gpus"]
    if mode == "auto":
        return any(strategy not in (None, "", "none") for strategy in sharing_strategies)
    return mode == "enabled"
