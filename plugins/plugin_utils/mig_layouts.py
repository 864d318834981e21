# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MIG layouts declared in the inventory: validation and rendering for the mig role.

Pure functions, no I/O. Each inventory host declares its desired MIG state in role variables
(collected per host into a ``request`` by the role, see roles/mig/tasks/collect.yml):

- ``mig_layout``: ``{profile: count}`` for every MIG-capable GPU of the host;
- or ``mig_config_name`` with a mig-parted v1 config (``mig_parted_config`` inline, or the text
  of ``mig_config_file``; a GPU Operator ConfigMap holding ``config.yaml`` is accepted too);
- ``mig_gpu_layouts``: per-GPU overrides ``[{gpus: [0, 1], layout: {...}}, {gpus: [7],
  mig_enabled: false}]`` applied after the above, in order;
- ``mig_enabled: false`` alone: MIG off on every GPU.

Every host's request becomes a list of mig-parted v1 entries (so the same data drives the
host-mode apply, the boot-time re-apply file and the GPU Operator's mig-manager ConfigMap),
is resolved per GPU against the host's gpu_probe facts with mig-parted's matching rules and
planned with ``plan_layout`` against the GPU's model, before anything changes. Errors name the
host, the variable and the reason.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re

from ansible_collections.gpuops.cluster.plugins.module_utils._fileio import CONFIG_LIMIT, ReadError, read_text
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.catalog import find_model
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.parted import (
    MigConfigError,
    load_config_text,
    parse_mig_parted_config,
    resolve_mig_config,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.planner import MigLayoutError, plan_layout_for_model
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.selection import (
    RESET_POLICIES,
    MigParamError,
    validate_reset_command,
)
from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import check_ranges, plain, shown
from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import empty as _empty
from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import is_int as _is_int
from ansible_collections.gpuops.cluster.plugins.plugin_utils.config_formats import (
    FormatError,
    systemd_environment,
    systemd_exec,
    systemd_path,
)
from ansible_collections.gpuops.cluster.plugins.plugin_utils.operator_config import (
    LABEL_MIG,
    LABEL_MIG_STATE,
    clusterpolicy_patch,
    configmap,
    label_changes,
    retained,
)

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

MODES = ("host", "operator", "none")
CONFIG_PREFIX = "gpuops-"
# Kubernetes label values: at most 63 characters, alphanumerics, '-', '_' and '.' inside.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_ENTRY_INDEX = re.compile(r"\[(\d+)\]$")
_ENTRY_PATH = re.compile(r"mig-configs\.host\[(\d+)\]")
NVIDIA_VENDOR = 0x10DE
MAX_COUNT = 64
MAX_GPU_INDEX = 1023

__all__ = ["MigInventoryError", "MigLayoutError", "plain"]


class MigInventoryError(ValueError):
    """One or more hosts declare MIG layouts that cannot be honoured; the message lists them all."""


def _layout_dict(value, where):
    """A {profile: count} mapping as mig-parted writes it; counts must be plain ints 0-64."""
    if not isinstance(value, dict):
        raise MigLayoutError("%s: must be a mapping of MIG profile to count, got %s" % (where, type(value).__name__))
    result = {}
    for name, count in value.items():
        if not isinstance(name, str):
            raise MigLayoutError("%s: profile names must be strings, got %s" % (where, shown(name)))
        if isinstance(count, dict):
            raise MigLayoutError(
                "%s.%s: the role takes a count per profile (mig-parted format); compute-instance "
                "profiles are for gpuops.cluster.mig_partition directly" % (where, name)
            )
        if not _is_int(count) or not 0 <= count <= MAX_COUNT:
            raise MigLayoutError(
                "%s.%s: count must be an integer 0-%d, got %s" % (where, name, MAX_COUNT, shown(count))
            )
        result[name] = count
    return result


def _load_config(request):
    """The mig-parted config a host names, as a mapping; the source for messages.

    ``mig_config_file`` is read here, on the controller, at most 1 MiB; errors name the file
    and the key path, never the content.
    """
    inline = request.get("parted_config")
    path = request.get("config_file") or ""
    if not _empty(inline) and path:
        raise MigLayoutError("mig_parted_config and mig_config_file: set one of them, not both")
    if not _empty(inline):
        return inline, "mig_parted_config"
    if not path:
        raise MigLayoutError(
            "mig_config_name is set but no config holds it: set mig_parted_config (inline mig-parted v1) "
            "or mig_config_file (a mig-parted v1 file or a GPU Operator mig-parted ConfigMap)"
        )
    if not isinstance(path, str) or "\x00" in path or "\n" in path:
        raise MigLayoutError("mig_config_file: must be a path without NUL or newline characters")
    if not os.path.isabs(path):
        path = os.path.join(request.get("base_dir") or os.getcwd(), path)
    source = "mig_config_file %s" % path
    try:
        text = read_text(path, CONFIG_LIMIT)
    except ReadError as exc:
        raise MigLayoutError("%s: cannot read it: %s" % (source, exc.reason)) from None
    try:
        return load_config_text(text, source), source
    except MigConfigError as exc:
        raise MigLayoutError(str(exc)) from None


def _override_entries(gpu_layouts, indices):
    """(entries, sources, claimed GPU indices) of mig_gpu_layouts; a GPU in two overrides is an error."""
    entries = []
    sources = []
    claimed = {}
    for index, override in enumerate(gpu_layouts):
        where = "mig_gpu_layouts[%d]" % index
        if not isinstance(override, dict):
            raise MigLayoutError("%s: must be a mapping with keys gpus, layout, mig_enabled" % where)
        unknown = sorted(set(override) - {"gpus", "layout", "mig_enabled"})
        if unknown:
            raise MigLayoutError("%s.%s: unknown key; allowed: gpus, layout, mig_enabled" % (where, unknown[0]))
        gpus = override.get("gpus")
        if not isinstance(gpus, list) or not gpus or not all(_is_int(g) and 0 <= g <= MAX_GPU_INDEX for g in gpus):
            raise MigLayoutError(
                "%s.gpus: must be a non-empty list of GPU indices (0-%d), got %s" % (where, MAX_GPU_INDEX, shown(gpus))
            )
        for gpu in gpus:
            if gpu in claimed:
                raise MigLayoutError(
                    "%s.gpus: GPU %d is already in %s; each GPU may have one override" % (where, gpu, claimed[gpu])
                )
            claimed[gpu] = where
        if indices is not None:
            missing = sorted(set(gpus) - set(indices))
            if missing:
                raise MigLayoutError(
                    "%s.gpus: GPU %s not on this host; it has GPU indices %s"
                    % (where, ", ".join(str(m) for m in missing), sorted(indices))
                )
        on = override.get("mig_enabled", True)
        if not isinstance(on, bool):
            raise MigLayoutError("%s.mig_enabled: must be true or false, got %s" % (where, shown(on)))
        sub_layout = override.get("layout")
        if on:
            if sub_layout is None:
                raise MigLayoutError("%s.layout: required when mig_enabled is true" % where)
            entry = {"devices": sorted(set(gpus)), "mig-enabled": True}
            entry["mig-devices"] = _layout_dict(sub_layout, where + ".layout")
        else:
            if not _empty(sub_layout):
                raise MigLayoutError("%s.layout: must be empty when mig_enabled is false" % where)
            entry = {"devices": sorted(set(gpus)), "mig-enabled": False}
        entries.append(entry)
        sources.append(where)
    return entries, sources, set(claimed)


def host_entries(request, indices=None):
    """The host's desired state as mig-parted v1 entries, with the variable each came from.

    ``indices``: the host's GPU indices (from its facts). The entries are disjoint: a GPU that
    has a ``mig_gpu_layouts`` override is taken out of the host-wide entry (``devices: all``
    becomes the list of the other GPUs), so every GPU matches at most one entry, as
    mig_partition and mig-parted require. Returns ``(entries, sources)``, or ``(None, [])`` when
    the host declares nothing (MIG is not managed there). Raises MigLayoutError naming the variable.
    """
    layout = request.get("layout")
    config_name = request.get("config_name") or ""
    gpu_layouts = request.get("gpu_layouts")
    enabled = request.get("enabled", True)
    if not isinstance(enabled, bool):
        raise MigLayoutError("mig_enabled: must be true or false, got %s" % shown(enabled))
    if _empty(gpu_layouts):
        gpu_layouts = []
    if not isinstance(gpu_layouts, list):
        raise MigLayoutError("mig_gpu_layouts: must be a list of {gpus, layout, mig_enabled}")
    has_layout = not _empty(layout)
    if has_layout and config_name:
        raise MigLayoutError("mig_layout and mig_config_name: set one of them, not both")
    if not enabled and (has_layout or config_name):
        raise MigLayoutError(
            "mig_enabled is false but %s is set: a layout needs MIG enabled"
            % ("mig_layout" if has_layout else "mig_config_name")
        )
    base = []
    base_sources = []
    if config_name:
        if not isinstance(config_name, str):
            raise MigLayoutError("mig_config_name: must be a string, got %s" % shown(config_name))
        data, source = _load_config(request)
        try:
            parsed = parse_mig_parted_config(data)
        except MigLayoutError as exc:
            raise MigLayoutError("%s: %s" % (source, exc)) from exc
        if config_name not in parsed.configs:
            raise MigLayoutError(
                "mig_config_name: %s is not in %s; it has: %s" % (shown(config_name), source, ", ".join(parsed.names))
            )
        for index, entry in enumerate(parsed.configs[config_name]):
            base.append(entry.to_dict())
            base_sources.append("mig_config_name=%s (%s entry %d)" % (config_name, source, index))
    elif has_layout:
        base.append({"devices": "all", "mig-enabled": True, "mig-devices": _layout_dict(layout, "mig_layout")})
        base_sources.append("mig_layout")
    elif not enabled:
        base.append({"devices": "all", "mig-enabled": False})
        base_sources.append("mig_enabled")
    overrides, override_sources, claimed = _override_entries(gpu_layouts, indices)
    entries = []
    sources = []
    for entry, source in zip(base, base_sources):  # noqa: B905 (same length; py3.8)
        if claimed:
            devices = entry["devices"]
            if devices == "all":
                if indices is None:
                    raise MigLayoutError("mig_gpu_layouts: the host's GPU indices are unknown (no gpu facts)")
                devices = list(indices)
            rest = [d for d in devices if d not in claimed]
            if not rest:
                continue
            entry = dict(entry, devices=sorted(rest))
        entries.append(entry)
        sources.append(source)
    entries.extend(overrides)
    sources.extend(override_sources)
    if not entries:
        return None, []
    return entries, sources


def _pci_id(value, vendor):
    if value in (None, ""):
        return None
    try:
        return (int(str(value), 16) << 16) | int(str(vendor or "0x10de"), 16)
    except ValueError:
        return None


def gpus_from_facts(gpu_facts):
    """The GPUs of a gpu_probe ``gpu`` fact in the shape resolve_mig_config takes.

    PCI-only facts (NVML unavailable) have no NVML index: GPUs are numbered in PCI bus order,
    which is NVML's default enumeration order.
    """
    result = []
    gpus = sorted((gpu_facts or {}).get("gpus") or [], key=lambda g: (g.get("pci") or {}).get("bus_id") or "")
    if any(g.get("index") is not None for g in gpus):
        gpus = sorted(gpus, key=lambda g: g.get("index") if g.get("index") is not None else 1 << 30)
    for position, gpu in enumerate(gpus):
        pci = gpu.get("pci") or {}
        mig = gpu.get("mig") or {}
        index = gpu.get("index")
        result.append(
            {
                "index": position if index is None else index,
                "name": gpu.get("name"),
                "uuid": gpu.get("uuid"),
                "pci_device_id": _pci_id(pci.get("device_id"), pci.get("vendor_id")),
                "pci_subsystem_id": _pci_id(pci.get("subsystem_device_id"), pci.get("subsystem_vendor_id")),
                "mig_capable": mig.get("capable"),
                "mig": mig,
                "health": (gpu.get("health") or {}).get("status"),
                "health_reasons": list((gpu.get("health") or {}).get("reasons") or []),
            }
        )
    return result


def _describe_gpu(gpu):
    return "GPU %s (%s)" % (gpu["index"], gpu.get("name") or "name unknown")


def _source_of(entry_path, sources):
    match = _ENTRY_INDEX.search(entry_path or "")
    if match and int(match.group(1)) < len(sources):
        return sources[int(match.group(1))]
    return "mig configuration"


def _with_source(text, sources):
    """Replace the synthetic config paths in a planner message by the variables the entries came from."""

    def name(match):
        index = int(match.group(1))
        return sources[index] if index < len(sources) else match.group(0)

    return _ENTRY_PATH.sub(name, text)


# Bounds of the role's numeric settings (seconds unless said otherwise).
SETTING_RANGES = {
    "reboot_timeout": ("mig_reboot_timeout", 60, 86400),
    "boot_driver_wait": ("mig_boot_driver_wait", 0, 3600),
    "drain_timeout": ("mig_drain_timeout", 0, 86400),
    "drain_grace_period": ("mig_drain_grace_period", -1, 86400),
    "operator_wait_timeout": ("mig_operator_wait_timeout", 0, 86400),
    "operator_wait_delay": ("mig_operator_wait_delay", 1, 3600),
    "force_timeout": ("mig_force_timeout", 0, 3600),
}
_BOOL_SETTINGS = {"force": "mig_force", "reboot": "mig_reboot", "boot_unit": "mig_boot_unit"}


def _root(value):
    """mig_host_root: an absolute, normalized path ('' for /)."""
    if not isinstance(value, str) or not value:
        raise MigLayoutError("mig_host_root: must be an absolute path (/ on real hosts)")
    text = value.rstrip("/")
    if text == "":
        return ""
    try:
        systemd_path(text, "mig_host_root")
    except FormatError as exc:
        raise MigLayoutError(str(exc)) from None
    if os.path.normpath(text) != text:
        raise MigLayoutError("mig_host_root: must be a normalized absolute path (no '.', '..' or '//' components)")
    return text


def host_settings(request):
    """Validate the role's host-mode settings; returns what the boot unit and module calls use.

    Every value that reaches the unit file goes through the systemd helpers here (so a line
    break in mig_boot_environment or the reset command is refused before anything changes).
    """
    check_ranges(request, SETTING_RANGES, MigLayoutError)
    for key, variable in _BOOL_SETTINGS.items():
        if key in request and not isinstance(request[key], bool):
            raise MigLayoutError("%s: must be true or false, got %s" % (variable, shown(request[key])))
    policy = request.get("reset_policy", "if_idle")
    if policy not in RESET_POLICIES:
        raise MigLayoutError("mig_reset_policy: %s is not one of %s" % (shown(policy), ", ".join(RESET_POLICIES)))
    command = request.get("reset_command") or []
    if command:
        try:
            validate_reset_command(command, "mig_reset_command")
        except MigParamError as exc:
            raise MigLayoutError(str(exc)) from None
    settings = {"root": _root(request.get("host_root", "/")), "reset_command": list(command), "reset_policy": policy}
    try:
        lib_dir = systemd_path(request.get("boot_lib_dir", "/usr/local/lib/gpuops"), "mig_boot_lib_dir")
        config_dir = systemd_path(request.get("boot_config_dir", "/etc/gpuops"), "mig_boot_config_dir")
        python = request.get("boot_python", "/usr/bin/python3")
        systemd_path(python, "mig_boot_python")
        environment = request.get("boot_environment") or {}
        settings["boot_environment_lines"] = systemd_environment(environment, "mig_boot_environment")
    except FormatError as exc:
        raise MigLayoutError(str(exc)) from None
    settings.update(boot_lib_dir=lib_dir.rstrip("/"), boot_config_dir=config_dir.rstrip("/"), boot_python=python)
    return settings


def boot_exec(plan, settings, driver_wait):
    """ExecStart= of the boot unit: the launcher with the plan's config, GPUs and reset settings."""
    argv = [
        settings["boot_python"],
        "%s/gpuops-mig-apply" % settings["boot_lib_dir"],
        "--config",
        "%s/mig-layout.yaml" % settings["boot_config_dir"],
        "--config-name",
        plan["config_name"],
        "--gpus",
        ",".join(plan["gpus"]),
        "--reset-policy",
        settings["reset_policy"],
        "--driver-wait",
        str(int(driver_wait)),
    ]
    if settings["reset_command"]:
        argv += ["--reset-command", json.dumps(settings["reset_command"])]
    try:
        return systemd_exec(argv, "the boot unit's command")
    except FormatError as exc:
        raise MigLayoutError(str(exc)) from None


def plan_host(host, request, gpu_facts):
    """Validate one host's request against its facts. Returns the host's plan; raises MigLayoutError.

    The plan carries what mig_partition applies as it is (``entries`` under ``config_name``,
    on the GPUs of ``gpus``), what the boot unit applies (the same), and what the verification
    expects per GPU (``expected``), all resolved by the same code as the module's.
    """
    mode = request.get("mode", "host")
    if mode not in MODES:
        raise MigLayoutError("mig_mode: %s is not one of %s" % (shown(mode), ", ".join(MODES)))
    plan = {
        "host": host,
        "mode": mode,
        "managed": False,
        "kube_node": bool(request.get("kube_node", False)),
        "node_name": request.get("node_name") or host,
        "entries": None,
        "config_name": None,
        "gpus": ["all"],
        "states": {},
        "expected": {},
        "warnings": [],
    }
    if mode == "none":
        return plan
    if mode == "host":
        plan["settings"] = host_settings(request)
    facts = gpu_facts or {}
    gpus = gpus_from_facts(facts)
    indices = [g["index"] for g in gpus] if facts else None
    entries, sources = host_entries(request, indices)
    if entries is None:
        return plan
    plan["managed"] = True
    if not facts:
        raise MigLayoutError("no gpu facts: run gpuops.cluster.gpu_probe on the host first")
    nvml = facts.get("source") == "nvml"
    if mode == "host" and not nvml:
        reason = ((facts.get("driver") or {}).get("nvml") or {}).get("reason") or "no NVML"
        raise MigLayoutError(
            "mig_mode host needs NVML on the host, which is unavailable (%s): load the driver "
            "(gpuops.cluster.nvidia_driver) first, or use mig_mode operator" % reason
        )
    if not gpus:
        raise MigLayoutError("%s is set but the host has no NVIDIA GPUs" % sources[0])
    try:
        parsed = parse_mig_parted_config({"version": "v1", "mig-configs": {"host": entries}})
    except MigLayoutError as exc:
        raise MigLayoutError(_with_source(str(exc), sources)) from exc
    plan["entries"] = entries
    plan["config_name"] = config_name_for(entries)

    resolvable = []
    skipped = []
    for gpu in gpus:
        lost = gpu.get("name") is None and nvml
        if lost:
            reasons = "; ".join(gpu["health_reasons"]) or "?"
            plan["warnings"].append("%s: skipped, NVML cannot read it: %s" % (_describe_gpu(gpu), reasons))
            plan["states"][gpu["index"]] = {"status": "skip", "reason": "unreadable: " + reasons}
            skipped.append(gpu["index"])
            continue
        model = find_model(gpu.get("name"), gpu.get("pci_device_id"))
        capable = gpu.get("mig_capable")
        if capable is None:  # PCI-only facts: the catalog says whether the model does MIG
            capable = model is not None
        resolvable.append(dict(gpu, mig_capable=capable))
    try:
        resolved = resolve_mig_config(parsed, "host", resolvable, known_indices=indices)
    except MigLayoutError as exc:
        raise MigLayoutError(_with_source(str(exc), sources)) from exc
    if skipped:
        plan["gpus"] = [str(g["index"]) for g in resolvable]
    by_index = {g["index"]: g for g in resolvable}
    for index in sorted(resolved):
        state = resolved[index]
        gpu = by_index[index]
        source = _source_of(state.get("entry"), sources)
        entry = {"status": state["status"], "reason": _with_source(state["reason"], sources), "source": source}
        if state["status"] == "configure":
            entry["mig_enabled"] = state["mig_enabled"]
            entry["layout"] = dict(state["layout"] or {})
            if state["mig_enabled"]:
                model = find_model(gpu.get("name"), gpu.get("pci_device_id"))
                if model is None:
                    plan["warnings"].append(
                        "%s: not in the MIG catalog; %s is checked against NVML's profiles when applied"
                        % (_describe_gpu(gpu), source)
                    )
                    entry["placements"] = None
                else:
                    try:
                        placements = plan_layout_for_model(model, entry["layout"])
                    except MigLayoutError as exc:
                        raise MigLayoutError("%s on %s: %s" % (source, _describe_gpu(gpu), exc)) from exc
                    entry["placements"] = ["%s@%d" % p for p in placements]
                    entry["model"] = model.key
            plan["expected"][index] = {
                "mig_enabled": entry["mig_enabled"],
                "layout": {k: v for k, v in sorted(entry["layout"].items()) if v},
            }
        plan["states"][index] = entry
    if mode == "host":
        plan["boot"] = {
            "exec": boot_exec(plan, plan["settings"], request.get("boot_driver_wait", 120)),
            "environment": plan["settings"]["boot_environment_lines"],
            "layout_file": "%s/mig-layout.yaml" % plan["settings"]["boot_config_dir"],
            "timeout": int(request.get("boot_driver_wait", 120)) + 300,
        }
    return plan


def partition_args(plan):
    """The mig_partition options that apply a host's plan as it is (the role passes these)."""
    return {
        "config": {"version": "v1", "mig-configs": {plan["config_name"]: plan["entries"]}},
        "config_name": plan["config_name"],
        "gpus": list(plan["gpus"]),
    }


def plan_hosts(hosts):
    """Validate every host; ``hosts`` is ``{name: {"request": {...}, "gpu": gpu facts}}``.

    Returns ``{"hosts": {name: plan}, "errors": [...], "configs": {name: entries},
    "warnings": [...]}``; the caller fails on errors before changing anything.
    """
    plans = {}
    errors = []
    warnings = []
    for name in sorted(hosts):
        item = hosts[name] or {}
        request = item.get("request")
        if not isinstance(request, dict):
            errors.append("%s: the mig role did not collect its variables (not in the play?)" % name)
            continue
        try:
            plans[name] = plan_host(name, request, item.get("gpu"))
        except MigLayoutError as exc:
            errors.append("%s: %s" % (name, exc))
            continue
        warnings.extend("%s: %s" % (name, w) for w in plans[name]["warnings"])
    configs = {}
    try:
        configs = operator_configs(plans)
    except MigLayoutError as exc:
        errors.append(str(exc))
    nodes = {}
    for name in sorted(plans):
        plan = plans[name]
        if plan["mode"] != "operator" or not plan["managed"]:
            continue
        if not plan["kube_node"]:
            errors.append(
                "%s: mig_mode operator needs a Kubernetes node (gpuops_kube_node is not true); use mig_mode host" % name
            )
            continue
        if plan["node_name"] in nodes and nodes[plan["node_name"]] != plan["config_name"]:
            errors.append("%s: Kubernetes node %s already gets another MIG config" % (name, plan["node_name"]))
            continue
        nodes[plan["node_name"]] = plan["config_name"]
    return {"hosts": plans, "errors": errors, "warnings": warnings, "configs": configs, "operator_nodes": nodes}


def _canonical(entries):
    return json.dumps(entries, sort_keys=True, separators=(",", ":"))


def _label_safe(text):
    return text.replace("+", ".")


def config_name_for(entries):
    """A deterministic config name for a list of mig-parted entries (a valid label value).

    ``[{devices: all, mig-enabled: true, mig-devices: {3g.20gb: 2}}]`` -> ``gpuops-all-3g.20gb-x2``;
    ``[{devices: all, mig-enabled: false}]`` -> ``gpuops-all-disabled``; anything else (per-GPU
    entries, device filters, long names) -> ``gpuops-custom-<10 hex digits of its SHA-256>``.
    Equal entries give equal names; a change of layout gives a new name, so the node label
    changes and the GPU Operator's mig-manager applies it.
    """
    if (
        len(entries) == 1
        and entries[0].get("devices") == "all"
        and set(entries[0])
        <= {
            "devices",
            "mig-enabled",
            "mig-devices",
        }
    ):
        entry = entries[0]
        if not entry.get("mig-enabled"):
            return CONFIG_PREFIX + "all-disabled"
        counts = sorted((k, v) for k, v in (entry.get("mig-devices") or {}).items() if v)
        if not counts:
            name = CONFIG_PREFIX + "all-enabled"
        else:
            name = CONFIG_PREFIX + "all-" + "-".join("%s-x%d" % (_label_safe(k), v) for k, v in counts)
        if _LABEL_VALUE.match(name):
            return name
    digest = hashlib.sha256(_canonical(entries).encode("utf-8")).hexdigest()[:10]
    return CONFIG_PREFIX + "custom-" + digest


def operator_configs(plans):
    """``{config name: entries}`` for the operator-mode hosts; a name clash is an error."""
    configs = {}
    owners = {}
    for name in sorted(plans):
        plan = plans[name]
        if plan["mode"] != "operator" or not plan["managed"]:
            continue
        config_name = plan["config_name"]
        if config_name in configs and _canonical(configs[config_name]) != _canonical(plan["entries"]):
            raise MigLayoutError(
                "hosts %s and %s: different layouts map to the config name %s"
                % (owners[config_name], name, config_name)
            )
        configs[config_name] = plan["entries"]
        owners.setdefault(config_name, name)
    return configs


def render_mig_parted_config(configs, include_disabled=True):
    """mig-parted v1 YAML text holding ``configs`` (sorted by name), plus ``all-disabled``.

    ``all-disabled`` is what the ClusterPolicy's ``migManager.config.default`` names for nodes
    without a ``nvidia.com/mig.config`` label, so the ConfigMap always carries it.
    """
    data = {name: configs[name] for name in sorted(configs)}
    if include_disabled and "all-disabled" not in data:
        data["all-disabled"] = [{"devices": "all", "mig-enabled": False}]
    document = {"version": "v1", "mig-configs": {name: data[name] for name in sorted(data)}}
    parse_mig_parted_config(document)  # what we write must be what mig-parted reads
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=False)


def operator_configmap(plan_all, name, namespace, nodes=None, existing_text=None, labels=None):
    """The mig-parted ConfigMap (key ``config.yaml``) for a plan: its configs, plus the configs of
    the existing ConfigMap that nodes outside the plan still name in ``nvidia.com/mig.config``.

    Nothing else of the existing ConfigMap is kept: a config no node names any more is removed.
    """
    configs = dict(plan_all["configs"])
    if existing_text:
        try:
            existing = parse_mig_parted_config(existing_text)
        except MigLayoutError:
            existing = None  # unreadable: ours replaces it
        if existing is not None:
            for config_name in retained(nodes, LABEL_MIG, plan_all.get("operator_nodes") or {}, existing.names):
                if config_name not in configs and config_name != "all-disabled":
                    configs[config_name] = [entry.to_dict() for entry in existing.configs[config_name]]
    return configmap(name, namespace, {"config.yaml": render_mig_parted_config(configs)}, labels)


def node_label_changes(plan_all, nodes):
    """The nvidia.com/mig.config patches this plan needs (each resets the config state label)."""
    return label_changes(nodes, plan_all.get("operator_nodes") or {}, LABEL_MIG, clear=(LABEL_MIG_STATE,))


def operator_status(nodes, targets, state_label="nvidia.com/mig.config.state"):
    """Where each target node stands: ``{"done": bool, "success": [...], "pending": [...], "failed": [...]}``.

    ``nodes``: Node objects (k8s_info resources); ``targets``: ``{node name: config name}``. A
    node counts only once its ``nvidia.com/mig.config`` label names its target config. Failed
    entries carry the state and any ``nvidia.com/mig.*`` / reason annotations of the node.
    """
    by_name = {(n.get("metadata") or {}).get("name"): n for n in nodes or []}
    status = {"success": [], "pending": [], "failed": [], "missing": []}
    for node_name in sorted(targets):
        node = by_name.get(node_name)
        if node is None:
            status["missing"].append(node_name)
            continue
        meta = node.get("metadata") or {}
        labels = meta.get("labels") or {}
        state = labels.get(state_label)
        if labels.get("nvidia.com/mig.config") != targets[node_name]:
            status["pending"].append({"node": node_name, "state": "label %s not set yet" % targets[node_name]})
        elif state == "success":
            status["success"].append(node_name)
        elif state == "failed":
            notes = {
                k: v for k, v in sorted((meta.get("annotations") or {}).items()) if "mig" in k or "reason" in k.lower()
            }
            status["failed"].append(
                {"node": node_name, "config": targets[node_name], "state": state, "annotations": notes}
            )
        else:
            status["pending"].append({"node": node_name, "state": state})
    status["done"] = bool(status["failed"]) or (not status["pending"] and not status["missing"])
    return status


def render_host_layout_file(plan):
    """mig-parted v1 text for /etc/gpuops/mig-layout.yaml: the host's one named config."""
    if not plan.get("managed"):
        raise MigLayoutError("%s: no MIG layout declared" % plan.get("host"))
    document = {"version": "v1", "mig-configs": {plan["config_name"]: plan["entries"]}}
    parse_mig_parted_config(document)
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=False)


def clusterpolicy_mig_patch(configmap_name, strategy=None):
    """Merge patch pointing the ClusterPolicy's mig-manager at our ConfigMap."""
    extra = {"migManager": {"enabled": True}}
    if strategy:
        extra["mig"] = {"strategy": strategy}
    return clusterpolicy_patch("migManager", configmap_name, "all-disabled", extra)


def expected_from_facts(gpu_facts):
    """``{index: {"mig_enabled": bool, "layout": {profile: count}}}`` as gpu_probe sees the host now.

    A GPU instance counts only when it has a compute instance (otherwise it is no MIG device).
    """
    result = {}
    for gpu in gpus_from_facts(gpu_facts):
        mig = gpu.get("mig") or {}
        counts = {}
        for gi in mig.get("gpu_instances") or []:
            if gi.get("compute_instances"):
                counts[gi["profile"]] = counts.get(gi["profile"], 0) + 1
        result[gpu["index"]] = {"mig_enabled": bool(mig.get("current")), "layout": dict(sorted(counts.items()))}
    return result


def verify_host(plan, gpu_facts):
    """Differences between the plan's expected MIG state and fresh gpu_probe facts (empty: all good)."""
    seen = expected_from_facts(gpu_facts)
    problems = []
    for index in sorted(plan.get("expected") or {}, key=int):
        want = plan["expected"][index]
        have = seen.get(int(index))
        if have is None:
            problems.append("GPU %s: missing from the probe" % index)
            continue
        if want["mig_enabled"] != have["mig_enabled"]:
            problems.append(
                "GPU %s: MIG mode is %s, expected %s"
                % (index, "on" if have["mig_enabled"] else "off", "on" if want["mig_enabled"] else "off")
            )
            continue
        if want["mig_enabled"] and want["layout"] != have["layout"]:
            problems.append("GPU %s: MIG devices %s, expected %s" % (index, have["layout"], want["layout"]))
    return problems
