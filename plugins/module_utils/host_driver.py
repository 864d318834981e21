# -*- coding: utf-8 -*-
# Copyright: (c) 2025, gpuops.cluster developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host facts read from files only: kernel release, Secure Boot, NVIDIA driver state.

No subprocess (no modinfo, no mokutil): everything comes from /proc, /sys and the file system
under host_root, so it works from a container with the host mounted and as non-root.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.gpuops.cluster.plugins.module_utils._fileio import (
    DATA_LIMIT,
    PROC_LIMIT,
    SYSFS_LIMIT,
    ReadError,
    read_bytes,
)

SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
MODULE_FILE_RE = re.compile(r"(^|/)(nvidia|nvidia-current|nvidia-open)\.ko(\.[a-z]+)?$")
VERSION_RE = re.compile(r"\b(\d+\.\d+(?:\.\d+)?)\b")
NVML_SONAME = "libnvidia-ml.so.1"
LIBRARY_DIRS = (
    "usr/lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu/nvidia/current",
    "usr/lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu/nvidia/current",
    "usr/lib64",
    "usr/lib",
    "lib/x86_64-linux-gnu",
    "lib64",
)


# ---------------------------------------------------------------- pure helpers


def parse_driver_version_file(text):
    """/proc/driver/nvidia/version -> {'version': '550.127.05', 'kernel_module': 'open'|...}.

    Proprietary: `NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.127.05  Tue Oct ...`
    Open:        `NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.127.05  Release ...`
    """
    result = {"version": None, "kernel_module": None}
    if not text:
        return result
    for line in text.splitlines():
        if not line.startswith("NVRM version:"):
            continue
        body = line[len("NVRM version:") :]
        result["kernel_module"] = "open" if "Open Kernel Module" in body else "proprietary"
        marker = body.find("Kernel Module")
        tail = body[marker + len("Kernel Module") :] if marker != -1 else body
        for token in tail.split():
            match = VERSION_RE.fullmatch(token)
            if match:
                result["version"] = match.group(1)
                break
        break
    return result


def parse_proc_modules(text):
    """Names of loaded kernel modules from /proc/modules."""
    names = set()
    for line in (text or "").splitlines():
        parts = line.split(None, 1)
        if parts:
            names.add(parts[0])
    return names


def decode_secure_boot(data):
    """SecureBoot efivar bytes -> 'enabled' | 'disabled' | 'unknown'.

    efivarfs files start with 4 bytes of attributes, then the value (one byte: 1 = on).
    A bare one-byte value (as some tools write it) is accepted too.
    """
    if data is None:
        return "unknown"
    if len(data) >= 5:
        value = data[4]
    elif len(data) == 1:
        value = data[0]
    else:
        return "unknown"
    if value == 1:
        return "enabled"
    if value == 0:
        return "disabled"
    return "unknown"


def version_from_library_name(name):
    """'libnvidia-ml.so.550.127.05' -> '550.127.05'; else None."""
    prefix = "libnvidia-ml.so."
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    match = VERSION_RE.fullmatch(rest)
    if match and rest.count(".") >= 1:
        return rest
    return None


def modules_dep_has_nvidia(text):
    for line in (text or "").splitlines():
        path = line.split(":", 1)[0]
        if MODULE_FILE_RE.search(path):
            return True
    return False


# ---------------------------------------------------------------- file access


# A kernel release names a folder under lib/modules: never a path that leaves it.
RELEASE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$")
# Files walked under lib/modules/<release> looking for the nvidia module (a kernel has ~6000).
MAX_MODULE_FILES = 100000


def _read_text(path, limit=PROC_LIMIT):
    try:
        return read_bytes(path, limit).decode("utf-8")
    except (ReadError, UnicodeDecodeError):
        return None


def _read_bytes(path, limit=SYSFS_LIMIT):
    try:
        return read_bytes(path, limit)
    except ReadError:
        return None


def _exists(path):
    return os.path.exists(path)


def read_kernel_release(host_root):
    text = _read_text(os.path.join(host_root, "proc/sys/kernel/osrelease"), SYSFS_LIMIT)
    if text and text.strip():
        release = text.strip()
        return release if RELEASE_RE.match(release) else None
    if os.path.realpath(host_root) == "/":
        try:
            return os.uname()[2]
        except AttributeError:
            return None
    return None


def read_secure_boot(host_root):
    """'enabled' / 'disabled' / 'unknown'.

    Booted without EFI (sys/firmware present, sys/firmware/efi absent): disabled.
    EFI variables readable but no SecureBoot variable: disabled (firmware without Secure Boot).
    No sys/firmware, efivarfs not mounted, or unreadable: unknown.
    """
    firmware = os.path.join(host_root, "sys/firmware")
    efi = os.path.join(firmware, "efi")
    if not os.path.isdir(efi):
        return "disabled" if os.path.isdir(firmware) else "unknown"
    efivars = os.path.join(efi, "efivars")
    var = os.path.join(efivars, SECURE_BOOT_VAR)
    data = _read_bytes(var)
    if data is not None:
        return decode_secure_boot(data)
    try:
        if os.listdir(efivars) and not os.path.exists(var):
            return "disabled"
    except (IOError, OSError):
        pass
    return "unknown"


def _find_module_file(host_root, release):
    if not release or not RELEASE_RE.match(release):
        return False
    base = os.path.join(host_root, "lib/modules", release)
    dep = _read_text(os.path.join(base, "modules.dep"), DATA_LIMIT)
    if dep is not None and modules_dep_has_nvidia(dep):
        return True
    seen = 0
    for _dirpath, _dirnames, filenames in os.walk(base):
        for name in filenames:
            seen += 1
            if MODULE_FILE_RE.search(name):
                return True
        if seen > MAX_MODULE_FILES:
            break
    return False


def _find_nvml_library(host_root):
    """(present, version from a libnvidia-ml.so.<version> file name or None)."""
    present = False
    version = None
    for rel in LIBRARY_DIRS:
        directory = os.path.join(host_root, rel)
        try:
            names = os.listdir(directory)
        except (IOError, OSError):
            continue
        for name in names:
            if not name.startswith("libnvidia-ml.so"):
                continue
            if name == NVML_SONAME:
                present = True
            found = version_from_library_name(name)
            if found:
                present = True
                version = version or found
    return present, version


def parse_driver_params(text):
    """/proc/driver/nvidia/params -> {name: value} (lines like ``RmProfilingAdminOnly: 1``)."""
    params = {}
    for line in (text or "").splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            params[name.strip()] = value.strip()
    return params


def profiling_admin_only(params):
    """RmProfilingAdminOnly as a bool (GPU performance counters for admins only), None if absent."""
    value = params.get("RmProfilingAdminOnly")
    if value is None or not value.isdigit():
        return None
    return int(value) != 0


def read_host_driver(host_root="/"):
    """Host and driver facts: ({kernel, secure_boot}, {state, version, kernel_module, ...})."""
    release = read_kernel_release(host_root)
    host = {"kernel": release, "secure_boot": read_secure_boot(host_root)}

    modules = parse_proc_modules(_read_text(os.path.join(host_root, "proc/modules")))
    version_file = _read_text(os.path.join(host_root, "proc/driver/nvidia/version"))
    parsed = parse_driver_version_file(version_file)
    loaded = version_file is not None or "nvidia" in modules or _exists(os.path.join(host_root, "sys/module/nvidia"))
    driver = {
        "state": "none",
        "version": parsed["version"],
        "kernel_module": parsed["kernel_module"],
        "nouveau_loaded": "nouveau" in modules or _exists(os.path.join(host_root, "sys/module/nouveau")),
        "cuda_driver_version": None,
        "nvml_version": None,
        "profiling_admin_only": None,
    }
    if loaded:
        driver["state"] = "loaded"
        params = parse_driver_params(_read_text(os.path.join(host_root, "proc/driver/nvidia/params")))
        driver["profiling_admin_only"] = profiling_admin_only(params)
        if driver["version"] is None:
            text = _read_text(os.path.join(host_root, "sys/module/nvidia/version"), SYSFS_LIMIT)
            if text and text.strip():
                driver["version"] = text.strip()
        return host, driver
    lib_present, lib_version = _find_nvml_library(host_root)
    if lib_present or _find_module_file(host_root, release):
        driver["state"] = "installed"
        driver["version"] = lib_version
    return host, driver
