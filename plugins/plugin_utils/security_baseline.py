# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The security baseline: validate the role's typed spec and render every manifest it applies.

Pure functions, no I/O. ``plan_baseline(spec)`` returns ``{"manifests": [...], "errors": [...],
"warnings": [...]}``; the role fails on errors before any change and applies the manifests as
they are. Namespace classes:

- ``tenant``: Pod Security Admission ``restricted`` for enforce, audit and warn, each with the
  pinned version (``pod-security.kubernetes.io/<mode>-version``);
- ``operator`` / ``system``: the level their pods need (``privileged`` for the GPU Operator's
  driver, toolkit and DCGM pods), with a required reason; audit stays ``restricted`` so what the
  exception lets through is still recorded.

Every managed namespace gets a default-deny NetworkPolicy (ingress and egress), DNS egress to
kube-dns (UDP and TCP 53, the namespace selected by ``kubernetes.io/metadata.name``, the label
the API server sets on every namespace), and the declared allows, rendered on both sides.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import is_int, shown
from ansible_collections.gpuops.cluster.plugins.plugin_utils.security_rbac import (
    RbacError,
    render_bindings,
    render_roles,
)

CLASSES = ("tenant", "operator", "system")
LEVELS = ("privileged", "baseline", "restricted")
PSA_MODES = ("enforce", "audit", "warn")
PSA_PREFIX = "pod-security.kubernetes.io/"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
TIERS = ("inference", "training", "experiment")
PREEMPTION = ("PreemptLowerPriority", "Never")
WORKLOADS = ("serving", "training")
GPU_RESOURCE = "nvidia.com/gpu"
MIG_PREFIX = "nvidia.com/mig-"
COMMON_LABELS = {
    "app.kubernetes.io/managed-by": "gpuops.cluster",
    "app.kubernetes.io/part-of": "security-baseline",
}
DEFAULT_DENY = "gpuops-default-deny"
ALLOW_DNS = "gpuops-allow-dns"
ALLOW_PREFIX = "gpuops-allow-"
MAX_PRIORITY = 1000000000

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_PSA_VERSION = re.compile(r"^v1\.[0-9]{1,2}$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_MIG_PROFILE = re.compile(r"^[1-8]g\.[0-9]+gb(\+me)?$|^[1-8]c\.[1-8]g\.[0-9]+gb$")
_PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")
_CIDR = re.compile(r"^([0-9]{1,3}\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2])$")
QUOTA_RESOURCES = ("cpu", "memory", "pods")


class BaselineError(ValueError):
    """Invalid input; the message names the field and the allowed values."""


def _where_dict(value, where, keys, required=()):
    if not isinstance(value, dict):
        raise BaselineError("%s: must be a dict with keys %s, got %s" % (where, ", ".join(keys), shown(value)))
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise BaselineError("%s: unknown keys %s; allowed: %s" % (where, unknown, ", ".join(keys)))
    for key in required:
        if key not in value:
            raise BaselineError("%s.%s: required" % (where, key))
    return value


def _list(value, where):
    if not isinstance(value, list):
        raise BaselineError("%s: must be a list, got %s" % (where, shown(value)))
    return value


def _labels(value, where):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BaselineError("%s: must be a dict of label key: value, got %s" % (where, shown(value)))
    for key, val in value.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            raise BaselineError("%s: %s is not a valid label key" % (where, shown(key)))
        if key == "name":
            raise BaselineError(
                "%s: the label 'name' is not set by Kubernetes; select namespaces by %s and pods by their app labels"
                % (where, NAMESPACE_NAME_LABEL)
            )
        if not isinstance(val, str) or not _LABEL_VALUE.match(val):
            raise BaselineError("%s: %s is not a valid label value for %s" % (where, shown(val), key))
    return dict(value)


def _quantity(value, where):
    if is_int(value) and value >= 0:
        return str(value)
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise BaselineError("%s: %s is not a Kubernetes quantity (like 500m, 4, 16Gi)" % (where, shown(value)))
    return value


def _count(value, where, low=0, high=100000):
    if not is_int(value) or not low <= value <= high:
        raise BaselineError("%s: %s is out of range; allowed: %d-%d" % (where, shown(value), low, high))
    return value


# ---------------------------------------------------------------- namespaces


def _namespaces(spec, version):
    items = _list(spec.get("namespaces"), "security_baseline_namespaces")
    if not items:
        raise BaselineError("security_baseline_namespaces: list at least one namespace")
    out = {}
    for index, item in enumerate(items):
        where = "security_baseline_namespaces[%d]" % index
        _where_dict(item, where, ("name", "class", "level", "reason", "default_deny", "labels"), ("name", "class"))
        name = item["name"]
        if not isinstance(name, str) or not _DNS_LABEL.match(name):
            raise BaselineError("%s.name: %s is not a valid namespace name (DNS label)" % (where, shown(name)))
        if name in out:
            raise BaselineError("%s.name: %s is listed twice" % (where, name))
        cls = item["class"]
        if cls not in CLASSES:
            raise BaselineError("%s.class: %s; allowed: %s" % (where, shown(cls), ", ".join(CLASSES)))
        level = item.get("level", "restricted")
        if level not in LEVELS:
            raise BaselineError("%s.level: %s; allowed: %s" % (where, shown(level), ", ".join(LEVELS)))
        if cls == "tenant" and level != "restricted":
            raise BaselineError(
                "%s.level: tenant namespaces are always restricted; "
                "make %s an operator or system namespace with a reason" % (where, name)
            )
        reason = item.get("reason", "")
        if level != "restricted" and (not isinstance(reason, str) or len(reason.strip()) < 10):
            raise BaselineError(
                "%s.reason: an exception to restricted (%s) needs the reason its pods need it" % (where, level)
            )
        default_deny = item.get("default_deny", True)
        if not isinstance(default_deny, bool):
            raise BaselineError("%s.default_deny: must be true or false, got %s" % (where, shown(default_deny)))
        extra = _labels(item.get("labels"), where + ".labels")
        if any(k.startswith(PSA_PREFIX) for k in extra):
            raise BaselineError(
                "%s.labels: set Pod Security levels with class/level, not %s* labels" % (where, PSA_PREFIX)
            )
        labels = dict(COMMON_LABELS)
        labels.update(extra)
        labels["gpuops.io/namespace-class"] = cls
        for mode in PSA_MODES:
            labels[PSA_PREFIX + mode] = "restricted" if mode == "audit" else level
            labels[PSA_PREFIX + mode + "-version"] = version
        out[name] = {
            "name": name,
            "class": cls,
            "level": level,
            "reason": reason,
            "default_deny": default_deny,
            "object": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
        }
    return out


# ---------------------------------------------------------------- network policies


def _ports(value, where):
    ports = _list(value, where)
    if not ports:
        raise BaselineError("%s: list at least one port (an allow without ports opens every port)" % where)
    out = []
    for index, port in enumerate(ports):
        p_where = "%s[%d]" % (where, index)
        _where_dict(port, p_where, ("port", "protocol"), ("port",))
        _count(port["port"], p_where + ".port", 1, 65535)
        protocol = port.get("protocol", "TCP")
        if protocol not in PROTOCOLS:
            raise BaselineError("%s.protocol: %s; allowed: %s" % (p_where, shown(protocol), ", ".join(PROTOCOLS)))
        out.append({"protocol": protocol, "port": port["port"]})
    return out


def _endpoint(value, where, namespaces):
    _where_dict(value, where, ("namespace", "pod_labels", "cidr", "except"))
    if "cidr" in value:
        if "namespace" in value or "pod_labels" in value:
            raise BaselineError("%s: either cidr or namespace/pod_labels, not both" % where)
        cidr = value["cidr"]
        if not isinstance(cidr, str) or not _CIDR.match(cidr):
            raise BaselineError("%s.cidr: %s is not an IPv4 CIDR (like 10.0.0.0/8)" % (where, shown(cidr)))
        block = {"cidr": cidr}
        if value.get("except"):
            block["except"] = list(_list(value["except"], where + ".except"))
            for c in block["except"]:
                if not isinstance(c, str) or not _CIDR.match(c):
                    raise BaselineError("%s.except: %s is not an IPv4 CIDR" % (where, shown(c)))
        return {"namespace": None, "peer": {"ipBlock": block}, "pod_labels": {}}
    namespace = value.get("namespace")
    if not isinstance(namespace, str) or not _DNS_LABEL.match(namespace):
        raise BaselineError("%s.namespace: %s is not a namespace name" % (where, shown(namespace)))
    pod_labels = _labels(value.get("pod_labels"), where + ".pod_labels")
    peer = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}
    peer["podSelector"] = {"matchLabels": pod_labels} if pod_labels else {}
    return {"namespace": namespace, "peer": peer, "pod_labels": pod_labels}


def _policy(name, namespace, pod_labels, types, **rules):
    spec = {"podSelector": {"matchLabels": pod_labels} if pod_labels else {}, "policyTypes": types}
    spec.update(rules)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(COMMON_LABELS)},
        "spec": spec,
    }


def _network_policies(spec, namespaces):
    dns = _where_dict(
        spec.get("dns") or {}, "security_baseline_dns", ("namespace", "pod_labels"), ("namespace", "pod_labels")
    )
    dns_ep = _endpoint(dns, "security_baseline_dns", namespaces)
    if not dns_ep["pod_labels"]:
        raise BaselineError("security_baseline_dns.pod_labels: select the DNS pods (like k8s-app: kube-dns)")
    if dns["namespace"] in namespaces and namespaces[dns["namespace"]]["default_deny"]:
        raise BaselineError(
            "security_baseline_namespaces: %s holds cluster DNS; set default_deny: false for it" % dns["namespace"]
        )
    dns_ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    policies = []
    guarded = sorted(n for n, item in namespaces.items() if item["default_deny"])
    for namespace in guarded:
        policies.append(_policy(DEFAULT_DENY, namespace, {}, ["Ingress", "Egress"]))
        policies.append(
            _policy(ALLOW_DNS, namespace, {}, ["Egress"], egress=[{"to": [dns_ep["peer"]], "ports": dns_ports}])
        )
    allows = _list(spec.get("network_allows") or [], "security_baseline_network_allows")
    seen = set()
    declared = []
    for index, allow in enumerate(allows):
        where = "security_baseline_network_allows[%d]" % index
        _where_dict(allow, where, ("name", "from", "to", "ports"), ("name", "from", "to", "ports"))
        name = allow["name"]
        if not isinstance(name, str) or not _DNS_LABEL.match(name) or len(ALLOW_PREFIX + name + "-ingress") > 63:
            raise BaselineError("%s.name: %s is not a short DNS label (at most 45 characters)" % (where, shown(name)))
        if name in seen:
            raise BaselineError("%s.name: %s is declared twice" % (where, name))
        seen.add(name)
        src = _endpoint(allow["from"], where + ".from", namespaces)
        dst = _endpoint(allow["to"], where + ".to", namespaces)
        ports = _ports(allow["ports"], where + ".ports")
        src_guarded = src["namespace"] in guarded
        dst_guarded = dst["namespace"] in guarded
        if not src_guarded and not dst_guarded:
            raise BaselineError(
                "%s: neither %s nor %s is a managed namespace with default deny; allowed namespaces: %s"
                % (where, src["namespace"] or "the CIDR", dst["namespace"] or "the CIDR", ", ".join(guarded))
            )
        if src_guarded:
            policies.append(
                _policy(
                    ALLOW_PREFIX + name + "-egress",
                    src["namespace"],
                    src["pod_labels"],
                    ["Egress"],
                    egress=[{"to": [dst["peer"]], "ports": ports}],
                )
            )
        if dst_guarded:
            policies.append(
                _policy(
                    ALLOW_PREFIX + name + "-ingress",
                    dst["namespace"],
                    dst["pod_labels"],
                    ["Ingress"],
                    ingress=[{"from": [src["peer"]], "ports": ports}],
                )
            )
        declared.append({"name": name, "from": allow["from"], "to": allow["to"], "ports": ports})
    return policies, declared, {"namespace": dns["namespace"], "pod_labels": dns_ep["pod_labels"], "ports": dns_ports}


# ---------------------------------------------------------------- quotas and limits


def mig_profiles_of(configs):
    """MIG profile names the mig role's operator configs (``mig_plan_all.configs``) expose."""
    found = set()

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "mig-devices" and isinstance(item, dict):
                    found.update(str(p) for p, n in item.items() if n)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(configs or {})
    return sorted(found)


def _quotas(spec, namespaces):
    profiles = spec.get("mig_profiles") or []
    if not isinstance(profiles, list) or not all(isinstance(p, str) and _MIG_PROFILE.match(p) for p in profiles):
        raise BaselineError(
            "security_baseline_mig_profiles: %s is not a list of MIG profile names (like 1g.10gb)" % shown(profiles)
        )
    out = []
    for index, quota in enumerate(_list(spec.get("quotas") or [], "security_baseline_quotas")):
        where = "security_baseline_quotas[%d]" % index
        _where_dict(quota, where, ("namespace", "name", "gpus", "mig", "cpu", "memory", "pods", "hard"), ("namespace",))
        namespace = quota["namespace"]
        if namespace not in namespaces:
            raise BaselineError(
                "%s.namespace: %s is not a managed namespace; allowed: %s"
                % (where, shown(namespace), ", ".join(sorted(namespaces)))
            )
        hard = {}
        extra = quota.get("hard") or {}
        if not isinstance(extra, dict):
            raise BaselineError("%s.hard: must be a dict of resource: quantity" % where)
        for key, value in extra.items():
            if not isinstance(key, str):
                raise BaselineError("%s.hard: %s is not a resource name" % (where, shown(key)))
            if key.startswith("limits.nvidia.com/"):
                raise BaselineError(
                    "%s.hard: %s is not a valid quota: extended resources such as GPUs are quota'd by requests.%s only "
                    "(their requests always equal their limits); use gpus or mig" % (where, key, key[len("limits.") :])
                )
            if key.startswith("nvidia.com/") or key.startswith("requests.nvidia.com/"):
                raise BaselineError("%s.hard: set GPU quotas with gpus and mig, not %s" % (where, key))
            hard[key] = _quantity(value, "%s.hard.%s" % (where, key))
        if "gpus" in quota:
            hard["requests." + GPU_RESOURCE] = str(_count(quota["gpus"], where + ".gpus", 0, 4096))
        mig = quota.get("mig") or {}
        if not isinstance(mig, dict):
            raise BaselineError("%s.mig: must be a dict of MIG profile: count" % where)
        for profile, count in mig.items():
            if profile not in profiles:
                raise BaselineError(
                    "%s.mig: no MIG layout of the cluster exposes %s; allowed: %s"
                    % (where, shown(profile), ", ".join(profiles) or "none (no MIG layout in operator mode)")
                )
            hard["requests." + MIG_PREFIX + profile] = str(_count(count, "%s.mig.%s" % (where, profile), 0, 4096))
        for key in QUOTA_RESOURCES:
            if key in quota:
                target = "pods" if key == "pods" else "requests." + key
                hard[target] = (
                    str(_count(quota[key], where + ".pods"))
                    if key == "pods"
                    else _quantity(quota[key], "%s.%s" % (where, key))
                )
        if not hard:
            raise BaselineError("%s: sets no limit; give gpus, mig, cpu, memory, pods or hard" % where)
        name = quota.get("name", "gpuops-quota")
        if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name):
            raise BaselineError("%s.name: %s is not a valid object name" % (where, shown(name)))
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": name, "namespace": namespace, "labels": dict(COMMON_LABELS)},
                "spec": {"hard": dict(sorted(hard.items()))},
            }
        )
    return out


def _limit_ranges(spec, namespaces):
    limits = spec.get("limit_range")
    if not limits:
        return []
    _where_dict(limits, "security_baseline_limit_range", ("default", "default_request", "max"))
    item = {"type": "Container"}
    for key, target in (("default", "default"), ("default_request", "defaultRequest"), ("max", "max")):
        values = limits.get(key)
        if values is None:
            continue
        _where_dict(values, "security_baseline_limit_range.%s" % key, ("cpu", "memory"))
        item[target] = {
            r: _quantity(v, "security_baseline_limit_range.%s.%s" % (key, r)) for r, v in sorted(values.items())
        }
    return [
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "gpuops-limits", "namespace": name, "labels": dict(COMMON_LABELS)},
            "spec": {"limits": [item]},
        }
        for name in sorted(namespaces)
        if namespaces[name]["class"] == "tenant"
    ]


def _priority_classes(spec):
    out = []
    by_tier = {tier: [] for tier in TIERS}
    defaults = []
    for index, item in enumerate(_list(spec.get("priority_classes") or [], "security_baseline_priority_classes")):
        where = "security_baseline_priority_classes[%d]" % index
        _where_dict(
            item,
            where,
            ("name", "value", "tier", "description", "preemption_policy", "global_default"),
            ("name", "value", "tier"),
        )
        name = item["name"]
        if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name) or name.startswith("system-"):
            raise BaselineError(
                "%s.name: %s is not a valid PriorityClass name (system- is reserved)" % (where, shown(name))
            )
        value = _count(item["value"], where + ".value", 0, MAX_PRIORITY)
        if item["tier"] not in TIERS:
            raise BaselineError("%s.tier: %s; allowed: %s" % (where, shown(item["tier"]), ", ".join(TIERS)))
        by_tier[item["tier"]].append((value, name))
        policy = item.get("preemption_policy", "PreemptLowerPriority")
        if policy not in PREEMPTION:
            raise BaselineError("%s.preemption_policy: %s; allowed: %s" % (where, shown(policy), ", ".join(PREEMPTION)))
        global_default = item.get("global_default", False)
        if not isinstance(global_default, bool):
            raise BaselineError("%s.global_default: must be true or false" % where)
        if global_default:
            defaults.append(name)
        out.append(
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name, "labels": dict(COMMON_LABELS)},
                "value": value,
                "globalDefault": global_default,
                "preemptionPolicy": policy,
                "description": str(item.get("description") or "%s workloads (gpuops.cluster)" % item["tier"]),
            }
        )
    if len(defaults) > 1:
        raise BaselineError("security_baseline_priority_classes: only one may be global_default, got %s" % defaults)
    for upper, lower in (("inference", "training"), ("training", "experiment"), ("inference", "experiment")):
        if by_tier[upper] and by_tier[lower] and min(by_tier[upper])[0] <= max(by_tier[lower])[0]:
            raise BaselineError(
                "security_baseline_priority_classes: %s (%s tier, %d) must be above %s (%s tier, %d)"
                % (
                    min(by_tier[upper])[1],
                    upper,
                    min(by_tier[upper])[0],
                    max(by_tier[lower])[1],
                    lower,
                    max(by_tier[lower])[0],
                )
            )
    return out


def _budget(value, where):
    if is_int(value) and value >= 0:
        return value
    if isinstance(value, str) and _PERCENT.match(value):
        return value
    raise BaselineError("%s: %s is not a count or a percentage (like 1 or 50%%)" % (where, shown(value)))


def _pdbs(spec, namespaces):
    out = []
    warnings = []
    for index, item in enumerate(_list(spec.get("pdbs") or [], "security_baseline_pdbs")):
        where = "security_baseline_pdbs[%d]" % index
        _where_dict(
            item,
            where,
            ("name", "namespace", "pod_labels", "min_available", "max_unavailable", "workload"),
            ("name", "namespace", "pod_labels"),
        )
        name = item["name"]
        if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name):
            raise BaselineError("%s.name: %s is not a valid object name" % (where, shown(name)))
        if item["namespace"] not in namespaces:
            raise BaselineError(
                "%s.namespace: %s is not a managed namespace; allowed: %s"
                % (where, shown(item["namespace"]), ", ".join(sorted(namespaces)))
            )
        labels = _labels(item["pod_labels"], where + ".pod_labels")
        if not labels:
            raise BaselineError("%s.pod_labels: select the serving pods (an empty selector matches every pod)" % where)
        workload = item.get("workload", "serving")
        if workload not in WORKLOADS:
            raise BaselineError("%s.workload: %s; allowed: %s" % (where, shown(workload), ", ".join(WORKLOADS)))
        if ("min_available" in item) == ("max_unavailable" in item):
            raise BaselineError("%s: set exactly one of min_available and max_unavailable" % where)
        spec_out = {"selector": {"matchLabels": labels}}
        if "min_available" in item:
            spec_out["minAvailable"] = _budget(item["min_available"], where + ".min_available")
        else:
            spec_out["maxUnavailable"] = _budget(item["max_unavailable"], where + ".max_unavailable")
        obj = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": item["namespace"], "labels": dict(COMMON_LABELS)},
            "spec": spec_out,
        }
        if workload == "training":
            warnings.append(
                "PodDisruptionBudget %s/%s covers a training workload: %s"
                % (
                    item["namespace"],
                    name,
                    "check that it never blocks node drains (see security_baseline_pdb_warnings)",
                )
            )
        out.append(obj)
    return out, warnings


def blocks_every_eviction(pdb, replicas):
    """True when ``pdb`` (a PodDisruptionBudget object) allows no eviction of ``replicas`` pods."""
    spec = pdb.get("spec") or {}
    if "minAvailable" in spec:
        value = spec["minAvailable"]
        if isinstance(value, str):
            percent = int(value.rstrip("%"))
            needed = -(-replicas * percent // 100)
        else:
            needed = value
        return replicas - needed <= 0
    value = spec.get("maxUnavailable", 1)
    if isinstance(value, str):
        allowed = replicas * int(value.rstrip("%")) // 100
    else:
        allowed = value
    return allowed <= 0


def pdb_drain_warnings(pdbs, jobs):
    """Warnings for PDBs whose selector matches a single-replica Job's pods (rendered or read).

    Such a PDB blocks every eviction of the Job's pod: ``kubectl drain``, node maintenance and
    Karpenter consolidation all wait on it until the Job ends.
    """
    warnings = []
    for pdb in pdbs or []:
        meta = pdb.get("metadata") or {}
        selector = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not selector:
            continue
        for job in jobs or []:
            job_meta = job.get("metadata") or {}
            if job_meta.get("namespace") != meta.get("namespace"):
                continue
            spec = job.get("spec") or {}
            template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if any(template_labels.get(k) != v for k, v in selector.items()):
                continue
            parallelism = spec.get("parallelism", 1)
            if parallelism is None:
                parallelism = 1
            if parallelism <= 1 and blocks_every_eviction(pdb, 1):
                warnings.append(
                    "PodDisruptionBudget %s/%s selects the single-replica training Job %s: it blocks every node drain "
                    "and Karpenter consolidation of that node until the Job ends; use checkpointing and no PDB, or "
                    "the karpenter.sh/do-not-disrupt annotation for the run"
                    % (meta.get("namespace"), meta.get("name"), job_meta.get("name"))
                )
    return warnings


# ---------------------------------------------------------------- GPU hosts


def profiling_problems(hosts, allowed_hosts):
    """RmProfilingAdminOnly per host from gpu_probe facts: (errors, warnings).

    ``hosts``: ``{name: ansible_facts.gpu}``. A host whose driver lets every user read the GPU
    performance counters (RmProfilingAdminOnly=0) is an error unless listed in ``allowed_hosts``.
    """
    errors, warnings = [], []
    if not isinstance(allowed_hosts, list):
        raise BaselineError("security_baseline_profiling_allowed_hosts: must be a list of inventory host names")
    for name in sorted(hosts):
        gpu = hosts[name]
        if not isinstance(gpu, dict) or not gpu.get("gpus"):
            continue
        driver = gpu.get("driver") or {}
        value = driver.get("profiling_admin_only")
        if value is None:
            warnings.append("%s: RmProfilingAdminOnly unknown (driver not loaded or not reported by gpu_probe)" % name)
        elif value is False and name not in allowed_hosts:
            errors.append(
                "%s: the NVIDIA driver lets every user read GPU performance counters (RmProfilingAdminOnly=0); "
                "set NVreg_RestrictProfilingToAdminUsers=1 or list the host in "
                "security_baseline_profiling_allowed_hosts" % name
            )
    return errors, warnings


# ---------------------------------------------------------------- the plan


def plan_baseline(spec):
    """Validate ``spec`` (the role's variables, collected) and render every manifest.

    Returns ``{"manifests", "errors", "warnings", "namespaces", "dns", "allows"}``. On an error
    no manifest is returned: the role applies nothing.
    """
    result = {"manifests": [], "errors": [], "warnings": [], "namespaces": {}, "dns": {}, "allows": []}
    try:
        if not isinstance(spec, dict):
            raise BaselineError("security_baseline: the role's collected variables must be a dict")
        version = spec.get("psa_version")
        if not isinstance(version, str) or not _PSA_VERSION.match(version):
            raise BaselineError(
                "security_baseline_psa_version: %s is not a pinned Kubernetes minor version "
                "(like v1.31; latest is not pinned)" % shown(version)
            )
        namespaces = _namespaces(spec, version)
        policies, allows, dns = _network_policies(spec, namespaces)
        roles = render_roles(spec.get("rbac_roles") or [], set(namespaces), COMMON_LABELS)
        bindings = render_bindings(spec.get("rbac_bindings") or [], roles, set(namespaces), COMMON_LABELS)
        quotas = _quotas(spec, namespaces)
        limit_ranges = _limit_ranges(spec, namespaces)
        priority_classes = _priority_classes(spec)
        pdbs, pdb_warnings = _pdbs(spec, namespaces)
    except (BaselineError, RbacError) as exc:
        result["errors"].append(str(exc))
        return result
    result["manifests"] = (
        [namespaces[n]["object"] for n in sorted(namespaces)]
        + priority_classes
        + roles
        + bindings
        + quotas
        + limit_ranges
        + policies
        + pdbs
    )
    result["warnings"] = pdb_warnings
    result["namespaces"] = {n: {k: v for k, v in item.items() if k != "object"} for n, item in namespaces.items()}
    result["dns"] = dns
    result["allows"] = allows
    return result
