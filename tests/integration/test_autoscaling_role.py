"""The autoscaling role through ansible-playbook against the Kubernetes API stand-in (no
controllers): check mode predicts exactly, the objects land by server-side apply, a rerun
changes nothing, a bad input changes nothing, and dropping an input removes what it set."""

from __future__ import annotations

import json
import re

import pytest
from conftest import REPO_ROOT, run_playbook, start_kube

PLAYBOOK = REPO_ROOT / "tests" / "integration" / "playbooks" / "autoscaling_apply.yml"
MD = {
    "apiVersion": "cluster.x-k8s.io/v1beta2",
    "kind": "MachineDeployment",
    "metadata": {"name": "md-a100", "namespace": "capi"},
    "spec": {
        "clusterName": "onprem",
        "replicas": 1,
        "selector": {"matchLabels": {"pool": "a100"}},
        "template": {
            "metadata": {"labels": {"pool": "a100"}},
            "spec": {
                "clusterName": "onprem",
                "bootstrap": {"dataSecretName": "a100-bootstrap"},
                "infrastructureRef": {
                    "apiGroup": "infrastructure.cluster.x-k8s.io",
                    "kind": "Metal3MachineTemplate",
                    "name": "a100",
                },
            },
        },
    },
}
VARS = {
    "autoscaling_prometheus_url": "http://prometheus.monitoring:9090",
    "autoscaling_node_groups": [
        {
            "name": "onprem-a100",
            "platform": "onprem",
            "machine_deployment": {"name": "md-a100", "namespace": "capi"},
            "min_size": 0,
            "max_size": 3,
            "capacity": {"cpu": 64, "memory": "512Gi", "gpu_count": 8},
            "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        },
        {"name": "eks-l40s", "platform": "cloud"},
    ],
    "autoscaling_inference": [
        {
            "deployment": "llm",
            "namespace": "inference",
            "node_group": "onprem-a100",
            "max_replicas": 6,
            "auth": {"mode": "bearer", "secret": "prom-token"},
            "triggers": [
                {"kind": "queue_depth", "metric": "llm_queue_depth", "target": 5},
                {"kind": "gpu_activity", "target": 80},
            ],
        }
    ],
    "autoscaling_training_namespaces": ["training"],
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    kube = start_kube(
        tmp_path_factory.mktemp("autoscaling-kube"),
        crds=[
            "keda.sh_scaledobjects.yaml",
            "keda.sh_triggerauthentications.yaml",
            "cluster.x-k8s.io_machinedeployments.yaml",
        ],
        controllers=None,
    )
    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    for name in ("inference", "capi"):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    kube.dynamic().resources.get(api_version="cluster.x-k8s.io/v1beta2", kind="MachineDeployment").create(
        body=MD, namespace="capi"
    )
    yield kube
    kube.stop()


def play(kube, tmp_path, variables, *args):
    path = tmp_path / "vars.json"
    path.write_text(json.dumps(variables))
    # (pylint takes the keyword-only inventory for one *args might fill.)
    run = run_playbook(  # pylint: disable=redundant-keyword-arg
        PLAYBOOK, "-e", "@%s" % path, *args, env=kube.env, inventory="localhost,"
    )
    # Objects (loop items) the apply task changed, or would change in check mode.
    changed = sorted(re.findall(r"^changed: \[localhost[^\]]*\] => \(item=([^)]*)\)", run.stdout, re.M))
    return run, changed


def get(kube, api_version, kind, name, namespace=None):
    from kubernetes.dynamic.exceptions import NotFoundError

    try:
        return kube.dynamic().resources.get(api_version=api_version, kind=kind).get(name=name, namespace=namespace)
    except NotFoundError:
        return None


def test_check_mode_apply_rerun_and_removal(cluster, tmp_path):
    check, predicted = play(cluster, tmp_path, VARS, "--check")
    assert check.rc == 0, check
    assert get(cluster, "keda.sh/v1alpha1", "ScaledObject", "llm", "inference") is None
    assert "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size" not in (
        get(cluster, "cluster.x-k8s.io/v1beta2", "MachineDeployment", "md-a100", "capi").metadata.annotations or {}
    )

    run, changed = play(cluster, tmp_path, VARS)
    assert run.rc == 0, run
    assert changed == predicted, (changed, predicted)
    assert "ScaledObject/inference/llm" in changed and "MachineDeployment/capi/md-a100" in changed
    assert len(changed) == 11, changed  # SA, 2 ClusterRoles, 2 bindings, Namespace, VAP, VAPB, TA, SO, MD
    so = get(cluster, "keda.sh/v1alpha1", "ScaledObject", "llm", "inference").to_dict()
    assert [t["metricType"] for t in so["spec"]["triggers"]] == ["AverageValue", "Value"]
    assert so["spec"]["triggers"][0]["authenticationRef"]["name"] == "llm-prometheus"
    assert get(cluster, "keda.sh/v1alpha1", "TriggerAuthentication", "llm-prometheus", "inference") is not None
    md = get(cluster, "cluster.x-k8s.io/v1beta2", "MachineDeployment", "md-a100", "capi").to_dict()
    annotations = md["metadata"]["annotations"]
    assert annotations["cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"] == "3"
    assert annotations["capacity.cluster-autoscaler.kubernetes.io/gpu-count"] == "8"
    assert annotations["capacity.cluster-autoscaler.kubernetes.io/taints"] == "nvidia.com/gpu=present:NoSchedule"
    assert md["spec"]["replicas"] == 1 and md["spec"]["template"] == MD["spec"]["template"]
    namespace = get(cluster, "v1", "Namespace", "training").to_dict()
    assert namespace["metadata"]["labels"]["gpuops.cluster/training"] == "true"
    policy = "gpuops-training-do-not-disrupt"
    assert get(cluster, "admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", policy) is not None
    assert get(cluster, "admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", policy) is not None
    assert get(cluster, "rbac.authorization.k8s.io/v1", "ClusterRole", "gpuops-cluster-autoscaler-management")
    assert "--gpu-total=onprem-a100:0:24" in run.stdout

    again, changed = play(cluster, tmp_path, VARS)
    assert again.rc == 0 and changed == [], again
    assert sum(r["changed"] for r in again.recap.values()) == 0, again

    # Bad input: rejected naming the field, nothing changed.
    bad = json.loads(json.dumps(VARS))
    bad["autoscaling_inference"][0]["max_replicas"] = 0
    bad["autoscaling_node_groups"][0]["max_size"] = 9
    failed, _unused = play(cluster, tmp_path, bad)
    assert failed.rc != 0
    assert "autoscaling_inference[0].max_replicas" in failed.stdout
    md = get(cluster, "cluster.x-k8s.io/v1beta2", "MachineDeployment", "md-a100", "capi").to_dict()
    assert md["metadata"]["annotations"]["cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"] == "3"

    # Dropping the taints drops the annotation the role owned (server-side apply).
    fewer = json.loads(json.dumps(VARS))
    del fewer["autoscaling_node_groups"][0]["taints"]
    run, changed = play(cluster, tmp_path, fewer)
    assert run.rc == 0 and changed == ["MachineDeployment/capi/md-a100"], run
    md = get(cluster, "cluster.x-k8s.io/v1beta2", "MachineDeployment", "md-a100", "capi").to_dict()
    assert "capacity.cluster-autoscaler.kubernetes.io/taints" not in md["metadata"]["annotations"]


def test_missing_machine_deployment_fails_before_any_change(cluster, tmp_path):
    variables = json.loads(json.dumps(VARS))
    variables["autoscaling_node_groups"][0]["machine_deployment"]["name"] = "md-nope"
    variables["autoscaling_inference"][0]["deployment"] = "other"
    run, _unused = play(cluster, tmp_path, variables)
    assert run.rc != 0
    assert "md-nope" in run.stdout
    assert get(cluster, "keda.sh/v1alpha1", "ScaledObject", "other", "inference") is None
