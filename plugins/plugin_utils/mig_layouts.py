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
import re

from ansible_collections.gpuops.cluster.plugins.module_utils.mig import (
    MigLayoutError,
    parse_mig_parted_config,
    plan_layout_for_model,
    resolve_mig_config,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.mig_catalog import find_model

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

MODES = ("host", "operator", "none")
CONFIG_PREFIX = "gpuops-"
# Kubernetes label values: at most 63 characters, alphanumerics, '-', '_' and '.' inside.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_ENTRY_INDEX = re.compile(r"\[(\d+)\]$")
NVIDIA_VENDOR = 0x10DE


class MigInventoryError(ValueError):
    """One or more hosts declare MIG layouts that cannot be honoured; the message lists them all."""


def plain(value):
    """A deep copy made of plain dict/list/str/int/float/bool/None (Ansible passes tagged subclasses)."""
    if isinstance(value, dict):
        return {str(k) if isinstance(k, str) else k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _empty(value):
    return value is None or value == "" or value == {} or value == []


def _layout_dict(value, where):
    """A {profile: count} mapping as mig-parted writes it; counts must be plain ints."""
    if not isinstance(value, dict):
        raise MigLayoutError("%s: must be a mapping of MIG profile to count, got %s" % (where, type(value).__name__))
    result = {}
    for name, count in value.items():
        if not isinstance(name, str):
            raise MigLayoutError("%s: profile names must be strings, got %r" % (where, name))
        if isinstance(count, dict):
            raise MigLayoutError(
                "%s.%s: the role takes a count per profile (mig-parted format); compute-instance "
                "profiles are for gpuops.cluster.mig_partition directly" % (where, name)
            )
        if not _is_int(count) or count < 0:
            raise MigLayoutError("%s.%s: count must be a non-negative int, got %r" % (where, name, count))
        result[name] = count
    return result


def _load_config(request):
    """The mig-parted config a host names, as a mapping; the source for messages."""
    inline = request.get("parted_config")
    text = request.get("config_text")
    path = request.get("config_file") or ""
    if not _empty(inline) and not _empty(text):
        raise MigLayoutError("mig_parted_config and mig_config_file: set one of them, not both")
    if not _empty(inline):
        data, source = inline, "mig_parted_config"
    elif not _empty(text):
        source = "mig_config_file (%s)" % path if path else "mig_config_file"
        if yaml is None:  # pragma: no cover
            raise MigLayoutError("%s: PyYAML is needed to read it" % source)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise MigLayoutError("%s: not valid YAML: %s" % (source, exc)) from exc
    else:
        raise MigLayoutError(
            "mig_config_name is set but no config holds it: set mig_parted_config (inline mig-parted v1) "
            "or mig_config_file (a mig-parted v1 file or a GPU Operator mig-parted ConfigMap)"
        )
    # A GPU Operator ConfigMap (kind ConfigMap, data config.yaml) is accepted as it is.
    if isinstance(data, dict) and data.get("kind") == "ConfigMap":
        body = (data.get("data") or {}).get("config.yaml")
        if not isinstance(body, str):
            raise MigLayoutError("%s: a ConfigMap without a data.config.yaml key" % source)
        data = yaml.safe_load(body)
    return data, source


def host_entries(request):
    """The host's desired state as mig-parted v1 entries, with the variable each came from.

    Returns ``(entries, sources)``, or ``(None, [])`` when the host declares nothing (MIG is not
    managed there). Raises MigLayoutError naming the variable.
    """
    layout = request.get("layout")
    config_name = request.get("config_name") or ""
    gpu_layouts = request.get("gpu_layouts")
    enabled = request.get("enabled", True)
    if not isinstance(enabled, bool):
        raise MigLayoutError("mig_enabled: must be true or false, got %r" % (enabled,))
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
    entries = []
    sources = []
    if config_name:
        if not isinstance(config_name, str):
            raise MigLayoutError("mig_config_name: must be a string, got %r" % (config_name,))
        data, source = _load_config(request)
        try:
            parsed = parse_mig_parted_config(data)
        except MigLayoutError as exc:
            raise MigLayoutError("%s: %s" % (source, exc)) from exc
        if config_name not in parsed.configs:
            raise MigLayoutError(
                "mig_config_name: %r is not in %s; it has: %s" % (config_name, source, ", ".join(parsed.names))
            )
        for index, entry in enumerate(data["mig-configs"][config_name]):
            entries.append(dict(entry))
            sources.append("mig_config_name=%s (%s entry %d)" % (config_name, source, index))
    elif has_layout:
        entries.append({"devices": "all", "mig-enabled": True, "mig-devices": _layout_dict(layout, "mig_layout")})
        sources.append("mig_layout")
    elif not enabled:
        entries.append({"devices": "all", "mig-enabled": False})
        sources.append("mig_enabled")
    for index, override in enumerate(gpu_layouts):
        where = "mig_gpu_layouts[%d]" % index
        if not isinstance(override, dict):
            raise MigLayoutError("%s: must be a mapping with keys gpus, layout, mig_enabled" % where)
        unknown = sorted(set(override) - {"gpus", "layout", "mig_enabled"})
        if unknown:
            raise MigLayoutError("%s.%s: unknown key; allowed: gpus, layout, mig_enabled" % (where, unknown[0]))
        gpus = override.get("gpus")
        if not isinstance(gpus, list) or not gpus or not all(_is_int(g) and g >= 0 for g in gpus):
            raise MigLayoutError("%s.gpus: must be a non-empty list of GPU indices, got %r" % (where, gpus))
        on = override.get("mig_enabled", True)
        if not isinstance(on, bool):
            raise MigLayoutError("%s.mig_enabled: must be true or false, got %r" % (where, on))
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
    """Replace the synthetic config path in a planner message by the variable the entry came from."""
    match = re.search(r"mig-configs\.host\[(\d+)\]", text)
    if match and int(match.group(1)) < len(sources):
        return text[: match.start()] + sources[int(match.group(1))] + text[match.end() :]
    return text


def plan_host(host, request, gpu_facts):
    """Validate one host's request against its facts. Returns the host's plan; raises MigLayoutError."""
    mode = request.get("mode", "host")
    if mode not in MODES:
        raise MigLayoutError("mig_mode: %r is not one of %s" % (mode, ", ".join(MODES)))
    plan = {
        "host": host,
        "mode": mode,
        "managed": False,
        "kube_node": bool(request.get("kube_node", False)),
        "node_name": request.get("node_name") or host,
        "entries": None,
        "config_name": None,
        "gpus": {},
        "calls": [],
        "expected": {},
        "warnings": [],
    }
    if mode == "none":
        return plan
    entries, sources = host_entries(request)
    if entries is None:
        return plan
    plan["managed"] = True
    plan["entries"] = entries
    plan["config_name"] = config_name_for(entries)
    config = {"version": "v1", "mig-configs": {"host": entries}}
    try:
        parsed = parse_mig_parted_config(config)
    except MigLayoutError as exc:
        raise MigLayoutError(_with_source(str(exc), sources)) from exc

    facts = gpu_facts or {}
    if not facts:
        raise MigLayoutError("no gpu facts: run gpuops.cluster.gpu_probe on the host first")
    nvml = facts.get("source") == "nvml"
    if mode == "host" and not nvml:
        reason = ((facts.get("driver") or {}).get("nvml") or {}).get("reason") or "no NVML"
        raise MigLayoutError(
            "mig_mode host needs NVML on the host, which is unavailable (%s): load the driver "
            "(gpuops.cluster.nvidia_driver) first, or use mig_mode operator" % reason
        )
    gpus = gpus_from_facts(facts)
    if not gpus:
        raise MigLayoutError("%s is set but the host has no NVIDIA GPUs" % sources[0])
    known = {g["index"] for g in gpus}
    for index, entry in enumerate(entries):
        if entry["devices"] != "all":
            missing = sorted(set(entry["devices"]) - known)
            if missing:
                raise MigLayoutError(
                    "%s: GPU index(es) %s do not exist; the host has GPUs %s" % (sources[index], missing, sorted(known))
                )
    resolvable = []
    for gpu in gpus:
        lost = gpu.get("name") is None and nvml
        if lost:
            plan["warnings"].append(
                "%s: skipped, NVML cannot read it: %s" % (_describe_gpu(gpu), "; ".join(gpu["health_reasons"]) or "?")
            )
            plan["gpus"][gpu["index"]] = {"status": "skip", "reason": "unreadable: " + "; ".join(gpu["health_reasons"])}
            continue
        model = find_model(gpu.get("name"), gpu.get("pci_device_id"))
        capable = gpu.get("mig_capable")
        if capable is None:  # PCI-only facts: the catalog says whether the model does MIG
            capable = model is not None
        resolvable.append(dict(gpu, mig_capable=capable, pci_device_id=gpu["pci_device_id"] or 0))
    try:
        resolved = resolve_mig_config(parsed, "host", resolvable)
    except MigLayoutError as exc:
        raise MigLayoutError(_with_source(str(exc), sources)) from exc
    by_index = {g["index"]: g for g in resolvable}
    groups = {}
    for index in sorted(resolved):
        state = resolved[index]
        gpu = by_index[index]
        source = _source_of(state.get("entry"), sources)
        entry = {"status": state["status"], "reason": state["reason"], "source": source}
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
            key = json.dumps([entry["mig_enabled"], sorted(entry["layout"].items())])
            groups.setdefault(key, []).append(index)
            plan["expected"][index] = {
                "mig_enabled": entry["mig_enabled"],
                "layout": {k: v for k, v in sorted(entry["layout"].items()) if v},
            }
        plan["gpus"][index] = entry
    for key in sorted(groups, key=lambda k: groups[k][0]):
        on, items = json.loads(key)
        call = {"gpus": groups[key], "mig_enabled": on}
        if on:
            call["layout"] = dict(items)
        plan["calls"].append(call)
    return plan


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


def merge_existing(configs, existing_text):
    """Our configs plus those of the ConfigMap already in the cluster that we do not redefine.

    Nodes outside this run (``--limit``) may still be labelled with an older config: keeping the
    existing entries means their label never points at a config that vanished.
    """
    merged = {}
    if existing_text:
        try:
            existing = parse_mig_parted_config(existing_text)
        except MigLayoutError:
            existing = None  # unreadable: ours replaces it
        if existing is not None:
            document = yaml.safe_load(existing_text)
            for name in existing.names:
                if name != "all-disabled":
                    merged[name] = document["mig-configs"][name]
    merged.update(configs)
    return merged


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


def render_configmap(configs, name, namespace, labels=None):
    """The mig-parted ConfigMap the GPU Operator's mig-manager reads (key ``config.yaml``)."""
    metadata = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {"config.yaml": render_mig_parted_config(configs)},
    }


def render_host_layout_file(plan):
    """mig-parted v1 text for /etc/gpuops/mig-layout.yaml: the host's one named config."""
    if not plan.get("managed"):
        raise MigLayoutError("%s: no MIG layout declared" % plan.get("host"))
    document = {"version": "v1", "mig-configs": {plan["config_name"]: plan["entries"]}}
    parse_mig_parted_config(document)
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=False)


def clusterpolicy_mig_patch(configmap_name, strategy=None):
    """Merge patch pointing the ClusterPolicy's mig-manager at our ConfigMap."""
    spec = {"migManager": {"enabled": True, "config": {"name": configmap_name, "default": "all-disabled"}}}
    if strategy:
        spec["mig"] = {"strategy": strategy}
    return {"spec": spec}


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
