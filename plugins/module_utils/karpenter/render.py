# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The objects of one GPU pool: NodePool, EC2NodeClass and NodeOverlays. Pure, no I/O.

NodeOverlays carry the extended resources the pool's nodes will advertise once the GPU
Operator has applied the node group's MIG layout (``nvidia.com/mig-<profile>``, mixed strategy)
or its sharing config (renamed time-sliced/MPS replicas), so Karpenter can launch a node for a
pod asking for them. MIG geometry comes from the collection's MIG catalog and planner.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import copy

from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter._common import (
    GPU_RESOURCE,
    LABEL_CAPACITY_TYPE,
    LABEL_FAMILY,
    LABEL_GPU_COUNT,
    LABEL_GPU_MANUFACTURER,
    LABEL_GPU_MEMORY,
    LABEL_GPU_NAME,
    LABEL_INSTANCE_TYPE,
    LABEL_NODEPOOL,
    NODECLASS_API,
    NODECLASS_GROUP,
    NODEPOOL_API,
    OVERLAY_API,
    POOL_LABEL,
    KarpenterPoolError,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.catalog import model_by_key
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.planner import MigLayoutError, plan_layout_for_model

MANAGED_BY = {"app.kubernetes.io/managed-by": "gpuops.cluster"}


def _labels(pool):
    return dict(MANAGED_BY, **{POOL_LABEL: pool})


def deep_merge(base, extra):
    """``extra`` merged into a copy of ``base`` (mappings recursively, anything else replaced)."""
    result = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def requirements(spec):
    """The NodePool's scheduling requirements from the typed inputs, then the user's own."""
    result = [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]
    if spec["instance_types"]:
        result.append({"key": LABEL_INSTANCE_TYPE, "operator": "In", "values": list(spec["instance_types"])})
    if spec["instance_families"]:
        result.append({"key": LABEL_FAMILY, "operator": "In", "values": list(spec["instance_families"])})
    result.append({"key": LABEL_GPU_MANUFACTURER, "operator": "In", "values": ["nvidia"]})
    if spec["gpu_names"]:
        result.append({"key": LABEL_GPU_NAME, "operator": "In", "values": list(spec["gpu_names"])})
    if spec.get("gpu_count_min"):
        result.append({"key": LABEL_GPU_COUNT, "operator": "Gt", "values": [str(spec["gpu_count_min"] - 1)]})
    if spec.get("gpu_memory_min_mib"):
        result.append({"key": LABEL_GPU_MEMORY, "operator": "Gt", "values": [str(spec["gpu_memory_min_mib"] - 1)]})
    result.append({"key": LABEL_CAPACITY_TYPE, "operator": "In", "values": list(spec["capacity_types"])})
    return result + copy.deepcopy(spec["requirements"])


def node_pool(spec):
    template_spec = {
        "nodeClassRef": {"group": NODECLASS_GROUP, "kind": "EC2NodeClass", "name": spec["name"]},
        "requirements": requirements(spec),
        "expireAfter": spec["expire_after"],
    }
    if spec["taints"]:
        template_spec["taints"] = spec["taints"]
    if spec["startup_taints"]:
        template_spec["startupTaints"] = spec["startup_taints"]
    if spec["termination_grace_period"]:
        template_spec["terminationGracePeriod"] = spec["termination_grace_period"]
    template = {"spec": template_spec}
    if spec["labels"]:
        template["metadata"] = {"labels": dict(spec["labels"])}
    body = {
        "template": template,
        "disruption": {
            "consolidationPolicy": spec["consolidation_policy"],
            "consolidateAfter": spec["consolidate_after"],
        },
    }
    if spec["budgets"]:
        body["disruption"]["budgets"] = spec["budgets"]
    if spec["limits"]:
        body["limits"] = dict(spec["limits"])
    if spec["weight"] is not None:
        body["weight"] = spec["weight"]
    body = deep_merge(body, spec["node_pool_spec"])
    return {
        "apiVersion": NODEPOOL_API,
        "kind": "NodePool",
        "metadata": {"name": spec["name"], "labels": _labels(spec["name"])},
        "spec": body,
    }


def node_class(spec):
    body = {}
    if spec["role"]:
        body["role"] = spec["role"]
    else:
        body["instanceProfile"] = spec["instance_profile"]
    body["amiSelectorTerms"] = [{"alias": spec["ami_alias"]}]
    if spec["ami_family"]:
        body["amiFamily"] = spec["ami_family"]
    body["subnetSelectorTerms"] = copy.deepcopy(spec["subnet_selector"])
    body["securityGroupSelectorTerms"] = copy.deepcopy(spec["security_group_selector"])
    if spec["tags"]:
        body["tags"] = dict(spec["tags"])
    if spec["user_data"]:
        body["userData"] = spec["user_data"]
    if spec["kubelet"]:
        body["kubelet"] = copy.deepcopy(spec["kubelet"])
    if spec["block_device_mappings"]:
        body["blockDeviceMappings"] = copy.deepcopy(spec["block_device_mappings"])
    body = deep_merge(body, spec["node_class_spec"])
    return {
        "apiVersion": NODECLASS_API,
        "kind": "EC2NodeClass",
        "metadata": {"name": spec["name"], "labels": _labels(spec["name"])},
        "spec": body,
    }


def mig_model_for(instance):
    """The MIG catalog entry of an instance type's GPU (EC2 name + per-GPU memory), or None."""
    name = (instance.get("gpu_name") or "").upper()
    memory = instance.get("gpu_memory_mib") or 0
    if not name or not memory:
        return None
    return model_by_key("%s-%dGB" % (name, round(memory / 1024.0)))


def mig_resources(spec, instance):
    """``{resource: count}`` a node of ``instance`` advertises with the pool's MIG layout."""
    layout = spec["mig_layout"]
    model = mig_model_for(instance)
    if model is None:
        raise KarpenterPoolError(
            "mig_layout: instance type %s has %s GPUs (%d MiB), which do not support MIG; MIG GPUs in the "
            "catalog: A100, A30, H100, H200"
            % (instance["name"], instance.get("gpu_name") or "no", instance.get("gpu_memory_mib") or 0)
        )
    try:
        plan_layout_for_model(model, layout)
    except MigLayoutError as exc:
        raise KarpenterPoolError(
            "mig_layout: on %s (%s): %s; profiles of %s: %s"
            % (instance["name"], model.key, exc, model.key, ", ".join(model.profile_names))
        ) from None
    gpus = instance["gpu_count"]
    if spec["mig_strategy"] == "single":
        return {GPU_RESOURCE: sum(layout.values()) * gpus}
    return {"nvidia.com/mig-%s" % profile: count * gpus for profile, count in sorted(layout.items())}


def advertised_resources(spec, instance):
    """Every GPU resource a node of ``instance`` advertises once the GPU Operator configured it."""
    if spec["mig_layout"]:
        resources = mig_resources(spec, instance)
    else:
        resources = {GPU_RESOURCE: instance["gpu_count"]}
    sharing = spec.get("sharing")
    if sharing:
        shared = {}
        for name, count in resources.items():
            rule = sharing["resources"].get(name)
            if rule is None:
                shared[name] = count
            else:
                shared[rule["advertised"]] = shared.get(rule["advertised"], 0) + count * rule["replicas"]
        resources = shared
    return resources


def overlay_capacity(spec, instance):
    """The extended resources a NodeOverlay must add for ``instance`` (those EC2 data lacks).

    Karpenter already knows ``nvidia.com/gpu`` = the GPU count from EC2; an overlay adds
    resources, it cannot replace that one, so only other names go in.
    """
    return {
        name: str(count) for name, count in sorted(advertised_resources(spec, instance).items()) if name != GPU_RESOURCE
    }


def overlay_name(pool, instance_type):
    return "%s-%s" % (pool, instance_type.replace(".", "-"))


def node_overlays(spec, instances):
    result = []
    for instance in sorted(instances, key=lambda i: i["name"]):
        capacity = overlay_capacity(spec, instance)
        if not capacity:
            continue
        result.append(
            {
                "apiVersion": OVERLAY_API,
                "kind": "NodeOverlay",
                "metadata": {"name": overlay_name(spec["name"], instance["name"]), "labels": _labels(spec["name"])},
                "spec": {
                    "requirements": [
                        {"key": LABEL_NODEPOOL, "operator": "In", "values": [spec["name"]]},
                        {"key": LABEL_INSTANCE_TYPE, "operator": "In", "values": [instance["name"]]},
                    ],
                    "capacity": capacity,
                },
            }
        )
    return result


def render(spec, instances):
    """(node_pool, node_class, overlays) for a validated spec and its resolved instance types."""
    return node_pool(spec), node_class(spec), node_overlays(spec, instances)
