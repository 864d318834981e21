"""playbooks/upgrade_driver.yml: a rolling driver upgrade against sandbox hosts.

Real ansible-playbook, real kubernetes.core modules against the Kubernetes API stand-in (cordon,
eviction through PodDisruptionBudgets, uncordon), the NVML simulator for the hosts (the simulated
reboot brings a host back with the new driver: host tree and NVML), and the Slurm stand-in
(sandbox/slurm) for scontrol/squeue. The upgrade step itself is the sandbox task file
(playbooks/tasks/upgrade_driver_sandbox.yml): nothing is installed on this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import yaml
from conftest import REPO_ROOT, fleet_up, run_playbook

PLAYBOOK = REPO_ROOT / "playbooks" / "upgrade_driver.yml"
VARS = REPO_ROOT / "tests" / "integration" / "vars" / "upgrade_sandbox.yml"
SLURM = REPO_ROOT / "sandbox" / "slurm" / "slurm_standin.py"
HOSTS = ["gpu-a100-01", "gpu-a100-02", "gpu-h100-01", "gpu-h100-02"]  # inventory order = batch order
SLURM_HOSTS = ["gpu-a100-01", "gpu-a100-02"]
TARGET = "570.133.20"
NAMESPACE = "ml"


# --------------------------------------------------------------------------- helpers
def host_dir(sandbox, host):
    return sandbox["dir"] / "hosts" / host


def loaded_version(sandbox, host):
    """What the host's kernel says is loaded (the simulated /sys/module/nvidia/version)."""
    path = host_dir(sandbox, host) / "root" / "sys" / "module" / "nvidia" / "version"
    return path.read_text().strip() if path.exists() else None


def nvml_version(sandbox, host):
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO_ROOT / "sandbox" / "python"),
        GPUOPS_NVML_SIM_FIXTURE=str(host_dir(sandbox, host) / "fixture.yml"),
        GPUOPS_NVML_SIM_STATE=str(host_dir(sandbox, host) / "nvml-state.json"),
    )
    code = "import pynvml; pynvml.nvmlInit(); print(pynvml.nvmlSystemGetDriverVersion())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def slurm(sandbox, *args, check=True):
    env = dict(os.environ, GPUOPS_SLURM_STATE=str(sandbox["dir"] / "slurm" / "state.json"))
    return subprocess.run(
        [sys.executable, str(SLURM), *args], env=env, capture_output=True, text=True, check=check, timeout=30
    )


def slurm_state(sandbox, node):
    out = slurm(sandbox, "scontrol", "show", "node", node).stdout
    state = next(word for word in out.split() if word.startswith("State="))
    return state.split("=", 1)[1]


@pytest.fixture
def fleet(sandbox, kube, tmp_path):
    """The four GPU hosts with host-local fixtures, Slurm on two of them, a workload on each node."""
    original = {}
    for host in HOSTS:
        hdir = host_dir(sandbox, host)
        local = hdir / "fixture.yml"
        shutil.copyfile(fleet_up.fixture_path(sandbox["fixtures"][host]), local)
        state = str(hdir / "nvml-state.json")
        fleet_up.sim("reset", "--fixture", str(local), "--state", state, "--host", host)
        fleet_up.sim("render", "--fixture", str(local), "--root", str(hdir / "root"), "--host", host)
        original[host] = loaded_version(sandbox, host)
        assert original[host] and original[host] != TARGET
    (sandbox["dir"] / "slurm").mkdir()
    slurm(sandbox, "admin", "init", *[arg for host in SLURM_HOSTS for arg in ("--node", host)])

    extra = tmp_path / "upgrade-hosts.yml"
    extra.write_text(yaml.safe_dump({"all": {"hosts": {host: {"gpuops_slurm_node": True} for host in SLURM_HOSTS}}}))

    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    apps = client.AppsV1Api(kube.api_client())
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    # Owners the pods below name (what k8s_drain looks at), kept inert: the stand-in runs the
    # replicaset and daemonset controllers, so these select no pod and place none, and the
    # test's own pods (one per host) stay as created.
    rs = apps.create_namespaced_replica_set(
        NAMESPACE,
        {
            "metadata": {"name": "train"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "train-owner"}},
                "template": {
                    "metadata": {"labels": {"app": "train-owner"}},
                    "spec": {"containers": [{"name": "c", "image": "train:1"}]},
                },
            },
        },
    )
    ds = apps.create_namespaced_daemon_set(
        NAMESPACE,
        {
            "metadata": {"name": "dcgm"},
            "spec": {
                "selector": {"matchLabels": {"app": "dcgm-owner"}},
                "template": {
                    "metadata": {"labels": {"app": "dcgm-owner"}},
                    "spec": {
                        "nodeSelector": {"sandbox.gpuops.io/no-such-node": "true"},
                        "containers": [{"name": "c", "image": "dcgm:1"}],
                    },
                },
            },
        },
    )

    def owner(obj, kind):
        return [{"apiVersion": "apps/v1", "kind": kind, "name": obj.metadata.name, "uid": obj.metadata.uid}]

    for host in HOSTS:
        for name, labels, owners in (
            (f"train-{host}", {"app": "train", "host": host}, owner(rs, "ReplicaSet")),
            (f"dcgm-{host}", {"app": "dcgm"}, owner(ds, "DaemonSet")),
        ):
            core.create_namespaced_pod(
                NAMESPACE,
                {
                    "metadata": {"name": name, "labels": labels, "ownerReferences": owners},
                    "spec": {"nodeName": host, "containers": [{"name": "c", "image": "x:1"}]},
                },
            )
    kube.wait_for(
        lambda: all(p.status.phase == "Running" for p in core.list_namespaced_pod(NAMESPACE).items),
        message="the scheduler controller did not start the pods",
    )
    return {"core": core, "extra": extra, "original": original, "kube": kube}


def upgrade(sandbox, fleet, *extra_args, hosts=None):
    hosts = hosts or [*HOSTS, "cpu-01"]
    env = dict(sandbox["env"], **fleet["kube"].env)
    run = run_playbook(
        PLAYBOOK,
        "-i",
        str(fleet["extra"]),
        "-e",
        f"@{VARS}",
        "-e",
        f"upgrade_driver_version={TARGET}",
        "--limit",
        ",".join(hosts),
        *extra_args,
        env=env,
    )
    logs = sorted(sandbox["dir"].parent.glob("upgrade-run-*.log"))
    (sandbox["dir"].parent / f"upgrade-run-{len(logs) + 1}.log").write_text(run.stdout + run.stderr)
    return run


def node(fleet, host):
    return fleet["core"].read_node(host)


def pods_on(fleet, host):
    pods = fleet["core"].list_pod_for_all_namespaces(field_selector=f"spec.nodeName={host}").items
    return sorted(p.metadata.name for p in pods)


class NodeWatch:
    """Records every change of a Node's spec.unschedulable while a playbook runs."""

    def __init__(self, fleet):
        from kubernetes import watch

        self.events: list[tuple[str, bool]] = []
        self._watch = watch.Watch()
        self._core = fleet["core"]
        self._last: dict[str, bool] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stopped = False

    def _run(self):
        try:
            for event in self._watch.stream(self._core.list_node, timeout_seconds=600):
                name = event["object"].metadata.name
                value = bool(event["object"].spec.unschedulable)
                if self._last.get(name, value) != value:
                    self.events.append((name, value))
                self._last[name] = value
        except Exception as exc:  # noqa: BLE001 - a broken watch must fail the test, not vanish
            if not self._stopped:
                self.events.append(("watch failed", repr(exc)))

    def __enter__(self):
        self._thread.start()
        time.sleep(0.5)  # initial ADDED events
        return self

    def __exit__(self, *exc):
        time.sleep(0.5)
        self._stopped = True
        self._watch.stop()
        self._thread.join(timeout=10)


# --------------------------------------------------------------------------- tests
def test_rolling_upgrade_drains_one_host_at_a_time_and_rerun_changes_nothing(sandbox, fleet):
    # A job on a Slurm node (ends a few seconds after the real run starts): the playbook must wait
    # for it before installing.
    slurm(sandbox, "admin", "submit", "--node", "gpu-a100-01")
    # An administrator's cordon on another node is theirs: the playbook drains it, upgrades it and
    # leaves it cordoned.
    fleet["core"].patch_node("gpu-h100-02", {"spec": {"unschedulable": True}})

    # Check mode: the plan, and no change anywhere.
    with NodeWatch(fleet) as watch:
        check = upgrade(sandbox, fleet, "--check")
    assert check.rc == 0, check
    assert all(counts["changed"] == 0 for counts in check.recap.values()), check.recap
    assert watch.events == []
    for host in HOSTS:
        assert f"{host}: {fleet['original'][host]} (loaded) -> {TARGET}" in check.stdout
        assert loaded_version(sandbox, host) == fleet["original"][host]
        assert f"train-{host}" in pods_on(fleet, host)
    assert slurm_state(sandbox, "gpu-a100-01") == "ALLOCATED"

    # The job ends 2 s after the playbook drained its node, not before: the install must follow.
    job_end = {}

    def end_job_after_drain():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            state = slurm_state(sandbox, "gpu-a100-01")
            if "DRAIN" in state:
                job_end["seen"] = state
                time.sleep(2)
                job_end["at"] = time.time()
                slurm(sandbox, "admin", "end", "--job", "1001")
                return
            time.sleep(0.3)

    ender = threading.Thread(target=end_job_after_drain, daemon=True)
    ender.start()
    with NodeWatch(fleet) as watch:
        run = upgrade(sandbox, fleet)
    ender.join(timeout=10)
    assert run.rc == 0, run
    assert job_end.get("seen") == "ALLOCATED+DRAIN"  # drained while the job still ran
    for host in HOSTS:
        assert loaded_version(sandbox, host) == TARGET, host
        assert nvml_version(sandbox, host) == TARGET, host
        assert pods_on(fleet, host) == [f"dcgm-{host}"], host  # workload evicted, DaemonSet pod left
        annotations = node(fleet, host).metadata.annotations or {}
        assert "gpuops.io/cordoned-by" not in annotations
    assert [bool(node(fleet, h).spec.unschedulable) for h in HOSTS] == [False, False, False, True]
    # One host at a time: each cordon is undone before the next host's starts.
    assert watch.events == [
        ("gpu-a100-01", True),
        ("gpu-a100-01", False),
        ("gpu-a100-02", True),
        ("gpu-a100-02", False),
        ("gpu-h100-01", True),
        ("gpu-h100-01", False),
    ], watch.events
    # The Slurm nodes were drained and resumed; the install came after the job had ended.
    assert [slurm_state(sandbox, h) for h in SLURM_HOSTS] == ["IDLE", "IDLE"]
    installed = host_dir(sandbox, "gpu-a100-01") / "installed-driver-version"
    assert installed.stat().st_mtime >= job_end["at"]
    # The host without a GPU was skipped without touching its node.
    assert run.recap["cpu-01"]["changed"] == 0
    assert "cpu-01: no NVIDIA GPU, skipped" in run.stdout
    for host in HOSTS:
        assert f"{host}: {fleet['original'][host]} -> {TARGET}" in run.stdout
    assert "rebooted: yes" in run.stdout

    with NodeWatch(fleet) as watch:
        again = upgrade(sandbox, fleet)
    assert again.rc == 0, again
    assert all(counts["changed"] == 0 for counts in again.recap.values()), again.recap
    assert watch.events == []  # nobody drained again
    assert bool(node(fleet, "gpu-h100-02").spec.unschedulable)  # still the administrator's


def test_pdb_blocking_eviction_fails_that_host_and_stops_the_rollout(sandbox, fleet):
    from kubernetes import client

    first, rest = HOSTS[0], HOSTS[1:]
    client.PolicyV1Api(fleet["kube"].api_client()).create_namespaced_pod_disruption_budget(
        NAMESPACE,
        {
            "metadata": {"name": f"train-{first}"},
            "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"host": first}}},
        },
    )
    run = upgrade(sandbox, fleet)
    assert run.rc != 0, run
    assert "WARNING: these PodDisruptionBudgets allow no disruption now" in run.stdout
    assert f"ml/train-{first} (node {first}, pod train-{first})" in run.stdout
    assert f"{first}: driver upgrade to {TARGET} failed at" in run.stdout
    assert "disruption budget" in run.stdout
    assert f"Kubernetes node {first} stays cordoned" in run.stdout
    # The blocked host: cordoned, its pod still there, its driver unchanged, Slurm not drained
    # (the Kubernetes drain comes first and failed).
    assert node(fleet, first).spec.unschedulable
    assert (node(fleet, first).metadata.annotations or {}).get("gpuops.io/cordoned-by") == "upgrade_driver"
    assert f"train-{first}" in pods_on(fleet, first)
    assert loaded_version(sandbox, first) == fleet["original"][first]
    assert slurm_state(sandbox, first) == "IDLE"
    # The others: untouched.
    for host in rest:
        assert loaded_version(sandbox, host) == fleet["original"][host], host
        assert not node(fleet, host).spec.unschedulable, host
        assert pods_on(fleet, host) == sorted([f"dcgm-{host}", f"train-{host}"]), host
        assert "gpuops.io/cordoned-by" not in (node(fleet, host).metadata.annotations or {})
        assert run.recap[host]["changed"] == 0


def test_strict_preflight_stops_before_anything_changes(sandbox, fleet):
    from kubernetes import client

    client.PolicyV1Api(fleet["kube"].api_client()).create_namespaced_pod_disruption_budget(
        NAMESPACE,
        {
            "metadata": {"name": "all-train"},
            "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "train"}}},
        },
    )
    run = upgrade(sandbox, fleet, "-e", "upgrade_driver_preflight_strict=true")
    assert run.rc != 0, run
    assert "upgrade_driver_preflight_strict is true" in run.stdout
    for host in HOSTS:
        assert loaded_version(sandbox, host) == fleet["original"][host]
        assert not node(fleet, host).spec.unschedulable
        assert f"train-{host}" in pods_on(fleet, host)


def test_failure_mid_rollout_leaves_later_hosts_untouched_and_rerun_finishes(sandbox, fleet):
    # Host 2 reboots but its new module does not load: verification must catch it.
    fault = host_dir(sandbox, "gpu-a100-02") / "upgrade-fault"
    fault.write_text("module\n")
    run = upgrade(sandbox, fleet)
    assert run.rc != 0, run
    assert (
        f"gpu-a100-02: after the upgrade the driver is {fleet['original']['gpu-a100-02']} (loaded), not {TARGET}"
        in run.stdout
    )
    assert "Slurm node gpu-a100-02 stays drained" in run.stdout
    assert node(fleet, "gpu-a100-02").spec.unschedulable
    assert slurm_state(sandbox, "gpu-a100-02") == "IDLE+DRAIN"
    for host in HOSTS[2:]:
        assert loaded_version(sandbox, host) == fleet["original"][host], host
        assert not node(fleet, host).spec.unschedulable, host
        assert pods_on(fleet, host) == sorted([f"dcgm-{host}", f"train-{host}"]), host

    fault.unlink()
    with NodeWatch(fleet) as watch:
        again = upgrade(sandbox, fleet)
    assert again.rc == 0, again
    for host in HOSTS:
        assert loaded_version(sandbox, host) == TARGET, host
        assert not node(fleet, host).spec.unschedulable, host
    assert again.recap["gpu-a100-01"]["changed"] == 0  # done in the first run, not drained again
    assert ("gpu-a100-01", True) not in watch.events
    # Host 2 was still cordoned from the first run: uncordoned now, not cordoned again.
    assert watch.events[:1] == [("gpu-a100-02", False)], watch.events
    assert slurm_state(sandbox, "gpu-a100-02") == "IDLE"


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "Set the target driver: upgrade_driver_version"),
        (["-e", "upgrade_driver_branch=550"], "the version must belong to\nthe branch"),
        (["-e", "upgrade_driver_serial=0"], "upgrade_driver_serial must be a positive integer"),
    ],
)
def test_bad_input_fails_before_anything_changes(sandbox, extra, message):
    env = sandbox["env"]
    args = ["-e", f"@{VARS}", "--limit", ",".join(HOSTS), *extra]
    if extra:  # a valid target, so that the other input is what fails
        args += ["-e", f"upgrade_driver_version={TARGET}"]
    run = run_playbook(PLAYBOOK, *args, env=env)
    assert run.rc != 0, run
    assert message.replace("\n", " ") in " ".join(run.stdout.split()), run
    assert all(counts["changed"] == 0 for counts in run.recap.values())


def test_local_connection_refuses_the_real_role_without_opt_in(sandbox):
    env = sandbox["env"]
    run = run_playbook(PLAYBOOK, "--limit", "gpu-a100-01", "-e", f"upgrade_driver_version={TARGET}", env=env)
    assert run.rc != 0, run
    assert "uses the local connection" in run.stdout
    assert run.recap["gpu-a100-01"]["changed"] == 0
