# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nvidia-ml-py (``pynvml``) loading, NVML error codes and texts, and the NVML session."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import traceback
import warnings

# NVML C API values (stable ABI; the same numbers nvidia-ml-py exports).
SUCCESS = 0
ERROR_UNINITIALIZED = 1
ERROR_INVALID_ARGUMENT = 2
ERROR_NOT_SUPPORTED = 3
ERROR_NO_PERMISSION = 4
ERROR_NOT_FOUND = 6
ERROR_INSUFFICIENT_SIZE = 7
ERROR_DRIVER_NOT_LOADED = 9
ERROR_LIBRARY_NOT_FOUND = 12
ERROR_FUNCTION_NOT_FOUND = 13
ERROR_GPU_IS_LOST = 15
ERROR_RESET_REQUIRED = 16
ERROR_LIB_RM_VERSION_MISMATCH = 18
ERROR_IN_USE = 19
ERROR_INSUFFICIENT_RESOURCES = 23
ERROR_UNKNOWN = 999

NO_VALUE = 0xFFFFFFFF

INIT_REASONS = {
    ERROR_LIBRARY_NOT_FOUND: "libnvidia-ml not found: the NVIDIA driver's user-space libraries are not installed",
    ERROR_DRIVER_NOT_LOADED: "NVIDIA kernel driver not loaded",
    ERROR_NO_PERMISSION: "no permission to open the NVIDIA device nodes (/dev/nvidia*)",
    ERROR_LIB_RM_VERSION_MISMATCH: "libnvidia-ml and the loaded kernel driver have different "
    "versions: reboot or reload the driver",
}
LIBRARY = "nvidia-ml-py"
REASON_NO_BINDINGS = "nvidia-ml-py not installed: python bindings (pynvml) missing"


def load_bindings():
    """(pynvml module, None, None) or (None, reason, traceback text)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pynvml  # noqa: PLC0415  (optional dependency, imported lazily)
    except ImportError:
        return None, REASON_NO_BINDINGS, traceback.format_exc()
    return pynvml, None, None


def const(nvml, name, default):
    """A constant of the bindings, or the C API's value when these bindings lack it."""
    value = getattr(nvml, name, None)
    return default if value is None else value


def text(value):
    """NVML strings arrive as str (functions) or bytes (struct fields): always str or None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00").strip()
    return value or None


def error_code(exc):
    code = getattr(exc, "value", None)
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def error_text(exc):
    """Text of an NVML (or any) error, as nvidia-ml-py's str() gives it: 'Unknown Error'."""
    try:
        message = str(exc)
    except Exception:  # str() of an NVMLError may itself call into NVML
        message = ""
    code = error_code(exc)
    if not message:
        message = "NVML error %s" % code if code is not None else exc.__class__.__name__
    return message


def error_detail(exc):
    """Text and code: 'Unknown Error (NVML error 999)'."""
    message = error_text(exc)
    code = error_code(exc)
    if code is not None and ("code %d" % code) not in message and ("error %d" % code) not in message:
        message = "%s (NVML error %d)" % (message, code)
    return message


def init_reason(exc):
    code = error_code(exc)
    if code in INIT_REASONS:
        return INIT_REASONS[code]
    return "nvmlInit failed: %s" % error_text(exc)


class InitError(Exception):
    """nvmlInit failed, or the bindings are missing; ``reason`` says why in one sentence."""

    def __init__(self, reason, missing_library=False, import_traceback=None):
        super(InitError, self).__init__(reason)
        self.reason = reason
        self.missing_library = missing_library
        self.import_traceback = import_traceback


class Session:
    """``with Session(nvml) as lib:``: nvmlInit on entry, nvmlShutdown on exit.

    ``nvml`` None loads nvidia-ml-py; InitError when it is missing or nvmlInit fails.
    ``pause()``/``resume()`` close and reopen the session (a GPU reset needs NVML closed).
    """

    def __init__(self, nvml=None):
        self.nvml = nvml
        self.open = False

    def __enter__(self):
        if self.nvml is None:
            self.nvml, reason, trace = load_bindings()
            if self.nvml is None:
                raise InitError(reason, missing_library=True, import_traceback=trace)
        self.resume()
        return self.nvml

    def resume(self):
        try:
            self.nvml.nvmlInit()
        except Exception as exc:
            raise InitError(init_reason(exc)) from exc
        self.open = True

    def pause(self):
        if self.open:
            self.open = False
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass

    def __exit__(self, *exc_info):
        self.pause()
        return False
