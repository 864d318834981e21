"""Workload controllers, scheduler and kubelets of the stand-in (serve --controllers all),
through the real kubernetes client: what kube-controller-manager, kube-scheduler and kubelets
would show through the API."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from conftest import ready_node, wait_for

RUN = "sandbox.gpuops.io/run-seconds"
EXIT = "sandbox.gpuops.io/exit-code"
FAULT = "sandbox.gpuops.io/fault"


@pytest.fixture
def core(cluster_api):
    return client.CoreV1Api(cluster_api)


@pytest.fixture
def apps(cluster_api):
    return client.AppsV1Api(cluster_api)


@pytest.fixture
def batch(cluster_api):
    return client.BatchV1Api(cluster_api)


def _template(labels, annotations=None, cpu=None, **spec):
    container = {"name": "app", "image": "registry.local/app:1"}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}}
    metadata = {"labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": {"containers": [container], **spec}}


def _deployment(name, replicas=3, annotations=None, **spec):
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": _template(labels, annotations, nodeSelector={"pool": "general"}),
            **spec,
        },
    }


def _maybe(read, *args):
    """read(*args), or None while the object does not exist yet."""
    try:
        return read(*args)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def _conditions(obj):
    return {c.type: c for c in obj.status.conditions or []}


def _pods(core, namespace, selector=""):
    return core.list_namespaced_pod(namespace, label_selector=selector).items


def _rolled_out(apps, namespace, name, replicas):
    deployment = apps.read_namespaced_deployment(name, namespace)
    status = deployment.status
    done = (
        status.observed_generation == deployment.metadata.generation
        and status.updated_replicas == replicas
        and status.available_replicas == replicas
        and status.replicas == replicas
    )
    return deployment if done else None


# ----------------------------------------------------------------------------- deployment


def test_deployment_pods_exist_roll_and_report_from_them(core, apps, cluster_namespace):
    ns = cluster_namespace
    apps.create_namespaced_deployment(ns, _deployment("web"))
    deployment = wait_for(lambda: _rolled_out(apps, ns, "web", 3), timeout=15)
    conditions = _conditions(deployment)
    assert conditions["Available"].reason == "MinimumReplicasAvailable"
    assert conditions["Progressing"].reason == "NewReplicaSetAvailable"
    assert deployment.status.ready_replicas == 3 and not deployment.status.unavailable_replicas
    (replica_set,) = apps.list_namespaced_replica_set(ns).items
    template_hash = replica_set.metadata.labels["pod-template-hash"]
    assert replica_set.metadata.name == f"web-{template_hash}"
    assert replica_set.metadata.owner_references[0].kind == "Deployment"
    assert replica_set.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    pods = _pods(core, ns, "app=web")
    assert len(pods) == 3
    for pod in pods:
        assert pod.metadata.owner_references[0].name == replica_set.metadata.name
        assert pod.metadata.labels["pod-template-hash"] == template_hash
        assert pod.status.phase == "Running" and pod.spec.node_name in ("pool-a", "pool-b")
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"

    # A rolling update: the ReplicaSets never ask for more than replicas + maxSurge pods nor
    # have fewer than replicas - maxUnavailable available (replayed from the watch log, so no
    # intermediate state is missed), and the old ReplicaSet ends at 0 with its revision.
    before = apps.list_namespaced_replica_set(ns)
    since = before.metadata.resource_version
    apps.patch_namespaced_deployment(
        "web",
        ns,
        {
            "spec": {
                "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "spec": {"containers": [{"name": "app", "image": "registry.local/app:2"}]}
                },
            }
        },
    )
    wait_for(
        lambda: (
            _rolled_out(apps, ns, "web", 3)
            and len([p for p in _pods(core, ns, "app=web") if not p.metadata.deletion_timestamp])
            == 3
        ),
        timeout=20,
    )
    state = {
        r.metadata.name: (r.spec.replicas or 0, r.status.available_replicas or 0)
        for r in before.items
    }
    most, fewest = 3, 3
    for event in watch.Watch().stream(
        apps.list_namespaced_replica_set, ns, resource_version=since, timeout_seconds=1
    ):
        replica_set = event["object"]
        state[replica_set.metadata.name] = (
            replica_set.spec.replicas or 0,
            replica_set.status.available_replicas or 0,
        )
        most = max(most, sum(wanted for wanted, _unused in state.values()))
        fewest = min(fewest, sum(available for _unused, available in state.values()))
    assert most == 4  # surged by one, never more
    assert fewest == 3  # maxUnavailable 0: never fewer available
    replica_sets = {
        r.metadata.annotations["deployment.kubernetes.io/revision"]: r
        for r in apps.list_namespaced_replica_set(ns).items
    }
    assert replica_sets["1"].spec.replicas == 0 and replica_sets["2"].spec.replicas == 3
    assert {
        p.spec.containers[0].image
        for p in _pods(core, ns, "app=web")
        if not p.metadata.deletion_timestamp
    } == {"registry.local/app:2"}
    assert (
        apps.read_namespaced_deployment("web", ns).metadata.annotations[
            "deployment.kubernetes.io/revision"
        ]
        == "2"
    )

    # Scale through the scale subresource (what kubectl scale and k8s_scale use).
    scale = apps.read_namespaced_deployment_scale("web", ns)
    assert scale.spec.replicas == 3 and "app=web" in scale.status.selector
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 1}})
    wait_for(lambda: _rolled_out(apps, ns, "web", 1), timeout=15)
    wait_for(lambda: len(_pods(core, ns, "app=web")) == 1, timeout=15)


def test_pause_resume_and_progress_deadline(core, apps, cluster_namespace):
    ns = cluster_namespace
    apps.create_namespaced_deployment(
        ns, _deployment("paused", replicas=2, progressDeadlineSeconds=3)
    )
    wait_for(lambda: _rolled_out(apps, ns, "paused", 2), timeout=15)
    apps.patch_namespaced_deployment("paused", ns, {"spec": {"paused": True}})
    progressing = wait_for(
        lambda: (
            _conditions(apps.read_namespaced_deployment("paused", ns))["Progressing"].reason
            == "DeploymentPaused"
            and _conditions(apps.read_namespaced_deployment("paused", ns))["Progressing"]
        )
    )
    assert progressing.status == "Unknown" and progressing.message == "Deployment is paused"
    apps.patch_namespaced_deployment(
        "paused", ns, {"spec": {"template": {"metadata": {"labels": {"v": "2"}}}}}
    )
    time.sleep(1)
    assert len(apps.list_namespaced_replica_set(ns).items) == 1  # no rollout while paused
    apps.patch_namespaced_deployment("paused", ns, {"spec": {"paused": False}})
    wait_for(lambda: len(apps.list_namespaced_replica_set(ns).items) == 2, timeout=10)
    wait_for(lambda: _rolled_out(apps, ns, "paused", 2), timeout=15)

    # A template whose containers crash never becomes available: the rollout times out.
    apps.patch_namespaced_deployment(
        "paused",
        ns,
        {"spec": {"template": {"metadata": {"annotations": {FAULT: "CrashLoopBackOff"}}}}},
    )
    timed_out = wait_for(
        lambda: (
            (c := _conditions(apps.read_namespaced_deployment("paused", ns))["Progressing"]).reason
            == "ProgressDeadlineExceeded"
            and c
        ),
        timeout=20,
    )
    assert timed_out.status == "False" and "has timed out progressing" in timed_out.message
    crashing = [
        p
        for p in _pods(core, ns, "app=paused")
        if p.metadata.annotations and FAULT in p.metadata.annotations
    ]
    assert crashing and all(
        p.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff" for p in crashing
    )
    # maxUnavailable 25% of 2 rounds down to 0 with surge 1: the old pods keep serving.
    assert apps.read_namespaced_deployment("paused", ns).status.available_replicas == 2


# ----------------------------------------------------------------------------- replicaset


def test_replicaset_adopts_orphans_and_replaces_deleted_pods(core, apps, cluster_namespace):
    ns = cluster_namespace
    labels = {"app": "rs"}
    core.create_namespaced_pod(
        ns, {"metadata": {"name": "orphan", "labels": labels}, "spec": _template(labels)["spec"]}
    )
    apps.create_namespaced_replica_set(
        ns,
        {
            "metadata": {"name": "rs"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": _template(labels),
            },
        },
    )
    wait_for(
        lambda: apps.read_namespaced_replica_set("rs", ns).status.available_replicas == 2,
        timeout=10,
    )
    pods = _pods(core, ns, "app=rs")
    assert len(pods) == 2 and "orphan" in {p.metadata.name for p in pods}
    assert core.read_namespaced_pod("orphan", ns).metadata.owner_references[0].name == "rs"
    core.delete_namespaced_pod("orphan", ns)
    wait_for(
        lambda: "orphan" not in {p.metadata.name for p in _pods(core, ns, "app=rs")}, timeout=10
    )
    wait_for(
        lambda: apps.read_namespaced_replica_set("rs", ns).status.available_replicas == 2,
        timeout=10,
    )


# ------------------------------------------------------------------------------ daemonset


def test_daemonset_one_pod_per_eligible_node(core, apps, cluster_namespace):
    ns = cluster_namespace
    nodes = [f"{ns}-a", f"{ns}-b", f"{ns}-tainted"]
    core.create_node(ready_node(nodes[0], labels={"ds": ns}))
    core.create_node(ready_node(nodes[1], labels={"ds": ns}))
    core.create_node(
        ready_node(
            nodes[2],
            labels={"ds": ns},
            taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}],
        )
    )
    try:
        labels = {"app": "agent"}
        apps.create_namespaced_daemon_set(
            ns,
            {
                "metadata": {"name": "agent"},
                "spec": {
                    "selector": {"matchLabels": labels},
                    "template": _template(labels, nodeSelector={"ds": ns}),
                },
            },
        )
        status = wait_for(
            lambda: (
                (s := apps.read_namespaced_daemon_set("agent", ns).status).number_ready == 2 and s
            ),
            timeout=10,
        )
        assert status.desired_number_scheduled == 2 and status.current_number_scheduled == 2
        assert status.updated_number_scheduled == 2 and status.number_available == 2
        placed = sorted(p.spec.node_name for p in _pods(core, ns, "app=agent"))
        assert placed == sorted(nodes[:2])  # not the tainted node, one pod each
        # A new eligible node gets its pod; cordoning does not remove daemon pods.
        core.create_node(ready_node(f"{ns}-c", labels={"ds": ns}))
        nodes.append(f"{ns}-c")
        core.patch_node(nodes[0], {"spec": {"unschedulable": True}})
        wait_for(
            lambda: apps.read_namespaced_daemon_set("agent", ns).status.number_ready == 3,
            timeout=10,
        )
        assert len(_pods(core, ns, "app=agent")) == 3
        # No pods without nodes: the counts follow real pods.
        core.delete_node(f"{ns}-c")
        nodes.remove(f"{ns}-c")
        wait_for(
            lambda: (
                apps.read_namespaced_daemon_set("agent", ns).status.desired_number_scheduled == 2
            ),
            timeout=10,
        )
        wait_for(lambda: len(_pods(core, ns, "app=agent")) == 2, timeout=10)
    finally:
        for name in nodes:
            core.delete_node(name)


# ---------------------------------------------------------------------------- statefulset


def test_statefulset_ordered_stable_names(core, apps, cluster_namespace):
    ns = cluster_namespace
    labels = {"app": "db"}
    stream = watch.Watch()
    apps.create_namespaced_stateful_set(
        ns,
        {
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 3,
                "serviceName": "db",
                "selector": {"matchLabels": labels},
                "template": _template(labels),
            },
        },
    )
    # Follow the pods in the order the server changed them: each ordinal is created only
    # once every lower ordinal was Running and Ready.
    ready: dict[str, bool] = {}
    order = []
    for event in stream.stream(
        core.list_namespaced_pod, ns, label_selector="app=db", timeout_seconds=15
    ):
        pod = event["object"]
        name = pod.metadata.name
        if event["type"] == "ADDED":
            order.append((name, all(ready.values())))
        ready[name] = {c.type: c.status for c in (pod.status.conditions or [])}.get(
            "Ready"
        ) == "True"
        if len(order) == 3 and all(ready.values()):
            stream.stop()
    assert order == [("db-0", True), ("db-1", True), ("db-2", True)]
    sts = wait_for(
        lambda: (s := apps.read_namespaced_stateful_set("db", ns)).status.ready_replicas == 3 and s,
        timeout=10,
    )
    assert sts.status.current_revision == sts.status.update_revision
    pod = core.read_namespaced_pod("db-1", ns)
    assert pod.spec.hostname == "db-1" and pod.spec.subdomain == "db"
    assert pod.metadata.labels["statefulset.kubernetes.io/pod-name"] == "db-1"
    uid = pod.metadata.uid
    core.delete_namespaced_pod("db-1", ns)
    again = wait_for(
        lambda: (p := _maybe(core.read_namespaced_pod, "db-1", ns)) and p.metadata.uid != uid and p,
        timeout=10,
    )
    assert again.metadata.name == "db-1"  # the same identity comes back
    apps.patch_namespaced_stateful_set_scale("db", ns, {"spec": {"replicas": 1}})
    wait_for(
        lambda: sorted(p.metadata.name for p in _pods(core, ns, "app=db")) == ["db-0"], timeout=15
    )


# ------------------------------------------------------------------------------------ job


def _job(name, completions=3, parallelism=2, annotations=None, **spec):
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completions": completions,
            "parallelism": parallelism,
            "template": _template({"job": name}, annotations, restartPolicy="Never"),
            **spec,
        },
    }


def test_job_completes_fails_and_expires(core, batch, cluster_namespace):
    ns = cluster_namespace
    batch.create_namespaced_job(
        ns, _job("work", annotations={RUN: "0.5"}, ttlSecondsAfterFinished=2)
    )
    most = 0

    def complete():
        job = batch.read_namespaced_job("work", ns)
        nonlocal most
        most = max(most, job.status.active or 0)
        return job if _conditions(job).get("Complete") else None

    job = wait_for(complete, timeout=20)
    assert job.status.succeeded == 3 and not job.status.failed and job.status.completion_time
    assert most <= 2  # parallelism
    assert _conditions(job)["SuccessCriteriaMet"].reason == "CompletionsReached"
    assert job.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] == job.metadata.uid
    finished = _pods(core, ns, "job=work")
    assert len(finished) == 3 and {p.status.phase for p in finished} == {"Succeeded"}
    assert all(
        "batch.kubernetes.io/job-tracking" not in (p.metadata.finalizers or []) for p in finished
    )

    def gone():
        try:
            batch.read_namespaced_job("work", ns)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, timeout=10)  # ttlSecondsAfterFinished
    wait_for(lambda: not _pods(core, ns, "job=work"), timeout=10)

    batch.create_namespaced_job(
        ns,
        _job(
            "broken",
            completions=1,
            parallelism=1,
            annotations={RUN: "0", EXIT: "3"},
            backoffLimit=1,
        ),
    )
    failed = wait_for(
        lambda: _conditions(j := batch.read_namespaced_job("broken", ns)).get("Failed") and j,
        timeout=20,
    )
    assert _conditions(failed)["Failed"].reason == "BackoffLimitExceeded"
    assert failed.status.failed == 2 and not failed.status.succeeded
    exit_codes = {
        p.status.container_statuses[0].state.terminated.exit_code
        for p in _pods(core, ns, "job=broken")
    }
    assert exit_codes == {3}

    with pytest.raises(ApiException) as refused:
        batch.create_namespaced_job(
            ns,
            {
                **_job("always"),
                "spec": {**_job("always")["spec"], "template": _template({"job": "x"})},
            },
        )
    assert refused.value.status == 422
    message = json.loads(refused.value.body)["message"]
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in message


# -------------------------------------------------------------------------- pod lifecycle


def test_pod_lifecycle_faults_and_graceful_deletion(core, cluster_namespace):
    ns = cluster_namespace

    def pod(name, annotations=None, **spec):
        body = {
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": _template({}, **spec)["spec"],
        }
        body["spec"]["nodeSelector"] = {"pool": "general"}
        return core.create_namespaced_pod(ns, body)

    created = pod("plain")
    assert created.status.phase == "Pending"
    assert created.spec.service_account_name == "default"  # ServiceAccount admission
    assert {t.key for t in created.spec.tolerations} >= {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    }
    running = wait_for(
        lambda: (p := core.read_namespaced_pod("plain", ns)).status.phase == "Running" and p
    )
    assert {c.type: c.status for c in running.status.conditions} == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    assert running.status.container_statuses[0].state.running.started_at
    assert (
        running.status.pod_ip
        and running.status.host_ip
        and running.status.qos_class == "BestEffort"
    )

    pod("pull", {FAULT: "ImagePullBackOff"})
    pulling = wait_for(
        lambda: (
            (s := core.read_namespaced_pod("pull", ns).status).container_statuses
            and s.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
            and s
        ),
        timeout=10,
    )
    assert pulling.phase == "Pending"
    assert {c.type: c.status for c in pulling.conditions}["Ready"] == "False"

    pod("crash", {FAULT: "CrashLoopBackOff"})
    crashing = wait_for(
        lambda: (
            (s := core.read_namespaced_pod("crash", ns).status).container_statuses
            and s.container_statuses[0].restart_count >= 2
            and s
        ),
        timeout=10,
    )
    container = crashing.container_statuses[0]
    assert crashing.phase == "Running" and not container.ready
    assert (
        container.last_state.terminated.exit_code == 1
        and container.last_state.terminated.reason == "Error"
    )

    # Deletion honours the grace period as time: the containers take 2 s to stop.
    pod("slow", {"sandbox.gpuops.io/stop-seconds": "2"}, terminationGracePeriodSeconds=30)
    wait_for(lambda: core.read_namespaced_pod("slow", ns).status.phase == "Running")
    started = time.monotonic()
    core.delete_namespaced_pod("slow", ns)
    terminating = core.read_namespaced_pod("slow", ns)
    assert (
        terminating.metadata.deletion_timestamp
        and terminating.metadata.deletion_grace_period_seconds == 30
    )

    def gone(name):
        try:
            core.read_namespaced_pod(name, ns)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(lambda: gone("slow"), timeout=10)
    assert 1.5 <= time.monotonic() - started < 8
    # gracePeriodSeconds=0 deletes at once.
    core.delete_namespaced_pod("plain", ns, grace_period_seconds=0)
    assert gone("plain")


# ------------------------------------------------------------------------------ scheduler


def test_scheduler_node_affinity_and_resource_fit(core, cluster_namespace):
    ns = cluster_namespace
    nodes = {f"{ns}-gpu": {"accel": "h100"}, f"{ns}-cpu": {"accel": "none"}}
    for name, labels in nodes.items():
        extra = {"nvidia.com/gpu": "2"} if labels["accel"] == "h100" else {}
        core.create_node(
            ready_node(name, labels={"sched": ns, **labels}, cpu="2", memory="4Gi", extra=extra)
        )
    try:
        affinity = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "sched", "operator": "In", "values": [ns]},
                                {"key": "accel", "operator": "NotIn", "values": ["none"]},
                            ]
                        }
                    ]
                }
            }
        }

        def pod(name, requests, limits=None):
            resources = {"requests": requests}
            if limits:
                resources["limits"] = limits
            return core.create_namespaced_pod(
                ns,
                {
                    "metadata": {"name": name},
                    "spec": {
                        "affinity": affinity,
                        "containers": [{"name": "c", "image": "x", "resources": resources}],
                    },
                },
            )

        def scheduled(name):
            return core.read_namespaced_pod(name, ns).spec.node_name

        pod("fits", {"cpu": "1500m", "memory": "1Gi"}, {"nvidia.com/gpu": "2"})
        assert wait_for(lambda: scheduled("fits")) == f"{ns}-gpu"

        def unschedulable(name):
            conditions = {
                c.type: c for c in core.read_namespaced_pod(name, ns).status.conditions or []
            }
            scheduled_condition = conditions.get("PodScheduled")
            return (
                scheduled_condition
                if scheduled_condition and scheduled_condition.status == "False"
                else None
            )

        total = len(core.list_node().items)
        pod("no-cpu", {"cpu": "1"})
        condition = wait_for(lambda: unschedulable("no-cpu"))
        assert condition.reason == "Unschedulable"
        assert condition.message.startswith(f"0/{total} nodes are available: 1 Insufficient cpu, ")
        assert (
            f"{total - 1} node(s) didn't match Pod's node affinity/selector." in condition.message
        )
        assert (
            "preemption: " in condition.message
            and "1 No preemption victims found for incoming pod" in condition.message
        )
        pod("no-gpu", {"cpu": "100m"}, {"nvidia.com/gpu": "1"})
        assert "1 Insufficient nvidia.com/gpu" in wait_for(lambda: unschedulable("no-gpu")).message
        pod("no-memory", {"cpu": "100m", "memory": "8Gi"})
        assert "1 Insufficient memory" in wait_for(lambda: unschedulable("no-memory")).message
        # Freeing the node lets the pending pods in.
        core.delete_namespaced_pod("fits", ns, grace_period_seconds=0)
        assert wait_for(lambda: scheduled("no-cpu"), timeout=10) == f"{ns}-gpu"
    finally:
        for name in nodes:
            core.delete_node(name)


# ---------------------------------------------------------------------- taint eviction


def test_noexecute_taints_evict_unless_tolerated(core, cluster_namespace):
    ns = cluster_namespace
    node = f"{ns}-node"
    core.create_node(ready_node(node))
    try:

        def pod(name, tolerations=()):
            core.create_namespaced_pod(
                ns,
                {
                    "metadata": {"name": name},
                    "spec": {
                        "nodeName": node,
                        "tolerations": list(tolerations),
                        "containers": [{"name": "c", "image": "x"}],
                    },
                },
            )

        pod("intolerant")
        pod(
            "brief",
            [
                {
                    "key": "maintenance",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 2,
                }
            ],
        )
        pod("forever", [{"key": "maintenance", "operator": "Exists", "effect": "NoExecute"}])
        wait_for(
            lambda: (
                all(p.status.phase == "Running" for p in _pods(core, ns))
                and len(_pods(core, ns)) == 3
            )
        )
        tainted_at = time.monotonic()
        core.patch_node(
            node,
            {"spec": {"taints": [{"key": "maintenance", "value": "now", "effect": "NoExecute"}]}},
        )
        wait_for(lambda: "intolerant" not in {p.metadata.name for p in _pods(core, ns)}, timeout=5)
        assert "brief" in {p.metadata.name for p in _pods(core, ns)}
        wait_for(lambda: "brief" not in {p.metadata.name for p in _pods(core, ns)}, timeout=10)
        assert time.monotonic() - tainted_at >= 1.5
        time.sleep(0.5)
        assert [p.metadata.name for p in _pods(core, ns)] == ["forever"]
        events = core.list_namespaced_event(ns, field_selector="reason=TaintManagerEviction").items
        assert {e.involved_object.name for e in events} == {"intolerant", "brief"}
        # Removing the last taint leaves no taints list behind (omitempty).
        core.patch_node(node, {"spec": {"taints": []}})
        raw = json.loads(core.read_node(node, _preload_content=False).data)
        assert "taints" not in raw["spec"]
    finally:
        core.delete_node(node)


# --------------------------------------------------------------------- service accounts


def test_every_namespace_gets_default_service_account_and_root_ca(core, cluster_namespace):
    ns = cluster_namespace
    account = wait_for(lambda: _maybe(core.read_namespaced_service_account, "default", ns))
    assert account.metadata.name == "default"
    ca = wait_for(lambda: _maybe(core.read_namespaced_config_map, "kube-root-ca.crt", ns))
    assert ca.data["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    core.delete_namespaced_service_account("default", ns)
    wait_for(
        lambda: (
            (a := _maybe(core.read_namespaced_service_account, "default", ns))
            and a.metadata.uid != account.metadata.uid
        )
    )
