"""Simulated Karpenter (karpenter.sh/v1 with the AWS provider's karpenter.k8s.aws/v1).

What it does, as upstream does it (docs: concepts/scheduling, disruption, nodepools):

- Provisioning: pods the scheduler marked Unschedulable (PodScheduled=False, no node, not a
  DaemonSet's) are matched against NodePools, highest `weight` first: the pod must tolerate the
  pool's taints (startupTaints excepted), its nodeSelector and required node affinity must be
  satisfiable by the pool's template labels and requirements, and an EC2 instance type allowed
  by the requirements (see karpenter_catalog: moto's EC2 data, real GPU counts) must have room
  for its requests, with NodeOverlay capacity added (`nvidia.com/mig-1g.10gb`...). Pods are
  packed onto new NodeClaims (first fit, then the smallest instance type that fits, as the
  cheapest), within the pool's `limits` (cpu, memory, nvidia.com/gpu, nodes); a pool at its
  limits records a warning event instead. Each NodeClaim gets a Node at once (Launched,
  Registered), labelled with the well-known labels, the pool's labels and taints, and, for GPU
  types the NVML simulator has a model of, the simulator fixture annotation, so the
  gpu-operator controller labels it and advertises nvidia.com/gpu (and MIG / shared resources)
  as on any GPU node. Initialized turns True once the Node advertises the GPUs it was
  launched for.
- Disruption (consolidation): a node of a pool with no pods but DaemonSet ones is Empty; with
  `WhenEmptyOrUnderutilized` a node whose pods all fit on the other nodes is Underutilized.
  After `consolidateAfter` (never with `Never`) the node is disrupted, at most as many nodes
  per pool at a time as the tightest active budget allows (`nodes` count or percentage,
  `schedule` + `duration` windows, `reasons`). Nodes annotated `karpenter.sh/do-not-disrupt:
  "true"`, or running a pod so annotated, are never consolidated. Disruption taints the node
  `karpenter.sh/disrupted:NoSchedule`, evicts its pods through the Eviction API (PDBs apply),
  then deletes the Node and its NodeClaim.

- Interruption: with GPUOPS_SANDBOX_KARPENTER_INTERRUPTION_QUEUE (the queue of Karpenter's
  `settings.interruptionQueue`) and GPUOPS_SANDBOX_AWS_ENDPOINT, the queue is polled (SQS
  through boto3, EventBridge events as upstream receives them). A spot interruption warning,
  a scheduled change (AWS Health) or a stopping/terminated state change for the instance of a
  NodeClaim launches a replacement NodeClaim of the same type first, then deletes the NodeClaim
  (held by the `karpenter.sh/termination` finalizer: its deletionTimestamp marks when
  termination began), taints and drains the node (Eviction API; do-not-disrupt does not hold
  back an instance that is going away). The claim's terminationGracePeriod (default 2 minutes,
  the spot warning's lead time) counts from then: a pod whose terminationGracePeriodSeconds
  would outlast it is deleted at deadline - its grace, with the time left as its grace; pods
  still there at the deadline are deleted; then the finalizer goes with the node. Rebalance
  recommendations are only recorded as events.

Not simulated: drift, expiration, price-based selection.
"""

from __future__ import annotations

import json
import os
import random
import string
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import yaml

from ..api import WriteOptions, now
from ..errors import ApiError
from . import karpenter_catalog as catalog
from . import podutil
from .fleet import node_object
from .runner import Controller

NODEPOOLS = ("karpenter.sh", "v1", "nodepools")
NODECLAIMS = ("karpenter.sh", "v1", "nodeclaims")
OVERLAYS = ("karpenter.sh", "v1alpha1", "nodeoverlays")
LABEL_NODEPOOL = "karpenter.sh/nodepool"
LABEL_CAPACITY = "karpenter.sh/capacity-type"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_NODECLAIM = "karpenter.sh/nodeclaim"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
DISRUPTED_TAINT = {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}
TERMINATION_FINALIZER = "karpenter.sh/termination"
DEFAULT_POD_GRACE = 30  # a pod's terminationGracePeriodSeconds when unset
CAPACITY_PREFERENCE = ("reserved", "spot", "on-demand")
# EC2 GPU (name, MiB per GPU) -> the NVML simulator's model key.
SIM_MODELS = {
    ("A100", 40960): "A100-SXM4-40GB",
    ("A100", 81920): "A100-SXM4-80GB",
    ("H100", 81920): "H100-SXM5-80GB",
    ("H200", 144384): "H200-SXM-141GB",
    ("L40S", 45776): "L40S",
}
NOMINATION_SECONDS = 30.0
QUEUE_ENV = "GPUOPS_SANDBOX_KARPENTER_INTERRUPTION_QUEUE"
SPOT_WARNING_SECONDS = 120.0
STOPPING_STATES = ("stopping", "stopped", "shutting-down", "terminated")


def _duration(text: str | None) -> float | None:
    """Seconds of a Go duration like 30s, 10m, 1h30m; None for Never/absent."""
    if not text or text == "Never":
        return None
    total, number = 0.0, ""
    for char in text:
        if char.isdigit():
            number += char
        elif char in "smh" and number:
            total += int(number) * {"s": 1, "m": 60, "h": 3600}[char]
            number = ""
    return total


def _cron_field(spec: str, value: int, low: int) -> bool:
    for part in spec.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part == "*":
            start, end = low, 10**6
        elif "-" in part:
            start, end = (int(x) for x in part.split("-", 1))
        else:
            start = end = int(part)
        if start <= value <= end and (value - start) % step == 0:
            return True
    return False


MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def cron_matches(schedule: str, moment: datetime) -> bool:
    fields = MACROS.get(schedule, schedule).split()
    if len(fields) != 5:
        return False
    try:
        return (
            _cron_field(fields[0], moment.minute, 0)
            and _cron_field(fields[1], moment.hour, 0)
            and _cron_field(fields[2], moment.day, 1)
            and _cron_field(fields[3], moment.month, 1)
            and _cron_field(fields[4], (moment.isoweekday() % 7), 0)
        )
    except ValueError:
        return False


def budget_active(budget: dict[str, Any], moment: datetime) -> bool:
    """A budget without schedule is always active; else within `duration` after a match."""
    if not budget.get("schedule"):
        return True
    minutes = int((_duration(budget.get("duration")) or 0) // 60)
    start = moment.replace(second=0, microsecond=0)
    return any(
        cron_matches(budget["schedule"], start - timedelta(minutes=m)) for m in range(minutes)
    )


def allowed_disruptions(pool: dict[str, Any], reason: str, nodes: int, moment: datetime) -> int:
    budgets = ((pool.get("spec") or {}).get("disruption") or {}).get("budgets") or [
        {"nodes": "10%"}
    ]
    allowed = None
    for budget in budgets:
        if budget.get("reasons") and reason not in budget["reasons"]:
            continue
        if not budget_active(budget, moment):
            continue
        value = podutil.resolve_int_or_percent(budget.get("nodes", "10%"), nodes, True)
        allowed = value if allowed is None else min(allowed, value)
    return nodes if allowed is None else allowed


def _fits(requests: dict[str, Decimal], free: dict[str, Decimal]) -> bool:
    return all(
        amount <= free.get(name, Decimal(0)) for name, amount in requests.items() if amount > 0
    )


def _minus(free: dict[str, Decimal], requests: dict[str, Decimal]) -> dict[str, Decimal]:
    result = dict(free)
    for name, amount in requests.items():
        result[name] = result.get(name, Decimal(0)) - amount
    return result


def _quantity(amount: Decimal, name: str) -> str:
    if name == "cpu":
        return podutil.format_cpu(amount)
    if name == "memory":
        return "%dKi" % int(amount / 1024)
    return str(int(amount))


class Karpenter(Controller):
    name = "karpenter"
    periodic = True  # consolidateAfter and budget windows are time-driven

    def __init__(self, cluster, options) -> None:
        super().__init__(cluster, options)
        self.nominated: dict[str, tuple[str, float]] = {}  # pod uid -> (nodeclaim, until)
        self.empty_since: dict[tuple[str, str], float] = {}  # (node, reason) -> monotonic
        self.wake: float | None = None
        self.fixture_dir = os.environ.get("GPUOPS_SANDBOX_KARPENTER_DIR")  # made on first use
        self.counter = 0
        self.deadlines: dict[str, float] = {}  # node -> monotonic time its pods are deleted
        self.next_poll = 0.0
        self.queue_url: str | None = None
        self.sqs = None

    def next_wake(self) -> float | None:
        return self.wake

    # ------------------------------------------------------------------ reading

    def _pools(self) -> list[dict[str, Any]]:
        pools = [
            p for p in self.client.list(*NODEPOOLS) if not p["metadata"].get("deletionTimestamp")
        ]
        pools.sort(
            key=lambda p: (-int((p.get("spec") or {}).get("weight") or 0), p["metadata"]["name"])
        )
        return pools

    def _overlay_capacity(self, labels: dict[str, str]) -> dict[str, Decimal]:
        extra: dict[str, Decimal] = {}
        for overlay in self.client.list(*OVERLAYS):
            spec = overlay.get("spec") or {}
            if not catalog.requirements_allow(spec.get("requirements") or [], labels):
                continue
            for name, value in (spec.get("capacity") or {}).items():
                amount = podutil.parse_quantity(value)
                if amount is not None and name not in extra:
                    extra[name] = amount
        return extra

    def _candidates(self, pool: dict[str, Any]) -> list[dict[str, Any]]:
        """Instance types (with capacity type, zone and overlay capacity) the pool may launch."""
        template = (pool.get("spec") or {}).get("template") or {}
        requirements = (template.get("spec") or {}).get("requirements") or []
        capacity_types = catalog.values_for(requirements, LABEL_CAPACITY) or ["on-demand"]
        capacity_type = next(
            (c for c in CAPACITY_PREFERENCE if c in capacity_types), capacity_types[0]
        )
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        zones = catalog.values_for(requirements, LABEL_ZONE) or [region + "a"]
        result = []
        for itype in catalog.instance_types():
            labels = dict(itype["labels"])
            labels.update((template.get("metadata") or {}).get("labels") or {})
            labels[LABEL_NODEPOOL] = pool["metadata"]["name"]
            labels[LABEL_CAPACITY] = capacity_type
            labels[LABEL_ZONE] = zones[0]
            if not catalog.requirements_allow(requirements, labels):
                continue
            capacity = dict(itype["capacity"])
            for name, amount in self._overlay_capacity(labels).items():
                capacity.setdefault(name, amount)
            result.append(dict(itype, labels=labels, capacity=capacity))
        result.sort(key=lambda i: i["order"])
        return result

    def _pool_usage(self, pool_name: str) -> tuple[dict[str, Decimal], int]:
        usage: dict[str, Decimal] = {}
        count = 0
        for claim in self.client.list(*NODECLAIMS):
            if (claim["metadata"].get("labels") or {}).get(LABEL_NODEPOOL) != pool_name:
                continue
            count += 1
            for name, value in ((claim.get("status") or {}).get("capacity") or {}).items():
                amount = podutil.parse_quantity(value)
                if amount is not None:
                    usage[name] = usage.get(name, Decimal(0)) + amount
        return usage, count

    @staticmethod
    def _within_limits(pool, usage, count, capacity) -> bool:
        for name, value in ((pool.get("spec") or {}).get("limits") or {}).items():
            limit = podutil.parse_quantity(value)
            if limit is None:
                continue
            if name == "nodes":
                if count + 1 > limit:
                    return False
            elif usage.get(name, Decimal(0)) + capacity.get(name, Decimal(0)) > limit:
                return False
        return True

    @staticmethod
    def _pod_fits_pool(pod: dict[str, Any], pool: dict[str, Any], labels: dict[str, str]) -> bool:
        spec = pod.get("spec") or {}
        tspec = ((pool.get("spec") or {}).get("template") or {}).get("spec") or {}
        tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
        if podutil.untolerated(tspec.get("taints") or [], tolerations, ("NoSchedule", "NoExecute")):
            return False
        return podutil.node_selector_matches(spec, {"metadata": {"name": "", "labels": labels}})

    def _pending(self) -> list[dict[str, Any]]:
        moment = time.monotonic()
        pods = []
        for pod in self.client.list("", "v1", "pods"):
            spec, status = pod.get("spec") or {}, pod.get("status") or {}
            if spec.get("nodeName") or status.get("phase") not in (None, "Pending"):
                continue
            if podutil.is_terminating(pod):
                continue
            if any(
                o.get("kind") == "DaemonSet" for o in pod["metadata"].get("ownerReferences") or []
            ):
                continue
            scheduled = podutil.condition(pod, "PodScheduled") or {}
            if scheduled.get("status") != "False" or scheduled.get("reason") != "Unschedulable":
                continue
            nomination = self.nominated.get(pod["metadata"].get("uid", ""))
            if nomination and nomination[1] > moment:
                continue
            pods.append(pod)
        pods.sort(
            key=lambda p: (
                -podutil.pod_requests(p).get("nvidia.com/gpu", Decimal(0)),
                p["metadata"]["name"],
            )
        )
        return pods

    # ------------------------------------------------------------------ provisioning

    def _provision(self) -> None:
        pending = self._pending()
        if not pending:
            return
        pools = self._pools()
        new_claims = self._in_flight(pools)  # {pool, itype, free, pods, name}
        for pod in pending:
            requests = dict(podutil.pod_requests(pod))
            requests["pods"] = Decimal(1)
            placed = False
            for claim in new_claims:
                if self._pod_fits_pool(pod, claim["pool"], claim["itype"]["labels"]) and _fits(
                    requests, claim["free"]
                ):
                    claim["free"] = _minus(claim["free"], requests)
                    claim["pods"].append(pod)
                    placed = True
                    break
            if placed:
                continue
            blocked_by_limits = []
            for pool in pools:
                usage, count = self._pool_usage(pool["metadata"]["name"])
                for claim in new_claims:
                    if claim["pool"] is pool and not claim.get("name"):
                        count += 1
                        for name, amount in claim["itype"]["capacity"].items():
                            usage[name] = usage.get(name, Decimal(0)) + amount
                for itype in self._candidates(pool):
                    if not self._pod_fits_pool(pod, pool, itype["labels"]) or not _fits(
                        requests, itype["capacity"]
                    ):
                        continue
                    if not self._within_limits(pool, usage, count, itype["capacity"]):
                        blocked_by_limits.append(pool["metadata"]["name"])
                        continue
                    new_claims.append(
                        {
                            "pool": pool,
                            "itype": itype,
                            "free": _minus(itype["capacity"], requests),
                            "pods": [pod],
                        }
                    )
                    placed = True
                    break
                if placed:
                    break
            if not placed and blocked_by_limits:
                self.client.event(
                    pod,
                    "FailedScheduling",
                    "all available instance types exceed limits for nodepool: %s"
                    % ", ".join(sorted(set(blocked_by_limits))),
                    "Warning",
                )
        for claim in new_claims:
            if claim.get("name"):
                self._nominate(claim["name"], claim["pods"])
            else:
                self._launch(claim["pool"], claim["itype"], claim["pods"])

    def _in_flight(self, pools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """NodeClaims not yet Initialized, with the room left once the pods bound or
        nominated to them are counted: pending pods go there before a new launch."""
        by_name = {p["metadata"]["name"]: p for p in pools}
        claims = []
        pods = self.client.list("", "v1", "pods")
        for claim in self.client.list(*NODECLAIMS):
            status = claim.get("status") or {}
            pool = by_name.get((claim["metadata"].get("labels") or {}).get(LABEL_NODEPOOL))
            if (
                pool is None
                or podutil.condition(claim, "Initialized")
                or not status.get("nodeName")
            ):
                continue
            free = {
                k: podutil.parse_quantity(v) or Decimal(0)
                for k, v in (status.get("capacity") or {}).items()
            }
            name = claim["metadata"]["name"]
            for pod in pods:
                nominated = self.nominated.get(pod["metadata"].get("uid", ""), ("", 0.0))[0] == name
                if (pod.get("spec") or {}).get("nodeName") == status["nodeName"] or nominated:
                    free = _minus(free, dict(podutil.pod_requests(pod), pods=Decimal(1)))
            labels = dict(claim["metadata"].get("labels") or {})
            claims.append(
                {"pool": pool, "itype": {"labels": labels}, "free": free, "pods": [], "name": name}
            )
        return claims

    def _nominate(self, claim_name: str, pods: list[dict[str, Any]]) -> None:
        until = time.monotonic() + NOMINATION_SECONDS
        for pod in pods:
            self.nominated[pod["metadata"].get("uid", "")] = (claim_name, until)
            self.client.event(pod, "Nominated", "Pod should schedule on: nodeclaim/%s" % claim_name)

    def _fixture_for(self, itype: dict[str, Any]) -> str | None:
        model = SIM_MODELS.get(itype["gpu_model"]) if itype["gpu_model"] else None
        if model is None:
            return None
        if not self.fixture_dir:
            self.fixture_dir = tempfile.mkdtemp(prefix="gpuops-karpenter-")
        os.makedirs(self.fixture_dir, exist_ok=True)
        path = os.path.join(self.fixture_dir, "%s.yml" % itype["name"])
        if not os.path.exists(path):
            doc = {
                "name": "karpenter-%s" % itype["name"],
                "description": "%d x %s (EC2 %s)" % (itype["gpu_count"], model, itype["name"]),
                "driver": {"state": "loaded", "version": "550.127.05", "kernel_module": "open"},
                "gpus": [
                    {
                        "model": model,
                        "bus_id": "0000:%02x:00.0" % (0x10 + 0x10 * i),
                        "mig": {"current": False, "pending": False},
                    }
                    for i in range(itype["gpu_count"])
                ],
            }
            with open(path, "w", encoding="utf-8") as handle:
                yaml.safe_dump(doc, handle)
        return path

    def _launch(
        self, pool: dict[str, Any], itype: dict[str, Any], pods: list[dict[str, Any]]
    ) -> None:
        pool_name = pool["metadata"]["name"]
        suffix = "".join(
            random.choice(string.ascii_lowercase + string.digits) for _unused in range(5)
        )
        claim_name = "%s-%s" % (pool_name, suffix)
        self.counter += 1
        node_name = "ip-10-1-%d-%d.ec2.internal" % (self.counter // 250, 10 + self.counter % 240)
        tspec = ((pool.get("spec") or {}).get("template") or {}).get("spec") or {}
        labels = dict(
            itype["labels"], **{LABEL_NODECLAIM: claim_name, "karpenter.sh/registered": "true"}
        )
        capacity = {name: _quantity(amount, name) for name, amount in itype["capacity"].items()}
        zone = labels[LABEL_ZONE]
        provider_id = "aws:///%s/i-%017x" % (zone, random.getrandbits(68))
        claim = {
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodeClaim",
            "metadata": {
                "name": claim_name,
                "labels": labels,
                "ownerReferences": [podutil.owner_reference(pool)],
            },
            "spec": {
                "nodeClassRef": tspec.get("nodeClassRef") or {},
                "requirements": [
                    {"key": k, "operator": "In", "values": [v]}
                    for k, v in sorted(labels.items())
                    if k
                    in (
                        "node.kubernetes.io/instance-type",
                        LABEL_CAPACITY,
                        LABEL_ZONE,
                        LABEL_NODEPOOL,
                    )
                ],
                "taints": tspec.get("taints") or [],
                "startupTaints": tspec.get("startupTaints") or [],
                "expireAfter": tspec.get("expireAfter") or "720h",
                "resources": {"requests": {}},
            },
        }
        if tspec.get("terminationGracePeriod"):
            claim["spec"]["terminationGracePeriod"] = tspec["terminationGracePeriod"]
        fixture = self._fixture_for(itype)  # before the claim: no claim without its node
        created = self.client.create(*NODECLAIMS, None, claim)
        if created is None:
            return
        entry = {"name": node_name, "cpu": capacity["cpu"], "memory": capacity["memory"]}
        if fixture:
            entry["fixture"] = fixture
        node = node_object(entry, 200 + self.counter % 50, now())
        node["metadata"]["labels"].update(labels)
        node["metadata"]["labels"]["kubernetes.io/hostname"] = node_name
        node["spec"]["providerID"] = provider_id
        taints = list(tspec.get("taints") or []) + list(tspec.get("startupTaints") or [])
        if taints:
            node["spec"]["taints"] = taints
        if not fixture and "nvidia.com/gpu" in capacity:  # a GPU the simulator has no model of
            for key in ("capacity", "allocatable"):
                node["status"][key]["nvidia.com/gpu"] = capacity["nvidia.com/gpu"]
        node_type = self.cluster.types[("", "v1", "nodes")]
        try:
            self.cluster.create(node_type, None, node, WriteOptions(field_manager="karpenter"))
        except ApiError:
            return
        conditions = [
            {"type": t, "status": "True", "reason": t, "message": "", "lastTransitionTime": now()}
            for t in ("Launched", "Registered")
        ]
        self.client.patch(
            *NODECLAIMS,
            None,
            claim_name,
            {
                "status": {
                    "nodeName": node_name,
                    "providerID": provider_id,
                    "capacity": capacity,
                    "allocatable": capacity,
                    "conditions": conditions,
                }
            },
            "status",
        )
        self._nominate(claim_name, pods)
        self.client.event(
            created, "Launched", "Status condition transitioned, Type: Launched, Status: True"
        )

    def _initialize(self) -> None:
        """Initialized=True once the node advertises the GPUs its instance type has."""
        nodes = {n["metadata"]["name"]: n for n in self.client.list("", "v1", "nodes")}
        for claim in self.client.list(*NODECLAIMS):
            status = claim.get("status") or {}
            if podutil.condition(claim, "Initialized") or not status.get("nodeName"):
                continue
            node = nodes.get(status["nodeName"])
            if node is None:
                continue
            want = podutil.parse_quantity(
                (status.get("capacity") or {}).get("nvidia.com/gpu", "0")
            ) or Decimal(0)
            have = podutil.parse_quantity(
                ((node.get("status") or {}).get("allocatable") or {}).get("nvidia.com/gpu", "0")
            ) or Decimal(0)
            if have < want:
                continue
            conditions = list(status.get("conditions") or []) + [
                {
                    "type": "Initialized",
                    "status": "True",
                    "reason": "Initialized",
                    "message": "",
                    "lastTransitionTime": now(),
                }
            ]
            self.client.patch(
                *NODECLAIMS,
                None,
                claim["metadata"]["name"],
                {"status": {"conditions": conditions}},
                "status",
            )
            self.client.patch(
                "",
                "v1",
                "nodes",
                None,
                node["metadata"]["name"],
                {"metadata": {"labels": {"karpenter.sh/initialized": "true"}}},
            )

    # ------------------------------------------------------------------ disruption

    def _disrupt(self) -> None:
        moment = time.monotonic()
        wall = datetime.now(timezone.utc)
        pools = {p["metadata"]["name"]: p for p in self._pools()}
        nodes = [
            n
            for n in self.client.list("", "v1", "nodes")
            if (n["metadata"].get("labels") or {}).get(LABEL_NODEPOOL) in pools
        ]
        pods_by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in self.client.list("", "v1", "pods"):
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name and not podutil.is_finished(pod):
                pods_by_node.setdefault(node_name, []).append(pod)
        all_nodes = self.client.list("", "v1", "nodes")
        wake = None
        disrupting = {
            n["metadata"]["name"]
            for n in nodes
            if any(
                t.get("key") == DISRUPTED_TAINT["key"]
                for t in (n.get("spec") or {}).get("taints") or []
            )
        }
        for node_name in disrupting:
            self._drain(node_name, pods_by_node.get(node_name, []))
        seen = set()
        for pool_name, pool in pools.items():
            disruption = (pool.get("spec") or {}).get("disruption") or {}
            after = _duration(disruption.get("consolidateAfter", "0s"))
            if after is None:
                continue
            policy = disruption.get("consolidationPolicy", "WhenEmptyOrUnderutilized")
            members = [n for n in nodes if n["metadata"]["labels"][LABEL_NODEPOOL] == pool_name]
            in_flight = sum(1 for n in members if n["metadata"]["name"] in disrupting)
            budget = {
                reason: allowed_disruptions(pool, reason, len(members), wall) - in_flight
                for reason in ("Empty", "Underutilized")
            }
            for node in sorted(members, key=lambda n: n["metadata"]["name"]):
                name = node["metadata"]["name"]
                if name in disrupting or not podutil.node_ready(node):
                    continue
                workload = [p for p in pods_by_node.get(name, []) if not self._daemon(p)]
                if (node["metadata"].get("annotations") or {}).get(DO_NOT_DISRUPT) == "true" or any(
                    (p["metadata"].get("annotations") or {}).get(DO_NOT_DISRUPT) == "true"
                    for p in workload
                ):
                    continue
                if not workload:
                    reason = "Empty"
                elif policy == "WhenEmptyOrUnderutilized" and self._fits_elsewhere(
                    workload, name, all_nodes, pods_by_node
                ):
                    reason = "Underutilized"
                else:
                    continue
                key = (name, reason)
                seen.add(key)
                since = self.empty_since.setdefault(key, moment)
                if moment < since + after:
                    due = since + after + 0.05
                    wake = due if wake is None else min(wake, due)
                    continue
                if budget[reason] <= 0:
                    continue
                budget[reason] -= 1
                self._start_disruption(node, reason, pool)
        self.empty_since = {k: v for k, v in self.empty_since.items() if k in seen}
        self.wake = wake

    @staticmethod
    def _daemon(pod: dict[str, Any]) -> bool:
        return any(
            o.get("kind") == "DaemonSet" for o in pod["metadata"].get("ownerReferences") or []
        )

    def _fits_elsewhere(self, workload, node_name, all_nodes, pods_by_node) -> bool:
        free = {}
        for node in all_nodes:
            name = node["metadata"]["name"]
            if (
                name == node_name
                or not podutil.node_ready(node)
                or (node.get("spec") or {}).get("unschedulable")
            ):
                continue
            if any(
                t.get("key") == DISRUPTED_TAINT["key"]
                for t in (node.get("spec") or {}).get("taints") or []
            ):
                continue
            allocatable = {
                k: podutil.parse_quantity(v) or Decimal(0)
                for k, v in ((node.get("status") or {}).get("allocatable") or {}).items()
            }
            for pod in pods_by_node.get(name, []):
                allocatable = _minus(allocatable, podutil.pod_requests(pod))
            free[name] = (node, allocatable)
        for pod in workload:
            requests = podutil.pod_requests(pod)
            spec = pod.get("spec") or {}
            tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
            for name, (node, allocatable) in free.items():
                if podutil.untolerated(
                    (node.get("spec") or {}).get("taints") or [],
                    tolerations,
                    ("NoSchedule", "NoExecute"),
                ):
                    continue
                if not podutil.node_selector_matches(spec, node) or not _fits(
                    requests, allocatable
                ):
                    continue
                free[name] = (node, _minus(allocatable, requests))
                break
            else:
                return False
        return True

    def _start_disruption(self, node: dict[str, Any], reason: str, pool: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        taints = list((node.get("spec") or {}).get("taints") or []) + [dict(DISRUPTED_TAINT)]
        self.client.patch("", "v1", "nodes", None, name, {"spec": {"taints": taints}})
        self.client.event(
            pool,
            "DisruptionLaunching" if reason == "Underutilized" else "DisruptionTerminating",
            "Disrupting Node: %s/%s; reason %s" % (name, reason, reason),
        )
        self._drain(name, None)

    def _drain(self, node_name: str, pods: list[dict[str, Any]] | None) -> None:
        if pods is None:
            pods = [
                p
                for p in self.client.list("", "v1", "pods")
                if (p.get("spec") or {}).get("nodeName") == node_name and not podutil.is_finished(p)
            ]
        deadline = self.deadlines.get(node_name)
        if deadline is not None and time.monotonic() >= deadline:
            for pod in pods:
                if not self._daemon(pod):
                    metadata = pod["metadata"]
                    self.client.delete(
                        "", "v1", "pods", metadata["namespace"], metadata["name"], grace=0
                    )
            pods = []
        elif deadline is not None:
            # Upstream: a pod whose terminationGracePeriodSeconds would outlast the node's
            # deadline is deleted at deadline - its grace, with the time left as its grace.
            left = deadline - time.monotonic()
            for pod in pods:
                grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
                grace = DEFAULT_POD_GRACE if grace is None else grace
                if self._daemon(pod) or grace < left:
                    continue
                metadata = pod["metadata"]
                self.client.delete(
                    "", "v1", "pods", metadata["namespace"], metadata["name"], grace=int(left)
                )
        remaining = [p for p in pods if not self._daemon(p) and not podutil.is_terminating(p)]
        for pod in remaining:
            metadata = pod["metadata"]
            try:
                self.cluster.evict(
                    metadata["namespace"],
                    metadata["name"],
                    {
                        "apiVersion": "policy/v1",
                        "kind": "Eviction",
                        "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
                    },
                    WriteOptions(field_manager="karpenter"),
                )
            except ApiError:
                pass  # a PDB said no (429) or the pod is gone: the next pass retries
        if any(not self._daemon(p) for p in pods):
            return
        for claim in self.client.list(*NODECLAIMS):
            if (claim.get("status") or {}).get("nodeName") == node_name:
                finalizers = claim["metadata"].get("finalizers") or []
                if TERMINATION_FINALIZER in finalizers:  # drained: let the claim go
                    self.client.patch(
                        *NODECLAIMS,
                        None,
                        claim["metadata"]["name"],
                        {
                            "metadata": {
                                "finalizers": [f for f in finalizers if f != TERMINATION_FINALIZER]
                            }
                        },
                    )
                self.client.delete(*NODECLAIMS, None, claim["metadata"]["name"])
        self.client.delete("", "v1", "nodes", None, node_name)
        self.deadlines.pop(node_name, None)

    # ------------------------------------------------------------------ interruption

    def _poll_queue(self) -> list[dict[str, Any]]:
        queue, endpoint = os.environ.get(QUEUE_ENV), os.environ.get(catalog.ENDPOINT_ENV)
        moment = time.monotonic()
        if not queue or not endpoint or moment < self.next_poll:
            return []
        self.next_poll = moment + 0.5
        try:
            if self.sqs is None:
                import boto3

                region = (
                    os.environ.get("AWS_REGION")
                    or os.environ.get("AWS_DEFAULT_REGION")
                    or "us-east-1"
                )
                self.sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=region)
            if self.queue_url is None:
                self.queue_url = self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
        except Exception:  # queue not there yet, endpoint down: the next poll retries
            self.queue_url = None
            return []
        events = []
        for message in messages.get("Messages") or []:
            try:
                events.append(json.loads(message.get("Body") or "{}"))
            except ValueError:
                pass
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return events

    @staticmethod
    def _instances_of(event: dict[str, Any]) -> tuple[str, list[str]]:
        kind = event.get("detail-type") or ""
        detail = event.get("detail") or {}
        if kind == "EC2 Spot Instance Interruption Warning":
            return "SpotInterrupted", [detail.get("instance-id", "")]
        if (
            kind == "EC2 Instance State-change Notification"
            and detail.get("state") in STOPPING_STATES
        ):
            return "InstanceStopping", [detail.get("instance-id", "")]
        if kind == "AWS Health Event" and detail.get("eventTypeCategory") == "scheduledChange":
            return "ScheduledChange", [
                e.get("entityValue", "") for e in detail.get("affectedEntities") or []
            ]
        if kind == "EC2 Instance Rebalance Recommendation":
            return "RebalanceRecommendation", [detail.get("instance-id", "")]
        return "", []

    def _interruptions(self) -> None:
        for event in self._poll_queue():
            reason, instance_ids = self._instances_of(event)
            for instance_id in filter(None, instance_ids):
                for claim in self.client.list(*NODECLAIMS):
                    status = claim.get("status") or {}
                    if not (status.get("providerID") or "").endswith("/" + instance_id):
                        continue
                    if reason == "RebalanceRecommendation":
                        self.client.event(
                            claim,
                            reason,
                            "Instance %s has a rebalance recommendation" % instance_id,
                        )
                    else:
                        self._interrupt(claim, reason)

    def _interrupt(self, claim: dict[str, Any], reason: str) -> None:
        node_name = (claim.get("status") or {}).get("nodeName")
        if not node_name or node_name in self.deadlines:
            return
        node = self.client.get("", "v1", "nodes", None, node_name)
        if node is None:
            return
        labels = claim["metadata"].get("labels") or {}
        pool = self.client.get(*NODEPOOLS, None, labels.get(LABEL_NODEPOOL, ""))
        if pool is not None:  # the replacement first, so the pool keeps its capacity
            for itype in self._candidates(pool):
                if itype["name"] == labels.get("node.kubernetes.io/instance-type"):
                    self._launch(pool, itype, [])
                    break
        # As upstream, the interrupted NodeClaim is deleted (held by the termination finalizer
        # while the node drains): its deletionTimestamp is when termination began, from which
        # terminationGracePeriod counts.
        name = claim["metadata"]["name"]
        finalizers = list(claim["metadata"].get("finalizers") or [])
        if TERMINATION_FINALIZER not in finalizers:
            self.client.patch(
                *NODECLAIMS,
                None,
                name,
                {"metadata": {"finalizers": finalizers + [TERMINATION_FINALIZER]}},
            )
        self.client.delete(*NODECLAIMS, None, name)
        grace = _duration((claim.get("spec") or {}).get("terminationGracePeriod"))
        self.deadlines[node_name] = time.monotonic() + (
            grace if grace is not None else SPOT_WARNING_SECONDS
        )
        self.client.event(
            claim, reason, "Interruption: %s, draining node %s" % (reason, node_name), "Warning"
        )
        taints = list((node.get("spec") or {}).get("taints") or [])
        if not any(t.get("key") == DISRUPTED_TAINT["key"] for t in taints):
            self.client.patch(
                "",
                "v1",
                "nodes",
                None,
                node_name,
                {"spec": {"taints": taints + [dict(DISRUPTED_TAINT)]}},
            )
        self._drain(node_name, None)

    # ------------------------------------------------------------------ the pass

    def reconcile(self) -> None:
        if self.client.rtype(*NODEPOOLS) is None or self.client.rtype(*NODECLAIMS) is None:
            return
        if not self.client.records(*NODEPOOLS) and not self.client.records(*NODECLAIMS):
            self.wake = None
            return  # no pool: nothing to provision or disrupt (keeps passes cheap)
        self._interruptions()
        self._provision()
        self._initialize()
        self._disrupt()
        if self.deadlines:  # re-check draining nodes often: pods are deleted at deadline - grace
            due = min(min(self.deadlines.values()) + 0.05, time.monotonic() + 0.5)
            self.wake = due if self.wake is None else min(self.wake, due)
        if os.environ.get(QUEUE_ENV):
            poll = self.next_poll + 0.01
            self.wake = poll if self.wake is None else min(self.wake, poll)
        moment = time.monotonic()
        self.nominated = {k: v for k, v in self.nominated.items() if v[1] > moment}
