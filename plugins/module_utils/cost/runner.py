# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cost_snapshot's one entry: check the options, read the cluster (and Prometheus, AWS when
asked), price every node, allocate, roll up, compare, recommend. Read-only: check mode is the
same run."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import gc
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Mapping, Optional

from . import allocation, cluster, nodes, opencost, options, prices, recommend, reserved, rollup, tco
from ._common import money


class SnapshotError(Exception):
    """A failure after the options were accepted (cluster, Prometheus, AWS, a node without price)."""


def _price_nodes(facts, checked, file_prices, od_api, spot_api, power):
    """One quote per node, and where it came from; precedence: on-prem TCO of the node group,
    the price file's node group, spot (API, else file) for spot nodes, the price file's
    instance type, the Pricing API."""
    quotes = {}
    for node in facts:
        group_tco = checked["onprem_tco"].get(node.node_group)
        types = file_prices.get("instance_types", {}).get(node.instance_type or "", {})
        quote = None
        if group_tco is not None:
            quote = tco.tco_quote(group_tco, power.get(node.name))
        elif node.node_group in file_prices.get("node_groups", {}):
            quote = file_prices["node_groups"][node.node_group]
        elif node.capacity_type == "spot":
            zones = spot_api.get(node.instance_type or "", {})
            quote = zones.get(node.zone or "") or types.get("spot")
        else:
            quote = types.get("on-demand") or od_api.get(node.instance_type or "")
        if quote is None:
            raise SnapshotError(
                "no price for node %s (node group %s, instance type %s, %s): add it to price_file "
                "(instance_types or node_groups), onprem_tco, or set aws_pricing"
                % (node.name, node.node_group, node.instance_type, node.capacity_type)
            )
        quotes[node.name] = quote
    return quotes


def run(*args: Any, **kwargs: Any) -> Dict[str, Any]:
    """The snapshot, with the cyclic garbage collector paused: the run makes a few hundred
    thousand small dicts and no cycles, and gen-2 passes over them cost a quarter of the time at
    100,000 pods (benchmarks/cost_snapshot.py). Restored afterwards as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(*args, **kwargs)
    finally:
        if enabled:
            gc.enable()


def _run(
    params: Mapping[str, Any],
    core_api_factory: Callable[[], Any],
    load_price_file: Callable[[str], Any],
    aws_client: Optional[Callable[[str, Optional[str]], Any]] = None,
    prometheus: Optional[Any] = None,
    now: Optional[datetime] = None,
) -> Dict[str, Any]:
    checked = options.validate(params)  # before anything is read
    now = now or datetime.now(timezone.utc)
    file_prices = {}  # type: Dict[str, Any]
    if params.get("price_file"):
        file_prices = prices.parse_price_file(load_price_file(params["price_file"]), "price_file")
    weights = checked["split_weights"]
    core = core_api_factory()
    raw_nodes = cluster.list_nodes(core, checked["page_size"], checked["node_selector"])
    facts = [nodes.node_facts(n, checked["node_group_labels"], checked["group_of"]) for n in raw_nodes]
    names = {n.name for n in facts}
    pods = [
        p
        for p in (
            nodes.pod_facts(item) for item in cluster.list_pods(core, checked["page_size"], checked["pod_selector"])
        )
        if p.node in names
    ]
    activity = fb_used = power = {}  # type: Dict[str, float]
    window = checked["window_seconds"]
    if prometheus is not None:
        activity = prometheus.activity(window)
        fb_used = prometheus.fb_used_gib(window)
        power = prometheus.power_watts(window)
    od_api, spot_api, reserved_api = {}, {}, {}  # type: Dict[str, Any], Dict[str, Any], Dict[str, Any]
    if params.get("aws_pricing"):
        if aws_client is None:
            raise SnapshotError("aws_pricing needs boto3")
        region = params.get("region") or "us-east-1"
        cloud = {n.instance_type for n in facts if n.instance_type and n.capacity_type != "on-prem"}
        priced = {t for t, entry in file_prices.get("instance_types", {}).items() if "on-demand" in entry}
        from . import aws_prices

        # One get_products read per type gives both its OnDemand and its Reserved terms.
        lists = aws_prices.price_lists(
            aws_client("pricing", params.get("pricing_region") or "us-east-1"), cloud - priced, region
        )
        od_api = {t: prices.parse_price_list(t, items) for t, items in lists.items()}
        reserved_api = aws_prices.reserved_quotes(lists)
        start = now - timedelta(hours=1)
        spot_api = aws_prices.spot_quotes(aws_client("ec2", region), cloud, start)
    quotes = _price_nodes(facts, checked, file_prices, od_api, spot_api, power)
    alloc = allocation.allocate(facts, pods, quotes, weights, activity)
    summary = rollup.rollup(alloc, checked["label_keys"])
    spot_for_advice = dict(spot_api)
    for instance_type, entry in file_prices.get("instance_types", {}).items():
        if "spot" in entry and instance_type not in spot_for_advice:
            spot_for_advice[instance_type] = {"": entry["spot"]}
    recs = recommend.recommend(
        facts,
        alloc,
        spot_for_advice,
        checked["low_activity"],
        params.get("interruption_tolerant_groups") or [],
        fb_used,
    )
    commitments = {}  # type: Dict[str, list]
    for instance_type, found in reserved_api.items():
        commitments.setdefault(instance_type, []).extend(found)
    for instance_type, entry in file_prices.get("instance_types", {}).items():
        commitments.setdefault(instance_type, []).extend(entry.get("commitments") or [])
    recs = sorted(
        recs
        + reserved.recommend_reserved(
            facts,
            alloc,
            commitments,
            now,
            checked["reserved_min_age_seconds"],
            checked["reserved_max_term"],
        ),
        key=lambda r: -r["savings_monthly"],
    )
    recommend.mark_alternatives(recs)
    compared = opencost.compare(facts, pods, alloc, weights)
    onprem = {n.name: quotes[n.name] for n in facts if quotes[n.name].capacity_type == "on-prem"}
    csv_text = tco.opencost_csv(onprem, {n.name: (n.gpu_product, n.gpu_count) for n in facts})
    result = {
        "changed": False,
        "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "split_weights": {
            "cpu_core_hourly": weights.cpu_core,
            "memory_gib_hourly": weights.memory_gib,
            "gpu_hourly": weights.gpu,
            "source": weights.source,
        },
        "counts": {"nodes": len(facts), "pods": len(alloc["pods"]), "gpus": sum(n.gpu_count for n in facts)},
        "prometheus": None
        if prometheus is None
        else {
            "window_seconds": window,
            # The cluster's pods with activity: series of pods gone within the window do not count.
            "pods_with_activity": sum(1 for pod in pods if pod.key in activity),
            "nodes_with_power": len(power),
        },
        "price_sources": sorted({"%s (as of %s)" % (q.source, q.as_of) for q in quotes.values()}),
        "totals": summary["totals"],
        "idle": summary["idle"],
        "by_namespace": summary["by_namespace"],
        "by_label": summary["by_label"],
        "by_node_group": summary["by_node_group"],
        "idle_by_pool": summary["idle_by_pool"],
        "nodes": [_round_node(row) for row in alloc["nodes"].values()],
        "pods": [_round_pod(row) for row in alloc["pods"]] if params.get("include_pods", True) else [],
        "opencost_comparison": compared,
        "opencost_pricing_csv": csv_text,
        "recommendations": recs,
        "savings_monthly_total": recommend.savings_total(recs),
        "cost_explorer": None,
    }
    ce = checked.get("cost_explorer")
    if ce:
        if aws_client is None:
            raise SnapshotError("cost_explorer needs boto3")
        from . import aws_prices

        result["cost_explorer"] = aws_prices.cost_explorer_by_tag(
            aws_client("ce", "us-east-1"), ce["start"], ce["end"], ce["tag_key"]
        )
    return result


def _round_row(row: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: (money(v) if isinstance(v, float) else v) for k, v in row.items()}


POD_MONEY = ("gpu_hourly", "cpu_hourly", "memory_hourly", "hourly", "gpu_unused_hourly")


def _round_pod(row: Mapping[str, Any]) -> Dict[str, Any]:
    out = dict(row)
    for key in POD_MONEY:
        if out[key] is not None:
            out[key] = round(out[key], 6)
    return out


def _round_node(row: Mapping[str, Any]) -> Dict[str, Any]:
    out = _round_row(row)
    out["idle"] = {
        k: (money(v) if isinstance(v, float) else {r: money(x) for r, x in v.items()}) for k, v in row["idle"].items()
    }
    out["units"] = {r: _round_row(u) for r, u in row["units"].items()}
    return out
