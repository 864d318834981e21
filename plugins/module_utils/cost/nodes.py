# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Node and a Pod object say about cost: GPU model, MIG devices, sharing replicas,
node group and capacity type; a pod's effective requests. Pure: plain dicts in, facts out.

Labels and resources read are the ones GPU Feature Discovery and the NVIDIA device plugin
publish (nvidia.com/gpu.product, gpu.count, gpu.replicas, gpu.sharing-strategy,
nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-<profile>) and the cloud's well-known
labels (node.kubernetes.io/instance-type, topology.kubernetes.io/zone,
karpenter.sh/capacity-type, eks.amazonaws.com/capacityType).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..mig.catalog import CATALOG, GpuModel
from ._common import quantity

GPU = "nvidia.com/gpu"
GPU_SHARED = "nvidia.com/gpu.shared"
MIG_PREFIX = "nvidia.com/mig-"
GIB = 1024.0**3
HOLDING_PHASES = ("Pending", "Running", "Unknown")
DEFAULT_GROUP_LABELS = ("gpuops.io/node-group", "karpenter.sh/nodepool", "eks.amazonaws.com/nodegroup")


def _product_key(name: str) -> str:
    text = str(name).lower().replace(" ", "-")
    return text[len("nvidia-") :] if text.startswith("nvidia-") else text


_MODELS_BY_PRODUCT = {_product_key(n): m for m in CATALOG for n in m.nvml_names}


def model_for_product(product: Optional[str]) -> Tuple[Optional[str], Optional[GpuModel]]:
    """(base product, catalog model) from GFD's gpu.product label ("NVIDIA-A100-SXM4-40GB",
    "...-SHARED", "...-MIG-1g.5gb")."""
    if not product:
        return None, None
    base = product
    for marker in ("-MIG-", "-SHARED"):
        if marker in base:
            base = base.split(marker, 1)[0]
    return base, _MODELS_BY_PRODUCT.get(_product_key(base))


@dataclass
class NodeFacts:
    name: str
    labels: Dict[str, str]
    cpu: float
    memory_gib: float
    gpu_product: Optional[str]
    gpu_model: Optional[GpuModel]
    gpu_count: int  # physical GPUs
    gpu_resources: Dict[str, float]  # advertised GPU-ish resources (allocatable)
    replicas: int
    sharing: str  # none | time-slicing | mps
    mig_strategy: str  # none | single | mixed
    node_group: str
    capacity_type: str  # on-demand | spot | on-prem
    instance_type: Optional[str]
    zone: Optional[str]
    created: Optional[str] = None  # metadata.creationTimestamp (RFC 3339), how long it has run

    @property
    def compute_slices(self) -> int:
        return self.gpu_model.compute_slices if self.gpu_model else 7

    def slices_of(self, resource: str) -> Optional[int]:
        """Compute slices one unit of a MIG resource takes (None: not a MIG resource)."""
        profile = None
        if resource.startswith(MIG_PREFIX):
            profile = resource[len(MIG_PREFIX) :]
            if profile.endswith(".shared"):
                profile = profile[: -len(".shared")]
        elif self.mig_strategy == "single" and resource in (GPU, GPU_SHARED):
            marker = (self.labels.get("nvidia.com/gpu.product") or "").split("-MIG-", 1)
            profile = marker[1].replace("-SHARED", "") if len(marker) == 2 else None
        if profile is None:
            return None
        if self.gpu_model is not None and self.gpu_model.profile(profile) is not None:
            return self.gpu_model.profile(profile).compute_slices
        head = profile.split(".", 1)[0]  # "3g" for a model missing from the catalog
        return int(head[:-1]) if head.endswith("g") and head[:-1].isdigit() else None


@dataclass
class PodFacts:
    namespace: str
    name: str
    node: Optional[str]
    phase: str
    labels: Dict[str, str]
    cpu: float
    memory_gib: float
    gpu_requests: Dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return "%s/%s" % (self.namespace, self.name)


def _gpu_resource(name: str) -> bool:
    return name in (GPU, GPU_SHARED) or name.startswith(MIG_PREFIX)


def node_facts(
    node: Mapping[str, Any],
    group_labels: Sequence[str] = DEFAULT_GROUP_LABELS,
    group_of: Optional[Mapping[str, str]] = None,
) -> NodeFacts:
    """Facts of one Node object (a dict as the API returns it)."""
    meta = node.get("metadata") or {}
    name = meta.get("name") or ""
    labels = dict(meta.get("labels") or {})
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    product, model = model_for_product(labels.get("nvidia.com/gpu.product"))
    gpu_resources = {k: quantity(v, "node %s allocatable %s" % (name, k)) for k, v in alloc.items() if _gpu_resource(k)}
    try:
        count = int(labels.get("nvidia.com/gpu.count") or 0)
    except ValueError:
        count = 0
    if not count and gpu_resources.get(GPU):
        count = int(gpu_resources[GPU])
    try:
        replicas = max(1, int(labels.get("nvidia.com/gpu.replicas") or 1))
    except ValueError:
        replicas = 1
    sharing = labels.get("nvidia.com/gpu.sharing-strategy") or "none"
    if sharing == "none":
        replicas = 1
    strategy = labels.get("nvidia.com/mig.strategy") or "none"
    if strategy == "none" and any(k.startswith(MIG_PREFIX) for k in gpu_resources):
        strategy = "mixed"
    group = (group_of or {}).get(name)
    for key in group_labels:
        if group:
            break
        group = labels.get(key)
    capacity = labels.get("karpenter.sh/capacity-type") or labels.get("eks.amazonaws.com/capacityType") or ""
    capacity = capacity.lower().replace("_", "-")
    instance_type = labels.get("node.kubernetes.io/instance-type") or labels.get("beta.kubernetes.io/instance-type")
    if capacity not in ("spot", "on-demand"):
        capacity = "on-demand" if instance_type and "." in instance_type else "on-prem"
    return NodeFacts(
        name=name,
        labels=labels,
        cpu=quantity(alloc.get("cpu"), "node %s cpu" % name),
        memory_gib=quantity(alloc.get("memory"), "node %s memory" % name) / GIB,
        gpu_product=product,
        gpu_model=model,
        gpu_count=count,
        gpu_resources=gpu_resources,
        replicas=replicas,
        sharing=sharing,
        mig_strategy=strategy,
        node_group=group or "ungrouped",
        capacity_type=capacity,
        instance_type=instance_type,
        zone=labels.get("topology.kubernetes.io/zone"),
        created=meta.get("creationTimestamp"),
    )


def _requests(containers: List[Mapping[str, Any]]) -> List[Dict[str, float]]:
    result = []
    for container in containers or []:
        resources = container.get("resources") or {}
        wanted = dict(resources.get("limits") or {})  # extended resources: limits imply requests
        wanted.update(resources.get("requests") or {})
        name = container.get("name")
        result.append({k: quantity(v, lambda k=k, name=name: "container %s %s" % (name, k)) for k, v in wanted.items()})
    return result


def pod_facts(pod: Mapping[str, Any]) -> PodFacts:
    """A pod's effective requests: max(sum of containers, largest init container), per resource."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    total = {}  # type: Dict[str, float]
    for req in _requests(spec.get("containers")):
        for key, value in req.items():
            total[key] = total.get(key, 0.0) + value
    for req in _requests(spec.get("initContainers")):
        for key, value in req.items():
            total[key] = max(total.get(key, 0.0), value)
    return PodFacts(
        namespace=meta.get("namespace") or "default",
        name=meta.get("name") or "",
        node=spec.get("nodeName"),
        phase=(pod.get("status") or {}).get("phase") or "Pending",
        labels=dict(meta.get("labels") or {}),
        cpu=total.get("cpu", 0.0),
        memory_gib=total.get("memory", 0.0) / GIB,
        gpu_requests={k: v for k, v in total.items() if _gpu_resource(k) and v},
    )
