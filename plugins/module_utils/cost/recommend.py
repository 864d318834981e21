# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Savings recommendations from the allocation, each with its evidence, the current and
projected $/month, the effort and the concrete change (which variable of which role). Pure.

Rules:
- mig_rightsize: a whole-GPU pod on a MIG-capable GPU whose mean GR_ENGINE_ACTIVE over the
  window is under ``low_activity``: the smallest MIG profile with at least
  ceil(activity x slices) compute slices and enough memory for the pod's measured framebuffer
  (DCGM_FI_DEV_FB_USED; without it, no advice).
- sharing_replicas: a time-sliced/MPS pool whose GPUs' summed pod activity per GPU is under
  ``low_activity``: double the replicas (the same pods then need half the GPUs).
- spot: an on-demand pool marked interruption-tolerant whose instance types have a spot
  quote: the difference between the quotes, per node.
- consolidate: a GPU node with no GPU allocated: its whole price; for an owned server priced by
  its TCO only the energy (the amortized capex, opex and rack are spent whether it runs or not).

Reserved capacity for the steady baseline is reserved.py.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ._common import HOURS_PER_MONTH, money
from .nodes import NodeFacts
from .prices import PriceQuote


def recommendation(category, subject, current_hourly, projected_hourly, effort, action, evidence):
    return {
        "category": category,
        "subject": subject,
        "current_monthly": money(current_hourly * HOURS_PER_MONTH),
        "projected_monthly": money(projected_hourly * HOURS_PER_MONTH),
        "savings_monthly": money((current_hourly - projected_hourly) * HOURS_PER_MONTH),
        "effort": effort,
        "action": action,
        "evidence": evidence,
    }


def recommend(
    nodes: Sequence[NodeFacts],
    allocation: Mapping[str, Any],
    spot_quotes: Mapping[str, Mapping[str, PriceQuote]],
    low_activity: float = 0.3,
    interruption_tolerant: Sequence[str] = (),
    gpu_memory_used_gib: Optional[Mapping[str, float]] = None,
) -> List[Dict[str, Any]]:
    memory_used = gpu_memory_used_gib or {}
    by_node = {n.name: n for n in nodes}
    recs = []
    for row in allocation["pods"]:
        node = by_node[row["node"]]
        activity = row["gpu_activity"]
        if row["gpu_kind"] != "whole" or activity is None or activity >= low_activity or node.gpu_model is None:
            continue
        if not node.gpu_model.profiles:
            continue
        need = max(1, math.ceil(activity * node.compute_slices - 1e-9))
        used = memory_used.get("%s/%s" % (row["namespace"], row["pod"]))
        if used is None:  # no DCGM_FI_DEV_FB_USED for the pod: no profile can be said to fit
            continue
        fits = [
            p
            for p in node.gpu_model.profiles
            if not p.media_extensions
            and p.compute_slices >= need
            and p.compute_slices < node.compute_slices
            and (p.memory_gib or 0) >= used
        ]
        if not fits:
            continue
        profile = min(fits, key=lambda p: (p.compute_slices, p.memory_slices))
        gpus = sum(row["gpu_requests"].values())
        projected = row["gpu_hourly"] / gpus * profile.compute_slices / node.compute_slices * gpus
        recs.append(
            recommendation(
                "mig_rightsize",
                "%s/%s" % (row["namespace"], row["pod"]),
                row["gpu_hourly"],
                projected,
                "medium",
                {
                    "role": "gpuops.cluster.mig",
                    "node_group": node.node_group,
                    "variable": "mig_layout",
                    "value": {profile.name: int(gpus)},
                    "then": "request nvidia.com/mig-%s instead of nvidia.com/gpu" % profile.name,
                },
                {
                    "gpu_activity": activity,
                    "window_metric": "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
                    "gpu_memory_used_gib": used,
                    "gpu_model": node.gpu_model.key,
                    "node": node.name,
                },
            )
        )
    pools = {}  # type: Dict[str, Dict[str, Any]]
    for name, node_row in allocation["nodes"].items():
        node = by_node[name]
        if node.sharing == "none" or not node.gpu_count:
            continue
        pool = pools.setdefault(
            node.node_group,
            {"gpus": 0, "gpu_hourly": 0.0, "activity": 0.0, "measured": 0, "replicas": node.replicas, "nodes": []},
        )
        pool["gpus"] += node.gpu_count
        pool["gpu_hourly"] += node_row["gpu_hourly"]
        pool["nodes"].append(name)
    for row in allocation["pods"]:
        pool = pools.get(row["node_group"])
        if pool is not None and row["gpu_activity"] is not None:
            pool["activity"] += row["gpu_activity"] / pool["replicas"]
            pool["measured"] += 1
    for group, pool in sorted(pools.items()):
        if not pool["measured"]:
            continue
        per_gpu = pool["activity"] / pool["gpus"]
        if per_gpu >= low_activity:
            continue
        new = pool["replicas"] * 2
        projected = pool["gpu_hourly"] * pool["replicas"] / new
        recs.append(
            recommendation(
                "sharing_replicas",
                group,
                pool["gpu_hourly"],
                projected,
                "low",
                {
                    "role": "gpuops.cluster.gpu_sharing",
                    "node_group": group,
                    "variable": "gpu_sharing_replicas",
                    "value": new,
                },
                {
                    "mean_activity_per_gpu": per_gpu,
                    "replicas": pool["replicas"],
                    "gpus": pool["gpus"],
                    "nodes": pool["nodes"],
                },
            )
        )
    groups = {}  # type: Dict[str, List[str]]
    for name, node_row in allocation["nodes"].items():
        if node_row["capacity_type"] == "on-demand":
            groups.setdefault(node_row["node_group"], []).append(name)
    for group, names in sorted(groups.items()):
        if group not in interruption_tolerant:
            continue
        current = projected = 0.0
        evidence = []
        for name in names:
            node = by_node[name]
            zones = spot_quotes.get(node.instance_type or "") or {}
            quote = zones.get(node.zone or "") or (min(zones.values(), key=lambda q: q.hourly_usd) if zones else None)
            if quote is None:
                break
            current += allocation["nodes"][name]["hourly"]
            projected += quote.hourly_usd
            evidence.append(
                {
                    "node": name,
                    "instance_type": node.instance_type,
                    "on_demand_hourly": allocation["nodes"][name]["hourly"],
                    "spot_hourly": quote.hourly_usd,
                    "zone": quote.zone,
                    "as_of": quote.as_of,
                    "source": quote.source,
                }
            )
        else:
            if evidence and projected < current:
                recs.append(
                    recommendation(
                        "spot",
                        group,
                        current,
                        projected,
                        "medium",
                        {
                            "role": "gpuops.cluster.autoscaling",
                            "node_group": group,
                            "variable": "capacity_types",
                            "value": ["spot", "on-demand"],
                        },
                        {"nodes": evidence},
                    )
                )
    for name, node_row in sorted(allocation["nodes"].items()):
        if not node_row["gpu_count"] or not node_row["units"]:
            continue
        if any(u["allocated"] for u in node_row["units"].values()):
            continue
        energy = node_row["price"].get("energy_hourly_usd")
        evidence = {
            "gpu_allocated": 0,
            "gpu_count": node_row["gpu_count"],
            "cpu_allocated": node_row["cpu_allocated"],
        }  # type: Dict[str, Any]
        action = {
            "role": "gpuops.cluster.node_maintenance",
            "node_group": node_row["node_group"],
            "variable": "node_maintenance_action",
            "value": "drain",
            "then": "lower the node group's size by one",
        }
        projected = 0.0
        if energy is not None:
            # An owned server's capex is spent: draining and powering it off saves its energy.
            projected = node_row["hourly"] - energy
            evidence["sunk_hourly"] = projected
            evidence["energy_hourly"] = energy
            action["then"] = "power it off (owned: its amortized capex and opex are not saved, its energy is)"
        recs.append(recommendation("consolidate", name, node_row["hourly"], projected, "low", action, evidence))
    return sorted(recs, key=lambda r: -r["savings_monthly"])


def savings_total(recs: Sequence[Mapping[str, Any]]) -> float:
    """Monthly savings that can be had together: recommendations on the same node group act on
    the same capacity (spot, reserved, more replicas, consolidation, right-sizing its pods), so
    per node group only the category that saves most counts; the others are alternatives."""
    by_group = {}  # type: Dict[str, Dict[str, float]]
    for rec in recs:
        group = str(rec["action"].get("node_group") or rec["subject"])
        categories = by_group.setdefault(group, {})
        categories[rec["category"]] = categories.get(rec["category"], 0.0) + rec["savings_monthly"]
    return money(sum(max(categories.values()) for categories in by_group.values()))


def mark_alternatives(recs: Sequence[Dict[str, Any]]) -> None:
    """Each recommendation names the other categories advised on its node group (in place)."""
    by_group = {}  # type: Dict[str, set]
    for rec in recs:
        by_group.setdefault(str(rec["action"].get("node_group") or rec["subject"]), set()).add(rec["category"])
    for rec in recs:
        group = str(rec["action"].get("node_group") or rec["subject"])
        rec["alternatives"] = sorted(by_group[group] - {rec["category"]})
