# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which GPUs a mig_partition run works on, and what each should look like. Pure logic.

- ``validate_params``: every option checked (types, bounds, character sets, combinations)
  before NVML is even opened; errors name the option and the allowed values;
- ``select_gpus``: ``gpus`` and ``device_filter`` against the host's GPU identities;
- ``desired_states``: the wanted state per selected GPU, from ``layout`` or from the entries
  of a mig-parted config (the mig role's plan passes its entries as ``config``).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuops.cluster.plugins.module_utils.mig.catalog import parse_pci_device_id
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.parted import (
    CONFIG_NAME,
    MigConfigError,
    resolve_mig_config,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.planner import MigLayoutError

RESET_POLICIES = ("never", "if_idle")
MAX_FORCE_TIMEOUT = 3600
MAX_GPU_INDEX = 1023
MAX_RESET_ARGS = 64
MAX_ARG_LENGTH = 4096
PLACEHOLDERS = ("{uuid}", "{index}", "{bus_id}")
_UUID = re.compile(r"^GPU-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
_INDEX = re.compile(r"^[0-9]{1,4}$")
_FILTER = re.compile(r"^(0x)?[0-9a-fA-F]{8}$")
_BRACED = re.compile(r"\{[^{}]*\}")


class MigParamError(ValueError):
    """A bad option; the message names it and what is allowed."""


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def shown(value, limit=64):
    """A module option's value for an error message: repr, at most ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_params(params):
    """Raise MigParamError for the first bad option; returns the params with defaults applied."""
    params = dict(params)
    gpus = params.get("gpus")
    if gpus is None:
        gpus = ["all"]
    if not isinstance(gpus, list) or not gpus:
        raise MigParamError(
            "gpus: must name at least one GPU; allowed: all, an NVML index (0-%d) or a GPU UUID "
            "(GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)" % MAX_GPU_INDEX
        )
    for position, selector in enumerate(gpus):
        value = str(selector).strip() if isinstance(selector, (str, int)) and not isinstance(selector, bool) else None
        if value is None or not (
            value.lower() == "all" or (_INDEX.match(value) and int(value) <= MAX_GPU_INDEX) or _UUID.match(value)
        ):
            raise MigParamError(
                "gpus[%d]: %s is not a GPU selector; allowed: all, an NVML index (0-%d) or a GPU UUID "
                "(GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)" % (position, shown(selector), MAX_GPU_INDEX)
            )
    params["gpus"] = [str(g).strip() for g in gpus]
    device_filter = params.get("device_filter")
    if device_filter is not None:
        if not isinstance(device_filter, list) or not device_filter:
            raise MigParamError(
                "device_filter: must be a non-empty list of PCI device ids like 0x20B010DE, or left out"
            )
        for position, item in enumerate(device_filter):
            if not isinstance(item, str) or not _FILTER.match(item.split(":", 1)[0].strip()):
                raise MigParamError(
                    "device_filter[%d]: %s is not a PCI device id; allowed: 0xDDDDVVVV (device << 16 | vendor, "
                    "like 0x20B010DE)" % (position, shown(item))
                )
    sources = [key for key in ("layout", "config_file", "config") if params.get(key) is not None]
    if len(sources) > 1:
        raise MigParamError("%s: set only one of layout, config_file and config" % " and ".join(sources))
    if params.get("config_file") is not None:
        path = params["config_file"]
        if not isinstance(path, str) or not path.strip():
            raise MigParamError("config_file: empty path; give the mig-parted file, or leave config_file out")
        if "\x00" in path or "\n" in path:
            raise MigParamError("config_file: must not contain NUL or newline characters")
    config_name = params.get("config_name")
    if params.get("config_file") is not None or params.get("config") is not None:
        if not isinstance(config_name, str) or not config_name:
            raise MigParamError(
                "config_name: required with %s (the name of one config under mig-configs)"
                % ("config_file" if params.get("config_file") is not None else "config")
            )
        if not CONFIG_NAME.match(config_name):
            raise MigParamError(
                "config_name: not a config name; allowed: letters, digits, '-', '_', '.', '+' (up to 253)"
            )
    elif config_name is not None:
        raise MigParamError("config_name: only used with config_file or config; it would be ignored here")
    if not isinstance(params.get("mig_enabled", True), bool):
        raise MigParamError("mig_enabled: must be true or false")
    if params.get("layout") is not None:
        if not isinstance(params["layout"], dict):
            raise MigParamError("layout: must be a mapping of MIG profile to count")
        if not params.get("mig_enabled", True):
            if params["layout"]:
                raise MigParamError(
                    "layout: must be empty or left out with mig_enabled: false (MIG off has no instances)"
                )
            params["layout"] = None
    if params.get("reset_policy", "never") not in RESET_POLICIES:
        raise MigParamError("reset_policy: must be one of %s" % ", ".join(RESET_POLICIES))
    command = params.get("reset_command")
    if command is not None:
        validate_reset_command(command)
    timeout = params.get("force_timeout", 30)
    if not _is_int(timeout) or not 0 <= timeout <= MAX_FORCE_TIMEOUT:
        raise MigParamError(
            "force_timeout: %s is out of range; allowed: whole seconds 0-%d" % (shown(timeout), MAX_FORCE_TIMEOUT)
        )
    if not isinstance(params.get("force", False), bool):
        raise MigParamError("force: must be true or false")
    return params


def validate_reset_command(command, option="reset_command"):
    """An argv list: 1-64 non-empty strings without NUL/newline, only the known placeholders."""
    if not isinstance(command, list) or not command:
        raise MigParamError(
            "%s: must be a non-empty argv list (the program first), for example "
            "[nvidia-smi, --gpu-reset, -i, '{uuid}']" % option
        )
    if len(command) > MAX_RESET_ARGS:
        raise MigParamError("%s: at most %d arguments" % (option, MAX_RESET_ARGS))
    for position, item in enumerate(command):
        if not isinstance(item, str) or not item:
            raise MigParamError("%s[%d]: must be a non-empty string" % (option, position))
        if len(item) > MAX_ARG_LENGTH or any(ch in item for ch in ("\x00", "\n", "\r")):
            raise MigParamError(
                "%s[%d]: must be at most %d characters, without NUL or line breaks" % (option, position, MAX_ARG_LENGTH)
            )
        for placeholder in _BRACED.findall(item):
            if placeholder not in PLACEHOLDERS:
                raise MigParamError(
                    "%s[%d]: unknown placeholder %s; allowed: %s"
                    % (option, position, placeholder, ", ".join(PLACEHOLDERS))
                )
    return command


def select_gpus(gpus, selectors, device_filter):
    """(selected identity records, explicitly named indices); raises MigParamError naming the option."""
    selectors = list(selectors or ["all"])
    chosen = []
    explicit = set()
    for selector in selectors:
        value = str(selector).strip()
        if value.lower() == "all":
            chosen.extend(gpus)
            continue
        if value.isdigit():
            match = [g for g in gpus if g["index"] == int(value)]
        else:
            match = [g for g in gpus if g.get("uuid") and g["uuid"].lower() == value.lower()]
        if not match:
            unreadable = [g["error"] for g in gpus if g.get("unreadable")]
            raise MigParamError(
                "gpus: %s matches no GPU on this host; allowed: all, an index (%s) or a GPU UUID (%s)%s"
                % (
                    value,
                    ", ".join(str(g["index"]) for g in gpus) or "none",
                    ", ".join(g["uuid"] for g in gpus if g.get("uuid")) or "none",
                    "; UUIDs not readable: %s" % "; ".join(unreadable) if unreadable else "",
                )
            )
        explicit.update(g["index"] for g in match)
        chosen.extend(match)
    seen = set()
    result = []
    for gpu in sorted(chosen, key=lambda g: g["index"]):
        if gpu["index"] not in seen:
            seen.add(gpu["index"])
            result.append(gpu)
    if device_filter:
        filters = [parse_pci_device_id(str(item).split(":", 1)[0].strip()) for item in device_filter]
        # A lost or unreadable GPU's device id is unknown: it stays selected, so the caller hears about it.
        result = [g for g in result if g.get("lost") or g.get("unreadable") or g.get("pci_device_id") in filters]
        if not result:
            raise MigParamError(
                "device_filter: %s matches none of the selected GPUs; they are %s"
                % (
                    ", ".join(str(f) for f in device_filter),
                    ", ".join("%d: 0x%08X" % (g["index"], g["pci_device_id"]) for g in gpus if g.get("pci_device_id"))
                    or "none",
                )
            )
    return result, explicit


def desired_states(gpus, explicit, params, config=None, known_indices=None):
    """Desired {index: {"mig_enabled": bool|None, "layout": dict|None, "reason": str}} per selected GPU.

    ``config`` (a parsed MigPartedConfig) with ``params["config_name"]``, or ``params["layout"]``
    and ``params["mig_enabled"]``. Lost GPUs are left out.
    """
    wanted = {}
    usable = [g for g in gpus if not g.get("lost")]
    if config is not None:
        rows = [
            {
                "index": g["index"],
                "name": g.get("name"),
                "pci_device_id": g.get("pci_device_id"),
                "pci_subsystem_id": g.get("pci_subsystem_id"),
                "mig_capable": g["mig_capable"],
            }
            for g in usable
        ]
        try:
            resolved = resolve_mig_config(config, params["config_name"], rows, known_indices)
        except MigConfigError as exc:
            raise MigParamError(
                "%s, config_name %s: %s" % (params.get("_config_source") or "config", params["config_name"], exc)
            ) from exc
        for gpu in usable:
            state = resolved[gpu["index"]]
            if state["status"] == "configure":
                wanted[gpu["index"]] = {
                    "mig_enabled": state["mig_enabled"],
                    "layout": state["layout"],
                    "reason": state["reason"],
                }
            else:
                wanted[gpu["index"]] = {"mig_enabled": None, "layout": None, "reason": state["reason"]}
        return wanted
    for gpu in usable:
        if not gpu["mig_capable"]:
            if gpu["index"] in explicit and params["mig_enabled"]:
                raise MigParamError(
                    "gpus: GPU %d (%s) cannot do MIG; select MIG-capable GPUs (or 'all', which skips it)"
                    % (gpu["index"], gpu.get("name"))
                )
            wanted[gpu["index"]] = {"mig_enabled": None, "layout": None, "reason": "GPU cannot do MIG"}
            continue
        layout = params.get("layout") if params["mig_enabled"] else {}
        wanted[gpu["index"]] = {
            "mig_enabled": bool(params["mig_enabled"]),
            "layout": layout,
            "reason": "layout" if params["mig_enabled"] else "mig_enabled: false",
        }
    return wanted


def describe_layout_error(exc, what, gpu):
    return "%s: GPU %d (%s): %s" % (
        what,
        gpu["index"],
        gpu.get("name"),
        str(exc).replace("desired_layout: ", "").replace("desired_layout", what),
    )


__all__ = [
    "RESET_POLICIES",
    "MigLayoutError",
    "MigParamError",
    "describe_layout_error",
    "desired_states",
    "select_gpus",
    "validate_params",
    "validate_reset_command",
]
