"""Reserved capacity where the baseline is steady: commitment rates from the Pricing API's
Reserved terms (botocore Stubber, real-shaped get_products items) and from the price file;
the steady on-demand baseline from the nodes' creationTimestamp and allocation. Every expected
dollar figure is derived here from the rates, not pasted."""

# ruff: noqa: F811

import copy
import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.cost import (
    allocation,
    aws_prices,
    nodes,
    prices,
    recommend,
    reserved,
    runner,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.cost._common import CostInputError
from botocore.stub import ANY, Stubber
from cost_fixtures import P4D_PRICE_ITEM_RESERVED, mixed_nodes_data, mixed_pods_data

CREDS = dict(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
WEIGHTS = {"cpu_core_hourly": 0.031611, "memory_gib_hourly": 0.004237, "gpu_hourly": 0.95, "source": "OpenCost"}
OD_P4D = 32.7726  # the fixture's OnDemand term
# The fixture's Reserved terms: (term, purchase option, offering class) -> (hourly, upfront)
RATES = {
    ("1yr", "No Upfront", "standard"): (20.5620, 0.0),
    ("1yr", "Partial Upfront", "standard"): (9.8220, 86040.0),
    ("1yr", "All Upfront", "standard"): (0.0, 168620.0),
    ("1yr", "No Upfront", "convertible"): (24.1180, 0.0),
    ("3yr", "No Upfront", "standard"): (14.0340, 0.0),
    ("3yr", "All Upfront", "standard"): (0.0, 312070.0),
}


def effective(key):
    hourly, upfront = RATES[key]
    return hourly + upfront / (int(key[0][0]) * 8760.0)


def aged(days_by_node):
    data = copy.deepcopy(mixed_nodes_data())
    for node in data:
        days = days_by_node.get(node["metadata"]["name"])
        if days is not None:
            stamp = NOW - timedelta(days=days)
            node["metadata"]["creationTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    return data


def test_reserved_terms_parsed_from_get_products_item():
    quotes = prices.parse_reserved_terms("p4d.24xlarge", [json.dumps(P4D_PRICE_ITEM_RESERVED)])
    got = {(q.term, q.purchase_option, q.offering_class): q for q in quotes}
    assert set(got) == set(RATES)  # "Heavy Utilization" (no longer sold) skipped
    for key, quote in got.items():
        assert (quote.hourly_usd, quote.upfront_usd) == RATES[key]
        assert quote.effective_hourly_usd == pytest.approx(effective(key))
        assert quote.source == "aws-pricing-api" and quote.as_of == "2026-11-01T00:00:00Z"
    # the OnDemand term of the same item is still read as before
    assert prices.parse_price_list("p4d.24xlarge", [json.dumps(P4D_PRICE_ITEM_RESERVED)]).hourly_usd == OD_P4D


def _answer_p4d_get_products(stub):
    """The Pricing API's one get_products page for p4d.24xlarge in us-east-1: the fixture's item
    (OnDemand and Reserved terms), answered to exactly the request the code must send."""
    stub.add_response(
        "get_products",
        {"FormatVersion": "aws_v1", "PriceList": [json.dumps(P4D_PRICE_ITEM_RESERVED)]},
        {
            "ServiceCode": "AmazonEC2",
            "Filters": prices.pricing_filters("p4d.24xlarge", "us-east-1"),
            "FormatVersion": "aws_v1",
            "MaxResults": 100,
        },
    )


def test_one_get_products_read_gives_on_demand_and_reserved():
    client = boto3.client("pricing", **CREDS)
    stub = Stubber(client)
    _answer_p4d_get_products(stub)
    with stub:
        lists = aws_prices.price_lists(client, ["p4d.24xlarge"], "us-east-1")
    stub.assert_no_pending_responses()
    found = aws_prices.reserved_quotes(lists)
    assert len(found["p4d.24xlarge"]) == len(RATES)


@pytest.fixture
def snapshot():
    facts = [nodes.node_facts(n) for n in aged({"cloud-od": 45, "cpu-1": 10, "cloud-spot": 90})]
    pods = [nodes.pod_facts(p) for p in mixed_pods_data()]
    file_quotes = prices.parse_price_file(
        {"as_of": "2026-11-15", "source": "sheet", "instance_types": {"m5.xlarge": {"on_demand_hourly": 0.192}}}
    )["instance_types"]
    od = prices.parse_price_list("p4d.24xlarge", [json.dumps(P4D_PRICE_ITEM_RESERVED)])
    quotes = {
        "cloud-od": od,
        "cloud-spot": prices.PriceQuote(9.8318, "aws-spot-price-history", "2026-11-30T00:00:00Z", "spot"),
        "onprem-a100": prices.PriceQuote(5.0, "price-file: x", "2026-11-15", "on-prem", gpu_hourly_usd=2.0),
        "onprem-h100": prices.PriceQuote(4.0, "price-file: x", "2026-11-15", "on-prem", gpu_hourly_usd=3.0),
        "cpu-1": file_quotes["m5.xlarge"]["on-demand"],
    }
    alloc = allocation.allocate(facts, pods, quotes, allocation.split_weights(WEIGHTS))
    commitments = {"p4d.24xlarge": prices.parse_reserved_terms("p4d.24xlarge", [P4D_PRICE_ITEM_RESERVED])}
    return facts, alloc, commitments


def test_steady_on_demand_node_gets_the_cheapest_one_year_commitment(snapshot):
    facts, alloc, commitments = snapshot
    (rec,) = reserved.recommend_reserved(facts, alloc, commitments, NOW, 30 * 86400)
    best = min((k for k in RATES if k[0] == "1yr"), key=effective)
    assert best == ("1yr", "All Upfront", "standard")
    assert rec["category"] == "reserved" and rec["subject"] == "train (p4d.24xlarge)"
    assert rec["current_monthly"] == pytest.approx(OD_P4D * 730, abs=1e-4)
    assert rec["projected_monthly"] == pytest.approx(effective(best) * 730, abs=1e-4)
    assert rec["savings_monthly"] == pytest.approx((OD_P4D - effective(best)) * 730, abs=1e-4)
    purchase = rec["action"]["purchase"]
    assert purchase == {
        "kind": "reserved-instance",
        "instance_type": "p4d.24xlarge",
        "count": 1,
        "term": "1yr",
        "purchase_option": "All Upfront",
        "offering_class": "standard",
        "upfront_total_usd": RATES[best][1],
    }
    assert rec["action"]["node_group"] == "train" and rec["action"]["value"] == 1
    evidence = rec["evidence"]
    assert evidence["steady_nodes"] == [{"node": "cloud-od", "created": "2026-10-17T10:00:00Z", "age_days": 45.0}]
    assert evidence["on_demand_source"] == "aws-pricing-api (as of 2026-11-01T00:00:00Z)"
    # the other 1-year options, cheapest first, as alternatives; no 3-year one
    alternatives = [(a["term"], a["purchase_option"], a["offering_class"]) for a in evidence["other_commitments"]]
    assert alternatives == sorted((k for k in RATES if k[0] == "1yr" and k != best), key=effective)
    # spot (cloud-spot) and on-prem nodes are never reserved; cpu-1 is too young (10 d) and unpriced


def test_three_year_term_when_allowed(snapshot):
    facts, alloc, commitments = snapshot
    (rec,) = reserved.recommend_reserved(facts, alloc, commitments, NOW, 30 * 86400, "3yr")
    best = min(RATES, key=effective)
    assert best == ("3yr", "All Upfront", "standard")
    assert rec["savings_monthly"] == pytest.approx((OD_P4D - effective(best)) * 730, abs=1e-4)


def test_no_advice_for_young_or_idle_nodes(snapshot):
    facts, alloc, commitments = snapshot
    assert reserved.recommend_reserved(facts, alloc, commitments, NOW, 60 * 86400) == []  # 45 d < 60 d
    quotes = {name: prices.PriceQuote(**row["price"]) for name, row in alloc["nodes"].items()}
    idle = allocation.allocate(facts, [], quotes, allocation.split_weights(WEIGHTS))
    assert reserved.recommend_reserved(facts, idle, commitments, NOW, 30 * 86400) == []  # consolidate, not reserve
    dear = prices.parse_commitments(
        "p4d.24xlarge", [{"term": "1yr", "purchase_option": "No Upfront", "hourly": 40.0}], "x", "2026-11-15", "f"
    )
    assert reserved.recommend_reserved(facts, alloc, {"p4d.24xlarge": dear}, NOW, 30 * 86400) == []


class FakeCore:
    """CoreV1Api's two list calls with _preload_content=False (one page each)."""

    def __init__(self, node_items, pod_items):
        self.node_items, self.pod_items = node_items, pod_items

    @staticmethod
    def _answer(items):
        return type("Response", (), {"data": json.dumps({"items": items, "metadata": {}}).encode()})()

    def list_node(self, **_kwargs):
        return self._answer(self.node_items)

    def list_pod_for_all_namespaces(self, **_kwargs):
        return self._answer([p for p in self.pod_items if p["status"]["phase"] not in ("Succeeded", "Failed")])


def test_snapshot_with_pricing_api_and_price_file_commitments():
    pricing = boto3.client("pricing", **CREDS)
    ec2 = boto3.client("ec2", **CREDS)
    with Stubber(pricing) as pricing_stub, Stubber(ec2) as ec2_stub:
        _answer_p4d_get_products(pricing_stub)
        ec2_stub.add_response(
            "describe_spot_price_history",
            {
                "SpotPriceHistory": [
                    {
                        "AvailabilityZone": "us-east-1a",
                        "InstanceType": "p4d.24xlarge",
                        "ProductDescription": "Linux/UNIX",
                        "SpotPrice": "9.831800",
                        "Timestamp": NOW - timedelta(minutes=20),
                    }
                ]
            },
            {
                "InstanceTypes": ["m5.xlarge", "p4d.24xlarge"],
                "ProductDescriptions": ["Linux/UNIX"],
                "StartTime": ANY,
            },
        )
        price_file = {
            "as_of": "2026-11-15",
            "source": "finance sheet",
            "instance_types": {
                "m5.xlarge": {
                    "on_demand_hourly": 0.192,
                    "commitments": [
                        {"kind": "savings-plan", "offering_class": "compute", "term": "1yr",
                         "purchase_option": "No Upfront", "hourly": 0.141},
                        {"kind": "reserved-instance", "term": "3yr", "purchase_option": "All Upfront",
                         "upfront": 2100},
                    ],
                }
            },
            "node_groups": {"onprem-a100": {"hourly": 5.0, "gpu_hourly": 2.0}, "inference": {"hourly": 4.0}},
        }  # fmt: skip
        clients = {"pricing": pricing, "ec2": ec2}
        result = runner.run(
            {
                "price_file": "prices.yml",
                "aws_pricing": True,
                "split_weights": WEIGHTS,
                "reserved_min_age": "30d",
                "page_size": 500,
                "node_group_labels": list(nodes.DEFAULT_GROUP_LABELS),
                "label_keys": ["team"],
            },
            lambda: FakeCore(aged({"cloud-od": 45, "cpu-1": 200}), mixed_pods_data()),
            lambda _path: price_file,
            aws_client=lambda service, _region=None: clients[service],
            now=NOW,
        )
    recs = {r["subject"]: r for r in result["recommendations"] if r["category"] == "reserved"}
    assert set(recs) == {"train (p4d.24xlarge)", "system (m5.xlarge)"}
    p4d = recs["train (p4d.24xlarge)"]
    assert p4d["savings_monthly"] == pytest.approx(
        (OD_P4D - effective(("1yr", "All Upfront", "standard"))) * 730, abs=1e-4
    )
    m5 = recs["system (m5.xlarge)"]
    # 1yr max: the savings plan (0.141/h), not the 3-year RI (2100 / 26280 h = 0.0799/h)
    assert m5["action"]["purchase"]["kind"] == "savings-plan"
    assert m5["savings_monthly"] == pytest.approx((0.192 - 0.141) * 730, abs=1e-4)
    assert m5["evidence"]["commitment"]["source"] == "price-file: finance sheet"
    assert m5["evidence"]["other_commitments"] == []
    assert result["savings_monthly_total"] == pytest.approx(
        recommend.savings_total(result["recommendations"]), abs=1e-6
    )
    assert [r["savings_monthly"] for r in result["recommendations"]] == sorted(
        (r["savings_monthly"] for r in result["recommendations"]), reverse=True
    )


SP = {"kind": "savings-plan", "term": "1yr", "purchase_option": "No Upfront", "hourly": 1}
COMMIT_CASES = [
    ({"term": "2yr", "purchase_option": "No Upfront", "hourly": 1}, "[0].term", "1yr, 3yr"),
    ({"term": "1yr", "purchase_option": "Some Upfront", "hourly": 1}, "[0].purchase_option", "No Upfront"),
    (dict(SP, kind="lease"), "[0].kind", "reserved-instance"),
    (dict(SP, offering_class="standard"), "[0].offering_class", "compute, ec2-instance"),
    ({"term": "1yr", "purchase_option": "No Upfront", "hourly": 1, "upfront": 5}, "[0].upfront", "No Upfront"),
    ({"term": "1yr", "purchase_option": "All Upfront", "hourly": 1, "upfront": 5}, "[0].hourly", "All Upfront"),
    ({"term": "1yr", "purchase_option": "Partial Upfront"}, "[0]", "both 0"),
    ({"term": "1yr", "purchase_option": "No Upfront", "hourly": -1}, "[0].hourly", ">= 0.0"),
    ({"term": "1yr", "purchase_option": "No Upfront", "rate": 1}, "[0].rate", "allowed: kind"),
]


@pytest.mark.parametrize("entry,field,allowed", COMMIT_CASES)
def test_bad_commitment(entry, field, allowed):
    data = {"as_of": "2026-11-15", "source": "s", "instance_types": {"m5.xlarge": {"commitments": [entry]}}}
    with pytest.raises(CostInputError) as caught:
        prices.parse_price_file(data)
    assert caught.value.field == "price_file.instance_types.m5.xlarge.commitments" + field
    assert allowed in str(caught.value)


def test_commitments_must_be_a_list():
    data = {"as_of": "2026-11-15", "source": "s", "instance_types": {"m5.xlarge": {"commitments": {"term": "1yr"}}}}
    with pytest.raises(CostInputError, match="commitments: must be a non-empty list"):
        prices.parse_price_file(data)


def test_alternatives_on_one_node_group_count_once():
    def rec(category, group, savings):
        return {"category": category, "subject": group, "savings_monthly": savings, "action": {"node_group": group}}

    recs = [rec("spot", "l40s", 400.0), rec("reserved", "l40s", 250.0), rec("sharing_replicas", "l40s", 300.0)]
    recs += [rec("mig_rightsize", "h100", 50.0), rec("mig_rightsize", "h100", 70.0), rec("consolidate", "h100", 100.0)]
    recs += [rec("consolidate", "a100", 10.0)]
    # l40s: the best single category (spot 400); h100: right-sizing both pods (120) beats draining (100)
    assert recommend.savings_total(recs) == pytest.approx(400.0 + 120.0 + 10.0)
    recommend.mark_alternatives(recs)
    assert recs[0]["alternatives"] == ["reserved", "sharing_replicas"]
    assert recs[3]["alternatives"] == ["consolidate"] and recs[-1]["alternatives"] == []
