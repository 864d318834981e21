"""What the apiserver adds on every write, as pure functions: the SetDefaults_* of the built-in
types the stand-in serves (apps/v1 workloads, batch/v1 Job and CronJob, core/v1 Pod specs, also
inside pod templates) and, for Pods on create, the admission plugins every cluster runs
(ServiceAccount: `serviceAccountName: default`; DefaultTolerationSeconds: tolerate
not-ready/unreachable NoExecute taints for 300 s; Priority: `priority: 0`)."""

from __future__ import annotations

from typing import Any

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet")
DEFAULT_TOLERATION_SECONDS = 300
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _image_pull_policy(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return "IfNotPresent"
    tag = name.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def default_pod_spec(spec: Any) -> None:
    """SetDefaults_PodSpec and SetDefaults_Container (pods and pod templates)."""
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if not isinstance(container, dict):
                continue
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            if isinstance(container.get("image"), str):
                container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def _requests_from_limits(spec: Any) -> None:
    """SetDefaults_Pod (Pods only, not templates): limits without requests are the requests."""
    if not isinstance(spec, dict):
        return
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            resources = container.get("resources") if isinstance(container, dict) else None
            if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
                requests = resources.setdefault("requests", {})
                if isinstance(requests, dict):
                    for name, value in resources["limits"].items():
                        requests.setdefault(name, value)


def _template_spec(obj: dict[str, Any]) -> Any:
    template = (obj.get("spec") or {}).get("template")
    return template.get("spec") if isinstance(template, dict) else None


def apply_defaults(kind: str, obj: dict[str, Any]) -> None:
    """SetDefaults_* for `kind` (every write: create, update, patch, apply)."""
    spec = obj.get("spec")
    if kind == "Pod":
        default_pod_spec(spec)
        _requests_from_limits(spec)
        return
    if not isinstance(spec, dict):
        return
    if kind in WORKLOAD_KINDS:
        _workload_defaults(kind, spec)
        default_pod_spec(_template_spec(obj))
    elif kind == "Job":
        _job_defaults(obj, spec)
        default_pod_spec(_template_spec(obj))
    elif kind == "CronJob":
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job_template = spec.get("jobTemplate")
        if isinstance(job_template, dict) and isinstance(job_template.get("spec"), dict):
            job_spec = job_template["spec"]
            _job_counts(job_spec)
            template = job_spec.get("template")
            if isinstance(template, dict):
                default_pod_spec(template.get("spec"))


def _workload_defaults(kind: str, spec: dict[str, Any]) -> None:
    """The apps/v1 SetDefaults_* values kubernetes.core's readiness checks rely on."""
    if kind != "DaemonSet":
        spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    if kind == "Deployment":
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("progressDeadlineSeconds", 600)
    elif kind == "StatefulSet":
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault(
            "persistentVolumeClaimRetentionPolicy",
            {"whenDeleted": "Retain", "whenScaled": "Retain"},
        )
    elif kind == "DaemonSet":
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)


def _job_counts(spec: dict[str, Any]) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    if not spec.get("podFailurePolicy"):
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    spec.setdefault("manualSelector", None)
    if spec.get("manualSelector") is None:
        del spec["manualSelector"]


def _job_defaults(obj: dict[str, Any], spec: dict[str, Any]) -> None:
    _job_counts(spec)
    uid = obj["metadata"].get("uid")
    if not uid or spec.get("manualSelector"):
        return
    # The job strategy's generated selector and the labels it puts on the pod template.
    name = obj["metadata"].get("name", "")
    spec.setdefault("selector", {"matchLabels": {JOB_UID_LABEL: uid}})
    template = spec.get("template")
    if isinstance(template, dict):
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        if isinstance(labels, dict):
            labels.setdefault(JOB_UID_LABEL, uid)
            labels.setdefault(JOB_NAME_LABEL, name)
            labels.setdefault("controller-uid", uid)
            labels.setdefault("job-name", name)


def admit_pod(pod: dict[str, Any]) -> None:
    """The mutating admission plugins a Pod meets on create."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = account
    spec["serviceAccount"] = account
    spec.setdefault("priority", 0)
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = []
    if not isinstance(tolerations, list):
        return
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if any(
            isinstance(t, dict)
            and (t.get("key") == key or (t.get("operator") == "Exists" and not t.get("key")))
            and t.get("effect") in (None, "", "NoExecute")
            for t in tolerations
        ):
            continue
        tolerations.append(
            {
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }
        )
    spec["tolerations"] = tolerations
