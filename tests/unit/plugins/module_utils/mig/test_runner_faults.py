"""Every NVML call a mig_partition run makes, failed once at each step of a re-layout.

For each scenario the clean run's NVML calls are recorded and cut into steps: the planning
reads, one step per mutating call (mode change, instance destroy or create, with the reads that
follow it), and the read-back. In each step, the first call of every distinct NVML function is
failed once through the simulator's own fault injection (``skip`` N earlier calls of it, then
fail one). Each case asserts one of the allowed outcomes against the simulator's state:

- the run succeeded (the failed call was optional) and the GPU is in the target state;
- the run failed naming the GPU, the call and the error, and the GPU is as it was before
  (rejected before any change, or rolled back), ``changed`` telling exactly whether anything
  differs (re-made instances have new MIG device UUIDs);
- the run failed naming them and reported ``changed: true`` with the exact state the GPU is in.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import simhost
import yaml
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import runner

sim = simhost.load_simulator()
GEOMETRY = yaml.safe_load((simhost.SIM_PATH / "gpuops_sim" / "data" / "mig_geometry.yml").read_text())["geometries"]
A100_NAMES = {p["id"]: p["name"] for p in GEOMETRY["a100-40gb"]["gpu_instance_profiles"]}
BALANCED = {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}
MUTATING = {
    "nvmlDeviceSetMigMode",
    "nvmlDeviceCreateGpuInstanceWithPlacement",
    "nvmlDeviceCreateGpuInstance",
    "nvmlGpuInstanceDestroy",
    "nvmlGpuInstanceCreateComputeInstanceWithPlacement",
    "nvmlGpuInstanceCreateComputeInstance",
    "nvmlComputeInstanceDestroy",
}


def params(**overrides):
    base = dict(gpus=["all"], layout=None, mig_enabled=True, reset_policy="never", force=False, force_timeout=5)
    base.update(overrides)
    return base


# scenario -> (setup runs, the run under test); every run on the 8x A100-40GB fixture.
SCENARIOS = {
    "relayout": ([params(gpus=["0"], layout={"1g.5gb": 7})], params(gpus=["0"], layout=BALANCED)),
    "enable": ([], params(gpus=["1"], layout=BALANCED)),
    "disable": ([params(gpus=["2"], layout=BALANCED)], params(gpus=["2"], mig_enabled=False)),
}


def gpu_state(data, index):
    """Comparable state of one GPU in the simulator: mode and instances (ids, placements, CIs)."""
    gpu = data["gpus"][index]
    return {
        "mig": (gpu["mig"]["current"], gpu["mig"]["pending"]),
        "instances": sorted(
            (
                gi["id"],
                A100_NAMES[gi["profile_id"]],
                gi["start"],
                tuple(sorted((ci["id"], ci["start"]) for ci in gi["compute_instances"])),
            )
            for gi in gpu["gpu_instances"]
        ),
        "uids": sorted(gi["uid"] for gi in gpu["gpu_instances"])
        + sorted(ci["uid"] for gi in gpu["gpu_instances"] for ci in gi["compute_instances"]),
    }


def reported_state(entry):
    return {
        "mig": (entry["mig"]["current"], entry["mig"]["pending"]),
        "instances": sorted(
            (
                inst["gpu_instance_id"],
                inst["profile"],
                inst["placement"]["start"],
                tuple(
                    sorted((ci["compute_instance_id"], ci["placement"]["start"]) for ci in inst["compute_instances"])
                ),
            )
            for inst in entry["instances"]
        ),
    }


def _steps(calls):
    """[(step label, [(call, occurrence index of that call in the whole run)])] of a recorded run."""
    seen = {}
    steps = [("plan", [])]
    for name in calls:
        occurrence = seen.get(name, 0)
        seen[name] = occurrence + 1
        if name in MUTATING:
            steps.append(("%s #%d" % (name, occurrence + 1), []))
        steps[-1][1].append((name, occurrence))
    return steps


def _cases():
    """(scenario, step, call, occurrence) for the first call of each function in each step."""
    cases = []
    for scenario in SCENARIOS:
        for label, calls in _recorded(scenario):
            first = {}
            for name, occurrence in calls:
                if name != "nvmlShutdown":  # never fails in nvidia-ml-py's sense; errors ignored on close
                    first.setdefault(name, occurrence)
            cases.extend((scenario, label, name, occurrence) for name, occurrence in first.items())
    return cases


_RECORDED = {}
_TARGETS = {}


def _prepare(scenario, directory):
    """State file after the scenario's setup runs (cached per scenario)."""
    state = directory / ("%s.json" % scenario)
    fixture = simhost.FIXTURES / "a100-sxm4-40gb-x8.yml"
    os.environ["GPUOPS_NVML_SIM_FIXTURE"] = str(fixture)
    os.environ["GPUOPS_NVML_SIM_STATE"] = str(state)
    sim.nvml.sim_forget()
    for setup in SCENARIOS[scenario][0]:
        runner.converge(setup, nvml=sim.nvml, sleep=lambda s: None)
    if not state.exists():
        sim.nvml.nvmlInit()
        sim.nvml.nvmlShutdown()
    return state


def _recorded(scenario):
    if scenario not in _RECORDED:
        import tempfile
        from pathlib import Path

        directory = Path(tempfile.mkdtemp(prefix="mig-faults-"))
        # This runs while pytest collects: the simulator settings must not outlive it (a test
        # collected later in the same process would inherit a state file that is gone).
        saved = {key: os.environ.get(key) for key in ("GPUOPS_NVML_SIM_FIXTURE", "GPUOPS_NVML_SIM_STATE")}
        try:
            _prepare(scenario, directory)
            recorder = simhost.Recorder(sim.nvml)
            result = runner.converge(SCENARIOS[scenario][1], nvml=recorder, sleep=lambda s: None)
            index = int(SCENARIOS[scenario][1]["gpus"][0])
            _TARGETS[scenario] = reported_state(next(g for g in result["gpus"] if g["index"] == index))
            steps = _steps(recorder.calls)
            # Split the last change's step into the change and the read-back that follows it.
            label, calls = steps[-1]
            cut = next(
                (i for i, (name, _o) in enumerate(calls) if i and name == "nvmlDeviceGetHandleByIndex"), len(calls)
            )
            steps[-1] = (label, calls[:cut])
            if calls[cut:]:
                steps.append(("read-back", calls[cut:]))
            _RECORDED[scenario] = steps
        finally:
            shutil.rmtree(directory, ignore_errors=True)
            sim.nvml.sim_forget()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return _RECORDED[scenario]


CASES = _cases()


def test_every_step_has_cases_and_the_suite_is_large():
    steps = {(scenario, label) for scenario, label, _n, _o in CASES}
    # Planning, every change and the read-back of each scenario are covered.
    assert {label for scenario, label in steps if scenario == "relayout"} >= {"plan", "read-back"}
    assert any("nvmlDeviceSetMigMode" in label for scenario, label in steps if scenario == "disable")
    assert len(CASES) >= 150


@pytest.mark.parametrize(("scenario", "step", "call", "occurrence"), CASES, ids=str)
def test_a_failed_call_leaves_a_known_state(tmp_path, monkeypatch, scenario, step, call, occurrence):
    monkeypatch.setenv("GPUOPS_NVML_SIM_FIXTURE", str(simhost.FIXTURES / "a100-sxm4-40gb-x8.yml"))
    # Set through monkeypatch first, so that the value _prepare writes is undone after the test.
    monkeypatch.setenv("GPUOPS_NVML_SIM_STATE", str(tmp_path / ("%s.json" % scenario)))
    state = _prepare(scenario, tmp_path)
    under_test = SCENARIOS[scenario][1]
    index = int(under_test["gpus"][0])
    data = json.loads(state.read_text())
    before = gpu_state(data, index)
    data["faults"].append(
        {"id": 1, "gpu": None, "call": call, "error": sim.constants.NVML_ERROR_UNKNOWN, "times": 1, "skip": occurrence}
    )
    state.write_text(json.dumps(data))
    sim.nvml.sim_forget()
    try:
        result = runner.converge(under_test, nvml=sim.nvml, sleep=lambda s: None)
        error = None
    except runner.MigRunError as exc:
        result, error = exc.result, exc
    finally:
        sim.nvml.sim_forget()
    after_data = json.loads(state.read_text())
    after = gpu_state(after_data, index)
    assert after_data["faults"] == [], "the injected fault never fired: the trace and the run differ"
    # No other GPU was touched.
    for other in range(len(after_data["gpus"])):
        if other != index:
            assert gpu_state(after_data, other) == gpu_state(data, other)

    if error is None:
        # The failed call did not matter (a detail nothing relies on, or another GPU's identity
        # while the run selects one GPU by index): the GPU is exactly where a clean run leaves it.
        assert result["changed"] is True
        assert reported_state(result["gpus"][0]) == {k: v for k, v in after.items() if k != "uids"}
        assert reported_state(result["gpus"][0]) == _TARGETS[scenario]
        return
    msg = error.msg
    assert call in msg, msg
    assert "Unknown Error" in msg, msg
    if call not in ("nvmlInit", "nvmlDeviceGetCount", "nvmlSystemGetDriverVersion"):
        assert "GPU %d" % index in msg, msg
    if after == before:
        assert result.get("changed", False) is False, msg
        assert "nothing changed" in msg or "rolled back" in msg, msg
    elif {k: v for k, v in after.items() if k != "uids"} == {k: v for k, v in before.items() if k != "uids"}:
        # Rolled back to the same layout, but re-made instances are new objects (new MIG devices).
        assert "rolled back" in msg, msg
        assert result["changed"] is True, msg
    else:
        # Not rolled back: only when the change itself went through and reading it back failed.
        assert step == "read-back" or "nvmlDeviceSetMigMode" in step, (step, msg)
        assert result["changed"] is True, msg
        assert "reading the state back failed" in msg or "rolled back" in msg, msg
        reported = reported_state(result["gpus"][0])
        assert reported == {k: v for k, v in after.items() if k != "uids"}, msg
