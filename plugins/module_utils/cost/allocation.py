# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Split each node's hourly price into GPU, CPU and memory, then hand each GPU's cost to
what runs on it. Pure.

Node split: when the price source gives the GPU part (on-prem TCO), GPU = that x GPUs and the
rest is split between CPU and memory by the weights; otherwise the whole price is split by
relative weights (cpu per core, memory per GiB, GPU per GPU), as OpenCost does when a node has
a price but no GPU price (costmodel.go: ramPrice = nodePrice / (gpus x gpu/ram + cores x cpu/ram
+ GiB)).

GPU units: one unit of a GPU resource costs
    per-GPU price x (compute slices of the unit / slices of the GPU) / sharing replicas
so a whole GPU costs the per-GPU price, a 1g MIG device on a 7-slice GPU 1/7 of it, a
time-sliced or MPS replica 1/replicas of its device. Each advertised unit not requested is idle
(by resource); what the node's GPUs cost beyond the advertised units (MIG slices in no instance,
GPUs the device plugin does not advertise) is idle as "unpartitioned".
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

from ._common import CostInputError, number
from .nodes import HOLDING_PHASES, NodeFacts, PodFacts
from .prices import PriceQuote

WEIGHT_KEYS = ("cpu_core_hourly", "memory_gib_hourly", "gpu_hourly", "source")


@dataclass(frozen=True)
class SplitWeights:
    cpu_core: float
    memory_gib: float
    gpu: float
    source: str


def split_weights(params: Any, field: str = "split_weights") -> SplitWeights:
    if not isinstance(params, Mapping):
        raise CostInputError(field, "must be a mapping with %s" % ", ".join(WEIGHT_KEYS))
    unknown = sorted(set(params) - set(WEIGHT_KEYS))
    if unknown:
        raise CostInputError("%s.%s" % (field, unknown[0]), "unknown key; allowed: %s" % ", ".join(WEIGHT_KEYS))
    weights = SplitWeights(
        number(params.get("cpu_core_hourly"), field + ".cpu_core_hourly", 0.0, 100.0, False),
        number(params.get("memory_gib_hourly"), field + ".memory_gib_hourly", 0.0, 100.0, False),
        number(params.get("gpu_hourly"), field + ".gpu_hourly", 0.0, 1000.0, False),
        str(params.get("source") or "split weights"),
    )
    return weights


@dataclass
class NodeSplit:
    total: float
    gpu_each: float  # per physical GPU
    cpu_core: float  # per core
    memory_gib: float  # per GiB

    @property
    def gpu(self) -> float:
        return self.total - self.cpu_all - self.memory_all

    cpu_all: float = 0.0
    memory_all: float = 0.0


def split_node(node: NodeFacts, quote: PriceQuote, weights: SplitWeights) -> NodeSplit:
    """Per-GPU, per-core and per-GiB hourly prices of one node."""
    price = quote.hourly_usd
    cpu_to_ram = weights.cpu_core / weights.memory_gib
    gpus = node.gpu_count
    if quote.gpu_hourly_usd is not None and gpus:
        gpu_each = quote.gpu_hourly_usd
        rest = price - gpu_each * gpus
        multiple = node.cpu * cpu_to_ram + node.memory_gib
    else:
        gpu_to_ram = weights.gpu / weights.memory_gib
        multiple = gpus * gpu_to_ram + node.cpu * cpu_to_ram + node.memory_gib
        ram = price / multiple if multiple else 0.0
        gpu_each = ram * gpu_to_ram if gpus else 0.0
        rest = price - gpu_each * gpus
        multiple = node.cpu * cpu_to_ram + node.memory_gib
    ram = rest / multiple if multiple else 0.0
    split = NodeSplit(price, gpu_each, ram * cpu_to_ram, ram)
    split.cpu_all = split.cpu_core * node.cpu
    split.memory_all = ram * node.memory_gib
    return split


def unit_price(node: NodeFacts, split: NodeSplit, resource: str) -> float:
    """Hourly price of one unit of a GPU resource on ``node``."""
    slices = node.slices_of(resource)
    share = 1.0 if slices is None else slices / float(node.compute_slices)
    replicas = node.replicas if node.sharing != "none" else 1
    return split.gpu_each * share / replicas


def _kind(node: NodeFacts, resource: str) -> str:
    if node.slices_of(resource) is not None:
        kind = "mig"
    else:
        kind = "whole"
    if node.sharing != "none":
        kind += "-" + node.sharing
    return kind


def allocate(
    nodes: Sequence[NodeFacts],
    pods: Sequence[PodFacts],
    quotes: Mapping[str, PriceQuote],
    weights: SplitWeights,
    activity: Optional[Mapping[str, float]] = None,
) -> Dict[str, Any]:
    """Hourly cost per pod and per node, idle by node and resource. ``activity``: pod key ->
    mean GR_ENGINE_ACTIVE (0..1) over the window."""
    activity = activity or {}
    by_node = {n.name: n for n in nodes}
    splits = {}
    node_rows = {}
    for node in nodes:
        quote = quotes.get(node.name)
        if quote is None:
            raise CostInputError(
                "prices",
                "no price for node %s (instance type %s, node group %s)"
                % (node.name, node.instance_type, node.node_group),
            )
        split = splits[node.name] = split_node(node, quote, weights)
        units = {}
        for resource, capacity in sorted(node.gpu_resources.items()):
            if capacity <= 0:
                continue
            units[resource] = {
                "capacity": capacity,
                "allocated": 0.0,
                "unit_hourly": unit_price(node, split, resource),
                "kind": _kind(node, resource),
                "slices_per_unit": node.slices_of(resource),
            }
        node_rows[node.name] = {
            "name": node.name,
            "node_group": node.node_group,
            "capacity_type": node.capacity_type,
            "instance_type": node.instance_type,
            "zone": node.zone,
            "gpu_product": node.gpu_product,
            "gpu_count": node.gpu_count,
            "sharing": node.sharing,
            "replicas": node.replicas,
            "mig_strategy": node.mig_strategy,
            "price": quote.to_dict(),
            "hourly": split.total,
            "gpu_hourly": split.gpu_each * node.gpu_count,
            "gpu_each_hourly": split.gpu_each,
            "cpu_core_hourly": split.cpu_core,
            "memory_gib_hourly": split.memory_gib,
            "cpu_hourly": split.cpu_all,
            "memory_hourly": split.memory_all,
            "units": units,
            "cpu_allocated": 0.0,
            "memory_gib_allocated": 0.0,
        }
    pod_rows = []
    for pod in pods:
        if not pod.node or pod.phase not in HOLDING_PHASES or pod.node not in by_node:
            continue
        node = by_node[pod.node]
        row = node_rows[node.name]
        split = splits[node.name]
        gpu_cost = 0.0
        gpu_detail = {}
        for resource, count in sorted(pod.gpu_requests.items()):
            unit = row["units"].get(resource)
            price = unit["unit_hourly"] if unit else unit_price(node, split, resource)
            if unit:
                unit["allocated"] += count
            gpu_cost += price * count
            gpu_detail[resource] = count
        cpu_cost = pod.cpu * split.cpu_core
        memory_cost = pod.memory_gib * split.memory_gib
        row["cpu_allocated"] += pod.cpu
        row["memory_gib_allocated"] += pod.memory_gib
        pod_activity = activity.get(pod.key)
        pod_rows.append(
            {
                "namespace": pod.namespace,
                "pod": pod.name,
                "node": node.name,
                "node_group": node.node_group,
                "labels": pod.labels,
                "gpu_requests": gpu_detail,
                "gpu_kind": ",".join(sorted({_kind(node, r) for r in gpu_detail})) or None,
                "gpu_hourly": gpu_cost,
                "cpu_hourly": cpu_cost,
                "memory_hourly": memory_cost,
                "hourly": gpu_cost + cpu_cost + memory_cost,
                "gpu_activity": pod_activity,
                "gpu_unused_hourly": None if pod_activity is None else gpu_cost * (1.0 - pod_activity),
            }
        )
    for row in node_rows.values():
        advertised = 0.0
        idle = {}
        for resource, unit in row["units"].items():
            advertised += unit["capacity"] * unit["unit_hourly"]
            free = max(0.0, unit["capacity"] - unit["allocated"])
            unit["idle"] = free
            idle[resource] = free * unit["unit_hourly"]
        node = by_node[row["name"]]
        unpartitioned = max(0.0, row["gpu_hourly"] - advertised)
        slices_total = node.gpu_count * node.compute_slices
        row["idle"] = {
            "gpu_by_resource_hourly": idle,
            "gpu_unpartitioned_hourly": unpartitioned,
            "gpu_hourly": sum(idle.values()) + unpartitioned,
            "cpu_hourly": max(0.0, row["cpu_hourly"] - row["cpu_allocated"] * row["cpu_core_hourly"]),
            "memory_hourly": max(0.0, row["memory_hourly"] - row["memory_gib_allocated"] * row["memory_gib_hourly"]),
        }
        if node.mig_strategy != "none" and node.gpu_count:
            used = sum(
                u["allocated"] * (u["slices_per_unit"] or 0) for u in row["units"].values() if u["slices_per_unit"]
            )
            configured = sum(
                u["capacity"] * (u["slices_per_unit"] or 0) for u in row["units"].values() if u["slices_per_unit"]
            )
            row["mig_slices"] = {
                "total": slices_total,
                "configured": configured / (node.replicas if node.sharing != "none" else 1),
                "allocated": used / (node.replicas if node.sharing != "none" else 1),
            }
    return {"nodes": node_rows, "pods": pod_rows}
