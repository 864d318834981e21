# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU sharing (time-slicing, MPS) for the NVIDIA device plugin: validation and rendering.

Pure functions, no I/O. Each inventory host's request (collected by roles/gpu_sharing) becomes
a device-plugin config in the plugin's ``version: v1`` format::

    version: v1
    sharing:
      timeSlicing:                 # or mps: (same keys; MPS always fails requests > 1)
        renameByDefault: false
        failRequestsGreaterThanOne: false
        resources:
          - name: nvidia.com/gpu
            replicas: 4

All configs go into one ConfigMap (one key per config name) that the GPU Operator hands to the
device plugin (ClusterPolicy ``spec.devicePlugin.config``); a node picks its entry with the
label ``nvidia.com/device-plugin.config``.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import hashlib
import json
import re

# Shared with the MIG planning filters: strict int checks (bool is not an int here).
from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import check_ranges, shown
from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import is_int as _is_int
from ansible_collections.gpuops.cluster.plugins.plugin_utils.operator_config import (
    LABEL_SHARING,
    label_changes,
    retained,
)
from ansible_collections.gpuops.cluster.plugins.plugin_utils.operator_config import (
    clusterpolicy_patch as _policy_patch,
)
from ansible_collections.gpuops.cluster.plugins.plugin_utils.operator_config import (
    configmap as _configmap,
)

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

STRATEGIES = ("none", "time-slicing", "mps")
SHARING_KEYS = {"time-slicing": "timeSlicing", "mps": "mps"}
DEFAULT_RESOURCE = "nvidia.com/gpu"
DEFAULT_CONFIG = "default"
NODE_LABEL = LABEL_SHARING
# The device plugin's own limits are far above these; a GPU advertised more than 128 times, or
# 1e12 times (4x10^12 GPUs on a 4-GPU node), is a typo.
MAX_REPLICAS = 128
MAX_RESOURCES = 32
# ConfigMap keys and label values: at most 63 characters, alphanumerics, '-', '_' and '.' inside.
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
# nvidia.com/gpu, nvidia.com/mig-1g.10gb, nvidia.com/gpu.shared
_RESOURCE = re.compile(r"^nvidia\.com/(gpu|mig-\d+g\.\d+gb(\.[a-z0-9]+)*)(\.[a-z0-9-]+)*$")
_RESOURCE_KEYS = ("name", "replicas", "rename", "devices")


class SharingError(ValueError):
    """A sharing request that cannot be honoured; the message names the host and variable."""


def _resources(request, strategy):
    replicas = request.get("replicas")
    custom = request.get("resources") or []
    if not isinstance(custom, list):
        raise SharingError("gpu_sharing_resources: must be a list of {name, replicas, rename, devices}")
    if not custom:
        if not _is_int(replicas) or not 2 <= replicas <= MAX_REPLICAS:
            raise SharingError(
                "gpu_sharing_replicas: must be an int >= 2 and <= %d for %s (each GPU is advertised that many "
                "times), got %s" % (MAX_REPLICAS, strategy, shown(replicas))
            )
        return [{"name": DEFAULT_RESOURCE, "replicas": replicas}]
    if len(custom) > MAX_RESOURCES:
        raise SharingError("gpu_sharing_resources: at most %d resources" % MAX_RESOURCES)
    result = []
    seen = set()
    for index, item in enumerate(custom):
        where = "gpu_sharing_resources[%d]" % index
        if not isinstance(item, dict):
            raise SharingError("%s: must be a mapping with keys %s" % (where, ", ".join(_RESOURCE_KEYS)))
        unknown = sorted(set(item) - set(_RESOURCE_KEYS))
        if unknown:
            raise SharingError("%s.%s: unknown key; allowed: %s" % (where, unknown[0], ", ".join(_RESOURCE_KEYS)))
        name = item.get("name")
        if not isinstance(name, str) or not _RESOURCE.match(name):
            raise SharingError(
                "%s.name: %s is not a device plugin resource (nvidia.com/gpu or nvidia.com/mig-<profile>)"
                % (where, shown(name))
            )
        if name in seen:
            raise SharingError("%s.name: %s is listed twice" % (where, name))
        seen.add(name)
        count = item.get("replicas")
        if not _is_int(count) or not 2 <= count <= MAX_REPLICAS:
            raise SharingError(
                "%s.replicas: must be an int >= 2 and <= %d, got %s" % (where, MAX_REPLICAS, shown(count))
            )
        entry = {"name": name, "replicas": count}
        if item.get("rename") not in (None, ""):
            rename = item["rename"]
            if not isinstance(rename, str) or not re.match(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$", rename):
                raise SharingError(
                    "%s.rename: %s is not a resource name suffix like gpu.shared" % (where, shown(rename))
                )
            entry["rename"] = rename
        if item.get("devices") not in (None, ""):
            devices = item["devices"]
            if devices != "all" and not (
                isinstance(devices, list)
                and devices
                and len(devices) <= 1024
                and all(
                    (_is_int(d) and 0 <= d <= 1023)
                    or (isinstance(d, str) and re.match(r"^(GPU|MIG)-[0-9a-fA-F-]{1,64}$", d))
                    for d in devices
                )
            ):
                raise SharingError(
                    "%s.devices: must be 'all' or a list of GPU indices (0-1023) or GPU/MIG UUIDs, got %s"
                    % (where, shown(devices))
                )
            entry["devices"] = devices
        result.append(entry)
    return result


def sharing_config(request):
    """The device-plugin v1 config (a mapping) for one request, or None for strategy none."""
    strategy = request.get("strategy", "none")
    if strategy not in STRATEGIES:
        raise SharingError("gpu_sharing_strategy: %s is not one of %s" % (shown(strategy), ", ".join(STRATEGIES)))
    if strategy == "none":
        return None
    rename = request.get("rename_by_default", False)
    if not isinstance(rename, bool):
        raise SharingError("gpu_sharing_rename_by_default: must be true or false, got %s" % shown(rename))
    fail_many = request.get("fail_requests_greater_than_one", False)
    if not isinstance(fail_many, bool):
        raise SharingError(
            "gpu_sharing_fail_requests_greater_than_one: must be true or false, got %s" % shown(fail_many)
        )
    body = {"renameByDefault": rename}
    if strategy == "time-slicing":
        body["failRequestsGreaterThanOne"] = fail_many
    # MPS: the device plugin always fails requests for more than one shared GPU; not a setting.
    body["resources"] = _resources(request, strategy)
    return {"version": "v1", "sharing": {SHARING_KEYS[strategy]: body}}


def _canonical(config):
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def config_name_for(config):
    """Deterministic name: ``time-slicing-4`` / ``mps-4`` for the plain form, else a content hash."""
    sharing = config["sharing"]
    key = "timeSlicing" if "timeSlicing" in sharing else "mps"
    body = sharing[key]
    prefix = "time-slicing" if key == "timeSlicing" else "mps"
    resources = body["resources"]
    simple_form = (
        len(resources) == 1
        and resources[0]["name"] == DEFAULT_RESOURCE
        and set(resources[0]) == {"name", "replicas"}
        and not body.get("renameByDefault")
        and not body.get("failRequestsGreaterThanOne")
    )
    if simple_form:
        return "%s-%d" % (prefix, resources[0]["replicas"])
    return "%s-%s" % (prefix, hashlib.sha256(_canonical(config).encode("utf-8")).hexdigest()[:10])


def _mig_in_use(request, gpu_facts):
    """Why the host has (or will have) MIG, or None."""
    mig = request.get("mig") or {}
    if mig.get("managed") and any(g.get("mig_enabled") for g in (mig.get("expected") or {}).values()):
        return "its MIG layout (%s) enables MIG" % mig.get("config_name")
    for gpu in (gpu_facts or {}).get("gpus") or []:
        state = gpu.get("mig") or {}
        if state.get("current") or state.get("pending"):
            if mig.get("managed"):
                continue  # the declared layout decides, and it turns MIG off
            return "gpu_probe reports MIG mode on for GPU %s" % gpu.get("index")
    return None


# Bounds of the role's wait settings (seconds).
WAIT_RANGES = {
    "wait_timeout": ("gpu_sharing_wait_timeout", 0, 86400),
    "wait_delay": ("gpu_sharing_wait_delay", 1, 3600),
}


def _check_waits(request):
    check_ranges(request, WAIT_RANGES, SharingError)


def plan_sharing(hosts, default_config=DEFAULT_CONFIG):
    """Validate every host and group them by config.

    ``hosts``: ``{name: {"request": {...}, "gpu": gpu facts}}`` where request has ``strategy``,
    ``replicas``, ``resources``, ``rename_by_default``, ``fail_requests_greater_than_one``,
    ``config_name`` (optional explicit name), ``node_name``, ``kube_node`` and ``mig`` (the host's
    mig role plan, when there is one).

    Returns ``{"configs": {name: config}, "nodes": {node: name or None}, "hosts": {host: {...}},
    "errors": [...]}``. ``nodes`` maps every Kubernetes node among the hosts to the config its
    label must name (None: remove the label, the default applies).
    """
    errors = []
    configs = {}
    owners = {}
    nodes = {}
    per_host = {}
    if not isinstance(default_config, str) or not _NAME.match(default_config):
        errors.append("gpu_sharing_default_config: %r is not a valid config name" % (default_config,))
    for host in sorted(hosts):
        item = hosts[host] or {}
        request = item.get("request")
        if not isinstance(request, dict):
            errors.append("%s: the gpu_sharing role did not collect its variables (not in the play?)" % host)
            continue
        try:
            _check_waits(request)
            config = sharing_config(request)
            name = None
            if config is not None:
                strategy = request["strategy"]
                if strategy == "mps":
                    why = _mig_in_use(request, item.get("gpu"))
                    if why:
                        raise SharingError(
                            "gpu_sharing_strategy: mps cannot share MIG devices, and %s; use time-slicing "
                            "or turn MIG off on this host" % why
                        )
                explicit = request.get("config_name") or ""
                if explicit and (not isinstance(explicit, str) or not _NAME.match(explicit)):
                    raise SharingError(
                        "gpu_sharing_config_name: %s is not a valid name (up to 63 letters, digits, '-', '_', '.')"
                        % shown(explicit)
                    )
                name = explicit or config_name_for(config)
                if name == default_config:
                    raise SharingError(
                        "gpu_sharing_config_name: %s is the name of the default (no sharing) config" % name
                    )
                if name in configs and _canonical(configs[name]) != _canonical(config):
                    raise SharingError(
                        "gpu_sharing_config_name: %s is already used by %s for a different config; "
                        "names must be unique" % (name, owners[name])
                    )
                configs[name] = config
                owners.setdefault(name, host)
        except SharingError as exc:
            errors.append("%s: %s" % (host, exc))
            continue
        per_host[host] = {"config_name": name, "strategy": request.get("strategy", "none"), "config": config}
        if request.get("kube_node"):
            node = request.get("node_name") or host
            if node in nodes and nodes[node] != name:
                errors.append(
                    "%s: Kubernetes node %s gets two configs (%s, %s): one method per node"
                    % (host, node, nodes[node], name)
                )
                continue
            nodes[node] = name
    return {"configs": configs, "nodes": nodes, "hosts": per_host, "errors": errors}


def render_configmap_data(configs, default_config=DEFAULT_CONFIG):
    """ConfigMap ``data``: one YAML document per config name, plus the no-sharing default."""
    data = {default_config: yaml.safe_dump({"version": "v1"}, default_flow_style=False, sort_keys=True)}
    for name in sorted(configs):
        data[name] = yaml.safe_dump(configs[name], default_flow_style=False, sort_keys=True)
    return data


def render_configmap(
    configs, name, namespace, default_config=DEFAULT_CONFIG, labels=None, nodes=None, existing=None, managed=()
):
    """The device-plugin ConfigMap: exactly the plan's configs and the default, plus the keys of
    the ``existing`` data that nodes outside the plan (``managed``) still name in their label."""
    data = render_configmap_data(configs, default_config)
    existing = existing or {}
    for key in retained(nodes, NODE_LABEL, managed, [k for k in existing if k not in data]):
        data[key] = existing[key]
    return _configmap(name, namespace, data, labels)


def node_label_changes(plan, nodes):
    """The nvidia.com/device-plugin.config patches the plan needs (None removes the label)."""
    return label_changes(nodes, plan["nodes"], NODE_LABEL)


def clusterpolicy_patch(configmap_name, default_config=DEFAULT_CONFIG):
    """Merge patch: the device plugin reads our ConfigMap, unlabelled nodes get the default."""
    return _policy_patch("devicePlugin", configmap_name, default_config)


def expected_allocatable(config, gpu_count):
    """``{resource: count}`` the node should advertise once the device plugin took the config."""
    if config is None:
        return {DEFAULT_RESOURCE: gpu_count}
    sharing = config["sharing"]
    body = sharing.get("timeSlicing") or sharing.get("mps")
    result = {}
    for resource in body["resources"]:
        if resource["name"] != DEFAULT_RESOURCE:
            continue  # MIG resources: counts depend on the layout; not checked here
        name = resource["name"]
        if resource.get("rename"):
            name = "nvidia.com/" + resource["rename"]
        elif body.get("renameByDefault"):
            name = name + ".shared"
        result[name] = gpu_count * resource["replicas"]
    return result


def node_sharing_problems(node, config_name, config):
    """What is not (yet) right about one Node object; empty when it reflects the config."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = meta.get("name")
    problems = []
    if labels.get(NODE_LABEL) != config_name:
        problems.append("%s: label %s=%r, expected %r" % (name, NODE_LABEL, labels.get(NODE_LABEL), config_name))
    if config is None:
        return problems
    count = labels.get("nvidia.com/gpu.count")
    try:
        gpu_count = int(count)
    except (TypeError, ValueError):
        return problems + ["%s: no nvidia.com/gpu.count label yet (GPU Operator not ready on the node)" % name]
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    for resource, want in sorted(expected_allocatable(config, gpu_count).items()):
        have = allocatable.get(resource)
        if str(have) != str(want):
            problems.append("%s: allocatable %s is %s, expected %d" % (name, resource, have, want))
    return problems
