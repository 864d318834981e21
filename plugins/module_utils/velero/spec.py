# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""velero_schedule's options checked and turned into Velero manifests. Pure logic.

- ``validate``: every option checked before anything is read or written; errors name the
  option path and what is allowed (``VeleroParamError``); warnings come back as a list;
- ``schedule_manifest``, ``bsl_manifest``, ``vsl_manifest``: the objects to apply.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuops.cluster.plugins.module_utils.velero.durations import (
    CronError,
    DurationError,
    format_duration,
    longest_gap,
    parse_duration,
)

API_VERSION = "velero.io/v1"
RPO_ANNOTATION = "gpuops.cluster/rpo"
PROVIDERS_HINT = "aws, gcp, azure, velero.io/aws, ... (a plugin name: lowercase, '/', '.', '-')"
ACCESS_MODES = ("ReadWrite", "ReadOnly")
ON_ERROR = ("Continue", "Fail")
HOOK_CONFLICTS = ("error", "warn")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_RESOURCE = re.compile(r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$")
_PROVIDER = re.compile(r"^[a-z0-9]([-a-z0-9./]{0,126}[a-z0-9])?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]{1,512}$")
_REGION = re.compile(r"^[a-z0-9-]{1,64}$")
_CONFIG_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
MAX_ITEMS = 256
SECRET_WORDS = ("secret", "password", "token", "key", "credential")


class VeleroParamError(ValueError):
    """A bad option; the message names it and what is allowed."""


def shown(value, limit=64):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fail(path, value, allowed):
    raise VeleroParamError("%s=%s is invalid: %s" % (path, shown(value), allowed))


def _name(path, value, subdomain=False):
    pattern = _DNS_SUBDOMAIN if subdomain else _DNS_LABEL
    if not isinstance(value, str) or not pattern.match(value):
        _fail(
            path,
            value,
            "a DNS-1123 %s (lowercase letters, digits, '-'%s; at most %d characters)"
            % ("subdomain" if subdomain else "label", ", '.'" if subdomain else "", 253 if subdomain else 63),
        )
    return value


def _str_list(path, value, check):
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        _fail(path, value, "a list of at most %d strings" % MAX_ITEMS)
    for index, item in enumerate(value):
        check("%s[%d]" % (path, index), item)
    if len(set(value)) != len(value):
        _fail(path, value, "no duplicates")
    return list(value)


def _namespace_item(path, value):
    if value == "*":
        return
    _name(path, value)


def _resource_item(path, value):
    if not isinstance(value, str) or not _RESOURCE.match(value) or len(value) > 253:
        _fail(
            path,
            value,
            "'*' or a resource as Velero names it: plural[.group], e.g. pods, deployments.apps",
        )


def _duration(path, value, positive=True):
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        _fail(path, value, str(exc))
    if positive and seconds <= 0:
        _fail(path, value, "a positive duration such as 720h")
    return seconds


def _bool(path, value):
    if value is not None and not isinstance(value, bool):
        _fail(path, value, "true or false")
    return value


def _label_selector(path, value):
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"match_labels", "matchLabels"}:
        _fail(path, value, "a dict with match_labels (label key -> value)")
    labels = value.get("match_labels", value.get("matchLabels")) or {}
    if not isinstance(labels, dict):
        _fail(path + ".match_labels", labels, "a dict of label key -> value")
    for key, item in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            _fail(path + ".match_labels", key, "label keys as Kubernetes allows them")
        if not isinstance(item, str) or not _LABEL_VALUE.match(item):
            _fail("%s.match_labels.%s" % (path, key), item, "a label value (<= 63 characters)")
    return {"matchLabels": dict(labels)}


def resource_covered(resource, included, excluded):
    """Whether a backup with these include/exclude lists takes `resource` (e.g. 'pods')."""
    names = {resource, resource + ".", resource.split(".")[0]} if "." not in resource else {resource}
    if "*" in excluded or names & set(excluded):
        return False
    return not included or "*" in included or bool(names & set(included))


def namespace_covered(namespace, included, excluded):
    if namespace in excluded:
        return False
    return not included or "*" in included or namespace in included


def _hook_command(path, value):
    if not isinstance(value, dict) or set(value) - {"container", "command", "on_error", "timeout"}:
        _fail(path, value, "a dict with container, command, on_error, timeout")
    command = value.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        _fail(path + ".command", command, "a non-empty list of strings (argv, no shell)")
    exec_spec = {"command": list(command), "onError": value.get("on_error") or "Fail"}
    if exec_spec["onError"] not in ON_ERROR:
        _fail(path + ".on_error", value.get("on_error"), "one of " + ", ".join(ON_ERROR))
    if value.get("container") is not None:
        exec_spec["container"] = _name(path + ".container", value["container"])
    if value.get("timeout") is not None:
        exec_spec["timeout"] = format_duration(_duration(path + ".timeout", value["timeout"]))
    return {"exec": exec_spec}


def _hooks(path, hooks, included_ns, excluded_ns, included_res, excluded_res, conflicts, warnings):
    if hooks is None:
        return None
    if not isinstance(hooks, list) or len(hooks) > MAX_ITEMS:
        _fail(path, hooks, "a list of resource hooks")
    out = []
    allowed = {"name", "included_namespaces", "excluded_namespaces", "label_selector", "pre", "post"}
    for index, hook in enumerate(hooks):
        hpath = "%s[%d]" % (path, index)
        if not isinstance(hook, dict) or set(hook) - allowed:
            _fail(hpath, hook, "a dict with keys " + ", ".join(sorted(allowed)))
        name = _name(hpath + ".name", hook.get("name"))
        hook_ns = _str_list(hpath + ".included_namespaces", hook.get("included_namespaces"), _namespace_item)
        hook_ex = _str_list(hpath + ".excluded_namespaces", hook.get("excluded_namespaces"), _namespace_item)
        spec = {"name": name, "includedResources": ["pods"]}
        if hook_ns:
            spec["includedNamespaces"] = hook_ns
        if hook_ex:
            spec["excludedNamespaces"] = hook_ex
        selector = _label_selector(hpath + ".label_selector", hook.get("label_selector"))
        if selector:
            spec["labelSelector"] = selector
        for phase in ("pre", "post"):
            commands = hook.get(phase)
            if commands is None:
                continue
            if not isinstance(commands, list):
                _fail(hpath + "." + phase, commands, "a list of exec hooks")
            spec[phase] = [_hook_command("%s.%s[%d]" % (hpath, phase, i), c) for i, c in enumerate(commands)]
        if not spec.get("pre") and not spec.get("post"):
            _fail(hpath, hook, "at least one pre or post exec hook")
        # Velero runs exec hooks in the pods it backs up: a hook on pods the backup leaves out
        # never runs, and the schedule still reports Completed.
        reasons = []
        if not resource_covered("pods", included_res, excluded_res):
            reasons.append("the backup does not include pods (included_resources/excluded_resources)")
        targets = [ns for ns in hook_ns if ns != "*"]
        skipped = [ns for ns in targets if not namespace_covered(ns, included_ns, excluded_ns)]
        if skipped:
            reasons.append("namespaces %s are not backed up" % ", ".join(skipped))
        if reasons:
            message = "%s: hook %r can never run: %s" % (hpath, name, "; ".join(reasons))
            if conflicts == "error":
                raise VeleroParamError(message + " (set hook_conflicts=warn to apply anyway)")
            warnings.append(message)
        out.append(spec)
    return {"resources": out} if out else None


def validate_schedule(path, item, namespace, defaults, warnings):
    """One entry of `schedules` -> a normalized dict (camelCase spec parts and metadata)."""
    allowed = {
        "name",
        "namespace",
        "schedule",
        "ttl",
        "rpo",
        "paused",
        "included_namespaces",
        "excluded_namespaces",
        "included_resources",
        "excluded_resources",
        "include_cluster_resources",
        "label_selector",
        "storage_location",
        "volume_snapshot_locations",
        "snapshot_volumes",
        "default_volumes_to_fs_backup",
        "hooks",
        "skip_immediately",
        "use_owner_references_in_backup",
        "labels",
    }
    if not isinstance(item, dict):
        _fail(path, item, "a dict")
    unknown = sorted(set(item) - allowed)
    if unknown:
        _fail(path, unknown, "unknown keys; allowed: " + ", ".join(sorted(allowed)))
    name = _name(path + ".name", item.get("name"))
    if item.get("namespace") not in (None, namespace):
        _fail(
            path + ".namespace",
            item.get("namespace"),
            "Velero's namespace %r: a Schedule anywhere else is never picked up (it stays New)" % namespace,
        )
    cron = item.get("schedule")
    try:
        period = longest_gap(cron)
    except CronError as exc:
        _fail(path + ".schedule", cron, str(exc))
    if period is None:
        _fail(path + ".schedule", cron, "a schedule that runs (this one never matches a day)")
    ttl_text = item.get("ttl") if item.get("ttl") is not None else defaults.get("ttl", "720h")
    ttl = _duration(path + ".ttl", ttl_text)
    inc_ns = _str_list(path + ".included_namespaces", item.get("included_namespaces"), _namespace_item)
    exc_ns = _str_list(path + ".excluded_namespaces", item.get("excluded_namespaces"), _namespace_item)
    inc_res = _str_list(path + ".included_resources", item.get("included_resources"), _resource_item)
    exc_res = _str_list(path + ".excluded_resources", item.get("excluded_resources"), _resource_item)
    for label, inc, exc in (("namespaces", inc_ns, exc_ns), ("resources", inc_res, exc_res)):
        both = sorted(set(inc) & set(exc) - {"*"})
        if both:
            _fail(path + ".excluded_" + label, both, "not also in included_" + label)
        if "*" in exc:
            _fail(path + ".excluded_" + label, exc, "names, not '*' (that would back up nothing)")
    if inc_ns and exc_ns and "*" not in inc_ns:
        _fail(
            path + ".excluded_namespaces",
            exc_ns,
            "empty when included_namespaces lists names (exclusions only narrow '*')",
        )
    rpo = None
    if item.get("rpo") is not None:
        rpo = _duration(path + ".rpo", item["rpo"])
        if rpo < period:
            _fail(
                path + ".rpo",
                item["rpo"],
                "at least the schedule's longest gap between runs (%s): a shorter RPO is "
                "breached by design" % format_duration(period),
            )
        if rpo < period * 2:
            warnings.append(
                "%s.rpo %s is shorter than two schedule periods (%s each): one missed or failed "
                "run breaches it" % (path, item["rpo"], format_duration(period))
            )
    if ttl < period:
        warnings.append(
            "%s.ttl %s is shorter than the schedule's gap (%s): there are times with no backup "
            "at all" % (path, ttl_text, format_duration(period))
        )
    for key in (
        "paused",
        "include_cluster_resources",
        "snapshot_volumes",
        "default_volumes_to_fs_backup",
        "skip_immediately",
        "use_owner_references_in_backup",
    ):
        _bool(path + "." + key, item.get(key))
    storage = item.get("storage_location")
    if storage is not None:
        _name(path + ".storage_location", storage, subdomain=True)
    vsls = _str_list(
        path + ".volume_snapshot_locations",
        item.get("volume_snapshot_locations"),
        lambda p, v: _name(p, v, subdomain=True),
    )
    labels = item.get("labels") or {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and _LABEL_KEY.match(k) and isinstance(v, str) and _LABEL_VALUE.match(v)
        for k, v in labels.items()
    ):
        _fail(path + ".labels", labels, "a dict of Kubernetes label keys -> values")
    hooks = _hooks(
        path + ".hooks",
        item.get("hooks"),
        inc_ns,
        exc_ns,
        inc_res,
        exc_res,
        defaults.get("hook_conflicts", "error"),
        warnings,
    )
    template = {"ttl": format_duration(ttl)}
    for key, value in (
        ("includedNamespaces", inc_ns),
        ("excludedNamespaces", exc_ns),
        ("includedResources", inc_res),
        ("excludedResources", exc_res),
        ("includeClusterResources", item.get("include_cluster_resources")),
        ("labelSelector", _label_selector(path + ".label_selector", item.get("label_selector"))),
        ("storageLocation", storage),
        ("volumeSnapshotLocations", vsls),
        ("snapshotVolumes", item.get("snapshot_volumes")),
        ("defaultVolumesToFsBackup", item.get("default_volumes_to_fs_backup")),
        ("hooks", hooks),
    ):
        if value not in (None, []):
            template[key] = value
    spec = {"schedule": cron.strip(), "template": template, "paused": bool(item.get("paused"))}
    for key, field in (
        ("skip_immediately", "skipImmediately"),
        ("use_owner_references_in_backup", "useOwnerReferencesInBackup"),
    ):
        if item.get(key) is not None:
            spec[field] = item[key]
    return {
        "name": name,
        "spec": spec,
        "labels": dict(labels),
        "rpo_seconds": rpo,
        "rpo": format_duration(rpo) if rpo is not None else None,
        "period_seconds": period,
    }


def _credential(path, value):
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"name", "key"}:
        _fail(path, "<redacted>", "a dict with exactly name and key (a Secret reference)")
    _name(path + ".name", value["name"], subdomain=True)
    if not isinstance(value["key"], str) or not _CONFIG_KEY.match(value["key"]):
        _fail(path + ".key", value["key"], "a Secret data key (letters, digits, '-', '_', '.')")
    return {"name": value["name"], "key": value["key"]}


def _config(path, value):
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 64:
        _fail(path, "<dict>", "a dict of at most 64 string -> string entries")
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _CONFIG_KEY.match(key):
            _fail(path, key, "config keys of letters, digits, '-', '_', '.'")
        if not isinstance(item, (str, bool, int)) or isinstance(item, float):
            _fail("%s.%s" % (path, key), "<value>", "a string, number or boolean")
        out[key] = str(item).lower() if isinstance(item, bool) else str(item)
    return out


def validate_bsl(value):
    if value is None:
        return None
    path = "backup_storage_location"
    allowed = {
        "name",
        "provider",
        "bucket",
        "prefix",
        "region",
        "s3_force_path_style",
        "s3_url",
        "ca_cert",
        "credential",
        "access_mode",
        "default",
        "config",
        "validation_frequency",
    }
    if not isinstance(value, dict):
        _fail(path, "<value>", "a dict")
    unknown = sorted(set(value) - allowed)
    if unknown:
        _fail(path, unknown, "unknown keys; allowed: " + ", ".join(sorted(allowed)))
    name = _name(path + ".name", value.get("name", "default"), subdomain=True)
    provider = value.get("provider")
    if not isinstance(provider, str) or not _PROVIDER.match(provider):
        _fail(path + ".provider", provider, PROVIDERS_HINT)
    bucket = value.get("bucket")
    if not isinstance(bucket, str) or not _BUCKET.match(bucket) or ".." in bucket:
        _fail(path + ".bucket", bucket, "an S3 bucket name: 3-63 lowercase letters, digits, '.', '-'")
    prefix = value.get("prefix")
    if prefix is not None and (not isinstance(prefix, str) or not _PREFIX.match(prefix) or prefix.startswith("/")):
        _fail(path + ".prefix", prefix, "a relative object key prefix (no leading '/')")
    mode = value.get("access_mode") or "ReadWrite"
    if mode not in ACCESS_MODES:
        _fail(path + ".access_mode", mode, "one of " + ", ".join(ACCESS_MODES))
    config = _config(path + ".config", value.get("config"))
    region = value.get("region")
    if region is not None:
        if not isinstance(region, str) or not _REGION.match(region):
            _fail(path + ".region", region, "an AWS region such as us-east-1")
        config["region"] = region
    _bool(path + ".s3_force_path_style", value.get("s3_force_path_style"))
    if value.get("s3_force_path_style") is not None:
        config["s3ForcePathStyle"] = "true" if value["s3_force_path_style"] else "false"
    s3_url = value.get("s3_url")
    if s3_url is not None:
        if not isinstance(s3_url, str) or not re.match(r"^https?://[^\s'\"]{1,500}$", s3_url):
            _fail(path + ".s3_url", s3_url, "an http(s) URL")
        config["s3Url"] = s3_url
    ca_cert = value.get("ca_cert")
    if ca_cert is not None and (not isinstance(ca_cert, str) or "BEGIN CERTIFICATE" not in ca_cert):
        _fail(path + ".ca_cert", "<value>", "a PEM certificate (-----BEGIN CERTIFICATE-----)")
    _bool(path + ".default", value.get("default"))
    frequency = value.get("validation_frequency")
    spec = {
        "provider": provider,
        "objectStorage": {"bucket": bucket},
        "accessMode": mode,
    }
    if prefix:
        spec["objectStorage"]["prefix"] = prefix
    if ca_cert:
        import base64

        spec["objectStorage"]["caCert"] = base64.b64encode(ca_cert.encode()).decode()
    if config:
        spec["config"] = config
    credential = _credential(path + ".credential", value.get("credential"))
    if credential:
        spec["credential"] = credential
    if value.get("default") is not None:
        spec["default"] = value["default"]
    if frequency is not None:
        spec["validationFrequency"] = format_duration(_duration(path + ".validation_frequency", frequency))
    return {"name": name, "spec": spec}


def validate_vsls(value):
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        _fail("volume_snapshot_locations", "<value>", "a list of dicts")
    out = []
    seen = set()
    for index, item in enumerate(value):
        path = "volume_snapshot_locations[%d]" % index
        if not isinstance(item, dict) or set(item) - {"name", "provider", "config", "credential"}:
            _fail(path, "<value>", "a dict with name, provider, config, credential")
        name = _name(path + ".name", item.get("name"), subdomain=True)
        if name in seen:
            _fail(path + ".name", name, "a name not used by another entry")
        seen.add(name)
        provider = item.get("provider")
        if not isinstance(provider, str) or not _PROVIDER.match(provider):
            _fail(path + ".provider", provider, PROVIDERS_HINT)
        spec = {"provider": provider}
        config = _config(path + ".config", item.get("config"))
        if config:
            spec["config"] = config
        credential = _credential(path + ".credential", item.get("credential"))
        if credential:
            spec["credential"] = credential
        out.append({"name": name, "spec": spec})
    return out


def validate(params):
    """All options -> (normalized dict, warnings). VeleroParamError for the first bad one."""
    warnings = []
    namespace = _name("namespace", params.get("namespace") or "velero")
    state = params.get("state") or "present"
    if state not in ("present", "absent"):
        _fail("state", state, "present or absent")
    mode = params.get("mode") or "apply"
    if mode not in ("apply", "verify"):
        _fail("mode", mode, "apply or verify")
    conflicts = params.get("hook_conflicts") or "error"
    if conflicts not in HOOK_CONFLICTS:
        _fail("hook_conflicts", conflicts, "one of " + ", ".join(HOOK_CONFLICTS))
    on_breach = params.get("on_breach") or "fail"
    if on_breach not in ("fail", "warn"):
        _fail("on_breach", on_breach, "fail or warn")
    expiring = _duration("expiring_within", params.get("expiring_within") or "24h")
    schedules = params.get("schedules") or []
    if not isinstance(schedules, list) or len(schedules) > MAX_ITEMS:
        _fail("schedules", "<value>", "a list of at most %d schedules" % MAX_ITEMS)
    defaults = {"hook_conflicts": conflicts, "ttl": params.get("default_ttl") or "720h"}
    normalized = []
    seen = set()
    for index, item in enumerate(schedules):
        path = "schedules[%d]" % index
        if state == "absent" or mode == "verify":
            if not isinstance(item, dict):
                _fail(path, item, "a dict")
            entry = {"name": _name(path + ".name", item.get("name"))}
            entry["rpo_seconds"] = _duration(path + ".rpo", item["rpo"]) if item.get("rpo") is not None else None
            if item.get("namespace") not in (None, namespace):
                _fail(path + ".namespace", item.get("namespace"), "Velero's namespace %r" % namespace)
        else:
            entry = validate_schedule(path, item, namespace, defaults, warnings)
        if entry["name"] in seen:
            _fail(path + ".name", entry["name"], "a name not used by another entry")
        seen.add(entry["name"])
        normalized.append(entry)
    bsl = None
    if state == "present" and mode == "apply":
        bsl = validate_bsl(params.get("backup_storage_location"))
        vsls = validate_vsls(params.get("volume_snapshot_locations"))
    else:
        bsl_param = params.get("backup_storage_location")
        bsl = (
            {"name": _name("backup_storage_location.name", bsl_param.get("name", "default"), True)}
            if isinstance(bsl_param, dict)
            else None
        )
        vsls = [
            {"name": _name("volume_snapshot_locations[%d].name" % i, v.get("name") if isinstance(v, dict) else v, True)}
            for i, v in enumerate(params.get("volume_snapshot_locations") or [])
        ]
    if bsl:
        for entry in normalized:
            location = entry.get("spec", {}).get("template", {}).get("storageLocation")
            if location and location != bsl["name"] and mode == "apply" and state == "present":
                warnings.append(
                    "schedule %s writes to storage location %r, not to the managed %r"
                    % (entry["name"], location, bsl["name"])
                )
    return {
        "namespace": namespace,
        "state": state,
        "mode": mode,
        "on_breach": on_breach,
        "expiring_within": expiring,
        "schedules": normalized,
        "bsl": bsl,
        "vsls": vsls,
    }, warnings


def _object(kind, name, namespace, spec, labels=None, annotations=None):
    metadata = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def manifests(normalized):
    """The objects to apply, in order: the BSL and VSLs before the Schedules that use them."""
    namespace = normalized["namespace"]
    out = []
    if normalized["bsl"] and "spec" in normalized["bsl"]:
        out.append(_object("BackupStorageLocation", normalized["bsl"]["name"], namespace, normalized["bsl"]["spec"]))
    for vsl in normalized["vsls"]:
        if "spec" in vsl:
            out.append(_object("VolumeSnapshotLocation", vsl["name"], namespace, vsl["spec"]))
    for entry in normalized["schedules"]:
        if "spec" not in entry:
            continue
        annotations = {RPO_ANNOTATION: entry["rpo"]} if entry.get("rpo") else None
        out.append(_object("Schedule", entry["name"], namespace, entry["spec"], entry["labels"], annotations))
    return out


def redact(obj):
    """A copy safe to show: config values whose key names a secret, caCert contents and Secret
    data are replaced."""
    if isinstance(obj, list):
        return [redact(item) for item in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        lowered = str(key).lower()
        if lowered in ("data", "stringdata") and isinstance(value, dict):
            out[key] = {k: "<redacted>" for k in value}
        elif lowered == "cacert":
            out[key] = "<redacted>"
        elif isinstance(value, str) and any(word in lowered for word in SECRET_WORDS) and lowered not in ("key",):
            out[key] = "<redacted>"
        else:
            out[key] = redact(value)
    return out
