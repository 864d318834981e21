# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The autoscaling role's typed spec, validated and rendered into Kubernetes objects.

Pure functions, no I/O. Three parts, each switched on by its own input:

- inference (``autoscaling_inference``): per inference Deployment a KEDA ScaledObject with
  Prometheus triggers (queue depth, GPU activity, p99 latency, or a custom query), plus a
  TriggerAuthentication when Prometheus needs credentials;
- on-prem node groups (``autoscaling_node_groups`` with ``platform: onprem``): the
  cluster-autoscaler (clusterapi provider) annotations of their MachineDeployments, the RBAC
  the autoscaler needs and its ``--gpu-total`` flags; cloud node groups are Karpenter's
  (tasks/karpenter.yml), nothing here is rendered for them;
- training (``autoscaling_training_namespaces``): a ValidatingAdmissionPolicy that refuses GPU
  Jobs without ``karpenter.sh/do-not-disrupt`` (and cluster-autoscaler's ``safe-to-evict:
  "false"``) on their pod template in the namespaces labelled for it.

``plan(spec)`` never raises for bad input: every problem is listed in ``errors`` naming the
variable path and the allowed values, so the role stops before any change.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuops.cluster.plugins.plugin_utils._common import is_int, shown

SO_API = "keda.sh/v1alpha1"
MD_API = "cluster.x-k8s.io/v1beta2"
MANAGED_BY = "gpuops.cluster"

TRIGGER_KINDS = ("queue_depth", "gpu_activity", "p99_latency", "custom")
METRIC_TYPES = ("AverageValue", "Value")
FALLBACK_BEHAVIORS = ("static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower")
AUTH_MODES = ("bearer", "basic", "tls")
PLATFORMS = ("cloud", "onprem")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
POLICY_TYPES = ("Pods", "Percent")
SELECT_POLICIES = ("Max", "Min", "Disabled")

# HPA behavior the role emits unless a deployment overrides it (the issue's numbers): scale down
# slowly (a 5-minute window, at most 10% a minute), scale up at once (double, or 10 pods, every
# 15 s, whichever is more).
DEFAULT_BEHAVIOR = {
    "scaleDown": {
        "stabilizationWindowSeconds": 300,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
    },
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15},
            {"type": "Pods", "value": 10, "periodSeconds": 15},
        ],
    },
}

# Cluster-autoscaler (clusterapi provider) annotation keys.
CAPI_MIN = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
CAPI_MAX = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"
CAPACITY = "capacity.cluster-autoscaler.kubernetes.io/"
ACCELERATOR_LABEL = "cluster-api/accelerator"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
TRAINING_LABEL = "gpuops.cluster/training"

# dcgm-exporter's metrics: GR_ENGINE_ACTIVE is a 0-1 ratio that MIG instances report;
# GPU_UTIL is a 0-100 percentage that reads 0 on a MIG-enabled GPU.
GPU_ACTIVE_MIG = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$")
_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_RESOURCE = re.compile(r"^nvidia\.com/(gpu|mig-\d+g\.\d+gb)(\.[a-z0-9-]+)*$")
# Queries whose value is already an average (or a quantile): AverageValue would divide it again.
_AVERAGED = re.compile(r"\b(avg|avg_over_time|quantile|quantile_over_time|histogram_quantile)\s*\(")

INFERENCE_KEYS = (
    "name",
    "deployment",
    "namespace",
    "node_group",
    "mig",
    "min_replicas",
    "max_replicas",
    "polling_interval",
    "cooldown_period",
    "fallback",
    "behavior",
    "prometheus_url",
    "auth",
    "triggers",
)
TRIGGER_KEYS = (
    "kind",
    "name",
    "query",
    "metric",
    "histogram",
    "target",
    "activation",
    "metric_type",
)
NODE_GROUP_KEYS = (
    "name",
    "platform",
    "mig",
    "machine_deployment",
    "min_size",
    "max_size",
    "accelerator",
    "capacity",
    "labels",
    "taints",
)
CAPACITY_KEYS = ("cpu", "memory", "gpu_count", "gpu_type", "ephemeral_disk", "max_pods")


class _Errors:
    def __init__(self):
        self.errors = []
        self.warnings = []

    def add(self, field, message):
        self.errors.append("%s: %s" % (field, message))

    def warn(self, field, message):
        self.warnings.append("%s: %s" % (field, message))


def _unknown(errs, field, item, allowed):
    for key in sorted(set(item) - set(allowed)):
        hint = (
            " (KEDA derives the metric name; metricName is deprecated)" if key in ("metricName", "metric_name") else ""
        )
        errs.add("%s.%s" % (field, key), "unknown key%s; allowed: %s" % (hint, ", ".join(allowed)))


def _int(errs, field, value, low, high, default=None):
    if value is None:
        return default
    if isinstance(value, str) and re.match(r"^[0-9]{1,9}$", value):
        value = int(value)
    if not is_int(value) or not low <= value <= high:
        errs.add(field, "%s is not a whole number in %d-%d" % (shown(value), low, high))
        return None
    return value


def _number(errs, field, value, low, high):
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        errs.add(field, "%s is not a number in %s-%s" % (shown(value), low, high))
        return None
    return value


def _name(errs, field, value, pattern=_DNS_LABEL, what="a DNS label (lowercase letters, digits, '-', at most 63)"):
    if not isinstance(value, str) or not pattern.match(value):
        errs.add(field, "%s is not %s" % (shown(value), what))
        return None
    return value


def _text(value):
    """A KEDA trigger metadata value (all strings): 10 -> '10', 0.5 -> '0.5'."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _behavior(errs, field, value):
    if value in (None, {}):
        return DEFAULT_BEHAVIOR
    if not isinstance(value, dict):
        errs.add(field, "must be an HPA behavior mapping with scaleUp and/or scaleDown")
        return None
    _unknown(errs, field, value, ("scaleUp", "scaleDown"))
    result = {}
    for direction in ("scaleDown", "scaleUp"):
        rules = value.get(direction)
        where = "%s.%s" % (field, direction)
        if rules is None:
            result[direction] = DEFAULT_BEHAVIOR[direction]
            continue
        if not isinstance(rules, dict):
            errs.add(where, "must be a mapping (stabilizationWindowSeconds, selectPolicy, policies)")
            continue
        _unknown(errs, where, rules, ("stabilizationWindowSeconds", "selectPolicy", "policies"))
        merged = dict(DEFAULT_BEHAVIOR[direction])
        if "stabilizationWindowSeconds" in rules:
            merged["stabilizationWindowSeconds"] = _int(
                errs, where + ".stabilizationWindowSeconds", rules["stabilizationWindowSeconds"], 0, 3600
            )
        if "selectPolicy" in rules:
            if rules["selectPolicy"] not in SELECT_POLICIES:
                errs.add(
                    where + ".selectPolicy",
                    "%s; allowed: %s" % (shown(rules["selectPolicy"]), ", ".join(SELECT_POLICIES)),
                )
            merged["selectPolicy"] = rules["selectPolicy"]
        if "policies" in rules:
            policies = rules["policies"]
            if not isinstance(policies, list) or not policies or len(policies) > 10:
                errs.add(where + ".policies", "must be a list of 1-10 {type, value, periodSeconds}")
                policies = []
            out = []
            for index, policy in enumerate(policies):
                pwhere = "%s.policies[%d]" % (where, index)
                if not isinstance(policy, dict):
                    errs.add(pwhere, "must be a mapping {type, value, periodSeconds}")
                    continue
                _unknown(errs, pwhere, policy, ("type", "value", "periodSeconds"))
                if policy.get("type") not in POLICY_TYPES:
                    errs.add(pwhere + ".type", "%s; allowed: %s" % (shown(policy.get("type")), ", ".join(POLICY_TYPES)))
                out.append(
                    {
                        "type": policy.get("type"),
                        "value": _int(errs, pwhere + ".value", policy.get("value"), 1, 100000),
                        "periodSeconds": _int(errs, pwhere + ".periodSeconds", policy.get("periodSeconds"), 1, 1800),
                    }
                )
            merged["policies"] = out
        result[direction] = merged
    return result


def _selector(namespace, deployment):
    # Pods of a Deployment are named <deployment>-<replicaset hash>-<suffix>; both names are DNS
    # labels (validated), so they are safe inside a PromQL string.
    return 'namespace="%s",pod=~"%s-[a-z0-9]+-[a-z0-9]+"' % (namespace, deployment)


def _trigger(errs, field, trigger, item, mig, url, auth_name):
    if not isinstance(trigger, dict):
        errs.add(field, "must be a mapping with kind (%s)" % ", ".join(TRIGGER_KINDS))
        return None
    _unknown(errs, field, trigger, TRIGGER_KEYS)
    kind = trigger.get("kind")
    if kind not in TRIGGER_KINDS:
        errs.add(field + ".kind", "%s; allowed: %s" % (shown(kind), ", ".join(TRIGGER_KINDS)))
        return None
    namespace, deployment = item["namespace"], item["deployment"]
    query = trigger.get("query")
    if query is not None and (not isinstance(query, str) or not query.strip() or len(query) > 4096):
        errs.add(field + ".query", "must be a non-empty PromQL string of at most 4096 characters")
        return None
    for key in ("metric", "histogram"):
        if trigger.get(key) is not None:
            _name(errs, "%s.%s" % (field, key), trigger[key], _METRIC, "a Prometheus metric name")
    if kind == "queue_depth":
        # The queue of the whole deployment (a sum): AverageValue divides it by the replicas,
        # so target is the queue each replica should hold.
        metric_type = "AverageValue"
        if query is None:
            if not trigger.get("metric"):
                errs.add(field + ".metric", "queue_depth needs metric (a gauge of waiting requests) or query")
                return None
            query = "sum(%s{%s})" % (trigger["metric"], _selector(namespace, deployment))
        target = _number(errs, field + ".target", trigger.get("target"), 0.001, 1e9)
    elif kind == "gpu_activity":
        # An average over the deployment's GPUs: Value (AverageValue would divide it again).
        metric_type = "Value"
        if query is None:
            if mig:
                query = "avg(%s{%s}) * 100" % (GPU_ACTIVE_MIG, _selector(namespace, deployment))
            else:
                query = "avg(%s{%s})" % (GPU_UTIL, _selector(namespace, deployment))
        target = _number(errs, field + ".target", trigger.get("target"), 1, 100)
    elif kind == "p99_latency":
        metric_type = "Value"
        if query is None:
            if not trigger.get("histogram"):
                errs.add(field + ".histogram", "p99_latency needs histogram (a latency histogram's name) or query")
                return None
            query = "histogram_quantile(0.99, sum by (le) (rate(%s_bucket{%s}[2m])))" % (
                trigger["histogram"],
                _selector(namespace, deployment),
            )
        target = _number(errs, field + ".target", trigger.get("target"), 0.001, 3600)
    else:
        if query is None:
            errs.add(field + ".query", "custom triggers need a query")
            return None
        metric_type = trigger.get("metric_type", "AverageValue")
        if metric_type not in METRIC_TYPES:
            errs.add(field + ".metric_type", "%s; allowed: %s" % (shown(metric_type), ", ".join(METRIC_TYPES)))
            return None
        target = _number(errs, field + ".target", trigger.get("target"), 0.001, 1e12)
    if trigger.get("metric_type") not in (None, metric_type) and kind != "custom":
        errs.add(
            field + ".metric_type",
            "%s triggers are %s (the query is %s); leave metric_type out"
            % (kind, metric_type, "a total" if metric_type == "AverageValue" else "an average"),
        )
    if metric_type == "AverageValue" and _AVERAGED.search(query):
        errs.add(
            field + ".metric_type",
            "AverageValue divides the query's value by the replicas, but the query already averages "
            "(avg/quantile); use metric_type: Value",
        )
    if mig and GPU_UTIL in query:
        errs.add(
            field + ".query",
            "%s reads 0 on MIG-enabled GPUs (node group is MIG); use %s" % (GPU_UTIL, GPU_ACTIVE_MIG),
        )
    activation = trigger.get("activation")
    if activation is not None:
        activation = _number(errs, field + ".activation", activation, 0, 1e12)
    name = trigger.get("name") or kind.replace("_", "-")
    _name(errs, field + ".name", name)
    if target is None:
        return None
    metadata = {"serverAddress": url, "query": query, "threshold": _text(target)}
    if activation is not None:
        metadata["activationThreshold"] = _text(activation)
    out = {"type": "prometheus", "name": name, "metricType": metric_type, "metadata": metadata}
    if auth_name:
        out["authenticationRef"] = {"name": auth_name, "kind": "TriggerAuthentication"}
    return out


def _auth(errs, field, auth, namespace, name):
    if auth in (None, {}):
        return None, None
    if not isinstance(auth, dict):
        errs.add(field, "must be a mapping {mode, secret, ...}")
        return None, None
    mode = auth.get("mode")
    # option -> (KEDA's prometheus auth parameter, the Secret key used when the option is unset)
    params = {
        "bearer": {"token_key": ("bearerToken", "token")},
        "basic": {"username_key": ("username", "username"), "password_key": ("password", "password")},
        "tls": {"ca_key": ("ca", "ca.crt"), "cert_key": ("cert", "tls.crt"), "key_key": ("key", "tls.key")},
    }
    if mode not in AUTH_MODES:
        errs.add(field + ".mode", "%s; allowed: %s" % (shown(mode), ", ".join(AUTH_MODES)))
        return None, None
    _unknown(errs, field, auth, ("mode", "secret") + tuple(params[mode]))
    secret = _name(errs, field + ".secret", auth.get("secret"), _DNS_SUBDOMAIN, "a Secret name")
    refs = []
    for key, (parameter, default_key) in params[mode].items():
        value = auth.get(key, default_key)
        if not isinstance(value, str) or not re.match(r"^[-._a-zA-Z0-9]{1,253}$", value):
            errs.add("%s.%s" % (field, key), "%s is not a Secret key" % shown(value))
        refs.append({"parameter": parameter, "name": secret, "key": value})
    auth_name = "%s-prometheus" % name
    obj = {
        "apiVersion": SO_API,
        "kind": "TriggerAuthentication",
        "metadata": {"name": auth_name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
        "spec": {"secretTargetRef": refs},
    }
    return obj, mode


def _inference(errs, index, item, groups, defaults):
    field = "autoscaling_inference[%d]" % index
    if not isinstance(item, dict):
        errs.add(field, "must be a mapping with deployment, namespace and triggers")
        return []
    _unknown(errs, field, item, INFERENCE_KEYS)
    deployment = _name(errs, field + ".deployment", item.get("deployment"))
    namespace = _name(errs, field + ".namespace", item.get("namespace"))
    name = _name(errs, field + ".name", item.get("name") or deployment)
    group = item.get("node_group")
    mig = item.get("mig")
    if group is not None:
        if group not in groups:
            errs.add(
                field + ".node_group",
                "%s is not in autoscaling_node_groups (%s)" % (shown(group), ", ".join(sorted(groups)) or "none"),
            )
        elif mig is None:
            mig = groups[group].get("mig", False)
    if mig not in (None, True, False):
        errs.add(field + ".mig", "%s; allowed: true, false" % shown(mig))
    mig = bool(mig)
    low = _int(errs, field + ".min_replicas", item.get("min_replicas"), 0, 1000, 1)
    high = _int(errs, field + ".max_replicas", item.get("max_replicas"), 1, 1000, 10)
    if low is not None and high is not None and low > high:
        errs.add(field + ".max_replicas", "%d is below min_replicas %d" % (high, low))
    polling = _int(errs, field + ".polling_interval", item.get("polling_interval"), 1, 3600, 15)
    cooldown = _int(errs, field + ".cooldown_period", item.get("cooldown_period"), 0, 86400)
    if cooldown is not None and low not in (None, 0):
        errs.warn(
            field + ".cooldown_period",
            "only applies when scaling to zero (min_replicas 0), here min_replicas is %d: left out; "
            "the HPA's scale-down behavior governs scale-down" % low,
        )
        cooldown = None
    url = item.get("prometheus_url") or defaults.get("prometheus_url")
    if not isinstance(url, str) or not _URL.match(url):
        errs.add(field + ".prometheus_url", "%s is not an http(s) URL (autoscaling_prometheus_url)" % shown(url))
    behavior = _behavior(errs, field + ".behavior", item.get("behavior"))
    fallback = item.get("fallback")
    if fallback is None:
        fallback = {}
    if not isinstance(fallback, dict):
        errs.add(field + ".fallback", "must be a mapping {failure_threshold, replicas, behavior}")
        fallback = {}
    _unknown(errs, field + ".fallback", fallback, ("failure_threshold", "replicas", "behavior"))
    fb_behavior = fallback.get("behavior", "currentReplicasIfHigher")
    if fb_behavior not in FALLBACK_BEHAVIORS:
        errs.add(field + ".fallback.behavior", "%s; allowed: %s" % (shown(fb_behavior), ", ".join(FALLBACK_BEHAVIORS)))
    fb = {
        "failureThreshold": _int(
            errs, field + ".fallback.failure_threshold", fallback.get("failure_threshold"), 1, 100, 3
        ),
        "replicas": _int(errs, field + ".fallback.replicas", fallback.get("replicas"), 1, 1000, max(low or 1, 1)),
        "behavior": fb_behavior,
    }
    if high is not None and fb["replicas"] is not None and fb["replicas"] > high:
        errs.add(field + ".fallback.replicas", "%d is above max_replicas %d" % (fb["replicas"], high))
    if None in (deployment, namespace, name):
        return []
    auth, mode = _auth(errs, field + ".auth", item.get("auth"), namespace, name)
    triggers = item.get("triggers")
    if not isinstance(triggers, list) or not triggers or len(triggers) > 8:
        errs.add(field + ".triggers", "must be a list of 1-8 triggers (kind: %s)" % ", ".join(TRIGGER_KINDS))
        return []
    rendered = []
    item = dict(item, namespace=namespace, deployment=deployment)
    for t_index, trigger in enumerate(triggers):
        out = _trigger(
            errs,
            "%s.triggers[%d]" % (field, t_index),
            trigger,
            item,
            mig,
            url,
            auth["metadata"]["name"] if auth else None,
        )
        if out is not None:
            if mode:
                out["metadata"]["authModes"] = mode
            rendered.append(out)
    names = [t["name"] for t in rendered]
    if len(set(names)) != len(names):
        errs.add(
            field + ".triggers", "trigger names must be unique (%s); set name on repeated kinds" % ", ".join(names)
        )
    spec = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "pollingInterval": polling,
        "minReplicaCount": low,
        "maxReplicaCount": high,
        "fallback": fb,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior}},
        "triggers": rendered,
    }
    if cooldown is not None:
        spec["cooldownPeriod"] = cooldown
    so = {
        "apiVersion": SO_API,
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
        "spec": spec,
    }
    return ([auth] if auth else []) + [so]


def _labels(errs, field, labels):
    if labels in (None, {}):
        return {}
    if not isinstance(labels, dict):
        errs.add(field, "must be a mapping of label key to value")
        return {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            errs.add(field, "%s is not a label key" % shown(key))
        if not isinstance(value, str) or not _LABEL_VALUE.match(value) or "," in value:
            errs.add(
                "%s.%s" % (field, key),
                "%s is not a label value (63 characters, alphanumerics, '-', '_', '.')" % shown(value),
            )
    return dict(labels)


def _taints(errs, field, taints):
    if taints in (None, []):
        return []
    if not isinstance(taints, list):
        errs.add(field, "must be a list of {key, value, effect}")
        return []
    out = []
    for index, taint in enumerate(taints):
        where = "%s[%d]" % (field, index)
        if not isinstance(taint, dict):
            errs.add(where, "must be a mapping {key, value, effect}")
            continue
        _unknown(errs, where, taint, ("key", "value", "effect"))
        if not isinstance(taint.get("key"), str) or not _LABEL_KEY.match(taint["key"]):
            errs.add(where + ".key", "%s is not a taint key" % shown(taint.get("key")))
        value = taint.get("value", "")
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            errs.add(where + ".value", "%s is not a taint value" % shown(value))
        if taint.get("effect") not in TAINT_EFFECTS:
            errs.add(where + ".effect", "%s; allowed: %s" % (shown(taint.get("effect")), ", ".join(TAINT_EFFECTS)))
        out.append({"key": taint.get("key"), "value": value, "effect": taint.get("effect")})
    return out


def _quantity(errs, field, value, required):
    if value is None:
        if required:
            errs.add(field, "is required for scale from zero (a quantity such as 64 or 512Gi)")
        return None
    value = _text(value)
    if not _QUANTITY.match(value):
        errs.add(field, "%s is not a Kubernetes quantity (such as 64, 500m, 512Gi)" % shown(value))
        return None
    return value


def _node_group(errs, index, group):
    field = "autoscaling_node_groups[%d]" % index
    if not isinstance(group, dict):
        errs.add(field, "must be a mapping with name and platform")
        return None
    _unknown(errs, field, group, NODE_GROUP_KEYS)
    name = _name(errs, field + ".name", group.get("name"))
    platform = group.get("platform")
    if platform not in PLATFORMS:
        errs.add(field + ".platform", "%s; allowed: %s" % (shown(platform), ", ".join(PLATFORMS)))
        return None
    mig = group.get("mig", False)
    if mig not in (True, False):
        errs.add(field + ".mig", "%s; allowed: true, false" % shown(mig))
    out = {"name": name, "platform": platform, "mig": mig is True}
    if platform == "cloud":
        for key in ("machine_deployment", "min_size", "max_size", "capacity", "accelerator"):
            if key in group:
                errs.add(
                    "%s.%s" % (field, key),
                    "only for platform onprem (cluster-autoscaler); a cloud node group's size and capacity "
                    "come from its Karpenter NodePool (autoscaling_karpenter_pools)",
                )
        return out
    md = group.get("machine_deployment")
    if not isinstance(md, dict):
        errs.add(field + ".machine_deployment", "must be a mapping {name, namespace} naming the MachineDeployment")
        return None
    _unknown(errs, field + ".machine_deployment", md, ("name", "namespace"))
    md_name = _name(
        errs, field + ".machine_deployment.name", md.get("name"), _DNS_SUBDOMAIN, "a MachineDeployment name"
    )
    md_namespace = _name(errs, field + ".machine_deployment.namespace", md.get("namespace", "default"))
    low = _int(errs, field + ".min_size", group.get("min_size"), 0, 10000, 0)
    high = _int(errs, field + ".max_size", group.get("max_size"), 1, 10000)
    if group.get("max_size") is None:
        errs.add(field + ".max_size", "is required (1-10000)")
    if low is not None and high is not None and low > high:
        errs.add(field + ".max_size", "%d is below min_size %d" % (high, low))
    capacity = group.get("capacity") or {}
    if not isinstance(capacity, dict):
        errs.add(field + ".capacity", "must be a mapping (%s)" % ", ".join(CAPACITY_KEYS))
        capacity = {}
    _unknown(errs, field + ".capacity", capacity, CAPACITY_KEYS)
    zero = low == 0
    annotations = {CAPI_MIN: str(low), CAPI_MAX: str(high)}
    for key, annotation in (("cpu", "cpu"), ("memory", "memory"), ("ephemeral_disk", "ephemeral-disk")):
        value = _quantity(errs, "%s.capacity.%s" % (field, key), capacity.get(key), zero and key != "ephemeral_disk")
        if value is not None:
            annotations[CAPACITY + annotation] = value
    max_pods = _int(errs, field + ".capacity.max_pods", capacity.get("max_pods"), 1, 2500)
    if max_pods is not None:
        annotations[CAPACITY + "maxPods"] = str(max_pods)
    gpus = _int(errs, field + ".capacity.gpu_count", capacity.get("gpu_count"), 0, 64, 0)
    gpu_type = capacity.get("gpu_type", "nvidia.com/gpu")
    if gpu_type != "nvidia.com/gpu":
        errs.add(
            field + ".capacity.gpu_type",
            "%s; allowed: nvidia.com/gpu (cluster-autoscaler's scale-from-zero knows one GPU resource; "
            "MIG or shared resource names cannot be templated)" % shown(gpu_type),
        )
    accelerator = None
    labels = _labels(errs, field + ".labels", group.get("labels"))
    if gpus:
        annotations[CAPACITY + "gpu-type"] = "nvidia.com/gpu"
        annotations[CAPACITY + "gpu-count"] = str(gpus)
        accelerator = group.get("accelerator") or name
        if not isinstance(accelerator, str) or not _LABEL_VALUE.match(accelerator or "") or not accelerator:
            errs.add(field + ".accelerator", "%s is not a label value" % shown(accelerator))
        elif labels.get(ACCELERATOR_LABEL) not in (None, accelerator):
            errs.add(
                field + ".labels",
                "%s=%s differs from accelerator %s (the --gpu-total type must match the label)"
                % (ACCELERATOR_LABEL, labels[ACCELERATOR_LABEL], accelerator),
            )
        labels[ACCELERATOR_LABEL] = accelerator
        if out["mig"] and zero:
            errs.warn(
                field + ".min_size",
                "0 on a MIG node group: scale from zero templates nvidia.com/gpu only, so pods asking for "
                "nvidia.com/mig-* never trigger a scale-up from zero; keep min_size >= 1",
            )
    elif out["mig"]:
        errs.add(field + ".capacity.gpu_count", "a MIG node group needs its GPU count (1-64)")
    if labels:
        annotations[CAPACITY + "labels"] = ",".join("%s=%s" % (k, labels[k]) for k in sorted(labels))
    taints = _taints(errs, field + ".taints", group.get("taints"))
    if gpus and not any(t["key"] == "nvidia.com/gpu" for t in taints):
        errs.warn(
            field + ".taints", "GPU node group without an nvidia.com/gpu taint: CPU pods may keep GPU nodes alive"
        )
    if taints:
        annotations[CAPACITY + "taints"] = ",".join(
            "%s=%s:%s" % (t["key"], t["value"], t["effect"]) if t["value"] else "%s:%s" % (t["key"], t["effect"])
            for t in taints
        )
    out.update(
        {
            "machine_deployment": {"name": md_name, "namespace": md_namespace},
            "min_size": low,
            "max_size": high,
            "gpu_count": gpus,
            "accelerator": accelerator,
            "object": {
                "apiVersion": MD_API,
                "kind": "MachineDeployment",
                "metadata": {"name": md_name, "namespace": md_namespace, "annotations": annotations},
            },
        }
    )
    return out


def _gpu_total(errs, explicit, groups):
    derived = {}
    for group in groups:
        if group.get("accelerator") and None not in (group["min_size"], group["max_size"], group["gpu_count"]):
            low, high = derived.get(group["accelerator"], (0, 0))
            derived[group["accelerator"]] = (
                low + group["min_size"] * group["gpu_count"],
                high + group["max_size"] * group["gpu_count"],
            )
    if explicit in (None, []):
        return ["--gpu-total=%s:%d:%d" % (k, v[0], v[1]) for k, v in sorted(derived.items())]
    if not isinstance(explicit, list):
        errs.add("autoscaling_gpu_total", "must be a list of {accelerator, min, max}")
        return []
    flags, seen = [], set()
    for index, entry in enumerate(explicit):
        where = "autoscaling_gpu_total[%d]" % index
        if not isinstance(entry, dict):
            errs.add(where, "must be a mapping {accelerator, min, max}")
            continue
        _unknown(errs, where, entry, ("accelerator", "min", "max"))
        accelerator = entry.get("accelerator")
        if accelerator not in derived:
            errs.add(
                where + ".accelerator",
                "%s is no on-prem GPU node group's accelerator (the %s label); known: %s"
                % (shown(accelerator), ACCELERATOR_LABEL, ", ".join(sorted(derived)) or "none"),
            )
            continue
        low = _int(errs, where + ".min", entry.get("min"), 0, 1000000, 0)
        high = _int(errs, where + ".max", entry.get("max"), 1, 1000000)
        if low is not None and high is not None and low > high:
            errs.add(where + ".max", "%d is below min %d" % (high, low))
        seen.add(accelerator)
        flags.append("--gpu-total=%s:%s:%s" % (accelerator, low, high))
    for accelerator in sorted(set(derived) - seen):
        errs.add(
            "autoscaling_gpu_total",
            "lists no entry for accelerator %s: cluster-autoscaler would not count its GPUs" % accelerator,
        )
    return flags


def cluster_autoscaler_rbac(namespace, service_account, templates):
    """ServiceAccount, ClusterRoles and bindings the clusterapi cluster-autoscaler needs."""
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/name": "cluster-autoscaler"}
    read = ["get", "list", "watch"]
    workload_rules = [
        {
            "apiGroups": [""],
            "resources": [
                "namespaces",
                "persistentvolumeclaims",
                "persistentvolumes",
                "pods",
                "replicationcontrollers",
                "services",
            ],
            "verbs": read,
        },
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "update", "watch"]},
        {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "delete", "get", "update"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["list", "watch"]},
        {
            "apiGroups": ["storage.k8s.io"],
            "resources": ["csidrivers", "csinodes", "csistoragecapacities", "storageclasses", "volumeattachments"],
            "verbs": read,
        },
        {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": read},
        {"apiGroups": ["apps"], "resources": ["daemonsets", "replicasets", "statefulsets"], "verbs": read},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "update"]},
    ]
    management_rules = [
        {
            "apiGroups": ["cluster.x-k8s.io"],
            "resources": [
                "machinedeployments",
                "machinedeployments/scale",
                "machinepools",
                "machinepools/scale",
                "machines",
                "machinesets",
            ],
            "verbs": ["get", "list", "patch", "update", "watch"],
        },
    ]
    if templates:
        management_rules.append(
            {"apiGroups": ["infrastructure.cluster.x-k8s.io"], "resources": sorted(templates), "verbs": read}
        )
    objects = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": service_account, "namespace": namespace, "labels": labels},
        }
    ]
    for suffix, rules in (("workload", workload_rules), ("management", management_rules)):
        role = "gpuops-cluster-autoscaler-%s" % suffix
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role, "labels": labels},
                "rules": rules,
            }
        )
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": role, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
            }
        )
    return objects


# CEL over a batch/v1 Job: a pod template asking for any nvidia.com/* resource must carry both
# annotations set to the values that stop node disruption.
TRAINING_CEL = (
    "!object.spec.template.spec.containers.exists(c, has(c.resources) && "
    "((has(c.resources.limits) && c.resources.limits.exists(r, r.startsWith('nvidia.com/'))) || "
    "(has(c.resources.requests) && c.resources.requests.exists(r, r.startsWith('nvidia.com/'))))) || "
    "(has(object.spec.template.metadata) && has(object.spec.template.metadata.annotations) && "
    "'%s' in object.spec.template.metadata.annotations && "
    "object.spec.template.metadata.annotations['%s'] == 'true' && "
    "'%s' in object.spec.template.metadata.annotations && "
    "object.spec.template.metadata.annotations['%s'] == 'false')"
) % (DO_NOT_DISRUPT, DO_NOT_DISRUPT, SAFE_TO_EVICT, SAFE_TO_EVICT)


def training_policy(name):
    """The ValidatingAdmissionPolicy and its binding (namespaces labelled TRAINING_LABEL=true)."""
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY}
    message = (
        'GPU training Jobs in this namespace must set pod template annotations %s: "true" and %s: "false" '
        "so node consolidation and scale-down never evict them mid-run" % (DO_NOT_DISRUPT, SAFE_TO_EVICT)
    )
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["batch"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["jobs"],
                        }
                    ]
                },
                "validations": [{"expression": TRAINING_CEL, "message": message, "reason": "Invalid"}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {TRAINING_LABEL: "true"}}},
            },
        },
    ]


def plan(spec):
    """Validate the role's inputs and render every object. ``spec`` keys: inference,
    node_groups, training_namespaces, prometheus_url, gpu_total, cluster_autoscaler
    ({enabled, namespace, service_account, infrastructure_templates}), training_policy_name.

    Returns {errors, warnings, scaled_objects, machine_deployments, cluster_autoscaler,
    training, node_groups}; objects are empty when errors are found.
    """
    errs = _Errors()
    if not isinstance(spec, dict):
        return {"errors": ["autoscaling: the role's inputs must be a mapping"], "warnings": []}
    raw_groups = spec.get("node_groups") or []
    if not isinstance(raw_groups, list):
        errs.add("autoscaling_node_groups", "must be a list of node groups")
        raw_groups = []
    groups = {}
    for index, group in enumerate(raw_groups):
        out = _node_group(errs, index, group)
        if out is None or out["name"] is None:
            continue
        if out["name"] in groups:
            errs.add("autoscaling_node_groups[%d].name" % index, "%s is listed twice" % out["name"])
        groups[out["name"]] = out
    md_keys = [
        (g["machine_deployment"]["namespace"], g["machine_deployment"]["name"])
        for g in groups.values()
        if g.get("machine_deployment")
    ]
    if len(set(md_keys)) != len(md_keys):
        errs.add("autoscaling_node_groups", "two node groups name the same MachineDeployment")
    inference = spec.get("inference") or []
    if not isinstance(inference, list):
        errs.add("autoscaling_inference", "must be a list of inference deployments")
        inference = []
    scaled = []
    for index, item in enumerate(inference):
        scaled.extend(_inference(errs, index, item, groups, spec))
    keys = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in scaled if o["kind"] == "ScaledObject"]
    if len(set(keys)) != len(keys):
        errs.add("autoscaling_inference", "two entries render the same ScaledObject (namespace/name): set name")
    onprem = [g for g in groups.values() if g["platform"] == "onprem"]
    ca = spec.get("cluster_autoscaler") or {}
    if not isinstance(ca, dict):
        errs.add("autoscaling_cluster_autoscaler", "must be a mapping")
        ca = {}
    _unknown(
        errs,
        "autoscaling_cluster_autoscaler",
        ca,
        ("enabled", "namespace", "service_account", "infrastructure_templates"),
    )
    enabled = ca.get("enabled", "auto")
    if enabled not in ("auto", True, False):
        errs.add("autoscaling_cluster_autoscaler.enabled", "%s; allowed: auto, true, false" % shown(enabled))
    ca_on = bool(onprem) if enabled == "auto" else enabled is True
    ca_namespace = _name(errs, "autoscaling_cluster_autoscaler.namespace", ca.get("namespace", "kube-system"))
    ca_sa = _name(
        errs,
        "autoscaling_cluster_autoscaler.service_account",
        ca.get("service_account", "cluster-autoscaler"),
        _DNS_SUBDOMAIN,
        "a ServiceAccount name",
    )
    templates = ca.get("infrastructure_templates") or []
    if not isinstance(templates, list) or not all(
        isinstance(t, str) and re.match(r"^[a-z0-9]+machinetemplates$", t) for t in templates
    ):
        errs.add(
            "autoscaling_cluster_autoscaler.infrastructure_templates",
            "must be a list of plural resource names such as metal3machinetemplates",
        )
        templates = []
    flags = _gpu_total(errs, spec.get("gpu_total"), onprem)
    namespaces = spec.get("training_namespaces") or []
    if not isinstance(namespaces, list):
        errs.add("autoscaling_training_namespaces", "must be a list of namespace names")
        namespaces = []
    for index, namespace in enumerate(namespaces):
        _name(errs, "autoscaling_training_namespaces[%d]" % index, namespace)
    if len(set(map(str, namespaces))) != len(namespaces):
        errs.add("autoscaling_training_namespaces", "lists a namespace twice")
    policy_name = _name(
        errs,
        "autoscaling_training_policy_name",
        spec.get("training_policy_name", "gpuops-training-do-not-disrupt"),
        _DNS_SUBDOMAIN,
        "a policy name",
    )
    result = {"errors": errs.errors, "warnings": errs.warnings, "node_groups": groups}
    if errs.errors:
        result.update(
            {
                "scaled_objects": [],
                "machine_deployments": [],
                "cluster_autoscaler": {"objects": [], "args": []},
                "training": {"policy": [], "namespaces": []},
                "objects": [],
            }
        )
        return result
    result.update(
        {
            "scaled_objects": scaled,
            "machine_deployments": [g["object"] for g in onprem],
            "cluster_autoscaler": {
                "enabled": ca_on,
                "objects": cluster_autoscaler_rbac(ca_namespace, ca_sa, templates) if ca_on else [],
                "args": (["--cloud-provider=clusterapi"] + flags) if ca_on else [],
            },
            "training": {
                "policy": training_policy(policy_name) if namespaces else [],
                "namespaces": [
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": n, "labels": {TRAINING_LABEL: "true"}},
                    }
                    for n in namespaces
                ],
            },
        }
    )
    # One server-side apply call takes them all, in this order (RBAC and namespaces first).
    result["objects"] = (
        result["cluster_autoscaler"]["objects"]
        + result["training"]["namespaces"]
        + result["training"]["policy"]
        + result["scaled_objects"]
        + result["machine_deployments"]
    )
    return result


def object_label(obj):
    """``Kind/namespace/name`` (``Kind/name`` for cluster-scoped objects)."""
    metadata = obj.get("metadata") or {}
    parts = [obj.get("kind", "?")]
    if metadata.get("namespace"):
        parts.append(metadata["namespace"])
    parts.append(metadata.get("name", "?"))
    return "/".join(parts)


def apply_report(objects, applied):
    """What one kubernetes.core.k8s call with a list of definitions changed (or would change,
    in check mode): {changed: [labels], unchanged: [labels], diffs: {label: diff}}.

    ``applied`` is the registered result: {result: {results: [...]}} for several definitions,
    the single result itself for one; results come in the order of ``objects``.
    """
    applied = applied or {}
    results = (applied.get("result") or {}).get("results") if len(objects) != 1 else [applied]
    if not isinstance(results, list) or len(results) != len(objects):
        raise ValueError(
            "apply_report: %d objects but %s results"
            % (len(objects), len(results) if isinstance(results, list) else "no")
        )
    report = {"changed": [], "unchanged": [], "diffs": {}}
    for obj, result in zip(objects, results):
        label = object_label(obj)
        report["changed" if result.get("changed") else "unchanged"].append(label)
        if result.get("changed") and result.get("diff"):
            report["diffs"][label] = result["diff"]
    return report
