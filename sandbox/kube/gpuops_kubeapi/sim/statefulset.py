"""kube-controller-manager's statefulset controller: pods with stable names `<name>-<ordinal>`.

OrderedReady (the default) creates ordinal N only once 0..N-1 are Running and Ready, and scales
down from the highest ordinal, one pod at a time; Parallel creates and deletes all at once.
Pods carry `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and
`controller-revision-hash` (`<name>-<hash>` of the template), hostname and subdomain
(serviceName). Failed pods are replaced. RollingUpdate replaces pods of an older revision from
the highest ordinal down to `partition`, one at a time, each only after the others are ready;
OnDelete waits. Status from the pods: replicas, readyReplicas, availableReplicas,
currentReplicas, updatedReplicas, currentRevision, updateRevision, observedGeneration,
collisionCount. Not simulated: volumeClaimTemplates (no PersistentVolumeClaims are created).
"""

from __future__ import annotations

import time
from typing import Any

from ..store import ObjectKey
from . import podutil
from .runner import KCM
from .workloads import OwnerController, _controlled_by, _replicas

PODS = ("", "pods")
STATEFULSETS = ("apps", "statefulsets")
HASH_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def _ordinal(sts_name: str, pod_name: str) -> int | None:
    prefix = sts_name + "-"
    if not pod_name.startswith(prefix) or not pod_name[len(prefix) :].isdigit():
        return None
    return int(pod_name[len(prefix) :])


def _running_ready(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and podutil.is_ready(pod)


class StatefulSetController(OwnerController):
    name = "statefulset"
    manager = KCM
    primary = STATEFULSETS
    kind = "StatefulSet"

    def sync(self, key: ObjectKey) -> None:
        sts = self.live(key)
        if sts is None:
            return
        name = sts["metadata"]["name"]
        spec = sts.get("spec") or {}
        update_revision = f"{name}-{podutil.template_hash(spec.get('template') or {})}"
        status = sts.get("status") or {}
        current_revision = status.get("currentRevision") or update_revision
        pods = self._pods(sts)
        start = int((spec.get("ordinals") or {}).get("start") or 0)
        replicas = _replicas(sts)
        wanted = range(start, start + replicas)
        parallel = spec.get("podManagementPolicy") == "Parallel"
        by_ordinal = dict(pods)
        # Replace failed pods first (they are deleted, then recreated on the next pass).
        for ordinal, pod in list(by_ordinal.items()):
            if (pod.get("status") or {}).get("phase") == "Failed" and not podutil.is_terminating(
                pod
            ):
                self.delete_pod(pod)
                del by_ordinal[ordinal]
        blocked = False
        for ordinal in wanted:
            pod = by_ordinal.get(ordinal)
            if pod is None:
                below_partition = ordinal < self._partition(sts)
                self._create(sts, ordinal, current_revision if below_partition else update_revision)
                if not parallel:
                    blocked = True
                    break
                continue
            if not parallel and not _running_ready(pod):
                blocked = True
                break
        # Scale down: surplus ordinals, highest first.
        surplus = sorted((o for o in by_ordinal if o not in wanted), reverse=True)
        if surplus and (parallel or not blocked):
            terminating = any(podutil.is_terminating(by_ordinal[o]) for o in surplus)
            if parallel:
                for ordinal in surplus:
                    self.delete_pod(by_ordinal[ordinal])
            elif not terminating and all(
                _running_ready(by_ordinal[o]) for o in by_ordinal if o in wanted
            ):
                self.delete_pod(by_ordinal[surplus[0]])
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate" and not blocked and not surplus:
            self._roll(sts, by_ordinal, wanted, update_revision)
        self._write_status(sts, key, update_revision, current_revision)

    def _partition(self, sts) -> int:
        rolling = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
        return int(rolling.get("partition") or 0)

    def _pods(self, sts: dict[str, Any]) -> dict[int, dict[str, Any]]:
        uid = sts["metadata"]["uid"]
        found = {}
        for record in self.client.dependents(uid, PODS):
            if not _controlled_by(record, uid):
                continue
            ordinal = _ordinal(sts["metadata"]["name"], record.key[1])
            if ordinal is not None:
                found[ordinal] = record.decode()
        return found

    def _create(self, sts: dict[str, Any], ordinal: int, revision: str) -> None:
        name = f"{sts['metadata']['name']}-{ordinal}"
        spec = sts.get("spec") or {}
        pod = podutil.pod_from_template(
            spec.get("template") or {},
            sts,
            name=name,
            labels={
                HASH_LABEL: revision,
                POD_NAME_LABEL: name,
                POD_INDEX_LABEL: str(ordinal),
            },
        )
        pod["spec"]["hostname"] = name
        if spec.get("serviceName"):
            pod["spec"]["subdomain"] = spec["serviceName"]
        try:
            created = self.client.create("", "v1", "pods", sts["metadata"]["namespace"], pod)
        except Exception as error:  # noqa: BLE001 - reported as the controller's event
            self.client.event(
                sts,
                "FailedCreate",
                f"create Pod {name} in StatefulSet {sts['metadata']['name']} failed error: {error}",
                "Warning",
            )
            return
        if created is not None:
            self.client.event(
                sts,
                "SuccessfulCreate",
                f"create Pod {name} in StatefulSet {sts['metadata']['name']} successful",
            )

    def _roll(self, sts, by_ordinal, wanted, update_revision) -> None:
        """Replace the highest pod of an older revision at or above partition, when every
        pod is running and ready (one at a time)."""
        if any(podutil.is_terminating(p) or not _running_ready(p) for p in by_ordinal.values()):
            return
        partition = self._partition(sts)
        for ordinal in sorted(wanted, reverse=True):
            if ordinal < partition:
                break
            pod = by_ordinal.get(ordinal)
            if pod is None:
                return
            if (pod["metadata"].get("labels") or {}).get(HASH_LABEL) != update_revision:
                self.delete_pod(pod)
                return

    def _write_status(self, sts, key, update_revision, current_revision) -> None:
        pods = self._pods(sts)
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        moment = time.time()
        counted = [p for p in pods.values() if not podutil.is_terminating(p)]
        ready = available = current = updated = 0
        for pod in counted:
            revision = (pod["metadata"].get("labels") or {}).get(HASH_LABEL)
            if revision == current_revision:
                current += 1
            if revision == update_revision:
                updated += 1
            if _running_ready(pod):
                ready += 1
                if podutil.is_available(pod, min_ready, moment):
                    available += 1
                else:
                    wait = podutil.available_in(pod, min_ready, moment)
                    if wait is not None:
                        self.requeue(key, wait)
        replicas = _replicas(sts)
        if updated == replicas and len(counted) == replicas and ready == replicas:
            current_revision, current = update_revision, updated
        old = sts.get("status") or {}
        status: dict[str, Any] = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(counted),
            "currentRevision": current_revision,
            "updateRevision": update_revision,
            "collisionCount": old.get("collisionCount", 0),
        }
        for field, value in (
            ("readyReplicas", ready),
            ("availableReplicas", available),
            ("currentReplicas", current),
            ("updatedReplicas", updated),
        ):
            if value:
                status[field] = value
        if status != old:
            sts["status"] = status
            self.client.update("apps", "v1", "statefulsets", sts, "status")
