"""The monitoring role's alerts and dashboards against a real Prometheus (Debian's package)
scraping the DCGM-exporter-shaped endpoints of the whole sandbox fleet (sandbox/metrics), the
exporter configured with the counters CSV the role writes:

- every dashboard query returns data;
- every series selector of every alert returns data, except the fields the NVML simulator does
  not model and the Velero / Karpenter metrics other stand-ins serve (an exact, asserted list);
- the GPU lost on gpu-a100-02 fires GpuXidCriticalError, and the host whose driver is not
  loaded (gpu-new-01) has DcgmExporterDown pending."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.filter.monitoring import monitoring_plan
from ansible_collections.gpuops.cluster.plugins.plugin_utils.monitoring_dashboards import (
    dashboard_queries,
    dashboards,
)

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "sandbox" / "metrics"))

from gpuops_metrics.exporter import FleetExporter  # noqa: E402
from gpuops_metrics.fields import NOT_MODELLED, parse_counters  # noqa: E402
from gpuops_metrics.prometheus import PrometheusServer, find_binary  # noqa: E402

pytestmark = pytest.mark.skipif(find_binary() is None, reason="prometheus not on PATH (make host-tools installs it)")

INVENTORY = ROOT / "inventories" / "sandbox"
SELECTOR = re.compile(r"\b((?:DCGM_|velero_|karpenter_)\w+)(\{[^}]*\})?")
# Served by the Velero and Karpenter stand-ins, not by the DCGM exporter.
OTHER_EXPORTERS = {
    "velero_backup_last_successful_timestamp",
    "karpenter_nodepools_usage",
    "karpenter_nodepools_limit",
}


def default_spec():
    defaults = yaml.safe_load((ROOT / "roles/monitoring/defaults/main.yml").read_text())
    return {key[len("monitoring_") :]: value for key, value in defaults.items() if key.startswith("monitoring_")}


def sandbox_fleet():
    """host -> (fixture, node group) from the sandbox inventory's files."""
    hosts = yaml.safe_load((INVENTORY / "hosts.yml").read_text())["all"]["children"]["gpu_nodes"]["children"]
    fleet = {}
    for group, entry in hosts.items():
        for host in entry["hosts"]:
            host_vars = yaml.safe_load((INVENTORY / "host_vars" / f"{host}.yml").read_text())
            fleet[host] = (host_vars["gpuops_sandbox_fixture"], group)
    return fleet


def _pod(name, namespace, resource, device_id):
    return {
        "name": name,
        "namespace": namespace,
        "containers": [{"name": "main", "devices": [{"resource_name": resource, "device_ids": [device_id]}]}],
    }


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    base = tmp_path_factory.mktemp("live")
    fleet = sandbox_fleet()
    (base / "fleet.yml").write_text(
        json.dumps({"hosts": {host: fixture for host, (fixture, _unused) in fleet.items()}})
    )
    subprocess.run(
        [sys.executable, "-m", "gpuops_sim", "fleet-up", "--fleet", str(base / "fleet.yml")]
        + ["--fixtures", str(ROOT / "sandbox/fixtures"), "--dir", str(base)],
        env={"PYTHONPATH": str(ROOT / "sandbox" / "python"), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    plan = monitoring_plan(default_spec(), [])
    counters = plan["objects"][0]["data"]["dcgm-metrics.csv"]
    exporter = FleetExporter.start(base, fields=parse_counters(counters, "role counters"))
    # What kubelets would list: a training job on gpu-h100-02's 3g.40gb MIG instance, an
    # inference server on its GPU 3, a notebook on a gpu-a100-01 GPU.
    h100 = exporter.servers["gpu-h100-02"].exporter.collector
    _unused, entities = h100.collect()
    mig_entity = next((e for e in entities if e.mig_profile == "3g.40gb"), None)
    whole_entity = next((e for e in entities if e.gpu == 3 and e.mig_profile is None), None)
    assert mig_entity is not None and whole_entity is not None
    mig, whole = mig_entity.device_ids[0], whole_entity.uuid
    (base / "hosts/gpu-h100-02/pod-resources.json").write_text(
        json.dumps(
            {
                "pod_resources": [
                    _pod("trainer-0", "ml", "nvidia.com/mig-3g.40gb", mig),
                    _pod("triton-0", "serving", "nvidia.com/gpu", whole),
                ]
            }
        )
    )
    _unused, a100 = exporter.servers["gpu-a100-01"].exporter.collector.collect()
    (base / "hosts/gpu-a100-01/pod-resources.json").write_text(
        json.dumps({"pod_resources": [_pod("lab-0", "research", "nvidia.com/gpu", a100[0].uuid)]})
    )
    rules = base / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": plan["rule_groups"]}, sort_keys=False))
    scrape = {
        "job_name": default_spec()["exporter_job"],
        "static_configs": [
            {"targets": [target], "labels": {"node": host, "node_group": fleet[host][1]}}
            for host, target in sorted(exporter.targets.items())
        ],
    }
    server = PrometheusServer.start(base / "prom", [scrape], rule_files=[str(rules)])
    try:
        # Two scrapes of every target at least (rate/increase need two samples).
        server.wait_for(
            'min(count_over_time(up{job="nvidia-dcgm-exporter"}[1m])) >= 3'
            ' and count(up{job="nvidia-dcgm-exporter"}) == %d' % len(exporter.targets),
            timeout=60,
        )
        yield server, plan
    finally:
        server.stop()
        exporter.stop()


def test_every_dashboard_query_returns_data(prometheus):
    server, _unused = prometheus
    queries = dashboard_queries(dashboards(dict(default_spec(), exporter_job="nvidia-dcgm-exporter")))
    assert len(queries) == 21
    empty = [(uid, title) for uid, title, expr in queries if not server.query(expr)]
    assert empty == []


def test_every_alert_selector_returns_data_but_the_unmodelled(prometheus):
    server, plan = prometheus
    missing = set()
    checked = 0
    for group in plan["rule_groups"]:
        for rule in group["rules"]:
            server.query(rule["expr"])  # evaluates (raises on a PromQL error)
            for name, matchers in SELECTOR.findall(rule["expr"]):
                checked += 1
                if not server.query("count(%s%s)" % (name, matchers)):
                    missing.add(name)
    assert checked > 30
    nvlink = {name for name in NOT_MODELLED if name.startswith("DCGM_FI_DEV_NVLINK_") and "ERROR" in name}
    assert missing == OTHER_EXPORTERS | nvlink | {"DCGM_FI_DEV_MEMORY_TEMP"}


def test_lost_gpu_fires_and_dead_exporter_is_pending(prometheus):
    server, _unused = prometheus
    firing = server.wait_for('ALERTS{alertname="GpuXidCriticalError",alertstate="firing"}', timeout=30)
    assert [(a["metric"]["host"], a["metric"]["gpu"], a["metric"]["severity"]) for a in firing] == [
        ("gpu-a100-02", "3", "critical")
    ]
    down = server.wait_for('ALERTS{alertname="DcgmExporterDown"}', timeout=30)
    assert [(a["metric"]["node"], a["metric"]["alertstate"]) for a in down] == [("gpu-new-01", "pending")]
    assert not server.query('ALERTS{alertname=~"GpuXidError|GpuRowRemapFailure|GpuEccDoubleBitErrors"}')
