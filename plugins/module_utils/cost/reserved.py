# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reserved capacity where the baseline is steady: on-demand nodes of a node group that have
run (creationTimestamp) for at least ``min_age`` and are in use (a GPU allocated; on a node
without GPUs, CPU requested) are the group's steady baseline; when a dated commitment rate for
their instance type (a Reserved Instance from the Pricing API's Reserved terms, or a Reserved
Instance / Savings Plan rate from the price file) costs less per hour than the on-demand price,
covering that baseline saves the difference. Pure: the snapshot's facts and allocation in.

Projected hourly = baseline nodes x the commitment's effective hourly rate (hourly fee plus the
upfront fee spread over the term's hours); the cheapest commitment no longer than ``max_term``
wins, the others are listed as other_commitments.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .nodes import NodeFacts
from .prices import CommitQuote
from .recommend import recommendation

DAY_SECONDS = 86400.0


def _created(text: Optional[str]) -> Optional[datetime]:
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else None


def _in_use(node_row: Mapping[str, Any]) -> bool:
    if node_row["gpu_count"]:
        return any(u["allocated"] for u in node_row["units"].values())
    return node_row["cpu_allocated"] > 0


def recommend_reserved(
    nodes: Sequence[NodeFacts],
    allocation: Mapping[str, Any],
    commitments: Mapping[str, Sequence[CommitQuote]],
    now: datetime,
    min_age_seconds: float,
    max_term: str = "1yr",
) -> List[Dict[str, Any]]:
    """One recommendation per (node group, instance type) with a steady on-demand baseline."""
    max_years = int(max_term[0])
    groups = {}  # type: Dict[tuple, Dict[str, Any]]
    for node in nodes:
        row = allocation["nodes"].get(node.name)
        if row is None or node.capacity_type != "on-demand" or not node.instance_type:
            continue
        group = groups.setdefault((node.node_group, node.instance_type), {"steady": [], "on_demand": 0})
        group["on_demand"] += 1
        created = _created(node.created)
        if created is None or not _in_use(row):
            continue
        age = (now - created).total_seconds()
        if age >= min_age_seconds:
            group["steady"].append((node, row, age))
    recs = []
    for (group_name, instance_type), group in sorted(groups.items()):
        steady = group["steady"]
        options = [q for q in commitments.get(instance_type) or () if q.years <= max_years]
        if not steady or not options:
            continue
        options.sort(key=lambda q: (q.effective_hourly_usd, q.years, q.term, q.purchase_option))
        best = options[0]
        current = sum(row["hourly"] for _node, row, _age in steady)
        projected = best.effective_hourly_usd * len(steady)
        if projected >= current:
            continue
        count = len(steady)
        price = steady[0][1]["price"]
        recs.append(
            recommendation(
                "reserved",
                "%s (%s)" % (group_name, instance_type),
                current,
                projected,
                "medium",
                {
                    "role": "gpuops.cluster.autoscaling",
                    "node_group": group_name,
                    "variable": "min_size",
                    "value": count,
                    "purchase": {
                        "kind": best.kind,
                        "instance_type": instance_type,
                        "count": count,
                        "term": best.term,
                        "purchase_option": best.purchase_option,
                        "offering_class": best.offering_class,
                        "upfront_total_usd": round(best.upfront_usd * count, 2),
                    },
                    "then": "buy %d %s %s (%s, %s, %s) and keep node group %s at min_size >= %d so the "
                    "committed baseline stays on-demand-free"
                    % (
                        count,
                        instance_type,
                        best.kind,
                        best.term,
                        best.purchase_option,
                        best.offering_class,
                        group_name,
                        count,
                    ),
                },
                {
                    "steady_nodes": [
                        {"node": n.name, "created": n.created, "age_days": round(age / DAY_SECONDS, 1)}
                        for n, _row, age in steady
                    ],
                    "on_demand_nodes": group["on_demand"],
                    "min_age_days": round(min_age_seconds / DAY_SECONDS, 1),
                    "on_demand_hourly": steady[0][1]["hourly"],
                    "on_demand_source": "%s (as of %s)" % (price.get("source"), price.get("as_of")),
                    "commitment": _quote(best),
                    "other_commitments": [_quote(q) for q in options[1:]],
                },
            )
        )
    return recs


def _quote(quote: CommitQuote) -> Dict[str, Any]:
    out = quote.to_dict()
    out["effective_hourly_usd"] = round(out["effective_hourly_usd"], 6)
    return out
