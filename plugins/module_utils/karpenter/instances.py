# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pool's instance types, looked up in EC2: existence, GPU facts, offerings per zone.

``lookup(ec2, spec)`` does the calls (DescribeInstanceTypes, DescribeSubnets,
DescribeInstanceTypeOfferings) through a boto3 EC2 client made by
module_utils/aws/client.py; ``gpu_facts`` and ``check_instances`` are pure.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter._common import KarpenterPoolError


def gpu_facts(info):
    """The facts of one DescribeInstanceTypes entry a GPU pool cares about."""
    gpus = (info.get("GpuInfo") or {}).get("Gpus") or []
    gpu = gpus[0] if gpus else {}
    return {
        "name": info["InstanceType"],
        "gpu_count": sum(int(g.get("Count") or 0) for g in gpus),
        "gpu_name": (gpu.get("Name") or "").lower() or None,
        "gpu_manufacturer": (gpu.get("Manufacturer") or "").lower() or None,
        "gpu_memory_mib": int((gpu.get("MemoryInfo") or {}).get("SizeInMiB") or 0),
        "vcpus": int((info.get("VCpuInfo") or {}).get("DefaultVCpus") or 0),
        "memory_mib": int((info.get("MemoryInfo") or {}).get("SizeInMiB") or 0),
        "architectures": list((info.get("ProcessorInfo") or {}).get("SupportedArchitectures") or []),
    }


def _family(instance_type):
    return instance_type.split(".", 1)[0]


def matches(spec, facts):
    """Whether an instance type satisfies the pool's GPU requirements (as the NodePool says)."""
    if spec["instance_types"] and facts["name"] not in spec["instance_types"]:
        return False
    if spec["instance_families"] and _family(facts["name"]) not in spec["instance_families"]:
        return False
    if facts["gpu_manufacturer"] != "nvidia" or facts["gpu_count"] < 1:
        return False
    if spec["gpu_names"] and facts["gpu_name"] not in spec["gpu_names"]:
        return False
    if spec.get("gpu_count_min") and facts["gpu_count"] < spec["gpu_count_min"]:
        return False
    if spec.get("gpu_memory_min_mib") and facts["gpu_memory_mib"] < spec["gpu_memory_min_mib"]:
        return False
    return True


def check_instances(spec, described, zones_by_type, subnet_zones):
    """The resolved instance types (facts + zones); KarpenterPoolError naming the field.

    ``described``: DescribeInstanceTypes entries (those of ``instance_types`` when given, else
    of the families / every type); ``zones_by_type``: {type: zones offered in the region};
    ``subnet_zones``: zones of the subnets the EC2NodeClass selects (None: not checked).
    """
    facts = {info["InstanceType"]: gpu_facts(info) for info in described}
    for index, name in enumerate(spec["instance_types"]):
        if name not in facts:
            raise KarpenterPoolError(
                "instance_types[%d]: %s does not exist in EC2 (DescribeInstanceTypes)" % (index, name)
            )
        item = facts[name]
        if item["gpu_manufacturer"] != "nvidia" or item["gpu_count"] < 1:
            raise KarpenterPoolError(
                "instance_types[%d]: %s has no NVIDIA GPU (EC2 reports %s); a GPU pool needs GPU instance types like "
                "p4d.24xlarge, g5.xlarge"
                % (
                    index,
                    name,
                    "%d %s GPUs" % (item["gpu_count"], item["gpu_manufacturer"]) if item["gpu_count"] else "none",
                )
            )
        if not matches(spec, item):
            raise KarpenterPoolError(
                "instance_types[%d]: %s has %d x %s (%d MiB) which does not meet gpu_names %s, gpu_count_min %s, "
                "gpu_memory_min_mib %s"
                % (
                    index,
                    name,
                    item["gpu_count"],
                    item["gpu_name"],
                    item["gpu_memory_mib"],
                    spec["gpu_names"] or "any",
                    spec.get("gpu_count_min") or "any",
                    spec.get("gpu_memory_min_mib") or "any",
                )
            )
    for index, family in enumerate(spec["instance_families"]):
        if not any(_family(n) == family for n in facts):
            raise KarpenterPoolError("instance_families[%d]: %s has no instance types in EC2" % (index, family))
    resolved = [facts[n] for n in sorted(facts) if matches(spec, facts[n])]
    if not resolved:
        raise KarpenterPoolError(
            "instance_types/instance_families/gpu_names: no EC2 instance type has the GPUs the pool asks for "
            "(gpu_names %s, gpu_count_min %s, gpu_memory_min_mib %s)"
            % (spec["gpu_names"] or "any", spec.get("gpu_count_min") or "any", spec.get("gpu_memory_min_mib") or "any")
        )
    for item in resolved:
        offered = sorted(zones_by_type.get(item["name"]) or [])
        item["zones"] = offered if subnet_zones is None else sorted(set(offered) & set(subnet_zones))
    if subnet_zones is not None:
        offered_nowhere = [i["name"] for i in resolved if not i["zones"]]
        if spec["instance_types"] and offered_nowhere:
            raise KarpenterPoolError(
                "instance_types: %s not offered in the zones of the selected subnets (%s)"
                % (", ".join(offered_nowhere), ", ".join(sorted(subnet_zones)) or "no subnet matched subnet_selector")
            )
        resolved = [i for i in resolved if i["zones"]]
        if not resolved:
            raise KarpenterPoolError(
                "subnet_selector: no matching instance type is offered in the zones of the selected subnets (%s)"
                % (", ".join(sorted(subnet_zones)) or "no subnet matched")
            )
    return resolved


def _paginate(client, operation, key, **kwargs):
    paginator = client.get_paginator(operation)
    for page in paginator.paginate(**kwargs):
        yield from page.get(key) or []


def subnet_filters(term):
    if "id" in term:
        return dict(SubnetIds=[term["id"]])
    filters = []
    for key, value in sorted((term.get("tags") or {}).items()):
        if value == "*":
            filters.append({"Name": "tag-key", "Values": [key]})
        else:
            filters.append({"Name": "tag:%s" % key, "Values": [value]})
    return dict(Filters=filters)


def _describe_named(ec2, names):
    """DescribeInstanceTypes of ``names``; a name EC2 does not know is left out (EC2 fails the
    whole call with InvalidInstanceType, so the names are then asked one by one)."""
    try:
        return list(_paginate(ec2, "describe_instance_types", "InstanceTypes", InstanceTypes=list(names)))
    except Exception as exc:  # botocore ClientError; botocore is optional at import time
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
        if code != "InvalidInstanceType":
            raise
    described = []
    for name in names:
        try:
            described += list(_paginate(ec2, "describe_instance_types", "InstanceTypes", InstanceTypes=[name]))
        except Exception as exc:
            if (getattr(exc, "response", None) or {}).get("Error", {}).get("Code") != "InvalidInstanceType":
                raise
    return described


def lookup(ec2, spec):
    """(resolved instance types, subnet zones) for the pool, read from EC2."""
    if spec["instance_types"]:
        described = _describe_named(ec2, spec["instance_types"])
    else:
        filters = (
            [{"Name": "instance-type", "Values": ["%s.*" % f for f in spec["instance_families"]]}]
            if spec["instance_families"]
            else []
        )
        described = list(_paginate(ec2, "describe_instance_types", "InstanceTypes", Filters=filters))
    zones = {}
    subnet_zones = set()
    for term in spec["subnet_selector"]:
        for subnet in _paginate(ec2, "describe_subnets", "Subnets", **subnet_filters(term)):
            subnet_zones.add(subnet["AvailabilityZone"])
    names = sorted({i["InstanceType"] for i in described})
    for start in range(0, len(names), 100):
        chunk = names[start : start + 100]
        for offer in _paginate(
            ec2,
            "describe_instance_type_offerings",
            "InstanceTypeOfferings",
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": chunk}],
        ):
            zones.setdefault(offer["InstanceType"], set()).add(offer["Location"])
    return check_instances(spec, described, zones, subnet_zones), sorted(subnet_zones)
