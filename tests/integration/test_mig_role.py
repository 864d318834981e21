"""The mig role through ansible-playbook against the sandbox: host mode (NVML simulator, drain via
the Kubernetes API stand-in) and operator mode (the stand-in's mig-manager controller)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import yaml
from conftest import REPO_ROOT, load_fixture, run_playbook

PLAYBOOK = REPO_ROOT / "tests" / "integration" / "playbooks" / "mig_role_apply.yml"
SIM = REPO_ROOT / "sandbox" / "python"
GEOMETRY = yaml.safe_load((SIM / "gpuops_sim" / "data" / "mig_geometry.yml").read_text())["geometries"]
MODELS = yaml.safe_load((SIM / "gpuops_sim" / "data" / "gpu_models.yml").read_text())
GROUP_VARS = REPO_ROOT / "inventories" / "sandbox" / "group_vars"
BALANCED_A100 = {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}


def sim(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "gpuops_sim", *args],
        env=dict(os.environ, PYTHONPATH=str(SIM)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def state_path(sandbox, host):
    return sandbox["dir"] / "hosts" / host / "nvml-state.json"


def layouts(sandbox, host):
    """{gpu index: {"mig": current mode, "layout": {profile name: count}}} from the simulator's state,
    profile names from the simulator's geometry data (not from the collection's catalog)."""
    state = json.loads(sim("show", "--state", str(state_path(sandbox, host))))
    fixture = load_fixture(sandbox["fixtures"][host])
    result = {}
    for index, gpu in enumerate(state["gpus"]):
        geometry = GEOMETRY.get(MODELS[fixture["gpus"][index]["model"]]["mig_geometry"] or "", {})
        names = {p["id"]: p["name"] for p in geometry.get("gpu_instance_profiles", [])}
        counts = Counter(names[gi["profile_id"]] for gi in gpu["gpu_instances"] if gi["compute_instances"])
        result[index] = {"mig": gpu["mig"]["current"], "layout": dict(counts)}
    return result


def overlay(tmp_path, host_vars):
    """An extra inventory source holding host variables (they beat the sandbox's group_vars)."""
    path = tmp_path / "overlay.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": host_vars}}))
    return ["-i", str(path)]


def env_of(sandbox, kube=None):
    env = dict(sandbox["env"])
    if kube is not None:
        env.update(kube.env)
    return env


class NodeWatcher:
    """Records every spec.unschedulable value a node goes through while a playbook runs."""

    def __init__(self, kube, name):
        from kubernetes import client

        self.core = client.CoreV1Api(kube.api_client())
        self.name = name
        self.seen = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            value = bool(self.core.read_node(self.name).spec.unschedulable)
            if not self.seen or self.seen[-1] != value:
                self.seen.append(value)
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def make_pod(kube, node, name, labels=None):
    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }
    core.create_namespaced_pod("default", body)
    kube.wait_for(
        lambda: core.read_namespaced_pod(name, "default").status.phase == "Running", message=f"pod {name} not Running"
    )
    return core


def pod_exists(core, name):
    from kubernetes.client.exceptions import ApiException

    try:
        core.read_namespaced_pod(name, "default")
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def systemd_words(line, command=True):
    """Split a unit's value the way systemd does (double quotes, C escapes, %%; $$ in command lines)."""
    words, word, i, quoted, started = [], [], 0, False, False
    while i < len(line):
        ch = line[i]
        if quoted:
            if ch == "\\":
                i += 1
                word.append(line[i])
            elif ch == '"':
                quoted = False
            else:
                word.append(ch)
        elif ch == '"':
            quoted, started = True, True
        elif ch == " ":
            if started:
                words.append("".join(word))
            word, started = [], False
        else:
            word.append(ch)
            started = True
        i += 1
    if started:
        words.append("".join(word))
    words = [w.replace("%%", "%") for w in words]
    return [w.replace("$$", "$") for w in words] if command else words


def unit_command(unit):
    """(ExecStart argv, Environment) of a unit file's text."""
    lines = unit.splitlines()
    argv = systemd_words(next(line for line in lines if line.startswith("ExecStart="))[len("ExecStart=") :])
    environment = {}
    for line in lines:
        if line.startswith("Environment="):
            (assignment,) = systemd_words(line[len("Environment=") :], command=False)
            key, value = assignment.split("=", 1)
            environment[key] = value
    return argv, environment


def test_sandbox_group_layouts_are_what_the_tests_expect():
    a100 = yaml.safe_load((GROUP_VARS / "ng_a100_train.yml").read_text())
    assert a100["mig_mode"] == "host" and a100["mig_layout"] == BALANCED_A100


def test_host_mode_check_then_drain_apply_verify_uncordon_then_idempotent(sandbox, kube):
    hosts = ("gpu-a100-01", "gpu-a100-02")
    before = {h: layouts(sandbox, h) for h in hosts}
    assert all(not g["mig"] for h in hosts for g in before[h].values())
    core = make_pod(kube, "gpu-a100-01", "trainer")
    # Bare test pods have no controller: the drain needs force for them.
    args = ["-l", "ng_a100_train,cpu-01", "-e", "mig_drain_force=true"]

    # Check mode: reports changes, changes nothing (no drain, no files, no MIG).
    states = {h: state_path(sandbox, h).read_bytes() for h in hosts}
    check = run_playbook(PLAYBOOK, "--check", *args, env=env_of(sandbox, kube))
    assert check.rc == 0, check
    assert all(check.recap[h]["changed"] > 0 for h in hosts)
    assert {h: state_path(sandbox, h).read_bytes() for h in hosts} == states
    assert not (sandbox["dir"] / "hosts" / "gpu-a100-01" / "root" / "etc" / "gpuops").exists()
    assert pod_exists(core, "trainer")

    with NodeWatcher(kube, "gpu-a100-01") as watcher:
        run = run_playbook(PLAYBOOK, *args, env=env_of(sandbox, kube))
    assert run.rc == 0, run
    assert all(run.recap[h]["failed"] == 0 and run.recap[h]["changed"] > 0 for h in hosts)
    after = {h: layouts(sandbox, h) for h in hosts}
    assert after["gpu-a100-01"] == {i: {"mig": True, "layout": BALANCED_A100} for i in range(8)}
    # gpu-a100-02: its lost GPU is skipped (and said so), the seven others are configured.
    lost = [i for i, g in enumerate(load_fixture(sandbox["fixtures"]["gpu-a100-02"])["gpus"]) if g.get("faults")]
    assert lost == [3]
    assert "GPU 3 (name unknown): skipped, NVML cannot read it" in run.stdout
    assert {i: g for i, g in after["gpu-a100-02"].items() if i != 3} == {
        i: {"mig": True, "layout": BALANCED_A100} for i in range(8) if i != 3
    }
    # Cordoned during the change, schedulable again at the end; the pod was evicted.
    assert watcher.seen == [False, True, False], watcher.seen
    assert not pod_exists(core, "trainer")
    root = sandbox["dir"] / "hosts" / "gpu-a100-01" / "root"
    unit = (root / "etc/systemd/system/gpuops-mig-apply.service").read_text()
    assert "Before=containerd.service docker.service kubelet.service slurmd.service" in unit
    assert os.readlink(root / "etc/systemd/system/multi-user.target.wants/gpuops-mig-apply.service") == (
        "/etc/systemd/system/gpuops-mig-apply.service"
    )
    layout_file = yaml.safe_load((root / "etc/gpuops/mig-layout.yaml").read_text())
    ((name, entries),) = layout_file["mig-configs"].items()
    assert entries == [{"devices": "all", "mig-enabled": True, "mig-devices": BALANCED_A100}]
    argv, environment = unit_command(unit)
    assert argv[argv.index("--config-name") + 1] == name
    assert argv[argv.index("--gpus") + 1] == "all"

    # Converged: nothing changes and a new pod on the node is left alone (no drain).
    make_pod(kube, "gpu-a100-01", "inference")
    with NodeWatcher(kube, "gpu-a100-01") as watcher:
        again = run_playbook(PLAYBOOK, *args, env=env_of(sandbox, kube))
    assert again.rc == 0, again
    assert all(again.recap[h]["changed"] == 0 for h in hosts), [
        line for line in again.stdout.splitlines() if "changed" in line
    ]
    assert watcher.seen == [False]
    assert pod_exists(core, "inference")
    assert {h: layouts(sandbox, h) for h in hosts} == after

    # Boot: the instances are gone after a (simulated) reboot; the unit's own command, run with
    # the unit's environment, brings the same layout back.
    sim("reboot", "--state", str(state_path(sandbox, "gpu-a100-01")))
    assert all(not g["layout"] for g in layouts(sandbox, "gpu-a100-01").values())
    # The paths are the host's (under its root here); the unit's interpreter is this Python.
    argv = [sys.executable] + [
        str(root) + a if a.startswith(("/usr/local/lib/gpuops", "/etc/gpuops")) else a for a in argv[1:]
    ]
    boot = subprocess.run(argv, env=dict(os.environ, **environment), capture_output=True, text=True, check=False)
    assert boot.returncode == 0, boot.stderr
    assert layouts(sandbox, "gpu-a100-01") == after["gpu-a100-01"]


def test_pdb_that_blocks_eviction_fails_before_mig_changes(sandbox, kube):
    from kubernetes import client

    host = "gpu-a100-01"
    make_pod(kube, host, "guarded", labels={"app": "guarded"})
    client.PolicyV1Api(kube.api_client()).create_namespaced_pod_disruption_budget(
        "default",
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "guarded"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
        },
    )
    before = layouts(sandbox, host)
    run = run_playbook(PLAYBOOK, "-l", f"{host},cpu-01", "-e", "mig_drain_timeout=4", env=env_of(sandbox, kube))
    assert run.rc != 0, run
    assert "Draining gpu-a100-01 failed, MIG left unchanged" in run.stdout, run
    assert layouts(sandbox, host) == before
    core = client.CoreV1Api(kube.api_client())
    assert pod_exists(core, "guarded")
    assert not core.read_node(host).spec.unschedulable  # uncordoned again


def test_invalid_layout_on_one_host_changes_no_host(sandbox, tmp_path):
    before = {h: layouts(sandbox, h) for h in ("gpu-a100-01", "gpu-h100-01")}
    extra = overlay(
        tmp_path,
        {
            "gpu-h100-01": {"mig_mode": "host", "mig_layout": {"3g.40gb": 3}},
            "gpu-a100-01": {"gpuops_kube_node": False},
        },
    )
    run = run_playbook(PLAYBOOK, "-l", "gpu-a100-01,gpu-h100-01", *extra, env=sandbox["env"])
    assert run.rc != 0
    assert "gpu-h100-01: mig_layout on GPU 0 (NVIDIA H100 80GB HBM3): layout.3g.40gb: count 3 is over the maximum" in (
        run.stdout
    ), run
    assert {h: layouts(sandbox, h) for h in before} == before
    assert not (sandbox["dir"] / "hosts" / "gpu-a100-01" / "root" / "etc" / "gpuops").exists()


@pytest.fixture
def cluster_policy(kube):
    """A ClusterPolicy as the GPU Operator role leaves it (mig-manager and device plugin on)."""
    from kubernetes import client

    client.CoreV1Api(kube.api_client()).create_namespace({"metadata": {"name": "gpu-operator"}})
    spec = {
        key: {}
        for key in (
            "operator",
            "daemonsets",
            "dcgm",
            "dcgmExporter",
            "devicePlugin",
            "gfd",
            "nodeStatusExporter",
            "toolkit",
        )
    }
    spec.update(driver={"enabled": False}, migManager={"enabled": True}, mig={"strategy": "mixed"})
    resource = kube.dynamic().resources.get(api_version="nvidia.com/v1", kind="ClusterPolicy")
    resource.create(
        body={
            "apiVersion": "nvidia.com/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "cluster-policy"},
            "spec": spec,
        }
    )
    return resource


def test_operator_mode_end_to_end(sandbox, kube, cluster_policy):
    from kubernetes import client

    group = yaml.safe_load((GROUP_VARS / "ng_h100_infer.yml").read_text())
    assert group["mig_mode"] == "operator"
    run = run_playbook(PLAYBOOK, "-l", "gpu-h100-01,cpu-01", env=env_of(sandbox, kube))
    assert run.rc == 0, run
    core = client.CoreV1Api(kube.api_client())
    cm = core.read_namespaced_config_map("gpuops-mig-parted-config", "gpu-operator")
    config = yaml.safe_load(cm.data["config.yaml"])
    node = core.read_node("gpu-h100-01")
    name = node.metadata.labels["nvidia.com/mig.config"]
    assert node.metadata.labels["nvidia.com/mig.config.state"] == "success"
    assert config["mig-configs"][name][0]["mig-devices"] == group["mig_layout"]
    assert config["mig-configs"][name][1] == {"devices": [3], "mig-enabled": False}
    assert "all-disabled" in config["mig-configs"]
    policy = cluster_policy.get(name="cluster-policy").to_dict()
    assert policy["spec"]["migManager"]["config"] == {"name": "gpuops-mig-parted-config", "default": "all-disabled"}
    result = layouts(sandbox, "gpu-h100-01")
    assert all(g["mig"] and g["layout"] == group["mig_layout"] for i, g in result.items() if i != 3), result
    assert not result[3]["mig"]

    again = run_playbook(PLAYBOOK, "-l", "gpu-h100-01,cpu-01", env=env_of(sandbox, kube))
    assert again.rc == 0, again
    assert sum(r["changed"] for r in again.recap.values()) == 0, again


def test_operator_mode_failure_names_the_node_state(sandbox, kube, cluster_policy, tmp_path):
    # GPU 3 of gpu-h100-02 runs a process with MIG off: enabling MIG there needs a reset that the
    # process blocks, so mig-manager fails that node.
    fixture = load_fixture(sandbox["fixtures"]["gpu-h100-02"])
    assert fixture["gpus"][3]["processes"] and not fixture["gpus"][3]["mig"]["current"]
    extra = overlay(
        tmp_path, {"gpu-h100-02": {"mig_mode": "operator", "mig_gpu_layouts": [], "mig_operator_wait_timeout": 30}}
    )
    run = run_playbook(PLAYBOOK, "-l", "gpu-h100-02,cpu-01", *extra, env=env_of(sandbox, kube))
    assert run.rc != 0, run
    assert "MIG config not applied: failed" in run.stdout, run
    assert "'node': 'gpu-h100-02'" in run.stdout and "'state': 'failed'" in run.stdout
    assert "sandbox.gpuops.io/mig.config.error" in run.stdout
