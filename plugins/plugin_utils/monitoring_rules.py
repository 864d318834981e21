# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring role's Prometheus alerting rules, from a validated spec. Pure functions.

Every DCGM series goes through ``host_of`` first: dcgm-exporter labels the node ``Hostname``
up to 4.x and ``hostname`` after its rename, so both are folded into one ``host`` label before
any aggregation (a fleet mid-upgrade has both). Every alert carries a ``runbook_url``
annotation pointing at the health-check playbook's check for it.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

# Xids that need a GPU reset, a node reboot or an RMA (NVIDIA's Xid catalogue): 48 DBE,
# 63/64 row-remap recording (failure), 74 NVLink error, 79 fallen off the bus,
# 92 high SBE rate, 94 contained / 95 uncontained ECC error.
CRITICAL_XIDS = (48, 63, 64, 74, 79, 92, 94, 95)
GPU_LABELS = "host, gpu, UUID, pci_bus_id, modelName"
MIG_LABELS = GPU_LABELS + ", GPU_I_PROFILE, GPU_I_ID"
NVLINK_COUNTERS = (
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
    "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
    "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL",
    "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL",
)


def host_of(selector):
    """``selector`` with a ``host`` label taken from Hostname or hostname, whichever is set."""
    return 'label_replace(label_replace(%s, "host", "$1", "Hostname", "(.+)"), "host", "$1", "hostname", "(.+)")' % (
        selector
    )


def _by(labels, func, selector):
    return "%s by (%s) (%s)" % (func, labels, host_of(selector))


def _alert(name, expr, severity, summary, description, check, runbook, for_=None, extra_labels=None):
    rule = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    labels = {"severity": severity}
    labels.update(extra_labels or {})
    rule["labels"] = labels
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook_url": "%s#%s" % (runbook, check),
    }
    return rule


def gpu_rules(spec):
    t = spec["thresholds"]
    runbook = spec["runbook_url"]
    xid = _by(MIG_LABELS, "max", "DCGM_FI_DEV_XID_ERRORS")
    critical = " or ".join("%s == %d" % (xid, code) for code in CRITICAL_XIDS)
    where = "{{ $labels.host }} GPU {{ $labels.gpu }} ({{ $labels.UUID }})"
    rules = [
        _alert(
            "GpuXidCriticalError",
            critical,
            "critical",
            "Critical Xid {{ $value }} on %s" % where,
            "Xid {{ $value }} needs a GPU reset, a node drain and reboot, or an RMA "
            "(79: fallen off the bus; 48/94/95: ECC; 63/64: row remapping; 74: NVLink; 92: SBE storm).",
            "gpu-not-detected",
            runbook,
        ),
        _alert(
            "GpuXidError",
            "(%s > 0) unless (%s)" % (xid, critical),
            "warning",
            "Xid {{ $value }} on %s" % where,
            "An Xid outside the critical list: usually an application fault (13, 31, 43); check the workload.",
            "gpu-not-detected",
            runbook,
        ),
        _alert(
            "GpuEccDoubleBitErrors",
            "%s > 0" % _by(GPU_LABELS, "max", "increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[15m])"),
            "critical",
            "Double-bit ECC errors on %s" % where,
            "Uncorrectable ECC errors in the last 15 minutes: drain the node, reset the GPU, watch row remapping.",
            "gpu-ecc",
            runbook,
        ),
        _alert(
            "GpuRowRemapFailure",
            "%s > 0" % _by(GPU_LABELS, "max", "DCGM_FI_DEV_ROW_REMAP_FAILURE"),
            "critical",
            "Row remapping failed on %s" % where,
            "The GPU ran out of spare rows: it needs an RMA.",
            "gpu-ecc",
            runbook,
        ),
        _alert(
            "GpuTemperatureHigh",
            "%s > %s" % (_by(GPU_LABELS, "max", "DCGM_FI_DEV_GPU_TEMP"), t["gpu_temp_c"]),
            "warning",
            "%s runs at {{ $value }} C" % where,
            "GPU temperature above %s C for %s: check cooling and power capping." % (t["gpu_temp_c"], t["temp_for"]),
            "gpu-thermal",
            runbook,
            t["temp_for"],
        ),
        _alert(
            "GpuMemoryTemperatureHigh",
            "%s > %s" % (_by(GPU_LABELS, "max", "DCGM_FI_DEV_MEMORY_TEMP"), t["memory_temp_c"]),
            "warning",
            "%s memory at {{ $value }} C" % where,
            "HBM temperature above %s C for %s." % (t["memory_temp_c"], t["temp_for"]),
            "gpu-thermal",
            runbook,
            t["temp_for"],
        ),
        _alert(
            "GpuNvlinkErrors",
            " or ".join("%s > 0" % _by(GPU_LABELS, "max", "increase(%s[15m])" % name) for name in NVLINK_COUNTERS),
            "warning",
            "NVLink errors on %s" % where,
            "NVLink CRC, replay or recovery errors in the last 15 minutes: check the links (nvidia-smi nvlink -e).",
            "gpu-nvlink",
            runbook,
        ),
        _alert(
            "DcgmExporterDown",
            'up{job="%s"} == 0' % spec["exporter_job"],
            "critical",
            "DCGM exporter on {{ $labels.instance }} is down",
            "No GPU metrics from this node for %s: the exporter pod is failing (driver not loaded, "
            "NVML unusable) or the node is gone." % t["exporter_down_for"],
            "gpu-not-detected",
            runbook,
            t["exporter_down_for"],
        ),
        _alert(
            "DcgmExporterAbsent",
            'absent(up{job="%s"})' % spec["exporter_job"],
            "critical",
            "No DCGM exporter target at all",
            "Prometheus has no %s target: the exporter is not deployed or not discovered "
            "(ServiceMonitor selector, scrape config)." % spec["exporter_job"],
            "gpu-not-detected",
            runbook,
            t["exporter_down_for"],
        ),
        _alert(
            "GpuAllocatedIdle",
            "%s < %s"
            % (
                _by(GPU_LABELS + ", namespace, pod", "max", 'DCGM_FI_PROF_GR_ENGINE_ACTIVE{pod!="",GPU_I_PROFILE=""}'),
                t["idle_ratio"],
            ),
            "info",
            "GPU {{ $labels.gpu }} on {{ $labels.host }} allocated to "
            "{{ $labels.namespace }}/{{ $labels.pod }} is idle",
            "Graphics engine active below %s for %s while a pod holds the GPU: release it or share it."
            % (t["idle_ratio"], t["idle_for"]),
            "gpu-idle",
            runbook,
            t["idle_for"],
        ),
        _alert(
            "GpuMigInstanceIdle",
            "%s < %s"
            % (
                _by(MIG_LABELS + ", namespace, pod", "max", 'DCGM_FI_PROF_GR_ENGINE_ACTIVE{pod!="",GPU_I_PROFILE!=""}'),
                t["idle_ratio"],
            ),
            "info",
            "MIG {{ $labels.GPU_I_PROFILE }} (GI {{ $labels.GPU_I_ID }}) on {{ $labels.host }} GPU {{ $labels.gpu }} "
            "held by {{ $labels.namespace }}/{{ $labels.pod }} is idle",
            "MIG instance activity below %s for %s while a pod holds it." % (t["idle_ratio"], t["idle_for"]),
            "gpu-idle",
            runbook,
            t["idle_for"],
        ),
        _alert(
            "GpuMemoryNearlyFull",
            "%s / (%s + %s) > %s"
            % (
                _by(GPU_LABELS, "max", 'DCGM_FI_DEV_FB_USED{GPU_I_PROFILE=""}'),
                _by(GPU_LABELS, "max", 'DCGM_FI_DEV_FB_USED{GPU_I_PROFILE=""}'),
                _by(GPU_LABELS, "max", 'DCGM_FI_DEV_FB_FREE{GPU_I_PROFILE=""}'),
                t["memory_used_ratio"],
            ),
            "warning",
            "%s framebuffer {{ $value | humanizePercentage }} used" % where,
            "Framebuffer use above %s: the next allocation may fail with CUDA out of memory." % t["memory_used_ratio"],
            "oom",
            runbook,
            "10m",
        ),
        _alert(
            "GpuMigMemoryNearlyFull",
            "%s / (%s + %s) > %s"
            % (
                _by(MIG_LABELS, "max", 'DCGM_FI_DEV_FB_USED{GPU_I_PROFILE!=""}'),
                _by(MIG_LABELS, "max", 'DCGM_FI_DEV_FB_USED{GPU_I_PROFILE!=""}'),
                _by(MIG_LABELS, "max", 'DCGM_FI_DEV_FB_FREE{GPU_I_PROFILE!=""}'),
                t["memory_used_ratio"],
            ),
            "warning",
            "MIG {{ $labels.GPU_I_PROFILE }} (GI {{ $labels.GPU_I_ID }}) on {{ $labels.host }} "
            "{{ $value | humanizePercentage }} used",
            "MIG instance memory use above %s: pick a larger profile or shard the model." % t["memory_used_ratio"],
            "oom",
            runbook,
            "10m",
        ),
    ]
    return rules


def platform_rules(spec):
    t = spec["thresholds"]
    runbook = spec["runbook_url"]
    rpo = int(t["velero_rpo_hours"]) * 3600
    return [
        _alert(
            "VeleroBackupRpoBreach",
            'time() - max by (schedule) (velero_backup_last_successful_timestamp{schedule!=""}) > %d' % rpo,
            "critical",
            "Velero schedule {{ $labels.schedule }} has no successful backup for over %s h" % t["velero_rpo_hours"],
            "The recovery point objective is breached: check the schedule's last backups (velero backup describe).",
            "backups",
            runbook,
        ),
        _alert(
            "KarpenterGpuLimitNearlyExhausted",
            'max by (nodepool) (karpenter_nodepools_usage{resource_type="nvidia.com/gpu"}) '
            '/ max by (nodepool) (karpenter_nodepools_limit{resource_type="nvidia.com/gpu"}) > %s'
            % t["karpenter_gpu_limit_ratio"],
            "warning",
            "NodePool {{ $labels.nodepool }} uses {{ $value | humanizePercentage }} of its GPU limit",
            "Karpenter will not launch GPU nodes past the NodePool's limits: pending GPU pods will stay pending.",
            "nodes-not-scaling",
            runbook,
            "15m",
        ),
    ]


def rule_groups(spec):
    """The PrometheusRule ``spec.groups`` (also a promtool rules file's content)."""
    return [
        {"name": "gpuops-gpu-health", "rules": gpu_rules(spec)},
        {"name": "gpuops-platform", "rules": platform_rules(spec)},
    ]
