"""kube-controller-manager's replicaset and deployment controllers.

replicaset: keeps `spec.replicas` active pods (created from the template, owned with
controller: true; adopts orphans its selector matches and releases pods that stop matching;
deletes surplus pods, the least useful first: unscheduled, pending, not ready, newest), and
reports replicas / fullyLabeledReplicas / readyReplicas / availableReplicas (ready for
minReadySeconds) / observedGeneration from the pods, with a ReplicaFailure condition when pods
cannot be created.

deployment: one ReplicaSet per pod template (`<name>-<pod-template-hash>`, the hash label on the
template and selector, revision annotations), RollingUpdate with maxSurge / maxUnavailable as
upstream computes them (scale the new ReplicaSet up within the surge, old ones down while
availability allows, unhealthy old replicas first), Recreate, proportional scaling, pause and
resume, revisionHistoryLimit clean-up, and status from the ReplicaSets: replicas,
updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas, observedGeneration,
conditions Available (MinimumReplicasAvailable / MinimumReplicasUnavailable) and Progressing
(NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable,
ProgressDeadlineExceeded, DeploymentPaused, DeploymentResumed).
"""

from __future__ import annotations

import copy
import time
from typing import Any, Iterable

from ..api import now, parse_time
from ..errors import ApiError
from ..store import Event, ObjectKey, Record
from . import podutil
from .runner import KCM, WorkController

PODS = ("", "pods")
REPLICASETS = ("apps", "replicasets")
DEPLOYMENTS = ("apps", "deployments")
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
BURST = 500  # pods created per sync at most (upstream's slow-start batches stay under it)
_NOT_COPIED = ("kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY)
_NOT_COPIED += (DESIRED, MAX_REPLICAS)


def _replicas(obj: dict[str, Any]) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _status(obj: dict[str, Any], field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def _controlled_by(record: Record, owner_uid: str) -> bool:
    return record.controller is not None and record.controller[2] == owner_uid


def _without_zeros(status: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Go's omitempty on int32 status counters."""
    return {k: v for k, v in status.items() if v not in (0, None, [], {}) or k in keep}


def owner_keys(
    kind: str, event: Event, before: Record | None, namespace_scan=None
) -> Iterable[ObjectKey]:
    """Keys of the `kind` objects controlling the object of an event (now and before)."""
    keys = set()
    for record in (event.record, before):
        if record is not None and record.controller and record.controller[0] == kind:
            keys.add((record.key[0], record.controller[1]))
    if namespace_scan is not None and event.type != "DELETED" and event.record.controller is None:
        keys.update(namespace_scan(event.record.key[0]))  # an orphan: adoption candidates
    return keys


class OwnerController(WorkController):
    """A workload controller: events on its primary kind, and on the objects of kind `owned`
    whose controllerRef names a `kind` object, map to that object's key."""

    kind = ""
    owned = PODS

    def adoption_scan(self):
        """None, or namespace -> the primary keys that may adopt an orphan there."""
        return None

    def keys_for(self, type_key, key, event, before):
        if type_key == self.primary:
            return (key,)
        if type_key == self.owned:
            return owner_keys(self.kind, event, before, self.adoption_scan())
        return ()

    def live(self, key: ObjectKey) -> dict[str, Any] | None:
        """The primary object, or None when it is gone or being deleted (nothing to do)."""
        record = self.client.record(self.primary, key)
        if record is None:
            return None
        obj = record.decode()
        return None if obj["metadata"].get("deletionTimestamp") else obj

    def delete_pod(self, pod: dict[str, Any]) -> None:
        """Delete a pod it controls (the uid precondition: not a namesake created since)."""
        metadata = pod["metadata"]
        self.client.delete(
            "", "v1", "pods", metadata["namespace"], metadata["name"], uid=metadata["uid"]
        )


class ReplicaSetController(OwnerController):
    name = "replicaset"
    manager = KCM
    primary = REPLICASETS
    kind = "ReplicaSet"

    def _in_namespace(self, namespace: str) -> list[ObjectKey]:
        with self.cluster.lock:
            return [r.key for r in self.cluster.store.scan(REPLICASETS, namespace, None)]

    def adoption_scan(self):
        return self._in_namespace

    def sync(self, key: ObjectKey) -> None:
        rs = self.live(key)
        if rs is None:
            return
        pods = self._claim_pods(rs)
        active = [p for p in pods if podutil.is_active(p)]
        wanted = _replicas(rs)
        failure = None
        if len(active) < wanted:
            failure = self._create(rs, min(wanted - len(active), BURST))
        elif len(active) > wanted:
            self._delete(rs, active, len(active) - wanted)
        self._write_status(rs, self._claim_pods(rs, adopt=False), failure)

    def _claim_pods(self, rs: dict[str, Any], adopt: bool = True) -> list[dict[str, Any]]:
        """The pods this ReplicaSet controls, after adopting matching orphans and releasing
        pods whose labels no longer match (controller.PodControllerRefManager)."""
        uid = rs["metadata"]["uid"]
        namespace = rs["metadata"]["namespace"]
        matches = podutil.selector_matcher(rs)
        owned = []
        for record in self.client.dependents(uid, PODS):
            if not _controlled_by(record, uid):
                continue
            if matches(record.labels):
                owned.append(record.decode())
            elif adopt:
                self._release(record.decode(), uid)
        if adopt and rs.get("spec", {}).get("selector"):
            for record in self.client.records("", "v1", "pods", namespace):
                if record.controller is not None or not matches(record.labels):
                    continue
                pod = record.decode()
                if podutil.is_terminating(pod):
                    continue
                references = pod["metadata"].get("ownerReferences") or []
                references.append(podutil.owner_reference(rs))
                adopted = self.client.patch(
                    "",
                    "v1",
                    "pods",
                    namespace,
                    pod["metadata"]["name"],
                    {
                        "metadata": {
                            "ownerReferences": references,
                            "uid": pod["metadata"]["uid"],
                        }
                    },
                )
                if adopted is not None:
                    owned.append(adopted)
        return owned

    def _release(self, pod: dict[str, Any], uid: str) -> None:
        references = [
            r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
        ]
        self.client.patch(
            "",
            "v1",
            "pods",
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            {"metadata": {"ownerReferences": references or None}},
        )

    def _create(self, rs: dict[str, Any], count: int) -> dict[str, Any] | None:
        template = (rs.get("spec") or {}).get("template") or {}
        for _unused in range(count):
            pod = podutil.pod_from_template(template, rs)
            try:
                created = self.client.create("", "v1", "pods", rs["metadata"]["namespace"], pod)
            except ApiError as error:
                self.client.event(rs, "FailedCreate", f"Error creating: {error.message}", "Warning")
                return {"reason": "FailedCreate", "message": error.message}
            if created is not None:
                self.client.event(
                    rs, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}"
                )
        return None

    def _delete(self, rs: dict[str, Any], active: list[dict[str, Any]], count: int) -> None:
        def rank(pod: dict[str, Any]):
            status = pod.get("status") or {}
            phase = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase"), 0)
            ready = podutil.condition(pod, "Ready") or {}
            restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
            return (
                1 if (pod.get("spec") or {}).get("nodeName") else 0,
                phase,
                1 if ready.get("status") == "True" else 0,
                -(parse_time(ready.get("lastTransitionTime")) or 0),
                -restarts,
                -(parse_time(pod["metadata"].get("creationTimestamp")) or 0),
            )

        for pod in sorted(active, key=rank)[:count]:
            metadata = pod["metadata"]
            self.client.delete(
                "", "v1", "pods", metadata["namespace"], metadata["name"], uid=metadata["uid"]
            )
            self.client.event(rs, "SuccessfulDelete", f"Deleted pod: {metadata['name']}")

    def _write_status(
        self, rs: dict[str, Any], pods: list[dict[str, Any]], failure: dict[str, Any] | None
    ) -> None:
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        moment = time.time()
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        active = [p for p in pods if podutil.is_active(p)]
        ready = available = labelled = 0
        for pod in active:
            labels = pod["metadata"].get("labels") or {}
            if all(labels.get(k) == v for k, v in template_labels.items()):
                labelled += 1
            if podutil.is_ready(pod):
                ready += 1
                if podutil.is_available(pod, min_ready, moment):
                    available += 1
                else:
                    wait = podutil.available_in(pod, min_ready, moment)
                    if wait is not None:
                        self.requeue((rs["metadata"]["namespace"], rs["metadata"]["name"]), wait)
        terminating = sum(1 for p in pods if podutil.is_terminating(p))
        old = rs.get("status") or {}
        conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        if failure is not None:
            conditions = podutil.set_condition(
                old.get("conditions") or [],
                "ReplicaFailure",
                "True",
                failure["reason"],
                failure["message"],
            )
        status = _without_zeros(
            {
                "replicas": len(active),
                "fullyLabeledReplicas": labelled,
                "readyReplicas": ready,
                "availableReplicas": available,
                "terminatingReplicas": terminating,
                "observedGeneration": rs["metadata"].get("generation", 1),
                "conditions": conditions,
            },
            keep=("replicas",),
        )
        if status != old:
            rs["status"] = status
            self.client.update("apps", "v1", "replicasets", rs, "status")


# ------------------------------------------------------------------------------ deployment


def _template_without_hash(template: dict[str, Any]) -> dict[str, Any]:
    template = copy.deepcopy(template or {})
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return template


def _revision(rs: dict[str, Any]) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _created(rs: dict[str, Any]) -> tuple[float, str]:
    return (parse_time(rs["metadata"].get("creationTimestamp")) or 0, rs["metadata"]["name"])


def fenceposts(deployment: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against spec.replicas (ResolveFenceposts)."""
    spec = deployment.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if strategy.get("type") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    desired = _replicas(deployment)
    surge = podutil.resolve_int_or_percent(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = podutil.resolve_int_or_percent(
        rolling.get("maxUnavailable", "25%"), desired, False
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(deployment: dict[str, Any]) -> int:
    desired = _replicas(deployment)
    if desired == 0:
        return 0
    return min(fenceposts(deployment)[1], desired)


class DeploymentController(OwnerController):
    name = "deployment"
    manager = KCM
    primary = DEPLOYMENTS
    kind = "Deployment"
    owned = REPLICASETS

    def sync(self, key: ObjectKey) -> None:
        deployment = self.live(key)
        if deployment is None:
            return
        uid = deployment["metadata"]["uid"]
        replica_sets = sorted(
            (
                r.decode()
                for r in self.client.dependents(uid, REPLICASETS)
                if _controlled_by(r, uid)
            ),
            key=_created,
        )
        spec = deployment.get("spec") or {}
        self._paused_condition(deployment)
        template = spec.get("template") or {}
        new_rs = next(
            (
                rs
                for rs in replica_sets
                if _template_without_hash((rs.get("spec") or {}).get("template"))
                == _template_without_hash(template)
            ),
            None,
        )
        old_rss = [rs for rs in replica_sets if rs is not new_rs]
        if spec.get("paused") or self._scaling_event(deployment, replica_sets):
            self._scale(deployment, new_rs, old_rss)
            if spec.get("paused"):
                self._cleanup(deployment, old_rss)
            return self._write_status(deployment, new_rs, old_rss, rollout=False)
        strategy = (spec.get("strategy") or {}).get("type") or "RollingUpdate"
        if strategy == "Recreate":
            self._recreate(deployment, new_rs, old_rss)
        else:
            self._rolling(deployment, new_rs, old_rss)

    # ------------------------------------------------------------------ replica sets

    def _set_replicas(self, deployment, rs, replicas: int) -> None:
        surge = fenceposts(deployment)[0]
        desired = _replicas(deployment)
        annotations = {DESIRED: str(desired), MAX_REPLICAS: str(desired + surge)}
        current = rs["metadata"].get("annotations") or {}
        before = _replicas(rs)
        if before == replicas and all(current.get(k) == v for k, v in annotations.items()):
            return
        rs.setdefault("spec", {})["replicas"] = replicas
        rs["metadata"].setdefault("annotations", {}).update(annotations)
        self.client.patch(
            "apps",
            "v1",
            "replicasets",
            rs["metadata"]["namespace"],
            rs["metadata"]["name"],
            {"metadata": {"annotations": annotations}, "spec": {"replicas": replicas}},
        )
        if before != replicas:
            verb = "up" if replicas > before else "down"
            self.client.event(
                deployment,
                "ScalingReplicaSet",
                f"Scaled {verb} replica set {rs['metadata']['name']} from {before} to {replicas}",
            )

    def _new_replica_set(
        self, deployment: dict[str, Any], new_rs, old_rss, replicas: int
    ) -> dict[str, Any] | None:
        """The ReplicaSet of the current template, created when missing; revision synced."""
        max_old = max((_revision(rs) for rs in old_rss), default=0)
        if new_rs is not None:
            annotations = new_rs["metadata"].get("annotations") or {}
            wanted = str(max_old + 1) if _revision(new_rs) <= max_old else annotations.get(REVISION)
            if annotations.get(REVISION) != wanted:
                patch = {REVISION: wanted}
                if annotations.get(REVISION):
                    history = [h for h in (annotations.get(REVISION_HISTORY) or "").split(",") if h]
                    patch[REVISION_HISTORY] = ",".join(history + [annotations[REVISION]])
                new_rs["metadata"].setdefault("annotations", {}).update(patch)
                self.client.patch(
                    "apps",
                    "v1",
                    "replicasets",
                    new_rs["metadata"]["namespace"],
                    new_rs["metadata"]["name"],
                    {"metadata": {"annotations": patch}},
                )
            self._progressing(
                deployment,
                "True",
                "FoundNewReplicaSet",
                f'Found new replica set "{new_rs["metadata"]["name"]}"',
                only_if_missing=True,
            )
            self._sync_revision(deployment, new_rs)
            return new_rs
        spec = deployment.get("spec") or {}
        collisions = (deployment.get("status") or {}).get("collisionCount")
        template = _template_without_hash(spec.get("template") or {})
        template_hash = podutil.template_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = template_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = template_hash
        surge = fenceposts(deployment)[0]
        desired = _replicas(deployment)
        annotations = {
            k: v
            for k, v in (deployment["metadata"].get("annotations") or {}).items()
            if k not in _NOT_COPIED
        }
        annotations.update(
            {REVISION: str(max_old + 1), DESIRED: str(desired), MAX_REPLICAS: str(desired + surge)}
        )
        name = f"{deployment['metadata']['name']}-{template_hash}"
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": deployment["metadata"]["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [podutil.owner_reference(deployment)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": spec.get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = self.client.create(
                "apps", "v1", "replicasets", deployment["metadata"]["namespace"], body
            )
        except ApiError:
            return None
        if created is None:  # the name is taken by a ReplicaSet of another template
            status = dict(deployment.get("status") or {})
            status["collisionCount"] = (collisions or 0) + 1
            deployment["status"] = status
            self.client.update("apps", "v1", "deployments", deployment, "status")
            return None
        self.client.event(
            deployment,
            "ScalingReplicaSet",
            f"Scaled up replica set {name} from 0 to {replicas}",
        )
        self._progressing(
            deployment, "True", "NewReplicaSetCreated", f'Created new replica set "{name}"'
        )
        self._sync_revision(deployment, created)
        return created

    def _sync_revision(self, deployment, rs) -> None:
        """SetDeploymentRevision: the Deployment carries its new ReplicaSet's revision."""
        revision = (rs["metadata"].get("annotations") or {}).get(REVISION)
        annotations = deployment["metadata"].get("annotations") or {}
        if revision is None or annotations.get(REVISION) == revision:
            return
        updated = self.client.patch(
            "apps",
            "v1",
            "deployments",
            deployment["metadata"]["namespace"],
            deployment["metadata"]["name"],
            {"metadata": {"annotations": {REVISION: revision}}},
        )
        if updated is not None:
            deployment["metadata"] = updated["metadata"]

    def _scaling_event(self, deployment, replica_sets) -> bool:
        desired = str(_replicas(deployment))
        for rs in replica_sets:
            if _replicas(rs) <= 0:
                continue
            annotation = (rs["metadata"].get("annotations") or {}).get(DESIRED)
            if annotation is not None and annotation != desired:
                return True
        return False

    def _scale(self, deployment, new_rs, old_rss) -> None:
        """sync()'s proportional scaling (paused deployments and replica count changes)."""
        desired = _replicas(deployment)
        everything = [rs for rs in old_rss + [new_rs] if rs is not None]
        active = [rs for rs in everything if _replicas(rs) > 0]
        if len(active) <= 1:
            target = active[0] if active else (new_rs or (everything[-1] if everything else None))
            if target is not None:
                self._set_replicas(deployment, target, desired)
            return
        if (
            new_rs is not None
            and _replicas(new_rs) == desired
            and _status(new_rs, "availableReplicas") == desired
        ):
            for rs in old_rss:
                self._set_replicas(deployment, rs, 0)
            return
        surge = fenceposts(deployment)[0]
        allowed = desired + surge if desired > 0 else 0
        current = sum(_replicas(rs) for rs in active)
        to_add = allowed - current
        if to_add == 0:
            return
        ordered = sorted(active, key=lambda rs: (_replicas(rs), _created(rs)), reverse=to_add > 0)
        added = 0
        targets = {}
        for rs in ordered:
            share = int(to_add * _replicas(rs) / current) if current else 0
            if to_add > 0:
                share = min(share, to_add - added)
            else:
                share = max(share, to_add - added)
            targets[rs["metadata"]["name"]] = _replicas(rs) + share
            added += share
        if added != to_add and ordered:
            first = ordered[0]["metadata"]["name"]
            targets[first] += to_add - added
        for rs in active:
            self._set_replicas(deployment, rs, max(targets[rs["metadata"]["name"]], 0))

    def _rolling(self, deployment, new_rs, old_rss) -> None:
        desired = _replicas(deployment)
        surge, _unused = fenceposts(deployment)
        current = sum(_replicas(rs) for rs in old_rss) + (_replicas(new_rs) if new_rs else 0)
        have = _replicas(new_rs) if new_rs else 0
        scale_up = max(min(desired + surge - current, desired - have), 0)
        if new_rs is None:
            new_rs = self._new_replica_set(deployment, None, old_rss, have + scale_up)
            if new_rs is None:
                return self._write_status(deployment, None, old_rss, rollout=True)
        else:
            new_rs = self._new_replica_set(deployment, new_rs, old_rss, have)
            if desired + surge > current and have < desired:
                self._set_replicas(deployment, new_rs, have + scale_up)
            elif have > desired:
                self._set_replicas(deployment, new_rs, desired)
        if new_rs is not None:
            self._scale_down_old(deployment, new_rs, old_rss)
        if self._complete(deployment, new_rs, old_rss):
            self._cleanup(deployment, old_rss)
        self._write_status(deployment, new_rs, old_rss, rollout=True)

    def _scale_down_old(self, deployment, new_rs, old_rss) -> None:
        """reconcileOldReplicaSets: unhealthy old replicas first, then within maxUnavailable."""
        old_count = sum(_replicas(rs) for rs in old_rss)
        if old_count == 0:
            return
        desired = _replicas(deployment)
        all_count = old_count + _replicas(new_rs)
        min_available = desired - max_unavailable(deployment)
        new_unavailable = _replicas(new_rs) - _status(new_rs, "availableReplicas")
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        cleaned = 0
        for rs in sorted(old_rss, key=_created):
            if cleaned >= max_scaled_down:
                break
            unhealthy = _replicas(rs) - _status(rs, "availableReplicas")
            if unhealthy <= 0:
                continue
            count = min(max_scaled_down - cleaned, unhealthy)
            self._set_replicas(deployment, rs, _replicas(rs) - count)
            cleaned += count
        available = sum(_status(rs, "availableReplicas") for rs in old_rss + [new_rs])
        if available <= min_available:
            return
        to_scale_down = available - min_available
        scaled = 0
        for rs in sorted(old_rss, key=_created):
            if scaled >= to_scale_down:
                break
            if _replicas(rs) == 0:
                continue
            count = min(_replicas(rs), to_scale_down - scaled)
            self._set_replicas(deployment, rs, _replicas(rs) - count)
            scaled += count

    def _recreate(self, deployment, new_rs, old_rss) -> None:
        for rs in old_rss:
            if _replicas(rs) > 0:
                self._set_replicas(deployment, rs, 0)
        old_running = any(
            any(
                not podutil.is_finished(r.decode())
                for r in self.client.dependents(rs["metadata"]["uid"], PODS)
            )
            for rs in old_rss
        )
        if old_running:
            return self._write_status(deployment, new_rs, old_rss, rollout=True)
        desired = _replicas(deployment)
        if new_rs is None:
            new_rs = self._new_replica_set(deployment, None, old_rss, desired)
        else:
            new_rs = self._new_replica_set(deployment, new_rs, old_rss, _replicas(new_rs))
            self._set_replicas(deployment, new_rs, desired)
        if self._complete(deployment, new_rs, old_rss):
            self._cleanup(deployment, old_rss)
        self._write_status(deployment, new_rs, old_rss, rollout=True)

    def _complete(self, deployment, new_rs, old_rss) -> bool:
        desired = _replicas(deployment)
        return (
            new_rs is not None
            and _status(new_rs, "replicas") == desired
            and _status(new_rs, "availableReplicas") == desired
            and all(_replicas(rs) == 0 for rs in old_rss)
        )

    def _cleanup(self, deployment, old_rss) -> None:
        limit = (deployment.get("spec") or {}).get("revisionHistoryLimit", 10)
        cleanable = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
        surplus = len(cleanable) - int(limit)
        if surplus <= 0:
            return
        for rs in sorted(cleanable, key=_revision)[:surplus]:
            if _status(rs, "replicas") or _replicas(rs):
                continue
            if rs["metadata"].get("generation", 1) > _status(rs, "observedGeneration"):
                continue
            metadata = rs["metadata"]
            self.client.delete("apps", "v1", "replicasets", metadata["namespace"], metadata["name"])

    # ------------------------------------------------------------------ status

    def _paused_condition(self, deployment) -> None:
        spec = deployment.get("spec") or {}
        if spec.get("progressDeadlineSeconds") is None:
            return
        current = podutil.condition(deployment, "Progressing") or {}
        if current.get("reason") == "ProgressDeadlineExceeded":
            return
        paused_now = current.get("reason") == "DeploymentPaused"
        if spec.get("paused") and not paused_now:
            self._progressing(deployment, "Unknown", "DeploymentPaused", "Deployment is paused")
        elif not spec.get("paused") and paused_now:
            self._progressing(deployment, "Unknown", "DeploymentResumed", "Deployment is resumed")

    def _progressing(
        self, deployment, status, reason, message, only_if_missing: bool = False
    ) -> None:
        """Write a Progressing condition at once (as the controller does when it creates or
        finds the new ReplicaSet, or on pause/resume)."""
        current = podutil.condition(deployment, "Progressing")
        if only_if_missing and current is not None:
            return
        conditions = _set_deployment_condition(
            (deployment.get("status") or {}).get("conditions") or [],
            "Progressing",
            status,
            reason,
            message,
        )
        if conditions == (deployment.get("status") or {}).get("conditions"):
            return
        deployment["status"] = dict(deployment.get("status") or {}, conditions=conditions)
        updated = self.client.update("apps", "v1", "deployments", deployment, "status")
        if updated is not None:
            deployment["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"]

    def _write_status(self, deployment, new_rs, old_rss, rollout: bool) -> None:
        everything = [rs for rs in old_rss + [new_rs] if rs is not None]
        desired = _replicas(deployment)
        available = sum(_status(rs, "availableReplicas") for rs in everything)
        total = sum(_replicas(rs) for rs in everything)
        old = deployment.get("status") or {}
        status: dict[str, Any] = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": sum(_status(rs, "replicas") for rs in everything),
            "updatedReplicas": _status(new_rs, "replicas") if new_rs else 0,
            "readyReplicas": sum(_status(rs, "readyReplicas") for rs in everything),
            "availableReplicas": available,
            "unavailableReplicas": max(total - available, 0),
            "terminatingReplicas": sum(_status(rs, "terminatingReplicas") for rs in everything),
            "collisionCount": old.get("collisionCount"),
        }
        conditions = list(old.get("conditions") or [])
        if available >= desired - max_unavailable(deployment):
            conditions = _set_deployment_condition(
                conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            conditions = _set_deployment_condition(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        spec = deployment.get("spec") or {}
        deadline = spec.get("progressDeadlineSeconds")
        if rollout and deadline is not None:
            conditions = self._rollout_condition(deployment, new_rs, status, conditions, deadline)
        failures = [
            podutil.condition(rs, "ReplicaFailure") for rs in ([new_rs] if new_rs else []) + old_rss
        ]
        failure = next((c for c in failures if c and c.get("status") == "True"), None)
        if failure is not None:
            conditions = _set_deployment_condition(
                conditions, "ReplicaFailure", "True", failure["reason"], failure["message"]
            )
        else:
            conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
        status["conditions"] = conditions
        status = _without_zeros(status)
        if status != old:
            deployment["status"] = status
            self.client.update("apps", "v1", "deployments", deployment, "status")

    def _rollout_condition(self, deployment, new_rs, status, conditions, deadline):
        current = next((c for c in conditions if c.get("type") == "Progressing"), None)
        rs_name = new_rs["metadata"]["name"] if new_rs else None
        desired = _replicas(deployment)
        complete_already = (
            status["replicas"] == status["updatedReplicas"]
            and current is not None
            and current.get("reason") == "NewReplicaSetAvailable"
        )
        if complete_already:
            return conditions
        old = deployment.get("status") or {}
        subject = (
            f'ReplicaSet "{rs_name}"'
            if rs_name
            else f'Deployment "{deployment["metadata"]["name"]}"'
        )
        if (
            status["updatedReplicas"] == desired
            and status["replicas"] == desired
            and status["availableReplicas"] == desired
            and status["observedGeneration"] >= deployment["metadata"].get("generation", 1)
        ):
            return _set_deployment_condition(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f"{subject} has successfully progressed.",
            )
        progressed = (
            status["updatedReplicas"] > int(old.get("updatedReplicas") or 0)
            or status["readyReplicas"] > int(old.get("readyReplicas") or 0)
            or status["availableReplicas"] > int(old.get("availableReplicas") or 0)
            or (status["replicas"] - status["updatedReplicas"])
            < (int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0))
        )
        stamp = now()
        if progressed:
            updated = {
                "type": "Progressing",
                "status": "True",
                "lastUpdateTime": stamp,
                "lastTransitionTime": current.get("lastTransitionTime", stamp)
                if current and current.get("status") == "True"
                else stamp,
                "reason": "ReplicaSetUpdated",
                "message": f"{subject} is progressing.",
            }
            self.requeue(_key(deployment), deadline)
            return [c for c in conditions if c.get("type") != "Progressing"] + [updated]
        if current is not None and current.get("reason") != "ProgressDeadlineExceeded":
            since = parse_time(current.get("lastUpdateTime")) or time.time()
            remaining = since + deadline - time.time()
            if remaining <= 0:
                return _set_deployment_condition(
                    conditions,
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f"{subject} has timed out progressing.",
                )
            self.requeue(_key(deployment), remaining + 0.5)
        return conditions


def _key(obj: dict[str, Any]) -> ObjectKey:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def _set_deployment_condition(conditions, kind, status, reason, message):
    """deploymentutil.SetDeploymentCondition: unchanged when status and reason are the same;
    otherwise the condition moves to the end, keeping lastTransitionTime if status is kept."""
    current = next((c for c in conditions if c.get("type") == kind), None)
    if current is not None and current.get("status") == status and current.get("reason") == reason:
        return conditions
    stamp = now()
    entry = {
        "type": kind,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": current.get("lastTransitionTime", stamp)
        if current is not None and current.get("status") == status
        else stamp,
        "reason": reason,
        "message": message,
    }
    return [c for c in conditions if c.get("type") != kind] + [entry]
