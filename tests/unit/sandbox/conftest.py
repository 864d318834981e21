"""Fixtures for the NVML simulator tests.

The simulator package is loaded from sandbox/python without putting that folder on sys.path,
so its pynvml.py never shadows the real nvidia-ml-py for other tests in the same session.
Subprocesses get PYTHONPATH=sandbox/python, the way the sandbox runs modules.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SIM_PATH = ROOT / "sandbox" / "python"
FIXTURES = ROOT / "sandbox" / "fixtures"
REAL_PYNVML = Path(sys.prefix) / "lib" / ("python%d.%d" % sys.version_info[:2]) / "site-packages" / "pynvml.py"


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

from gpuops_sim import nvml  # noqa: E402


def fixture_path(name):
    return str(FIXTURES / ("%s.yml" % name))


@pytest.fixture
def use_host(monkeypatch, tmp_path):
    """use_host(name, state=True) points the simulator at a fixture; returns the nvml module."""

    def activate(name, state=True):
        nvml.sim_forget()
        monkeypatch.setenv("GPUOPS_NVML_SIM_FIXTURE", fixture_path(name))
        if state:
            monkeypatch.setenv("GPUOPS_NVML_SIM_STATE", str(tmp_path / ("%s-state.json" % name)))
        else:
            monkeypatch.delenv("GPUOPS_NVML_SIM_STATE", raising=False)
        return nvml

    yield activate
    nvml.sim_forget()


@pytest.fixture
def sim(use_host):
    """The simulator initialised on the 8x A100 host (state in a temp file)."""
    module = use_host("a100-sxm4-40gb-x8")
    module.nvmlInit()
    return module


def run_sim_python(code, env_extra, check=True):
    """Run Python code in a subprocess the way the sandbox does (PYTHONPATH=sandbox/python)."""
    env = dict(os.environ)
    env.update(env_extra)
    env["PYTHONPATH"] = str(SIM_PATH)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def run_cli(*args, check=True):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SIM_PATH)
    return subprocess.run(
        [sys.executable, "-m", "gpuops_sim", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )
