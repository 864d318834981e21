"""The stand-in Karpenter with the other simulated controllers: pending GPU pods get a NodeClaim
and a Node of an allowed EC2 type (moto's EC2 data), the gpu-operator advertises its GPUs, the
pods run; limits hold; an empty node is consolidated after consolidateAfter within budgets while
a node running a karpenter.sh/do-not-disrupt pod stays."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from cluster_policy import cluster_policy
from conftest import SANDBOX_CRDS, api_client_for, start_server, stop_server
from conftest import wait_for as poll

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
NODE_GRACE = 8  # the NodePool's terminationGracePeriod, seconds
POD_GRACE = 3  # the training pod's terminationGracePeriodSeconds


def wait_for(predicate, timeout=60.0, what="condition"):
    return poll(predicate, timeout, interval=0.2, what=what)


def _history(dyn, api_version, kind, resource_version):
    """Every watch event of a kind since resource_version (the stand-in replays its event log),
    as (resourceVersion, type, kind, object as a dict)."""
    resource = dyn.resources.get(api_version=api_version, kind=kind)
    return [
        (int(e["raw_object"]["metadata"]["resourceVersion"]), e["type"], kind, e["raw_object"])
        for e in dyn.watch(resource, resource_version=resource_version, timeout=1)
    ]


def _time(stamp):
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _pool(name, types, gpu_limit, policy="WhenEmpty", after="1s", budgets=None, labels=None):
    disruption = {"consolidationPolicy": policy, "consolidateAfter": after}
    if budgets is not None:
        disruption["budgets"] = budgets
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"labels": labels or {}},
                "spec": {
                    "nodeClassRef": {
                        "group": "karpenter.k8s.aws",
                        "kind": "EC2NodeClass",
                        "name": name,
                    },
                    "requirements": [
                        {
                            "key": "node.kubernetes.io/instance-type",
                            "operator": "In",
                            "values": types,
                        },
                        {
                            "key": "karpenter.sh/capacity-type",
                            "operator": "In",
                            "values": ["spot", "on-demand"],
                        },
                    ],
                    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                    "expireAfter": "720h",
                },
            },
            "disruption": disruption,
            "limits": {"nvidia.com/gpu": str(gpu_limit)},
        },
    }


def _pod(name, gpus, annotations=None, selector=None):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "tolerations": [GPU_TOLERATION],
            "nodeSelector": selector or {},
            "containers": [
                {
                    "name": "main",
                    "image": "cuda:12",
                    "resources": {
                        "limits": {"nvidia.com/gpu": str(gpus)},
                        "requests": {"cpu": "1"},
                    },
                }
            ],
        },
    }


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUOPS_SANDBOX_KARPENTER_DIR", str(tmp_path))
    monkeypatch.delenv("GPUOPS_SANDBOX_AWS_ENDPOINT", raising=False)
    server = start_server(
        tmp_path / "kube", SANDBOX_CRDS, "--controllers", "all", "--pod-failure-backoff", "0.5"
    )
    from kubernetes import client, dynamic

    api = api_client_for(server)
    dyn = dynamic.DynamicClient(api)
    core = client.CoreV1Api(api)
    dyn.resources.get(api_version="nvidia.com/v1", kind="ClusterPolicy").create(
        body=cluster_policy()
    )
    yield dyn, core
    api.close()
    stop_server(server)


def _karpenter_nodes(core, pool):
    return core.list_node(label_selector=f"karpenter.sh/nodepool={pool}").items


def test_pending_gpu_pods_get_a_gpu_node_then_empty_nodes_are_consolidated(cluster):
    dyn, core = cluster
    pools = dyn.resources.get(api_version="karpenter.sh/v1", kind="NodePool")
    pools.create(body=_pool("a100", ["p4d.24xlarge", "g5.xlarge"], 16, labels={"team": "ml"}))
    for name in ("infer-0", "infer-1"):
        core.create_namespaced_pod("default", _pod(name, 4))
    # Both fit one p4d.24xlarge (8 x A100 40GB); g5.xlarge (1 GPU) cannot hold a 4-GPU pod.
    running = wait_for(
        lambda: all(
            core.read_namespaced_pod(n, "default").status.phase == "Running"
            for n in ("infer-0", "infer-1")
        ),
        what="pods running on a provisioned node",
    )
    assert running
    [node] = _karpenter_nodes(core, "a100")
    labels = node.metadata.labels
    assert labels["node.kubernetes.io/instance-type"] == "p4d.24xlarge"
    assert labels["karpenter.sh/capacity-type"] == "spot" and labels["team"] == "ml"
    assert labels["karpenter.k8s.aws/instance-gpu-count"] == "8"
    # The gpu-operator stand-in labelled and advertised it as a GPU node.
    assert node.status.allocatable["nvidia.com/gpu"] == "8"
    assert labels.get("nvidia.com/gpu.product", "").startswith("NVIDIA-A100")
    claims = dyn.resources.get(api_version="karpenter.sh/v1", kind="NodeClaim").get().items
    assert [c.status.nodeName for c in claims] == [node.metadata.name]
    wait_for(
        lambda: (
            {
                c.type: c.status
                for c in dyn.resources.get(api_version="karpenter.sh/v1", kind="NodeClaim")
                .get()
                .items[0]
                .status.conditions
            }.get("Initialized")
            == "True"
        ),
        what="NodeClaim Initialized",
    )
    # Limits: 16 GPUs = two p4d; a third 8-GPU pod beyond them stays pending.
    core.create_namespaced_pod(
        "default", _pod("train-0", 8, annotations={"karpenter.sh/do-not-disrupt": "true"})
    )
    wait_for(
        lambda: core.read_namespaced_pod("train-0", "default").status.phase == "Running",
        what="training pod running",
    )
    assert len(_karpenter_nodes(core, "a100")) == 2
    core.create_namespaced_pod("default", _pod("big-1", 8))
    time.sleep(1.5)
    pending = [
        p.metadata.name
        for p in core.list_namespaced_pod("default").items
        if p.status.phase == "Pending"
    ]
    assert pending == ["big-1"] and len(_karpenter_nodes(core, "a100")) == 2, pending
    events = core.list_namespaced_event("default").items
    assert any("exceed limits for nodepool: a100" in (e.message or "") for e in events)
    # Load drops: the inference pods and the big pod go; the emptied node is consolidated
    # after consolidateAfter, the node of the do-not-disrupt training pod stays.
    for name in ("infer-0", "infer-1", *pending):
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    train_node = core.read_namespaced_pod("train-0", "default").spec.node_name
    remaining = wait_for(
        lambda: (
            [n.metadata.name for n in _karpenter_nodes(core, "a100")] == [train_node]
            and [train_node]
        ),
        timeout=30,
        what="the empty node consolidated",
    )
    assert remaining == [train_node]
    time.sleep(2)
    assert [n.metadata.name for n in _karpenter_nodes(core, "a100")] == [train_node]
    assert len(dyn.resources.get(api_version="karpenter.sh/v1", kind="NodeClaim").get().items) == 1


def test_budget_zero_blocks_consolidation(cluster):
    dyn, core = cluster
    pools = dyn.resources.get(api_version="karpenter.sh/v1", kind="NodePool")
    pools.create(body=_pool("h100", ["p5.48xlarge"], 8, budgets=[{"nodes": "0"}]))
    core.create_namespaced_pod("default", _pod("p", 1))
    wait_for(
        lambda: core.read_namespaced_pod("p", "default").status.phase == "Running",
        what="pod running",
    )
    assert _karpenter_nodes(core, "h100")[0].status.allocatable["nvidia.com/gpu"] == "8"
    core.delete_namespaced_pod("p", "default", grace_period_seconds=0)
    time.sleep(3)
    assert len(_karpenter_nodes(core, "h100")) == 1


def test_budget_windows_and_cron():
    from gpuops_kubeapi.sim.karpenter import allowed_disruptions, budget_active, cron_matches

    monday_10 = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
    assert cron_matches("0 9 * * 1-5", monday_10.replace(hour=9))
    assert not cron_matches("0 9 * * 0,6", monday_10.replace(hour=9))
    business = {"nodes": "0", "schedule": "0 9 * * 1-5", "duration": "8h"}
    assert budget_active(business, monday_10) and not budget_active(
        business, monday_10.replace(hour=18)
    )
    pool = {
        "spec": {
            "disruption": {"budgets": [{"nodes": "20%"}, dict(business, reasons=["Underutilized"])]}
        }
    }
    assert allowed_disruptions(pool, "Underutilized", 10, monday_10) == 0
    assert allowed_disruptions(pool, "Empty", 10, monday_10) == 2
    assert allowed_disruptions(pool, "Underutilized", 10, monday_10.replace(hour=20)) == 2


def test_spot_interruption_replaces_the_node_and_moves_the_training_pod(tmp_path, monkeypatch):
    """An interruption event sent through EventBridge to the queue: a replacement NodeClaim is
    launched before the interrupted node goes, the training pod gets its checkpoint window
    (its own terminationGracePeriodSeconds, by eviction) and has left the node before the
    claim's terminationGracePeriod (counted from the claim's deletion) ran out, the Deployment's
    pod runs on the replacement and the pool keeps one node. The order is read from the API's
    watch history (one resourceVersion counter), the times from the API's own timestamps."""
    import json as jsonlib

    import boto3
    from kubernetes import client, dynamic
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in dict(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    ).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GPUOPS_SANDBOX_AWS_ENDPOINT", endpoint)
    monkeypatch.setenv("GPUOPS_SANDBOX_KARPENTER_INTERRUPTION_QUEUE", "karpenter-spot")
    monkeypatch.setenv("GPUOPS_SANDBOX_KARPENTER_DIR", str(tmp_path))
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    events = boto3.client("events", endpoint_url=endpoint)
    arn = sqs.get_queue_attributes(
        QueueUrl=sqs.create_queue(QueueName="karpenter-spot")["QueueUrl"],
        AttributeNames=["QueueArn"],
    )["Attributes"]["QueueArn"]
    events.put_rule(
        Name="karpenter-spot-SpotInterruptionRule",
        EventPattern=jsonlib.dumps(
            {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}
        ),
    )
    events.put_targets(
        Rule="karpenter-spot-SpotInterruptionRule", Targets=[{"Id": "q", "Arn": arn}]
    )
    server = start_server(
        tmp_path / "kube", SANDBOX_CRDS, "--controllers", "all", "--pod-failure-backoff", "0.5"
    )
    try:
        api = api_client_for(server)
        dyn = dynamic.DynamicClient(api)
        core = client.CoreV1Api(api)
        dyn.resources.get(api_version="nvidia.com/v1", kind="ClusterPolicy").create(
            body=cluster_policy()
        )
        body = _pool("spot", ["p4d.24xlarge"], 16)
        body["spec"]["template"]["spec"]["terminationGracePeriod"] = "%ds" % NODE_GRACE
        dyn.resources.get(api_version="karpenter.sh/v1", kind="NodePool").create(body=body)
        # Checkpointing takes 2 s (the stand-in kubelet's stop-seconds) of a 3 s grace period.
        template = _pod(
            "trainer",
            8,
            annotations={
                "karpenter.sh/do-not-disrupt": "true",
                "sandbox.gpuops.io/stop-seconds": "2",
            },
        )
        template["spec"]["terminationGracePeriodSeconds"] = POD_GRACE
        client.AppsV1Api(api).create_namespaced_deployment(
            "default",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "trainer"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "trainer"}},
                    "template": {
                        "metadata": {
                            "labels": {"app": "trainer"},
                            "annotations": template["metadata"]["annotations"],
                        },
                        "spec": template["spec"],
                    },
                },
            },
        )

        def running_on():
            pods = [
                p
                for p in core.list_namespaced_pod("default", label_selector="app=trainer").items
                if p.status.phase == "Running" and not p.metadata.deletion_timestamp
            ]
            return pods[0].spec.node_name if len(pods) == 1 else None

        first_node = wait_for(running_on, timeout=90, what="trainer running")
        [claim] = dyn.resources.get(api_version="karpenter.sh/v1", kind="NodeClaim").get().items
        instance_id = claim.status.providerID.rsplit("/", 1)[-1]
        [old_pod] = [
            p
            for p in core.list_namespaced_pod("default", label_selector="app=trainer").items
            if p.spec.node_name == first_node
        ]
        mark = core.list_node().metadata.resource_version
        events.put_events(
            Entries=[
                {
                    "Source": "aws.ec2",
                    "DetailType": "EC2 Spot Instance Interruption Warning",
                    "Detail": jsonlib.dumps(
                        {"instance-id": instance_id, "instance-action": "terminate"}
                    ),
                }
            ]
        )
        second = wait_for(
            lambda: (running_on() or first_node) != first_node and running_on(),
            timeout=60,
            what="trainer moved",
        )
        assert second != first_node
        wait_for(
            lambda: [n.metadata.name for n in _karpenter_nodes(core, "spot")] == [second],
            timeout=60,
            what="old node gone",
        )
        claims = dyn.resources.get(api_version="karpenter.sh/v1", kind="NodeClaim")
        [replacement] = claims.get().items
        assert replacement.status.nodeName == second
        history = sorted(
            _history(dyn, "karpenter.sh/v1", "NodeClaim", mark)
            + _history(dyn, "v1", "Node", mark)
            + _history(dyn, "v1", "Pod", mark)
        )

        def first(kind, name, predicate):
            return next(
                (
                    (rv, obj)
                    for rv, etype, k, obj in history
                    if k == kind and obj["metadata"]["name"] == name and predicate(etype, obj)
                ),
                (None, None),
            )

        def deleted(etype, _obj):
            return etype == "DELETED"

        def terminating(_etype, obj):
            return bool(obj["metadata"].get("deletionTimestamp"))

        # The interrupted claim was deleted first (termination began), the replacement claim
        # launched before the interrupted node went, the pod gone from the node before that.
        began, old_claim = first("NodeClaim", claim.metadata.name, terminating)
        launched, _claim = first(
            "NodeClaim", replacement.metadata.name, lambda etype, _obj: etype == "ADDED"
        )
        evicted, pod = first("Pod", old_pod.metadata.name, terminating)
        pod_gone, _gone = first("Pod", old_pod.metadata.name, deleted)
        node_gone, _node = first("Node", first_node, deleted)
        assert None not in (began, launched, evicted, pod_gone, node_gone), history
        assert began < evicted < pod_gone < node_gone and launched < node_gone, (
            began,
            launched,
            evicted,
            pod_gone,
            node_gone,
        )
        # Times, by the API's clock: the pod was evicted with its full grace period (not cut
        # short, not force-deleted) and that ended inside the node's terminationGracePeriod,
        # counted from the claim's deletion.
        assert pod["metadata"]["deletionGracePeriodSeconds"] == POD_GRACE
        start = _time(old_claim["metadata"]["deletionTimestamp"])
        assert _time(pod["metadata"]["deletionTimestamp"]) <= start + timedelta(
            seconds=NODE_GRACE
        ), (pod, start)
        reasons = [e.reason for e in core.list_namespaced_event("default").items]
        assert "SpotInterrupted" in reasons
        api.close()
    finally:
        stop_server(server)
        moto.stop()


def test_mig_pods_get_a_node_only_through_a_node_overlay(cluster):
    """Karpenter knows nvidia.com/gpu from EC2 only: a pod asking for a MIG device stays pending
    until a NodeOverlay (as karpenter_pool renders it from the MIG layout) adds the resource."""
    dyn, core = cluster
    dyn.resources.get(api_version="karpenter.sh/v1", kind="NodePool").create(
        body=_pool("mig", ["p4d.24xlarge"], 16)
    )
    pod = _pod("mig-0", 1)
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/mig-1g.5gb": "1"}}
    core.create_namespaced_pod("default", pod)
    time.sleep(3)
    claims = dyn.resources.get(api_version="karpenter.sh/v1", kind="NodeClaim")
    assert claims.get().items == []
    dyn.resources.get(api_version="karpenter.sh/v1alpha1", kind="NodeOverlay").create(
        body={
            "apiVersion": "karpenter.sh/v1alpha1",
            "kind": "NodeOverlay",
            "metadata": {"name": "mig-p4d-24xlarge"},
            "spec": {
                "requirements": [
                    {"key": "karpenter.sh/nodepool", "operator": "In", "values": ["mig"]},
                    {
                        "key": "node.kubernetes.io/instance-type",
                        "operator": "In",
                        "values": ["p4d.24xlarge"],
                    },
                ],
                "capacity": {"nvidia.com/mig-1g.5gb": "56"},
            },
        }
    )
    [claim] = wait_for(
        lambda: [c for c in claims.get().items if c.status and c.status.nodeName],
        what="a launched NodeClaim for the MIG pod",
    )
    assert claim.metadata.labels["node.kubernetes.io/instance-type"] == "p4d.24xlarge"
    assert claim.status.capacity["nvidia.com/mig-1g.5gb"] == "56"
