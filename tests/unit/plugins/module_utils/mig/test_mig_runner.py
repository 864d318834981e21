"""mig_apply (the NVML executor and the mig_partition run) against the NVML simulator, in-process.

The simulator package is loaded from sandbox/python without putting that folder on sys.path
(so no other test gets it for ``pynvml``); its ``nvml`` module is handed to the code as the
NVML bindings, exactly as ``import pynvml`` would in the sandbox.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import force, parted, runner
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import planner as mig
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import state as mig_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[5]
SIM_PATH = ROOT / "sandbox" / "python"
FIXTURES = ROOT / "sandbox" / "fixtures"


def _load_simulator_package():
    if "gpuops_sim" in sys.modules:
        return sys.modules["gpuops_sim"]
    init = SIM_PATH / "gpuops_sim" / "__init__.py"
    spec = importlib.util.spec_from_file_location("gpuops_sim", init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpuops_sim"] = module
    spec.loader.exec_module(module)
    return module


_load_simulator_package()

from gpuops_sim import constants as sim_constants  # noqa: E402
from gpuops_sim import nvml  # noqa: E402

A100 = "a100-sxm4-40gb-x8"
BALANCED = {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}


@pytest.fixture
def host(monkeypatch, tmp_path):
    def activate(name, state=True):
        nvml.sim_forget()
        monkeypatch.setenv("GPUOPS_NVML_SIM_FIXTURE", str(FIXTURES / ("%s.yml" % name)))
        if state:
            monkeypatch.setenv("GPUOPS_NVML_SIM_STATE", str(tmp_path / ("%s.json" % name)))
        else:
            monkeypatch.delenv("GPUOPS_NVML_SIM_STATE", raising=False)
        return tmp_path / ("%s.json" % name)

    yield activate
    nvml.sim_forget()


def params(**overrides):
    base = dict(
        gpus=["all"],
        device_filter=None,
        layout=None,
        config_file=None,
        config_name=None,
        mig_enabled=True,
        reset_policy="never",
        force=False,
        force_timeout=5,
    )
    base.update(overrides)
    return base


def run(check_mode=False, **overrides):
    return runner.converge(params(**overrides), check_mode=check_mode, nvml=nvml, sleep=lambda s: None)


def inject(state_file, call, error, gpu=None, times=None):
    data = json.loads(state_file.read_text())
    data["faults"].append(
        {
            "id": len(data["faults"]) + 1,
            "gpu": gpu,
            "call": call,
            "error": getattr(sim_constants, "NVML_ERROR_" + error),
            "times": times,
        }
    )
    state_file.write_text(json.dumps(data))


def test_check_mode_changes_nothing_then_apply_then_nothing_to_do(host):
    state = host(A100)
    result = run(check_mode=True, layout=BALANCED)
    assert result["changed"] is True
    snapshot = state.read_bytes()
    assert all(gpu["mig"] == {"current": False, "pending": False} for gpu in result["gpus"])
    result = run(check_mode=True, layout=BALANCED)
    assert state.read_bytes() == snapshot
    result = run(layout=BALANCED)
    assert result["changed"] is True
    assert all(Counter(i["profile"] for i in g["instances"]) == Counter(BALANCED) for g in result["gpus"])
    assert run(layout=BALANCED)["changed"] is False
    assert run(check_mode=True, layout=BALANCED)["changed"] is False


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        ({"layout": {"1g.5gb": 8}}, ["layout", "1g.5gb", "maximum of 7"]),
        ({"layout": {"4g.20gb": 1, "3g.20gb": 1, "1g.5gb": 1}}, ["layout", "no room"]),
        (
            {"layout": {"3g.20gb": {"count": 1, "compute_instances": {"2c.2g.10gb": 1}}}},
            ["compute_instances", "1c.3g.20gb"],
        ),
        ({"layout": {"3g.20gb": {"count": 1, "compute_instances": {"1c.3g.20gb": 4}}}}, ["maximum of 3"]),
        ({"layout": {"3g.20gb": {"cnt": 1}}}, ["unknown key", "count"]),
        ({"device_filter": ["0x233010DE"], "layout": BALANCED}, ["device_filter", "0x20B010DE"]),
        ({"gpus": ["GPU-nope"], "layout": BALANCED}, ["gpus[0]", "'GPU-nope'", "not a GPU selector"]),
        (
            {"gpus": ["GPU-00000000-0000-0000-0000-000000000000"], "layout": BALANCED},
            ["gpus", "GPU-00000000-0000-0000-0000-000000000000", "matches no GPU"],
        ),
    ],
)
def test_bad_input_fails_naming_the_option_before_any_change(host, overrides, needles):
    state = host(A100)
    run(check_mode=True, layout={})  # state file created
    snapshot = state.read_bytes()
    with pytest.raises(runner.MigRunError) as caught:
        run(**overrides)
    for needle in needles:
        assert needle in caught.value.msg, (needle, caught.value.msg)
    assert state.read_bytes() == snapshot


def test_missing_config_name_lists_the_available_ones(host):
    host(A100)
    config = parted.parse_mig_parted_config(
        {"version": "v1", "mig-configs": {"a": [{"devices": "all", "mig-enabled": False}]}}
    )
    with pytest.raises(runner.MigRunError, match="config_name nope: unknown MIG config 'nope'; available: a"):
        runner.converge(params(config_file="/x.yaml", config_name="nope"), nvml=nvml, config=config)


def test_failed_create_rolls_back_to_the_previous_layout(host):
    state = host(A100)
    run(gpus=["0"], layout={"1g.5gb": 7})
    before = json.loads(state.read_text())["gpus"][0]["gpu_instances"]
    inject(state, "nvmlDeviceCreateGpuInstanceWithPlacement", "INSUFFICIENT_RESOURCES", gpu=0, times=1)
    nvml.sim_forget()
    with pytest.raises(runner.MigRunError) as caught:
        run(gpus=["0"], layout=BALANCED)
    report = caught.value.result["apply"][0]
    # Everything that ran was undone, newest first, and the GPU is as it was.
    assert report["failed_step"] == {"action": "create_gi", "profile": "3g.20gb", "start": 4}
    ran = [s["action"] for s in report["steps"]]
    assert ran and set(ran) == {"destroy_ci", "destroy_gi"}
    assert [u["action"] for u in report["rolled_back"]] == [
        {"destroy_ci": "create_ci", "destroy_gi": "create_gi"}[a] for a in reversed(ran)
    ]
    after = json.loads(state.read_text())["gpus"][0]["gpu_instances"]
    assert [(g["id"], g["profile_id"], g["start"], len(g["compute_instances"])) for g in after] == [
        (g["id"], g["profile_id"], g["start"], len(g["compute_instances"])) for g in before
    ]
    assert "rolled back" in caught.value.msg and "not touched: none" in caught.value.msg


def test_failure_on_one_gpu_stops_before_the_next(host):
    state = host(A100)
    inject(state_file=_touch(state), call="nvmlDeviceCreateGpuInstanceWithPlacement", error="UNKNOWN", gpu=2, times=1)
    nvml.sim_forget()
    with pytest.raises(runner.MigRunError) as caught:
        run(layout={"7g.40gb": 1})
    assert [r["index"] for r in caught.value.result["apply"]] == [0, 1, 2]
    assert "GPUs done before it: [0, 1]; not touched: [3, 4, 5, 6, 7]" in caught.value.msg
    data = json.loads(state.read_text())
    assert [len(g["gpu_instances"]) for g in data["gpus"]] == [1, 1, 0, 0, 0, 0, 0, 0]


def _touch(state):
    run(check_mode=True, layout={})
    return state


def test_lost_gpu_is_reported_and_the_others_configured(host):
    host("a100-one-lost")
    fixture = yaml.safe_load((FIXTURES / "a100-one-lost.yml").read_text())
    lost = [i for i, g in enumerate(fixture["gpus"]) if g.get("faults")]
    result = run(layout={"7g.40gb": 1})
    assert [g["index"] for g in result["failed_gpus"]] == lost
    assert "LOST" in result["msg"]
    for gpu in result["gpus"]:
        assert gpu.get("lost", False) is (gpu["index"] in lost)


def test_gpu_missing_from_the_catalog_gets_its_profiles_from_nvml(host):
    host("a800-mig-x2")
    nvml.nvmlInit()
    try:
        gpu = mig_state.read_gpu(nvml, mig_state.read_identity(nvml, 1))
    finally:
        nvml.nvmlShutdown()
    model = mig_state.model_for(gpu)
    assert model.key == "NVIDIA A800-SXM4-80GB"
    geometry = yaml.safe_load((SIM_PATH / "gpuops_sim" / "data" / "mig_geometry.yml").read_text())["geometries"]
    expected = {
        p["name"]: (p["slices"], p["size"], tuple(p["starts"]), p["max"])
        for p in geometry["a100-80gb"]["gpu_instance_profiles"]
    }
    assert {p.name: (p.compute_slices, p.memory_slices, p.start_slots, p.max_count) for p in model.profiles} == expected
    assert model.driver_gates and model.driver_gates[0].min_driver_major == 510


def test_busy_instance_refusal_names_gpu_instance_and_pids(host):
    host("h100-mig-mixed")
    with pytest.raises(runner.MigRunError) as caught:
        run(gpus=["0"], layout={"7g.80gb": 1})
    assert "3g.40gb at placement start 4 size 4" in caught.value.msg
    assert "pid 41877 (python3)" in caught.value.msg


def test_force_refuses_to_signal_a_pid_that_is_not_the_process_nvml_names():
    problems = force.check_signalable([{"pid": os.getpid(), "name": "definitely-not-me"}])
    assert problems and "not signalling" in problems[0]
    # A process whose name NVML could not tell is never signalled either.
    assert "cannot be told from a reused PID" in force.check_signalable([{"pid": os.getpid(), "name": None}])[0]
    me = os.path.basename(sys.executable)
    assert force.check_signalable([{"pid": os.getpid(), "name": me}]) == []
    assert "not a live process" in force.check_signalable([{"pid": 2**22 + 5, "name": "x"}])[0]


def test_terminate_escalates_to_sigkill_and_reports_leftovers(monkeypatch):
    sent = []
    monkeypatch.setattr(force.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    now = [0.0]

    def clock():
        now[0] += 1.0
        return now[0]

    left = force.terminate([{"pid": 11}], lambda: [11], timeout=4, sleep=lambda s: None, clock=clock)
    assert left == [11]
    assert [sig for _unused, sig in sent] == [force.signal.SIGTERM, force.signal.SIGKILL]
    assert force.terminate([{"pid": 12}], lambda: [], timeout=4, sleep=lambda s: None, clock=clock) == []


# ---------------------------------------------------------------------------------------------
# Property: whatever the live layout, planning and applying through NVML reaches the desired
# layout and never moves or re-creates a kept instance.
# ---------------------------------------------------------------------------------------------
_A100_PROFILES = ["1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb", "1g.5gb+me"]


@st.composite
def _layouts(draw):
    layout = {}
    for _unused in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(_A100_PROFILES))
        layout[name] = layout.get(name, 0) + 1
    try:
        mig.plan_layout("NVIDIA A100-SXM4-40GB", layout)
    except mig.MigLayoutError:
        return {"1g.5gb": 1}
    return layout


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=_layouts(), second=_layouts())
def test_relayout_through_nvml_reaches_the_layout_and_keeps_what_it_keeps(host, first, second):
    host(A100, state=False)
    run(gpus=["0"], layout=first)
    nvml.nvmlInit()
    try:
        before = mig_state.read_gpu(nvml, mig_state.read_identity(nvml, 0))
    finally:
        nvml.nvmlShutdown()
    result = run(gpus=["0"], layout=second)
    gpu = result["gpus"][0]
    assert Counter(i["profile"] for i in gpu["instances"]) == Counter({k: v for k, v in second.items() if v})
    kept = result["plan"][0]["keep"]
    old_devices = {d["gpu_instance_id"]: d["uuid"] for d in before["devices"]}
    new_devices = {d["gpu_instance_id"]: d["uuid"] for d in gpu["devices"]}
    for entry in kept:
        assert new_devices[entry["gi_id"]] == old_devices[entry["gi_id"]]
    assert run(gpus=["0"], layout=second)["changed"] is False
