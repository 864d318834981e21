# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What OpenCost's published GPU formula gives on the same cluster, beside ours. Pure.

OpenCost (pkg/costmodel/costmodel.go, "GPU without cost found"): for a node with a price but
no GPU price, gpuc = the node's nvidia.com/gpu capacity (or its gpu.shared when the device
plugin renames), ramPrice = nodePrice / (gpuc x GPU/RAM + cores x CPU/RAM + GiB),
gpuPrice = ramPrice x GPU/RAM per "GPU", and a pod pays requested nvidia.com/gpu x gpuPrice.
So a MIG node (mixed strategy: nvidia.com/gpu counts only non-MIG GPUs) gets no GPU cost, and
a time-sliced node without renameByDefault counts each replica as a GPU. A node priced by our
on-prem CSV (a gpu row per product) gets that per-GPU price, whatever shares the GPU.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from typing import Any, Dict, Mapping, Sequence

from .allocation import SplitWeights
from .nodes import GPU, GPU_SHARED, HOLDING_PHASES, NodeFacts, PodFacts


def opencost_gpu_price(node: NodeFacts, node_price: float, weights: SplitWeights, gpu_price=None) -> float:
    """OpenCost's per-"GPU" hourly price of one node (what nvidia.com/gpu counts). With a GPU
    price of its own (our on-prem CSV's gpu row) OpenCost takes that as it is."""
    if gpu_price is not None:
        return gpu_price
    gpuc = node.gpu_resources.get(GPU) or node.gpu_resources.get(GPU_SHARED) or 0.0
    gpu_to_ram = weights.gpu / weights.memory_gib
    cpu_to_ram = weights.cpu_core / weights.memory_gib
    multiple = gpuc * gpu_to_ram + node.cpu * cpu_to_ram + node.memory_gib
    return node_price / multiple * gpu_to_ram if multiple and gpuc else 0.0


def compare(
    nodes: Sequence[NodeFacts], pods: Sequence[PodFacts], allocation: Mapping[str, Any], weights: SplitWeights
) -> Dict[str, Any]:
    """Per-pod GPU cost, ours and OpenCost's, with the reason where they differ."""
    by_node = {n.name: n for n in nodes}
    ours = {(r["namespace"], r["pod"]): r for r in allocation["pods"]}
    rows = []
    for pod in pods:
        row = ours.get((pod.namespace, pod.name))
        if row is None or not pod.gpu_requests or pod.phase not in HOLDING_PHASES:
            continue
        node = by_node[pod.node]
        node_row = allocation["nodes"][node.name]
        price = opencost_gpu_price(node, node_row["hourly"], weights, node_row["price"].get("gpu_hourly_usd"))
        counted = pod.gpu_requests.get(GPU, 0.0) + pod.gpu_requests.get(GPU_SHARED, 0.0)
        theirs = counted * price
        if node.mig_strategy == "mixed" and any(r.startswith("nvidia.com/mig-") for r in pod.gpu_requests):
            reason = "MIG device: OpenCost counts only nvidia.com/gpu, so a MIG slice costs nothing there"
        elif node.sharing != "none" and GPU in node.gpu_resources:
            reason = "time-slicing/MPS without renameByDefault: OpenCost counts %d replicas as %d GPUs" % (
                node.gpu_resources[GPU],
                node.gpu_resources[GPU],
            )
        elif node.sharing != "none":
            reason = "shared GPU (renamed): OpenCost prices each replica as a GPU"
        elif node.mig_strategy == "single":
            reason = "MIG single strategy: OpenCost prices each MIG device as a whole GPU"
        else:
            reason = None
        equal = abs(theirs - row["gpu_hourly"]) < 1e-9
        rows.append(
            {
                "namespace": pod.namespace,
                "pod": pod.name,
                "node": node.name,
                "ours_gpu_hourly": row["gpu_hourly"],
                "opencost_gpu_hourly": theirs,
                "equal": equal,
                "reason": None if equal else (reason or "differs"),
            }
        )
    return {"pods": rows, "differing": sum(1 for r in rows if not r["equal"])}
