"""kubernetes.core modules (k8s, k8s_info, k8s_scale, k8s_rollback, k8s_taint, k8s_drain) run
by ansible-playbook against the stand-in with every controller: the playbooks assert what the
modules saw; the tests prepare nodes and identities and check the server afterwards."""

from __future__ import annotations

import base64

import yaml
from kubernetes import client

from conftest import ready_node, run_playbook, wait_for

RBAC = "rbac.authorization.k8s.io"


def _running(core, namespace, name):
    return core.read_namespaced_pod(name, namespace).status.phase == "Running"


def test_workloads_taints_and_rbac_through_kubernetes_core(
    cluster, cluster_api, cluster_namespace, tmp_path
):
    core = client.CoreV1Api(cluster_api)
    ns = cluster_namespace
    node = f"{ns}-taint"
    core.create_node(ready_node(node))
    try:
        core.create_namespaced_pod(
            ns,
            {
                "metadata": {"name": "bystander"},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            },
        )
        wait_for(lambda: _running(core, ns, "bystander"))
        core.create_namespaced_service_account(ns, {"metadata": {"name": "reader"}})
        rbac = client.RbacAuthorizationV1Api(cluster_api)
        rbac.create_namespaced_role(
            ns,
            {
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": "reader"},
                "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
            },
        )
        token = core.create_namespaced_service_account_token(
            "reader", ns, {"spec": {}}
        ).status.token
        kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
        ca_file = tmp_path / "ca.crt"
        ca_file.write_bytes(
            base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"])
        )
        run_playbook(
            cluster,
            "workloads_conformance.yml",
            ns=ns,
            taint_node=node,
            api_server=cluster.url,
            reader_token=token,
            ca_file=str(ca_file),
        )
        apps = client.AppsV1Api(cluster_api)
        revisions = sorted(
            int(r.metadata.annotations["deployment.kubernetes.io/revision"])
            for r in apps.list_namespaced_replica_set(ns, label_selector="app=web").items
        )
        assert revisions == [2, 3]  # the rollback made revision 1's ReplicaSet revision 3
        images = {
            p.spec.containers[0].image
            for p in core.list_namespaced_pod(ns, label_selector="app=web").items
        }
        assert images == {"registry.local/web:1"}
    finally:
        core.delete_node(node)


def test_drain_meets_daemonset_pods(cluster, cluster_api, cluster_namespace):
    core = client.CoreV1Api(cluster_api)
    apps = client.AppsV1Api(cluster_api)
    ns = cluster_namespace
    node = f"{ns}-drain"
    core.create_node(ready_node(node, labels={"drain": ns}))
    try:
        template = {
            "spec": {"nodeSelector": {"drain": ns}, "containers": [{"name": "c", "image": "x"}]},
        }
        apps.create_namespaced_daemon_set(
            ns,
            {
                "metadata": {"name": "agent"},
                "spec": {
                    "selector": {"matchLabels": {"app": "agent"}},
                    "template": {"metadata": {"labels": {"app": "agent"}}, **template},
                },
            },
        )
        apps.create_namespaced_deployment(
            ns,
            {
                "metadata": {"name": "app"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "app"}},
                    "template": {"metadata": {"labels": {"app": "app"}}, **template},
                },
            },
        )
        wait_for(
            lambda: (
                len(
                    [
                        p
                        for p in core.list_namespaced_pod(
                            ns, field_selector=f"spec.nodeName={node}"
                        ).items
                        if p.status.phase == "Running"
                    ]
                )
                == 2
            ),
            timeout=15,
        )
        run_playbook(cluster, "drain_daemonsets.yml", node=node, ns=ns)
        assert core.read_node(node).spec.unschedulable is True
        # The Deployment's replacement pod has nowhere to go now: Pending, for that reason.
        pending = wait_for(
            lambda: [
                p
                for p in core.list_namespaced_pod(ns, label_selector="app=app").items
                if p.status.phase == "Pending" and p.status.conditions
            ],
            timeout=10,
        )
        message = {c.type: c for c in pending[0].status.conditions}["PodScheduled"].message
        assert "1 node(s) were unschedulable" in message
        ds = apps.read_namespaced_daemon_set("agent", ns).status
        assert ds.number_ready == 1 and ds.desired_number_scheduled == 1
    finally:
        core.delete_node(node)
