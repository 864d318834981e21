# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names, patterns and the error type the karpenter package shares (private)."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

NODEPOOL_API = "karpenter.sh/v1"
NODECLASS_API = "karpenter.k8s.aws/v1"
OVERLAY_API = "karpenter.sh/v1alpha1"
NODECLASS_GROUP = "karpenter.k8s.aws"

LABEL_NODEPOOL = "karpenter.sh/nodepool"
LABEL_CAPACITY_TYPE = "karpenter.sh/capacity-type"
LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_FAMILY = "karpenter.k8s.aws/instance-family"
LABEL_GPU_NAME = "karpenter.k8s.aws/instance-gpu-name"
LABEL_GPU_COUNT = "karpenter.k8s.aws/instance-gpu-count"
LABEL_GPU_MEMORY = "karpenter.k8s.aws/instance-gpu-memory"
LABEL_GPU_MANUFACTURER = "karpenter.k8s.aws/instance-gpu-manufacturer"
GPU_RESOURCE = "nvidia.com/gpu"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
POOL_LABEL = "gpuops.cluster/karpenter-pool"

# Kubernetes qualified names, label values, durations (the CRDs' own patterns).
QUALIFIED_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(\/))?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
)
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUANTITY = re.compile(
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DURATION_OR_NEVER = re.compile(r"^(([0-9]+(s|m|h))+|Never)$")
DURATION = re.compile(r"^([0-9]+(s|m|h))+$")
BUDGET_DURATION = re.compile(r"^((([0-9]+(h|m))|([0-9]+h[0-9]+m))(0s)?)$")
BUDGET_NODES = re.compile(r"^((100|[0-9]{1,2})%|[0-9]+)$")
BUDGET_SCHEDULE = re.compile(
    r"^(@(annually|yearly|monthly|weekly|daily|midnight|hourly))|((.+)\s(.+)\s(.+)\s(.+)\s(.+))$"
)
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
INSTANCE_FAMILY = re.compile(r"^[a-z][a-z0-9-]*$")


class KarpenterPoolError(ValueError):
    """Bad input or a check that failed before any change; the message names the field."""


def shown(value, limit=64):
    """A value for an error message: repr, at most ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def key_domain(key):
    """The DNS prefix of a label key ('' without one)."""
    return key.split("/", 1)[0] if "/" in key else ""


_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def parse_quantity(text):
    """A Kubernetes quantity as a float (cpu cores, bytes, counts); ValueError when malformed."""
    value = str(text).strip()
    if not QUANTITY.match(value):
        raise ValueError(value)
    for suffix, factor in _BINARY.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    if value.endswith("m"):
        return float(value[:-1]) / 1000.0
    if value[-1:] in _SUFFIX and value[-1:] not in ("", "e", "E") and not value[-1:].isdigit():
        return float(value[:-1]) * _SUFFIX[value[-1]]
    return float(value)


def parse_duration(text):
    """Seconds of a Go-style duration like 1h30m or 720h (no fractions)."""
    total = 0
    for number, unit in re.findall(r"([0-9]+)([smh])", text):
        total += int(number) * {"s": 1, "m": 60, "h": 3600}[unit]
    return total
