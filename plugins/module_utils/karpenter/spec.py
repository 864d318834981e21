# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""karpenter_pool's inputs, validated and normalized: pure functions, no I/O.

``validate_params(params)`` returns the pool spec the renderer and the instance checks use, or
raises KarpenterPoolError naming the option and the allowed values. Shapes of Karpenter's
v1alpha5/v1beta1 APIs (Provisioner, ``ttlSecondsAfterEmpty``, ``nodeClassRef: {name}``,
``WhenUnderutilized``...) are refused with their v1 equivalent in the message.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import copy
import re

from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter._common import (
    BUDGET_DURATION,
    BUDGET_NODES,
    BUDGET_SCHEDULE,
    DNS_NAME,
    DURATION,
    DURATION_OR_NEVER,
    INSTANCE_FAMILY,
    INSTANCE_TYPE,
    LABEL_VALUE,
    QUALIFIED_KEY,
    QUANTITY,
    KarpenterPoolError,
    is_int,
    shown,
)

CAPACITY_TYPES = ("reserved", "spot", "on-demand")
CONSOLIDATION_POLICIES = ("WhenEmpty", "WhenEmptyOrUnderutilized", "Balanced")
BUDGET_REASONS = ("Underutilized", "Empty", "Drifted")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
VOLUME_TYPES = ("standard", "io1", "io2", "gp2", "sc1", "st1", "gp3")
AMI_FAMILIES = ("AL2", "AL2023", "Bottlerocket", "Custom", "Windows2019", "Windows2022", "Windows2025")
ALIAS_FAMILIES = ("al2", "al2023", "bottlerocket", "windows2019", "windows2022", "windows2025")
MIG_STRATEGIES = ("mixed", "single")
SHARING_KEYS = ("timeSlicing", "mps")
DEFAULT_GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
# Kubelet settings Karpenter itself reads for scheduling: typed here, the rest pass through.
KUBELET_INTS = (
    "maxPods",
    "podsPerCore",
    "evictionMaxPodGracePeriod",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
)
KUBELET_MAPS = ("systemReserved", "kubeReserved", "evictionHard", "evictionSoft", "evictionSoftGracePeriod")
BLOCK_DEVICE_KEYS = {
    "device_name": "deviceName",
    "root_volume": "rootVolume",
    "volume_size": "volumeSize",
    "volume_type": "volumeType",
    "iops": "iops",
    "throughput": "throughput",
    "encrypted": "encrypted",
    "kms_key_id": "kmsKeyID",
    "delete_on_termination": "deleteOnTermination",
    "snapshot_id": "snapshotID",
}
VOLUME_SIZE = re.compile(
    r"^((?:[1-9][0-9]{0,3}|[1-4][0-9]{4}|[5][0-8][0-9]{3}|59000)Gi|(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|[6][0-3][0-9]{3}|64000)G"
    r"|([1-9]||[1-5][0-7]|58)Ti|([1-9]||[1-5][0-9]|6[0-3]|64)T)$"
)
AMI_ALIAS = re.compile(r"^([a-zA-Z0-9]+)@(.+)$")
PINNED_VERSION = re.compile(r"^v[0-9]{8}$")
MIG_PROFILE = re.compile(r"^[1-9]g\.[0-9]+gb(\+me|\+gfx|\+me\.all|-me)?$")

# v1alpha5 / v1beta1 fields and their v1 equivalents, for messages.
LEGACY_NODEPOOL_FIELDS = {
    "ttlSecondsAfterEmpty": (
        "v1alpha5 Provisioner field; v1: consolidation_policy: WhenEmpty with "
        "consolidate_after (NodePool spec.disruption.consolidateAfter)"
    ),
    "ttlSecondsUntilExpired": "v1alpha5 Provisioner field; v1: expire_after (NodePool spec.template.spec.expireAfter)",
    "consolidation": (
        "v1alpha5 Provisioner field; v1: consolidation_policy: "
        "WhenEmptyOrUnderutilized (NodePool spec.disruption.consolidationPolicy)"
    ),
    "provider": (
        "v1alpha5 Provisioner field; v1: an EC2NodeClass (this module's node class options) referenced by nodeClassRef"
    ),
    "providerRef": (
        "v1alpha5 Provisioner field; v1: spec.template.spec.nodeClassRef "
        "{group: karpenter.k8s.aws, kind: EC2NodeClass, name}"
    ),
    "kubeletConfiguration": "v1alpha5 Provisioner field; v1: kubelet (EC2NodeClass spec.kubelet)",
    "requirements": (
        "v1alpha5 Provisioner field at spec level; v1: requirements (NodePool spec.template.spec.requirements)"
    ),
    "taints": "v1alpha5 Provisioner field at spec level; v1: taints (NodePool spec.template.spec.taints)",
    "labels": "v1alpha5 Provisioner field at spec level; v1: labels (NodePool spec.template.metadata.labels)",
}
LEGACY_TEMPLATE_FIELDS = {
    "kubelet": "v1beta1 NodePool field; v1: kubelet (EC2NodeClass spec.kubelet)",
}
LEGACY_DISRUPTION_FIELDS = {
    "expireAfter": "v1beta1 field; v1: expire_after (NodePool spec.template.spec.expireAfter)",
}


def _fail(message):
    raise KarpenterPoolError(message)


def _allowed(field, value, allowed):
    if value not in allowed:
        _fail("%s: %s is not allowed; allowed: %s" % (field, shown(value), ", ".join(allowed)))


def _string_list(field, values, pattern, what):
    result = []
    for index, value in enumerate(values or []):
        if not isinstance(value, str) or not pattern.match(value):
            _fail("%s[%d]: %s is not %s" % (field, index, shown(value), what))
        if value in result:
            _fail("%s[%d]: %s is listed twice" % (field, index, value))
        result.append(value)
    return result


def _check_name(name):
    if not isinstance(name, str) or not DNS_NAME.match(name) or len(name) > 63:
        _fail(
            "name: %s is not a valid pool name; allowed: a DNS label of at most 63 characters "
            "(lowercase letters, digits, '-', '.')" % shown(name)
        )


def _check_legacy_consolidation(policy):
    if policy == "WhenUnderutilized":
        _fail(
            "consolidation_policy: WhenUnderutilized is the v1beta1 name; in karpenter.sh/v1 use "
            "WhenEmptyOrUnderutilized (allowed: %s)" % ", ".join(CONSOLIDATION_POLICIES)
        )
    _allowed("consolidation_policy", policy, CONSOLIDATION_POLICIES)


def _taints(field, taints):
    result = []
    seen = set()
    for index, taint in enumerate(taints or []):
        where = "%s[%d]" % (field, index)
        if not isinstance(taint, dict):
            _fail("%s: must be a mapping with key, value, effect" % where)
        unknown = sorted(set(taint) - {"key", "value", "effect"})
        if unknown:
            _fail("%s.%s: unknown key; allowed: key, value, effect" % (where, unknown[0]))
        key = taint.get("key")
        if not isinstance(key, str) or not QUALIFIED_KEY.match(key):
            _fail("%s.key: %s is not a qualified name like nvidia.com/gpu" % (where, shown(key)))
        value = taint.get("value")
        if value not in (None, "") and (not isinstance(value, str) or not QUALIFIED_KEY.match(value)):
            _fail("%s.value: %s is not a valid taint value" % (where, shown(value)))
        effect = taint.get("effect")
        _allowed(where + ".effect", effect, TAINT_EFFECTS)
        if (key, effect) in seen:
            _fail("%s: taint %s:%s is listed twice" % (where, key, effect))
        seen.add((key, effect))
        entry = {"key": key, "effect": effect}
        if value not in (None, ""):
            entry["value"] = value
        result.append(entry)
    return result


def _labels(labels):
    result = {}
    for key, value in sorted((labels or {}).items()):
        if not isinstance(key, str) or not QUALIFIED_KEY.match(key) or len(key.split("/")[-1]) > 63:
            _fail("labels: key %s is not a qualified label name" % shown(key))
        if not isinstance(value, str) or not LABEL_VALUE.match(value) or len(value) > 63:
            _fail(
                "labels.%s: %s is not a label value (at most 63 characters: letters, digits, '-', '_', '.')"
                % (key, shown(value))
            )
        result[key] = value
    return result


def _limits(limits):
    result = {}
    names = {"cpu": "cpu", "memory": "memory", "gpu": "nvidia.com/gpu", "nodes": "nodes"}
    for key, value in sorted((limits or {}).items()):
        if key not in names:
            _fail("limits.%s: unknown limit; allowed: %s" % (key, ", ".join(sorted(names))))
        if value is None:
            continue
        text = str(value) if is_int(value) else value
        if not isinstance(text, str) or not QUANTITY.match(text) or text.startswith("-"):
            _fail("limits.%s: %s is not a non-negative Kubernetes quantity (like 64, 512Gi, 8)" % (key, shown(value)))
        result[names[key]] = text
    return result


def _budgets(budgets):
    result = []
    for index, budget in enumerate(budgets or []):
        where = "budgets[%d]" % index
        if not isinstance(budget, dict):
            _fail("%s: must be a mapping with nodes, schedule, duration, reasons" % where)
        unknown = sorted(set(budget) - {"nodes", "schedule", "duration", "reasons"})
        if unknown:
            _fail("%s.%s: unknown key; allowed: nodes, schedule, duration, reasons" % (where, unknown[0]))
        nodes = budget.get("nodes", "10%")
        nodes = str(nodes) if is_int(nodes) else nodes
        if not isinstance(nodes, str) or not BUDGET_NODES.match(nodes):
            _fail("%s.nodes: %s is not a node count or percentage (like 1, 0, 10%%)" % (where, shown(nodes)))
        entry = {"nodes": nodes}
        schedule, duration = budget.get("schedule"), budget.get("duration")
        if (schedule is None) != (duration is None):
            _fail("%s: 'schedule' must be set with 'duration' (both or neither)" % where)
        if schedule is not None:
            if not isinstance(schedule, str) or not BUDGET_SCHEDULE.match(schedule):
                _fail(
                    "%s.schedule: %s is not a cron schedule (5 fields) or @daily/@hourly/..." % (where, shown(schedule))
                )
            if not isinstance(duration, str) or not BUDGET_DURATION.match(duration):
                _fail(
                    "%s.duration: %s is not a duration in hours and minutes (like 8h, 30m, 1h30m)"
                    % (where, shown(duration))
                )
            entry["schedule"] = schedule
            entry["duration"] = duration
        reasons = budget.get("reasons")
        if reasons is not None:
            if not isinstance(reasons, list) or not reasons:
                _fail("%s.reasons: must be a non-empty list; allowed: %s" % (where, ", ".join(BUDGET_REASONS)))
            for position, reason in enumerate(reasons):
                _allowed("%s.reasons[%d]" % (where, position), reason, BUDGET_REASONS)
            entry["reasons"] = list(reasons)
        result.append(entry)
    return result


def _kubelet(kubelet):
    if kubelet is None:
        return None
    result = copy.deepcopy(kubelet)
    for key in KUBELET_INTS:
        if key in result and (not is_int(result[key]) or result[key] < 0):
            _fail("kubelet.%s: %s must be a non-negative integer" % (key, shown(result[key])))
    for key in KUBELET_MAPS:
        if key in result and not isinstance(result[key], dict):
            _fail("kubelet.%s: must be a mapping of resource or signal to quantity" % key)
    for key in ("systemReserved", "kubeReserved"):
        for resource, value in (result.get(key) or {}).items():
            _allowed("kubelet.%s key" % key, resource, ("cpu", "memory", "ephemeral-storage", "pid"))
            if not isinstance(value, str) or not QUANTITY.match(value):
                _fail("kubelet.%s.%s: %s is not a Kubernetes quantity" % (key, resource, shown(value)))
    return result


def _block_devices(devices):
    result = []
    for index, device in enumerate(devices or []):
        where = "block_device_mappings[%d]" % index
        unknown = sorted(set(device) - set(BLOCK_DEVICE_KEYS))
        if unknown:
            _fail("%s.%s: unknown key; allowed: %s" % (where, unknown[0], ", ".join(sorted(BLOCK_DEVICE_KEYS))))
        given = {k: v for k, v in device.items() if v is not None}
        if not given.get("device_name"):
            _fail("%s.device_name: required (like /dev/xvda)" % where)
        size = given.get("volume_size")
        if size is not None and (not isinstance(size, str) or not VOLUME_SIZE.match(size)):
            _fail(
                "%s.volume_size: %s is not an EBS size (1Gi-59000Gi, 1G-64000G, 1Ti-58Ti, 1T-64T)"
                % (where, shown(size))
            )
        if size is None and not given.get("snapshot_id"):
            _fail("%s: snapshotID or volumeSize must be defined (volume_size or snapshot_id)" % where)
        if "volume_type" in given:
            _allowed(where + ".volume_type", given["volume_type"], VOLUME_TYPES)
        ebs = {}
        for key in (
            "volume_size",
            "volume_type",
            "iops",
            "throughput",
            "encrypted",
            "kms_key_id",
            "delete_on_termination",
            "snapshot_id",
        ):
            if key in given:
                ebs[BLOCK_DEVICE_KEYS[key]] = given[key]
        entry = {"deviceName": given["device_name"], "ebs": ebs}
        if given.get("root_volume"):
            entry["rootVolume"] = True
        result.append(entry)
    if sum(1 for d in result if d.get("rootVolume")) > 1:
        _fail("block_device_mappings: must have only one entry with root_volume: true")
    return result


def _ami(alias, allow_latest, family):
    if not isinstance(alias, str) or not alias:
        _fail("ami_alias: required, a pinned alias like al2023@v20250505 (families: %s)" % ", ".join(ALIAS_FAMILIES))
    match = AMI_ALIAS.match(alias)
    if not match:
        _fail("ami_alias: %s is improperly formatted, must be 'family@version' like al2023@v20250505" % shown(alias))
    alias_family, version = match.group(1), match.group(2)
    _allowed("ami_alias family", alias_family, ALIAS_FAMILIES)
    windows = alias_family.startswith("windows")
    if windows and version != "latest":
        _fail("ami_alias: windows families may only specify version 'latest', got %s" % shown(alias))
    if version == "latest" and not allow_latest:
        _fail(
            "ami_alias: %s follows every new AMI (nodes drift and get replaced on release); pin a "
            "version like %s@v20250505 or set allow_latest_ami: true" % (alias, alias_family)
        )
    if version != "latest" and not PINNED_VERSION.match(version):
        _fail("ami_alias: version %s is not vYYYYMMDD or latest" % shown(version))
    if family is not None:
        _allowed("ami_family", family, AMI_FAMILIES)
        wanted = {"al2": "AL2", "al2023": "AL2023", "bottlerocket": "Bottlerocket"}.get(
            alias_family, alias_family.capitalize()
        )
        if family not in ("Custom", wanted):
            _fail("ami_family: must be %r or 'Custom' when using a %s alias, got %r" % (wanted, alias_family, family))
    return alias


def _selector_terms(field, terms, allowed, id_pattern):
    if not terms:
        _fail("%s: required, at least one term with %s" % (field, " or ".join(allowed)))
    if len(terms) > 30:
        _fail("%s: at most 30 terms" % field)
    result = []
    for index, term in enumerate(terms):
        where = "%s[%d]" % (field, index)
        given = {k: v for k, v in (term or {}).items() if v not in (None, {}, "")}
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            _fail("%s.%s: unknown key; allowed: %s" % (where, unknown[0], ", ".join(allowed)))
        if not given:
            _fail("%s: expected at least one, got none, %s" % (where, list(allowed)))
        if "id" in given and len(given) > 1:
            _fail("%s: 'id' is mutually exclusive, cannot be set with a combination of other fields" % where)
        if "name" in given and len(given) > 1:
            _fail("%s: 'name' is mutually exclusive, cannot be set with a combination of other fields" % where)
        if "id" in given and not re.match(id_pattern, str(given["id"])):
            _fail("%s.id: %s does not match %s" % (where, shown(given["id"]), id_pattern))
        for key, value in (given.get("tags") or {}).items():
            if key == "" or value in (None, ""):
                _fail("%s.tags: empty tag keys or values aren't supported" % where)
        result.append(given)
    return result


def _tags(tags):
    result = {}
    for key, value in sorted((tags or {}).items()):
        if key == "":
            _fail("tags: empty tag keys aren't supported")
        restricted = key in (
            "eks:eks-cluster-name",
            "karpenter.sh/nodepool",
            "karpenter.sh/nodeclaim",
            "karpenter.k8s.aws/ec2nodeclass",
        )
        if restricted or key.startswith("kubernetes.io/cluster"):
            _fail(
                "tags.%s: restricted tag (Karpenter sets it); restricted: eks:eks-cluster-name, "
                "kubernetes.io/cluster/*, "
                "karpenter.sh/nodepool, karpenter.sh/nodeclaim, karpenter.k8s.aws/ec2nodeclass" % key
            )
        if not isinstance(value, str):
            _fail("tags.%s: %s must be a string" % (key, shown(value)))
        result[key] = value
    return result


def _mig(layout, strategy):
    _allowed("mig_strategy", strategy, MIG_STRATEGIES)
    if not layout:
        return None
    result = {}
    for profile, count in sorted(layout.items()):
        if not isinstance(profile, str) or not MIG_PROFILE.match(profile):
            _fail("mig_layout: %s is not a MIG profile name like 1g.10gb or 3g.40gb" % shown(profile))
        if not is_int(count) or count < 0:
            _fail("mig_layout.%s: %s must be a non-negative integer (instances per GPU)" % (profile, shown(count)))
        if count:
            result[profile] = count
    if not result:
        _fail("mig_layout: no instance left (every count is 0); omit mig_layout for whole GPUs")
    if strategy == "single" and len(result) > 1:
        _fail("mig_layout: mig_strategy single needs one profile on every GPU, got %s" % ", ".join(result))
    return result


def _sharing(config):
    """Replicas per GPU from the device plugin config (the gpu_sharing layer's ConfigMap data)."""
    if not config:
        return None
    sharing = config.get("sharing") if isinstance(config, dict) else None
    if not isinstance(sharing, dict):
        _fail("sharing_config: must be a device plugin v1 config {version: v1, sharing: {timeSlicing|mps: ...}}")
    keys = [k for k in SHARING_KEYS if sharing.get(k)]
    if len(keys) != 1:
        _fail(
            "sharing_config.sharing: exactly one of %s; got %s"
            % (", ".join(SHARING_KEYS), ", ".join(sorted(sharing)) or "none")
        )
    body = sharing[keys[0]]
    resources = body.get("resources") or []
    result = {}
    for index, resource in enumerate(resources):
        name = resource.get("name") if isinstance(resource, dict) else None
        replicas = resource.get("replicas") if isinstance(resource, dict) else None
        if not isinstance(name, str) or not name.startswith("nvidia.com/"):
            _fail(
                "sharing_config.sharing.%s.resources[%d].name: %s is not nvidia.com/gpu or nvidia.com/mig-<profile>"
                % (keys[0], index, shown(name))
            )
        if not is_int(replicas) or replicas < 2:
            _fail(
                "sharing_config.sharing.%s.resources[%d].replicas: %s must be an integer >= 2"
                % (keys[0], index, shown(replicas))
            )
        if resource.get("rename"):
            advertised = "nvidia.com/" + resource["rename"]
        elif body.get("renameByDefault"):
            advertised = name + ".shared"
        else:
            advertised = name
        result[name] = {"replicas": replicas, "advertised": advertised}
    if not result:
        _fail("sharing_config.sharing.%s.resources: at least one resource" % keys[0])
    return {"strategy": keys[0], "resources": result}


def _legacy_raw(field, raw, table):
    for key in sorted(raw or {}):
        if key in table:
            _fail("%s.%s: %s" % (field, key, table[key]))


def _raw_node_pool_spec(raw):
    raw = copy.deepcopy(raw or {})
    _legacy_raw("node_pool_spec", raw, LEGACY_NODEPOOL_FIELDS)
    template_spec = ((raw.get("template") or {}).get("spec")) or {}
    _legacy_raw("node_pool_spec.template.spec", template_spec, LEGACY_TEMPLATE_FIELDS)
    _legacy_raw("node_pool_spec.disruption", raw.get("disruption") or {}, LEGACY_DISRUPTION_FIELDS)
    ref = template_spec.get("nodeClassRef")
    if ref is not None:
        _fail(
            "node_pool_spec.template.spec.nodeClassRef: set by the module (v1: {group: karpenter.k8s.aws, kind: "
            "EC2NodeClass, name: <pool name>}; the v1beta1 shape {name} alone is not accepted)"
        )
    policy = (raw.get("disruption") or {}).get("consolidationPolicy")
    if policy is not None:
        _check_legacy_consolidation(policy)
    return raw


def _raw_node_class_spec(raw):
    raw = copy.deepcopy(raw or {})
    for key in (
        "role",
        "instanceProfile",
        "amiSelectorTerms",
        "subnetSelectorTerms",
        "securityGroupSelectorTerms",
        "tags",
        "userData",
        "kubelet",
        "blockDeviceMappings",
    ):
        if key in raw:
            _fail(
                "node_class_spec.%s: use the module's own option for it (role, instance_profile, ami_alias, "
                "subnet_selector, "
                "security_group_selector, tags, user_data, kubelet, block_device_mappings)" % key
            )
    if "amiFamily" in raw:
        _fail(
            "node_class_spec.amiFamily: use ami_family (with ami_alias; v1 selects the AMI by alias like "
            "al2023@v20250505)"
        )
    return raw


def validate_params(params):
    """The normalized pool spec (a dict) for ``params``; KarpenterPoolError on bad input."""
    _check_name(params.get("name"))
    spec = {"name": params["name"], "state": params.get("state", "present")}
    _allowed("state", spec["state"], ("present", "absent"))
    if params.get("kind") == "Provisioner" or params.get("api_version") in (
        "karpenter.sh/v1alpha5",
        "karpenter.sh/v1beta1",
    ):
        _fail(
            "api_version/kind: Provisioner (karpenter.sh/v1alpha5) and karpenter.sh/v1beta1 are gone; this module "
            "manages karpenter.sh/v1 NodePool + karpenter.k8s.aws/v1 EC2NodeClass"
        )
    if spec["state"] == "absent":
        return spec
    spec["instance_types"] = _string_list(
        "instance_types", params.get("instance_types"), INSTANCE_TYPE, "an EC2 instance type like p4d.24xlarge"
    )
    spec["instance_families"] = _string_list(
        "instance_families", params.get("instance_families"), INSTANCE_FAMILY, "an EC2 instance family like p5 or g6e"
    )
    gpu_names = params.get("gpu_names") or []
    spec["gpu_names"] = _string_list(
        "gpu_names", [str(n).lower() for n in gpu_names], INSTANCE_FAMILY, "a GPU name like a100, h100, l40s"
    )
    for key in ("gpu_count_min", "gpu_memory_min_mib"):
        value = params.get(key)
        if value is not None and (not is_int(value) or value < 1):
            _fail("%s: %s must be a positive integer" % (key, shown(value)))
        spec[key] = value
    if not (spec["instance_types"] or spec["instance_families"] or spec["gpu_names"]):
        _fail(
            "instance_types, instance_families or gpu_names: at least one is required (a GPU pool must not launch "
            "CPU-only instances)"
        )
    capacity = params.get("capacity_types") or ["on-demand"]
    for index, value in enumerate(capacity):
        _allowed("capacity_types[%d]" % index, value, CAPACITY_TYPES)
    if len(set(capacity)) != len(capacity):
        _fail("capacity_types: a capacity type is listed twice")
    spec["capacity_types"] = list(capacity)
    spec["limits"] = _limits(params.get("limits"))
    weight = params.get("weight")
    if weight is not None and (not is_int(weight) or not 1 <= weight <= 100):
        _fail("weight: %s is out of range; allowed: 1-100" % shown(weight))
    spec["weight"] = weight
    _check_legacy_consolidation(params.get("consolidation_policy") or "WhenEmpty")
    spec["consolidation_policy"] = params.get("consolidation_policy") or "WhenEmpty"
    after = params.get("consolidate_after") or "10m"
    if not DURATION_OR_NEVER.match(after):
        _fail("consolidate_after: %s is not a duration like 30s, 10m, 1h or Never" % shown(after))
    spec["consolidate_after"] = after
    spec["budgets"] = _budgets(params.get("budgets"))
    expire = params.get("expire_after") or "720h"
    if not DURATION_OR_NEVER.match(expire):
        _fail("expire_after: %s is not a duration like 720h or Never" % shown(expire))
    spec["expire_after"] = expire
    grace = params.get("termination_grace_period")
    if grace is not None and not DURATION.match(grace):
        _fail("termination_grace_period: %s is not a duration like 30m or 48h" % shown(grace))
    spec["termination_grace_period"] = grace
    taints = params.get("taints")
    spec["taints"] = [dict(DEFAULT_GPU_TAINT)] if taints is None else _taints("taints", taints)
    spec["startup_taints"] = _taints("startup_taints", params.get("startup_taints"))
    spec["labels"] = _labels(params.get("labels"))
    spec["requirements"] = copy.deepcopy(params.get("requirements") or [])
    spec["kubelet"] = _kubelet(params.get("kubelet"))
    spec["block_device_mappings"] = _block_devices(params.get("block_device_mappings"))
    spec["ami_alias"] = _ami(params.get("ami_alias"), bool(params.get("allow_latest_ami")), params.get("ami_family"))
    spec["ami_family"] = params.get("ami_family")
    role, profile = params.get("role"), params.get("instance_profile")
    if bool(role) == bool(profile):
        _fail(
            "role, instance_profile: must specify exactly one of ['role', 'instance_profile'] (got %s)"
            % ("both" if role else "neither")
        )
    spec["role"], spec["instance_profile"] = role, profile
    spec["subnet_selector"] = _selector_terms(
        "subnet_selector", params.get("subnet_selector"), ("id", "tags"), r"^subnet-[0-9a-z]+$"
    )
    spec["security_group_selector"] = _selector_terms(
        "security_group_selector", params.get("security_group_selector"), ("id", "name", "tags"), r"^sg-[0-9a-z]+$"
    )
    spec["tags"] = _tags(params.get("tags"))
    spec["user_data"] = params.get("user_data")
    spec["gpu_operator_driver"] = params.get("gpu_operator_driver", True)
    spec["mig_strategy"] = params.get("mig_strategy") or "mixed"
    spec["mig_layout"] = _mig(params.get("mig_layout"), spec["mig_strategy"])
    spec["sharing"] = _sharing(params.get("sharing_config"))
    spec["node_pool_spec"] = _raw_node_pool_spec(params.get("node_pool_spec"))
    spec["node_class_spec"] = _raw_node_class_spec(params.get("node_class_spec"))
    queue = params.get("interruption_queue")
    if queue is not None:
        from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.interruption import check_queue_name

        check_queue_name(queue)
    spec["interruption_queue"] = queue
    return spec
