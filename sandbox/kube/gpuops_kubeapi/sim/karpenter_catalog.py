"""EC2 instance types for the stand-in Karpenter, and Karpenter's requirement arithmetic.

Instance types come from EC2 through boto3 when GPUOPS_SANDBOX_AWS_ENDPOINT names an endpoint
(the sandbox's moto server; AWS_* variables for credentials and region), else from moto's own
bundled EC2 data when moto is importable: the same DescribeInstanceTypes entries either way,
with their real vCPU, memory and GPU counts. Each type gets the well-known labels Karpenter's
AWS provider derives (karpenter.k8s.aws/instance-*), and the capacity a node of it registers
(vCPUs, memory less the VM overhead Karpenter assumes, pods, nvidia.com/gpu).
"""

from __future__ import annotations

import gzip
import json
import os
import threading
from decimal import Decimal
from typing import Any

ENDPOINT_ENV = "GPUOPS_SANDBOX_AWS_ENDPOINT"
VM_MEMORY_OVERHEAD = Decimal("0.075")  # Karpenter's default vmMemoryOverheadPercent
_lock = threading.Lock()
_cache: dict[str, list[dict[str, Any]]] = {}


def _from_moto_data() -> list[dict[str, Any]]:
    try:
        import moto
    except ImportError:
        return []
    path = os.path.join(
        os.path.dirname(moto.__file__), "ec2", "resources", "instance_types.json.gz"
    )
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return list(json.load(handle).values())
    except OSError:
        return []


def _from_ec2(endpoint: str) -> list[dict[str, Any]]:
    import boto3

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=region)
    found = []
    for page in ec2.get_paginator("describe_instance_types").paginate():
        found += page.get("InstanceTypes") or []
    return found


def instance_types() -> list[dict[str, Any]]:
    """Every instance type as {name, labels, capacity, gpu_model}, loaded once per source."""
    endpoint = os.environ.get(ENDPOINT_ENV) or ""
    with _lock:
        if endpoint not in _cache:
            raw = _from_ec2(endpoint) if endpoint else _from_moto_data()
            _cache[endpoint] = [describe(entry) for entry in raw if entry.get("InstanceType")]
        return _cache[endpoint]


def describe(info: dict[str, Any]) -> dict[str, Any]:
    name = info["InstanceType"]
    family, _dot, size = name.partition(".")
    vcpus = int((info.get("VCpuInfo") or {}).get("DefaultVCpus") or 0)
    memory_mib = int((info.get("MemoryInfo") or {}).get("SizeInMiB") or 0)
    gpus = (info.get("GpuInfo") or {}).get("Gpus") or []
    gpu = gpus[0] if gpus else {}
    gpu_count = sum(int(g.get("Count") or 0) for g in gpus)
    archs = (info.get("ProcessorInfo") or {}).get("SupportedArchitectures") or ["x86_64"]
    arch = "arm64" if "arm64" in archs else "amd64"
    category = "".join(ch for ch in family if ch.isalpha())[:1]
    generation = "".join(ch for ch in family if ch.isdigit())
    labels = {
        "node.kubernetes.io/instance-type": name,
        "kubernetes.io/arch": arch,
        "kubernetes.io/os": "linux",
        "karpenter.k8s.aws/instance-family": family,
        "karpenter.k8s.aws/instance-size": size,
        "karpenter.k8s.aws/instance-category": category,
        "karpenter.k8s.aws/instance-cpu": str(vcpus),
        "karpenter.k8s.aws/instance-memory": str(memory_mib),
    }
    if generation:
        labels["karpenter.k8s.aws/instance-generation"] = generation
    capacity = {
        "cpu": Decimal(vcpus),
        "memory": Decimal(memory_mib) * (1 - VM_MEMORY_OVERHEAD) * 1024 * 1024,
        "pods": Decimal(110),
    }
    gpu_model = None
    if gpu_count:
        labels["karpenter.k8s.aws/instance-gpu-name"] = (gpu.get("Name") or "").lower()
        labels["karpenter.k8s.aws/instance-gpu-manufacturer"] = (
            gpu.get("Manufacturer") or ""
        ).lower()
        labels["karpenter.k8s.aws/instance-gpu-count"] = str(gpu_count)
        labels["karpenter.k8s.aws/instance-gpu-memory"] = str(
            (gpu.get("MemoryInfo") or {}).get("SizeInMiB") or 0
        )
        if (gpu.get("Manufacturer") or "").lower() == "nvidia":
            capacity["nvidia.com/gpu"] = Decimal(gpu_count)
            gpu_model = (
                (gpu.get("Name") or "").upper(),
                int((gpu.get("MemoryInfo") or {}).get("SizeInMiB") or 0),
            )
    # Karpenter sorts launch candidates by price; without the Pricing API the stand-in uses
    # the size (GPUs, then vCPUs, then memory) as the price order.
    return {
        "name": name,
        "labels": labels,
        "capacity": capacity,
        "gpu_model": gpu_model,
        "gpu_count": gpu_count,
        "order": (gpu_count, vcpus, memory_mib, name),
    }


def requirement_allows(requirement: dict[str, Any], labels: dict[str, str]) -> bool:
    """One NodeSelectorRequirement (Karpenter's operators included) against labels."""
    key = requirement.get("key")
    operator = requirement.get("operator")
    values = [str(v) for v in requirement.get("values") or []]
    present = key in labels
    value = labels.get(key)
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt", "Gte", "Lte"):
        if not present or not values:
            return False
        try:
            have, bound = int(value), int(values[0])
        except ValueError:
            return False
        return {
            "Gt": have > bound,
            "Lt": have < bound,
            "Gte": have >= bound,
            "Lte": have <= bound,
        }[operator]
    return False


def requirements_allow(requirements: list[dict[str, Any]], labels: dict[str, str]) -> bool:
    """Every requirement allows `labels`, for keys the labels define or requirements that
    need a value; a key a pool does not constrain (e.g. zone) is left open."""
    return all(requirement_allows(r, labels) for r in requirements or [] if isinstance(r, dict))


def values_for(requirements: list[dict[str, Any]], key: str) -> list[str] | None:
    """The allowed values of `key` (In), None when unconstrained."""
    allowed = None
    for requirement in requirements or []:
        if requirement.get("key") == key and requirement.get("operator") == "In":
            values = [str(v) for v in requirement.get("values") or []]
            allowed = values if allowed is None else [v for v in allowed if v in values]
    return allowed
