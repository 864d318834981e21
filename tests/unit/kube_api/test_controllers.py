"""The simulated controllers (serve --controllers), driven through the real kubernetes client.

Expected values come from the sandbox fixtures and the simulator's model catalog, never from
the controllers' code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from cluster_policy import cluster_policy
from conftest import CRDS, REPO_ROOT, start_server, stop_server
from conftest import wait_for as poll

FIXTURES = REPO_ROOT / "sandbox" / "fixtures"
MODELS = yaml.safe_load((REPO_ROOT / "sandbox/python/gpuops_sim/data/gpu_models.yml").read_text())
SIM_ENV = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "sandbox" / "python"))
CLUSTER_POLICY_CRD = CRDS / "nvidia.com_clusterpolicies.yaml"


def fixture_doc(name: str) -> dict:
    return yaml.safe_load((FIXTURES / f"{name}.yml").read_text())


def product_of(fixture: str) -> str:
    return MODELS[fixture_doc(fixture)["gpus"][0]["model"]]["nvml_name"].replace(" ", "-")


def lost_gpus(fixture: str) -> int:
    return sum(
        1
        for gpu in fixture_doc(fixture)["gpus"]
        if any(f.get("error") == "GPU_IS_LOST" for f in gpu.get("faults") or [])
    )


class Cluster:
    def __init__(self, server, states: dict[str, Path]):
        self.server = server
        self.states = states
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(server.kubeconfig), client_configuration=configuration
        )
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)
        self.dynamic = DynamicClient(self.api)

    def node(self, name):
        return self.core.read_node(name)

    def policy(self, **spec):
        resource = self.dynamic.resources.get(api_version="nvidia.com/v1", kind="ClusterPolicy")
        return resource.create(body=cluster_policy(**spec))

    def read_policy(self):
        resource = self.dynamic.resources.get(api_version="nvidia.com/v1", kind="ClusterPolicy")
        return resource.get(name="cluster-policy").to_dict()


def wait_for(predicate, timeout=15.0, what="condition"):
    return poll(predicate, timeout, interval=0.1, what=what)


@pytest.fixture
def make_cluster(tmp_path):
    started = []

    def make(nodes: dict[str, str], *, crds=(CLUSTER_POLICY_CRD,), controllers="all", extra=()):
        manifest = {"nodes": []}
        states = {}
        for i, (name, fixture) in enumerate(nodes.items()):
            states[name] = tmp_path / f"{name}.json"
            if not states[name].exists():  # what `gpuops_sim fleet-up` does for each host
                sim(
                    "reset",
                    "--fixture",
                    str(FIXTURES / f"{fixture}.yml"),
                    "--state",
                    str(states[name]),
                )
            manifest["nodes"].append(
                {
                    "name": name,
                    "fixture": str(FIXTURES / f"{fixture}.yml"),
                    "state": str(states[name]),
                    "control_plane": i == 0 and fixture == "no-gpu",
                }
            )
        (tmp_path / "fleet.json").write_text(json.dumps(manifest))
        args = ["--fleet", str(tmp_path / "fleet.json"), "--controllers", controllers]
        for crd in crds:
            args += ["--crds", str(crd)]
        args += ["--operator-crds", str(CRDS), *extra]
        server = start_server(tmp_path / f"kube{len(started)}", None, *args)
        started.append(server)
        return Cluster(server, states)

    yield make
    for server in started:
        stop_server(server)


def sim(*args):
    subprocess.run(
        [sys.executable, "-m", "gpuops_sim", *args], env=SIM_ENV, check=True, capture_output=True
    )


# ---------------------------------------------------------------------------------- fleet


def test_fleet_nodes_are_registered_ready_and_bound(make_cluster):
    cluster = make_cluster({"cpu-01": "no-gpu", "gpu-h100-01": "h100-80gb-hbm3-x8"})
    nodes = {n.metadata.name: n for n in cluster.core.list_node().items}
    assert set(nodes) == {"cpu-01", "gpu-h100-01"}
    cp = nodes["cpu-01"]
    assert "node-role.kubernetes.io/control-plane" in cp.metadata.labels
    assert "node-role.kubernetes.io/control-plane" not in nodes["gpu-h100-01"].metadata.labels
    for node in nodes.values():
        assert node.metadata.labels["kubernetes.io/hostname"] == node.metadata.name
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
        assert int(node.status.capacity["pods"]) > 0
    # No ClusterPolicy yet: no GPU labels, no GPU resources.
    assert "nvidia.com/gpu" not in (nodes["gpu-h100-01"].status.allocatable or {})


# --------------------------------------------------------------------------- gpu-operator


def test_cluster_policy_goes_not_ready_then_ready_and_gpu_nodes_are_labelled(make_cluster):
    cluster = make_cluster(
        {"cpu-01": "no-gpu", "gpu-h100-01": "h100-80gb-hbm3-x8", "gpu-a100-02": "a100-one-lost"}
    )
    resource = cluster.dynamic.resources.get(api_version="nvidia.com/v1", kind="ClusterPolicy")
    states = []
    cluster.policy()
    for event in resource.watch(name="cluster-policy", timeout=15):
        state = (event["raw_object"].get("status") or {}).get("state")
        if state and (not states or states[-1] != state):
            states.append(state)
        if state == "ready":
            break
    assert states == ["notReady", "ready"]
    status = cluster.read_policy()["status"]
    ready = {c["type"]: c for c in status["conditions"]}
    assert ready["Ready"]["status"] == "True" and ready["Error"]["status"] == "False"

    h100 = cluster.node("gpu-h100-01")
    labels = h100.metadata.labels
    count = len(fixture_doc("h100-80gb-hbm3-x8")["gpus"])
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels["nvidia.com/gpu.product"] == product_of("h100-80gb-hbm3-x8")
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["nvidia.com/gpu.count"] == str(count)
    assert labels["nvidia.com/mig.capable"] == "true"
    assert labels["nvidia.com/gpu.deploy.driver"] == "pre-installed"
    assert h100.status.capacity["nvidia.com/gpu"] == str(count)
    assert h100.status.allocatable["nvidia.com/gpu"] == str(count)

    a100 = cluster.node("gpu-a100-02")
    healthy = len(fixture_doc("a100-one-lost")["gpus"]) - lost_gpus("a100-one-lost")
    assert lost_gpus("a100-one-lost") == 1
    assert a100.status.allocatable["nvidia.com/gpu"] == str(healthy)
    cpu = cluster.node("cpu-01")
    assert "nvidia.com/gpu.present" not in cpu.metadata.labels
    assert "nvidia.com/gpu" not in cpu.status.allocatable


def test_driver_missing_keeps_policy_not_ready_naming_the_node(make_cluster):
    cluster = make_cluster({"gpu-new-01": "driver-not-loaded", "gpu-h100-01": "h100-80gb-hbm3-x8"})
    cluster.policy()
    wait_for(lambda: (cluster.read_policy().get("status") or {}).get("state") == "notReady")
    time.sleep(1.0)  # it stays so
    status = cluster.read_policy()["status"]
    assert status["state"] == "notReady"
    assert "gpu-new-01" in {c["type"]: c for c in status["conditions"]}["Ready"]["message"]
    # Excluding the node from operands, as upstream's label does, lets it become ready.
    cluster.core.patch_node(
        "gpu-new-01", {"metadata": {"labels": {"nvidia.com/gpu.deploy.operands": "false"}}}
    )
    wait_for(lambda: cluster.read_policy()["status"]["state"] == "ready", what="ready")
    # No operands there: no GFD labels, no default MIG config for the mig-manager to apply.
    labels = cluster.node("gpu-new-01").metadata.labels
    assert "nvidia.com/mig.config" not in labels and "nvidia.com/gpu.product" not in labels


def test_default_mig_config_is_labelled_and_applied(make_cluster):
    """As upstream, MIG-capable nodes without nvidia.com/mig.config get
    migManager.config.default (all-disabled), which the mig-manager applies."""
    cluster = make_cluster({"gpu-a100-01": "a100-sxm4-40gb-x8"})
    cluster.core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name="gpu-operator"))
    )
    cluster.policy(migManager={"enabled": True})
    assert _label_states(cluster, "gpu-a100-01", ("success", "failed"))[-1] == "success"
    labels = cluster.node("gpu-a100-01").metadata.labels
    assert labels["nvidia.com/mig.config"] == "all-disabled"
    state = json.loads(cluster.states["gpu-a100-01"].read_text())
    assert not any(g["mig"]["current"] for g in state["gpus"])


def test_underreport_annotation_and_lost_gpu_injection_are_seen(make_cluster):
    cluster = make_cluster({"gpu-h100-01": "h100-80gb-hbm3-x8"})
    count = len(fixture_doc("h100-80gb-hbm3-x8")["gpus"])
    cluster.policy()

    def allocatable():
        return cluster.node("gpu-h100-01").status.allocatable.get("nvidia.com/gpu")

    wait_for(lambda: allocatable() == str(count))
    cluster.core.patch_node(
        "gpu-h100-01",
        {"metadata": {"annotations": {"sandbox.gpuops.io/underreport-gpus": "2"}}},
    )
    wait_for(lambda: allocatable() == str(count - 2), what="under-reported")
    cluster.core.patch_node(
        "gpu-h100-01",
        {"metadata": {"annotations": {"sandbox.gpuops.io/underreport-gpus": None}}},
    )
    wait_for(lambda: allocatable() == str(count))
    state = str(cluster.states["gpu-h100-01"])
    sim("inject", "--state", state, "--gpu", "5", "--call", "*", "--error", "GPU_IS_LOST")
    wait_for(lambda: allocatable() == str(count - 1), what="lost GPU dropped")
    # A fault that fires a limited number of times is for the code under test: not consumed.
    sim("clear-faults", "--state", state)
    sim(
        "inject",
        "--state",
        state,
        "--gpu",
        "1",
        "--call",
        "*",
        "--error",
        "GPU_IS_LOST",
        "--times",
        "1",
    )
    wait_for(lambda: allocatable() == str(count))
    faults = json.loads(Path(state).read_text())["faults"]
    assert [f["times"] for f in faults] == [1]


def test_mig_strategies_single_and_mixed(make_cluster):
    cluster = make_cluster({"gpu-h100-02": "h100-mig-mixed"})
    cluster.policy(mig={"strategy": "mixed"})
    doc = fixture_doc("h100-mig-mixed")
    mig_gpus = [g for g in doc["gpus"] if (g.get("mig") or {}).get("current")]
    profiles: dict[str, int] = {}
    for gpu in mig_gpus:
        for device in gpu.get("mig_devices") or []:
            profiles[device["profile"]] = profiles.get(device["profile"], 0) + 1

    def resources():
        alloc = cluster.node("gpu-h100-02").status.allocatable
        return {k: int(v) for k, v in alloc.items() if k.startswith("nvidia.com/")}

    expected = {f"nvidia.com/mig-{p}": n for p, n in profiles.items()}
    expected["nvidia.com/gpu"] = len(doc["gpus"]) - len(mig_gpus)
    wait_for(lambda: resources() == expected, what=f"mixed resources {expected}")
    labels = cluster.node("gpu-h100-02").metadata.labels
    assert labels["nvidia.com/mig.strategy"] == "mixed"
    # single with a mixed layout is invalid: nothing advertised, policy notReady.
    resource = cluster.dynamic.resources.get(api_version="nvidia.com/v1", kind="ClusterPolicy")
    resource.patch(
        name="cluster-policy",
        body={"spec": {"mig": {"strategy": "single"}}},
        content_type="application/merge-patch+json",
    )
    wait_for(lambda: resources() == {"nvidia.com/gpu": 0}, what="single strategy invalid")
    wait_for(lambda: cluster.read_policy()["status"]["state"] == "notReady")


# ---------------------------------------------------------------------------- mig-manager


MIG_CONFIG = {
    "version": "v1",
    "mig-configs": {
        "all-disabled": [{"devices": "all", "mig-enabled": False}],
        "all-1g.10gb": [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.10gb": 7}}],
    },
}


def _mig_cluster(make_cluster, fixture, strategy="single"):
    cluster = make_cluster({"node-a": fixture})
    cluster.core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name="gpu-operator"))
    )
    cluster.core.create_namespaced_config_map(
        "gpu-operator",
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="custom-mig-config"),
            data={"config.yaml": yaml.safe_dump(MIG_CONFIG)},
        ),
    )
    cluster.policy(
        mig={"strategy": strategy},
        migManager={"enabled": True, "config": {"name": "custom-mig-config", "default": ""}},
    )
    return cluster


def _label_states(cluster, node, until):
    """mig.config.state values seen through a watch on the node until `until` appears."""
    from kubernetes import watch

    seen = []

    stream = watch.Watch()
    for event in stream.stream(
        cluster.core.list_node, field_selector=f"metadata.name={node}", timeout_seconds=30
    ):
        state = (event["object"].metadata.labels or {}).get("nvidia.com/mig.config.state")
        if state and (not seen or seen[-1] != state):
            seen.append(state)
        if state in until:
            stream.stop()
    return seen


def test_mig_manager_applies_a_config_to_the_simulated_gpus(make_cluster):
    cluster = _mig_cluster(make_cluster, "h100-80gb-hbm3-x8")
    count = len(fixture_doc("h100-80gb-hbm3-x8")["gpus"])
    cluster.core.patch_node(
        "node-a", {"metadata": {"labels": {"nvidia.com/mig.config": "all-1g.10gb"}}}
    )
    seen = _label_states(cluster, "node-a", ("success", "failed"))
    assert seen[0] == "pending" and seen[-1] == "success", seen
    state = json.loads(cluster.states["node-a"].read_text())
    assert all(g["mig"]["current"] for g in state["gpus"])
    assert [len(g["gpu_instances"]) for g in state["gpus"]] == [7] * count

    def labels():
        return cluster.node("node-a").metadata.labels

    product = product_of("h100-80gb-hbm3-x8")
    wait_for(lambda: labels().get("nvidia.com/gpu.product") == f"{product}-MIG-1g.10gb")
    node = cluster.node("node-a")
    assert node.status.allocatable["nvidia.com/gpu"] == str(7 * count)
    assert node.metadata.labels["nvidia.com/gpu.count"] == str(7 * count)

    # Unknown config name: failed, with the reason on the node.
    cluster.core.patch_node("node-a", {"metadata": {"labels": {"nvidia.com/mig.config": "nope"}}})
    seen = _label_states(cluster, "node-a", ("failed",))
    assert seen[-1] == "failed"
    reason = cluster.node("node-a").metadata.annotations["sandbox.gpuops.io/mig.config.error"]
    assert "nope" in reason
    events = cluster.core.list_namespaced_event("default").items
    assert any(e.reason == "MigConfigFailed" and e.involved_object.name == "node-a" for e in events)


def test_mig_manager_fails_when_processes_hold_the_instances(make_cluster):
    cluster = _mig_cluster(make_cluster, "h100-mig-mixed", strategy="mixed")
    before = (
        json.loads(cluster.states["node-a"].read_text())
        if cluster.states["node-a"].exists()
        else None
    )
    cluster.core.patch_node(
        "node-a", {"metadata": {"labels": {"nvidia.com/mig.config": "all-1g.10gb"}}}
    )
    seen = _label_states(cluster, "node-a", ("success", "failed"))
    assert seen[-1] == "failed", seen
    reason = cluster.node("node-a").metadata.annotations["sandbox.gpuops.io/mig.config.error"]
    assert "In use" in reason or "IN_USE" in reason.upper().replace(" ", "_"), reason
    assert before is None or before["gpus"][0]["gpu_instances"]


def test_mig_manager_removal_of_the_label_clears_the_state(make_cluster):
    cluster = _mig_cluster(make_cluster, "a100-sxm4-40gb-x8")
    cluster.core.patch_node(
        "node-a", {"metadata": {"labels": {"nvidia.com/mig.config": "all-disabled"}}}
    )
    assert _label_states(cluster, "node-a", ("success", "failed"))[-1] == "success"
    cluster.core.patch_node("node-a", {"metadata": {"labels": {"nvidia.com/mig.config": None}}})
    wait_for(lambda: "nvidia.com/mig.config.state" not in cluster.node("node-a").metadata.labels)


# -------------------------------------------------------------------------- device-plugin


def _sharing_cluster(make_cluster, sharing_config, default="shared"):
    cluster = make_cluster({"node-l40s": "l40s-x4"})
    cluster.core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name="gpu-operator"))
    )
    cluster.core.create_namespaced_config_map(
        "gpu-operator",
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="plugin-config"),
            data={"shared": yaml.safe_dump(sharing_config), "plain": "version: v1\n"},
        ),
    )
    cluster.policy(devicePlugin={"config": {"name": "plugin-config", "default": default}})
    return cluster


@pytest.mark.parametrize("strategy_key,strategy", [("timeSlicing", "time-slicing"), ("mps", "mps")])
def test_sharing_multiplies_allocatable(make_cluster, strategy_key, strategy):
    replicas = 4
    config_doc = {
        "version": "v1",
        "sharing": {
            strategy_key: {"resources": [{"name": "nvidia.com/gpu", "replicas": replicas}]}
        },
    }
    cluster = _sharing_cluster(make_cluster, config_doc)
    gpus = len(fixture_doc("l40s-x4")["gpus"])

    def node():
        return cluster.node("node-l40s")

    wait_for(lambda: node().status.allocatable.get("nvidia.com/gpu") == str(gpus * replicas))
    labels = node().metadata.labels
    assert labels["nvidia.com/gpu.replicas"] == str(replicas)
    assert labels["nvidia.com/gpu.sharing-strategy"] == strategy
    assert labels["nvidia.com/gpu.product"] == product_of("l40s-x4") + "-SHARED"
    # The node label picks another entry: back to one replica.
    cluster.core.patch_node(
        "node-l40s", {"metadata": {"labels": {"nvidia.com/device-plugin.config": "plain"}}}
    )
    wait_for(lambda: node().status.allocatable.get("nvidia.com/gpu") == str(gpus))
    assert node().metadata.labels["nvidia.com/gpu.sharing-strategy"] == "none"


def test_rename_by_default_advertises_shared_resource(make_cluster):
    config_doc = {
        "version": "v1",
        "sharing": {
            "timeSlicing": {
                "renameByDefault": True,
                "resources": [{"name": "nvidia.com/gpu", "replicas": 2}],
            }
        },
    }
    cluster = _sharing_cluster(make_cluster, config_doc)
    gpus = len(fixture_doc("l40s-x4")["gpus"])
    node = wait_for(
        lambda: (
            (n := cluster.node("node-l40s")).status.allocatable.get("nvidia.com/gpu.shared")
            == str(2 * gpus)
            and n
        )
    )
    assert "nvidia.com/gpu" not in node.status.allocatable
    assert node.metadata.labels["nvidia.com/gpu.product"] == product_of("l40s-x4")


def test_missing_plugin_config_entry_keeps_policy_not_ready(make_cluster):
    cluster = _sharing_cluster(make_cluster, {"version": "v1"}, default="absent")
    wait_for(lambda: (cluster.read_policy().get("status") or {}).get("state") == "notReady")
    time.sleep(0.8)
    status = cluster.read_policy()["status"]
    assert status["state"] == "notReady"
    assert "absent" in {c["type"]: c for c in status["conditions"]}["Ready"]["message"]


# ------------------------------------------------------------------------------ scheduler


def _pod(name, node=None, gpus=0, selector=None):
    container = {"name": "main", "image": "busybox"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    spec = {"containers": [container]}
    if node:
        spec["nodeName"] = node
    if selector:
        spec["nodeSelector"] = selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_scheduler_binds_runs_and_refuses(make_cluster):
    cluster = make_cluster(
        {"cpu-01": "no-gpu", "gpu-l40s-01": "l40s-x4", "gpu-h100-01": "h100-80gb-hbm3-x8"}
    )
    cluster.policy()
    h100_gpus = len(fixture_doc("h100-80gb-hbm3-x8")["gpus"])
    wait_for(
        lambda: (
            cluster.node("gpu-h100-01").status.allocatable.get("nvidia.com/gpu") == str(h100_gpus)
        )
    )
    core = cluster.core

    def pod(name):
        return core.read_namespaced_pod(name, "default")

    core.create_namespaced_pod("default", _pod("pinned", node="gpu-l40s-01"))
    running = wait_for(lambda: (p := pod("pinned")).status.phase == "Running" and p)
    assert {c.type: c.status for c in running.status.conditions}["Ready"] == "True"
    # Requests more GPUs than the L40S node has: only the H100 node fits.
    core.create_namespaced_pod("default", _pod("big", gpus=h100_gpus))
    bound = wait_for(lambda: (p := pod("big")).status.phase == "Running" and p)
    assert bound.spec.node_name == "gpu-h100-01"
    # Now no node has that many free: Pending, Unschedulable.
    core.create_namespaced_pod("default", _pod("too-big", gpus=h100_gpus))
    pending = wait_for(lambda: (p := pod("too-big")).status.conditions and p)
    condition = {c.type: c for c in pending.status.conditions}["PodScheduled"]
    assert pending.status.phase == "Pending"
    assert condition.status == "False" and condition.reason == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in condition.message
    # Cordoned nodes are skipped; the control plane's taint is not tolerated.
    core.patch_node("gpu-l40s-01", {"spec": {"unschedulable": True}})
    core.create_namespaced_pod("default", _pod("anywhere"))
    placed = wait_for(lambda: (p := pod("anywhere")).spec.node_name and p)
    assert placed.spec.node_name == "gpu-h100-01"


# ------------------------------------------------------------------------------------ olm


def test_olm_installs_the_gpu_operator_and_openshift_is_detectable(make_cluster):
    cluster = make_cluster({"gpu-l40s-01": "l40s-x4"}, crds=(), extra=("--openshift",))
    api = cluster.api
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"config.openshift.io", "route.openshift.io", "operators.coreos.com"} <= groups
    assert "nvidia.com" not in groups
    cv = cluster.dynamic.resources.get(api_version="config.openshift.io/v1", kind="ClusterVersion")
    assert cv.get(name="version").status.desired.version.startswith("4.")

    custom = client.CustomObjectsApi(api)
    namespace = "nvidia-gpu-operator"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    custom.create_namespaced_custom_object(
        "operators.coreos.com",
        "v1alpha1",
        namespace,
        "subscriptions",
        {
            "apiVersion": "operators.coreos.com/v1alpha1",
            "kind": "Subscription",
            "metadata": {"name": "gpu-operator-certified"},
            "spec": {
                "name": "gpu-operator-certified",
                "channel": "v25.3",
                "source": "certified-operators",
                "sourceNamespace": "openshift-marketplace",
                "installPlanApproval": "Automatic",
            },
        },
    )

    def csv_phase():
        items = custom.list_namespaced_custom_object(
            "operators.coreos.com", "v1alpha1", namespace, "clusterserviceversions"
        )["items"]
        return {i["metadata"]["name"]: (i.get("status") or {}).get("phase") for i in items}

    # Without an OperatorGroup the CSV fails, as OLM's does.
    wait_for(lambda: csv_phase() == {"gpu-operator-certified.v25.3.0": "Failed"})
    custom.create_namespaced_custom_object(
        "operators.coreos.com",
        "v1",
        namespace,
        "operatorgroups",
        {
            "apiVersion": "operators.coreos.com/v1",
            "kind": "OperatorGroup",
            "metadata": {"name": "nvidia-gpu-operator-group"},
            "spec": {"targetNamespaces": [namespace]},
        },
    )
    wait_for(lambda: csv_phase() == {"gpu-operator-certified.v25.3.0": "Succeeded"})
    sub = custom.get_namespaced_custom_object(
        "operators.coreos.com", "v1alpha1", namespace, "subscriptions", "gpu-operator-certified"
    )
    assert sub["status"]["state"] == "AtLatestKnown"
    assert sub["status"]["installedCSV"] == "gpu-operator-certified.v25.3.0"
    plan = custom.get_namespaced_custom_object(
        "operators.coreos.com",
        "v1alpha1",
        namespace,
        "installplans",
        sub["status"]["installPlanRef"]["name"],
    )
    assert plan["status"]["phase"] == "Complete"
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert "nvidia.com" in groups
    # The operator now runs: a ClusterPolicy becomes ready and the node gets GPUs.
    cluster.policy()
    wait_for(lambda: cluster.read_policy().get("status", {}).get("state") == "ready")
    assert cluster.read_policy()["status"]["namespace"] == namespace


def test_olm_unknown_package_reports_resolution_failed(make_cluster):
    cluster = make_cluster({"gpu-l40s-01": "l40s-x4"}, crds=())
    custom = client.CustomObjectsApi(cluster.api)
    custom.create_namespaced_custom_object(
        "operators.coreos.com",
        "v1alpha1",
        "default",
        "subscriptions",
        {
            "apiVersion": "operators.coreos.com/v1alpha1",
            "kind": "Subscription",
            "metadata": {"name": "nfd"},
            "spec": {"name": "nfd", "channel": "no-such-channel", "source": "redhat-operators"},
        },
    )

    def conditions():
        sub = custom.get_namespaced_custom_object(
            "operators.coreos.com", "v1alpha1", "default", "subscriptions", "nfd"
        )
        return {c["type"]: c for c in (sub.get("status") or {}).get("conditions") or []}

    failed = wait_for(lambda: conditions().get("ResolutionFailed"))
    assert failed["status"] == "True" and "no-such-channel" in failed["message"]
    groups = {g.name for g in client.ApisApi(cluster.api).get_api_versions().groups}
    assert "config.openshift.io" not in groups  # not an OpenShift cluster without --openshift
