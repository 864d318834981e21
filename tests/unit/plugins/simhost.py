"""The NVML simulator for in-process unit tests, without putting sandbox/python on sys.path.

The simulator package is loaded under its own name (``gpuops_sim``) from sandbox/python; its
``nvml`` module is handed to the code under test as the NVML bindings, exactly as
``import pynvml`` gives it in the sandbox. No other test gets it for ``pynvml`` by accident.

- ``SimHost``: one simulated host (fixture + state file) with helpers to inject faults, read
  the simulator's state and record the NVML calls a run makes (``Recorder``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SIM_PATH = ROOT / "sandbox" / "python"
FIXTURES = ROOT / "sandbox" / "fixtures"


def load_simulator():
    if "gpuops_sim" not in sys.modules:
        init = SIM_PATH / "gpuops_sim" / "__init__.py"
        spec = importlib.util.spec_from_file_location("gpuops_sim", init, submodule_search_locations=[str(init.parent)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpuops_sim"] = module
        spec.loader.exec_module(module)
    import gpuops_sim.constants
    import gpuops_sim.nvml

    return gpuops_sim


class Recorder:
    """A stand-in for the bindings module that records every NVML function called, in order.

    Attribute access passes through to the simulator; functions are wrapped. Only used to learn
    which calls a run makes (then each is failed once, through the simulator's own faults).
    """

    def __init__(self, nvml):
        self._nvml = nvml
        self.calls = []

    def __getattr__(self, name):
        value = getattr(self._nvml, name)
        if name.startswith("nvml") and callable(value):

            def wrapped(*args, **kwargs):
                self.calls.append(name)
                return value(*args, **kwargs)

            return wrapped
        return value


class SimHost:
    """One simulated host: ``activate`` points the simulator at a fixture and a state file."""

    def __init__(self, monkeypatch, tmp_path):
        self.sim = load_simulator()
        self.nvml = self.sim.nvml
        self.constants = self.sim.constants
        self.monkeypatch = monkeypatch
        self.tmp_path = tmp_path
        self.state_file = None
        self.fixture = None

    def activate(self, name, state=True):
        self.nvml.sim_forget()
        self.fixture = FIXTURES / ("%s.yml" % name)
        self.monkeypatch.setenv("GPUOPS_NVML_SIM_FIXTURE", str(self.fixture))
        self.state_file = self.tmp_path / ("%s.json" % name)
        if state:
            self.monkeypatch.setenv("GPUOPS_NVML_SIM_STATE", str(self.state_file))
        else:
            self.monkeypatch.delenv("GPUOPS_NVML_SIM_STATE", raising=False)
        # Create the state file now, so tests can snapshot it before anything runs.
        self.nvml.nvmlInit()
        self.nvml.nvmlShutdown()
        return self.state_file

    def state(self):
        return json.loads(self.state_file.read_text())

    def layouts(self):
        """Comparable MIG state per GPU: mode and GPU instances with their compute instances."""
        data = self.state()
        return [
            {
                "mig": dict(g["mig"]),
                "gis": sorted(
                    (
                        gi["id"],
                        gi["profile_id"],
                        gi["start"],
                        tuple(sorted((c["id"], c["profile_id"], c["start"]) for c in gi["compute_instances"])),
                    )
                    for gi in g["gpu_instances"]
                ),
            }
            for g in data["gpus"]
        ]

    def inject(self, call, error, gpu=None, times=None, skip=None):
        data = self.state()
        fault = {
            "id": max([f["id"] for f in data["faults"]] + [0]) + 1,
            "gpu": gpu,
            "call": call,
            "error": getattr(self.constants, "NVML_ERROR_" + error),
            "times": times,
        }
        if skip:
            fault["skip"] = skip
        data["faults"].append(fault)
        self.state_file.write_text(json.dumps(data))
        self.nvml.sim_forget()

    def clear_faults(self):
        data = self.state()
        data["faults"] = []
        self.state_file.write_text(json.dumps(data))
        self.nvml.sim_forget()

    def spawn(self, gpu, pid, name="python3", gi=None, ci=None, memory_mib=1024):
        def change(data):
            data["gpus"][gpu]["processes"].append(
                {
                    "pid": pid,
                    "name": name,
                    "used_memory_mib": memory_mib,
                    "type": "compute",
                    "gpu_instance_id": gi,
                    "compute_instance_id": ci,
                }
            )

        data = self.state()
        change(data)
        self.state_file.write_text(json.dumps(data))
        self.nvml.sim_forget()


def run_module(name, args, check_mode=False, diff=False):
    """Run collection module ``name`` in-process through AnsibleModule; returns its result dict.

    ``pynvml`` must already point at the simulator (monkeypatch ``sys.modules``) when the module
    needs NVML.
    """
    import contextlib
    import importlib
    import io
    import types

    from ansible.module_utils import basic

    payload = dict(args)
    payload["_ansible_check_mode"] = check_mode
    payload["_ansible_diff"] = diff
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": payload}).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    module = importlib.import_module("ansible_collections.gpuops.cluster.plugins.modules." + name)
    # A module process is never the controller; once controller code has been imported into this
    # test process (a filter, a plugin), ansible-core would route module.warn() straight to the
    # display instead of into the result's warnings.
    try:
        from ansible.module_utils import _internal
    except ImportError:  # ansible-core before 2.19 has no such switch
        _internal = types.SimpleNamespace()
    was_controller = getattr(_internal, "is_controller", False)
    _internal.is_controller = False
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            try:
                module.main()
            except SystemExit:
                pass
    finally:
        _internal.is_controller = was_controller
    return json.loads(out.getvalue())
