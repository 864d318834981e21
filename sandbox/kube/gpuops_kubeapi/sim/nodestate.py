"""What the NVIDIA stack would publish on a node, as a pure function of the node, its
simulated GPUs, the active ClusterPolicy and the device plugin's sharing config: the labels
NFD / the operator / GPU Feature Discovery set, and the extended resources the device plugin
advertises (kubelet copies them into capacity and allocatable)."""

from __future__ import annotations

from typing import Any

import yaml

GPU = "nvidia.com/gpu"
UNDERREPORT = "sandbox.gpuops.io/underreport-gpus"
MIG_CONFIG = "nvidia.com/mig.config"
MIG_CONFIG_STATE = "nvidia.com/mig.config.state"
DEVICE_PLUGIN_CONFIG = "nvidia.com/device-plugin.config"
DEPLOY_OPERANDS = "nvidia.com/gpu.deploy.operands"
PCI_PRESENT = "feature.node.kubernetes.io/pci-10de.present"
# Labels the operator sets only when absent (admins turn operands off per node with "false").
DEPLOY_LABELS = (
    "driver",
    "gpu-feature-discovery",
    "container-toolkit",
    "device-plugin",
    "dcgm",
    "dcgm-exporter",
    "node-status-exporter",
    "operator-validator",
)
FAMILIES = {5: "volta", 6: "turing", 7: "ampere", 8: "ada-lovelace", 9: "hopper", 10: "blackwell"}


def owned_label(key: str) -> bool:
    """Labels GFD / the operator rewrite on every pass (others are users' or set-once)."""
    if key == PCI_PRESENT:
        return True
    if key.startswith("nvidia.com/gpu.deploy.") or key in (
        MIG_CONFIG,
        MIG_CONFIG_STATE,
        DEVICE_PLUGIN_CONFIG,
    ):
        return False
    return key.startswith(
        ("nvidia.com/gpu.", "nvidia.com/cuda.", "nvidia.com/mig", "nvidia.com/mps.")
    )


def owned_resource(key: str) -> bool:
    return key in (GPU, GPU + ".shared") or key.startswith("nvidia.com/mig-")


def policy_spec(policy: dict[str, Any] | None) -> dict[str, Any]:
    return (policy or {}).get("spec") or {}


def enabled(spec: dict[str, Any], component: str, default: bool = True) -> bool:
    value = (spec.get(component) or {}).get("enabled")
    return default if value is None else bool(value)


def sharing_config(
    config_map: dict[str, Any] | None, node: dict[str, Any], spec: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """(device plugin config, error) for a node: the ConfigMap entry named by the node's
    nvidia.com/device-plugin.config label, else devicePlugin.config.default, else the only
    entry. (None, None) when no config is set up."""
    config = (spec.get("devicePlugin") or {}).get("config") or {}
    if not config.get("name"):
        return None, None
    if config_map is None:
        return None, f"device plugin ConfigMap {config['name']} not found"
    data = config_map.get("data") or {}
    labels = node["metadata"].get("labels") or {}
    wanted = labels.get(DEVICE_PLUGIN_CONFIG) or config.get("default")
    if not wanted:
        if len(data) == 1:
            wanted = next(iter(data))
        else:
            return None, "no device plugin config selected (node label or config.default)"
    if wanted not in data:
        return None, f"device plugin config {wanted!r} not in ConfigMap {config['name']}"
    try:
        parsed = yaml.safe_load(data[wanted]) or {}
    except yaml.YAMLError as exc:
        return None, f"device plugin config {wanted!r}: {exc}"
    if not isinstance(parsed, dict) or parsed.get("version") != "v1":
        return None, f"device plugin config {wanted!r}: expected version: v1"
    return parsed, None


def _sharing(parsed: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    sharing = (parsed or {}).get("sharing") or {}
    for strategy, key in (("time-slicing", "timeSlicing"), ("mps", "mps")):
        section = sharing.get(key) or {}
        if section.get("resources"):
            return strategy, section
    return "none", {}


def desired(
    node: dict[str, Any],
    view: dict[str, Any] | None,
    spec: dict[str, Any],
    plugin_config: dict[str, Any] | None,
    sharing_on: bool,
) -> dict[str, Any]:
    """{labels, set_once, resources, problem} for one node."""
    labels: dict[str, str] = {}
    set_once: dict[str, str] = {}
    resources: dict[str, str] = {}
    result = {"labels": labels, "set_once": set_once, "resources": resources, "problem": None}
    if view is None or not view["gpus"]:
        return result
    name = node["metadata"]["name"]
    node_labels = node["metadata"].get("labels") or {}
    labels[PCI_PRESENT] = "true"
    labels["nvidia.com/gpu.present"] = "true"
    host_driver = view["driver"] == "loaded"
    driver_on = enabled(spec, "driver")
    for operand in DEPLOY_LABELS:
        value = "true"
        if operand == "driver" and host_driver:
            value = "pre-installed"
        set_once[f"nvidia.com/gpu.deploy.{operand}"] = value
    mig_capable = any(g["mig_capable"] for g in view["gpus"])
    if node_labels.get(DEPLOY_OPERANDS) == "false":
        return result
    if host_driver:
        visible = view["nvml_ok"]
        reason = "NVML cannot be initialized"
    else:
        visible = driver_on
        reason = "the NVIDIA driver is not loaded and driver.enabled is false"
    if not visible:
        result["problem"] = f"node {name}: {reason} (driver validation waiting)"
        return result
    if mig_capable and enabled(spec, "migManager"):
        # What the operator does once GFD reports nvidia.com/mig.capable=true.
        set_once["nvidia.com/gpu.deploy.mig-manager"] = "true"
        config = (spec.get("migManager") or {}).get("config") or {}
        default = config.get("default", "all-disabled")
        if default:
            set_once[MIG_CONFIG] = default
    healthy = [g for g in view["gpus"] if g["healthy"]]
    if not healthy:
        labels["nvidia.com/gpu.count"] = "0"
        result["problem"] = f"node {name}: no healthy GPU"
        return result
    first = healthy[0]
    version = ((spec.get("driver") or {}).get("version") if not host_driver else None) or view.get(
        "driver_version"
    )
    parts = (version or "0.0.0").split(".") + ["", ""]
    labels["nvidia.com/cuda.driver.major"] = parts[0]
    labels["nvidia.com/cuda.driver.minor"] = parts[1]
    labels["nvidia.com/cuda.driver.rev"] = parts[2]
    labels["nvidia.com/cuda.driver-version.full"] = version or ""
    labels["nvidia.com/cuda.driver-version.major"] = parts[0]
    cuda = int(view.get("cuda_driver_version") or 0)
    labels["nvidia.com/cuda.runtime-version.major"] = str(cuda // 1000)
    labels["nvidia.com/cuda.runtime-version.minor"] = str((cuda % 1000) // 10)
    labels["nvidia.com/gpu.compute.major"] = str(first["compute_capability"][0])
    labels["nvidia.com/gpu.compute.minor"] = str(first["compute_capability"][1])
    labels["nvidia.com/gpu.family"] = FAMILIES.get(first["architecture"], "undefined")
    labels["nvidia.com/mig.capable"] = "true" if mig_capable else "false"
    labels["nvidia.com/mps.capable"] = "false"
    strategy = (spec.get("mig") or {}).get("strategy") or "single"
    strategy = ((plugin_config or {}).get("flags") or {}).get("migStrategy") or strategy
    if mig_capable:
        labels["nvidia.com/mig.strategy"] = strategy
    product = first["product"]
    memory = first["memory_mib"]
    full = [g for g in healthy if not g["mig_enabled"]]
    migs = [g for g in healthy if g["mig_enabled"]]
    plugin_on = enabled(spec, "devicePlugin")
    count = len(healthy)
    if strategy == "single" and migs:
        profiles = {d["profile"] for g in migs for d in g["mig_devices"]}
        empty = [g["index"] for g in migs if not g["mig_devices"]]
        if full or len(profiles) != 1 or empty:
            result["problem"] = (
                f"node {name}: MIG strategy single needs every GPU MIG-enabled with one "
                f"profile; found {sorted(profiles) or 'no MIG devices'}"
                + (f" and {len(full)} GPU(s) without MIG" if full else "")
            )
            labels["nvidia.com/gpu.product"] = f"{product}-MIG-INVALID"
            labels["nvidia.com/gpu.count"] = "0"
            if plugin_on:
                resources[GPU] = "0"
            return result
        profile = next(iter(profiles))
        devices = [d for g in migs for d in g["mig_devices"]]
        product = f"{product}-MIG-{profile}"
        memory = devices[0]["memory_mib"]
        count = len(devices)
        resources[GPU] = str(count)
    elif strategy == "mixed":
        resources[GPU] = str(len(full))
        per_profile: dict[str, list[dict[str, Any]]] = {}
        for gpu in migs:
            for device in gpu["mig_devices"]:
                per_profile.setdefault(device["profile"], []).append(device)
        for profile, devices in sorted(per_profile.items()):
            resources[f"nvidia.com/mig-{profile}"] = str(len(devices))
            labels[f"nvidia.com/mig-{profile}.count"] = str(len(devices))
            labels[f"nvidia.com/mig-{profile}.memory"] = str(devices[0]["memory_mib"])
    else:
        resources[GPU] = str(len(healthy))
    replicas = 1
    sharing_strategy = "none"
    if sharing_on and plugin_config is not None:
        sharing_strategy, section = _sharing(plugin_config)
        rename_default = bool(section.get("renameByDefault"))
        for entry in section.get("resources") or []:
            resource = entry.get("name")
            factor = int(entry.get("replicas") or 1)
            if resource not in resources or factor < 1:
                continue
            replicas = max(replicas, factor)
            shared = int(resources.pop(resource)) * factor
            rename = entry.get("rename") or (f"{resource}.shared" if rename_default else resource)
            resources[rename] = str(shared)
        if sharing_strategy != "none" and not rename_default:
            product = f"{product}-SHARED"
        if sharing_strategy == "mps":
            labels["nvidia.com/mps.capable"] = "true"
    labels["nvidia.com/gpu.product"] = product
    labels["nvidia.com/gpu.count"] = str(count)
    labels["nvidia.com/gpu.memory"] = str(memory)
    labels["nvidia.com/gpu.replicas"] = str(replicas)
    labels["nvidia.com/gpu.sharing-strategy"] = sharing_strategy
    annotations = node["metadata"].get("annotations") or {}
    try:
        under = int(annotations.get(UNDERREPORT) or 0)
    except ValueError:
        under = 0
    if under:
        for key in (GPU, GPU + ".shared"):
            if key in resources:
                resources[key] = str(max(0, int(resources[key]) - under))
                break
    if not plugin_on:
        resources.clear()
    return result
