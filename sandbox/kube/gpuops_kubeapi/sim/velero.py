"""Simulated Velero server (velero.io/v1), doing real backups into S3.

Only objects in Velero's namespace (option `velero_namespace`, default `velero`) are acted on,
as upstream's informers watch only there: a Schedule, Backup or Restore anywhere else keeps
no status at all (phase `New` in `velero get`, velero#2573).

- BackupStorageLocation: validated by a HeadBucket with the location's credentials (the
  Secret key named by `spec.credential`, an AWS credentials file, else the process's AWS_*
  variables) against the endpoint in GPUOPS_SANDBOX_AWS_ENDPOINT (the sandbox's moto; else
  `config.s3Url`); `status.phase` Available or Unavailable with `message`, and
  `lastValidationTime`, again every `validationFrequency` (default 1m).
- Schedule: the cron (5 fields, descriptors, `@every`) validated as robfig/cron does (a bad one
  is `FailedValidation` with `validationErrors`), otherwise `Enabled`; when a run is due a
  Backup `<schedule>-<YYYYMMDDhhmmss>` is created from `spec.template` with the labels
  `velero.io/schedule-name` and `velero.io/storage-location`, and `status.lastBackup` is set.
  The first run is immediate unless `skipImmediately`; `paused` stops runs.
- Backup: validated (storage location exists, is Available and ReadWrite; included and
  excluded namespaces do not overlap), then `InProgress`, then the selected objects are
  serialized as Velero's tarball lays them out (`metadata/version` = 1.1.0,
  `resources/<resource>[.<group>]/namespaces/<ns>/<name>.json`, `.../cluster/<name>.json`)
  and uploaded with boto3 to `<prefix>/backups/<name>/` with `velero-backup.json`,
  `<name>-resource-list.json.gz` and `<name>-logs.gz`. Status as upstream writes it: phase
  Completed, PartiallyFailed (item errors) or Failed (upload failed, `failureReason`),
  start/completion timestamps, expiration (start + ttl), `progress`, `errors`, `warnings`,
  `version` 1, `formatVersion` 1.1.0.
- Restore: `backupName` (or the newest Completed backup of `scheduleName`) downloaded and
  its objects created with `namespaceMapping` and the resource modifiers of the ConfigMap in
  `spec.resourceModifier` (`resourceModifierRules` with `conditions.groupResource`,
  `resourceNameRegex`, `namespaces`, `labelSelector.matchLabels`, and `patches` (JSON patch),
  `mergePatches`, `strategicPatches`); metadata reset (uid, resourceVersion, ownerReferences,
  managedFields dropped), status dropped, objects owned by a controller and kinds Velero never
  restores (nodes, events, Velero's own) skipped, existing objects left alone with a warning.
  Results uploaded to `restores/<name>/restore-<name>-results.gz`; status phase Completed,
  PartiallyFailed or Failed, `progress.itemsRestored`, `errors`, `warnings`.
- Expired backups (expiration passed) are deleted from the bucket and from the API.
- DownloadRequest: answered with a pre-signed URL of the target's file in the bucket
  (velero_download.py; the CRD is installed on the first pass when not served).

The clock: real time, unless the ConfigMap `gpuops-sandbox-clock` in Velero's namespace has
`data.now` (RFC 3339): then that is "now" for schedules, timestamps and expiry (tests and
drills move it forward).

Faults for tests: an object annotated `gpuops.cluster/sandbox-backup-fail: "true"` is an
item error in any backup taking it (PartiallyFailed); one annotated
`gpuops.cluster/sandbox-restore-fail: "true"` fails when restored (the restore goes on,
PartiallyFailed).
"""

from __future__ import annotations

import datetime
import functools
import gzip
import importlib.util
import io
import json
import os
import re
import tarfile
import time
from pathlib import Path
from typing import Any

from ..patches import json_merge_patch, json_patch, strategic_merge_patch
from . import velero_download
from .runner import Controller

GROUP, VERSION = "velero.io", "v1"
CLOCK_CONFIGMAP = "gpuops-sandbox-clock"
SCHEDULE_LABEL = "velero.io/schedule-name"
LOCATION_LABEL = "velero.io/storage-location"
BACKUP_FAIL = "gpuops.cluster/sandbox-backup-fail"
RESTORE_FAIL = "gpuops.cluster/sandbox-restore-fail"
FORMAT_VERSION = "1.1.0"
# Never in a backup here (upstream backs events up but never restores them).
SKIP_BACKUP = {"events", "events.events.k8s.io", "nodes", "leases.coordination.k8s.io"}
# Upstream's non-restorable resources.
NON_RESTORABLE = {
    "nodes",
    "events",
    "events.events.k8s.io",
    "backups.velero.io",
    "restores.velero.io",
    "resticrepositories.velero.io",
    "backuprepositories.velero.io",
    "csinodes.storage.k8s.io",
    "volumeattachments.storage.k8s.io",
}
# Upstream's restore priorities: these first, in this order, then the rest.
PRIORITIES = [
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "storageclasses.storage.k8s.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "secrets",
    "configmaps",
    "serviceaccounts",
    "limitranges",
    "pods",
    "replicasets.apps",
]
FINISHED = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")


def _load_cron():
    """robfig/cron's rules, shared with the collection's own checks (pure, standard library)."""
    path = (
        Path(__file__).resolve().parents[4] / "plugins" / "module_utils" / "velero" / "durations.py"
    )
    spec = importlib.util.spec_from_file_location("gpuops_sandbox_velero_durations", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def group_resource(resource_type) -> str:
    return (
        f"{resource_type.plural}.{resource_type.group}"
        if resource_type.group
        else resource_type.plural
    )


def _matches(name: str, included: list[str], excluded: list[str]) -> bool:
    short = name.split(".")[0]
    if "*" in excluded or name in excluded or short in excluded:
        return False
    return not included or "*" in included or name in included or short in included


class S3Error(Exception):
    pass


class Velero(Controller):
    name = "velero"
    manager = "velero-server"
    periodic = True

    def __init__(self, cluster, options):
        super().__init__(cluster, options)
        self.namespace = options.get("velero_namespace") or "velero"
        self.cron = _load_cron()
        self._wake: float | None = None
        self._validated: dict[str, float] = {}
        self._clients: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    def next_wake(self) -> float | None:
        return self._wake

    def _want_wake(self, seconds: float) -> None:
        moment = time.monotonic() + max(seconds, 0.05)
        self._wake = moment if self._wake is None else min(self._wake, moment)

    def now(self) -> datetime.datetime:
        clock = self.client.get("", "v1", "configmaps", self.namespace, CLOCK_CONFIGMAP)
        moment = parse(((clock or {}).get("data") or {}).get("now"))
        return moment or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)

    def _list(self, plural: str) -> list[dict[str, Any]]:
        return self.client.list(GROUP, VERSION, plural, self.namespace)

    def _status(self, plural: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
        self.client.patch(
            GROUP, VERSION, plural, self.namespace, obj["metadata"]["name"], {"status": status}
        )
        obj.setdefault("status", {}).update(status)

    def _relevant(self) -> bool:
        if self.changes is None:
            return True
        if self._wake is not None and self._wake <= time.monotonic():
            return True
        for (group, _plural), events in self.changes.items():
            if group == GROUP:
                return True
            if group == "" and _plural in ("configmaps", "secrets"):
                if any(key[0] == self.namespace for key in events):
                    return True
        return False

    # ------------------------------------------------------------------ S3
    def _s3(self, location: dict[str, Any]):
        import boto3
        from botocore.config import Config

        spec = location.get("spec") or {}
        config = spec.get("config") or {}
        kwargs: dict[str, Any] = {
            "region_name": config.get("region")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1",
            "endpoint_url": os.environ.get("GPUOPS_SANDBOX_AWS_ENDPOINT") or config.get("s3Url"),
            "config": Config(
                retries={"max_attempts": 1},
                connect_timeout=3,
                read_timeout=10,
                s3={"addressing_style": "path"},
            ),
        }
        credential = spec.get("credential")
        if credential:
            secret = self.client.get("", "v1", "secrets", self.namespace, credential.get("name"))
            data = ((secret or {}).get("data") or {}).get(credential.get("key") or "")
            if data is None:
                raise S3Error(
                    f"credential Secret {self.namespace}/{credential.get('name')} key "
                    f"{credential.get('key')!r} not found"
                )
            import base64

            text = base64.b64decode(data).decode(errors="replace")
            keys = dict(
                (k.strip(), v.strip())
                for k, v in (line.split("=", 1) for line in text.splitlines() if "=" in line)
            )
            kwargs["aws_access_key_id"] = keys.get("aws_access_key_id")
            kwargs["aws_secret_access_key"] = keys.get("aws_secret_access_key")
        cache_key = json.dumps({k: v for k, v in kwargs.items() if k != "config"}, sort_keys=True)
        client = self._clients.get(cache_key)
        if client is None:  # a boto3 client takes ~0.3 s to build: one per endpoint and keys
            client = self._clients[cache_key] = boto3.client("s3", **kwargs)
        return client, (location.get("spec") or {}).get("objectStorage") or {}

    @staticmethod
    def _key(storage: dict[str, Any], *parts: str) -> str:
        prefix = (storage.get("prefix") or "").strip("/")
        return "/".join(([prefix] if prefix else []) + list(parts))

    def _s3_call(self, func, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return func(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error") or {}
            raise S3Error(f"{error.get('Code')}: {error.get('Message') or exc}") from exc
        except BotoCoreError as exc:
            raise S3Error(str(exc)) from exc

    # ------------------------------------------------------------------ passes
    def reconcile(self) -> None:
        if not self._relevant():
            return
        self._wake = None
        velero_download.ensure_crd(self)
        moment = self.now()
        for schedule in self._list("schedules"):
            self._schedule(schedule, moment)
        # Listed after the schedules' runs: a location applied before its schedule is seen.
        locations = {loc["metadata"]["name"]: loc for loc in self._list("backupstoragelocations")}
        for location in locations.values():
            self._validate_location(location, moment)
        for backup in self._list("backups"):
            self._backup(backup, locations, moment)
        for restore in self._list("restores"):
            self._restore(restore, locations, moment)
        velero_download.reconcile(self, locations, moment)

    def _validate_location(self, location, moment) -> None:
        name = location["metadata"]["name"]
        spec = location.get("spec") or {}
        freq = self.cron.parse_duration(spec.get("validationFrequency") or "1m")
        last = self._validated.get(name)
        key = json.dumps(spec, sort_keys=True)
        status = location.get("status") or {}
        if last is not None and status.get("phase") and self._validated.get(name + "/spec") == key:
            remaining = last + freq - time.monotonic()
            if remaining > 0:
                self._want_wake(remaining)
                return
        try:
            client, storage = self._s3(location)
            self._s3_call(client.head_bucket, Bucket=storage.get("bucket"))
            phase, message = "Available", None
        except S3Error as exc:
            phase = "Unavailable"
            message = (
                f'BackupStorageLocation "{name}" is unavailable: '
                f"rpc error: code = Unknown desc = {exc}"
            )
        self._validated[name] = time.monotonic()
        self._validated[name + "/spec"] = key
        self._want_wake(freq)
        update = {
            "phase": phase,
            "lastValidationTime": stamp(moment),
            "accessMode": spec.get("accessMode") or "ReadWrite",
            "message": message,
        }
        if any(status.get(k) != v for k, v in update.items() if k != "lastValidationTime"):
            self._status("backupstoragelocations", location, update)

    def _schedule(self, schedule, moment) -> None:
        spec = schedule.get("spec") or {}
        status = schedule.get("status") or {}
        try:
            self.cron.parse_schedule(spec.get("schedule"))
        except self.cron.CronError as exc:
            if status.get("phase") != "FailedValidation":
                self._status(
                    "schedules",
                    schedule,
                    {
                        "phase": "FailedValidation",
                        "validationErrors": [f"invalid schedule: {exc}"],
                    },
                )
            return
        if status.get("phase") != "Enabled":
            self._status("schedules", schedule, {"phase": "Enabled", "validationErrors": None})
        if spec.get("paused"):
            return
        last = parse(status.get("lastBackup")) or parse(status.get("lastSkipped"))
        if last is None:
            if spec.get("skipImmediately"):
                self._status("schedules", schedule, {"lastSkipped": stamp(moment)})
                return
            due = moment
        else:
            runs = self.cron.next_runs(spec["schedule"], last.replace(tzinfo=None), 1)
            if not runs:
                return
            due = runs[0].replace(tzinfo=datetime.timezone.utc)
        if due > moment:
            self._want_wake(min((due - moment).total_seconds(), 60.0))
            return
        name = f"{schedule['metadata']['name']}-{moment.strftime('%Y%m%d%H%M%S')}"
        template = dict(spec.get("template") or {})
        labels = dict(((template.get("metadata") or {}).get("labels")) or {})
        labels[SCHEDULE_LABEL] = schedule["metadata"]["name"]
        if template.get("storageLocation"):
            labels[LOCATION_LABEL] = template["storageLocation"]
        template.pop("metadata", None)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Backup",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": template,
        }
        if spec.get("useOwnerReferencesInBackup"):
            body["metadata"]["ownerReferences"] = [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Schedule",
                    "name": schedule["metadata"]["name"],
                    "uid": schedule["metadata"]["uid"],
                    "controller": True,
                }
            ]
        self.client.create(GROUP, VERSION, "backups", self.namespace, body)
        self._status("schedules", schedule, {"lastBackup": stamp(moment)})

    # ------------------------------------------------------------------ backups
    def _default_location(self, locations):
        for location in locations.values():
            if (location.get("spec") or {}).get("default"):
                return location
        return None

    def _backup(self, backup, locations, moment) -> None:
        status = backup.get("status") or {}
        phase = status.get("phase") or "New"
        if phase in FINISHED:
            expiration = parse(status.get("expiration"))
            if expiration is not None and expiration <= moment and phase != "Deleting":
                self._expire(backup, locations)
            elif expiration is not None:
                self._want_wake(min((expiration - moment).total_seconds(), 60.0))
            return
        if phase != "New":
            return
        spec = backup.get("spec") or {}
        errors = []
        location_name = spec.get("storageLocation")
        location = (
            locations.get(location_name) if location_name else self._default_location(locations)
        )
        if location is None:
            errors.append(
                f"an existing backup storage location wasn't specified at backup creation time "
                f"and the default {location_name or 'default'!r} wasn't found"
                if not location_name
                else f"backup storage location {location_name!r} not found"
            )
        elif (location.get("status") or {}).get("phase") != "Available":
            errors.append(
                f"backup can't be created because BackupStorageLocation "
                f"{location['metadata']['name']} is in Unavailable status."
            )
        elif (location.get("spec") or {}).get("accessMode") == "ReadOnly":
            errors.append(
                f"backup can't be created because backup storage location "
                f"{location['metadata']['name']} is currently in read-only mode"
            )
        included = spec.get("includedNamespaces") or []
        excluded = spec.get("excludedNamespaces") or []
        both = sorted(set(included) & set(excluded))
        if both:
            errors.append(
                "Invalid included/excluded namespace lists: excludes list cannot contain an item "
                f"in the includes list: {', '.join(both)}"
            )
        ttl = self.cron.parse_duration(spec.get("ttl") or "720h")
        start = moment
        base = {
            "version": 1,
            "formatVersion": FORMAT_VERSION,
            "startTimestamp": stamp(start),
            "expiration": stamp(start + datetime.timedelta(seconds=ttl)),
        }
        if errors:
            self._status(
                "backups",
                backup,
                dict(
                    base,
                    phase="FailedValidation",
                    validationErrors=errors,
                    completionTimestamp=stamp(start),
                ),
            )
            return
        labels = dict(backup["metadata"].get("labels") or {})
        labels.setdefault(LOCATION_LABEL, location["metadata"]["name"])
        self.client.patch(
            GROUP,
            VERSION,
            "backups",
            self.namespace,
            backup["metadata"]["name"],
            {"metadata": {"labels": labels}},
        )
        self._status("backups", backup, dict(base, phase="InProgress"))
        items, item_errors, warnings = self._collect(spec)
        name = backup["metadata"]["name"]
        try:
            self._upload(location, backup, items, item_errors)
        except S3Error as exc:
            self._status(
                "backups",
                backup,
                {
                    "phase": "Failed",
                    "failureReason": f"error uploading backup: {exc}",
                    "completionTimestamp": stamp(self.now()),
                },
            )
            return
        done = {
            "phase": "PartiallyFailed" if item_errors else "Completed",
            "completionTimestamp": stamp(self.now()),
            "progress": {"totalItems": len(items) + len(item_errors), "itemsBackedUp": len(items)},
        }
        if item_errors:
            done["errors"] = len(item_errors)
        if warnings:
            done["warnings"] = len(warnings)
        self._status("backups", backup, done)
        self.client.event(backup, "BackupCompleted", f"backup {name}: {done['phase']}")

    def _collect(self, spec):
        """(gr, namespace, name, json) of every selected object; item errors; warnings."""
        inc_ns = spec.get("includedNamespaces") or ["*"]
        exc_ns = spec.get("excludedNamespaces") or []
        inc_res = spec.get("includedResources") or []
        exc_res = spec.get("excludedResources") or []
        cluster_scoped = spec.get("includeClusterResources")
        if cluster_scoped is None:
            cluster_scoped = "*" in inc_ns
        selector = ((spec.get("labelSelector") or {}).get("matchLabels")) or {}
        items, errors, warnings = [], [], []
        seen = set()
        for resource_type in list(self.cluster.types.values()):
            if resource_type.virtual or resource_type.key in seen:
                continue
            gr = group_resource(resource_type)
            if gr in SKIP_BACKUP or not _matches(gr, inc_res, exc_res):
                continue
            # The Namespace objects of the selected namespaces always go in, as upstream's.
            if not resource_type.namespaced and not cluster_scoped and gr != "namespaces":
                continue
            preferred = self.cluster.types.get(
                (resource_type.group, resource_type.version, resource_type.plural)
            )
            seen.add(resource_type.key)
            for obj in self.client.list(
                resource_type.group, resource_type.version, resource_type.plural
            ):
                meta = obj.get("metadata") or {}
                namespace = meta.get("namespace") or ""
                if resource_type.namespaced and not _matches_ns(namespace, inc_ns, exc_ns):
                    continue
                if not resource_type.namespaced and gr == "namespaces":
                    if not _matches_ns(meta.get("name"), inc_ns, exc_ns):
                        continue
                labels = meta.get("labels") or {}
                if any(labels.get(k) != v for k, v in selector.items()):
                    continue
                if (meta.get("annotations") or {}).get(BACKUP_FAIL) == "true":
                    errors.append(
                        f"{gr} {namespace}/{meta.get('name')}: error backing up item (injected)"
                    )
                    continue
                obj.setdefault(
                    "apiVersion",
                    f"{resource_type.group}/{resource_type.version}"
                    if resource_type.group
                    else resource_type.version,
                )
                obj.setdefault("kind", resource_type.kind)
                items.append((gr, resource_type.namespaced, namespace, meta.get("name"), obj))
            del preferred
        return items, errors, warnings

    def _upload(self, location, backup, items, item_errors) -> None:
        client, storage = self._s3(location)
        name = backup["metadata"]["name"]
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            _add_file(tar, "metadata/version", FORMAT_VERSION.encode())
            for gr, namespaced, namespace, item_name, obj in items:
                where = f"namespaces/{namespace}" if namespaced else "cluster"
                _add_file(
                    tar,
                    f"resources/{gr}/{where}/{item_name}.json",
                    json.dumps(obj, sort_keys=True).encode(),
                )
        resource_list: dict[str, list[str]] = {}
        for _gr, namespaced, namespace, item_name, obj in items:
            key = f"{obj['apiVersion']}/{obj['kind']}"
            resource_list.setdefault(key, []).append(
                f"{namespace}/{item_name}" if namespaced else item_name
            )
        logs = "\n".join(
            [f'level=info msg="Backed up {len(items)} items" backup={self.namespace}/{name}']
            + [f'level=error msg="{e}" backup={self.namespace}/{name}' for e in item_errors]
        )
        bucket = storage.get("bucket")
        folder = ("backups", name)
        uploads = [
            (f"{name}.tar.gz", buffer.getvalue()),
            (
                f"{name}-resource-list.json.gz",
                gzip.compress(json.dumps(resource_list, sort_keys=True).encode()),
            ),
            (f"{name}-logs.gz", gzip.compress(logs.encode())),
            ("velero-backup.json", json.dumps(backup, sort_keys=True).encode()),
        ]
        for file_name, body in uploads:
            self._s3_call(
                client.put_object,
                Bucket=bucket,
                Key=self._key(storage, *folder, file_name),
                Body=body,
            )

    def _expire(self, backup, locations) -> None:
        name = backup["metadata"]["name"]
        location = locations.get(
            (backup["metadata"].get("labels") or {}).get(LOCATION_LABEL) or ""
        ) or self._default_location(locations)
        if location is not None:
            try:
                client, storage = self._s3(location)
                listing = self._s3_call(
                    client.list_objects_v2,
                    Bucket=storage.get("bucket"),
                    Prefix=self._key(storage, "backups", name) + "/",
                )
                for entry in listing.get("Contents") or []:
                    self._s3_call(
                        client.delete_object, Bucket=storage.get("bucket"), Key=entry["Key"]
                    )
            except S3Error:
                return  # upstream retries the deletion later; the Backup stays
        self.client.delete(GROUP, VERSION, "backups", self.namespace, name)

    # ------------------------------------------------------------------ restores
    def _restore(self, restore, locations, moment) -> None:
        status = restore.get("status") or {}
        if (status.get("phase") or "New") != "New":
            return
        spec = restore.get("spec") or {}
        backups = self._list("backups")
        backup = None
        errors = []
        if spec.get("backupName"):
            backup = next((b for b in backups if b["metadata"]["name"] == spec["backupName"]), None)
            if backup is None:
                errors.append(
                    f'Error retrieving backup: backups.velero.io "{spec["backupName"]}" not found'
                )
        elif spec.get("scheduleName"):
            done = [
                b
                for b in backups
                if (b["metadata"].get("labels") or {}).get(SCHEDULE_LABEL) == spec["scheduleName"]
                and (b.get("status") or {}).get("phase") == "Completed"
            ]
            if not done:
                errors.append(f"No backups found for schedule {spec['scheduleName']}")
            else:
                backup = max(done, key=lambda b: b["status"].get("startTimestamp") or "")
        else:
            errors.append(
                "Either a backup or schedule must be specified as a source for the restore, "
                "but not both"
            )
        if backup is not None and (backup.get("status") or {}).get("phase") not in (
            "Completed",
            "PartiallyFailed",
        ):
            errors.append("backup is not in a completed phase")
        if errors:
            self._status(
                "restores", restore, {"phase": "FailedValidation", "validationErrors": errors}
            )
            return
        if spec.get("scheduleName") and not spec.get("backupName"):
            self.client.patch(
                GROUP,
                VERSION,
                "restores",
                self.namespace,
                restore["metadata"]["name"],
                {"spec": {"backupName": backup["metadata"]["name"]}},
            )
        rules = []
        modifier = spec.get("resourceModifier") or {}
        if modifier.get("name"):
            config = self.client.get("", "v1", "configmaps", self.namespace, modifier["name"])
            if config is None:
                self._status(
                    "restores",
                    restore,
                    {
                        "phase": "FailedValidation",
                        "validationErrors": [
                            "failed to get resource modifiers configmap "
                            f"{self.namespace}/{modifier['name']}"
                        ],
                    },
                )
                return
            try:
                import yaml

                documents = [yaml.safe_load(v) for v in (config.get("data") or {}).values()]
                rules = [r for d in documents for r in (d or {}).get("resourceModifierRules") or []]
            except Exception as exc:  # noqa: BLE001 - any bad YAML is a validation error upstream
                self._status(
                    "restores",
                    restore,
                    {
                        "phase": "FailedValidation",
                        "validationErrors": [
                            f"Error in parsing resource modifiers provided in configmap: {exc}"
                        ],
                    },
                )
                return
        self._status("restores", restore, {"phase": "InProgress", "startTimestamp": stamp(moment)})
        location = locations.get(
            (backup["metadata"].get("labels") or {}).get(LOCATION_LABEL) or ""
        ) or self._default_location(locations)
        try:
            if location is None:
                raise S3Error("backup storage location not found")
            client, storage = self._s3(location)
            name = backup["metadata"]["name"]
            body = self._s3_call(
                client.get_object,
                Bucket=storage.get("bucket"),
                Key=self._key(storage, "backups", name, f"{name}.tar.gz"),
            )["Body"].read()
            items = _read_tarball(body)
        except (S3Error, tarfile.TarError, OSError) as exc:
            self._status(
                "restores",
                restore,
                {
                    "phase": "Failed",
                    "failureReason": f"error downloading backup: {exc}",
                    "completionTimestamp": stamp(self.now()),
                },
            )
            return
        result_errors: dict[str, list[str]] = {}
        result_warnings: dict[str, list[str]] = {}
        restored = 0
        total = 0
        mapping = spec.get("namespaceMapping") or {}
        inc_ns = spec.get("includedNamespaces") or ["*"]
        exc_ns = spec.get("excludedNamespaces") or []
        for gr, namespace, obj in _ordered(items):
            if gr in NON_RESTORABLE or not _matches(
                gr, spec.get("includedResources") or [], spec.get("excludedResources") or []
            ):
                continue
            source_ns = (
                namespace if namespace else (obj["metadata"]["name"] if gr == "namespaces" else "")
            )
            if source_ns and not _matches_ns(source_ns, inc_ns, exc_ns):
                continue
            meta = obj.get("metadata") or {}
            if any(ref.get("controller") for ref in meta.get("ownerReferences") or []):
                continue
            if not namespace and gr != "namespaces" and not spec.get("includeClusterResources"):
                continue
            total += 1
            target_ns = mapping.get(namespace, namespace) if namespace else ""
            if target_ns and self.client.get("", "v1", "namespaces", None, target_ns) is None:
                # upstream: EnsureNamespaceExistsAndIsReady before the first item of it
                self.client.create("", "v1", "namespaces", None, {"metadata": {"name": target_ns}})
            bucket_key = target_ns or "cluster"
            try:
                outcome = self._restore_item(gr, obj, namespace, target_ns, mapping, rules)
            except Exception as exc:  # noqa: BLE001 - any item failure is a restore error
                result_errors.setdefault(bucket_key, []).append(
                    f"error restoring {gr}/{target_ns}/{meta.get('name')}: {exc}"
                )
                continue
            if outcome:
                result_warnings.setdefault(bucket_key, []).append(outcome)
            else:
                restored += 1
        error_count = sum(len(v) for v in result_errors.values())
        warning_count = sum(len(v) for v in result_warnings.values())
        try:
            results = {
                "errors": {"namespaces": result_errors},
                "warnings": {"namespaces": result_warnings},
            }
            rname = restore["metadata"]["name"]
            self._s3_call(
                client.put_object,
                Bucket=storage.get("bucket"),
                Key=self._key(storage, "restores", rname, f"restore-{rname}-results.gz"),
                Body=gzip.compress(json.dumps(results).encode()),
            )
        except S3Error:
            warning_count += 1
        done = {
            "phase": "PartiallyFailed" if error_count else "Completed",
            "completionTimestamp": stamp(self.now()),
            "progress": {"totalItems": total, "itemsRestored": restored},
        }
        if error_count:
            done["errors"] = error_count
        if warning_count:
            done["warnings"] = warning_count
        self._status("restores", restore, done)

    def _restore_item(self, gr, obj, namespace, target_ns, mapping, rules) -> str | None:
        """Create one object; a warning string when it was left alone, None when created."""
        meta = obj.get("metadata") or {}
        if (meta.get("annotations") or {}).get(RESTORE_FAIL) == "true":
            raise RuntimeError("injected restore failure")
        resource_type = next(
            (t for t in self.cluster.types.values() if group_resource(t) == gr and not t.virtual),
            None,
        )
        if resource_type is None:
            raise RuntimeError(f"the cluster does not serve {gr}")
        name = meta.get("name")
        if gr == "namespaces":
            name = mapping.get(name, name)
        clean = {k: v for k, v in obj.items() if k not in ("status",)}
        clean["metadata"] = {
            k: v
            for k, v in {
                "name": name,
                "namespace": target_ns or None,
                "labels": dict(meta.get("labels") or {}, **{"velero.io/restore-name": "restored"}),
                "annotations": meta.get("annotations"),
            }.items()
            if v
        }
        if gr == "services":
            clean.get("spec", {}).pop("clusterIP", None)
            clean.get("spec", {}).pop("clusterIPs", None)
        if gr == "pods":
            clean.get("spec", {}).pop("nodeName", None)
        for rule in rules:
            clean = _apply_rule(
                rule, gr, target_ns or namespace, clean, self.cluster.schema_node(resource_type)
            )
        existing = self.client.get(
            resource_type.group,
            resource_type.version,
            resource_type.plural,
            target_ns or None,
            name,
        )
        if existing is not None:
            return (
                f'could not restore, {resource_type.kind} "{name}" already exists. Warning: '
                "the in-cluster version is different than the backed-up version."
            )
        created = self.client.create(
            resource_type.group,
            resource_type.version,
            resource_type.plural,
            target_ns or None,
            clean,
        )
        if created is None:
            return f"could not restore {gr} {name}: already exists"
        return None


def _matches_ns(namespace, included, excluded) -> bool:
    if namespace in excluded:
        return False
    return "*" in included or namespace in included


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _read_tarball(body: bytes):
    """(group resource, namespace, object) of every resources/ entry of a backup tarball."""
    items = []
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if not member.isfile() or parts[0] != "resources" or len(parts) < 4:
                continue
            gr = parts[1]
            namespace = parts[3] if parts[2] == "namespaces" and len(parts) == 5 else ""
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            items.append((gr, namespace, json.loads(data)))
    return items


def _ordered(items):
    def rank(item):
        gr = item[0]
        return (
            PRIORITIES.index(gr) if gr in PRIORITIES else len(PRIORITIES),
            gr,
            item[1],
            item[2]["metadata"]["name"],
        )

    return sorted(items, key=rank)


def _apply_rule(rule, gr, namespace, obj, node):
    conditions = rule.get("conditions") or {}
    wanted = conditions.get("groupResource")
    if wanted and wanted != "*" and wanted not in (gr, gr.split(".")[0]):
        return obj
    regex = conditions.get("resourceNameRegex")
    if regex and not re.search(regex, obj["metadata"]["name"]):
        return obj
    namespaces = conditions.get("namespaces")
    if namespaces and namespace not in namespaces:
        return obj
    labels = ((conditions.get("labelSelector") or {}).get("matchLabels")) or {}
    if any((obj["metadata"].get("labels") or {}).get(k) != v for k, v in labels.items()):
        return obj
    operations = []
    for patch in rule.get("patches") or []:
        operation = dict(patch, op=patch.get("operation") or patch.get("op"))
        operation.pop("operation", None)
        if isinstance(operation.get("value"), str):
            try:
                operation["value"] = json.loads(operation["value"])
            except ValueError:
                pass
        operations.append(operation)
    if operations:
        obj = json_patch(obj, operations)
    for patch in rule.get("mergePatches") or []:
        obj = json_merge_patch(obj, _patch_data(patch.get("patchData") or "{}"))
    for patch in rule.get("strategicPatches") or []:
        obj = strategic_merge_patch(obj, _patch_data(patch.get("patchData") or "{}"), node)
    return obj


@functools.lru_cache(maxsize=256)
def _parsed_patch(text: str) -> str:
    import yaml

    return json.dumps(yaml.safe_load(text))


def _patch_data(text: str) -> Any:
    """A rule's patchData (YAML or JSON), parsed once per text as upstream unmarshals the
    modifiers once per restore; a fresh copy for each object."""
    return json.loads(_parsed_patch(text))
