"""kube-controller-manager's job and ttl-after-finished controllers.

Keeps min(parallelism, remaining completions) pods active (NonIndexed; Indexed mode gives each
pod a completion index, `<job>-<index>-xxxxx`, hostname `<job>-<index>`), counts finished pods
once through the `batch.kubernetes.io/job-tracking` finalizer (counted, then released), recreates
failed pods after upstream's exponential backoff (10 s doubling, `--pod-failure-backoff`) until
more than `backoffLimit` failed (restartPolicy OnFailure: container restarts count), and
finishes the Job as upstream 1.31+ does: SuccessCriteriaMet + Complete (reason
CompletionsReached, completionTime), or FailureTarget + Failed (BackoffLimitExceeded,
DeadlineExceeded for activeDeadlineSeconds), deleting pods still active. `suspend` deletes
active pods (Suspended condition), resuming restarts them. Status: startTime, active, ready,
succeeded, failed, terminating, completedIndexes, uncountedTerminatedPods. A finished Job with
`ttlSecondsAfterFinished` is deleted that long after it finished (with its pods).
"""

from __future__ import annotations

import time
from typing import Any

from ..api import now, parse_time
from ..store import ObjectKey
from . import podutil
from .runner import KCM
from .workloads import OwnerController, _controlled_by

PODS = ("", "pods")
JOBS = ("batch", "jobs")
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
BACKOFF_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 360.0


def _finished_condition(job: dict[str, Any]) -> dict[str, Any] | None:
    for kind in ("Complete", "Failed"):
        entry = podutil.condition(job, kind)
        if entry and entry.get("status") == "True":
            return entry
    return None


def _format_indexes(indexes: set[int]) -> str:
    """ "0-2,4" as completedIndexes are written."""
    ranges, ordered = [], sorted(indexes)
    start = previous = None
    for index in ordered:
        if start is None:
            start = previous = index
        elif index == previous + 1:
            previous = index
        else:
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
            start = previous = index
    if start is not None:
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
    return ",".join(ranges)


def _parse_indexes(text: str | None) -> set[int]:
    found: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        low, _unused, high = part.partition("-")
        try:
            found.update(range(int(low), int(high or low) + 1))
        except ValueError:
            continue
    return found


def _pod_index(pod: dict[str, Any]) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(INDEX_ANNOTATION)
    return int(value) if value is not None and value.isdigit() else None


class JobController(OwnerController):
    name = "job"
    manager = KCM
    primary = JOBS
    kind = "Job"

    def __init__(self, cluster, options) -> None:
        super().__init__(cluster, options)
        self.backoff = float(options.get("pod_failure_backoff", BACKOFF_SECONDS))

    def sync(self, key: ObjectKey) -> None:
        job = self.live(key)
        if job is None:
            return
        uid = job["metadata"]["uid"]
        pods = [r.decode() for r in self.client.dependents(uid, PODS) if _controlled_by(r, uid)]
        finished = _finished_condition(job)
        if finished is not None:
            self._release(pods)
            return self._ttl(job, key, finished)
        spec = job.get("spec") or {}
        old = job.get("status") or {}
        status = dict(old)
        moment = time.time()
        indexed = spec.get("completionMode") == "Indexed"
        completed = _parse_indexes(old.get("completedIndexes"))
        succeeded, failed = int(old.get("succeeded") or 0), int(old.get("failed") or 0)
        uncounted = []
        last_failure = None
        for pod in pods:
            tracked = TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])
            phase = (pod.get("status") or {}).get("phase")
            failed_pod = phase == "Failed" or (podutil.is_terminating(pod) and phase != "Succeeded")
            if phase == "Succeeded" or failed_pod:
                if failed_pod:
                    stamp = parse_time(pod["metadata"].get("deletionTimestamp")) or parse_time(
                        _finish_time(pod)
                    )
                    last_failure = max(last_failure or 0, stamp or moment)
                if not tracked:
                    continue
                if phase == "Succeeded":
                    if indexed:
                        index = _pod_index(pod)
                        if index is not None and index not in completed:
                            completed.add(index)
                            succeeded += 1
                    else:
                        succeeded += 1
                else:
                    failed += 1
                uncounted.append(pod)
        active = [p for p in pods if podutil.is_active(p)]
        terminating = sum(
            1 for p in pods if podutil.is_terminating(p) and not podutil.is_finished(p)
        )
        if "startTime" not in status and not spec.get("suspend"):
            status["startTime"] = now()
        status.update(
            active=len(active),
            ready=sum(1 for p in active if podutil.is_ready(p)),
            succeeded=succeeded,
            failed=failed,
            terminating=terminating,
            uncountedTerminatedPods={},
        )
        if indexed:
            status["completedIndexes"] = _format_indexes(completed)
        conditions = list(old.get("conditions") or [])
        outcome = self._outcome(job, spec, status, active, completed, moment)
        if outcome is not None:
            kind, reason, message = outcome
            for pod in active:
                self.delete_pod(pod)
            target = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
            conditions = podutil.set_condition(conditions, target, "True", reason, message)
            conditions = podutil.set_condition(conditions, kind, "True", reason, message)
            status["active"] = 0
            status["ready"] = 0
            if kind == "Complete":
                status["completionTime"] = now()
                self.client.event(job, "Completed", "Job completed")
            else:
                self.client.event(job, reason, message, "Warning")
        elif spec.get("suspend"):
            for pod in active:
                self.delete_pod(pod)
            status["active"] = 0
            conditions = podutil.set_condition(
                conditions, "Suspended", "True", "JobSuspended", "Job suspended"
            )
        else:
            if (podutil.condition(job, "Suspended") or {}).get("status") == "True":
                conditions = podutil.set_condition(
                    conditions, "Suspended", "False", "JobResumed", "Job resumed"
                )
            self._manage(job, spec, active, completed, succeeded, failed, last_failure, key)
        status["conditions"] = conditions
        status = {
            k: v
            for k, v in status.items()
            if k in ("ready", "terminating", "uncountedTerminatedPods")
            or v not in (0, None, [], "")
        }
        if status != old:
            job["status"] = status
            updated = self.client.update("batch", "v1", "jobs", job, "status")
            if updated is None:
                return  # changed meanwhile: counted again on the next pass
        self._release(uncounted)
        if outcome is not None:
            self._ttl(job, key, _finished_condition(job) or {"lastTransitionTime": now()})

    def _outcome(self, job, spec, status, active, completed, moment):
        """(condition, reason, message) when the Job is done now, else None."""
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time(status.get("startTime"))
        if deadline is not None and started is not None and not spec.get("suspend"):
            remaining = started + int(deadline) - moment
            if remaining <= 0:
                return "Failed", "DeadlineExceeded", "Job was active longer than specified deadline"
            self.requeue(_key(job), remaining + 0.1)
        limit = int(spec.get("backoffLimit", 6))
        template = (spec.get("template") or {}).get("spec") or {}
        if template.get("restartPolicy") == "OnFailure":
            restarts = sum(
                c.get("restartCount", 0)
                for p in active
                for c in ((p.get("status") or {}).get("containerStatuses") or [])
                + ((p.get("status") or {}).get("initContainerStatuses") or [])
            )
            if (restarts > 0 if limit == 0 else restarts >= limit) and restarts:
                return (
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
        if status["failed"] > limit:
            return "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        completions = spec.get("completions")
        if spec.get("completionMode") == "Indexed":
            if completions is not None and len(completed) >= int(completions):
                return "Complete", "CompletionsReached", "Reached expected number of succeeded pods"
            return None
        if completions is not None:
            if status["succeeded"] >= int(completions):
                return "Complete", "CompletionsReached", "Reached expected number of succeeded pods"
        elif status["succeeded"] > 0 and not active:
            return "Complete", "CompletionsReached", "Reached expected number of succeeded pods"
        return None

    def _manage(self, job, spec, active, completed, succeeded, failed, last_failure, key):
        parallelism = int(spec.get("parallelism", 1))
        completions = spec.get("completions")
        if failed and last_failure is not None:
            delay = min(self.backoff * (2 ** (failed - 1)), MAX_BACKOFF_SECONDS)
            wait = last_failure + delay - time.time()
            if wait > 0:
                self.requeue(key, wait)
                return
        if spec.get("completionMode") == "Indexed":
            total = int(completions or 0)
            running = {_pod_index(p) for p in active}
            missing = [i for i in range(total) if i not in completed and i not in running]
            for index in missing[: max(parallelism - len(active), 0)]:
                self._create(job, index)
            return
        if completions is None:
            wanted = 0 if succeeded else parallelism
        else:
            wanted = min(parallelism, max(int(completions) - succeeded, 0))
        if len(active) < wanted:
            for _unused in range(wanted - len(active)):
                self._create(job, None)
        elif len(active) > wanted:
            newest = sorted(
                active,
                key=lambda p: parse_time(p["metadata"].get("creationTimestamp")) or 0,
                reverse=True,
            )
            for pod in newest[: len(active) - wanted]:
                self.delete_pod(pod)

    def _create(self, job: dict[str, Any], index: int | None) -> None:
        template = (job.get("spec") or {}).get("template") or {}
        name = job["metadata"]["name"]
        labels = annotations = None
        if index is not None:
            labels = {INDEX_ANNOTATION: str(index)}
            annotations = {INDEX_ANNOTATION: str(index)}
        pod = podutil.pod_from_template(
            template,
            job,
            generate_name=f"{name}-{index}-" if index is not None else f"{name}-",
            labels=labels,
            annotations=annotations,
        )
        pod["metadata"]["finalizers"] = list(pod["metadata"].get("finalizers") or []) + [
            TRACKING_FINALIZER
        ]
        if index is not None:
            pod["spec"]["hostname"] = f"{name}-{index}"
        try:
            created = self.client.create("", "v1", "pods", job["metadata"]["namespace"], pod)
        except Exception as error:  # noqa: BLE001 - reported as the controller's event
            self.client.event(job, "FailedCreate", f"Error creating: {error}", "Warning")
            return
        if created is not None:
            self.client.event(
                job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}"
            )

    def _release(self, pods: list[dict[str, Any]]) -> None:
        """Drop the tracking finalizer of counted pods."""
        for pod in pods:
            finalizers = pod["metadata"].get("finalizers") or []
            if TRACKING_FINALIZER not in finalizers:
                continue
            remaining = [f for f in finalizers if f != TRACKING_FINALIZER]
            self.client.patch(
                "",
                "v1",
                "pods",
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                {"metadata": {"finalizers": remaining or None}},
            )

    def _ttl(self, job: dict[str, Any], key: ObjectKey, finished: dict[str, Any]) -> None:
        """ttl-after-finished: delete the Job (and its pods) ttlSecondsAfterFinished after it
        finished."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        status = job.get("status") or {}
        finished_at = parse_time(status.get("completionTime")) or parse_time(
            finished.get("lastTransitionTime")
        )
        remaining = (finished_at or time.time()) + int(ttl) - time.time()
        if remaining > 0:
            self.requeue(key, remaining + 0.05)
            return
        metadata = job["metadata"]
        self.client.delete(
            "batch",
            "v1",
            "jobs",
            metadata["namespace"],
            metadata["name"],
            propagation="Foreground",
            uid=metadata["uid"],
        )


def _finish_time(pod: dict[str, Any]) -> str | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated.get("finishedAt"):
            return terminated["finishedAt"]
    return None


def _key(obj: dict[str, Any]) -> ObjectKey:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
