"""gpu_operator's helm install mode, for real: the helm 3 binary `make helm` puts in the venv,
kubernetes.core.helm_repository and kubernetes.core.helm, against the Kubernetes API stand-in.

No chart repository is reachable here, so sandbox/charts/repo.py serves the sandbox's
gpu-operator chart (ClusterPolicy CRD, ClusterPolicy rendered from the values, the operator's
Deployment) on 127.0.0.1 at the version the role pins, and the role is pointed at it with
gpu_operator_helm_repo_url, as a site with a chart mirror would do. helm keeps its
configuration, cache and repositories in the test's folder (HELM_*_HOME).
"""

from __future__ import annotations

import sys

import pytest
from conftest import REPO_ROOT, VENV_BIN, run_playbook

sys.path.insert(0, str(REPO_ROOT / "tests" / "helpers"))  # the helpers both test tiers share

from sandbox_charts import chart_repository, helm_env, pinned_chart_version  # noqa: E402

PLAYBOOK = REPO_ROOT / "tests" / "integration" / "playbooks" / "gpu_operator_cluster.yml"
HELM = VENV_BIN / "helm"
CHART_VERSION = pinned_chart_version("gpu_operator", "gpu_operator_chart_version")
CONTROL_PLANE = "cpu-01"
RELEASE = "gpu-operator"
NAMESPACE = "gpu-operator"

pytestmark = pytest.mark.skipif(not HELM.exists(), reason=f"no helm binary at {HELM}: run `make helm` (tools/helm.sh)")


@pytest.fixture
def chart_repo(tmp_path):
    """The sandbox chart repository on 127.0.0.1 (started here, stopped by its PID)."""
    with chart_repository(tmp_path / "charts", "gpu-operator", CHART_VERSION, HELM) as url:
        yield url


def _releases(core):
    """Helm's release Secrets: {revision: status}."""
    secrets = core.list_namespaced_secret(NAMESPACE, label_selector=f"owner=helm,name={RELEASE}").items
    return {int(s.metadata.labels["version"]): s.metadata.labels["status"] for s in secrets}


def _policy(kube):
    api = kube.dynamic().resources.get(api_version="nvidia.com/v1", kind="ClusterPolicy")
    return api.get(name="cluster-policy").to_dict()


def test_helm_install_rerun_upgrade_and_check_mode(sandbox, kube_factory, chart_repo, tmp_path):
    from kubernetes import client

    # No CRDs at start: the chart brings the ClusterPolicy CRD (crds/), as upstream's does.
    kube = kube_factory(crds=None)
    core = client.CoreV1Api(kube.api_client())
    env = {**sandbox["env"], **kube.env, **helm_env(tmp_path / "helm", HELM)}
    helm_mode = ["-e", "gpu_operator_install_mode=helm", "-e", f"gpu_operator_helm_repo_url={chart_repo}"]

    def run(*extra):
        return run_playbook(PLAYBOOK, *helm_mode, *extra, env=env)

    installed = run()
    assert installed.rc == 0, installed
    assert installed.recap[CONTROL_PLANE]["changed"] >= 2, installed  # repository, release
    assert _releases(core) == {1: "deployed"}
    release = core.read_namespaced_secret(f"sh.helm.release.v1.{RELEASE}.v1", NAMESPACE)
    assert release.type == "helm.sh/release.v1"
    crd = kube.dynamic().resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    assert crd.get(name="clusterpolicies.nvidia.com").metadata.annotations["sandbox.gpuops.io/schema"] == "sandbox"
    policy = _policy(kube)
    # Rendered by the chart from the values the role passed (inventories/sandbox settings).
    assert policy["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    assert policy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert policy["spec"]["mig"]["strategy"] == "mixed"
    assert policy["spec"]["driver"]["enabled"] is False
    assert policy["spec"]["toolkit"]["enabled"] is False
    assert policy["spec"]["cdi"]["enabled"] is True
    assert policy["spec"]["daemonsets"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert policy["status"]["state"] == "ready"  # the role waited for it
    assert f"GPU Operator {CHART_VERSION}" in installed.stdout
    # The operator's Deployment rolled out with a real (simulated) pod.
    operator = kube.wait_for(
        lambda: (
            (
                d := client.AppsV1Api(kube.api_client()).read_namespaced_deployment("gpu-operator", NAMESPACE)
            ).status.available_replicas
            == 1
            and d
        ),
        message="the operator Deployment never became available",
    )
    assert operator.metadata.annotations["meta.helm.sh/release-namespace"] == NAMESPACE
    pods = core.list_namespaced_pod(NAMESPACE, label_selector="app=gpu-operator").items
    assert [p.status.phase for p in pods] == ["Running"]

    rerun = run()
    assert rerun.rc == 0, rerun
    assert rerun.recap[CONTROL_PLANE]["changed"] == 0, rerun
    assert _releases(core) == {1: "deployed"}

    # (the MIG strategy cannot be the change: the role refuses `single` for gpu-h100-02's layout)
    upgraded = run("-e", "gpu_operator_cdi_enabled=false")
    assert upgraded.rc == 0, upgraded
    assert upgraded.recap[CONTROL_PLANE]["changed"] >= 1, upgraded
    assert _releases(core) == {1: "superseded", 2: "deployed"}
    assert _policy(kube)["spec"]["cdi"]["enabled"] is False
    assert _policy(kube)["status"]["state"] == "ready"

    version = _policy(kube)["metadata"]["resourceVersion"]
    checked = run("--check", "-e", "gpu_operator_cdi_enabled=true")
    assert checked.rc == 0, checked
    assert checked.recap[CONTROL_PLANE]["changed"] >= 1, checked  # would upgrade the release
    assert _releases(core) == {1: "superseded", 2: "deployed"}  # but did not
    assert _policy(kube)["spec"]["cdi"]["enabled"] is False
    assert _policy(kube)["metadata"]["resourceVersion"] == version
