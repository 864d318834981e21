# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DR drill's pure logic (no I/O): the resource-modifier rules that keep a drill off the
GPUs, production fingerprints, what the backup holds (from its resource list or its tarball)
mapped into the scratch namespaces, the comparison with what was restored, the smoke-check
judgement, and the restore poll's back-off."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import gzip
import io
import json
import re
import tarfile

# Kinds a drill compares, with their API version and Velero group-resource.
KINDS = {
    "Deployment": ("apps/v1", "deployments.apps"),
    "StatefulSet": ("apps/v1", "statefulsets.apps"),
    "DaemonSet": ("apps/v1", "daemonsets.apps"),
    "Job": ("batch/v1", "jobs.batch"),
    "CronJob": ("batch/v1", "cronjobs.batch"),
    "ConfigMap": ("v1", "configmaps"),
    "Secret": ("v1", "secrets"),
    "Service": ("v1", "services"),
    "ServiceAccount": ("v1", "serviceaccounts"),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims"),
}
GROUP_RESOURCE_KIND = dict((gr, kind) for kind, (_v, gr) in KINDS.items())
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
SCALABLE = ("Deployment", "StatefulSet")
GPU_PREFIX = "nvidia.com/"
# Created by the API server in every namespace: never a difference.
AUTOMATIC = (("ConfigMap", "kube-root-ca.crt"),)
FINAL_RESTORE_PHASES = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")


def key(kind, namespace, name):
    return "%s/%s/%s" % (kind, namespace, name)


def pod_spec(obj):
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def gpu_resources(container):
    """{'limits': [names], 'requests': [names]} of a container's nvidia.com/* resources."""
    resources = container.get("resources") or {}
    out = {}
    for part in ("limits", "requests"):
        names = sorted(k for k in (resources.get(part) or {}) if k.startswith(GPU_PREFIX))
        if names:
            out[part] = names
    return out


def pick_backup(backups, named):
    """The backup a drill restores: the named one (Completed or PartiallyFailed), else the
    newest Completed one; either with every volume snapshot completed -> backup or None."""
    usable = []
    for backup in backups:
        status = backup.get("status") or {}
        phases = ("Completed", "PartiallyFailed") if named else ("Completed",)
        if (
            status.get("phase") in phases
            and status.get("completionTimestamp")
            and (status.get("volumeSnapshotsAttempted") or 0) <= (status.get("volumeSnapshotsCompleted") or 0)
            and (not named or backup["metadata"]["name"] == named)
        ):
            usable.append(backup)
    if not usable:
        return None
    return max(usable, key=lambda b: (b["status"]["completionTimestamp"], b["metadata"]["name"]))


def age_seconds(backup, now):
    """Seconds since the backup completed (now: an aware datetime)."""
    import datetime

    done = datetime.datetime.strptime(backup["status"]["completionTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    return (now - done.replace(tzinfo=datetime.timezone.utc)).total_seconds()


# Names per resourceNameRegex alternation (one rule for many objects with the same patch).
NAMES_PER_RULE = 100


def modifier_rules(objects, mapping):
    """Velero resourceModifierRules: replicas 0 on Deployments and StatefulSets, and for the
    workloads that ask for nvidia.com/* resources strategic patches removing them (null
    values), scoped by name to those objects in their scratch namespace. Objects of one kind
    and namespace needing the same patch share a rule (an anchored alternation of names), so
    the restore does not test every object against one rule per workload."""
    rules = [
        {
            "conditions": {"groupResource": KINDS[kind][1]},
            "patches": [{"operation": "replace", "path": "/spec/replicas", "value": "0"}],
        }
        for kind in SCALABLE
    ]
    groups = {}
    for obj in sorted(objects, key=lambda o: (o.get("kind"), o["metadata"].get("namespace"), o["metadata"]["name"])):
        kind = obj.get("kind")
        if kind not in WORKLOADS:
            continue
        containers = []
        for container in pod_spec(obj).get("containers") or []:
            found = gpu_resources(container)
            if found:
                containers.append(
                    {
                        "name": container.get("name"),
                        "resources": dict((part, dict((n, None) for n in names)) for part, names in found.items()),
                    }
                )
        if not containers:
            continue
        patch = {"spec": {"template": {"spec": {"containers": containers}}}}
        if kind == "CronJob":
            patch = {"spec": {"jobTemplate": patch}}
        meta = obj["metadata"]
        target = mapping.get(meta.get("namespace"), meta.get("namespace"))
        groups.setdefault((kind, target, json.dumps(patch, sort_keys=True)), []).append(meta["name"])
    for (kind, target, patch), names in groups.items():
        for start in range(0, len(names), NAMES_PER_RULE):
            chunk = names[start : start + NAMES_PER_RULE]
            rules.append(
                {
                    "conditions": {
                        "groupResource": KINDS[kind][1],
                        "resourceNameRegex": "^(%s)$" % "|".join(_literal(n) for n in chunk),
                        "namespaces": [target],
                    },
                    "strategicPatches": [{"patchData": patch}],
                }
            )
    return rules


def _literal(name):
    """A Kubernetes name as a Go (RE2) regular expression matching only itself."""
    return re.sub(r"([^a-z0-9-])", r"\\\1", name)


def fingerprint(objects):
    """What proves production untouched: kind, namespace, name and resourceVersion, sorted."""
    return sorted(
        [o.get("kind"), o["metadata"].get("namespace"), o["metadata"]["name"], o["metadata"].get("resourceVersion")]
        for o in objects
    )


def fingerprint_changes(before, after):
    """Human-readable differences between two fingerprints."""
    was = dict((key(*f[:3]), f[3]) for f in before)
    now = dict((key(*f[:3]), f[3]) for f in after)
    out = ["deleted: %s" % k for k in sorted(set(was) - set(now))]
    out += ["created: %s" % k for k in sorted(set(now) - set(was))]
    out += ["changed: %s" % k for k in sorted(set(was) & set(now)) if was[k] != now[k]]
    return out


def keys_from_resource_list(data, namespaces, mapping, kinds):
    """Expected restored keys from a backup's `<name>-resource-list.json.gz` (gzip'd JSON
    {"apps/v1/Deployment": ["ns/name", ...], "v1/Namespace": ["ns"], ...})."""
    listing = json.loads(gzip.decompress(data).decode("utf-8"))
    if not isinstance(listing, dict):
        raise ValueError("the resource list is not a JSON object")
    out = set()
    for group_version_kind, entries in listing.items():
        kind = group_version_kind.rsplit("/", 1)[-1]
        if kind not in kinds:
            continue
        for entry in entries or []:
            namespace, _sep, name = entry.partition("/")
            if name and namespace in namespaces:
                out.add(key(kind, mapping.get(namespace, namespace), name))
    return sorted(out)


def keys_from_tarball(data, namespaces, mapping, kinds):
    """Expected restored keys from a backup tarball's entries
    (`resources/<resource>[.<group>]/namespaces/<ns>/<name>.json`); objects a controller owns
    are left out, as Velero's restore skips them."""
    out = set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 5 or parts[0] != "resources" or parts[2] != "namespaces":
                continue
            kind = GROUP_RESOURCE_KIND.get(parts[1])
            namespace, name = parts[3], parts[4][: -len(".json")] if parts[4].endswith(".json") else parts[4]
            if kind not in kinds or namespace not in namespaces:
                continue
            obj = json.loads(tar.extractfile(member).read().decode("utf-8"))
            owners = (obj.get("metadata") or {}).get("ownerReferences") or []
            if any(ref.get("controller") for ref in owners):
                continue
            out.add(key(kind, mapping.get(namespace, namespace), name))
    return sorted(out)


def keys_from_objects(objects, mapping, kinds):
    """Expected restored keys from the source namespaces' objects (last resort, when the
    backup's contents cannot be read)."""
    out = set()
    for obj in objects:
        meta = obj["metadata"]
        if obj.get("kind") not in kinds:
            continue
        if any(ref.get("controller") for ref in meta.get("ownerReferences") or []):
            continue
        out.add(key(obj["kind"], mapping.get(meta.get("namespace"), meta.get("namespace")), meta["name"]))
    return sorted(out)


def compare(expected, restored_objects, kinds):
    """(differences, counts per kind) between the expected keys and what was restored."""
    restored = set(key(o.get("kind"), o["metadata"].get("namespace"), o["metadata"]["name"]) for o in restored_objects)
    automatic = set(k for k in restored if tuple(k.split("/")[0:3:2]) in AUTOMATIC)
    expected = set(expected)
    differences = ["missing in restore: %s" % k for k in sorted(expected - restored)]
    differences += ["not in the backup: %s" % k for k in sorted(restored - expected - automatic)]
    counts = dict((kind, 0) for kind in kinds)
    for obj in restored_objects:
        if obj.get("kind") in counts:
            counts[obj["kind"]] += 1
    return differences, counts


def judge_smoke(smoke_checks, found_counts, restored_objects, mapping):
    """Failures of the plan's smoke checks (found_counts: one count per check, in order) and
    of the drill's own guarantee: restored workloads scaled to 0 and without nvidia.com/*."""
    failures = []
    for check, count in zip(smoke_checks, found_counts):
        wanted = check.get("min_count", 1)
        if count < wanted:
            failures.append(
                "%s in %s: %d found, %d wanted"
                % (check["kind"], mapping.get(check["namespace"], check["namespace"]), count, wanted)
            )
    for obj in restored_objects:
        kind = obj.get("kind")
        if kind not in WORKLOADS:
            continue
        replicas = (obj.get("spec") or {}).get("replicas", 1) if kind in SCALABLE else 0
        gpus = [c.get("name") for c in pod_spec(obj).get("containers") or [] if gpu_resources(c)]
        if replicas or gpus:
            failures.append(
                "%s %s/%s was restored with %s"
                % (
                    kind,
                    obj["metadata"].get("namespace"),
                    obj["metadata"]["name"],
                    ("replicas %s" % replicas if replicas else "")
                    + (" and " if replicas and gpus else "")
                    + ("nvidia.com/* resources in %s" % ", ".join(gpus) if gpus else ""),
                )
            )
    return failures


def poll_delays(first=0.05, factor=1.25, cap=2.0):
    """The restore poll's sleeps: a short first one, growing by a quarter to `cap` (endless
    generator); the end of a wait is seen at most a quarter of the time waited (or 2 s) late."""
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, cap)


def build_report(result, plan, drill_id, mode, started, now):
    """The drill report (JSON-able) from velero_drill's result; `started`/`now` in epoch
    seconds, `plan` {name, rto_minutes, rpo_minutes}."""
    elapsed = (now - started) / 60
    age = result.get("backup_age_seconds")
    return {
        "plan": plan["name"],
        "mode": mode,
        "drill_id": drill_id,
        "backup": result.get("backup"),
        "backup_age_minutes": None if age is None else round(age / 60, 1),
        "rpo_minutes": _number(plan["rpo_minutes"]),
        "rto_minutes": _number(plan["rto_minutes"]),
        "within_rpo": age is not None and age / 60 <= plan["rpo_minutes"],
        "elapsed_minutes": round(elapsed, 3),
        "within_rto": None if mode == "dry_run" else (not result.get("failed_step") and elapsed <= plan["rto_minutes"]),
        "namespace_mapping": result.get("namespace_mapping") or {},
        "steps": result.get("steps") or [],
        "failed_step": result.get("failed_step"),
        "failure": result.get("failure"),
        "restored_counts": result.get("restored_counts") or {},
        "differences": result.get("differences") or [],
        "contents_source": result.get("contents_source"),
        "smoke_failures": result.get("smoke_failures") or [],
        "production_untouched": result.get("production_untouched"),
        "production_changes": result.get("production_changes") or [],
    }


def _number(value):
    """15.0 -> 15 (module options of type float), other values as they are."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def report_text(report):
    """The report as the text file reads."""
    if report["within_rto"]:
        rto = "met"
    else:
        rto = "not measured (dry run)" if report["mode"] == "dry_run" else "NOT met"
    lines = [
        "DR drill %s (%s) %s" % (report["plan"], report["mode"], report["drill_id"]),
        "backup %s, %s min old: RPO %s min %s"
        % (
            report["backup"],
            report["backup_age_minutes"],
            report["rpo_minutes"],
            "met" if report["within_rpo"] else "BREACHED",
        ),
        "elapsed %s min: RTO %s min %s" % (report["elapsed_minutes"], report["rto_minutes"], rto),
    ]
    lines += ["- %s: %s in %s s" % (s["name"], s["status"], s["seconds"]) for s in report["steps"]]
    if report["contents_source"]:
        lines.append("compared with: %s" % report["contents_source"])
    if report["failed_step"]:
        lines.append("FAILED at %s: %s" % (report["failed_step"], report["failure"]))
    lines.append("production untouched: %s" % report["production_untouched"])
    return "\n".join(lines) + "\n"
