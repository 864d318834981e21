# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rules Karpenter's CRDs state in CEL (x-kubernetes-validations), checked in Python.

A jsonschema validator does not evaluate CEL, and an apiserver older than the CRDs' features
may not either, so the rendered objects are checked here before anything is sent. Each
function returns a list of messages naming the object's field path, empty when it is valid.
Rules re-implemented from karpenter.sh_nodepools (v1), karpenter.k8s.aws_ec2nodeclasses (v1)
and karpenter.sh_nodeoverlays (v1alpha1). Pure, no I/O.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter._common import (
    LABEL_VALUE,
    QUALIFIED_KEY,
    QUANTITY,
    is_int,
    key_domain,
    shown,
)

ALLOWED_KARPENTER_SH = ("karpenter.sh/capacity-type", "karpenter.sh/nodepool")
# Well-known labels of the AWS provider a NodePool may require or set.
ALLOWED_KARPENTER_AWS = (
    "karpenter.k8s.aws/instance-tenancy",
    "karpenter.k8s.aws/capacity-reservation-type",
    "karpenter.k8s.aws/capacity-reservation-id",
    "karpenter.k8s.aws/capacity-reservation-interruptible",
    "karpenter.k8s.aws/ec2nodeclass",
    "karpenter.k8s.aws/instance-encryption-in-transit-supported",
    "karpenter.k8s.aws/nitro-sandbox",
    "karpenter.k8s.aws/instance-category",
    "karpenter.k8s.aws/instance-hypervisor",
    "karpenter.k8s.aws/instance-family",
    "karpenter.k8s.aws/instance-generation",
    "karpenter.k8s.aws/instance-local-nvme",
    "karpenter.k8s.aws/instance-size",
    "karpenter.k8s.aws/instance-cpu",
    "karpenter.k8s.aws/instance-cpu-manufacturer",
    "karpenter.k8s.aws/instance-cpu-sustained-clock-speed-mhz",
    "karpenter.k8s.aws/instance-memory",
    "karpenter.k8s.aws/instance-ebs-bandwidth",
    "karpenter.k8s.aws/instance-network-bandwidth",
    "karpenter.k8s.aws/instance-gpu-name",
    "karpenter.k8s.aws/instance-gpu-manufacturer",
    "karpenter.k8s.aws/instance-gpu-count",
    "karpenter.k8s.aws/instance-gpu-memory",
    "karpenter.k8s.aws/instance-accelerator-name",
    "karpenter.k8s.aws/instance-accelerator-manufacturer",
    "karpenter.k8s.aws/instance-accelerator-count",
    "karpenter.k8s.aws/instance-capability-flex",
    "karpenter.k8s.aws/placement-group-id",
    "karpenter.k8s.aws/placement-group-partition",
)
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Gte", "Lte")
NUMERIC_OPERATORS = ("Gt", "Lt", "Gte", "Lte")
OVERLAY_RESTRICTED = ("cpu", "memory", "ephemeral-storage", "pods")


def _label_key_problems(where, key, nodepool=True):
    problems = []
    if not isinstance(key, str) or not QUALIFIED_KEY.match(key):
        return ["%s: %s is not a qualified label key" % (where, shown(key))]
    domain = key_domain(key)
    if key not in ALLOWED_KARPENTER_SH and domain.endswith("karpenter.sh"):
        problems.append(
            '%s: label domain "karpenter.sh" is restricted (%s); allowed: %s'
            % (where, key, ", ".join(ALLOWED_KARPENTER_SH))
        )
    if nodepool and key == "karpenter.sh/nodepool":
        problems.append('%s: label "karpenter.sh/nodepool" is restricted (Karpenter sets it)' % where)
    if key == "kubernetes.io/hostname":
        problems.append('%s: label "kubernetes.io/hostname" is restricted' % where)
    if nodepool and key not in ALLOWED_KARPENTER_AWS and domain.endswith("karpenter.k8s.aws"):
        problems.append(
            '%s: label domain "karpenter.k8s.aws" is restricted (%s); allowed: the well-known labels like '
            "karpenter.k8s.aws/instance-gpu-name" % (where, key)
        )
    return problems


def requirement_problems(where, requirements, nodepool=True):
    problems = []
    if not isinstance(requirements, list):
        return ["%s: must be a list of {key, operator, values, minValues}" % where]
    if len(requirements) > 100:
        problems.append("%s: at most 100 requirements" % where)
    for index, req in enumerate(requirements):
        at = "%s[%d]" % (where, index)
        if not isinstance(req, dict):
            problems.append("%s: must be a mapping {key, operator, values, minValues}" % at)
            continue
        problems += _label_key_problems(at + ".key", req.get("key"), nodepool)
        operator = req.get("operator")
        if operator not in OPERATORS:
            problems.append("%s.operator: %s is not allowed; allowed: %s" % (at, shown(operator), ", ".join(OPERATORS)))
            continue
        values = req.get("values") or []
        if not isinstance(values, list):
            problems.append("%s.values: must be a list of strings" % at)
            continue
        for position, value in enumerate(values):
            if not isinstance(value, str) or not LABEL_VALUE.match(value) or len(value) > 63:
                problems.append("%s.values[%d]: %s is not a label value" % (at, position, shown(value)))
        if operator == "In" and not values:
            problems.append("%s: requirements with operator 'In' must have a value defined" % at)
        if operator == "NotIn" and not values and not nodepool:
            problems.append("%s: requirements with operator 'NotIn' must have a value defined" % at)
        if operator in NUMERIC_OPERATORS and (len(values) != 1 or not re.match(r"^[0-9]+$", str(values[0]))):
            problems.append(
                "%s: requirements operator 'Gt', 'Lt', 'Gte', or 'Lte' must have a single positive integer value" % at
            )
        min_values = req.get("minValues")
        if min_values is not None:
            if not is_int(min_values) or not 1 <= min_values <= 50:
                problems.append("%s.minValues: %s is out of range; allowed: 1-50" % (at, shown(min_values)))
            elif operator == "In" and len(values) < min_values:
                problems.append(
                    "%s: requirements with 'minValues' must have at least that many values specified in the 'values' "
                    "field" % at
                )
    return problems


def nodepool_problems(obj):
    spec = obj.get("spec") or {}
    problems = []
    where = "NodePool spec"
    if "replicas" in spec and spec.get("limits") and set(spec["limits"]) != {"nodes"}:
        problems.append("%s.limits: only 'limits.nodes' is supported on static NodePools (replicas set)" % where)
    if "replicas" in spec and "weight" in spec:
        problems.append("%s.weight: 'weight' is not supported on static NodePools (replicas set)" % where)
    for key, value in (spec.get("limits") or {}).items():
        if not QUANTITY.match(str(value)):
            problems.append("%s.limits.%s: %s is not a Kubernetes quantity" % (where, key, shown(value)))
    disruption = spec.get("disruption") or {}
    for index, budget in enumerate(disruption.get("budgets") or []):
        if ("schedule" in budget) != ("duration" in budget):
            problems.append("%s.disruption.budgets[%d]: 'schedule' must be set with 'duration'" % (where, index))
    if len(disruption.get("budgets") or []) > 50:
        problems.append("%s.disruption.budgets: at most 50 budgets" % where)
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    for key in sorted(labels):
        problems += _label_key_problems("%s.template.metadata.labels[%s]" % (where, key), key)
    tspec = template.get("spec") or {}
    ref = tspec.get("nodeClassRef") or {}
    for field in ("group", "kind", "name"):
        if not ref.get(field):
            problems.append("%s.template.spec.nodeClassRef.%s: %s may not be empty" % (where, field, field))
    problems += requirement_problems(where + ".template.spec.requirements", tspec.get("requirements") or [])
    return problems


def nodepool_update_problems(old, new):
    """Transition rules (oldSelf): immutable nodeClassRef group/kind, static vs dynamic."""
    problems = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    old_ref = ((old_spec.get("template") or {}).get("spec") or {}).get("nodeClassRef") or {}
    new_ref = ((new_spec.get("template") or {}).get("spec") or {}).get("nodeClassRef") or {}
    for field in ("group", "kind"):
        if old_ref.get(field) and old_ref.get(field) != new_ref.get(field):
            problems.append(
                "NodePool spec.template.spec.nodeClassRef.%s: nodeClassRef.%s is immutable (%s in the cluster)"
                % (field, field, old_ref[field])
            )
    if ("replicas" in old_spec) != ("replicas" in new_spec):
        problems.append(
            "NodePool spec.replicas: Cannot transition NodePool between static (replicas set) and dynamic (replicas "
            "unset) provisioning modes"
        )
    return problems


def _terms_problems(where, terms, keys):
    problems = []
    if not terms:
        problems.append("%s: cannot be empty" % where)
    for index, term in enumerate(terms or []):
        if not any(k in term for k in keys):
            problems.append("%s[%d]: expected at least one, got none, %s" % (where, index, list(keys)))
        for key, value in (term.get("tags") or {}).items():
            if key == "" or value == "":
                problems.append("%s[%d].tags: empty tag keys or values aren't supported" % (where, index))
    if terms and all("id" in t and len(t) > 1 for t in terms):
        problems.append("%s: 'id' is mutually exclusive, cannot be set with a combination of other fields" % where)
    return problems


def nodeclass_problems(obj):
    spec = obj.get("spec") or {}
    where = "EC2NodeClass spec"
    problems = []
    if ("role" in spec) == ("instanceProfile" in spec):
        problems.append("%s: must specify exactly one of ['role', 'instanceProfile']" % where)
    for field in ("role", "instanceProfile"):
        if field in spec and spec[field] == "":
            problems.append("%s.%s: %s cannot be empty" % (where, field, field))
    terms = spec.get("amiSelectorTerms") or []
    aliases = [t["alias"] for t in terms if "alias" in t]
    if aliases and len(terms) != 1:
        problems.append(
            "%s.amiSelectorTerms: 'alias' is mutually exclusive, cannot be set with a combination of other "
            "amiSelectorTerms" % where
        )
    for alias in aliases:
        family = alias.split("@")[0]
        want = {"al2": "AL2", "al2023": "AL2023", "bottlerocket": "Bottlerocket"}.get(family, family.capitalize())
        if "amiFamily" in spec and spec["amiFamily"] not in ("Custom", want):
            problems.append(
                "%s.amiFamily: if set, amiFamily must be '%s' or 'Custom' when using an %s alias"
                % (where, want, family)
            )
    if not aliases and "amiFamily" not in spec:
        problems.append("%s.amiFamily: must specify amiFamily if amiSelectorTerms does not contain an alias" % where)
    problems += _terms_problems(where + ".subnetSelectorTerms", spec.get("subnetSelectorTerms"), ("tags", "id"))
    problems += _terms_problems(
        where + ".securityGroupSelectorTerms", spec.get("securityGroupSelectorTerms"), ("tags", "id", "name")
    )
    roots = [d for d in spec.get("blockDeviceMappings") or [] if d.get("rootVolume")]
    if len(roots) > 1:
        problems.append("%s.blockDeviceMappings: must have only one blockDeviceMappings with rootVolume" % where)
    for index, device in enumerate(spec.get("blockDeviceMappings") or []):
        ebs = device.get("ebs") or {}
        if ebs and not ("snapshotID" in ebs or "volumeSize" in ebs):
            problems.append("%s.blockDeviceMappings[%d].ebs: snapshotID or volumeSize must be defined" % (where, index))
    placement = spec.get("placementGroupSelector")
    if placement is not None and ("name" in placement) == ("id" in placement):
        problems.append("%s.placementGroupSelector: exactly one of 'name' and 'id'" % where)
    return problems


def overlay_problems(obj):
    spec = obj.get("spec") or {}
    where = "NodeOverlay %s spec" % (obj.get("metadata") or {}).get("name")
    problems = []
    if "price" in spec and "priceAdjustment" in spec:
        problems.append("%s: cannot set both 'price' and 'priceAdjustment'" % where)
    for key, value in (spec.get("capacity") or {}).items():
        if key in OVERLAY_RESTRICTED:
            problems.append(
                "%s.capacity.%s: invalid resource restricted (cpu, memory, ephemeral-storage, pods)" % (where, key)
            )
        if not QUANTITY.match(str(value)):
            problems.append("%s.capacity.%s: %s is not a Kubernetes quantity" % (where, key, shown(value)))
    problems += requirement_problems(where + ".requirements", spec.get("requirements") or [], nodepool=False)
    return problems
