"""NVMLError and its per-code subclasses, shaped like nvidia-ml-py's."""

import string

from gpuops_sim import constants as c

# Texts nvidia-ml-py itself knows (its NVMLError._errcode_to_string).
_PYNVML_TEXT = {
    c.NVML_ERROR_UNINITIALIZED: "Uninitialized",
    c.NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    c.NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    c.NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    c.NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    c.NVML_ERROR_NOT_FOUND: "Not Found",
    c.NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
    c.NVML_ERROR_INSUFFICIENT_POWER: "Insufficient External Power",
    c.NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    c.NVML_ERROR_TIMEOUT: "Timeout",
    c.NVML_ERROR_IRQ_ISSUE: "Interrupt Request Issue",
    c.NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    c.NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    c.NVML_ERROR_CORRUPTED_INFOROM: "Corrupted infoROM",
    c.NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    c.NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
    c.NVML_ERROR_OPERATING_SYSTEM: "The operating system has blocked the request.",
    c.NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
    c.NVML_ERROR_MEMORY: "Insufficient Memory",
    c.NVML_ERROR_UNKNOWN: "Unknown Error",
}

# The rest come from libnvidia-ml's nvmlErrorString(). IN_USE, NO_DATA and
# INSUFFICIENT_RESOURCES are the driver's texts; the newer codes' texts are approximations.
_LIBRARY_TEXT = dict(_PYNVML_TEXT)
_LIBRARY_TEXT.update(
    {
        c.NVML_SUCCESS: "Success",
        c.NVML_ERROR_IN_USE: "In use by another client",
        c.NVML_ERROR_NO_DATA: "No data",
        c.NVML_ERROR_VGPU_ECC_NOT_SUPPORTED: "ECC is not supported for this vGPU",
        c.NVML_ERROR_INSUFFICIENT_RESOURCES: "Insufficient resources",
        c.NVML_ERROR_FREQ_NOT_SUPPORTED: "Frequency not supported",
        c.NVML_ERROR_ARGUMENT_VERSION_MISMATCH: "Argument version mismatch",
        c.NVML_ERROR_DEPRECATED: "Deprecated",
        c.NVML_ERROR_NOT_READY: "Not ready",
        c.NVML_ERROR_GPU_NOT_FOUND: "GPU not found",
        c.NVML_ERROR_INVALID_STATE: "Invalid state",
        c.NVML_ERROR_RESET_TYPE_NOT_SUPPORTED: "Reset type not supported",
    }
)


class _Library:
    """Whether the (simulated) shared library was ever loaded: str() of codes that
    nvidia-ml-py does not know asks the library, and says 'NVML Error with code N' without it."""

    loaded = False


def library_error_string(code):
    """nvmlErrorString() of libnvidia-ml."""
    return _LIBRARY_TEXT.get(code, "Unknown Error")


class NVMLError(Exception):
    """Base class; NVMLError(code) returns the subclass for that code."""

    _valClassMapping = {}  # noqa: RUF012 - nvidia-ml-py's attribute
    _code = None

    def __new__(cls, *args):
        value = args[0] if args else None
        target = cls
        if cls is NVMLError:
            target = NVMLError._valClassMapping.get(value, NVMLError)
        else:
            # Like nvidia-ml-py, a subclass ignores its arguments and carries its own code.
            value = cls._code
        obj = Exception.__new__(target)
        obj.value = value
        return obj

    def __init__(self, *args):
        Exception.__init__(self)

    def __str__(self):
        if self.value in _PYNVML_TEXT:
            return _PYNVML_TEXT[self.value]
        if _Library.loaded:
            return library_error_string(self.value)
        return "NVML Error with code %d" % self.value

    def __eq__(self, other):
        # nvidia-ml-py compares by code, which also makes its errors unhashable.
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = None


def _class_name(error_constant):
    words = error_constant[len("NVML_ERROR_") :]
    return "NVMLError_" + string.capwords(words, "_").replace("_", "")


def _make_error_classes():
    classes = {}
    for constant, code in sorted(vars(c).items()):
        if not constant.startswith("NVML_ERROR_"):
            continue
        name = _class_name(constant)
        cls = type(name, (NVMLError,), {"_code": code, "__doc__": "NVML error %d." % code})
        cls.__module__ = "pynvml"
        NVMLError._valClassMapping[code] = cls
        classes[name] = cls
    return classes


ERROR_CLASSES = _make_error_classes()
globals().update(ERROR_CLASSES)


def nvmlExceptionClass(nvmlErrorCode):
    """The NVMLError subclass for a code (ValueError for unknown codes)."""
    if nvmlErrorCode not in NVMLError._valClassMapping:
        raise ValueError("nvmlErrorCode %s is not valid" % nvmlErrorCode)
    return NVMLError._valClassMapping[nvmlErrorCode]


def error_from_name(name):
    """NVMLError subclass instance for an error name like 'GPU_IS_LOST' or 'NVML_ERROR_IN_USE'."""
    return NVMLError(error_code(name))


def error_code(name):
    """Code for an error name with or without the NVML_ERROR_ prefix; ValueError if unknown."""
    key = str(name).upper()
    if key.startswith("NVML_ERROR_"):
        key = key[len("NVML_ERROR_") :]
    if key not in c.ERROR_CODES:
        raise ValueError("unknown NVML error %r; known: %s" % (name, ", ".join(sorted(c.ERROR_CODES))))
    return c.ERROR_CODES[key]
