# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Version gating: what the cluster's Karpenter serves, and fields it does not know. Pure.

The CRDs the cluster serves are the Karpenter version that matters (the chart installs them
with the controller): karpenter.sh/v1 NodePool needs Karpenter >= 1.0, a NodeOverlay needs the
nodeoverlays.karpenter.sh CRD (Karpenter >= 1.7 with the NodeOverlay feature gate), and a
field or enum value of ours missing from the served schema (a newer field on an older
Karpenter) is refused by name instead of being pruned silently by the apiserver.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter._common import shown

CRD_NAMES = {
    "NodePool": "nodepools.karpenter.sh",
    "EC2NodeClass": "ec2nodeclasses.karpenter.k8s.aws",
    "NodeOverlay": "nodeoverlays.karpenter.sh",
}
NEEDS = {
    "NodePool": "Karpenter >= 1.0 (karpenter.sh/v1)",
    "EC2NodeClass": "Karpenter >= 1.0 (karpenter.k8s.aws/v1)",
    "NodeOverlay": "Karpenter >= 1.7 with the NodeOverlay feature gate (karpenter.sh/v1alpha1)",
}


def served_schema(crd, version):
    """The openAPIV3Schema of ``version`` if the CRD serves it, else None."""
    for entry in (crd or {}).get("spec", {}).get("versions") or []:
        if entry.get("name") == version and entry.get("served", True):
            return (entry.get("schema") or {}).get("openAPIV3Schema") or {}
    return None


def served_versions(crd):
    return [v.get("name") for v in (crd or {}).get("spec", {}).get("versions") or [] if v.get("served", True)]


def _walk(value, schema, path, problems):
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(
            "%s: %s is not served by the cluster's Karpenter; it allows %s"
            % (path, shown(value), ", ".join(map(str, schema["enum"])))
        )
        return
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                _walk(item, properties[key], "%s.%s" % (path, key), problems)
            elif isinstance(extra, dict):
                _walk(item, extra, "%s.%s" % (path, key), problems)
            elif properties is not None:
                problems.append(
                    "%s.%s: not a field of the Karpenter version the cluster serves (it knows: %s)"
                    % (path, key, ", ".join(sorted(properties)))
                )
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _walk(item, schema["items"], "%s[%d]" % (path, index), problems)


def gate_problems(obj, crd):
    """Why the cluster's Karpenter cannot take ``obj`` (empty list: it can)."""
    kind = obj["kind"]
    version = obj["apiVersion"].split("/")[-1]
    if crd is None:
        return ["%s: the cluster does not serve the CRD %s; it needs %s" % (kind, CRD_NAMES[kind], NEEDS[kind])]
    schema = served_schema(crd, version)
    if schema is None:
        return [
            "%s: the cluster serves %s versions %s, not %s; it needs %s"
            % (kind, CRD_NAMES[kind], ", ".join(served_versions(crd)) or "none", version, NEEDS[kind])
        ]
    problems = []
    _walk(obj.get("spec") or {}, (schema.get("properties") or {}).get("spec") or {}, "%s spec" % kind, problems)
    return problems
