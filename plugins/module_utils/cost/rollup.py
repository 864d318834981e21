# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Roll the allocation up by namespace, pod label (team, cost-center) and node group, and
sum the cluster totals and idle. Pure."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from typing import Any, Dict, Mapping, Sequence

from ._common import HOURS_PER_MONTH, money

FIELDS = ("hourly", "gpu_hourly", "cpu_hourly", "memory_hourly")


def _add(bucket: Dict[str, float], row: Mapping[str, Any]) -> None:
    for key in FIELDS:
        bucket[key] = bucket.get(key, 0.0) + row[key]
    if row.get("gpu_unused_hourly") is not None:
        bucket["gpu_unused_hourly"] = bucket.get("gpu_unused_hourly", 0.0) + row["gpu_unused_hourly"]
    bucket["pods"] = bucket.get("pods", 0) + 1


def _rounded(groups: Dict[str, Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    out = {}
    for name in sorted(groups, key=lambda g: -groups[g]["hourly"]):
        row = {k: (money(v) if isinstance(v, float) else v) for k, v in groups[name].items()}
        row["monthly"] = money(groups[name]["hourly"] * HOURS_PER_MONTH)
        out[name] = row
    return out


def rollup(allocation: Mapping[str, Any], label_keys: Sequence[str]) -> Dict[str, Any]:
    by_namespace = {}  # type: Dict[str, Dict[str, float]]
    by_label = {key: {} for key in label_keys}  # type: Dict[str, Dict[str, Dict[str, float]]]
    by_group = {}  # type: Dict[str, Dict[str, float]]
    for row in allocation["pods"]:
        _add(by_namespace.setdefault(row["namespace"], {}), row)
        for key in label_keys:
            _add(by_label[key].setdefault(row["labels"].get(key, "(unlabelled)"), {}), row)
    totals = {"hourly": 0.0, "gpu_hourly": 0.0, "cpu_hourly": 0.0, "memory_hourly": 0.0}
    idle = {"gpu_hourly": 0.0, "cpu_hourly": 0.0, "memory_hourly": 0.0}
    idle_by_kind = {}  # type: Dict[str, float]
    pools = {}  # type: Dict[str, Dict[str, Any]]
    for node in allocation["nodes"].values():
        group = by_group.setdefault(
            node["node_group"],
            {
                "hourly": 0.0,
                "gpu_hourly": 0.0,
                "cpu_hourly": 0.0,
                "memory_hourly": 0.0,
                "nodes": 0,
                "gpus": 0,
                "idle_gpu_hourly": 0.0,
            },
        )
        group["nodes"] += 1
        group["gpus"] += node["gpu_count"]
        for key in FIELDS:
            group[key] += node[key]
            totals[key] += node[key]
        group["idle_gpu_hourly"] += node["idle"]["gpu_hourly"]
        for key in idle:
            idle[key] += node["idle"][key]
        for resource, value in node["idle"]["gpu_by_resource_hourly"].items():
            kind = node["units"][resource]["kind"]
            idle_by_kind[kind] = idle_by_kind.get(kind, 0.0) + value
        if node["idle"]["gpu_unpartitioned_hourly"]:
            idle_by_kind["unpartitioned"] = (
                idle_by_kind.get("unpartitioned", 0.0) + node["idle"]["gpu_unpartitioned_hourly"]
            )
        pool = pools.setdefault(node["node_group"], {})
        for resource, unit in node["units"].items():
            entry = pool.setdefault(resource, {"capacity": 0.0, "allocated": 0.0, "idle": 0.0, "idle_hourly": 0.0})
            entry["capacity"] += unit["capacity"]
            entry["allocated"] += unit["allocated"]
            entry["idle"] += unit["idle"]
            entry["idle_hourly"] += node["idle"]["gpu_by_resource_hourly"][resource]
    allocated = sum(r["hourly"] for r in allocation["pods"])
    result_totals = {k: money(v) for k, v in totals.items()}
    result_totals["monthly"] = money(totals["hourly"] * HOURS_PER_MONTH)
    result_totals["allocated_hourly"] = money(allocated)
    unused = [r["gpu_unused_hourly"] for r in allocation["pods"] if r["gpu_unused_hourly"] is not None]
    return {
        "totals": result_totals,
        "idle": dict(
            {k: money(v) for k, v in idle.items()},
            gpu_by_kind_hourly={k: money(v) for k, v in sorted(idle_by_kind.items())},
            gpu_allocated_unused_hourly=money(sum(unused)) if unused else None,
        ),
        "by_namespace": _rounded(by_namespace),
        "by_label": {key: _rounded(groups) for key, groups in by_label.items()},
        "by_node_group": {
            name: {k: (money(v) if isinstance(v, float) else v) for k, v in row.items()}
            for name, row in sorted(by_group.items())
        },
        "idle_by_pool": pools,
    }
