# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU Operator: Helm values, ClusterPolicy, compatibility and capacity rules.

Pure functions, no I/O, so that the role's decisions are unit-testable. The role passes one
settings dict (``cfg``, built from its ``gpu_operator_*`` variables in roles/gpu_operator/vars)
to the functions here through the filters of plugins/filter/gpu_operator.py.

Key names follow the upstream chart (deployments/gpu-operator/values.yaml) for Helm values and
the upstream ClusterPolicy CRD (nvidia.com/v1) for the ClusterPolicy spec; unit tests check every
path set here against both.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import copy
import re

INSTALL_MODES = ("helm", "olm", "out_of_band")
PLATFORMS = ("auto", "kubernetes", "openshift")
MIG_STRATEGIES = ("none", "single", "mixed")
KERNEL_MODULE_TYPES = ("auto", "open", "proprietary")

# Every component image of the chart: values path of the component -> (repository, image,
# version) as the upstream values.yaml sets them (tests check this table against the reference
# values file, so a component added upstream is noticed). The registry override rewrites the
# registry host of each repository; components whose upstream repository is empty (vgpuManager:
# the user builds that image) are left alone.
COMPONENT_IMAGES = {
    "validator": ("nvcr.io/nvidia", "gpu-operator", None),
    "operator": ("nvcr.io/nvidia", "gpu-operator", None),
    "driver": ("nvcr.io/nvidia", "driver", "595.91.07"),
    "driver.manager": ("nvcr.io/nvidia/cloud-native", "k8s-driver-manager", "v0.12.0"),
    "toolkit": ("nvcr.io/nvidia/k8s", "container-toolkit", "v1.20.0"),
    "devicePlugin": ("nvcr.io/nvidia", "k8s-device-plugin", "v0.20.0"),
    "dcgm": ("nvcr.io/nvidia/cloud-native", "dcgm", "4.6.0-1-ubuntu24.04"),
    "dcgmExporter": ("nvcr.io/nvidia/k8s", "dcgm-exporter", "4.6.0-4.8.3-distroless"),
    "gfd": ("nvcr.io/nvidia", "k8s-device-plugin", "v0.20.0"),
    "migManager": ("nvcr.io/nvidia/cloud-native", "k8s-mig-manager", "v0.15.0"),
    "nodeStatusExporter": ("nvcr.io/nvidia", "gpu-operator", None),
    "gds": ("nvcr.io/nvidia/cloud-native", "nvidia-fs", "2.29.4"),
    "gdrcopy": ("nvcr.io/nvidia/cloud-native", "gdrdrv", "v2.6"),
    "vgpuManager": ("", "vgpu-manager", ""),
    "vgpuManager.driverManager": ("nvcr.io/nvidia/cloud-native", "k8s-driver-manager", "v0.12.0"),
    "vgpuDeviceManager": ("nvcr.io/nvidia/cloud-native", "vgpu-device-manager", "v0.5.0"),
    "vfioManager": ("nvcr.io/nvidia/cloud-native", "k8s-driver-manager", "v0.12.0"),
    "vfioManager.driverManager": ("nvcr.io/nvidia/cloud-native", "k8s-driver-manager", "v0.12.0"),
    "sandboxDevicePlugin": ("nvcr.io/nvidia", "kubevirt-gpu-device-plugin", "v1.6.0"),
    "kataSandboxDevicePlugin": ("nvcr.io/nvidia/cloud-native", "nvidia-sandbox-device-plugin", "v0.0.5"),
    "ccManager": ("nvcr.io/nvidia/cloud-native", "k8s-cc-manager", "v0.4.3"),
    "draDriver": ("nvcr.io/nvidia", "dra-driver-nvidia-gpu", "v0.5.0"),
}

# Components a ClusterPolicy carries (the CRD's spec fields); the others are chart-only.
CLUSTER_POLICY_COMPONENTS = (
    "validator",
    "driver",
    "driver.manager",
    "toolkit",
    "devicePlugin",
    "dcgm",
    "dcgmExporter",
    "gfd",
    "migManager",
    "nodeStatusExporter",
    "gds",
    "gdrcopy",
    "vgpuManager",
    "vgpuManager.driverManager",
    "vgpuDeviceManager",
    "vfioManager",
    "vfioManager.driverManager",
    "sandboxDevicePlugin",
    "kataSandboxDevicePlugin",
    "ccManager",
)

_CHART_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
_DRIVER_VERSION = re.compile(r"^(\d+)(\.\d+){1,2}$")
_BRANCH = re.compile(r"^\d{3}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_REGISTRY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*(:\d+)?(/[a-z0-9._\-]+)*$")


def _set(tree, path, value):
    """Set a dotted path in a nested dict, creating the maps on the way."""
    node = tree
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def deep_merge(base, override):
    """Maps merge recursively; anything else in ``override`` replaces ``base``."""
    result = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# Values that are free-form maps (any key is fine below them).
FREEFORM_VALUES = (("operator", "nodeSelector"),)


def key_paths(tree, prefix=(), leaves=FREEFORM_VALUES):
    """Every leaf path of a nested dict as a tuple of keys (lists, empty maps and the free-form
    maps named in ``leaves`` are leaves)."""
    paths = []
    for key, value in tree.items():
        path = prefix + (key,)
        if isinstance(value, dict) and value and path not in leaves:
            paths.extend(key_paths(value, path, leaves))
        else:
            paths.append(path)
    return paths


def missing_paths(tree, reference, leaves=FREEFORM_VALUES):
    """The leaf paths of ``tree`` that do not exist in ``reference`` (e.g. the upstream chart's
    values.yaml), as dotted strings: a typo'd or invented key shows up here."""
    missing = []
    for path in key_paths(tree, (), leaves):
        node = reference
        for key in path:
            if not isinstance(node, dict) or key not in node:
                missing.append(".".join(path))
                break
            node = node[key]
    return missing


def rewrite_registry(repository, registry):
    """nvcr.io/nvidia/k8s + registry.example:5000/mirror -> registry.example:5000/mirror/nvidia/k8s."""
    if not repository or not registry:
        return repository
    rest = repository.split("/", 1)[1] if "/" in repository else ""
    registry = registry.rstrip("/")
    return "%s/%s" % (registry, rest) if rest else registry


def chart_series(chart_version):
    """'v25.10.1' -> '25.10' (the operator's major version, calendar style)."""
    match = _CHART_VERSION.match(str(chart_version or ""))
    if not match:
        return None
    return "%s.%s" % (match.group(1), match.group(2))


def driver_branch(version):
    """'550.127.05' -> '550'; '550' -> '550'; None or garbage -> None."""
    text = str(version or "").strip()
    if _BRANCH.match(text):
        return text
    if _DRIVER_VERSION.match(text):
        return text.split(".", 1)[0]
    return None


def validate_config(cfg):
    """Cross-field checks the argument spec cannot express. Returns messages naming variables."""
    errors = []

    def need(cond, message):
        if not cond:
            errors.append(message)

    need(
        cfg.get("install_mode") in INSTALL_MODES,
        "gpu_operator_install_mode must be one of %s, got %r" % (", ".join(INSTALL_MODES), cfg.get("install_mode")),
    )
    need(
        cfg.get("platform") in PLATFORMS,
        "gpu_operator_platform must be one of %s, got %r" % (", ".join(PLATFORMS), cfg.get("platform")),
    )
    need(
        cfg.get("mig_strategy") in MIG_STRATEGIES,
        "gpu_operator_mig_strategy must be one of %s, got %r" % (", ".join(MIG_STRATEGIES), cfg.get("mig_strategy")),
    )
    need(
        cfg.get("driver_kernel_module_type") in KERNEL_MODULE_TYPES,
        "gpu_operator_driver_kernel_module_type must be one of %s, got %r"
        % (", ".join(KERNEL_MODULE_TYPES), cfg.get("driver_kernel_module_type")),
    )
    need(
        _CHART_VERSION.match(str(cfg.get("chart_version") or "")) is not None,
        "gpu_operator_chart_version must be a released chart version like v25.10.1, got %r"
        % (cfg.get("chart_version"),),
    )
    namespace = str(cfg.get("namespace") or "")
    need(
        bool(_DNS_LABEL.match(namespace)) and len(namespace) <= 63,
        "gpu_operator_namespace must be a DNS label (lower case letters, digits, '-'), got %r" % (namespace,),
    )
    name = str(cfg.get("cluster_policy_name") or "")
    need(
        bool(_DNS_SUBDOMAIN.match(name)) and len(name) <= 253,
        "gpu_operator_cluster_policy_name must be a DNS subdomain name, got %r" % (name,),
    )
    for var, key in (
        ("gpu_operator_device_plugin_config_name", "device_plugin_config_name"),
        ("gpu_operator_mig_manager_config_name", "mig_manager_config_name"),
    ):
        value = str(cfg.get(key) or "")
        need(
            value == "" or (_DNS_SUBDOMAIN.match(value) and len(value) <= 253),
            "%s must be empty or a ConfigMap name (DNS subdomain), got %r" % (var, value),
        )
    need(
        not cfg.get("device_plugin_config_default") or cfg.get("device_plugin_config_name"),
        "gpu_operator_device_plugin_config_default needs gpu_operator_device_plugin_config_name "
        "(the ConfigMap holding it)",
    )
    version = str(cfg.get("driver_version") or "")
    branch = str(cfg.get("driver_branch") or "")
    need(
        version == "" or _DRIVER_VERSION.match(version),
        "gpu_operator_driver_version must be empty (chart default) or a driver version like 580.95.05, got %r"
        % (version,),
    )
    need(
        branch == "" or _BRANCH.match(branch),
        "gpu_operator_driver_branch must be empty or a driver branch like 580, got %r" % (branch,),
    )
    need(
        not (version and branch and driver_branch(version) != branch),
        "gpu_operator_driver_version %s is not on gpu_operator_driver_branch %s" % (version, branch),
    )
    if cfg.get("driver_precompiled"):
        need(
            cfg.get("driver_enabled"),
            "gpu_operator_driver_precompiled needs gpu_operator_driver_enabled: true "
            "(precompiled drivers are driver containers)",
        )
        need(
            bool(branch),
            "gpu_operator_driver_precompiled needs gpu_operator_driver_branch "
            "(precompiled images are tagged by branch, e.g. 580)",
        )
        need(
            not version,
            "gpu_operator_driver_precompiled takes gpu_operator_driver_branch, not gpu_operator_driver_version",
        )
    registry = str(cfg.get("image_registry") or "")
    need(
        registry == "" or _REGISTRY.match(registry),
        "gpu_operator_image_registry must be empty or a registry host[:port][/path], got %r" % (registry,),
    )
    for var, key, kind in (
        ("gpu_operator_tolerations", "tolerations", list),
        ("gpu_operator_node_selector", "node_selector", dict),
        ("gpu_operator_extra_values", "extra_values", dict),
    ):
        need(
            isinstance(cfg.get(key), kind),
            "%s must be a %s, got %s" % (var, kind.__name__, type(cfg.get(key)).__name__),
        )
    for index, toleration in enumerate(
        cfg.get("tolerations") or [] if isinstance(cfg.get("tolerations"), list) else []
    ):
        need(
            isinstance(toleration, dict)
            and set(toleration) <= {"key", "operator", "value", "effect", "tolerationSeconds"}
            and toleration.get("operator", "Equal") in ("Equal", "Exists")
            and toleration.get("effect", "") in ("", "NoSchedule", "PreferNoSchedule", "NoExecute"),
            "gpu_operator_tolerations[%d] must be a toleration (key, operator Equal|Exists, value, "
            "effect NoSchedule|PreferNoSchedule|NoExecute, tolerationSeconds), got %r" % (index, toleration),
        )
    for var, key in (
        ("gpu_operator_ready_timeout", "ready_timeout"),
        ("gpu_operator_capacity_timeout", "capacity_timeout"),
    ):
        value = cfg.get(key)
        need(
            isinstance(value, int) and not isinstance(value, bool) and value >= 0,
            "%s must be an integer number of seconds >= 0, got %r" % (var, value),
        )
    return errors


def _driver_version_value(cfg):
    if cfg.get("driver_precompiled"):
        return str(cfg.get("driver_branch"))
    return str(cfg.get("driver_version") or "")


def _common_components(cfg, driver_toolkit):
    """The settings shared by Helm values and the ClusterPolicy spec, as dotted paths."""
    settings = {
        "driver.enabled": bool(cfg["driver_enabled"]),
        "toolkit.enabled": bool(cfg["toolkit_enabled"]),
        "devicePlugin.enabled": True,
        "dcgmExporter.enabled": bool(cfg["dcgm_exporter_enabled"]),
        "dcgmExporter.serviceMonitor.enabled": bool(
            cfg["dcgm_exporter_enabled"] and cfg["dcgm_exporter_service_monitor"]
        ),
        "mig.strategy": cfg["mig_strategy"],
        "cdi.enabled": bool(cfg["cdi_enabled"]),
        "daemonsets.tolerations": copy.deepcopy(cfg["tolerations"]),
    }
    if cfg["driver_enabled"]:
        settings["driver.usePrecompiled"] = bool(cfg["driver_precompiled"])
        settings["driver.kernelModuleType"] = cfg["driver_kernel_module_type"]
        if _driver_version_value(cfg):
            settings["driver.version"] = _driver_version_value(cfg)
    if cfg.get("device_plugin_config_name"):
        settings["devicePlugin.config.name"] = cfg["device_plugin_config_name"]
        settings["devicePlugin.config.default"] = cfg.get("device_plugin_config_default") or ""
    if cfg.get("mig_manager_config_name"):
        settings["migManager.config.name"] = cfg["mig_manager_config_name"]
    settings["migManager.enabled"] = cfg["mig_strategy"] != "none"
    if driver_toolkit is not None:
        settings["operator.use_ocp_driver_toolkit"] = bool(driver_toolkit)
    return settings


def render_values(cfg):
    """Helm values for the gpu-operator chart: the role's settings, then gpu_operator_extra_values."""
    openshift = cfg.get("platform") == "openshift"
    settings = _common_components(cfg, openshift if openshift else None)
    settings["nfd.enabled"] = bool(cfg["nfd_enabled"])
    settings["platform.openshift"] = openshift
    settings["operator.nodeSelector"] = copy.deepcopy(cfg["node_selector"])
    if cfg["nfd_enabled"]:
        settings["node-feature-discovery.worker.tolerations"] = copy.deepcopy(cfg["tolerations"])
    registry = cfg.get("image_registry") or ""
    if registry:
        for component, (repository, _image, _version) in sorted(COMPONENT_IMAGES.items()):
            if repository:
                settings["%s.repository" % component] = rewrite_registry(repository, registry)
    values = {}
    for path in sorted(settings):
        _set(values, path, settings[path])
    return deep_merge(values, cfg.get("extra_values") or {})


def render_cluster_policy(cfg):
    """The ClusterPolicy object (nvidia.com/v1) that the olm and out_of_band modes apply.

    Without a Helm chart to fill them in, it carries every field the CRD requires; images are
    left to the operator's own defaults (its CSV / Deployment environment) unless
    gpu_operator_image_registry is set, then each component names repository, image and
    version explicitly (the operator needs all three to build an image path).
    """
    openshift = cfg.get("platform") == "openshift"
    settings = _common_components(cfg, openshift)
    settings["operator.defaultRuntime"] = "crio" if openshift else "containerd"
    for required in ("dcgm", "gfd", "nodeStatusExporter"):
        settings["%s.enabled" % required] = {"dcgm": False, "gfd": True, "nodeStatusExporter": False}[required]
    registry = cfg.get("image_registry") or ""
    if registry:
        for component in CLUSTER_POLICY_COMPONENTS:
            repository, image, version = COMPONENT_IMAGES[component]
            if not repository or version is None:
                continue
            if component == "driver" and _driver_version_value(cfg):
                version = _driver_version_value(cfg)
            settings["%s.repository" % component] = rewrite_registry(repository, registry)
            settings["%s.image" % component] = image
            settings["%s.version" % component] = version
    spec = {}
    for path in sorted(settings):
        _set(spec, path, settings[path])
    return {
        "apiVersion": "nvidia.com/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": cfg["cluster_policy_name"]},
        "spec": spec,
    }


def _minor(version):
    match = re.match(r"^v?(\d+)\.(\d+)", str(version or ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


def _in_range(version, bounds):
    value = _minor(version)
    low, high = _minor(bounds.get("min")), _minor(bounds.get("max"))
    return value is not None and low is not None and high is not None and low <= value <= high


def check_compat(matrix, cfg, cluster, driver_hosts):
    """Decide whether this install is inside the compatibility matrix.

    matrix: {series: {chart_versions, driver_branches, kubernetes: {min, max}, openshift: {min, max}}}
    cluster: {kubernetes: '1.34', platform: 'kubernetes'|'openshift', openshift: '4.19.3' or ''}
    driver_hosts: [{host, state, version}] from the GPU hosts' gpu_probe facts.
    Returns {errors: [...], warnings: [...], checked: {...}}.
    """
    errors, warnings = [], []
    chart = str(cfg.get("chart_version") or "")
    series = chart_series(chart)
    entry = (matrix or {}).get(series) if series else None
    checked = {"chart_version": chart, "series": series, "kubernetes": cluster.get("kubernetes")}
    if entry is None:
        errors.append(
            "gpu_operator_chart_version %s: operator series %s is not in the compatibility matrix (known: %s)"
            % (chart, series, ", ".join(sorted(matrix or {})) or "none")
        )
        return {"errors": errors, "warnings": warnings, "checked": checked}
    released = entry.get("chart_versions") or []
    if chart not in released:
        errors.append(
            "gpu_operator_chart_version %s is not a released %s.x chart version (known: %s)"
            % (chart, series, ", ".join(released))
        )
    kube = cluster.get("kubernetes")
    bounds = entry.get("kubernetes") or {}
    # On OpenShift the matrix is by OpenShift version (its Kubernetes comes with it).
    if cluster.get("platform") != "openshift" and not _in_range(kube, bounds):
        errors.append(
            "Kubernetes %s is not supported by GPU Operator %s (supported: %s to %s)"
            % (kube, chart, bounds.get("min"), bounds.get("max"))
        )
    if cluster.get("platform") == "openshift":
        ocp = cluster.get("openshift") or ""
        checked["openshift"] = ocp
        bounds = entry.get("openshift") or {}
        if not ocp:
            warnings.append(
                "OpenShift version unknown (ClusterVersion 'version' not readable and gpu_operator_openshift_version "
                "not set): not checked against %s to %s" % (bounds.get("min"), bounds.get("max"))
            )
        elif not _in_range(ocp, bounds):
            errors.append(
                "OpenShift %s is not supported by GPU Operator %s (supported: %s to %s)"
                % (ocp, chart, bounds.get("min"), bounds.get("max"))
            )
    branches = [str(b) for b in entry.get("driver_branches") or []]
    checked["driver_branches"] = branches
    if cfg.get("driver_enabled"):
        branch = str(cfg.get("driver_branch") or "") or driver_branch(cfg.get("driver_version"))
        if branch and branch not in branches:
            errors.append(
                "driver branch %s (gpu_operator_driver_%s) is not supported by GPU Operator %s (supported: R%s)"
                % (branch, "branch" if cfg.get("driver_branch") else "version", chart, ", R".join(branches))
            )
        loaded = sorted(h["host"] for h in driver_hosts if h.get("state") == "loaded")
        if loaded:
            errors.append(
                "gpu_operator_driver_enabled is true but these GPU hosts already run a host driver: %s. The operator's "
                "driver container conflicts with a pre-installed driver; set gpu_operator_driver_enabled: false "
                "(the nvidia_driver role manages host drivers) or remove the host driver first" % ", ".join(loaded)
            )
    else:
        unsupported = []
        for host in sorted(driver_hosts, key=lambda h: h["host"]):
            branch = driver_branch(host.get("version"))
            if host.get("state") != "loaded" or branch is None:
                warnings.append(
                    "%s: host driver %s, version %s: branch not checked"
                    % (host["host"], host.get("state") or "unknown", host.get("version") or "unknown")
                )
            elif branch not in branches:
                unsupported.append("%s (%s)" % (host["host"], host.get("version")))
        if unsupported:
            errors.append(
                "host driver branch not supported by GPU Operator %s (supported: R%s): %s"
                % (chart, ", R".join(branches), ", ".join(unsupported))
            )
    return {"errors": errors, "warnings": warnings, "checked": checked}


def node_problem(gpu_facts, mig_strategy, driver_enabled):
    """Why the operator's operands cannot come up on a GPU node, from its gpu_probe facts
    (None when nothing stands in the way). Checked before anything changes."""
    if not gpu_facts or not gpu_facts.get("gpus"):
        return None
    driver = gpu_facts.get("driver") or {}
    if driver.get("state") != "loaded" and not driver_enabled:
        return (
            "NVIDIA driver %s and gpu_operator_driver_enabled is false: the operator's driver validation "
            "would wait forever (load the driver with the nvidia_driver role, or set "
            "gpu_operator_exclude_nodes_without_driver: true)" % (driver.get("state") or "missing")
        )
    if mig_strategy != "single" or gpu_facts.get("source") != "nvml":
        return None
    usable = [g for g in gpu_facts.get("gpus") or [] if (g.get("health") or {}).get("status") != "unhealthy"]
    migs = [g for g in usable if (g.get("mig") or {}).get("current")]
    if not migs:
        return None
    full = len(usable) - len(migs)
    profiles = sorted(
        {gi.get("profile") for g in migs for gi in (g.get("mig") or {}).get("gpu_instances") or [] if gi.get("profile")}
    )
    empty = [g.get("index") for g in migs if not (g.get("mig") or {}).get("devices")]
    if full or len(profiles) != 1 or empty:
        details = ["MIG profiles %s" % (", ".join(profiles) or "none")]
        if full:
            details.append("%d GPU(s) without MIG" % full)
        if empty:
            details.append("MIG GPU(s) without instances: %s" % ", ".join(str(i) for i in empty))
        return (
            "gpu_operator_mig_strategy single needs every GPU MIG-enabled with one profile; found %s "
            "(use mixed, or re-layout MIG first)" % "; ".join(details)
        )
    return None


def expected_gpus(gpu_facts, mig_strategy):
    """How many nvidia.com/gpu a node should advertise, from its gpu_probe facts.

    The rule (the device plugin's, per MIG strategy):
      - a GPU counts only when gpu_probe does not call it unhealthy (a lost GPU, one that fell
        off the bus or has uncorrected ECC errors is not schedulable);
      - strategy none: every counted GPU is one nvidia.com/gpu, MIG mode or not;
      - strategy single: the MIG devices of the GPUs in MIG mode (a valid single layout has every
        GPU in MIG mode with one profile, see node_problem), plus any GPU not in MIG mode;
      - strategy mixed: MIG devices are advertised as nvidia.com/mig-<profile>, so only GPUs not
        in MIG mode count;
    then sharing (time-slicing or MPS) multiplies by the replicas the node reports (applied by
    capacity_shortfalls from the node's nvidia.com/gpu.replicas label).
    Returns (count, reason); count None when the facts cannot say (no NVML: driver not loaded).
    """
    if not gpu_facts:
        return None, "no gpu facts"
    if gpu_facts.get("source") != "nvml":
        reason = ((gpu_facts.get("driver") or {}).get("nvml") or {}).get("reason") or "NVML not used"
        return None, "no NVML facts (%s)" % reason
    count = 0
    for gpu in gpu_facts.get("gpus") or []:
        if (gpu.get("health") or {}).get("status") == "unhealthy":
            continue
        mig = gpu.get("mig") or {}
        if mig_strategy == "none" or not mig.get("current"):
            count += 1
        elif mig_strategy == "single":
            count += len(mig.get("devices") or [])
    return count, "mig strategy %s" % mig_strategy


def _quantity(value):
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def capacity_shortfalls(expected, nodes):
    """Compare expected counts with what the Nodes advertise.

    expected: {node name: base count (before sharing replicas)}
    nodes: Node objects (dicts) as the API returns them.
    Returns (shortfalls, report): shortfalls lists every node that advertises fewer
    nvidia.com/gpu than expected, or that is missing; report has one line per checked node.
    """
    by_name = {((n.get("metadata") or {}).get("name")): n for n in nodes or []}
    shortfalls, report = [], []
    for name in sorted(expected):
        base = expected[name]
        node = by_name.get(name)
        if node is None:
            shortfalls.append({"node": name, "expected": base, "advertised": None, "reason": "no such Node"})
            continue
        labels = (node.get("metadata") or {}).get("labels") or {}
        replicas = _quantity(labels.get("nvidia.com/gpu.replicas")) or 1
        want = base * replicas
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        resource = "nvidia.com/gpu"
        if resource not in allocatable and "nvidia.com/gpu.shared" in allocatable:
            resource = "nvidia.com/gpu.shared"
        have = _quantity(allocatable.get(resource))
        line = {"node": name, "expected": want, "advertised": have, "resource": resource, "replicas": replicas}
        report.append(line)
        if have is None or have < want:
            shortfalls.append(dict(line, reason="advertises fewer GPUs than gpu_probe counted"))
    return shortfalls, report
