# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The NVML call policy: every NVML call of the collection goes through a ``Caller``.

- strict (planning and applying): an NVML error raises ``NvmlCallError`` naming the GPU, the
  call and the error; GPU_IS_LOST raises its subclass ``GpuLost``;
- tolerant (facts): the error is recorded under the field being read (``errors[field]``), the
  call returns ``FAILED`` and the reader goes on with the next field.

In both, NOT_SUPPORTED is an answer (the feature is absent): the call returns ``UNSUPPORTED``;
codes the caller lists in ``absent=`` (for example NOT_FOUND for an empty MIG device slot)
return ``ABSENT``. ``ok(value)`` tells a real result from these markers, so one reader serves
both policies: under the strict one the markers for errors never come back.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import ctypes

from ansible_collections.gpuops.cluster.plugins.module_utils.nvml.bindings import (
    ERROR_GPU_IS_LOST,
    ERROR_NOT_SUPPORTED,
    error_code,
    error_detail,
    error_text,
)


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "<%s>" % self.name

    def __bool__(self):
        return False


FAILED = _Marker("failed")
UNSUPPORTED = _Marker("unsupported")
ABSENT = _Marker("absent")


def ok(value):
    return value is not FAILED and value is not UNSUPPORTED and value is not ABSENT


class NvmlCallError(Exception):
    """An NVML call failed; the text names the GPU, the call and the error."""

    def __init__(self, call, detail, code=None, gpu=None, uuid=None):
        self.call = call
        self.detail = detail
        self.code = code
        self.gpu = gpu
        self.uuid = uuid
        super(NvmlCallError, self).__init__(self.describe())

    def where(self):
        if self.gpu is None:
            return "NVML"
        if self.uuid:
            return "GPU %d (%s)" % (self.gpu, self.uuid)
        return "GPU %d" % self.gpu

    def describe(self):
        return "%s: %s failed: %s" % (self.where(), self.call, self.detail)

    def __str__(self):
        return self.describe()


class GpuLost(NvmlCallError):
    """The GPU answered GPU_IS_LOST: nothing on it can be read or changed."""


class Caller:
    """NVML calls for one GPU (``gpu`` is its NVML index) or for the system (``gpu`` None).

    ``strict``: raise NvmlCallError on errors; else record them in ``errors`` (a dict shared
    with the GPU's facts) under the field name given to each call.
    """

    def __init__(self, nvml, gpu=None, strict=True, errors=None, uuid=None, trace=None):
        self.nvml = nvml
        self.gpu = gpu
        self.uuid = uuid
        self.strict = strict
        self.errors = {} if errors is None else errors
        self.lost = False
        self.trace = trace
        self.error_class = getattr(nvml, "NVMLError", None)

    def _is_nvml(self, exc):
        return self.error_class is not None and isinstance(exc, self.error_class)

    def _fail(self, func_name, field, detail, code, exc=None, optional=False):
        if code == ERROR_GPU_IS_LOST:
            self.lost = True
        if optional:
            return FAILED
        if self.strict:
            kind = GpuLost if code == ERROR_GPU_IS_LOST else NvmlCallError
            error = kind(func_name, detail, code=code, gpu=self.gpu, uuid=self.uuid)
            if exc is not None:
                raise error from exc
            raise error
        self.errors.setdefault(field or func_name, "%s: %s" % (func_name, detail))
        return FAILED

    def missing(self, name, field=None):
        """Report a name these bindings lack (a type or constant), under the policy."""
        return self._fail(name, field, "not in these NVML bindings (nvidia-ml-py too old?)", None)

    def __call__(self, func_name, *args, **options):
        """Call ``func_name(*args)``. Options: field (where a tolerant error is recorded),
        absent (codes that mean "nothing there": ABSENT), optional (errors return FAILED
        without raising or recording: details nobody must rely on)."""
        field = options.get("field")
        absent = options.get("absent", ())
        optional = options.get("optional", False)
        if self.lost:
            if self.strict and not optional:
                raise GpuLost(func_name, "the GPU was lost earlier in this run", gpu=self.gpu, uuid=self.uuid)
            return FAILED
        func = getattr(self.nvml, func_name, None)
        if func is None:
            return self._fail(
                func_name, field, "not in these NVML bindings (nvidia-ml-py too old?)", None, None, optional
            )
        if self.trace is not None:
            self.trace.append((func_name, self.gpu))
        try:
            return func(*args)
        except Exception as exc:
            if not self._is_nvml(exc):
                if self.strict and not optional:
                    raise NvmlCallError(
                        func_name, "%s: %s" % (exc.__class__.__name__, exc), gpu=self.gpu, uuid=self.uuid
                    ) from exc
                return self._fail(func_name, field, error_text(exc), None, exc, optional)
            code = error_code(exc)
            if code == ERROR_NOT_SUPPORTED:
                return UNSUPPORTED
            if code in absent:
                return ABSENT
            detail = error_detail(exc) if self.strict else error_text(exc)
            return self._fail(func_name, field, detail, code, exc, optional)

    def array(self, func_name, parent, profile_id, capacity, item_type, field=None):
        """The (array, count) out-parameter calls (GPU/compute instances of one profile)."""
        if capacity <= 0:
            return []
        items = (item_type * capacity)()
        count = ctypes.c_uint(capacity)
        result = self(func_name, parent, profile_id, items, ctypes.byref(count), field=field)
        if not ok(result):
            return result
        if count.value > capacity:
            return self._fail(
                func_name,
                field,
                "reported %d items for an array of %d" % (count.value, capacity),
                None,
            )
        return [items[i] for i in range(count.value)]

    def placements(self, func_name, parent, profile_id, item_type, field=None):
        """The possible-placements calls: count first (NULL array), then the array."""
        count = ctypes.c_uint(0)
        result = self(func_name, parent, profile_id, None, ctypes.byref(count), field=field)
        if not ok(result):
            return result
        if not count.value:
            return []
        array = (item_type * count.value)()
        result = self(func_name, parent, profile_id, array, ctypes.byref(count), field=field)
        if not ok(result):
            return result
        return [{"start": int(p.start), "size": int(p.size)} for p in array[: count.value]]
