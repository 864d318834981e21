"""The kubelet's device manager on sandbox nodes and the pod-resources List answer it writes,
read back by the DCGM-exporter-shaped endpoint (sandbox/metrics), through one shared stand-in.

Expected devices come from the NVML simulator itself (the exporter's NVML reading), never from
the controllers' code. The tests share the module's stand-in and run in file order (the
tiers run `--dist loadfile`): later ones build on the pods earlier ones left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from cluster_policy import cluster_policy
from conftest import CRDS, REPO_ROOT, start_server, stop_server
from conftest import wait_for as poll

sys.path.insert(0, str(REPO_ROOT / "sandbox" / "metrics"))

from gpuops_kubeapi.sim import fleet  # noqa: E402
from gpuops_metrics import exporter as exp  # noqa: E402
from gpuops_metrics.fields import default_fields  # noqa: E402

FIXTURES = REPO_ROOT / "sandbox" / "fixtures"
SIM_ENV = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "sandbox" / "python"))
MIG_NODE, SHARED_NODE = "gpu-mig", "gpu-l40s"
NODES = {MIG_NODE: "h100-mig-mixed", SHARED_NODE: "l40s-x4"}
REPLICAS = 2
EXTRA_LABELS = {
    "node.kubernetes.io/instance-type": "g6e.12xlarge",
    "eks.amazonaws.com/capacityType": "ON_DEMAND",
    "topology.kubernetes.io/zone": "eu-west-1a",
    "nvidia.com/device-plugin.config": "shared",
}
PLUGIN_CONFIG = {
    "plain": "version: v1\n",
    "shared": yaml.safe_dump(
        {
            "version": "v1",
            "sharing": {
                "timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": REPLICAS}]}
            },
        }
    ),
}


def wait_for(predicate, timeout=20.0, what="condition"):
    return poll(predicate, timeout, interval=0.1, what=what)


class Env:
    def __init__(self, root: Path):
        self.root = root
        self.dirs = {name: root / "hosts" / name for name in NODES}
        self.server = None
        self.core = None

    def start(self):
        args = ["--fleet", str(self.root / "fleet.json"), "--controllers", "all"]
        args += ["--crds", str(CRDS / "nvidia.com_clusterpolicies.yaml")]
        self.server = start_server(self.root / "kube", None, *args)
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(self.server.kubeconfig), client_configuration=configuration
        )
        self.core = client.CoreV1Api(client.ApiClient(configuration))

    def collector(self, node):
        env = {
            "GPUOPS_NVML_SIM_FIXTURE": str(FIXTURES / f"{NODES[node]}.yml"),
            "GPUOPS_NVML_SIM_STATE": str(self.dirs[node] / "nvml-state.json"),
        }
        return exp.HostCollector(node, env, self.dirs[node])

    def listing(self, node) -> dict[tuple[str, str], dict[str, list[str]]]:
        """(namespace, pod) -> {resource: device ids} from the node's pod-resources.json."""
        path = self.dirs[node] / "pod-resources.json"
        if not path.exists():
            return {}
        found = {}
        for pod in json.loads(path.read_text())["pod_resources"]:
            devices: dict[str, list[str]] = {}
            for container in pod.get("containers") or []:
                for device in container.get("devices") or []:
                    devices.setdefault(device["resource_name"], []).extend(device["device_ids"])
            found[(pod["namespace"], pod["name"])] = devices
        return found

    def pod(self, name, resources, node=None, bind=False):
        container = {"name": "main", "image": "busybox", "resources": {"limits": resources}}
        spec = {"containers": [container]}
        if bind:
            spec["nodeName"] = node
        elif node:
            spec["nodeSelector"] = {"kubernetes.io/hostname": node}
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
        self.core.create_namespaced_pod("default", body)

    def phase(self, name):
        return self.core.read_namespaced_pod(name, "default").status.phase

    def running(self, *names):
        wait_for(lambda: all(self.phase(n) == "Running" for n in names), what=f"{names} Running")

    def delete(self, name):
        self.core.delete_namespaced_pod(name, "default")

        def gone():
            try:
                self.core.read_namespaced_pod(name, "default")
            except client.ApiException as exc:
                return exc.status == 404
            return False

        wait_for(gone, what=f"{name} deleted")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("podres")
    manifest = {"nodes": []}
    for name, fixture in NODES.items():
        host = root / "hosts" / name
        host.mkdir(parents=True)
        state = host / "nvml-state.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gpuops_sim",
                "reset",
                "--fixture",
                str(FIXTURES / f"{fixture}.yml"),
            ]
            + ["--state", str(state)],
            env=SIM_ENV,
            check=True,
            capture_output=True,
        )
        entry = {"name": name, "fixture": str(FIXTURES / f"{fixture}.yml"), "state": str(state)}
        if name == SHARED_NODE:
            entry["labels"] = EXTRA_LABELS
        manifest["nodes"].append(entry)
    (root / "fleet.json").write_text(json.dumps(manifest))
    env = Env(root)
    env.start()
    env.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="gpu-operator")))
    env.core.create_namespaced_config_map(
        "gpu-operator",
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="plugin-config"), data=PLUGIN_CONFIG),
    )
    policies = client.CustomObjectsApi(env.core.api_client)
    policy = cluster_policy(
        mig={"strategy": "mixed"},
        devicePlugin={"config": {"name": "plugin-config", "default": "plain"}},
    )
    policies.create_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", policy)
    wait_for(
        lambda: (
            "nvidia.com/mig-1g.10gb" in (env.core.read_node(MIG_NODE).status.allocatable or {})
            and (env.core.read_node(SHARED_NODE).status.allocatable or {}).get("nvidia.com/gpu")
            == "8"
        ),
        what="GPUs advertised",
    )
    yield env
    stop_server(env.server)


def _entities(env, node):
    _driver, entities = env.collector(node).collect()
    return entities


def _series_pods(env, node):
    """{(UUID, GPU_I_ID or None): pod label} of one metric of the exporter's scrape."""
    collector = env.collector(node)
    driver, entities = collector.collect()
    text = exp.render(
        node, driver, entities, default_fields(), pod_resources=collector.pod_resources()
    )
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    for family in text_string_to_metric_families(text):
        if family.name != "DCGM_FI_DEV_FB_USED":
            continue
        for sample in family.samples:
            key = (sample.labels["UUID"], sample.labels.get("GPU_I_ID"))
            found[key] = sample.labels.get("pod")
    return found


def test_gpu_and_mig_pods_get_their_devices_and_the_exporter_labels_them(env):
    env.pod("whole", {"nvidia.com/gpu": "1"}, MIG_NODE)
    env.pod("slice", {"nvidia.com/mig-1g.10gb": "1"}, MIG_NODE)
    env.running("whole", "slice")
    listing = wait_for(
        lambda: (x := env.listing(MIG_NODE)).get(("default", "slice")) and x, what="listing"
    )
    entities = _entities(env, MIG_NODE)
    mig_gpus = {e.uuid for e in entities if e.mig_profile}
    full_gpus = {e.uuid for e in entities if e.mig_profile is None} - mig_gpus
    one_g = {d: e for e in entities if e.mig_profile == "1g.10gb" for d in e.device_ids}
    [whole] = listing[("default", "whole")]["nvidia.com/gpu"]
    [piece] = listing[("default", "slice")]["nvidia.com/mig-1g.10gb"]
    assert whole in full_gpus
    assert piece in one_g and piece != whole
    series = _series_pods(env, MIG_NODE)
    labelled = {key: pod for key, pod in series.items() if pod}
    instance = one_g[piece]
    assert labelled == {(whole, None): "whole", (instance.uuid, str(instance.gi_id)): "slice"}


def test_time_slicing_replicas_spread_over_the_gpus(env):
    gpus = [e.uuid for e in _entities(env, SHARED_NODE)]
    names = [f"ts-{i}" for i in range(len(gpus))]
    for name in names:
        env.pod(name, {"nvidia.com/gpu": "1"}, SHARED_NODE)
    env.running(*names)
    listing = wait_for(
        lambda: len(x := env.listing(SHARED_NODE)) == len(names) and x, what="listing"
    )
    ids = [i for name in names for i in listing[("default", name)]["nvidia.com/gpu"]]
    physical = sorted(i.split("::")[0] for i in ids)
    assert all(i.split("::")[1] in {str(n) for n in range(REPLICAS)} for i in ids)
    assert physical == sorted(gpus)  # one replica on each GPU before any GPU gets two
    assert set(_series_pods(env, SHARED_NODE).values()) == set(names)
    for name in names:
        env.delete(name)
    wait_for(lambda: env.listing(SHARED_NODE) == {}, what="shared node's listing emptied")


def test_concurrent_pods_never_share_a_device(env):
    slices = {
        d for e in _entities(env, MIG_NODE) if e.mig_profile == "1g.10gb" for d in e.device_ids
    }
    taken = {
        i for devs in env.listing(MIG_NODE).values() for i in devs.get("nvidia.com/mig-1g.10gb", [])
    }
    names = [f"burst-{i}" for i in range(len(slices) - len(taken))]
    threads = [
        threading.Thread(target=env.pod, args=(n, {"nvidia.com/mig-1g.10gb": "1"}, MIG_NODE))
        for n in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    env.running(*names)
    listing = env.listing(MIG_NODE)
    held = [i for devs in listing.values() for i in devs.get("nvidia.com/mig-1g.10gb", [])]
    assert len(held) == len(set(held)) == len(slices)
    assert set(held) == slices
    # Bound past the scheduler to a node with no free slice: the kubelet refuses it.
    env.pod("late", {"nvidia.com/mig-1g.10gb": "1"}, MIG_NODE, bind=True)
    wait_for(lambda: env.phase("late") == "Failed", what="late refused")
    status = env.core.read_namespaced_pod("late", "default").status
    assert status.reason == "UnexpectedAdmissionError"
    assert "Requested: 1, Available: 0" in status.message
    assert ("default", "late") not in env.listing(MIG_NODE)
    for name in names + ["late"]:
        env.delete(name)


def test_deleting_a_pod_frees_its_device_and_assignments_survive_a_restart(env):
    before = env.listing(MIG_NODE)
    [whole] = before[("default", "whole")]["nvidia.com/gpu"]
    env.delete("whole")
    wait_for(lambda: ("default", "whole") not in env.listing(MIG_NODE), what="whole unlisted")
    assert set(env.listing(MIG_NODE)) == {("default", "slice")}
    full = int(env.core.read_node(MIG_NODE).status.allocatable["nvidia.com/gpu"])
    env.pod("all-of-them", {"nvidia.com/gpu": str(full)}, MIG_NODE)
    env.running("all-of-them")
    wait_for(lambda: ("default", "all-of-them") in env.listing(MIG_NODE), what="listed")
    held = env.listing(MIG_NODE)[("default", "all-of-them")]["nvidia.com/gpu"]
    assert whole in held and len(set(held)) == full
    # A restart keeps every assignment (the checkpoint) and the file as it was.
    listing = env.listing(MIG_NODE)
    stop_server(env.server)
    env.start()
    env.running("all-of-them", "slice")
    time.sleep(1.0)
    assert env.listing(MIG_NODE) == listing


def test_fleet_labels_are_registered_and_bad_ones_refused(env):
    labels = env.core.read_node(SHARED_NODE).metadata.labels
    assert {k: labels.get(k) for k in EXTRA_LABELS} == EXTRA_LABELS
    assert labels["kubernetes.io/hostname"] == SHARED_NODE
    for bad, word in (
        ({"zone": "eu west"}, "zone"),
        ({"-bad": "x"}, "-bad"),
        ({"node-role.kubernetes.io/gpu": ""}, "allowed prefix"),
        ({"a": 3}, "strings"),
    ):
        with pytest.raises(ValueError, match="node n1") as caught:
            fleet.manifest_labels({"name": "n1", "labels": bad})
        assert word in str(caught.value)
    path = env.root / "bad-fleet.json"
    path.write_text(json.dumps({"nodes": [{"name": "n2", "labels": {"k": "v v"}}]}))
    with pytest.raises(ValueError, match="node n2: label k="):
        fleet.read_manifest(str(path))


def _node(allocatable, labels=None):
    return {
        "metadata": {"name": "n", "labels": labels or {}},
        "status": {"allocatable": allocatable},
    }


def _gpu(uuid, migs=(), healthy=True):
    devices = [{"profile": p, "uuid": u} for p, u in migs]
    return {"uuid": uuid, "healthy": healthy, "mig_enabled": bool(migs), "mig_devices": devices}


def test_advertised_ids_follow_the_strategy_sharing_and_health():
    from gpuops_kubeapi.sim.podresources import advertised

    view = {
        "gpus": [
            _gpu("GPU-a", [("1g.10gb", "MIG-1"), ("1g.10gb", "MIG-2")]),
            _gpu("GPU-b", [("2g.20gb", "MIG-3")]),
        ]
    }
    single = advertised(_node({"nvidia.com/gpu": "3", "cpu": "8"}), view)
    assert single == {"nvidia.com/gpu": ["MIG-1", "MIG-2", "MIG-3"]}
    mixed = advertised(
        _node(
            {"nvidia.com/mig-1g.10gb": "2", "nvidia.com/mig-2g.20gb": "1"},
            {"nvidia.com/mig.strategy": "mixed"},
        ),
        view,
    )
    assert mixed == {
        "nvidia.com/mig-1g.10gb": ["MIG-1", "MIG-2"],
        "nvidia.com/mig-2g.20gb": ["MIG-3"],
    }
    plain = {"gpus": [_gpu("GPU-a"), _gpu("GPU-b", healthy=False), _gpu("GPU-c")]}
    shared = advertised(_node({"nvidia.com/gpu.shared": "6"}), plain)
    assert shared == {
        "nvidia.com/gpu.shared": [
            "GPU-a::0",
            "GPU-a::1",
            "GPU-a::2",
            "GPU-c::0",
            "GPU-c::1",
            "GPU-c::2",
        ]
    }
    # One fewer advertised (sandbox.gpuops.io/underreport-gpus): the last ID is not offered.
    assert advertised(_node({"nvidia.com/gpu": "1"}), plain) == {"nvidia.com/gpu": ["GPU-a"]}
