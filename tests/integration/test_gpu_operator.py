"""gpu_operator role end to end: real ansible-playbook and kubernetes.core against the Kubernetes
API stand-in (sandbox/kube) with its simulated controllers, the sandbox fleet as GPU hosts.

What the nodes should advertise is computed here from the fleet fixtures (the files the NVML
simulator serves), not from the role's code.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from conftest import REPO_ROOT, SANDBOX_INVENTORY, VENV_BIN, load_fixture, run_playbook

PLAYBOOK = REPO_ROOT / "tests" / "integration" / "playbooks" / "gpu_operator_cluster.yml"
CONTROL_PLANE = "cpu-01"
POLICY = ("nvidia.com/v1", "ClusterPolicy", "cluster-policy")


def _env(sandbox, kube):
    return {**sandbox["env"], **kube.env}


def _run(sandbox, kube, *args):
    return run_playbook(PLAYBOOK, *args, env=_env(sandbox, kube))


def _policy(kube):
    api = kube.dynamic().resources.get(api_version=POLICY[0], kind=POLICY[1])
    return api.get(name=POLICY[2]).to_dict()


def _nodes(kube):
    return {
        n["metadata"]["name"]: n
        for n in kube.dynamic().resources.get(api_version="v1", kind="Node").get().to_dict()["items"]
    }


def _expected_from_fixtures(sandbox, strategy="mixed"):
    """nvidia.com/gpu per GPU node from the fixtures: GPUs without a persistent GPU_IS_LOST
    fault; on hosts whose driver is loaded; MIG GPUs count their MIG devices (single) or
    nothing (mixed: they are nvidia.com/mig-* resources). The sandbox inventory uses mixed."""
    expected = {}
    for host, fixture_name in sandbox["fixtures"].items():
        fixture = load_fixture(fixture_name)
        gpus = fixture.get("gpus") or []
        if not gpus or (fixture.get("driver") or {}).get("state") != "loaded":
            continue
        count = 0
        for gpu in gpus:
            if any(f.get("error") == "GPU_IS_LOST" for f in gpu.get("faults") or []):
                continue
            mig = gpu.get("mig") or {}
            if strategy == "single" and mig.get("current"):
                count += len(gpu.get("mig_devices") or [])
            elif strategy == "none" or not mig.get("current"):
                count += 1
        expected[host] = count
    return expected


def _host_mode_mig_nodes() -> set[str]:
    """Hosts whose MIG layout the mig role manages on the host, as the inventory declares them."""
    listing = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(SANDBOX_INVENTORY), "--list"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    hostvars = json.loads(listing.stdout)["_meta"]["hostvars"]
    return {host for host, hv in hostvars.items() if hv.get("mig_mode") == "host"}


def _failure_text(run):
    return run.stdout + run.stderr


def test_out_of_band_install_ready_capacity_and_rerun(sandbox, kube):
    run = _run(sandbox, kube)
    assert run.rc == 0, run
    # The operator namespace, mig-manager kept off host-mode MIG nodes, gpu-new-01 (driver not
    # loaded) kept out of the operands, and the ClusterPolicy.
    assert run.recap[CONTROL_PLANE]["changed"] == 4, run
    host_mode = _host_mode_mig_nodes()
    assert host_mode, "the sandbox inventory declares host-mode MIG nodes"
    for name, node in _nodes(kube).items():
        label = (node["metadata"].get("labels") or {}).get("nvidia.com/gpu.deploy.mig-manager")
        if name in host_mode:
            assert label == "false", name
        else:
            assert label != "false", name
    policy = _policy(kube)
    assert policy["status"]["state"] == "ready"
    assert policy["spec"]["mig"]["strategy"] == "mixed"
    assert policy["spec"]["driver"]["enabled"] is False  # host drivers are the nvidia_driver role's
    assert policy["spec"]["operator"]["use_ocp_driver_toolkit"] is False
    # Every node advertises what the fixtures hold, and the role said so.
    nodes = _nodes(kube)
    for host, count in _expected_from_fixtures(sandbox).items():
        assert nodes[host]["status"]["allocatable"]["nvidia.com/gpu"] == str(count), host
        assert re.search(rf"{host}: expected {count}, advertised {count} nvidia.com/gpu", run.stdout), host
    assert "not checked: gpu-new-01" in run.stdout  # driver not loaded: no NVML facts to count from
    assert nodes["gpu-new-01"]["metadata"]["labels"]["nvidia.com/gpu.deploy.operands"] == "false"

    rerun = _run(sandbox, kube)
    assert rerun.rc == 0, rerun
    assert rerun.recap[CONTROL_PLANE]["changed"] == 0, rerun
    assert _policy(kube)["metadata"]["resourceVersion"] == policy["metadata"]["resourceVersion"]


def test_check_mode_changes_nothing(sandbox, kube):
    run = _run(sandbox, kube, "--check")
    assert run.rc == 0, run
    # would create the namespace, label the host-mode MIG nodes and gpu-new-01, create the ClusterPolicy
    assert run.recap[CONTROL_PLANE]["changed"] == 4, run
    assert "would be created" in run.stdout
    labels = _nodes(kube)["gpu-new-01"]["metadata"].get("labels") or {}
    assert "nvidia.com/gpu.deploy.operands" not in labels
    api = kube.dynamic().resources.get(api_version=POLICY[0], kind=POLICY[1])
    assert api.get().to_dict()["items"] == []


def test_operator_not_installed(sandbox, kube_factory):
    kube = kube_factory(crds=[n for n in _crd_files() if not n.startswith("nvidia.com_")])
    run = _run(sandbox, kube)
    assert run.rc != 0, run
    assert "GPU Operator not installed" in _failure_text(run)
    assert "clusterpolicies.nvidia.com" in _failure_text(run)


def test_node_that_underreports_fails_with_its_name(sandbox, kube):
    node_api = kube.dynamic().resources.get(api_version="v1", kind="Node")
    node_api.patch(
        name="gpu-h100-01",
        body={"metadata": {"annotations": {"sandbox.gpuops.io/underreport-gpus": "2"}}},
        content_type="application/merge-patch+json",
    )
    expected = _expected_from_fixtures(sandbox)["gpu-h100-01"]
    run = _run(sandbox, kube, "-e", "gpu_operator_capacity_timeout=4")
    assert run.rc != 0, run
    text = _failure_text(run)
    assert f"gpu-h100-01: expected {expected}, advertised {expected - 2} nvidia.com/gpu" in text
    assert "1 GPU node(s) advertise fewer" in text  # only that one


def test_compat_failure_names_versions(sandbox, kube):
    """v25.3.x supports Kubernetes up to 1.33; the stand-in serves 1.34."""
    version = json.loads(run_version(kube))
    run = _run(sandbox, kube, "-e", "gpu_operator_chart_version=v25.3.4")
    assert run.rc != 0, run
    text = _failure_text(run)
    assert f"Kubernetes {version['major']}.{version['minor']} is not supported by GPU Operator v25.3.4" in text
    assert "supported: 1.29 to 1.33" in text
    assert "gpu_operator_skip_compat_check" in text
    api = kube.dynamic().resources.get(api_version=POLICY[0], kind=POLICY[1])
    assert api.get().to_dict()["items"] == []  # nothing changed

    run = _run(sandbox, kube, "-e", "gpu_operator_chart_version=v25.3.4", "-e", "gpu_operator_skip_compat_check=true")
    assert run.rc == 0, run
    assert "WARNING: gpu_operator_skip_compat_check is true" in run.stdout


def test_bad_variable_fails_early(sandbox, kube):
    run = _run(sandbox, kube, "-e", "gpu_operator_mig_strategy=dual")
    assert run.rc != 0, run
    assert "gpu_operator_mig_strategy" in _failure_text(run)
    run = _run(sandbox, kube, "-e", '{"gpu_operator_driver_precompiled": true}')
    assert run.rc != 0, run
    assert "gpu_operator_driver_precompiled needs gpu_operator_driver_enabled" in _failure_text(run)
    api = kube.dynamic().resources.get(api_version=POLICY[0], kind=POLICY[1])
    assert api.get().to_dict()["items"] == []


# The stand-in's OLM catalog serves gpu-operator-certified on channel v25.3 (CSV v25.3.0).
OLM_VERSION = ("-e", "gpu_operator_chart_version=v25.3.0", "-e", "gpu_operator_olm_channel=v25.3")


def test_openshift_olm_path(sandbox, kube_factory):
    kube = kube_factory(crds=[n for n in _crd_files() if not n.startswith("nvidia.com_")], openshift=True)
    run = _run(
        sandbox,
        kube,
        "-e",
        "gpu_operator_install_mode=olm",
        "-e",
        "gpu_operator_namespace=nvidia-gpu-operator",
        *OLM_VERSION,
    )
    assert run.rc == 0, run
    assert "platform openshift, OpenShift 4.16" in run.stdout  # read from ClusterVersion
    dyn = kube.dynamic()
    subs = dyn.resources.get(api_version="operators.coreos.com/v1alpha1", kind="Subscription").get().to_dict()["items"]
    by_name = {s["metadata"]["name"]: s for s in subs}
    assert by_name["gpu-operator-certified"]["metadata"]["namespace"] == "nvidia-gpu-operator"
    assert by_name["gpu-operator-certified"]["spec"]["startingCSV"] == "gpu-operator-certified.v25.3.0"
    assert by_name["nfd"]["metadata"]["namespace"] == "openshift-nfd"
    csvs = dyn.resources.get(api_version="operators.coreos.com/v1alpha1", kind="ClusterServiceVersion").get()
    assert {c["status"]["phase"] for c in csvs.to_dict()["items"]} == {"Succeeded"}
    nfd = dyn.resources.get(api_version="nfd.openshift.io/v1", kind="NodeFeatureDiscovery")
    assert nfd.get(name="nfd-instance", namespace="openshift-nfd").metadata.name == "nfd-instance"
    policy = _policy(kube)
    assert policy["spec"]["operator"]["use_ocp_driver_toolkit"] is True
    assert policy["status"]["state"] == "ready"

    rerun = _run(
        sandbox,
        kube,
        "-e",
        "gpu_operator_install_mode=olm",
        "-e",
        "gpu_operator_namespace=nvidia-gpu-operator",
        *OLM_VERSION,
    )
    assert rerun.rc == 0, rerun
    assert rerun.recap[CONTROL_PLANE]["changed"] == 0, rerun


def test_helm_path_renders_values_then_needs_helm(sandbox, kube):
    """Check mode against the real chart repository (unreachable here, never added): the run
    shows the release and values it would install, then stops at the helm tasks (no helm
    binary on PATH, or helm not knowing the repository). The helm mode itself runs for real
    in test_gpu_operator_helm.py."""
    run = _run(
        sandbox,
        kube,
        "--check",
        "-e",
        "gpu_operator_install_mode=helm",
        "-e",
        "gpu_operator_image_registry=reg.local:5000",
    )
    text = _failure_text(run)
    assert '"chart": "nvidia/gpu-operator v25.10.1"' in text
    assert '"repository": "reg.local:5000/nvidia/k8s"' in text
    if run.rc == 0:  # a machine with helm and a reachable repository or mirror
        return
    assert "helm" in text.lower()
    assert "Add the chart repository" in text


def _crd_files():
    """Every CRD file name the sandbox knows (the same names upstream uses)."""
    from conftest import SANDBOX_CRDS

    return sorted(p.name for p in Path(SANDBOX_CRDS).glob("*.yaml"))


def run_version(kube):
    """/version through the kubeconfig (the stand-in serves HTTPS and wants credentials)."""
    from kubernetes import client

    info = client.VersionApi(kube.api_client()).get_code()
    return json.dumps({"major": info.major, "minor": info.minor, "gitVersion": info.git_version})
