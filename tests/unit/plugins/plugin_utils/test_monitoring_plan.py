"""The monitoring role's plan (plugins/filter/monitoring.py, plugin_utils/monitoring_*): objects,
the ClusterPolicy patch, scrape configs, and bad settings refused naming the variable.

(The ServiceMonitor and PrometheusRule are checked against the upstream CRD schemas by the
Kubernetes API stand-in when tests/integration/test_monitoring_role.py applies them.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.filter.monitoring import monitoring_plan

ROOT = Path(__file__).resolve().parents[4]


def spec(**overrides):
    defaults = yaml.safe_load((ROOT / "roles/monitoring/defaults/main.yml").read_text())
    base = {key[len("monitoring_") :]: value for key, value in defaults.items() if key.startswith("monitoring_")}
    base.update(overrides)
    return base


def test_operator_plan_objects_and_patch():
    plan = monitoring_plan(spec(), ["none", "none"])
    assert plan["errors"] == []
    kinds = [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in plan["objects"]]
    assert kinds[:3] == [
        ("ConfigMap", "gpu-operator", "gpuops-dcgm-counters"),
        ("ServiceMonitor", "gpu-operator", "gpuops-dcgm-exporter"),
        ("PrometheusRule", "monitoring", "gpuops-gpu-alerts"),
    ]
    dashboards = plan["objects"][3:]
    assert len(dashboards) == 6 and all(o["metadata"]["labels"]["grafana_dashboard"] == "1" for o in dashboards)
    csv = plan["objects"][0]["data"]["dcgm-metrics.csv"]
    rows = [line.split(",")[0] for line in csv.splitlines() if not line.startswith("#")]
    assert rows[0] == "DCGM_FI_DEV_SM_CLOCK" and "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL" in rows
    assert "DCGM_FI_DEV_THERMAL_VIOLATION" in rows and len(rows) == len(set(rows))
    patch = plan["clusterpolicy_patch"]["spec"]["dcgmExporter"]
    assert patch["config"] == {"name": "gpuops-dcgm-counters"} and patch["args"] == []
    assert plan["kubernetes_virtual_gpus"] is False and plan["scrape_configs"] == []


def test_virtual_gpus_where_shared_or_forced():
    assert monitoring_plan(spec(), ["none", "time-slicing"])["clusterpolicy_patch"]["spec"]["dcgmExporter"]["args"] == [
        "--kubernetes-virtual-gpus"
    ]
    assert monitoring_plan(spec(kubernetes_virtual_gpus="disabled"), ["mps"])["kubernetes_virtual_gpus"] is False
    assert monitoring_plan(spec(kubernetes_virtual_gpus="enabled"), [])["kubernetes_virtual_gpus"] is True


def test_scrape_config_mode_has_no_operator_objects():
    targets = [{"address": "slurm-gpu-01:9400", "host": "slurm-gpu-01", "node_group": "slurm"}]
    plan = monitoring_plan(spec(mode="scrape_config", static_targets=targets), [])
    assert {o["kind"] for o in plan["objects"]} == {"ConfigMap"}
    jobs = {c["job_name"]: c for c in plan["scrape_configs"]}
    assert jobs["nvidia-dcgm-exporter"]["kubernetes_sd_configs"][0]["namespaces"] == {"names": ["gpu-operator"]}
    assert jobs["nvidia-dcgm-exporter-static"]["static_configs"] == [
        {"targets": ["slurm-gpu-01:9400"], "labels": {"node": "slurm-gpu-01", "node_group": "slurm"}}
    ]


BAD = [
    ({"mode": "prometheus"}, "monitoring_mode: 'prometheus' must be one of operator, scrape_config"),
    ({"kubernetes_virtual_gpus": "yes"}, "monitoring_kubernetes_virtual_gpus: 'yes' must be one of auto, enabled"),
    ({"exporter_namespace": "GPU_Operator"}, "monitoring_exporter_namespace: 'GPU_Operator' is not a DNS-1123 label"),
    ({"counters_configmap": ""}, "monitoring_counters_configmap: '' is not a DNS-1123 label"),
    ({"scrape_interval": "30 seconds"}, "monitoring_scrape_interval: '30 seconds' is not a Prometheus duration"),
    ({"extra_counters": ["DCGM_FI_DEV_GPU_TEMP"]}, "monitoring_extra_counters: 'DCGM_FI_DEV_GPU_TEMP' is not one of"),
    (
        {"extra_counters": ["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"]},
        "monitoring_extra_counters: DCGM_FI_DEV_ECC_DBE_VOL_TOTAL is listed twice",
    ),
    ({"extra_counters": "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"}, "monitoring_extra_counters: must be a list"),
    (
        {"rule_labels": {"release": "kube prometheus"}},
        "monitoring_rule_labels[release]: 'kube prometheus' is not a valid",
    ),
    ({"rule_labels": {"-bad": "x"}}, "monitoring_rule_labels: '-bad' is not a valid label key"),
    ({"grafana_sidecar_label": {}}, "monitoring_grafana_sidecar_label: must hold exactly one label"),
    (
        {"node_group_label": "node group"},
        "monitoring_node_group_label: 'node group' is not a valid Kubernetes label key",
    ),
    ({"runbook_url": "https://x/{{ bad }}"}, "monitoring_runbook_url: "),
    ({"thresholds": {"gpu_temp_c": 500}}, "monitoring_thresholds.gpu_temp_c: 500 is out of range; allowed: 40-120"),
    ({"thresholds": {"gpu_temp_c": True}}, "monitoring_thresholds.gpu_temp_c: True is out of range"),
    ({"thresholds": {"idle_ratio": 0}}, "monitoring_thresholds.idle_ratio: 0 must be a ratio in (0, 1]"),
    ({"thresholds": {"idle_for": "an hour"}}, "monitoring_thresholds.idle_for: 'an hour' is not a Prometheus duration"),
    ({"thresholds": {"gpu_temperature": 80}}, "monitoring_thresholds.gpu_temperature: unknown threshold; allowed:"),
    ({"static_targets": [{"address": "h:99999999", "host": "x"}]}, "monitoring_static_targets[0].address:"),
    ({"static_targets": [{"address": "h:9400"}]}, "monitoring_static_targets[0].host: None must be the node's name"),
    (
        {"static_targets": [{"address": "h:9400", "host": "h", "port": 1}]},
        "monitoring_static_targets[0]: must be a dict",
    ),
]


@pytest.mark.parametrize(
    ("override", "message"), BAD, ids=[m.split(":")[0] + str(i) for i, (_unused, m) in enumerate(BAD)]
)
def test_bad_settings_name_the_variable(override, message):
    plan = monitoring_plan(spec(**override), [])
    assert plan["objects"] == []
    assert any(message in error for error in plan["errors"]), plan["errors"]


def test_every_error_is_listed_at_once():
    plan = monitoring_plan(spec(mode="x", scrape_interval="y", thresholds={"idle_ratio": 5}), [])
    assert len(plan["errors"]) == 3
