"""gpu_probe through ansible-playbook on sandbox hosts: faults, missing bindings, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT, fleet_up, load_fixture, run_playbook

PROBE = REPO_ROOT / "tests" / "integration" / "playbooks" / "probe.yml"


def probe(sandbox, target, tmp_path, *extra):
    out = tmp_path / "facts"
    out.mkdir(exist_ok=True)
    run = run_playbook(PROBE, "-e", f"target={target}", "-e", f"out_dir={out}", *extra, env=sandbox["env"])
    return run, out


def test_injected_fault_stays_on_its_gpu_and_field(sandbox, tmp_path):
    host = "gpu-h100-01"
    state = sandbox["dir"] / "hosts" / host / "nvml-state.json"
    fleet_up.sim(
        "inject", "--state", str(state), "--gpu", "2", "--call", "nvmlDeviceGetTemperature", "--error", "NO_PERMISSION"
    )
    run, out = probe(sandbox, host, tmp_path)
    assert run.rc == 0, run
    facts = json.loads((out / f"{host}.json").read_text())
    assert facts["changed"] is False
    gpus = {gpu["index"]: gpu for gpu in facts["gpu"]["gpus"]}
    assert len(gpus) == len(load_fixture(sandbox["fixtures"][host])["gpus"])
    faulty = gpus[2]
    assert faulty["temperature_c"] is None
    assert any("temperature" in field for field in faulty["errors"]), faulty["errors"]
    assert faulty["uuid"] and faulty["memory"]["total_mib"] > 0  # the rest is still there
    for index, gpu in gpus.items():
        if index != 2:
            assert gpu["errors"] == {}, (index, gpu["errors"])
            assert gpu["temperature_c"] is not None

    fleet_up.sim("clear-faults", "--state", str(state))
    run, out = probe(sandbox, host, tmp_path)
    facts = json.loads((out / f"{host}.json").read_text())
    assert all(gpu["errors"] == {} for gpu in facts["gpu"]["gpus"])


def test_without_nvidia_ml_py_the_probe_is_pci_only(sandbox, tmp_path):
    # A bare interpreter: no nvidia-ml-py, no simulator on its path.
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    host = "gpu-a100-01"
    host_root = sandbox["dir"] / "hosts" / host / "root"
    run, out = probe(
        sandbox,
        host,
        tmp_path,
        "-e",
        f"ansible_python_interpreter={bare / 'bin' / 'python'}",
        "-e",
        json.dumps({"gpuops_environment": {"GPUOPS_HOST_ROOT": str(host_root)}}),
    )
    assert run.rc == 0, run
    gpu = json.loads((out / f"{host}.json").read_text())["gpu"]
    fixture = load_fixture(sandbox["fixtures"][host])
    assert gpu["source"] == "pci"
    assert gpu["driver"]["state"] == "loaded"  # read from /proc, not NVML
    assert gpu["driver"]["nvml"]["available"] is False
    assert "nvidia-ml-py" in gpu["driver"]["nvml"]["reason"]
    assert "nvml" not in gpu["collected"]
    assert sorted(g["pci"]["bus_id"] for g in gpu["gpus"]) == sorted(g["bus_id"] for g in fixture["gpus"])
    assert all(g["health"]["status"] == "unknown" for g in gpu["gpus"])


def test_bad_collect_value_fails_naming_the_option(sandbox, tmp_path):
    run, out = probe(sandbox, "gpu-a100-01", tmp_path, "-e", '{"collect": ["pci", "gpus"]}')
    assert run.rc != 0
    text = run.stdout + run.stderr
    assert "collect" in text and "gpus" in text and "telemetry" in text, run
    assert not (out / "gpu-a100-01.json").exists()


def test_pci_only_collection_skips_nvml(sandbox, tmp_path):
    host = "gpu-h100-01"
    run, out = probe(sandbox, host, tmp_path, "-e", '{"collect": ["pci"]}')
    assert run.rc == 0, run
    gpu = json.loads((out / f"{host}.json").read_text())["gpu"]
    assert gpu["collected"] == ["pci"]
    assert gpu["source"] == "pci"
    assert len(gpu["gpus"]) == len(load_fixture(sandbox["fixtures"][host])["gpus"])


def test_mig_layout_and_processes_match_the_fixture(sandbox, tmp_path):
    host = "gpu-h100-02"
    run, out = probe(sandbox, host, tmp_path)
    assert run.rc == 0, run
    facts = json.loads((out / f"{host}.json").read_text())["gpu"]
    fixture = load_fixture(sandbox["fixtures"][host])
    by_bus = {gpu["pci"]["bus_id"]: gpu for gpu in facts["gpus"]}
    assert facts["summary"]["mig_enabled"] == sum(1 for gpu in fixture["gpus"] if (gpu.get("mig") or {}).get("current"))
    for want in fixture["gpus"]:
        got = by_bus[want["bus_id"]]
        mig_on = bool((want.get("mig") or {}).get("current"))
        assert got["mig"]["current"] is mig_on, want["bus_id"]
        instances = got["mig"]["gpu_instances"]
        wanted = want.get("mig_devices") or [] if mig_on else []
        assert sorted(gi["profile"] for gi in instances) == sorted(d["profile"] for d in wanted), want["bus_id"]
        # Explicit placements in the fixture are where NVML reports the instances.
        placed = sorted((d["profile"], d["placement"]) for d in wanted if "placement" in d)
        reported = sorted((gi["profile"], gi["placement"]["start"]) for gi in instances)
        assert all(p in reported for p in placed), (placed, reported)
        assert len(got["mig"]["devices"]) == len(wanted)
        assert all(dev["uuid"].startswith("MIG-") for dev in got["mig"]["devices"])
        assert got["processes"]["count"] == len(want.get("processes") or []), want["bus_id"]
        assert got["processes"]["used_memory_mib"] == sum(p["used_memory_mib"] for p in want.get("processes") or [])
