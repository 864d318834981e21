"""Velero's DownloadRequest (velero.io/v1), as the stand-in Velero server answers it.

Upstream (pkg/controller/download_request_controller.go and pkg/persistence): a request whose
phase is empty or `New` gets `status.expiration` = now + 10 minutes (DownloadURLTTL); the
backup is found in the request's namespace (for `RestoreLog` / `RestoreResults` through the
Restore's `spec.backupName`), its storage location read, and the object store asked for a
pre-signed GET URL of the target's key in the backup layout; then `phase: Processed`,
`downloadURL`, and the expiration pushed to now + 10 minutes again. A missing backup or
location, or a target kind the store has no key for, leaves the request unprocessed
(upstream requeues with the error) until it expires. Any request past its expiration is
deleted, whatever its phase. Presigning does not check that the object exists: a URL for a
file the backup never wrote answers 404 when fetched (the CLI's "not found").

The CRD: `velero install` and the Helm chart install downloadrequests.velero.io with the
other Velero CRDs. The sandbox's data/crds mirror the upstream files in ../shared/crds, which
do not carry this one, so the stand-in Velero server installs it itself on its first pass
when the cluster does not serve the kind (schema below, written for the sandbox from
upstream's field list).
"""

from __future__ import annotations

import datetime
from typing import Any

GROUP, VERSION, PLURAL = "velero.io", "v1", "downloadrequests"
DOWNLOAD_URL_TTL = datetime.timedelta(minutes=10)

# Target kind -> (folder, file name pattern of the target's name), as upstream's object store
# layout (pkg/persistence/object_store_layout.go) names them.
TARGET_KEYS = {
    "BackupContents": ("backups", "{n}.tar.gz"),
    "BackupLog": ("backups", "{n}-logs.gz"),
    "BackupVolumeSnapshots": ("backups", "{n}-volumesnapshots.json.gz"),
    "BackupItemOperations": ("backups", "{n}-itemoperations.json.gz"),
    "BackupResourceList": ("backups", "{n}-resource-list.json.gz"),
    "BackupResults": ("backups", "{n}-results.gz"),
    "RestoreLog": ("restores", "restore-{n}-logs.gz"),
    "RestoreResults": ("restores", "restore-{n}-results.gz"),
    "RestoreResourceList": ("restores", "restore-{n}-resource-list.json.gz"),
    "RestoreItemOperations": ("restores", "restore-{n}-itemoperations.json.gz"),
    "CSIBackupVolumeSnapshots": ("backups", "{n}-csi-volumesnapshots.json.gz"),
    "CSIBackupVolumeSnapshotContents": ("backups", "{n}-csi-volumesnapshotcontents.json.gz"),
    "BackupVolumeInfos": ("backups", "{n}-volumeinfo.json.gz"),
    "RestoreVolumeInfo": ("restores", "{n}-volumeinfo.json.gz"),
}
RESTORE_TARGETS = ("RestoreLog", "RestoreResults")

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": f"{PLURAL}.{GROUP}",
        "annotations": {"gpuops.cluster/schema-source": "sandbox"},
    },
    "spec": {
        "group": GROUP,
        "names": {
            "kind": "DownloadRequest",
            "listKind": "DownloadRequestList",
            "plural": PLURAL,
            "singular": "downloadrequest",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "required": ["target"],
                                "properties": {
                                    "target": {
                                        "type": "object",
                                        "required": ["kind", "name"],
                                        "properties": {
                                            "kind": {"type": "string", "enum": list(TARGET_KEYS)},
                                            "name": {"type": "string"},
                                        },
                                    }
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "downloadURL": {"type": "string"},
                                    "expiration": {
                                        "type": "string",
                                        "format": "date-time",
                                        "nullable": True,
                                    },
                                    "phase": {"type": "string", "enum": ["New", "Processed"]},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


def target_key(kind: str, name: str) -> tuple[str, str, str] | None:
    """(folder, name, file) of a target in the backup layout (`backups/<n>/<n>.tar.gz`);
    None for a kind without a key."""
    entry = TARGET_KEYS.get(kind)
    if entry is None or not name:
        return None
    folder, pattern = entry
    return folder, name, pattern.format(n=name)


def ensure_crd(velero) -> None:
    """Install the DownloadRequest CRD when the cluster does not serve the kind."""
    if velero.client.rtype(GROUP, VERSION, PLURAL) is None:
        velero.client.create("apiextensions.k8s.io", "v1", "customresourcedefinitions", None, CRD)


def reconcile(velero, locations: dict[str, dict[str, Any]], moment: datetime.datetime) -> None:
    """One pass over the DownloadRequests in Velero's namespace (`velero` is the controller)."""
    from .velero import S3Error, parse, stamp

    for request in velero.client.list(GROUP, VERSION, PLURAL, velero.namespace):
        name = request["metadata"]["name"]
        status = request.get("status") or {}
        expiration = parse(status.get("expiration"))
        if expiration is not None and expiration <= moment:
            velero.client.delete(GROUP, VERSION, PLURAL, velero.namespace, name)
            continue
        if (status.get("phase") or "New") != "New":
            velero._want_wake(
                min((expiration - moment).total_seconds(), 60.0) if expiration else 60.0
            )
            continue
        update: dict[str, Any] = {"expiration": stamp(moment + DOWNLOAD_URL_TTL)}
        target = (request.get("spec") or {}).get("target") or {}
        url = None
        try:
            url = _signed_url(velero, target, locations)
        except (LookupError, S3Error):
            url = None  # upstream: requeued with the error, the request stays unprocessed
        if url is not None:
            update.update(phase="Processed", downloadURL=url)
        if any(status.get(k) != v for k, v in update.items()):
            velero._status(PLURAL, request, update)
        velero._want_wake(60.0 if url is not None else 1.0)


def _signed_url(velero, target, locations) -> str | None:
    from .velero import LOCATION_LABEL

    kind, target_name = target.get("kind") or "", target.get("name") or ""
    backup_name = target_name
    if kind in RESTORE_TARGETS:
        restore = velero.client.get(GROUP, VERSION, "restores", velero.namespace, target_name)
        if restore is None:
            raise LookupError(f'restores.velero.io "{target_name}" not found')
        backup_name = (restore.get("spec") or {}).get("backupName") or ""
    backup = velero.client.get(GROUP, VERSION, "backups", velero.namespace, backup_name)
    if backup is None:
        raise LookupError(f'backups.velero.io "{backup_name}" not found')
    location_name = (backup.get("spec") or {}).get("storageLocation") or (
        (backup["metadata"].get("labels") or {}).get(LOCATION_LABEL)
    )
    location = (
        locations.get(location_name) if location_name else velero._default_location(locations)
    )
    if location is None:
        raise LookupError(f"backup storage location {location_name!r} not found")
    key = target_key(kind, target_name)
    if key is None:
        raise LookupError(f"unsupported download target kind {kind!r}")
    client, storage = velero._s3(location)
    return client.generate_presigned_url(
        "get_object",
        Params={"Bucket": storage.get("bucket"), "Key": velero._key(storage, *key)},
        ExpiresIn=int(DOWNLOAD_URL_TTL.total_seconds()),
    )
