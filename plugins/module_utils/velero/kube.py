# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""velero_schedule against the cluster: server-side apply (dry-run in check mode), delete,
and the reads of verify mode, through the kubernetes DynamicClient that kubernetes.core's
get_api_client hands out. The plan and the verdicts come from spec.py and verdict.py."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import copy
import datetime

from ansible_collections.gpuops.cluster.plugins.module_utils.velero.spec import (
    API_VERSION,
    manifests,
    redact,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.velero.verdict import (
    SCHEDULE_LABEL,
    judge_schedule,
    pick_bsl,
)

FIELD_MANAGER = "gpuops.cluster/velero_schedule"
PLURALS = {
    "Schedule": "schedules",
    "BackupStorageLocation": "backupstoragelocations",
    "VolumeSnapshotLocation": "volumesnapshotlocations",
    "Backup": "backups",
}


class VeleroKubeError(Exception):
    pass


def _plain(obj):
    if obj is None:
        return None
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _compared(obj):
    """The parts of an object this module owns, for changed/diff."""
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    annotations = dict(meta.get("annotations") or {})
    out = {"kind": obj.get("kind"), "name": meta.get("name"), "spec": obj.get("spec") or {}}
    if labels:
        out["labels"] = labels
    if annotations:
        out["annotations"] = annotations
    return out


class VeleroKube:
    def __init__(self, dynamic, check_mode=False):
        self.dynamic = dynamic
        self.check_mode = check_mode
        self._resources = {}

    def resource(self, kind):
        if kind not in self._resources:
            try:
                self._resources[kind] = self.dynamic.resources.get(api_version=API_VERSION, kind=kind)
            except Exception as exc:  # ResourceNotFoundError and discovery failures
                raise VeleroKubeError(
                    "the cluster does not serve %s %s (is Velero's CRD installed?): %s" % (API_VERSION, kind, exc)
                ) from exc
        return self._resources[kind]

    def get(self, kind, namespace, name):
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return _plain(self.resource(kind).get(name=name, namespace=namespace))
        except NotFoundError:
            return None

    def list(self, kind, namespace, label_selector=None):
        kwargs = {"namespace": namespace}
        if label_selector:
            kwargs["label_selector"] = label_selector
        return _plain(self.resource(kind).get(**kwargs)).get("items") or []

    def apply(self, body):
        kwargs = {"field_manager": FIELD_MANAGER, "force_conflicts": True}
        if self.check_mode:
            kwargs["dry_run"] = "All"
        return _plain(
            self.dynamic.server_side_apply(
                self.resource(body["kind"]),
                body=body,
                name=body["metadata"]["name"],
                namespace=body["metadata"]["namespace"],
                **kwargs,
            )
        )

    def delete(self, kind, namespace, name):
        kwargs = {"name": name, "namespace": namespace}
        if self.check_mode:
            kwargs["dry_run"] = "All"
        self.resource(kind).delete(**kwargs)


def apply_all(kube, normalized):
    """Apply (or delete) what the options describe -> result dict (changed, objects, diff)."""
    namespace = normalized["namespace"]
    changed = False
    objects = []
    before_all, after_all = [], []
    if normalized["state"] == "present":
        for body in manifests(normalized):
            before = kube.get(body["kind"], namespace, body["metadata"]["name"])
            after = kube.apply(copy.deepcopy(body))
            was, now = _compared(before), _compared(after)
            this_changed = was != now
            changed = changed or this_changed
            objects.append(
                {
                    "kind": body["kind"],
                    "name": body["metadata"]["name"],
                    "changed": this_changed,
                    "action": "create" if before is None else ("update" if this_changed else "none"),
                }
            )
            if this_changed:
                before_all.append(redact(was) if was else {})
                after_all.append(redact(now))
    else:
        targets = [("Schedule", entry["name"]) for entry in normalized["schedules"]]
        targets += [("VolumeSnapshotLocation", vsl["name"]) for vsl in normalized["vsls"]]
        if normalized["bsl"]:
            targets.append(("BackupStorageLocation", normalized["bsl"]["name"]))
        for kind, name in targets:
            before = kube.get(kind, namespace, name)
            if before is None:
                objects.append({"kind": kind, "name": name, "changed": False, "action": "none"})
                continue
            kube.delete(kind, namespace, name)
            changed = True
            objects.append({"kind": kind, "name": name, "changed": True, "action": "delete"})
            before_all.append(redact(_compared(before)))
            after_all.append({})
    return {
        "changed": changed,
        "objects": objects,
        "schedules": [
            {
                "name": entry["name"],
                "rpo_seconds": entry.get("rpo_seconds"),
                "period_seconds": entry.get("period_seconds"),
            }
            for entry in normalized["schedules"]
        ],
        "diff": {"before": {"objects": before_all}, "after": {"objects": after_all}},
    }


def verify_all(kube, normalized, now=None):
    """Read-only: a verdict per schedule (the named ones, else every Schedule in the namespace)."""
    namespace = normalized["namespace"]
    now = now or datetime.datetime.now(datetime.timezone.utc)
    locations = kube.list("BackupStorageLocation", namespace)
    wanted = normalized["schedules"]
    if wanted:
        schedules = []
        for entry in wanted:
            found = kube.get("Schedule", namespace, entry["name"])
            schedules.append((entry, found))
    else:
        schedules = [
            ({"name": s["metadata"]["name"], "rpo_seconds": None}, s) for s in kube.list("Schedule", namespace)
        ]
    verdicts = []
    for entry, schedule in schedules:
        if schedule is None:
            verdicts.append(
                {
                    "name": entry["name"],
                    "verdict": "failed",
                    "reasons": ["schedule %s does not exist in namespace %s" % (entry["name"], namespace)],
                }
            )
            continue
        backups = kube.list("Backup", namespace, "%s=%s" % (SCHEDULE_LABEL, entry["name"]))
        verdicts.append(
            judge_schedule(
                schedule,
                backups,
                pick_bsl(schedule, locations),
                now,
                rpo_seconds=entry.get("rpo_seconds"),
                expiring_within=normalized["expiring_within"],
            )
        )
    return verdicts
