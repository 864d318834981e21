"""The security_baseline role applied to the stand-in: what it leaves is what the baseline means.

One ansible-playbook run applies the role's defaults; then Pod Security Admission refuses a
privileged pod in a tenant namespace, the NetworkPolicy connectivity matrix computed from the
policies read back from the API agrees with the baseline's intent, and a second run changes
nothing.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml

from conftest import REPO_ROOT, run_playbook

sys.path.insert(0, str(REPO_ROOT / "build" / "collections"))
from ansible_collections.gpuops.cluster.plugins.plugin_utils import netpol_matrix as nm  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.plugin_utils import security_baseline as sb  # noqa: E402

DEFAULTS = yaml.safe_load(
    (REPO_ROOT / "roles" / "security_baseline" / "defaults" / "main.yml").read_text()
)


def recap_changed(stdout: str) -> int:
    return int(re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", stdout).group(1))


@pytest.fixture(scope="module")
def applied(kube_server):
    result = run_playbook(kube_server, "security_baseline.yml")
    return result


def _get(server, path):
    status, _headers, body = server.request("GET", path)
    assert status == 200, body
    return json.loads(body)


def test_role_applies_and_rerun_changes_nothing(kube_server, applied):
    assert recap_changed(applied.stdout) > 0
    ns = _get(kube_server, "/api/v1/namespaces/ml-training")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] == "v1.31"
    binding = _get(
        kube_server,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/ml-training/rolebindings/gpuops-ml-engineer",
    )
    assert binding["roleRef"]["name"] == "gpuops-ml-engineer"
    quota = _get(kube_server, "/api/v1/namespaces/ml-training/resourcequotas/gpuops-quota")
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "8"}
    assert "PodDisruptionBudget ml-training/llm-train covers a training workload" in " ".join(
        applied.stdout.split()
    )
    assert "single-replica training Job" not in applied.stdout
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "llm-train"},
        "spec": {
            "template": {
                "metadata": {"labels": {"job-name": "llm-train"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "train", "image": "x"}]},
            }
        },
    }
    status, _headers, body = kube_server.request(
        "POST",
        "/apis/batch/v1/namespaces/ml-training/jobs",
        json.dumps(job).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201, body
    rerun = run_playbook(kube_server, "security_baseline.yml")
    assert recap_changed(rerun.stdout) == 0, rerun.stdout[-3000:]
    assert (
        "PodDisruptionBudget ml-training/llm-train selects the single-replica training Job "
        "llm-train: it blocks every node drain" in " ".join(rerun.stdout.split())
    )


def test_privileged_pod_refused_in_tenant_namespace(kube_server, applied):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "gpu-burn"},
        "spec": {
            "containers": [{"name": "burn", "image": "x", "securityContext": {"privileged": True}}]
        },
    }
    status, _headers, body = kube_server.request(
        "POST",
        "/api/v1/namespaces/ml-serving/pods",
        json.dumps(pod).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 403
    assert json.loads(body)["message"].startswith(
        'pods "gpu-burn" is forbidden: violates PodSecurity "restricted:v1.31": '
        'privileged (container "burn" must not set securityContext.privileged=true)'
    )
    # The operator namespace's documented exception lets the same pod in.
    status, _headers, _body = kube_server.request(
        "POST",
        "/api/v1/namespaces/gpu-operator/pods",
        json.dumps(pod).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201


def test_applied_policies_give_the_expected_matrix(kube_server, applied):
    sys.path.insert(0, str(REPO_ROOT / "tests" / "unit" / "plugins" / "plugin_utils"))
    from test_netpol_matrix import ENDPOINTS, PROBES  # noqa: PLC0415

    policies = _get(kube_server, "/apis/networking.k8s.io/v1/networkpolicies")["items"]
    ours = [
        p
        for p in policies
        if p["metadata"]["namespace"] in ("ml-training", "ml-serving", "gpu-operator")
    ]
    assert len(ours) >= 6
    namespace_labels = {
        n["metadata"]["name"]: n["metadata"].get("labels") or {}
        for n in _get(kube_server, "/api/v1/namespaces")["items"]
    }
    spec = {
        k[len("security_baseline_") :]: v
        for k, v in DEFAULTS.items()
        if k.startswith("security_baseline_")
    }
    plan = sb.plan_baseline(spec)
    assert plan["errors"] == []
    assert nm.mismatches(plan, ours, ENDPOINTS, PROBES, namespace_labels) == []


def test_personas_hold_least_privilege(kube_server, applied):
    """An ML engineer (group ml-team, bound in ml-training only), through the stand-in's RBAC
    with impersonation: pods in its namespace, nothing elsewhere, no secrets, no namespaces."""

    def as_user(method, path, body=None, groups=("ml-team",)):
        headers = {"Impersonate-User": "alice", "Content-Type": "application/json"}
        connection = kube_server.connection()
        try:
            headers_list = [("Authorization", f"Bearer {kube_server.token}"), *headers.items()]
            headers_list += [("Impersonate-Group", g) for g in groups]
            connection.putrequest(method, path)
            for key, value in headers_list:
                connection.putheader(key, value)
            data = json.dumps(body).encode() if body is not None else b""
            connection.putheader("Content-Length", str(len(data)))
            connection.endheaders(data)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            connection.close()

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "notebook"},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "nb",
                    "image": "x",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    status, _body = as_user("POST", "/api/v1/namespaces/ml-training/pods", pod)
    assert status == 201
    status, body = as_user("POST", "/api/v1/namespaces/ml-serving/pods", pod)
    assert status == 403 and 'cannot create resource "pods"' in body["message"]
    status, body = as_user("GET", "/api/v1/namespaces/ml-training/secrets")
    assert status == 403 and 'cannot list resource "secrets"' in body["message"]
    status, _body = as_user("DELETE", "/api/v1/namespaces/ml-training")
    assert status == 403
