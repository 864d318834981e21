# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""karpenter_pool's run: validate, look up EC2, render, check, gate, then apply or delete.

Everything that can refuse the pool (bad input, CEL rules, instance types, version gates,
immutable fields) runs before the first write, so a refused pool changes nothing.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter import cel, gate, instances, interruption, render
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter._common import (
    NODECLASS_API,
    NODEPOOL_API,
    OVERLAY_API,
    KarpenterPoolError,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.advice import warnings_for
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.kube import comparable
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.spec import validate_params


def _raise_all(problems):
    if problems:
        more = "" if len(problems) == 1 else " (and %d more: %s)" % (len(problems) - 1, "; ".join(problems[1:4]))
        raise KarpenterPoolError(problems[0] + more)


def plan(spec, described_instances):
    """(node_pool, node_class, overlays) checked against the CRDs' CEL rules; pure."""
    node_pool, node_class, overlays = render.render(spec, described_instances)
    problems = cel.nodepool_problems(node_pool) + cel.nodeclass_problems(node_class)
    for overlay in overlays:
        problems += cel.overlay_problems(overlay)
    _raise_all(problems)
    return node_pool, node_class, overlays


def _gate(kube, objects):
    problems = []
    crds = {}
    for obj in objects:
        kind = obj["kind"]
        if kind not in crds:
            crds[kind] = kube.crd(gate.CRD_NAMES[kind])
        if crds[kind] == "forbidden":
            continue
        problems += gate.gate_problems(obj, crds[kind])
    _raise_all(problems)


def _placeholder(spec, api_version, kind, name):
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name or spec["name"]}}


def _record(result, obj, before, after):
    changed = comparable(before) != comparable(after)
    if changed:
        result["changed"] = True
        result["diff"].append(
            {
                "before": comparable(before) or {},
                "after": comparable(after) or {},
                "before_header": "%s %s" % (obj["kind"], obj["metadata"]["name"]),
                "after_header": "%s %s" % (obj["kind"], obj["metadata"]["name"]),
            }
        )
    return after


def _absent(spec, kube, result):
    # NodePool first (Karpenter drains its nodes), then its overlays, then the node class.
    order = [_placeholder(spec, NODEPOOL_API, "NodePool", None)]
    order += (
        kube.list_labelled(OVERLAY_API, "NodeOverlay", spec["name"]) if kube.crd(gate.CRD_NAMES["NodeOverlay"]) else []
    )
    order.append(_placeholder(spec, NODECLASS_API, "EC2NodeClass", None))
    for obj in order:
        before, _after = kube.delete(obj)
        _record(result, obj, before, None)
    return result


def run(params, kube_factory, ec2_factory, check_mode, aws_factory=None):
    """The module's result; ``kube_factory()``/``ec2_factory()`` make the clients lazily.

    Raises KarpenterPoolError before any change for anything that refuses the pool.
    """
    spec = validate_params(params)
    result = {"changed": False, "diff": [], "warnings": [], "instance_types": [], "node_overlays": []}
    if spec["state"] == "absent":
        return _absent(spec, kube_factory(), result)
    if params.get("validate_instance_types", True):
        resolved, zones = instances.lookup(ec2_factory(), spec)
        result["subnet_zones"] = zones
    else:
        if spec["mig_layout"] or spec["sharing"]:
            raise KarpenterPoolError(
                "validate_instance_types: must be true with mig_layout or sharing_config (the NodeOverlay capacity "
                "comes from the instance types' GPU counts in EC2)"
            )
        resolved = []
    node_pool, node_class, overlays = plan(spec, resolved)
    kube = kube_factory()
    wanted = [node_class] + overlays + [node_pool]
    _gate(kube, wanted)
    existing_pool = kube.get(NODEPOOL_API, "NodePool", spec["name"])
    if existing_pool is not None:
        _raise_all(cel.nodepool_update_problems(existing_pool, node_pool))
    stale = []
    if overlays or kube.crd(gate.CRD_NAMES["NodeOverlay"]) not in (None, "forbidden"):
        names = {o["metadata"]["name"] for o in overlays}
        stale = [
            o
            for o in kube.list_labelled(OVERLAY_API, "NodeOverlay", spec["name"])
            if o["metadata"]["name"] not in names
        ]
    if spec["interruption_queue"]:
        changed, info = interruption.ensure(
            aws_factory("sqs"), aws_factory("events"), spec["interruption_queue"], check_mode
        )
        result["changed"] = result["changed"] or changed
        result["interruption_queue"] = info
        result["karpenter_settings"] = {"interruptionQueue": spec["interruption_queue"]}
    applied = {}
    for obj in wanted:
        before, after = kube.apply(obj)
        applied[(obj["kind"], obj["metadata"]["name"])] = _record(result, obj, before, after)
    for obj in stale:
        before, _after = kube.delete(obj)
        _record(result, obj, before, None)
    result["node_pool"] = applied[("NodePool", spec["name"])]
    result["node_class"] = applied[("EC2NodeClass", spec["name"])]
    result["node_overlays"] = [applied[("NodeOverlay", o["metadata"]["name"])] for o in overlays]
    result["instance_types"] = [dict(item, advertised=render.advertised_resources(spec, item)) for item in resolved]
    result["warnings"] = warnings_for(spec, resolved)
    return result
