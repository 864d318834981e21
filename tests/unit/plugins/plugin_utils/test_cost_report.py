"""The cost report's renderings from a real cost_snapshot run over the mixed cluster (a fake
core API serving the fixture objects): CSV, Prometheus text (parsed back by prometheus_client),
and the HTML report in headless Chromium (screenshot not blank, no console message)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.cost import runner
from ansible_collections.gpuops.cluster.plugins.plugin_utils import cost_report

FIXTURES = Path(__file__).resolve().parents[1] / "module_utils" / "cost"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))
from cost_fixtures import mixed_nodes_data, mixed_pods_data  # noqa: E402

PRICE_FILE = {
    "as_of": "2026-11-15",
    "source": "finance sheet",
    "instance_types": {
        "p4d.24xlarge": {"on_demand_hourly": 32.7726, "spot_hourly": 9.8318},
        "m5.xlarge": {"on_demand_hourly": 0.192},
    },
    "node_groups": {"onprem-a100": {"hourly": 6.0, "gpu_hourly": 2.0}, "inference": {"hourly": 4.0, "gpu_hourly": 2.5}},
}
PARAMS = {
    "price_file": "p.yml",
    "page_size": 500,
    "label_keys": ["team"],
    "interruption_tolerant_groups": ["train"],
    "node_group_labels": ["gpuops.io/node-group", "karpenter.sh/nodepool", "eks.amazonaws.com/nodegroup"],
    "split_weights": {"cpu_core_hourly": 0.031611, "memory_gib_hourly": 0.004237, "gpu_hourly": 0.95},
}


class _Response:
    def __init__(self, items):
        self.data = json.dumps({"items": items, "metadata": {}}).encode()


class FakeCore:
    def list_node(self, **kwargs):
        return _Response(mixed_nodes_data())

    def list_pod_for_all_namespaces(self, **kwargs):
        return _Response([p for p in mixed_pods_data() if p["status"]["phase"] not in ("Succeeded", "Failed")])


class Activity:
    """Stands for Prometheus in this pure test (the real one is in the module tests)."""

    def activity(self, window):
        return {"train/llm-0": 0.12, "train/llm-1": 0.8, "serve/api-0": 0.1}

    def fb_used_gib(self, window):
        return {"train/llm-0": 3.5}

    def power_watts(self, window):
        return {}


@pytest.fixture(scope="module")
def snapshot():
    return runner.run(PARAMS, FakeCore, lambda p: PRICE_FILE, prometheus=Activity())


def test_csv_rows(snapshot):
    lines = cost_report.pods_csv(snapshot).strip().split("\n")
    assert lines[0].split(",") == list(cost_report.CSV_COLUMNS)
    assert len(lines) == 1 + snapshot["counts"]["pods"]
    (llm,) = [line for line in lines if ",llm-0," in line]
    assert "nvidia.com/gpu=2" in llm


def test_csv_no_formula_cells():
    snap = {"pods": [{"namespace": "=cmd|' /C calc'!A0", "pod": "p", "hourly": 1.0, "gpu_requests": {}}]}
    assert cost_report.pods_csv(snap).split("\n")[1].startswith("'=cmd")


def test_metrics_parse_back(snapshot):
    from prometheus_client.parser import text_string_to_metric_families

    text = cost_report.metrics_text(snapshot, 'lab "1"\n')
    families = {f.name: f for f in text_string_to_metric_families(text)}
    total = [s for s in families["cluster_cost_usd"].samples if s.labels["component"] == "total"]
    assert total[0].value == pytest.approx(snapshot["totals"]["hourly"])
    assert total[0].labels["cluster"] == 'lab "1"\n'
    namespaces = {s.labels["namespace"]: s.value for s in families["cluster_cost_namespace_usd"].samples}
    assert namespaces["serve"] == pytest.approx(snapshot["by_namespace"]["serve"]["hourly"])
    savings = {s.labels["category"] for s in families["cluster_cost_savings_usd_monthly"].samples}
    assert {"spot", "mig_rightsize"} <= savings
    if shutil.which("promtool"):
        check = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr


def chromium_render(page: Path, out: Path):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium not on PATH (make host-tools)")
    shot = out / (page.stem + ".png")
    run = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={out / ('profile-' + page.stem)}",
            f"--screenshot={shot}",
            "--window-size=1280,2400",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return shot, console


def distinct_colors(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 20) or [])


def test_html_is_deterministic(snapshot):
    assert cost_report.report_html(snapshot) == cost_report.report_html(snapshot)


def test_html_in_headless_chromium(snapshot, tmp_path):
    page = tmp_path / "cost.html"
    page.write_text(cost_report.report_html(snapshot, "GPU cost: lab <1>"))
    text = page.read_text()
    assert "<script" not in text and "lab &lt;1&gt;" in text
    assert text.count("<svg") >= 4  # namespace, team, idle by pool, utilization, MIG
    assert "MIG device: OpenCost counts only nvidia.com/gpu" in text
    shot, console = chromium_render(page, tmp_path)
    assert console == []
    assert shot.is_file() and distinct_colors(shot) > 50


def test_chromium_check_catches_errors(tmp_path):
    """The check above can fail: a page with a script error is caught, a blank page is blank."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>throw new Error('boom')</script></body></html>")
    shot, console = chromium_render(bad, tmp_path)
    assert any("boom" in line for line in console)
    assert distinct_colors(shot) <= 2


def test_recommendation_rows_read_as_actions():
    rec = {
        "category": "reserved",
        "subject": "train (p4d.24xlarge)",
        "action": {
            "role": "gpuops.cluster.autoscaling",
            "node_group": "train",
            "variable": "min_size",
            "value": 2,
            "purchase": {
                "kind": "reserved-instance",
                "instance_type": "p4d.24xlarge",
                "count": 2,
                "term": "1yr",
                "purchase_option": "All Upfront",
                "offering_class": "standard",
                "upfront_total_usd": 337240.0,
            },
        },
        "evidence": {
            "steady_nodes": [{"node": "a", "age_days": 45.0}, {"node": "b", "age_days": 31.5}],
            "on_demand_nodes": 3,
            "min_age_days": 30.0,
            "on_demand_hourly": 32.7726,
            "on_demand_source": "aws-pricing-api (as of 2026-11-01)",
            "commitment": {"term": "1yr", "effective_hourly_usd": 19.2489, "source": "aws-pricing-api", "as_of": "x"},
        },
    }
    change = cost_report.change_text(rec["action"])
    assert change.startswith("Buy 2 x p4d.24xlarge reserved instance (1yr, All Upfront, standard, $337,240.00 upfront)")
    assert "gpuops.cluster.autoscaling: min_size = 2 on node group train" in change
    evidence = cost_report.evidence_text(rec)
    assert evidence.startswith("2 of 3 on-demand nodes up >= 30 d and in use (a 45 d, b 31.5 d)")
    assert "on-demand $32.77/h" in evidence and "1yr effective $19.25/h" in evidence
    mig = {"role": "gpuops.cluster.mig", "node_group": "a100", "variable": "mig_layout", "value": {"1g.10gb": 2}}
    assert cost_report.change_text(dict(mig, then="request nvidia.com/mig-1g.10gb")) == (
        "gpuops.cluster.mig: mig_layout = 1g.10gb: 2 on node group a100; then request nvidia.com/mig-1g.10gb"
    )


def test_pods_at_one_point_share_a_label(snapshot):
    pods = [dict(p) for p in snapshot["pods"]]
    twins = [dict(pods[0], pod="twin-%d" % i, namespace="serve", gpu_activity=0.05, gpu_hourly=0.5) for i in range(3)]
    page = cost_report.report_html(dict(snapshot, pods=pods + twins))
    assert "serve/twin-0 and 2 more" in page and "serve/twin-1" not in page


class EmptyCore(FakeCore):
    def list_pod_for_all_namespaces(self, **kwargs):
        return _Response([])


def test_cluster_without_workloads_reads_plainly():
    empty = runner.run(PARAMS, EmptyCore, lambda p: PRICE_FILE)
    page = cost_report.report_html(empty)
    assert "No pod holds resources" in page
    assert "Cost by namespace" not in page and "Cost by team" not in page  # no empty axes
    assert "Idle GPU cost by pool" in page
    consolidate = [r for r in empty["recommendations"] if r["category"] == "consolidate"]
    assert {r["subject"] for r in consolidate} == {"cloud-od", "cloud-spot", "onprem-a100", "onprem-h100"}
    assert "No GPU pods." in page and "0 of 8 GPUs allocated, 0 CPU cores requested" in page
