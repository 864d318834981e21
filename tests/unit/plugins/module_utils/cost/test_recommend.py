"""Recommendations on the mixed cluster: evidence, $/month derived from the allocation, the
role variable to change."""

# Fixtures are imported (a conftest.py here would shadow `from conftest import` elsewhere), so
# test arguments named after them look like redefinitions to ruff.
# ruff: noqa: F811

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.cost import allocation, nodes, prices, recommend
from cost_cluster_fixtures import mixed_nodes, mixed_pods  # noqa: F401  pylint: disable=unused-import

# Fixtures (quotes, result) come from the mixed-cluster tests.
from test_mixed_cluster import A100_TCO, SPOT_HISTORY, WEIGHTS, quotes, result  # noqa: F401  pylint: disable=unused-import

ACTIVITY = {"train/llm-0": 0.12, "train/llm-1": 0.9, "serve/api-0": 0.1, "serve/api-1": 0.05, "serve/api-2": 0.15}


@pytest.fixture
def with_activity(mixed_nodes, mixed_pods, quotes):  # noqa: F811
    facts = [nodes.node_facts(n) for n in mixed_nodes]
    pods = [nodes.pod_facts(p) for p in mixed_pods]
    return facts, allocation.allocate(facts, pods, quotes, WEIGHTS, ACTIVITY)


def by_category(recs, category):
    return [r for r in recs if r["category"] == category]


def test_mig_rightsize_low_activity_whole_gpu(with_activity):
    facts, alloc = with_activity
    recs = recommend.recommend(facts, alloc, {}, low_activity=0.3, gpu_memory_used_gib={"train/llm-0": 8.0})
    (rec,) = by_category(recs, "mig_rightsize")
    assert rec["subject"] == "train/llm-0"  # llm-1 is busy (0.9)
    # 0.12 x 7 slices -> 1 slice; 8 GiB used -> 1g.5gb (4.75 GiB) is too small, 1g.10gb fits
    assert rec["action"]["value"] == {"1g.10gb": 2}
    assert rec["action"]["variable"] == "mig_layout" and rec["action"]["role"] == "gpuops.cluster.mig"
    gpu_each = alloc["nodes"]["cloud-od"]["gpu_each_hourly"]
    assert rec["current_monthly"] == pytest.approx(2 * gpu_each * 730, abs=1e-4)
    assert rec["savings_monthly"] == pytest.approx(2 * gpu_each * (1 - 1 / 7) * 730, abs=1e-4)
    assert rec["evidence"]["gpu_activity"] == 0.12
    # without the pod's framebuffer use no profile can be said to fit: no advice
    assert not by_category(recommend.recommend(facts, alloc, {}, low_activity=0.3), "mig_rightsize")


def test_raise_replicas_on_idle_inference_pool(with_activity):
    facts, alloc = with_activity
    (rec,) = by_category(recommend.recommend(facts, alloc, {}), "sharing_replicas")
    assert rec["subject"] == "inference"
    assert rec["action"] == {
        "role": "gpuops.cluster.gpu_sharing",
        "node_group": "inference",
        "variable": "gpu_sharing_replicas",
        "value": 8,
    }
    # (0.1 + 0.05 + 0.15) / 4 replicas on 1 GPU = 0.075 per GPU
    assert rec["evidence"]["mean_activity_per_gpu"] == pytest.approx(0.075)
    pool = alloc["nodes"]["onprem-h100"]["gpu_hourly"]
    assert rec["savings_monthly"] == pytest.approx(pool / 2 * 730, abs=1e-4)


def test_spot_uses_real_spot_quotes(with_activity):
    facts, alloc = with_activity
    spot = prices.parse_spot_history(SPOT_HISTORY)
    assert not by_category(recommend.recommend(facts, alloc, spot), "spot")  # train not marked tolerant
    (rec,) = by_category(recommend.recommend(facts, alloc, spot, interruption_tolerant=["train"]), "spot")
    assert rec["savings_monthly"] == pytest.approx((32.7726 - 9.8318) * 730, abs=1e-4)
    assert rec["evidence"]["nodes"][0]["zone"] == "us-east-1a"
    assert rec["evidence"]["nodes"][0]["source"] == "aws-spot-price-history"


def test_consolidate_gpu_node_with_nothing_allocated(mixed_nodes, quotes):  # noqa: F811
    facts = [nodes.node_facts(n) for n in mixed_nodes]
    alloc = allocation.allocate(facts, [], quotes, WEIGHTS)
    recs = by_category(recommend.recommend(facts, alloc, {}), "consolidate")
    assert {r["subject"] for r in recs} == {"cloud-od", "cloud-spot", "onprem-a100", "onprem-h100"}
    (od,) = [r for r in recs if r["subject"] == "cloud-od"]
    assert od["savings_monthly"] == pytest.approx(32.7726 * 730, abs=1e-4)
    assert od["action"]["variable"] == "node_maintenance_action"
    # an owned server's capex, opex and rack are spent either way: powered off it saves its energy
    (a100,) = [r for r in recs if r["subject"] == "onprem-a100"]
    watts = A100_TCO["gpu_tdp_watts"] * A100_TCO["gpus_per_server"] + A100_TCO["server_base_watts"]
    energy = watts / 1000 * A100_TCO["usd_per_kwh"] * A100_TCO["pue"]
    assert a100["savings_monthly"] == pytest.approx(energy * 730, abs=1e-4)
    assert a100["current_monthly"] == pytest.approx(alloc["nodes"]["onprem-a100"]["hourly"] * 730, abs=1e-4)
    assert a100["evidence"]["energy_hourly"] == pytest.approx(energy)
    assert "power it off" in a100["action"]["then"]


def test_no_activity_no_activity_based_advice(result):  # noqa: F811
    facts, _rows, alloc = result
    recs = recommend.recommend(facts, alloc, {})
    assert not by_category(recs, "mig_rightsize") and not by_category(recs, "sharing_replicas")
