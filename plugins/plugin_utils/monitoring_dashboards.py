# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring role's Grafana dashboards (JSON models), one per concern. Pure functions.

Memory panels use DCGM_FI_DEV_FB_USED / FB_FREE (what is allocated), not MEM_COPY_UTIL (how busy
the memory interface is). MIG panels select GPU_I_PROFILE != "", whole-GPU panels = "".
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json

from ansible_collections.gpuops.cluster.plugins.plugin_utils.monitoring_rules import host_of


def _panels(spec):
    job = spec["exporter_job"]
    h = host_of
    return {
        "gpuops-gpu-fleet-health": (
            "GPU fleet health",
            [
                ("GPUs reporting per node", "count by (host) (%s)" % h("DCGM_FI_DEV_GPU_TEMP"), "none"),
                ("DCGM exporter targets up", 'sum by (instance) (up{job="%s"})' % job, "none"),
                ("Last Xid per GPU", "max by (host, gpu) (%s)" % h("DCGM_FI_DEV_XID_ERRORS"), "none"),
                ("Row remap failures", "max by (host, gpu) (%s)" % h("DCGM_FI_DEV_ROW_REMAP_FAILURE"), "none"),
                ("GPU temperature", "max by (host, gpu) (%s)" % h("DCGM_FI_DEV_GPU_TEMP"), "celsius"),
            ],
        ),
        "gpuops-gpu-utilization": (
            "GPU utilization",
            [
                (
                    "Engine activity per GPU model",
                    'avg by (modelName) (DCGM_FI_PROF_GR_ENGINE_ACTIVE{GPU_I_PROFILE=""})',
                    "percentunit",
                ),
                (
                    "Engine activity per node group",
                    "avg by (node_group) (DCGM_FI_PROF_GR_ENGINE_ACTIVE)",
                    "percentunit",
                ),
                (
                    "Engine activity per namespace",
                    'avg by (namespace) (DCGM_FI_PROF_GR_ENGINE_ACTIVE{namespace!=""})',
                    "percentunit",
                ),
                ("GPU utilization per node", "avg by (host) (%s)" % h("DCGM_FI_DEV_GPU_UTIL"), "percent"),
            ],
        ),
        "gpuops-mig": (
            "MIG slice utilization",
            [
                (
                    "Engine activity per MIG instance",
                    "avg by (host, gpu, GPU_I_PROFILE, GPU_I_ID) (%s)"
                    % h('DCGM_FI_PROF_GR_ENGINE_ACTIVE{GPU_I_PROFILE!=""}'),
                    "percentunit",
                ),
                (
                    "Memory used per MIG instance",
                    "sum by (host, gpu, GPU_I_PROFILE, GPU_I_ID) (%s)" % h('DCGM_FI_DEV_FB_USED{GPU_I_PROFILE!=""}'),
                    "decmbytes",
                ),
                (
                    "MIG instances per profile",
                    'count by (GPU_I_PROFILE) (DCGM_FI_DEV_FB_USED{GPU_I_PROFILE!=""})',
                    "none",
                ),
            ],
        ),
        "gpuops-gpu-memory": (
            "GPU memory",
            [
                ("Framebuffer used per node", "sum by (host) (%s)" % h("DCGM_FI_DEV_FB_USED"), "decmbytes"),
                ("Framebuffer free per node", "sum by (host) (%s)" % h("DCGM_FI_DEV_FB_FREE"), "decmbytes"),
                (
                    "Framebuffer used ratio per GPU",
                    "sum by (host, gpu) (%s) / (sum by (host, gpu) (%s) + sum by (host, gpu) (%s))"
                    % (h("DCGM_FI_DEV_FB_USED"), h("DCGM_FI_DEV_FB_USED"), h("DCGM_FI_DEV_FB_FREE")),
                    "percentunit",
                ),
            ],
        ),
        "gpuops-gpu-power": (
            "GPU power",
            [
                ("Power draw per node", "sum by (host) (%s)" % h("DCGM_FI_DEV_POWER_USAGE"), "watt"),
                (
                    "Energy per node (W from the energy counter)",
                    "sum by (host) (%s) / 1000" % h("rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[5m])"),
                    "watt",
                ),
            ],
        ),
        "gpuops-gpu-errors": (
            "GPU Xid and ECC history",
            [
                (
                    "Xids seen (max over 1d)",
                    "max by (host, gpu) (%s)" % h("max_over_time(DCGM_FI_DEV_XID_ERRORS[1d])"),
                    "none",
                ),
                (
                    "ECC single-bit errors (1h)",
                    "sum by (host, gpu) (%s)" % h("increase(DCGM_FI_DEV_ECC_SBE_VOL_TOTAL[1h])"),
                    "none",
                ),
                (
                    "ECC double-bit errors (1h)",
                    "sum by (host, gpu) (%s)" % h("increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[1h])"),
                    "none",
                ),
                (
                    "Remapped rows (uncorrectable)",
                    "max by (host, gpu) (%s)" % h("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"),
                    "none",
                ),
            ],
        ),
    }


def dashboards(spec):
    """uid -> Grafana dashboard model (dict)."""
    result = {}
    for uid, (title, panels) in _panels(spec).items():
        model = {
            "uid": uid,
            "title": title,
            "tags": ["gpuops", "gpu", "dcgm"],
            "schemaVersion": 39,
            "version": 1,
            "editable": False,
            "time": {"from": "now-6h", "to": "now"},
            "templating": {
                "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
            },
            "panels": [],
        }
        for i, (panel_title, expr, unit) in enumerate(panels):
            model["panels"].append(
                {
                    "id": i + 1,
                    "type": "timeseries",
                    "title": panel_title,
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                    "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                    "targets": [
                        {"refId": "A", "expr": expr, "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    ],
                }
            )
        result[uid] = model
    return result


def dashboard_queries(models):
    """Every PromQL expression of the dashboard models: (uid, panel title, expr)."""
    return [
        (uid, panel["title"], target["expr"])
        for uid, model in sorted(models.items())
        for panel in model["panels"]
        for target in panel["targets"]
    ]


def dashboard_json(model):
    return json.dumps(model, indent=2, sort_keys=True) + "\n"
