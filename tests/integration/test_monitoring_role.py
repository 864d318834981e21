"""The monitoring role through ansible-playbook against the Kubernetes API stand-in: check mode
predicts the real run, the real run writes every object, a rerun changes nothing, bad settings
are refused before any change."""

from __future__ import annotations

from change_records import CALLBACKS, changes
from conftest import REPO_ROOT, run_playbook

# cluster_policy is a pytest fixture re-used from test_mig_role
from test_mig_role import cluster_policy, env_of, overlay  # noqa: F401  # pylint: disable=unused-import

PLAYBOOK = REPO_ROOT / "tests" / "integration" / "playbooks" / "monitoring_apply.yml"
DASHBOARDS = {
    "gpuops-gpu-errors",
    "gpuops-gpu-fleet-health",
    "gpuops-gpu-memory",
    "gpuops-gpu-power",
    "gpuops-gpu-utilization",
    "gpuops-mig",
}


HOSTS = [
    "-l",
    "gpu-a100-01,eks-l40s-01",  # eks-l40s-01 time-slices its GPUs (inventory group_vars)
    # The Prometheus operator's objects (the sandbox inventory itself uses scrape_config mode,
    # for the sandbox's plain Prometheus).
    "-e",
    "monitoring_mode=operator",
]


def _changed(run) -> int:
    return sum(r["changed"] for r in run.recap.values())


def _recorded(env, record):
    return dict(
        env,
        ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
        ANSIBLE_CALLBACKS_ENABLED="record_changes",
        GPUOPS_RECORD_CHANGES=str(record),
    )


def test_apply_check_mode_and_rerun(sandbox, kube, cluster_policy, tmp_path):  # noqa: F811
    from kubernetes import client

    env = env_of(sandbox, kube)
    check = run_playbook(PLAYBOOK, *HOSTS, "--check", env=_recorded(env, tmp_path / "check.jsonl"))
    assert check.rc == 0, check
    core = client.CoreV1Api(kube.api_client())
    assert not core.list_namespaced_config_map(
        "gpu-operator", label_selector="app.kubernetes.io/part-of=gpuops-monitoring"
    ).items

    run = run_playbook(PLAYBOOK, *HOSTS, env=_recorded(env, tmp_path / "real.jsonl"))
    assert run.rc == 0, run.stdout[-4000:]
    predicted, done = changes(tmp_path / "check.jsonl"), changes(tmp_path / "real.jsonl")
    assert predicted == done, (predicted, done)  # object by object
    assert len(done["gpu-a100-01"]) == 11  # namespace monitoring, counters, monitor, rule, 6 dashboards, policy

    counters = core.read_namespaced_config_map("gpuops-dcgm-counters", "gpu-operator").data["dcgm-metrics.csv"]
    assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, counter" in counters and "DCGM_FI_DEV_XID_ERRORS, gauge" in counters
    policy = cluster_policy.get(name="cluster-policy").to_dict()["spec"]["dcgmExporter"]
    assert policy["config"] == {"name": "gpuops-dcgm-counters"}
    assert {"name": "DCGM_EXPORTER_COLLECTORS", "value": "/etc/dcgm-exporter/dcgm-metrics.csv"} in policy["env"]
    # eks-l40s-01 time-slices its GPUs (inventory group_vars): the exporter maps virtual GPUs.
    assert policy["args"] == ["--kubernetes-virtual-gpus"]
    dashboards = core.list_namespaced_config_map("monitoring", label_selector="grafana_dashboard=1").items
    assert {cm.metadata.name for cm in dashboards} == DASHBOARDS
    dyn = kube.dynamic()
    monitor = dyn.resources.get(api_version="monitoring.coreos.com/v1", kind="ServiceMonitor")
    assert monitor.get(name="gpuops-dcgm-exporter", namespace="gpu-operator").spec.endpoints[0].port == "gpu-metrics"
    rules = dyn.resources.get(api_version="monitoring.coreos.com/v1", kind="PrometheusRule")
    groups = rules.get(name="gpuops-gpu-alerts", namespace="monitoring").to_dict()["spec"]["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"]}
    assert {"GpuXidCriticalError", "DcgmExporterDown", "VeleroBackupRpoBreach"} <= alerts

    again = run_playbook(PLAYBOOK, *HOSTS, env=env)
    assert again.rc == 0, again
    assert _changed(again) == 0, again


def test_bad_settings_are_refused_before_any_change(sandbox, tmp_path):
    env = dict(sandbox["env"], ANSIBLE_CALLBACK_RESULT_FORMAT="json")  # one line per message
    extra = overlay(
        tmp_path,
        {
            "gpu-a100-01": {
                "monitoring_thresholds": {"gpu_temp_c": 500, "idle_ratio": 2, "temp_for": "five minutes"},
                "monitoring_extra_counters": ["DCGM_FI_DEV_NOPE"],
                "monitoring_namespace": "Monitoring",
                "monitoring_static_targets": [{"address": "no-port", "host": "slurm-01"}],
            }
        },
    )
    run = run_playbook(PLAYBOOK, "-l", "gpu-a100-01", *extra, env=env)
    assert run.rc != 0
    assert "Monitoring settings rejected, nothing changed" in run.stdout, run
    for text in (
        "monitoring_thresholds.gpu_temp_c: 500 is out of range; allowed: 40-120",
        "monitoring_thresholds.idle_ratio: 2 must be a ratio in (0, 1]",
        "monitoring_thresholds.temp_for: 'five minutes' is not a Prometheus duration",
        "monitoring_extra_counters: 'DCGM_FI_DEV_NOPE' is not one of the extra counters",
        "monitoring_namespace: 'Monitoring' is not a DNS-1123 label",
        "monitoring_static_targets[0].address: 'no-port' must be host:port",
    ):
        assert text in run.stdout, (text, run)
    typed = run_playbook(PLAYBOOK, "-l", "gpu-a100-01", "-e", "monitoring_mode=prometheus", env=env)
    assert typed.rc != 0
    assert "monitoring_mode" in typed.stdout and "operator, scrape_config" in typed.stdout, typed
