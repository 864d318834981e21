"""Bad inputs: each rejected before any work, the error naming the field and what is allowed."""

import copy

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.cost import options, prices
from ansible_collections.gpuops.cluster.plugins.module_utils.cost._common import CostInputError

WEIGHTS = {"cpu_core_hourly": 0.031611, "memory_gib_hourly": 0.004237, "gpu_hourly": 0.95}
TCO = {
    "as_of": "2026-10-01",
    "source": "PO 1",
    "server_capex_usd": 40000,
    "gpu_capex_usd": 15000,
    "gpus_per_server": 8,
    "amortization_years": 4,
    "usd_per_kwh": 0.12,
}
GOOD = {
    "price_file": "/tmp/prices.yml",
    "split_weights": WEIGHTS,
    "onprem_tco": {"onprem": TCO},
    "label_keys": ["team", "example.com/cost-center"],
    "node_group_labels": ["karpenter.sh/nodepool"],
    "node_groups": {"onprem": ["gpu-a", "gpu-b"]},
    "node_selector": "nvidia.com/gpu.present=true,tier in (a, b),!spot",
    "prometheus_url": "http://127.0.0.1:9090",
    "prometheus_window": "1h",
    "low_activity": 0.3,
    "page_size": 500,
    "cost_explorer": {"start": "2026-11-01", "end": "2026-12-01", "tag_key": "team"},
}


def with_change(path, value):
    params = copy.deepcopy(GOOD)
    target = params
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return params


OPTION_CASES = [
    (("prometheus_window",), "1 hour", "prometheus_window", "m, h or d"),
    (("prometheus_window",), "0h", "prometheus_window", "m, h or d"),
    (("prometheus_window",), "1m", "prometheus_window", "between 5m and 90d"),
    (("prometheus_window",), "100d", "prometheus_window", "between 5m and 90d"),
    (("prometheus_window",), "1h; drop", "prometheus_window", "duration"),
    (("node_selector",), "tier in (a, b", "node_selector", "unbalanced"),
    (("node_selector",), "a==b==c", "node_selector", "key=value"),
    (("node_selector",), "!tier=x", "node_selector", "bare key"),
    (("node_selector",), "tier=bad value!", "node_selector", "key=value"),
    (("pod_selector",), 42, "pod_selector", "selector string"),
    (("label_keys", 0), "Team Name", "label_keys[0]", "label key"),
    (("label_keys", 1), "", "label_keys[1]", "label key"),
    (("node_group_labels", 0), "x" * 64, "node_group_labels[0]", "name <= 63"),
    (("node_groups", "onprem"), "gpu-a", "node_groups.onprem", "list of node names"),
    (("node_groups", "other"), ["gpu-a"], "node_groups.other", "already in node group onprem"),
    (("node_groups", "onprem"), ["GPU_A"], "node_groups.onprem", "node name"),
    (("page_size",), 0, "page_size", "1..10000"),
    (("page_size",), True, "page_size", "1..10000"),
    (("prometheus_url",), "ftp://host", "prometheus_url", "http:// or https://"),
    (("prometheus_url",), "http://h:9090/?q=1", "prometheus_url", "without query"),
    (("low_activity",), 1.5, "low_activity", "<= 1.0"),
    (("low_activity",), 0, "low_activity", "> 0.0"),
    (("low_activity",), "much", "low_activity", "number"),
    (("split_weights", "memory_gib_hourly"), 0, "split_weights.memory_gib_hourly", "> 0.0"),
    (("split_weights", "gpu"), 1, "split_weights.gpu", "allowed: cpu_core_hourly"),
    (("split_weights",), KeyError, "split_weights", "mapping"),
    (("onprem_tco", "onprem", "amortization_years"), 0, "onprem_tco.onprem.amortization_years", "> 0.0"),
    (("onprem_tco", "onprem", "pue"), 0.8, "onprem_tco.onprem.pue", ">= 1.0"),
    (("onprem_tco", "onprem", "usd_per_kwh"), -0.1, "onprem_tco.onprem.usd_per_kwh", ">= 0.0"),
    (("onprem_tco", "onprem", "gpus_per_server"), 2.5, "onprem_tco.onprem.gpus_per_server", "integer 0..16"),
    (("onprem_tco", "onprem", "gpu_capex_usd"), float("nan"), "onprem_tco.onprem.gpu_capex_usd", "finite"),
    (("onprem_tco", "onprem", "as_of"), "yesterday", "onprem_tco.onprem.as_of", "YYYY-MM-DD"),
    (("onprem_tco", "onprem", "source"), KeyError, "onprem_tco.onprem.source", "is required"),
    (("onprem_tco", "onprem", "capex"), 1, "onprem_tco.onprem.capex", "allowed: as_of"),
    (("cost_explorer", "end"), "2026-10-01", "cost_explorer.end", "after cost_explorer.start"),
    (("cost_explorer", "start"), "11/01/2026", "cost_explorer.start", "YYYY-MM-DD"),
    (("cost_explorer", "tag_key"), "", "cost_explorer.tag_key", "label key"),
    (("reserved_min_age",), "30m", "reserved_min_age", "hours or days"),
    (("reserved_min_age",), "12h", "reserved_min_age", "between 1d and 365d"),
    (("reserved_min_age",), "400d", "reserved_min_age", "between 1d and 365d"),
    (("reserved_max_term",), "5yr", "reserved_max_term", "one of 1yr, 3yr"),
    (("interruption_tolerant_groups",), "batch", "interruption_tolerant_groups", "list of node group"),
]


@pytest.mark.parametrize("path,value,field,allowed", OPTION_CASES, ids=[f"{c[2]}={c[1]!r}"[:60] for c in OPTION_CASES])
def test_bad_option(path, value, field, allowed):
    with pytest.raises(CostInputError) as caught:
        options.validate(with_change(path, value))
    assert caught.value.field == field
    assert allowed in str(caught.value)


def test_good_options_pass():
    checked = options.validate(GOOD)
    assert checked["window_seconds"] == 3600
    assert checked["group_of"] == {"gpu-a": "onprem", "gpu-b": "onprem"}


def test_no_price_source():
    params = {k: v for k, v in GOOD.items() if k not in ("price_file", "onprem_tco")}
    with pytest.raises(CostInputError, match="price_file: no price source"):
        options.validate(params)


PRICE_FILE = {
    "as_of": "2026-11-15",
    "source": "sheet",
    "instance_types": {"m5.xlarge": {"on_demand_hourly": 0.192}},
    "node_groups": {"onprem": {"hourly": 20.0, "gpu_hourly": 2.0}},
}
PRICE_FILE_CASES = [
    ([], None, "price_file", "mapping"),
    (("currency",), "EUR", "price_file.currency", "must be USD"),
    (("as_of",), KeyError, "price_file.as_of", "YYYY-MM-DD"),
    (("as_of",), "2026-13-01", "price_file.as_of", "YYYY-MM-DD"),
    (("source",), " ", "price_file.source", "where the prices come from"),
    (
        ("instance_types", "m5.xlarge", "on_demand_hourly"),
        -1,
        "price_file.instance_types.m5.xlarge.on_demand_hourly",
        "> 0.0",
    ),
    (
        ("instance_types", "m5.xlarge", "on_demand_hourly"),
        "cheap",
        "price_file.instance_types.m5.xlarge.on_demand_hourly",
        "number",
    ),
    (
        ("instance_types", "m5.xlarge", "reserved"),
        0.1,
        "price_file.instance_types.m5.xlarge.reserved",
        "allowed: on_demand_hourly, spot_hourly",
    ),
    (("instance_types", "p4d.24xlarge"), {}, "price_file.instance_types.p4d.24xlarge", "on_demand_hourly"),
    (("node_groups", "onprem", "gpu_hourly"), 30.0, "price_file.node_groups.onprem.gpu_hourly", "<= 20.0"),
    (("node_groups", "onprem"), {"gpu_hourly": 1}, "price_file.node_groups.onprem", "with hourly"),
    (("extra",), 1, "price_file.extra", "allowed: as_of"),
    (
        ("instance_types", "m5.xlarge", "on_demand_hourly"),
        5000,
        "price_file.instance_types.m5.xlarge.on_demand_hourly",
        "<= 1000",
    ),
]


@pytest.mark.parametrize("path,value,field,allowed", PRICE_FILE_CASES, ids=[c[2] for c in PRICE_FILE_CASES])
def test_bad_price_file(path, value, field, allowed):
    data = copy.deepcopy(PRICE_FILE)
    if not path:
        data = value
    else:
        target = data
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    with pytest.raises(CostInputError) as caught:
        prices.parse_price_file(data)
    assert caught.value.field == field
    assert allowed in str(caught.value)


def test_price_list_without_hourly_price():
    with pytest.raises(CostInputError, match=r"no on-demand hourly price for p5\.48xlarge"):
        prices.parse_price_list("p5.48xlarge", [])
