"""The autoscaling role through ansible-playbook against the Kubernetes API stand-in (no
controllers), six times in one run: check mode predicts exactly, the objects land by server-side
apply, a rerun changes nothing, a bad input and a missing MachineDeployment change nothing, and
dropping an input removes what it set. What the role renders is unit-tested in
tests/unit/plugins/plugin_utils/test_autoscaling.py."""

from __future__ import annotations

import json
import re

import pytest
from conftest import REPO_ROOT, run_playbook, start_kube

PLAYBOOK = REPO_ROOT / "tests" / "integration" / "playbooks" / "autoscaling_steps.yml"
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


def play(kube, tmp_path, cases, steps, *args):
    """One ansible-playbook run of the role once per step (a case name of `cases`); returns the
    run and, per step, its output and the objects its apply task changed (or would change)."""
    path = tmp_path / "vars.json"
    path.write_text(json.dumps({"autoscaling_cases": cases, "autoscaling_steps": steps}))
    # (pylint takes the keyword-only inventory for one *args might fill.)
    run = run_playbook(  # pylint: disable=redundant-keyword-arg
        PLAYBOOK, "-e", "@%s" % path, *args, env=kube.env, inventory="localhost,"
    )
    sections = re.split(r'^\s*"msg": "STEP (\S+)"$', run.stdout, flags=re.M)
    output = dict(zip(sections[1::2], sections[2::2]))
    changed = {}
    for step, text in output.items():
        report = re.search(
            r"^TASK \[gpuops\.cluster\.autoscaling : Report the objects changed[^\n]*\n"
            r"ok: \[localhost\] => (\{.*?^\})$",
            text,
            re.M | re.S,
        )
        msg = json.loads(report.group(1))["msg"] if report else []
        changed[step] = sorted(msg["changed"] if isinstance(msg, dict) else msg)  # a dict in diff mode
    return run, output, changed


def get(kube, api_version, kind, name, namespace=None):
    from kubernetes.dynamic.exceptions import NotFoundError

    try:
        return kube.dynamic().resources.get(api_version=api_version, kind=kind).get(name=name, namespace=namespace)
    except NotFoundError:
        return None


def test_check_mode_apply_rerun_refusals_and_removal(cluster, tmp_path):
    """One playbook run, the role six times: check mode; apply; rerun; two refusals; removal of
    a dropped input (in diff mode)."""
    bad = json.loads(json.dumps(VARS))
    bad["autoscaling_inference"][0]["max_replicas"] = 0
    bad["autoscaling_node_groups"][0]["max_size"] = 9
    missing = json.loads(json.dumps(VARS))
    missing["autoscaling_node_groups"][0]["machine_deployment"]["name"] = "md-nope"
    missing["autoscaling_inference"][0]["deployment"] = "other"
    fewer = json.loads(json.dumps(VARS))
    del fewer["autoscaling_node_groups"][0]["taints"]
    cases = {
        "check": VARS,
        "apply": VARS,
        "rerun": VARS,
        "refused-bad": bad,
        "refused-missing-md": missing,
        "fewer-diff": fewer,
    }
    steps = list(cases)
    run, output, changed = play(cluster, tmp_path, cases, steps)
    assert run.rc == 0 and list(output) == steps, run

    # Check mode predicted exactly what the apply then changed (had it changed anything, the
    # apply would have found nothing left to change).
    assert changed["check"] == changed["apply"], (changed["check"], changed["apply"])
    assert "ScaledObject/inference/llm" in changed["apply"] and "MachineDeployment/capi/md-a100" in changed["apply"]
    assert len(changed["apply"]) == 11, changed  # SA, 2 ClusterRoles, 2 bindings, Namespace, VAP, VAPB, TA, SO, MD
    assert "--gpu-total=onprem-a100:0:24" in output["apply"]
    # The rerun: nothing changed, nothing would.
    assert changed["rerun"] == [] and "changed: [" not in output["rerun"], output["rerun"]
    # Bad input: rejected naming the field, before any API call.
    assert "refused: " in output["refused-bad"] and "autoscaling_inference[0].max_replicas" in output["refused-bad"]
    assert "kubernetes.core" not in output["refused-bad"] and "changed: [" not in output["refused-bad"]
    # A MachineDeployment that is not there: refused before the apply (no ScaledObject "other").
    assert "refused: " in output["refused-missing-md"] and "md-nope" in output["refused-missing-md"]
    assert "Server-side apply" not in output["refused-missing-md"], output["refused-missing-md"]
    assert get(cluster, "keda.sh/v1alpha1", "ScaledObject", "other", "inference") is None
    assert re.search(r"^localhost\s.*\srescued=2\s", run.stdout, re.M), run.stdout[-600:]
    # Dropping the taints drops the annotation the role owned (server-side apply): the diff
    # shows it leaving, and only the MachineDeployment changed.
    assert changed["fewer-diff"] == ["MachineDeployment/capi/md-a100"], output["fewer-diff"]
    assert "capacity.cluster-autoscaler.kubernetes.io/taints" in output["fewer-diff"]

    so = get(cluster, "keda.sh/v1alpha1", "ScaledObject", "llm", "inference").to_dict()
    assert [t["metricType"] for t in so["spec"]["triggers"]] == ["AverageValue", "Value"]
    assert so["spec"]["triggers"][0]["authenticationRef"]["name"] == "llm-prometheus"
    assert get(cluster, "keda.sh/v1alpha1", "TriggerAuthentication", "llm-prometheus", "inference") is not None
    md = get(cluster, "cluster.x-k8s.io/v1beta2", "MachineDeployment", "md-a100", "capi").to_dict()
    annotations = md["metadata"]["annotations"]
    assert annotations["cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"] == "3"  # not bad's 9
    assert annotations["capacity.cluster-autoscaler.kubernetes.io/gpu-count"] == "8"
    assert "capacity.cluster-autoscaler.kubernetes.io/taints" not in annotations
    assert md["spec"]["replicas"] == 1 and md["spec"]["template"] == MD["spec"]["template"]
    namespace = get(cluster, "v1", "Namespace", "training").to_dict()
    assert namespace["metadata"]["labels"]["gpuops.cluster/training"] == "true"
    policy = "gpuops-training-do-not-disrupt"
    assert get(cluster, "admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", policy) is not None
    assert get(cluster, "admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", policy) is not None
    assert get(cluster, "rbac.authorization.k8s.io/v1", "ClusterRole", "gpuops-cluster-autoscaler-management")
