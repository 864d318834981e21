"""kubernetes.core (k8s, k8s_info, k8s_drain) run by ansible-playbook against the stand-in.

Each playbook asserts its own results; the tests also check the server's state afterwards.
"""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from conftest import (
    CRDS,
    run_playbook,
    start_server,
    stop_server,
    wait_for,
)


def test_apply_reapply_and_check_mode(kube_server, core, namespace):
    run_playbook(kube_server, "apply_and_check_mode.yml", ns=namespace)
    applied = core.read_namespaced_config_map("applied", namespace)
    assert "kubectl.kubernetes.io/last-applied-configuration" in applied.metadata.annotations
    names = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
    assert "only-in-check-mode" not in names


def test_server_side_apply_idempotent_and_conflicts(kube_server, core, namespace):
    run_playbook(kube_server, "server_side_apply.yml", ns=namespace)
    entry = core.read_namespaced_config_map("ssa", namespace).metadata.managed_fields[0]
    assert (entry.manager, entry.operation) == ("ansible-b", "Apply")
    assert entry.fields_v1 == {"f:data": {"f:owner": {}}}


def test_info_selectors_and_wait_for_condition(kube_server, api_client, namespace):
    apps = client.AppsV1Api(api_client)

    def mark_available():
        wait_for(lambda: _exists(apps, namespace), timeout=60, interval=0.2)
        condition = {
            "type": "Available",
            "status": "True",
            "reason": "MinimumReplicasAvailable",
            "message": "Deployment has minimum availability.",
        }
        apps.patch_namespaced_deployment_status(
            "waited", namespace, {"status": {"conditions": [condition]}}
        )

    helper = threading.Thread(target=mark_available, daemon=True)
    helper.start()
    run_playbook(kube_server, "info_and_wait.yml", ns=namespace)
    helper.join(timeout=5)


def _exists(apps, namespace):
    try:
        apps.read_namespaced_deployment("waited", namespace)
        return True
    except ApiException:
        return False


def _node_with_pods(core, api_client, namespace, node_name, pdb_spec):
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=node_name)))
    owner = client.V1OwnerReference(
        api_version="apps/v1", kind="ReplicaSet", name="rs", uid="1234", controller=True
    )
    for index in range(2):
        name = f"{node_name}-pod-{index}"
        core.create_namespaced_pod(
            namespace,
            client.V1Pod(
                metadata=client.V1ObjectMeta(
                    name=name, labels={"app": "drain"}, owner_references=[owner]
                ),
                spec=client.V1PodSpec(
                    node_name=node_name, containers=[client.V1Container(name="c", image="i")]
                ),
            ),
        )
        core.patch_namespaced_pod_status(
            name,
            namespace,
            {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
        )
    client.PolicyV1Api(api_client).create_namespaced_pod_disruption_budget(
        namespace,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "drain-pdb"},
            "spec": {"selector": {"matchLabels": {"app": "drain"}}, **pdb_spec},
        },
    )


def test_drain_evicts_and_cordons(kube_server, core, api_client, namespace, tmp_path):
    _node_with_pods(core, api_client, namespace, "drain-ok", {"maxUnavailable": 1})
    result_file = tmp_path / "drain.json"
    run_playbook(kube_server, "drain.yml", node="drain-ok", result_file=str(result_file))
    outcome = json.loads(result_file.read_text())
    assert outcome["changed"] is True
    assert "2 Pod(s) deleted from node" in outcome["result"]
    assert core.read_node("drain-ok").spec.unschedulable is True
    assert core.list_pod_for_all_namespaces(field_selector="spec.nodeName=drain-ok").items == []
    core.delete_node("drain-ok")


def test_drain_blocked_by_pdb(kube_server, core, api_client, namespace, tmp_path):
    _node_with_pods(core, api_client, namespace, "drain-blocked", {"minAvailable": 2})
    result_file = tmp_path / "drain.json"
    run_playbook(
        kube_server,
        "drain.yml",
        node="drain-blocked",
        result_file=str(result_file),
        expect_failure=True,
        wait_timeout=2,
    )
    outcome = json.loads(result_file.read_text())
    assert outcome["failed"] is True
    # k8s_drain reports the apiserver's Status message of the 429.
    assert "would violate the pod's disruption budget" in outcome["msg"]
    assert core.read_node("drain-blocked").spec.unschedulable is True  # cordoned before evicting
    pods = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=drain-blocked").items
    assert len(pods) == 2
    core.delete_node("drain-blocked")


def test_eviction_status_body_matches_upstream(core, api_client, namespace):
    _node_with_pods(core, api_client, namespace, "evict-node", {"minAvailable": 2})
    eviction = client.V1Eviction(
        metadata=client.V1ObjectMeta(name="evict-node-pod-0", namespace=namespace)
    )
    with pytest.raises(ApiException) as blocked:
        core.create_namespaced_pod_eviction("evict-node-pod-0", namespace, eviction)
    body = json.loads(blocked.value.body)
    assert blocked.value.status == 429 and body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget drain-pdb needs 2 healthy pods and has 2 currently",
        }
    ]
    policy = client.PolicyV1Api(api_client)
    policy.patch_namespaced_pod_disruption_budget(
        "drain-pdb", namespace, {"spec": {"minAvailable": 1}}
    )
    core.create_namespaced_pod_eviction("evict-node-pod-0", namespace, eviction)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod("evict-node-pod-0", namespace)
    assert gone.value.status == 404
    assert (
        policy.read_namespaced_pod_disruption_budget(
            "drain-pdb", namespace
        ).status.disruptions_allowed
        == 0
    )
    core.delete_node("evict-node")


def test_custom_resources_through_k8s(kube_server, dynamic):
    run_playbook(
        kube_server,
        "custom_resources.yml",
        pool_name="from-ansible",
        crd_file=str(CRDS / "karpenter.sh_nodepools.yaml"),
    )
    nodepools = dynamic.resources.get(api_version="karpenter.sh/v1", kind="NodePool")
    assert nodepools.get(name="from-ansible").spec.weight == 20
    nodepools.delete(name="from-ansible")


def test_simulated_workloads_satisfy_wait(tmp_path):
    server = start_server(tmp_path, None, "--simulate-workloads")
    try:
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(server.kubeconfig), client_configuration=configuration
        )
        with client.ApiClient(configuration) as api:
            core = client.CoreV1Api(api)
            for name, labels in (("gpu-a", {"nvidia.com/gpu.present": "true"}), ("cpu-a", {})):
                # Registered as a kubelet does: Ready, with allocatable room for pods.
                core.create_node(
                    {
                        "metadata": {"name": name, "labels": labels},
                        "status": {
                            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                            "conditions": [{"type": "Ready", "status": "True"}],
                        },
                    }
                )
            run_playbook(server, "workloads_wait.yml", ns="default")
            deployment = client.AppsV1Api(api).read_namespaced_deployment("dep", "default")
            assert deployment.spec.strategy.type == "RollingUpdate"  # apiserver defaults
            assert deployment.status.observed_generation == deployment.metadata.generation
            # Ready replicas are pods that exist: two of the Deployment, one of the
            # StatefulSet, one of the DaemonSet (on the GPU node only), all running.
            pods = core.list_namespaced_pod("default").items
            owners = sorted(p.metadata.owner_references[0].kind for p in pods)
            assert owners == ["DaemonSet", "ReplicaSet", "ReplicaSet", "StatefulSet"]
            assert {p.spec.node_name for p in pods} == {"gpu-a"}
            assert all(p.status.phase == "Running" for p in pods)
    finally:
        stop_server(server)
