"""The drop-in is honest: every NVML name it exports exists in nvidia-ml-py, with the same value."""

import importlib.util
import inspect
import sys
from pathlib import Path

import pytest
from conftest import SIM_PATH
from gpuops_sim import errors, nvml


def _real_pynvml_file():
    for entry in sys.path:
        candidate = Path(entry or ".") / "pynvml.py"
        if candidate.is_file() and Path(SIM_PATH) not in candidate.resolve().parents:
            return candidate
    return None


@pytest.fixture(scope="module")
def real():
    path = _real_pynvml_file()
    if path is None:
        pytest.skip("nvidia-ml-py is not installed")
    name = "real_pynvml_for_comparison"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # nvidia-ml-py looks itself up there while importing
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@pytest.fixture(scope="module")
def dropin():
    """sandbox/python/pynvml.py loaded under another name (its imports resolve to gpuops_sim)."""
    spec = importlib.util.spec_from_file_location("sim_pynvml_dropin", SIM_PATH / "pynvml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nvml_names(module):
    return sorted(name for name in dir(module) if name.startswith(("nvml", "NVML")))


def test_dropin_exports_the_simulator_api(dropin):
    assert dropin.nvmlInit is nvml.nvmlInit
    assert dropin.NVMLError is errors.NVMLError
    assert dropin.NVMLError_GpuIsLost is nvml.NVMLError_GpuIsLost
    # Simulator-only helpers stay out of the pynvml namespace.
    assert not hasattr(dropin, "sim_forget")


def test_every_exported_name_exists_in_nvidia_ml_py(dropin, real):
    missing = [name for name in _nvml_names(dropin) if not hasattr(real, name)]
    assert missing == []


def test_constants_have_nvidia_ml_py_values(dropin, real):
    different = {}
    for name in _nvml_names(dropin):
        ours = getattr(dropin, name)
        if isinstance(ours, int) and not isinstance(ours, bool):
            theirs = getattr(real, name)
            if ours != theirs:
                different[name] = (ours, theirs)
    assert different == {}


def test_error_classes_match_names_and_codes(dropin, real):
    ours = {name: getattr(dropin, name) for name in dir(dropin) if name.startswith("NVMLError_")}
    assert len(ours) >= 30
    for name, cls in ours.items():
        theirs = getattr(real, name)
        assert issubclass(cls, dropin.NVMLError)
        assert cls(0).value == theirs(0).value, name
    # and nothing of theirs is missing
    theirs_names = {name for name in dir(real) if name.startswith("NVMLError_")}
    assert theirs_names <= set(ours)


def test_error_texts_match_nvidia_ml_py_where_it_defines_them(real):
    for code, text in real.NVMLError._errcode_to_string.items():
        assert str(errors.NVMLError(code)) == text


def test_nvmlerror_factory_and_equality_behave_like_nvidia_ml_py(real):
    for module in (nvml, real):
        err = module.NVMLError(module.NVML_ERROR_GPU_IS_LOST)
        assert type(err).__name__ == "NVMLError_GpuIsLost"
        assert err.value == 15
        assert err == module.NVMLError_GpuIsLost()
        with pytest.raises(TypeError):
            hash(err)


def test_function_signatures_match(dropin, real):
    mismatched = {}
    for name in _nvml_names(dropin):
        ours = getattr(dropin, name)
        if not inspect.isfunction(ours) or not inspect.isfunction(getattr(real, name)):
            continue
        theirs = inspect.signature(getattr(real, name))
        if list(inspect.signature(ours).parameters) != list(theirs.parameters):
            mismatched[name] = (str(inspect.signature(ours)), str(theirs))
    assert mismatched == {}


def test_struct_fields_match(dropin, real):
    for name in (
        "nvmlPciInfo_t",
        "c_nvmlMemory_t",
        "c_nvmlMemory_v2_t",
        "c_nvmlProcessInfo_v2_t",
        "c_nvmlGpuInstanceProfileInfo_v2_t",
        "c_nvmlGpuInstanceInfo_t",
        "c_nvmlComputeInstanceInfo_t",
        "c_nvmlComputeInstanceProfileInfo_v2_t",
        "c_nvmlGpuInstancePlacement_t",
    ):
        ours = [field[0] for field in getattr(dropin, name)._fields_]
        theirs = [field[0] for field in getattr(real, name)._fields_]
        assert ours == theirs, name
