# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Warnings that save a night: valid pools that will hurt. Pure, no I/O."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter._common import GPU_RESOURCE, parse_quantity

# What installs an NVIDIA driver in a node's user data (packages, the .run installer, DKMS).
DRIVER_IN_USER_DATA = re.compile(
    r"(nvidia-driver|cuda-drivers|nvidia-open|kmod-nvidia|NVIDIA-Linux-[^\s]*\.run|nvidia-installer|dkms\s+install[^\n]*nvidia)",
    re.IGNORECASE,
)


def _limit_shortfalls(limits, instance):
    """Limits that one node of ``instance`` alone would exceed."""
    need = {
        "cpu": instance["vcpus"],
        "memory": instance["memory_mib"] * 1024.0 * 1024.0,
        GPU_RESOURCE: instance["gpu_count"],
    }
    result = []
    for key, amount in sorted(need.items()):
        if key in limits and amount and parse_quantity(limits[key]) < amount:
            result.append(
                "%s %s < %s" % (key, limits[key], "%dMi" % instance["memory_mib"] if key == "memory" else amount)
            )
    return result


def warnings_for(spec, instances):
    result = []
    if not any(t["key"] == GPU_RESOURCE for t in spec["taints"]):
        result.append(
            "taints: the GPU pool has no nvidia.com/gpu taint, so CPU pods can land on GPU nodes and keep them "
            "alive (consolidation cannot empty them); add {key: nvidia.com/gpu, value: 'true', effect: NoSchedule}"
        )
    if spec["expire_after"] != "Never" and not spec["termination_grace_period"]:
        result.append(
            "termination_grace_period: expire_after %s without termination_grace_period: a node running a "
            "karpenter.sh/do-not-disrupt pod (a training Job) is never drained after expiry and lingers forever; "
            "set termination_grace_period (for example 24h) to bound it" % spec["expire_after"]
        )
    for instance in instances:
        short = _limit_shortfalls(spec["limits"], instance)
        if short:
            result.append(
                "limits: smaller than one %s (%s): Karpenter can never launch that instance type in this pool"
                % (instance["name"], ", ".join(short))
            )
    if spec["user_data"] and spec["gpu_operator_driver"] and DRIVER_IN_USER_DATA.search(spec["user_data"]):
        result.append(
            "user_data: installs an NVIDIA driver while the GPU Operator's driver is enabled (gpu_operator_driver: "
            "true): the two fight over the kernel module and the device plugin never registers nvidia.com/gpu; "
            "drop the driver from user_data or set driver.enabled=false in the ClusterPolicy"
        )
    if spec["consolidation_policy"] != "WhenEmpty":
        result.append(
            "consolidation_policy: %s moves running pods to cheaper nodes; GPU training Jobs must carry the "
            "karpenter.sh/do-not-disrupt: 'true' annotation or they are evicted mid-run" % spec["consolidation_policy"]
        )
    if spec["mig_layout"] and spec["mig_strategy"] == "single":
        result.append(
            "mig_strategy: single advertises MIG devices as nvidia.com/gpu, which a NodeOverlay cannot replace; "
            "Karpenter plans with the whole-GPU count (fewer pods per node than the node will take)"
        )
    if spec.get("sharing"):
        plain = sorted(n for n, r in spec["sharing"]["resources"].items() if r["advertised"] == GPU_RESOURCE)
        if plain:
            result.append(
                "sharing_config: %s replicas are advertised as nvidia.com/gpu itself, which a NodeOverlay cannot "
                "replace; Karpenter plans with the whole-GPU count (set renameByDefault to get nvidia.com/gpu.shared)"
                % ", ".join(plain)
            )
    return result
