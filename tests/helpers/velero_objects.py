"""Velero's objects (velero.io/v1) as the Velero tests and the DR drill benchmark create them in
the Kubernetes API stand-in: a BackupStorageLocation on an S3 bucket in us-east-1, a Backup of
namespaces labelled as a Schedule's, and the GPU Deployment such a backup carries. Plain dicts,
no test framework: benchmarks/dr_drill.py imports this module too (for the unit tier,
tests/unit/kube_api/conftest.py puts tests/helpers on sys.path)."""

from __future__ import annotations

GROUP, VERSION = "velero.io", "v1"


def storage_location(name: str, bucket: str, *, prefix: str | None = None, default: bool = False) -> dict:
    """A BackupStorageLocation `name` (provider aws) on `bucket` (under `prefix`), the default
    location when `default`."""
    object_storage = {"bucket": bucket}
    if prefix is not None:
        object_storage["prefix"] = prefix
    spec = {"provider": "aws", "objectStorage": object_storage, "config": {"region": "us-east-1"}}
    if default:
        spec["default"] = True
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BackupStorageLocation",
        "metadata": {"name": name},
        "spec": spec,
    }


def backup(name: str, namespaces: list[str], schedule: str, storage_location: str | None = None) -> dict:
    """A Backup `name` of `namespaces`, labelled as made by Schedule `schedule`
    (velero.io/schedule-name), to `storage_location` (else the default location)."""
    spec = {"includedNamespaces": list(namespaces)}
    if storage_location is not None:
        spec["storageLocation"] = storage_location
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Backup",
        "metadata": {"name": name, "labels": {"velero.io/schedule-name": schedule}},
        "spec": spec,
    }


def gpu_deployment(name: str, app: str, image: str, gpus: int, replicas: int = 1) -> dict:
    """A Deployment `name` of `replicas` pods labelled app=`app`, each one container `main` of
    `image` with a limit of `gpus` nvidia.com/gpu."""
    labels = {"app": app}
    container = {"name": "main", "image": image, "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
