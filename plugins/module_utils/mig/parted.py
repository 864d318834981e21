# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mig-parted v1 configs (as the GPU Operator's mig-manager reads them): parse, validate,
resolve per GPU. Pure logic, no I/O.

Errors name the key path (``mig-configs.balanced[1].devices[0]``) and what is allowed, never
the values: a config may come from a file that is not a config at all, and its content must
not end up in a log.

Resolution follows mig-parted's matching (``device-filter`` and ``devices``), with two scope
rules on top: an entry naming a GPU index the host does not have is an error (it would do
nothing), and so is a GPU matched by two entries of the config (the last would silently win).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re
import traceback
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.gpuops.cluster.plugins.module_utils.mig.catalog import parse_pci_device_id
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.planner import MigLayoutError

try:  # targets may lack PyYAML; only config text (not a parsed mapping) needs it
    import yaml

    YAML_IMPORT_ERROR = None
except ImportError:  # pragma: no cover
    yaml = None
    YAML_IMPORT_ERROR = traceback.format_exc()

TOP_KEYS = ("version", "mig-configs")
ENTRY_KEYS = ("device-filter", "devices", "mig-enabled", "mig-devices")
# A config is a few KB; anything much larger is not one.
MAX_CONFIG_BYTES = 1024 * 1024
MAX_GPU_INDEX = 1023
MAX_COUNT = 64
# 1g.5gb, 1g.5gb+me, 1g.24gb+me.all, 1g.24gb-me, 1g.24gb+gfx.
PROFILE_NAME = re.compile(r"^\d{1,2}g\.\d{1,4}gb([+-][a-z0-9]+(\.[a-z0-9]+)*)*$")
CONFIG_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.+]{0,251}[A-Za-z0-9])?$")
_DEVICE_FILTER = re.compile(r"^0x([0-9a-fA-F]{8})(:0x([0-9a-fA-F]{8}))?$")


class MigConfigError(MigLayoutError):
    """A mig-parted config that is malformed or cannot be resolved; the message names the path."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "a %s" % type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class MigConfigEntry:
    """One entry of a named mig-parted config."""

    path: str
    device_filter: Tuple[Tuple[int, Optional[int]], ...]  # (device id, subsystem id or None)
    devices: Any  # "all" or a tuple of GPU indices
    mig_enabled: bool
    mig_devices: Dict[str, int]

    def matches(self, index: int, pci_device_id: Optional[int], pci_subsystem_id: Optional[int]) -> bool:
        if self.devices != "all" and index not in self.devices:
            return False
        if not self.device_filter:
            return True
        return any(
            device == pci_device_id and (sub is None or sub == pci_subsystem_id) for device, sub in self.device_filter
        )

    def to_dict(self) -> Dict[str, Any]:
        """The entry as mig-parted writes it."""
        data: Dict[str, Any] = {}
        if self.device_filter:
            items = ["0x%08X" % dev if sub is None else "0x%08X:0x%08X" % (dev, sub) for dev, sub in self.device_filter]
            data["device-filter"] = items if len(items) > 1 else items[0]
        data["devices"] = "all" if self.devices == "all" else list(self.devices)
        data["mig-enabled"] = self.mig_enabled
        if self.mig_enabled or self.mig_devices:
            data["mig-devices"] = dict(self.mig_devices)
        return data


@dataclass(frozen=True)
class MigPartedConfig:
    version: str
    configs: Dict[str, Tuple[MigConfigEntry, ...]]

    @property
    def names(self) -> List[str]:
        return sorted(self.configs)


_KEY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def _unknown_keys(where: str, data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in data:
        if key not in allowed:
            # A key path names keys, but only ones that look like keys: a line of some other
            # file parsed as YAML (a password entry) is not echoed.
            name = key if isinstance(key, str) and _KEY_NAME.match(key) else "(a key that is not a name)"
            raise MigConfigError(
                "%s%s: unknown key; allowed: %s" % (where + "." if where else "", name, ", ".join(allowed))
            )


def _parse_device_filter(where: str, value: Any) -> Tuple[Tuple[int, Optional[int]], ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise MigConfigError(
            "%s: must be a PCI device id string or a non-empty list of them, got %s" % (where, _kind(value))
        )
    result = []
    for i, item in enumerate(items):
        match = _DEVICE_FILTER.match(item) if isinstance(item, str) else None
        if match is None:
            raise MigConfigError(
                "%s[%d]: not a PCI device id; allowed: 0xDDDDVVVV (device << 16 | vendor, like 0x20B010DE), "
                "optionally :0xSSSSssss for the subsystem" % (where, i)
            )
        sub = match.group(3)
        result.append((int(match.group(1), 16), None if sub is None else int(sub, 16)))
    return tuple(result)


def _parse_devices(where: str, value: Any) -> Any:
    if value == "all":
        return "all"
    if isinstance(value, list) and value:
        seen = set()
        for i, item in enumerate(value):
            if not _is_int(item) or not 0 <= item <= MAX_GPU_INDEX:
                raise MigConfigError(
                    "%s[%d]: must be a GPU index (an integer 0-%d), got %s" % (where, i, MAX_GPU_INDEX, _kind(item))
                )
            if item in seen:
                raise MigConfigError("%s[%d]: GPU %d is listed twice" % (where, i, item))
            seen.add(item)
        return tuple(value)
    raise MigConfigError("%s: must be 'all' or a non-empty list of GPU indices, got %s" % (where, _kind(value)))


def _parse_mig_devices(where: str, value: Any) -> Dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MigConfigError("%s: must be a mapping of MIG profile to count, got %s" % (where, _kind(value)))
    result = {}
    for name, count in value.items():
        if not isinstance(name, str) or not PROFILE_NAME.match(name):
            raise MigConfigError(
                "%s: a key is not a MIG profile name; allowed: names like 1g.5gb, 3g.40gb, 1g.10gb+me" % where
            )
        if not _is_int(count) or not 0 <= count <= MAX_COUNT:
            raise MigConfigError(
                "%s.%s: count must be an integer 0-%d, got %s" % (where, name, MAX_COUNT, _kind(count))
            )
        result[name] = count
    return result


def _parse_entry(where: str, data: Any) -> MigConfigEntry:
    if not isinstance(data, Mapping):
        raise MigConfigError("%s: must be a mapping with keys %s, got %s" % (where, ", ".join(ENTRY_KEYS), _kind(data)))
    _unknown_keys(where, data, ENTRY_KEYS)
    if "devices" not in data:
        raise MigConfigError("%s.devices: required ('all' or a list of GPU indices)" % where)
    if "mig-enabled" not in data:
        raise MigConfigError("%s.mig-enabled: required (true or false)" % where)
    enabled = data["mig-enabled"]
    if not isinstance(enabled, bool):
        raise MigConfigError("%s.mig-enabled: must be true or false, got %s" % (where, _kind(enabled)))
    if enabled and "mig-devices" not in data:
        raise MigConfigError("%s.mig-devices: required when mig-enabled is true (may be {})" % where)
    mig_devices = _parse_mig_devices(where + ".mig-devices", data.get("mig-devices"))
    if not enabled and any(mig_devices.values()):
        raise MigConfigError("%s.mig-devices: must be empty when mig-enabled is false" % where)
    device_filter: Tuple[Tuple[int, Optional[int]], ...] = ()
    if "device-filter" in data:
        device_filter = _parse_device_filter(where + ".device-filter", data["device-filter"])
    return MigConfigEntry(
        path=where,
        device_filter=device_filter,
        devices=_parse_devices(where + ".devices", data["devices"]),
        mig_enabled=enabled,
        mig_devices=mig_devices,
    )


def load_config_text(text: Any, source: str = "config") -> Any:
    """YAML text of a mig-parted config (or of a GPU Operator ConfigMap holding one under
    ``data.config.yaml``) as data. Errors name ``source`` and the position, not the content."""
    if not isinstance(text, str):
        raise MigConfigError("%s: must be YAML text, got %s" % (source, _kind(text)))
    if len(text.encode("utf-8", "replace")) > MAX_CONFIG_BYTES:
        raise MigConfigError("%s: larger than %d bytes: not a mig-parted config" % (source, MAX_CONFIG_BYTES))
    if yaml is None:
        raise MigConfigError("%s: given as text, but PyYAML is not installed" % source)
    data = _safe_load(text, source)
    if isinstance(data, Mapping) and data.get("kind") == "ConfigMap":
        entries = data.get("data")
        if not isinstance(entries, Mapping):
            raise MigConfigError("%s: a ConfigMap without data" % source)
        body = entries.get("config.yaml")
        if body is None and len(entries) == 1:
            key, body = next(iter(entries.items()))
            source = "%s data.%s" % (source, key)
        else:
            source = "%s data.config.yaml" % source
        if not isinstance(body, str):
            raise MigConfigError("%s: a ConfigMap needs a config.yaml key holding the mig-parted config" % source)
        data = _safe_load(body, source)
    return data


def _safe_load(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = " (line %d, column %d)" % (mark.line + 1, mark.column + 1) if mark is not None else ""
        raise MigConfigError("%s: not valid YAML%s" % (source, where)) from None


def parse_mig_parted_config(data: Any, source: str = "") -> MigPartedConfig:
    """Validate a mig-parted v1 config (a mapping, or its YAML text); errors name the key path."""
    if isinstance(data, MigPartedConfig):
        return data
    prefix = source + ": " if source else ""
    try:
        if isinstance(data, str):
            data = load_config_text(data, source or "config")
        if not isinstance(data, Mapping):
            raise MigConfigError("must be a mapping with keys %s, got %s" % (", ".join(TOP_KEYS), _kind(data)))
        _unknown_keys("", data, TOP_KEYS)
        if data.get("version") != "v1":
            raise MigConfigError("version: required, must be v1")
        configs = data.get("mig-configs")
        if not isinstance(configs, Mapping) or not configs:
            raise MigConfigError("mig-configs: required, a non-empty mapping of config name to a list of entries")
        parsed: Dict[str, Tuple[MigConfigEntry, ...]] = {}
        for name, entries in configs.items():
            if not isinstance(name, str) or not CONFIG_NAME.match(name):
                raise MigConfigError(
                    "mig-configs: a config name is not a name; allowed: letters, digits, '-', '_', '.', '+' "
                    "(up to 253, starting and ending with a letter or digit)"
                )
            where = "mig-configs.%s" % name
            if not isinstance(entries, list) or not entries:
                raise MigConfigError("%s: must be a non-empty list of entries, got %s" % (where, _kind(entries)))
            parsed[name] = tuple(_parse_entry("%s[%d]" % (where, i), entry) for i, entry in enumerate(entries))
    except MigConfigError as exc:
        if prefix and not str(exc).startswith(prefix):
            raise MigConfigError(prefix + str(exc)) from None
        raise
    return MigPartedConfig(version="v1", configs=parsed)


def single_config(entries: Any, name: str = "inline") -> MigPartedConfig:
    """A config holding one named list of entries (what the mig role's plan passes on)."""
    return parse_mig_parted_config({"version": "v1", "mig-configs": {name: entries}})


def resolve_mig_config(
    config: Any,
    config_name: str,
    gpus: Sequence[Mapping[str, Any]],
    known_indices: Optional[Sequence[int]] = None,
) -> Dict[int, Dict[str, Any]]:
    """Desired MIG state per GPU for one named config, following mig-parted's matching rules.

    gpus: ``[{"index": 0, "name": "NVIDIA A100-SXM4-40GB", "pci_device_id": 0x20B010DE,
    "pci_subsystem_id": 0x134F10DE (optional), "mig_capable": True (optional)}, ...]``.
    known_indices: every GPU index of the host (lost GPUs too); defaults to those of ``gpus``.

    A GPU matched by no entry is ``untouched``; by exactly one: ``configure`` (or ``skip``
    when it cannot do MIG and the entry says ``devices: all`` or ``mig-enabled: false``).
    Errors: an entry listing an index the host does not have; a GPU matched by two entries;
    a GPU that cannot do MIG named by index with mig-enabled true.

    Returns ``{index: {"status": "configure" | "skip" | "untouched", "mig_enabled": bool|None,
    "layout": {profile: count} | None, "entry": path|None, "reason": str}}``.
    """
    if not isinstance(config, MigPartedConfig):
        config = parse_mig_parted_config(config)
    if config_name not in config.configs:
        raise MigConfigError("unknown MIG config %r; available: %s" % (config_name, ", ".join(config.names)))
    rows = []
    for position, gpu in enumerate(gpus):
        where = "gpus[%d]" % position
        try:
            index = gpu["index"]
            device_id = gpu.get("pci_device_id")
            device_id = None if device_id is None else parse_pci_device_id(device_id)
            subsystem = gpu.get("pci_subsystem_id")
            subsystem = None if subsystem is None else parse_pci_device_id(subsystem)
        except (KeyError, ValueError) as exc:
            raise MigConfigError("%s: needs index and pci_device_id: %s" % (where, exc)) from exc
        rows.append((index, device_id, subsystem, gpu))
    known = sorted(set(known_indices) if known_indices is not None else {r[0] for r in rows})
    entries = config.configs[config_name]
    for entry in entries:
        if entry.devices != "all":
            missing = sorted(set(entry.devices) - set(known))
            if missing:
                raise MigConfigError(
                    "%s.devices: GPU %s not on this host; it has GPU indices %s"
                    % (entry.path, ", ".join(str(m) for m in missing), _ranges(known) or "none")
                )
    result: Dict[int, Dict[str, Any]] = {}
    for index, device_id, subsystem, gpu in rows:
        matched = [e for e in entries if e.matches(index, device_id, subsystem)]
        if len(matched) > 1:
            raise MigConfigError(
                "%s: GPU %d (%s) is matched by %s; each GPU must match at most one entry (otherwise the last "
                "would silently win): narrow device-filter or devices"
                % (config_name, index, gpu.get("name") or "name unknown", " and ".join(e.path for e in matched))
            )
        if not matched:
            result[index] = {
                "status": "untouched",
                "mig_enabled": None,
                "layout": None,
                "entry": None,
                "reason": "no entry of %s matches this GPU" % config_name,
            }
            continue
        entry = matched[0]
        if not bool(gpu.get("mig_capable", True)):
            if entry.devices == "all" or not entry.mig_enabled:
                result[index] = {
                    "status": "skip",
                    "mig_enabled": None,
                    "layout": None,
                    "entry": entry.path,
                    "reason": "GPU cannot do MIG",
                }
                continue
            raise MigConfigError(
                "%s: GPU %d (%s) cannot do MIG but is listed in devices with mig-enabled true"
                % (entry.path, index, gpu.get("name") or "name unknown")
            )
        result[index] = {
            "status": "configure",
            "mig_enabled": entry.mig_enabled,
            "layout": dict(entry.mig_devices) if entry.mig_enabled else {},
            "entry": entry.path,
            "reason": "matched %s" % entry.path,
        }
    return result


def _ranges(indices: Sequence[int]) -> str:
    """'0-7' for 0..7, '0-2, 4-7' with a gap."""
    runs = []  # [first, last] of each run of consecutive indices
    for item in sorted(indices):
        if runs and item == runs[-1][1] + 1:
            runs[-1][1] = item
        else:
            runs.append([item, item])
    parts = ["%d" % first if first == last else "%d-%d" % (first, last) for first, last in runs]
    return ", ".join(parts)
