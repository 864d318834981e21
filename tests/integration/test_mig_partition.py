"""mig_partition through ansible-playbook against the NVML simulator.

Expected layouts come from the inputs (the layout given, the mig-parted config file, the
fixtures), never from the module's own planner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, fleet_up, load_fixture, run_playbook

PLAYBOOK = REPO_ROOT / "tests" / "integration" / "playbooks" / "mig_partition.yml"
SHARED = Path(os.environ.get("GPUOPS_SHARED_DIR", REPO_ROOT.parent / "shared"))
OPERATOR_CONFIG = SHARED / "reference" / "gpu-operator-default-mig-parted-config.yaml"
BALANCED_A100 = {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}


def state_path(sandbox, host):
    return sandbox["dir"] / "hosts" / host / "nvml-state.json"


def sim_state(sandbox, host):
    return json.loads(state_path(sandbox, host).read_text())


def mig(sandbox, tmp_path, host, *extra, inventory=None, **options):
    """Run the playbook with mig_partition_<option> extra vars; (run, module result)."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    result_file = out / f"{host}.json"
    result_file.unlink(missing_ok=True)
    variables = {"target": host, "out_dir": str(out)}
    variables.update({"mig_partition_" + key: value for key, value in options.items()})
    kwargs = {"env": sandbox["env"]}
    if inventory is not None:
        kwargs["inventory"] = inventory
    run = run_playbook(PLAYBOOK, "-e", json.dumps(variables), *extra, **kwargs)
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    return run, result


def layout_of(gpu_entry):
    return dict(Counter(i["profile"] for i in gpu_entry["instances"]))


def gi_map(state, index):
    return {(gi["profile_id"], gi["start"]): (gi["id"], gi["uid"]) for gi in state["gpus"][index]["gpu_instances"]}


def test_apply_rerun_and_check_mode(sandbox, tmp_path):
    host = "gpu-a100-01"
    before = state_path(sandbox, host).read_bytes()
    run, result = mig(sandbox, tmp_path, host, "--check", "--diff", layout=BALANCED_A100)
    assert run.rc == 0, run
    assert result["changed"] is True
    assert state_path(sandbox, host).read_bytes() == before  # check mode: no NVML mutation
    assert all(p["create"] for p in result["plan"])
    assert "MIG on" in result["diff"]["after"] and "MIG off" in result["diff"]["before"]

    run, result = mig(sandbox, tmp_path, host, layout=BALANCED_A100)
    assert run.rc == 0, run
    assert result["changed"] is True and run.recap[host]["changed"] >= 1
    gpus = load_fixture(sandbox["fixtures"][host])["gpus"]
    assert len(result["gpus"]) == len(gpus)
    for gpu in result["gpus"]:
        assert gpu["mig"] == {"current": True, "pending": True}  # NVML: pending = mode after a reset
        assert layout_of(gpu) == BALANCED_A100
        assert len(gpu["devices"]) == sum(BALANCED_A100.values())
        assert all(d["uuid"].startswith("MIG-") for d in gpu["devices"])
    state = sim_state(sandbox, host)
    assert all(len(g["gpu_instances"]) == 4 for g in state["gpus"])

    after_apply = state_path(sandbox, host).read_bytes()
    run, result = mig(sandbox, tmp_path, host, layout=BALANCED_A100)
    assert run.rc == 0, run
    assert result["changed"] is False
    assert state_path(sandbox, host).read_bytes() == after_apply


def test_changing_one_gpu_leaves_the_others_and_matching_instances_untouched(sandbox, tmp_path):
    host = "gpu-a100-01"
    run, first = mig(sandbox, tmp_path, host, layout={"3g.20gb": 1, "1g.5gb": 2})
    assert run.rc == 0, run
    before = sim_state(sandbox, host)
    more = {"3g.20gb": 1, "1g.5gb": 2, "2g.10gb": 1}
    run, result = mig(sandbox, tmp_path, host, gpus=["2"], layout=more)
    assert run.rc == 0, run
    assert result["changed"] is True
    assert [g["index"] for g in result["gpus"]] == [2]
    assert layout_of(result["gpus"][0]) == more
    after = sim_state(sandbox, host)
    for index in range(len(before["gpus"])):
        if index != 2:
            assert after["gpus"][index] == before["gpus"][index]
    # On GPU 2 every old GPU instance is still there with the same id and identity ...
    old, new = gi_map(before, 2), gi_map(after, 2)
    assert all(new[key] == value for key, value in old.items())
    assert len(new) == len(old) + 1
    # ... and the MIG devices users hold keep their UUIDs.
    old_uuids = {d["uuid"] for d in first["gpus"][2]["devices"]}
    assert old_uuids < {d["uuid"] for d in result["gpus"][0]["devices"]}


def test_busy_instance_is_refused_then_force_stops_its_process(sandbox, tmp_path):
    host = "gpu-h100-02"
    fixture_gpu0 = load_fixture(sandbox["fixtures"][host])["gpus"][0]
    before = state_path(sandbox, host).read_bytes()
    run, result = mig(sandbox, tmp_path, host, gpus=["0"], layout={"7g.80gb": 1})
    assert run.rc != 0, run
    uuid = sim_uuid(sandbox, host, 0)
    pid = fixture_gpu0["processes"][0]["pid"]
    for needle in (uuid, "3g.40gb", "placement start 4", "pid %d" % pid, "force"):
        assert needle in result["msg"], (needle, result["msg"])
    assert state_path(sandbox, host).read_bytes() == before

    # force: a real process stands for the job, on GPU 2 (MIG on, empty in the fixture).
    run, result = mig(sandbox, tmp_path, host, gpus=["2"], layout={"3g.40gb": 2})
    assert run.rc == 0, run
    gi_id = result["gpus"][0]["instances"][0]["gpu_instance_id"]
    job = subprocess.Popen(["sleep", "300"])  # noqa: S603,S607
    try:
        fleet_up.sim(
            "spawn", "--state", str(state_path(sandbox, host)), "--gpu", "2", "--pid", str(job.pid),
            "--name", "sleep", "--gpu-instance", str(gi_id), "--track",
        )  # fmt: skip
        run, result = mig(sandbox, tmp_path, host, gpus=["2"], layout={"7g.80gb": 1})
        assert run.rc != 0 and "pid %d (sleep)" % job.pid in result["msg"], run
        assert job.poll() is None
        run, result = mig(sandbox, tmp_path, host, gpus=["2"], layout={"7g.80gb": 1}, force=True, force_timeout=10)
        assert run.rc == 0, run
        assert job.wait(timeout=10) is not None  # it was stopped
        assert layout_of(result["gpus"][0]) == {"7g.80gb": 1}
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()


def sim_uuid(sandbox, host, index):
    summary = json.loads((sandbox["dir"] / "fleet.json").read_text())["hosts"][host]
    fixture = load_fixture(summary["fixture"])
    return fixture["gpus"][index].get("uuid") or derive_uuid(host, fixture["gpus"][index]["bus_id"])


def derive_uuid(host, bus_id):
    sys.path.insert(0, str(REPO_ROOT / "sandbox" / "python"))
    from gpuops_sim.fixture import derive_uuid as derive  # noqa: PLC0415

    return derive(host, bus_id)


@pytest.mark.parametrize("times", [1, 2])
def test_insufficient_resources_mid_apply_rolls_back(sandbox, tmp_path, times):
    host = "gpu-a100-01"
    run, _unused = mig(sandbox, tmp_path, host, gpus=["0"], layout={"1g.5gb": 7})
    assert run.rc == 0, run
    before = sim_state(sandbox, host)["gpus"][0]
    state = str(state_path(sandbox, host))
    fleet_up.sim(
        "inject", "--state", state, "--gpu", "0", "--call", "nvmlDeviceCreateGpuInstanceWithPlacement",
        "--error", "INSUFFICIENT_RESOURCES", "--times", str(times),
    )  # fmt: skip
    run, result = mig(sandbox, tmp_path, host, gpus=["0"], layout=BALANCED_A100)
    assert run.rc != 0, run
    report = result["apply"][0]
    assert report["ok"] is False and report["failed_step"]["action"] == "create_gi"
    assert "Insufficient" in report["error"] or "23" in report["error"], report
    destroyed = [s for s in report["steps"] if s["action"] == "destroy_gi"]
    assert destroyed, report
    after = sim_state(sandbox, host)["gpus"][0]
    placements = sorted((g["profile_id"], g["start"]) for g in after["gpu_instances"])
    if times == 1:
        # Every destroyed instance came back at its placement, with its compute instance.
        assert "rolled back" in result["msg"]
        assert placements == sorted((g["profile_id"], g["start"]) for g in before["gpu_instances"])
        assert all(len(g["compute_instances"]) == 1 for g in after["gpu_instances"])
        run, result = mig(sandbox, tmp_path, host, gpus=["0"], layout=BALANCED_A100)
        assert run.rc == 0 and layout_of(result["gpus"][0]) == BALANCED_A100, run
    else:
        # The first re-create failed too: said loudly, with what the GPU was left with.
        assert "ROLLBACK FAILED" in result["msg"], result["msg"]
        assert report["rollback_failed"][0]["action"] == "create_gi"
        assert "1g.5gb@" in result["msg"]
        assert len(placements) == len(before["gpu_instances"]) - 1


def test_lost_gpu_fails_naming_it_and_the_others_are_configured(sandbox, tmp_path):
    host = "gpu-a100-02"
    fixture = load_fixture(sandbox["fixtures"][host])
    lost = [i for i, g in enumerate(fixture["gpus"]) if any(f["error"] == "GPU_IS_LOST" for f in g.get("faults", []))]
    run, result = mig(sandbox, tmp_path, host, layout=BALANCED_A100)
    assert run.rc != 0, run
    assert [g["index"] for g in result["failed_gpus"]] == lost
    assert "GPU %d" % lost[0] in result["msg"] and "LOST" in result["msg"]
    for gpu in result["gpus"]:
        if gpu["index"] in lost:
            assert gpu["lost"] is True
        else:
            assert layout_of(gpu) == BALANCED_A100


# Without the team's shared/ folder: a config in the GPU Operator's ConfigMap format written here,
# with the all-balanced entries the operator's default config has for these two GPUs.
OWN_OPERATOR_CONFIG = {
    "version": "v1",
    "mig-configs": {
        "all-disabled": [{"devices": "all", "mig-enabled": False}],
        "all-balanced": [
            {
                "device-filter": ["0x20B010DE", "0x20B110DE"],
                "devices": "all",
                "mig-enabled": True,
                "mig-devices": {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1},
            },
            {
                "device-filter": ["0x233010DE", "0x233110DE"],
                "devices": "all",
                "mig-enabled": True,
                "mig-devices": {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1},
            },
        ],
    },
}


def _operator_config_file(tmp_path):
    """The GPU Operator's default mig-parted ConfigMap (upstream, from shared/reference) where it
    is at hand, else one written in the same format."""
    if OPERATOR_CONFIG.exists():
        return OPERATOR_CONFIG
    path = tmp_path / "default-mig-parted-config.yaml"
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "default-mig-parted-config"},
        "data": {"config.yaml": yaml.safe_dump(OWN_OPERATOR_CONFIG, sort_keys=False)},
    }
    path.write_text(yaml.safe_dump(configmap, sort_keys=False))
    return path


def _operator_config(path):
    doc = yaml.safe_load(path.read_text())
    return yaml.safe_load(doc["data"]["config.yaml"]) if doc.get("kind") == "ConfigMap" else doc


def _config_entry(path, config_name, gpu_device_id):
    chosen = None
    for entry in _operator_config(path)["mig-configs"][config_name]:
        filters = entry.get("device-filter")
        filters = [filters] if isinstance(filters, str) else filters
        if not filters or any(int(f.split(":", 1)[0], 16) == gpu_device_id for f in filters):
            chosen = entry
    return chosen


def test_gpu_operator_config_file_is_reused_unchanged(sandbox, tmp_path):
    hosts = {"gpu-a100-01": 0x20B010DE, "gpu-h100-01": 0x233010DE}
    target = ",".join(hosts)
    config_file = _operator_config_file(tmp_path)
    options = {"config_file": str(config_file), "config_name": "all-balanced"}
    run, _unused = mig(sandbox, tmp_path, target, **options)
    assert run.rc == 0, run
    for host, device_id in hosts.items():
        entry = _config_entry(config_file, "all-balanced", device_id)
        result = json.loads((tmp_path / "out" / f"{host}.json").read_text())
        assert result["changed"] is True
        for gpu in result["gpus"]:
            assert gpu["mig"]["current"] is entry["mig-enabled"]
            assert layout_of(gpu) == {k: v for k, v in entry["mig-devices"].items() if v}
    run, _unused = mig(sandbox, tmp_path, target, **options)
    assert run.rc == 0, run
    for host in hosts:
        assert json.loads((tmp_path / "out" / f"{host}.json").read_text())["changed"] is False
    run, result = mig(sandbox, tmp_path, "gpu-a100-01", config_file=str(config_file), config_name="no-such")
    assert run.rc != 0 and "all-balanced" in result["msg"] and "no-such" in result["msg"], run


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        ({"layout": {"3g.40gb": 1}}, ["layout", "3g.40gb", "allowed", "3g.20gb"]),
        (
            {"gpus": ["9"], "layout": BALANCED_A100},
            ["gpus: 9 matches no GPU", "allowed: all, an index (0, 1, 2", "nothing changed"],
        ),
    ],
)
def test_bad_input_fails_before_any_change(sandbox, tmp_path, options, needles):
    host = "gpu-a100-01"
    before = state_path(sandbox, host).read_bytes()
    run, result = mig(sandbox, tmp_path, host, **options)
    assert run.rc != 0, run
    for needle in needles:
        assert needle in result["msg"], (needle, result["msg"])
    assert state_path(sandbox, host).read_bytes() == before


def test_compute_instances_smaller_than_their_gpu_instance(sandbox, tmp_path):
    host = "gpu-a100-01"
    layout = {"3g.20gb": {"count": 2, "compute_instances": {"1c.3g.20gb": 3}}}
    run, result = mig(sandbox, tmp_path, host, gpus=["1"], layout=layout)
    assert run.rc == 0, run
    gpu = result["gpus"][0]
    assert [sorted(c["profile"] for c in i["compute_instances"]) for i in gpu["instances"]] == [["1c.3g.20gb"] * 3] * 2
    assert len(gpu["devices"]) == 6
    run, result = mig(sandbox, tmp_path, host, gpus=["1"], layout=layout)
    assert run.rc == 0 and result["changed"] is False, run
    # Back to one full-size compute instance each: the GPU instances stay, their CIs change.
    run, result = mig(sandbox, tmp_path, host, gpus=["1"], layout={"3g.20gb": 2})
    assert run.rc == 0, run
    assert [[c["profile"] for c in i["compute_instances"]] for i in result["gpus"][0]["instances"]] == [["3g.20gb"]] * 2
    assert not any(s["action"] == "destroy_gi" for s in result["apply"][0]["steps"])


def test_pending_mode_reset_policy_hopper(sandbox, tmp_path):
    host = "gpu-h100-02"
    fixture = load_fixture(sandbox["fixtures"][host])
    index = 3  # MIG off with a full-GPU process in the fixture
    pid = fixture["gpus"][index]["processes"][0]["pid"]
    run, result = mig(sandbox, tmp_path, host, gpus=[str(index)], layout={"7g.80gb": 1})
    assert run.rc == 0, run
    assert result["changed"] is True
    assert result["reset_required"] is True and result["reboot_required"] is False  # Hopper
    assert result["gpus"][0]["mig"] == {"current": False, "pending": True}
    assert result["gpus"][0]["instances"] == []
    run, result = mig(sandbox, tmp_path, host, gpus=[str(index)], layout={"7g.80gb": 1})
    assert run.rc == 0 and result["changed"] is False and result["reset_required"] is True, run

    reset = [sys.executable, "-m", "gpuops_sim", "reset-gpu", "--gpu", "{index}"]
    run, result = mig(
        sandbox, tmp_path, host, gpus=[str(index)], layout={"7g.80gb": 1}, reset_policy="if_idle", reset_command=reset
    )
    assert run.rc == 0 and "skipped: processes" in result["apply"][0]["reset"], run
    fleet_up.sim("kill", "--state", str(state_path(sandbox, host)), "--pid", str(pid))
    run, result = mig(
        sandbox, tmp_path, host, gpus=[str(index)], layout={"7g.80gb": 1}, reset_policy="if_idle", reset_command=reset
    )
    assert run.rc == 0, run
    assert result["changed"] is True and result["reset_required"] is False
    assert result["gpus"][0]["mig"] == {"current": True, "pending": True}
    assert layout_of(result["gpus"][0]) == {"7g.80gb": 1}


def test_pending_mode_on_ampere_also_needs_a_reboot(sandbox, tmp_path):
    host = "gpu-a100-01"
    fleet_up.sim("spawn", "--state", str(state_path(sandbox, host)), "--gpu", "5", "--pid", "777001")
    run, result = mig(sandbox, tmp_path, host, gpus=["5"], layout=BALANCED_A100)
    assert run.rc == 0, run
    assert result["reset_required"] is True and result["reboot_required"] is True
    assert result["gpus"][0]["instances"] == []


def test_gpu_missing_from_the_catalog_uses_nvml_profiles(sandbox, tmp_path):
    """A800 is not in the collection's catalog: profiles and placements come from NVML."""
    host = "gpu-a800-01"
    host_dir = tmp_path / "a800"
    host_dir.mkdir()
    inventory = tmp_path / "a800.yml"
    env = {
        "PYTHONPATH": str(REPO_ROOT / "sandbox" / "python"),
        "GPUOPS_NVML_SIM_FIXTURE": str(fleet_up.fixture_path("a800-mig-x2")),
        "GPUOPS_NVML_SIM_STATE": str(host_dir / "nvml-state.json"),
    }
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        host: {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                            "gpuops_environment": env,
                        }
                    }
                }
            }
        )
    )
    # Driver 470 in the fixture: 4g + 3g together is refused before anything changes.
    run, result = mig(sandbox, tmp_path, host, inventory=inventory, gpus=["1"], layout={"4g.40gb": 1, "3g.40gb": 1})
    assert run.rc != 0 and "R510" in result["msg"], run
    layout = {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 1}
    run, result = mig(sandbox, tmp_path, host, inventory=inventory, layout=layout)
    assert run.rc == 0, run
    assert [layout_of(g) for g in result["gpus"]] == [layout, layout]
    # The busy 3g.40gb@0 of GPU 0 (pid in the fixture) was kept where it was.
    kept = [i for i in result["gpus"][0]["instances"] if i["profile"] == "3g.40gb"]
    assert kept[0]["placement"]["start"] == 0 and kept[0]["pids"]
