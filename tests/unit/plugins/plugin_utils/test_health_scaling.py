"""nodes-not-scaling findings (plugin_utils/health_scaling.py) from objects shaped as the
Kubernetes API returns them (Karpenter v1, Cluster API MachineDeployments, core Events)."""

from __future__ import annotations

import datetime

from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_scaling import (
    autoscaler_findings,
    karpenter_findings,
    reached_limits,
)

NOW = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.timezone.utc)


def stamp(minutes_ago):
    return (NOW - datetime.timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pool(name="gpu", limits=None, resources=None):
    obj = {"metadata": {"name": name}, "spec": {"limits": limits or {}}}
    if resources is not None:
        obj["status"] = {"resources": resources}
    return obj


def claim(name, pool_name="gpu", gpus="8", launched="True", registered="True", minutes=1, reason=None):
    conditions = []
    if launched is not None:
        conditions.append({"type": "Launched", "status": launched, "reason": reason, "message": "no capacity"})
    if registered is not None:
        conditions.append({"type": "Registered", "status": registered})
    return {
        "metadata": {"name": name, "labels": {"karpenter.sh/nodepool": pool_name}, "creationTimestamp": stamp(minutes)},
        "status": {"capacity": {"nvidia.com/gpu": gpus, "cpu": "96"}, "conditions": conditions},
    }


def pending(name="train"):
    return {
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        },
    }


def test_limits_reached_from_claims_or_status():
    assert reached_limits(pool(limits={"nvidia.com/gpu": "16"}), [claim("a"), claim("b")]) == ["nvidia.com/gpu 16/16"]
    assert reached_limits(pool(limits={"nvidia.com/gpu": "16"}), [claim("a")]) == []
    # Karpenter's own status.resources wins over the claims' capacity.
    assert reached_limits(pool(limits={"cpu": "100", "nodes": "3"}, resources={"cpu": "100"}), [claim("a")]) == [
        "cpu 100/100"
    ]
    assert reached_limits(pool(limits={"nodes": "1"}), [claim("a"), claim("x", pool_name="other")]) == ["nodes 1/1"]


def test_pool_at_limits_only_with_waiting_pods_or_karpenter_event():
    full = pool(limits={"nvidia.com/gpu": "8"})
    assert karpenter_findings([full], [claim("a")], [], [], NOW) == []
    (found,) = karpenter_findings([full], [claim("a")], [pending()], [], NOW)
    assert found["subject"] == "NodePool/gpu" and "nvidia.com/gpu 8/8" in found["finding"]
    assert "1 pod(s) unschedulable" in found["finding"] and "spec.limits" in found["fix"]
    event = {
        "reason": "FailedScheduling",
        "message": "all available instance types exceed limits for nodepool: gpu, spare",
        "involvedObject": {"kind": "Pod", "namespace": "ml", "name": "train"},
    }
    found = karpenter_findings([pool(limits={"nvidia.com/gpu": "64"}), pool("spare")], [claim("a")], [], [event], NOW)
    assert [f["subject"] for f in found] == ["NodePool/gpu", "NodePool/spare"]
    assert "could not place ml/train" in found[0]["finding"]


def test_claims_not_launching_or_registering():
    claims = [
        claim("ok"),
        claim("refused", launched="False", reason="InsufficientCapacity"),
        claim("young", launched=None, registered=None, minutes=2),
        claim("stuck", launched="Unknown", registered=None, minutes=10),
        claim("lonely", registered="Unknown", minutes=20),
        claim("joining", registered="Unknown", minutes=5),
    ]
    found = {f["subject"]: f for f in karpenter_findings([], claims, [], [], NOW)}
    assert sorted(found) == ["NodeClaim/lonely", "NodeClaim/refused", "NodeClaim/stuck"]
    assert found["NodeClaim/refused"]["severity"] == "critical"
    assert "InsufficientCapacity: no capacity" in found["NodeClaim/refused"]["finding"]
    assert "not Launched after 600s" in found["NodeClaim/stuck"]["finding"]
    assert "has not registered" in found["NodeClaim/lonely"]["finding"]


def md(name, replicas, low="0", high="2"):
    annotations = {}
    if low is not None:
        annotations["cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"] = low
    if high is not None:
        annotations["cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"] = high
    return {"metadata": {"name": name, "namespace": "capi", "annotations": annotations}, "spec": {"replicas": replicas}}


def test_node_group_at_max_with_pending_pods():
    groups = [md("full", 2), md("room", 1), md("unmanaged", 5, None, None)]
    assert autoscaler_findings(groups, []) == []
    bound = dict(pending(), spec={"nodeName": "n1"})
    assert autoscaler_findings(groups, [bound]) == []
    (found,) = autoscaler_findings(groups, [pending("a"), pending("b")])
    assert found["subject"] == "MachineDeployment/capi/full"
    assert "2 of max 2" in found["finding"] and "ml/a, ml/b" in found["finding"]
