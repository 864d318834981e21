"""cost_snapshot against the Kubernetes API stand-in: the real kubernetes client, paginated
listing, the same dollars as the pure allocation of the same objects; the module through
ansible-playbook (check mode is the same run); Prometheus (real server) scraping a
dcgm-exporter-shaped endpoint served here; Cost Explorer through moto's server."""

# Fixtures are imported (a conftest.py here would shadow `from conftest import` elsewhere), so
# test arguments named after them look like redefinitions to ruff.
# ruff: noqa: F811

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.cost import allocation, nodes, prices, runner, tco
from ansible_collections.gpuops.cluster.plugins.module_utils.cost.prometheus import Prometheus

# cost_standin puts the fixtures' folder on sys.path (so this file also runs alone).
from cost_standin import REPO, mixed_nodes_data, mixed_pods_data, standin  # noqa: F401  pylint: disable=unused-import

WEIGHTS = {
    "cpu_core_hourly": 0.031611,
    "memory_gib_hourly": 0.004237,
    "gpu_hourly": 0.95,
    "source": "OpenCost defaults",
}
PRICE_FILE = {
    "as_of": "2026-11-15",
    "source": "finance sheet",
    "instance_types": {
        "p4d.24xlarge": {"on_demand_hourly": 32.7726, "spot_hourly": 9.8318},
        "m5.xlarge": {"on_demand_hourly": 0.192},
    },
}
TCO = {
    "onprem-a100": {
        "as_of": "2026-10-01",
        "source": "PO 4711",
        "server_capex_usd": 40000,
        "gpu_capex_usd": 15000,
        "gpus_per_server": 2,
        "amortization_years": 4,
        "gpu_tdp_watts": 400,
        "server_base_watts": 800,
        "usd_per_kwh": 0.12,
        "pue": 1.4,
    },
    "inference": {
        "as_of": "2026-10-01",
        "source": "PO 4712",
        "server_capex_usd": 30000,
        "gpu_capex_usd": 30000,
        "gpus_per_server": 1,
        "amortization_years": 4,
        "gpu_tdp_watts": 700,
        "usd_per_kwh": 0.12,
        "pue": 1.4,
    },
}


def params(**extra):
    base = {
        "price_file": "prices.yml",
        "split_weights": WEIGHTS,
        "onprem_tco": TCO,
        "label_keys": ["team"],
        "node_group_labels": list(nodes.DEFAULT_GROUP_LABELS),
        "page_size": 2,
        "prometheus_window": "1h",
        "low_activity": 0.3,
        "interruption_tolerant_groups": ["train"],
    }
    base.update(extra)
    return base


class CountingCore:
    """The real CoreV1Api, counting its list calls (to see the pagination happen)."""

    def __init__(self, core):
        self.core, self.calls = core, []

    def list_node(self, **kwargs):
        self.calls.append(("nodes", kwargs.get("_continue")))
        return self.core.list_node(**kwargs)

    def list_pod_for_all_namespaces(self, **kwargs):
        self.calls.append(("pods", kwargs.get("_continue")))
        return self.core.list_pod_for_all_namespaces(**kwargs)


def expected_allocation():
    facts = [nodes.node_facts(n) for n in mixed_nodes_data()]
    pods = [nodes.pod_facts(p) for p in mixed_pods_data()]
    file_quotes = prices.parse_price_file(PRICE_FILE)["instance_types"]
    quotes = {
        "cloud-od": file_quotes["p4d.24xlarge"]["on-demand"],
        "cloud-spot": file_quotes["p4d.24xlarge"]["spot"],
        "cpu-1": file_quotes["m5.xlarge"]["on-demand"],
        "onprem-a100": tco.tco_quote(tco.validate_tco(TCO["onprem-a100"], "t")),
        "onprem-h100": tco.tco_quote(tco.validate_tco(TCO["inference"], "t")),
    }
    return allocation.allocate(facts, pods, quotes, allocation.split_weights(WEIGHTS))


def test_snapshot_paginated_matches_pure_allocation(standin):
    core = CountingCore(standin.core())
    result = runner.run(params(), lambda: core, lambda path: PRICE_FILE)
    assert result["changed"] is False
    # 5 nodes in pages of 2 -> 3 calls; 10 holding pods (the Succeeded one filtered) -> 5 calls
    assert [c for c in core.calls if c[0] == "nodes"][1][1] is not None
    assert len([c for c in core.calls if c[0] == "nodes"]) == 3
    assert len([c for c in core.calls if c[0] == "pods"]) == 5
    assert result["counts"] == {"nodes": 5, "pods": 10, "gpus": 8 + 8 + 2 + 1}
    expected = expected_allocation()
    for row in result["pods"]:
        (want,) = [p for p in expected["pods"] if p["pod"] == row["pod"]]
        assert row["hourly"] == pytest.approx(want["hourly"], abs=1e-6)
        assert row["gpu_hourly"] == pytest.approx(want["gpu_hourly"], abs=1e-6)
    total = sum(n["hourly"] for n in expected["nodes"].values())
    assert result["totals"]["hourly"] == pytest.approx(total, abs=1e-5)
    assert "price-file: finance sheet (as of 2026-11-15)" in result["price_sources"]
    assert any(s.startswith("onprem-tco: PO 4711") for s in result["price_sources"])
    spot = [r for r in result["recommendations"] if r["category"] == "spot"]
    assert spot and spot[0]["savings_monthly"] == pytest.approx((32.7726 - 9.8318) * 730, abs=1e-3)
    assert result["opencost_comparison"]["differing"] == 5  # 2 MIG pods + 3 time-sliced replicas
    assert result["opencost_pricing_csv"].count("\n") == 1 + 2 + 2  # header, 2 nodes, 2 GPU products


class GonePodPrometheus:
    """Prometheus keeps a deleted pod's series for the whole window: activity names it too."""

    def __init__(self, live_pod_key):
        self.live = live_pod_key

    def activity(self, window_seconds):
        return {self.live: 0.5, "training/replaced-pod-abc12": 0.9}

    def fb_used_gib(self, window_seconds):
        return {}

    def power_watts(self, window_seconds):
        return {}


def test_activity_of_pods_no_longer_in_the_cluster_is_not_counted(standin):
    # A pod replaced within the window (its series still in Prometheus) must not change the
    # report of an unchanged cluster: only the cluster's own pods count.
    live = "%s/%s" % (mixed_pods_data()[0]["metadata"]["namespace"], mixed_pods_data()[0]["metadata"]["name"])
    result = runner.run(params(), standin.core, lambda path: PRICE_FILE, prometheus=GonePodPrometheus(live))
    assert result["prometheus"]["pods_with_activity"] == 1


def test_selector_narrows_nodes(standin):
    result = runner.run(
        params(node_selector="karpenter.sh/capacity-type in (spot)"), standin.core, lambda p: PRICE_FILE
    )
    assert result["counts"]["nodes"] == 1 and [n["name"] for n in result["nodes"]] == ["cloud-spot"]


def test_bad_option_fails_before_any_read(standin):
    def no_cluster():
        raise AssertionError("the cluster was read")

    with pytest.raises(Exception, match="prometheus_window"):
        runner.run(params(prometheus_window="1week"), no_cluster, lambda p: PRICE_FILE)


def test_module_through_ansible_check_mode_same(standin, tmp_path):
    (tmp_path / "prices.yml").write_text(json.dumps(PRICE_FILE))
    args = dict(params(price_file=str(tmp_path / "prices.yml")), kubeconfig=str(standin.kubeconfig))
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        textwrap.dedent(f"""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - gpuops.cluster.cost_snapshot: {json.dumps(args)}
              register: real
            - gpuops.cluster.cost_snapshot: {json.dumps(args)}
              register: checked
              check_mode: true
            - gpuops.cluster.cost_snapshot: {json.dumps(dict(args, low_activity=2))}
              register: bad
              ignore_errors: true
            - ansible.builtin.copy:
                content: "{{{{ {{'real': real, 'checked': checked, 'bad': bad}} | to_json }}}}"
                dest: {tmp_path / "out.json"}
        """)
    )
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    env.pop("KUBECONFIG", None)
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    out = json.loads((tmp_path / "out.json").read_text())
    real, checked, bad = out["real"], out["checked"], out["bad"]
    assert real["changed"] is False and checked["changed"] is False
    assert real["totals"] == checked["totals"] and real["by_namespace"] == checked["by_namespace"]
    assert bad["failed"] and bad["msg"].startswith("low_activity: must be <= 1.0")


def dcgm_endpoint():
    """A dcgm-exporter-shaped /metrics (names and labels as dcgm-exporter publishes them)."""
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    labels = ["gpu", "UUID", "device", "modelName", "Hostname", "container", "namespace", "pod"]
    active = Gauge(
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "Ratio of time the graphics engine is active.", labels, registry=registry
    )
    fb = Gauge("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", labels, registry=registry)
    power = Gauge("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", labels, registry=registry)
    model = "NVIDIA A100-SXM4-40GB"
    for gpu, pod_name, value, used in (
        (0, "llm-0", 0.12, 6000),
        (1, "llm-0", 0.12, 6000),
        (2, "llm-1", 0.85, 30000),
        (3, "llm-1", 0.85, 30000),
    ):
        series = (str(gpu), f"GPU-od-{gpu}", f"nvidia{gpu}", model, "cloud-od", "main", "train", pod_name)
        active.labels(*series).set(value)
        fb.labels(*series).set(used)
        power.labels(*series).set(300)
    for gpu in (0, 1):  # on-prem A100 node: measured 250 W per GPU instead of the 400 W TDP
        power.labels(str(gpu), f"GPU-a100-{gpu}", f"nvidia{gpu}", model, "onprem-a100", "", "", "").set(250)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    return server, thread


@pytest.mark.skipif(not __import__("shutil").which("prometheus"), reason="prometheus not on PATH (make host-tools)")
def test_prometheus_activity_and_power(standin, tmp_path):
    from gpuops_metrics.prometheus import PrometheusServer

    server, _thread = dcgm_endpoint()
    prom = None
    try:
        port = server.server_address[1]
        prom = PrometheusServer.start(
            tmp_path / "prom", [{"job_name": "dcgm", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]
        )
        prom.wait_for('DCGM_FI_DEV_POWER_USAGE{Hostname="onprem-a100"}')
        result = runner.run(params(), standin.core, lambda p: PRICE_FILE, prometheus=Prometheus(prom.url))
    finally:
        if prom is not None:
            prom.stop()
        server.shutdown()
    pods = {p["pod"]: p for p in result["pods"]}
    assert pods["llm-0"]["gpu_activity"] == pytest.approx(0.12)
    assert pods["llm-0"]["gpu_unused_hourly"] == pytest.approx(pods["llm-0"]["gpu_hourly"] * 0.88, abs=1e-5)
    assert result["idle"]["gpu_allocated_unused_hourly"] == pytest.approx(
        pods["llm-0"]["gpu_hourly"] * 0.88 + pods["llm-1"]["gpu_hourly"] * 0.15, abs=1e-5
    )
    (rightsize,) = [r for r in result["recommendations"] if r["category"] == "mig_rightsize"]
    # 0.12 x 7 -> 1 slice; 6000 MiB = 5.86 GiB used: 1g.5gb (4.75 GiB) too small -> 1g.10gb
    assert rightsize["subject"] == "train/llm-0" and rightsize["action"]["value"] == {"1g.10gb": 2}
    a100 = next(n for n in result["nodes"] if n["name"] == "onprem-a100")
    at_tdp = tco.tco_quote(tco.validate_tco(TCO["onprem-a100"], "t"))
    assert at_tdp.hourly_usd - a100["hourly"] == pytest.approx((800 - 500) / 1000 * 0.12 * 1.4, abs=1e-5)
    assert "measured GPU power" in a100["price"]["source"]


def test_cost_explorer_cross_check_through_moto(standin):
    import urllib.request

    import boto3
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"

        def day(d, team, amount):
            return {
                "TimePeriod": {"Start": d, "End": d},
                "Total": {},
                "Estimated": False,
                "Groups": [
                    {"Keys": [f"team${team}"], "Metrics": {"UnblendedCost": {"Amount": str(amount), "Unit": "USD"}}}
                ],
            }

        queued = {
            "results": [
                {
                    "ResultsByTime": [day("2026-11-01", "ml", 100.5), day("2026-11-02", "ml", 99.5)],
                    "NextPageToken": "p2",
                },
                {"ResultsByTime": [day("2026-11-02", "web", 12.25)]},
            ]
        }
        request = urllib.request.Request(
            f"{endpoint}/moto-api/static/ce/cost-and-usage-results",
            data=json.dumps(queued).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )

        def client(service, region=None):
            return session.client(service, endpoint_url=endpoint)

        ce = {"start": "2026-11-01", "end": "2026-11-03", "tag_key": "team"}
        result = runner.run(params(cost_explorer=ce), standin.core, lambda p: PRICE_FILE, aws_client=client)
    finally:
        moto.stop()
    assert result["cost_explorer"]["by_tag"] == {"ml": 200.0, "web": 12.25}
    assert result["cost_explorer"]["total"] == 212.25
