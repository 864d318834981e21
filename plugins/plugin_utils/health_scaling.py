# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health check ``nodes-not-scaling``: why pending pods get no new node. Pure functions.

Karpenter (karpenter.sh/v1): a NodePool whose ``spec.limits`` are reached (usage from
``status.resources`` when Karpenter wrote it, else the capacity of the pool's NodeClaims) while
pods wait, or that Karpenter named in a ``FailedScheduling`` event ("all available instance types
exceed limits for nodepool: ..."); NodeClaims whose ``Launched`` condition is False (no capacity,
bad NodeClass...) or still Unknown after the launch grace period; NodeClaims launched but not
``Registered`` (the node never joined) after the registration grace period.

cluster-autoscaler (clusterapi provider): a node group (a MachineDeployment with both the
``cluster-api-autoscaler-node-group-min-size`` and ``-max-size`` annotations) whose replicas are
at its max size while pods are Unschedulable.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter._common import parse_quantity
from ansible_collections.gpuops.cluster.plugins.module_utils.velero.verdict import parse_time
from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_findings import finding

CHECK = "nodes-not-scaling"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
LIMITS_EVENT = "exceed limits for nodepool:"
CA_MIN = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
CA_MAX = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"
# Karpenter gives up on a launch it cannot confirm and on a node that does not register after
# 15 minutes (its registration TTL); we report either well before the claim is garbage-collected.
LAUNCH_GRACE_SECONDS = 300
REGISTRATION_GRACE_SECONDS = 900


def _meta(obj):
    return obj.get("metadata") or {}


def _condition(obj, kind):
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return item
    return None


def unschedulable_pods(pods):
    """Pods the scheduler marked Unschedulable (PodScheduled=False), not yet bound to a node."""
    out = []
    for pod in pods or []:
        scheduled = _condition(pod, "PodScheduled") or {}
        if (
            (pod.get("status") or {}).get("phase") == "Pending"
            and not (pod.get("spec") or {}).get("nodeName")
            and scheduled.get("status") == "False"
            and scheduled.get("reason") == "Unschedulable"
        ):
            out.append(pod)
    return out


def _quantity(value):
    try:
        return parse_quantity(value)
    except (TypeError, ValueError):
        return None


def pool_usage(pool, claims):
    """{resource: amount} a NodePool uses, with ``nodes``: Karpenter's status.resources when
    written, else the sum of the capacity of the pool's NodeClaims."""
    written = (pool.get("status") or {}).get("resources")
    name = _meta(pool).get("name")
    mine = [c for c in claims or [] if (_meta(c).get("labels") or {}).get(NODEPOOL_LABEL) == name]
    usage = {}
    if written:
        for key, value in written.items():
            amount = _quantity(value)
            if amount is not None:
                usage[key] = amount
    else:
        for claim in mine:
            for key, value in ((claim.get("status") or {}).get("capacity") or {}).items():
                amount = _quantity(value)
                if amount is not None:
                    usage[key] = usage.get(key, 0.0) + amount
    usage.setdefault("nodes", float(len(mine)))
    return usage


def _fmt(value):
    return ("%d" % value) if float(value).is_integer() else ("%g" % value)


def reached_limits(pool, claims):
    """The limits of a NodePool its usage has reached: ['nvidia.com/gpu 8/8', ...]."""
    usage = pool_usage(pool, claims)
    reached = []
    for key, value in sorted(((pool.get("spec") or {}).get("limits") or {}).items()):
        limit = _quantity(value)
        if limit is None:
            continue
        used = usage.get(key, 0.0)
        if used >= limit:
            reached.append("%s %s/%s" % (key, _fmt(used), value))
    return reached


def _pools_named_in_events(events):
    """{pool name: [pod subjects]} from Karpenter's FailedScheduling 'exceed limits' events."""
    named = {}
    for event in events or []:
        message = event.get("message") or ""
        if event.get("reason") != "FailedScheduling" or LIMITS_EVENT not in message:
            continue
        involved = event.get("involvedObject") or {}
        subject = "%s/%s" % (involved.get("namespace"), involved.get("name"))
        for name in message.split(LIMITS_EVENT, 1)[1].split(","):
            name = name.strip().rstrip(".")
            if name:
                named.setdefault(name, [])
                if subject not in named[name]:
                    named[name].append(subject)
    return named


def karpenter_findings(pools, claims, pods, events, now):
    """NodePools at their limits while pods wait, and NodeClaims that do not launch or register."""
    found = []
    waiting = unschedulable_pods(pods)
    named = _pools_named_in_events(events)
    for pool in pools or []:
        name = _meta(pool).get("name")
        reached = reached_limits(pool, claims)
        blocked = named.get(name) or []
        if not blocked and not (reached and waiting):
            continue
        detail = ", ".join(reached) if reached else "limits %s" % ((pool.get("spec") or {}).get("limits") or {})
        pods_text = (
            "; Karpenter could not place %s" % ", ".join(sorted(blocked)[:5])
            if blocked
            else "; %d pod(s) unschedulable" % len(waiting)
        )
        found.append(
            finding(
                CHECK,
                "warning",
                "NodePool/%s" % name,
                "NodePool at its limits (%s)%s" % (detail, pods_text),
                "Raise the NodePool's spec.limits (gpuops.cluster.autoscaling: the pool's limits) or free "
                "capacity in it; pods that fit another pool need that pool's requirements and taints.",
            )
        )
    for claim in claims or []:
        name = _meta(claim).get("name")
        launched = _condition(claim, "Launched")
        registered = _condition(claim, "Registered")
        created = parse_time(_meta(claim).get("creationTimestamp"))
        age = (now - created).total_seconds() if created is not None else None
        if launched is not None and launched.get("status") == "False":
            found.append(
                finding(
                    CHECK,
                    "critical",
                    "NodeClaim/%s" % name,
                    "Launched=False: %s"
                    % (": ".join(x for x in (launched.get("reason"), launched.get("message")) if x) or "no reason"),
                    "Read the reason: InsufficientCapacity means widen the NodePool's instance types, zones or "
                    "capacity types; a NodeClass error means fix the EC2NodeClass (role, subnets, AMI selectors).",
                )
            )
        elif (launched is None or launched.get("status") != "True") and age is not None and age > LAUNCH_GRACE_SECONDS:
            found.append(
                finding(
                    CHECK,
                    "warning",
                    "NodeClaim/%s" % name,
                    "not Launched after %ds" % age,
                    "Check Karpenter's controller logs and its cloud credentials (IRSA / Pod Identity).",
                )
            )
        elif (
            launched is not None
            and launched.get("status") == "True"
            and (registered is None or registered.get("status") != "True")
            and age is not None
            and age > REGISTRATION_GRACE_SECONDS
        ):
            found.append(
                finding(
                    CHECK,
                    "warning",
                    "NodeClaim/%s" % name,
                    "launched but its node has not registered after %ds" % age,
                    "The instance runs but its kubelet did not join: check the node's bootstrap (user data, "
                    "the node role in aws-auth / access entries, security groups to the API server).",
                )
            )
    return found


def _int(value):
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def autoscaler_findings(machine_deployments, pods):
    """cluster-autoscaler node groups at their max size while pods are Unschedulable."""
    found = []
    waiting = unschedulable_pods(pods)
    if not waiting:
        return found
    names = ", ".join(sorted("%s/%s" % (_meta(p).get("namespace"), _meta(p).get("name")) for p in waiting)[:5])
    for md in machine_deployments or []:
        annotations = _meta(md).get("annotations") or {}
        low, high = _int(annotations.get(CA_MIN)), _int(annotations.get(CA_MAX))
        if low is None or high is None:
            continue
        replicas = _int((md.get("spec") or {}).get("replicas"))
        if replicas is None or replicas < high:
            continue
        found.append(
            finding(
                CHECK,
                "warning",
                "MachineDeployment/%s/%s" % (_meta(md).get("namespace"), _meta(md).get("name")),
                "node group at its max size (%d of max %d) while %d pod(s) are unschedulable: %s"
                % (replicas, high, len(waiting), names),
                "Raise the %s annotation (gpuops.cluster.autoscaling: the group's max_size) if the pods "
                "should run there, or give them a group with room." % CA_MAX,
            )
        )
    return found
