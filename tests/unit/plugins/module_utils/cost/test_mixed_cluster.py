"""The mixed cluster of issue 14 section 3: every expected dollar figure is derived here from
the quotes and the allocation rules (written out again, independently of the code)."""

# Fixtures are imported (a conftest.py here would shadow `from conftest import` elsewhere), so
# test arguments named after them look like redefinitions to ruff.
# ruff: noqa: F811

import json
from datetime import datetime, timezone

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.cost import (
    allocation,
    nodes,
    opencost,
    prices,
    rollup,
    tco,
)
from cost_cluster_fixtures import mixed_nodes, mixed_pods  # noqa: F401  pylint: disable=unused-import
from cost_fixtures import P4D_PRICE_ITEM

C, R, G = 0.031611, 0.004237, 0.95  # the split weights given (OpenCost's default.json values)
WEIGHTS = allocation.split_weights(
    {"cpu_core_hourly": C, "memory_gib_hourly": R, "gpu_hourly": G, "source": "OpenCost default.json"}
)
A100_TCO = {
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
    "opex_usd_per_year": 3000,
    "rack_usd_per_month": 200,
}
H100_TCO = {
    "as_of": "2026-10-01",
    "source": "PO 4712",
    "server_capex_usd": 30000,
    "gpu_capex_usd": 30000,
    "gpus_per_server": 1,
    "amortization_years": 4,
    "gpu_tdp_watts": 700,
    "server_base_watts": 600,
    "usd_per_kwh": 0.12,
    "pue": 1.4,
    "opex_usd_per_year": 2000,
    "rack_usd_per_month": 150,
}
SPOT_HISTORY = [
    {
        "AvailabilityZone": "us-east-1a",
        "InstanceType": "p4d.24xlarge",
        "ProductDescription": "Linux/UNIX",
        "SpotPrice": "10.500000",
        "Timestamp": datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc),
    },
    {
        "AvailabilityZone": "us-east-1a",
        "InstanceType": "p4d.24xlarge",
        "ProductDescription": "Linux/UNIX",
        "SpotPrice": "9.831800",
        "Timestamp": datetime(2026, 11, 30, 22, 0, tzinfo=timezone.utc),
    },
    {
        "AvailabilityZone": "us-east-1b",
        "InstanceType": "p4d.24xlarge",
        "ProductDescription": "Linux/UNIX",
        "SpotPrice": "11.200000",
        "Timestamp": datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc),
    },
]
PRICE_FILE = {
    "as_of": "2026-11-15",
    "source": "finance sheet",
    "instance_types": {"m5.xlarge": {"on_demand_hourly": 0.192}},
}


def tco_hourly(p):
    """The TCO rule written out: (capex / hours) + power x $/kWh x PUE + opex and space."""
    hours = p["amortization_years"] * 8760
    gpu_each = p["gpu_capex_usd"] / hours + p["gpu_tdp_watts"] / 1000 * p["usd_per_kwh"] * p["pue"]
    rest = (
        p["server_capex_usd"] / hours
        + p["server_base_watts"] / 1000 * p["usd_per_kwh"] * p["pue"]
        + p["opex_usd_per_year"] / 8760
        + p["rack_usd_per_month"] * 12 / 8760
    )
    return gpu_each * p["gpus_per_server"] + rest, gpu_each


@pytest.fixture
def quotes():
    od = prices.parse_price_list("p4d.24xlarge", [json.dumps(P4D_PRICE_ITEM)])
    spot = prices.parse_spot_history(SPOT_HISTORY)["p4d.24xlarge"]["us-east-1a"]
    file_quotes = prices.parse_price_file(PRICE_FILE)
    return {
        "cloud-od": od,
        "cloud-spot": spot,
        "onprem-a100": tco.tco_quote(tco.validate_tco(A100_TCO, "tco.onprem-a100")),
        "onprem-h100": tco.tco_quote(tco.validate_tco(H100_TCO, "tco.inference")),
        "cpu-1": file_quotes["instance_types"]["m5.xlarge"]["on-demand"],
    }


@pytest.fixture
def result(mixed_nodes, mixed_pods, quotes):
    facts = [nodes.node_facts(n) for n in mixed_nodes]
    pods = [nodes.pod_facts(p) for p in mixed_pods]
    return facts, pods, allocation.allocate(facts, pods, quotes, WEIGHTS)


def pod_row(alloc, name):
    (row,) = [r for r in alloc["pods"] if r["pod"] == name]
    return row


def test_quotes_are_dated_and_sourced(quotes):
    assert quotes["cloud-od"].hourly_usd == 32.7726
    assert quotes["cloud-od"].source == "aws-pricing-api" and quotes["cloud-od"].as_of == "2026-11-01T00:00:00Z"
    # the newest entry of the node's zone, not the older nor the other zone's
    assert quotes["cloud-spot"].hourly_usd == 9.8318 and quotes["cloud-spot"].as_of == "2026-11-30T22:00:00Z"
    assert quotes["cloud-spot"].zone == "us-east-1a"
    assert quotes["cpu-1"].source == "price-file: finance sheet" and quotes["cpu-1"].as_of == "2026-11-15"
    total, gpu_each = tco_hourly(A100_TCO)
    assert quotes["onprem-a100"].hourly_usd == pytest.approx(total)
    assert quotes["onprem-a100"].gpu_hourly_usd == pytest.approx(gpu_each)
    assert quotes["onprem-a100"].as_of == "2026-10-01" and "PO 4711" in quotes["onprem-a100"].source


def test_whole_gpus_on_demand_and_spot(result):
    _facts, _rows, alloc = result
    for node, price, pods in (("cloud-od", 32.7726, ("llm-0", "llm-1")), ("cloud-spot", 9.8318, ("sweep-0",))):
        ram = price / (8 * G / R + 96 * C / R + 1152)
        gpu_each = ram * G / R
        row = alloc["nodes"][node]
        assert row["gpu_each_hourly"] == pytest.approx(gpu_each)
        assert row["gpu_hourly"] + row["cpu_hourly"] + row["memory_hourly"] == pytest.approx(price)
        used = 0
        for name in pods:
            p = pod_row(alloc, name)
            gpus = p["gpu_requests"]["nvidia.com/gpu"]
            used += gpus
            assert p["gpu_hourly"] == pytest.approx(gpus * gpu_each)
            cpu = {"llm-0": 12, "llm-1": 12, "sweep-0": 24}[name]
            mem = {"llm-0": 144, "llm-1": 144, "sweep-0": 288}[name]
            assert p["cpu_hourly"] == pytest.approx(cpu * ram * C / R)
            assert p["memory_hourly"] == pytest.approx(mem * ram)
        assert row["idle"]["gpu_hourly"] == pytest.approx((8 - used) * gpu_each)
    # A finished pod holds nothing.
    assert not [r for r in alloc["pods"] if r["pod"] == "done"]


def test_mig_slices_by_compute_share(result):
    _facts, _rows, alloc = result
    total, gpu_each = tco_hourly(A100_TCO)
    ram = (total - 2 * gpu_each) / (64 * C / R + 512)
    assert pod_row(alloc, "notebook-a")["gpu_hourly"] == pytest.approx(gpu_each * 3 / 7)
    assert pod_row(alloc, "notebook-b")["gpu_hourly"] == pytest.approx(gpu_each * 1 / 7)
    assert pod_row(alloc, "finetune")["gpu_hourly"] == pytest.approx(gpu_each)
    assert pod_row(alloc, "notebook-a")["cpu_hourly"] == pytest.approx(4 * ram * C / R)
    assert pod_row(alloc, "notebook-a")["memory_hourly"] == pytest.approx(32 * ram)
    node = alloc["nodes"]["onprem-a100"]
    idle = node["idle"]["gpu_by_resource_hourly"]
    assert idle["nvidia.com/mig-2g.10gb"] == pytest.approx(gpu_each * 2 / 7)
    assert idle["nvidia.com/mig-1g.5gb"] == pytest.approx(gpu_each * 1 / 7)
    assert idle["nvidia.com/mig-3g.20gb"] == 0 and idle["nvidia.com/gpu"] == 0
    assert node["idle"]["gpu_unpartitioned_hourly"] == pytest.approx(0, abs=1e-12)
    assert node["mig_slices"] == {"total": 14, "configured": 7, "allocated": 4}


def test_unpartitioned_slices_are_idle(mixed_nodes, quotes):
    a100 = mixed_nodes[2]
    del a100["status"]["allocatable"]["nvidia.com/mig-2g.10gb"]  # 2 slices in no instance
    facts = [nodes.node_facts(a100)]
    alloc = allocation.allocate(facts, [], {"onprem-a100": quotes["onprem-a100"]}, WEIGHTS)
    _server_hourly, gpu_each = tco_hourly(A100_TCO)
    assert alloc["nodes"]["onprem-a100"]["idle"]["gpu_unpartitioned_hourly"] == pytest.approx(gpu_each * 2 / 7)
    assert alloc["nodes"]["onprem-a100"]["idle"]["gpu_hourly"] == pytest.approx(2 * gpu_each)


def test_time_slicing_by_replicas(result):
    _facts, _rows, alloc = result
    _server_hourly, gpu_each = tco_hourly(H100_TCO)
    for name in ("api-0", "api-1", "api-2"):
        assert pod_row(alloc, name)["gpu_hourly"] == pytest.approx(gpu_each / 4)
        assert pod_row(alloc, name)["gpu_kind"] == "whole-time-slicing"
    node = alloc["nodes"]["onprem-h100"]
    assert node["units"]["nvidia.com/gpu"]["idle"] == 1
    assert node["idle"]["gpu_hourly"] == pytest.approx(gpu_each / 4)


def test_rollups_and_totals(result, quotes):
    _facts, _rows, alloc = result
    summary = rollup.rollup(alloc, ["team"])
    expected_total = sum(q.hourly_usd for q in quotes.values())
    assert summary["totals"]["hourly"] == pytest.approx(expected_total, abs=1e-5)
    assert summary["totals"]["monthly"] == pytest.approx(expected_total * 730, abs=1e-3)
    web = sum(pod_row(alloc, n)["hourly"] for n in ("api-0", "api-1", "api-2"))
    assert summary["by_label"]["team"]["web"]["hourly"] == pytest.approx(web, abs=1e-5)
    assert summary["by_namespace"]["serve"]["hourly"] == pytest.approx(web, abs=1e-5)
    assert summary["by_namespace"]["kube-system"]["gpu_hourly"] == 0
    assert summary["by_label"]["team"]["(unlabelled)"]["pods"] == 1
    groups = summary["by_node_group"]
    assert set(groups) == {"train", "batch", "onprem-a100", "inference", "system"}
    assert groups["train"]["hourly"] == pytest.approx(32.7726)
    # allocated + idle = everything
    idle = summary["idle"]
    allocated = sum(r["hourly"] for r in alloc["pods"])
    assert allocated + idle["gpu_hourly"] + idle["cpu_hourly"] + idle["memory_hourly"] == pytest.approx(
        expected_total, abs=1e-4
    )
    _server_hourly, h100_each = tco_hourly(H100_TCO)
    assert idle["gpu_by_kind_hourly"]["whole-time-slicing"] == pytest.approx(h100_each / 4, abs=1e-6)


def test_side_by_side_with_opencost(result):
    facts, pods, alloc = result
    compared = {r["pod"]: r for r in opencost.compare(facts, pods, alloc, WEIGHTS)["pods"]}
    # whole GPUs priced from the node price: OpenCost's formula gives the same
    for name in ("llm-0", "llm-1", "sweep-0", "finetune"):
        assert compared[name]["equal"], compared[name]
    # MIG: OpenCost counts only nvidia.com/gpu, a slice costs nothing there
    assert compared["notebook-a"]["opencost_gpu_hourly"] == 0
    assert "MIG" in compared["notebook-a"]["reason"]
    # time-slicing without renameByDefault: each replica is a whole GPU to OpenCost
    _server_hourly, h100_each = tco_hourly(H100_TCO)
    assert compared["api-0"]["opencost_gpu_hourly"] == pytest.approx(h100_each)
    assert compared["api-0"]["ours_gpu_hourly"] == pytest.approx(h100_each / 4)
    assert "renameByDefault" in compared["api-0"]["reason"]


def test_opencost_ratio_formula_without_gpu_price(mixed_nodes):
    """OpenCost's costmodel.go formula on a node with no GPU price, written out."""
    fact = nodes.node_facts(mixed_nodes[0])
    price = opencost.opencost_gpu_price(fact, 32.7726, WEIGHTS)
    assert price == pytest.approx(32.7726 / (8 * G / R + 96 * C / R + 1152) * G / R)


def test_opencost_csv_from_tco(quotes, mixed_nodes):
    text = tco.opencost_csv({"onprem-a100": quotes["onprem-a100"]}, {"onprem-a100": ("NVIDIA-A100-SXM4-40GB", 2)})
    lines = text.strip().split("\n")
    assert (
        lines[0] == "EndTimestamp,InstanceID,Region,AssetClass,InstanceIDField,InstanceType,MarketPriceHourly,Version"
    )
    total, gpu_each = tco_hourly(A100_TCO)
    node = lines[1].split(",")
    assert node[1:5] == ["onprem-a100", "", "node", "metadata.name"]
    assert float(node[6]) == pytest.approx(total - 2 * gpu_each, abs=1e-6)
    gpu = lines[2].split(",")
    assert gpu[1] == "NVIDIA-A100-SXM4-40GB" and gpu[3:5] == ["gpu", "nvidia.com/gpu.product"]
    assert float(gpu[6]) == pytest.approx(gpu_each, abs=1e-6)


def test_measured_power_replaces_tdp():
    params = tco.validate_tco(H100_TCO, "tco")
    measured = tco.tco_quote(params, measured_gpu_watts=350.0)
    at_tdp = tco.tco_quote(params)
    assert at_tdp.hourly_usd - measured.hourly_usd == pytest.approx((700 - 350) / 1000 * 0.12 * 1.4)
    assert "measured" in measured.source
