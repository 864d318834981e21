"""The stand-in Velero server: real backup tarballs in S3 (moto), schedules on a controllable
clock, restores with namespaceMapping and resource modifiers, storage-location validation,
expiry, and the faults the collection must report (missing bucket, wrong credentials, a
partially failed backup, a schedule outside Velero's namespace, a restore failing half-way).
One stand-in (controllers: velero) and one moto server for the whole module."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
import uuid

import velero_env
from conftest import wait_for
from velero_env import GROUP, NS, VERSION

# The module's fixtures (one moto and one stand-in for the module).
s3_endpoint, s3, velero_server = velero_env.s3_endpoint, velero_env.s3, velero_env.velero_server
api, core, custom = velero_env.api, velero_env.core, velero_env.custom


def create(custom, plural, body, namespace=NS):
    body = dict(body, apiVersion=f"{GROUP}/{VERSION}")
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def get(custom, plural, name, namespace=NS):
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


def phase_of(custom, plural, name, phases, namespace=NS, timeout=15):
    def done():
        obj = get(custom, plural, name, namespace)
        return obj if (obj.get("status") or {}).get("phase") in phases else None

    return wait_for(done, timeout=timeout)


def bucket(s3):
    name = f"b-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def location(custom, s3_bucket, name=None, credential=None, default=False, prefix="cluster"):
    name = name or f"bsl-{uuid.uuid4().hex[:6]}"
    spec = {
        "provider": "aws",
        "objectStorage": {"bucket": s3_bucket, "prefix": prefix},
        "config": {"region": "us-east-1", "s3ForcePathStyle": "true"},
        "default": default,
    }
    if credential:
        spec["credential"] = credential
    create(custom, "backupstoragelocations", {"metadata": {"name": name}, "spec": spec})
    return name


def workload_namespace(core, apps_objects=1):
    from kubernetes import client

    name = f"prod-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "settings"}, "data": {"a": "1"}})
    apps = client.AppsV1Api(core.api_client)
    for index in range(apps_objects):
        apps.create_namespaced_deployment(
            name,
            {
                "metadata": {"name": f"trainer-{index}", "labels": {"app": "trainer"}},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "trainer"}},
                    "template": {
                        "metadata": {"labels": {"app": "trainer"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "trainer:1",
                                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                                }
                            ]
                        },
                    },
                },
            },
        )
    return name


def test_backup_uploads_velero_tarball_layout(custom, core, s3):
    b = bucket(s3)
    bsl = location(custom, b)
    phase_of(custom, "backupstoragelocations", bsl, ("Available",))
    ns = workload_namespace(core)
    name = f"bk-{uuid.uuid4().hex[:6]}"
    create(
        custom,
        "backups",
        {
            "metadata": {"name": name},
            "spec": {"includedNamespaces": [ns], "storageLocation": bsl, "ttl": "24h0m0s"},
        },
    )
    backup = phase_of(
        custom, "backups", name, ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
    )
    status = backup["status"]
    assert status["phase"] == "Completed", status
    assert status["formatVersion"] == "1.1.0" and status["version"] == 1
    assert status["progress"] == {"totalItems": 3, "itemsBackedUp": 3}
    assert status["expiration"] > status["startTimestamp"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]}
    assert keys == {
        f"cluster/backups/{name}/{f}"
        for f in (
            f"{name}.tar.gz",
            f"{name}-logs.gz",
            f"{name}-resource-list.json.gz",
            "velero-backup.json",
        )
    }
    tarball = s3.get_object(Bucket=b, Key=f"cluster/backups/{name}/{name}.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        names = set(tar.getnames())
        assert tar.extractfile("metadata/version").read() == b"1.1.0"
        deployment = json.loads(
            tar.extractfile(f"resources/deployments.apps/namespaces/{ns}/trainer-0.json").read()
        )
    assert names == {
        "metadata/version",
        f"resources/configmaps/namespaces/{ns}/settings.json",
        f"resources/namespaces/cluster/{ns}.json",
        f"resources/deployments.apps/namespaces/{ns}/trainer-0.json",
    }
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 2
    listing = json.loads(
        gzip.decompress(
            s3.get_object(Bucket=b, Key=f"cluster/backups/{name}/{name}-resource-list.json.gz")[
                "Body"
            ].read()
        )
    )
    assert listing == {
        "apps/v1/Deployment": [f"{ns}/trainer-0"],
        "v1/ConfigMap": [f"{ns}/settings"],
        "v1/Namespace": [ns],
    }


def test_missing_bucket_and_wrong_credentials_make_the_location_unavailable(custom, core, s3):
    missing = location(custom, "no-such-bucket-here")
    status = phase_of(custom, "backupstoragelocations", missing, ("Available", "Unavailable"))[
        "status"
    ]
    assert status["phase"] == "Unavailable", status
    assert "404" in status["message"] or "NoSuchBucket" in status["message"], status
    assert status["lastValidationTime"]
    b = bucket(s3)
    core.create_namespaced_secret(
        NS,
        {
            "metadata": {"name": "bad-creds"},
            "data": {
                "cloud": base64.b64encode(
                    b"[default]\naws_access_key_id=AKIAWRONG\naws_secret_access_key=wrong\n"
                ).decode()
            },
        },
    )
    wrong = location(custom, b, credential={"name": "bad-creds", "key": "cloud"})
    status = phase_of(custom, "backupstoragelocations", wrong, ("Available", "Unavailable"))[
        "status"
    ]
    assert status["phase"] == "Unavailable", status
    assert "403" in status["message"] or "InvalidAccessKeyId" in status["message"], status
    # A backup to an unavailable location fails validation; nothing is written.
    name = f"bk-{uuid.uuid4().hex[:6]}"
    create(custom, "backups", {"metadata": {"name": name}, "spec": {"storageLocation": missing}})
    backup = phase_of(custom, "backups", name, ("FailedValidation", "Completed", "Failed"))
    assert backup["status"]["phase"] == "FailedValidation"
    assert "Unavailable" in backup["status"]["validationErrors"][0]


def test_partially_failed_backup(custom, core, s3):
    bsl = location(custom, bucket(s3))
    phase_of(custom, "backupstoragelocations", bsl, ("Available",))
    ns = workload_namespace(core)
    core.create_namespaced_config_map(
        ns,
        {
            "metadata": {
                "name": "broken",
                "annotations": {"gpuops.cluster/sandbox-backup-fail": "true"},
            }
        },
    )
    name = f"bk-{uuid.uuid4().hex[:6]}"
    create(
        custom,
        "backups",
        {"metadata": {"name": name}, "spec": {"includedNamespaces": [ns], "storageLocation": bsl}},
    )
    status = phase_of(custom, "backups", name, ("Completed", "PartiallyFailed"))["status"]
    assert status["phase"] == "PartiallyFailed" and status["errors"] == 1
    assert status["progress"] == {"totalItems": 4, "itemsBackedUp": 3}


def set_clock(core, moment):
    body = {"metadata": {"name": "gpuops-sandbox-clock"}, "data": {"now": moment}}
    try:
        core.replace_namespaced_config_map("gpuops-sandbox-clock", NS, body)
    except Exception:
        core.create_namespaced_config_map(NS, body)


def test_schedule_ticks_on_the_controllable_clock_and_expired_backups_go(custom, core, s3):
    b = bucket(s3)
    bsl = location(custom, b)
    phase_of(custom, "backupstoragelocations", bsl, ("Available",))
    ns = workload_namespace(core)
    set_clock(core, "2026-01-01T05:00:00Z")
    sched = f"s-{uuid.uuid4().hex[:6]}"
    create(
        custom,
        "schedules",
        {
            "metadata": {"name": sched},
            "spec": {
                "schedule": "0 */6 * * *",
                "template": {"includedNamespaces": [ns], "storageLocation": bsl, "ttl": "12h"},
            },
        },
    )
    schedule = phase_of(custom, "schedules", sched, ("Enabled", "FailedValidation"))
    assert schedule["status"]["phase"] == "Enabled"

    def backups():
        items = custom.list_namespaced_custom_object(
            GROUP, VERSION, NS, "backups", label_selector=f"velero.io/schedule-name={sched}"
        )["items"]
        return sorted(i["metadata"]["name"] for i in items)

    assert wait_for(lambda: backups() == [f"{sched}-20260101050000"])  # the first run is immediate
    set_clock(core, "2026-01-01T05:59:00Z")
    set_clock(core, "2026-01-01T06:00:30Z")
    assert wait_for(lambda: backups() == [f"{sched}-20260101050000", f"{sched}-20260101060030"])
    phase_of(custom, "backups", f"{sched}-20260101060030", ("Completed",))
    # 12 h ttl: at 17:30 the first has expired (05:00 + 12 h), the second not.
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, "schedules", sched, {"spec": {"paused": True}}
    )
    set_clock(core, "2026-01-01T17:30:00Z")
    assert wait_for(lambda: backups() == [f"{sched}-20260101060030"])
    keys = {o["Key"].split("/")[2] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])}
    assert keys == {f"{sched}-20260101060030"}
    core.delete_namespaced_config_map("gpuops-sandbox-clock", NS)


def test_bad_cron_fails_validation_and_wrong_namespace_stays_new(custom, core):
    bad = f"s-{uuid.uuid4().hex[:6]}"
    create(
        custom,
        "schedules",
        {"metadata": {"name": bad}, "spec": {"schedule": "0 0 */6 * * *", "template": {}}},
    )
    status = phase_of(custom, "schedules", bad, ("FailedValidation", "Enabled"))["status"]
    assert status["phase"] == "FailedValidation" and "5" in status["validationErrors"][0]
    elsewhere = f"s-{uuid.uuid4().hex[:6]}"
    create(
        custom,
        "schedules",
        {"metadata": {"name": elsewhere}, "spec": {"schedule": "@every 1m", "template": {}}},
        namespace="default",
    )
    # Another Velero object in its namespace gets processed meanwhile; this one never does.
    probe = f"s-{uuid.uuid4().hex[:6]}"
    create(
        custom,
        "schedules",
        {
            "metadata": {"name": probe},
            "spec": {"schedule": "@every 1h", "paused": True, "template": {}},
        },
    )
    phase_of(custom, "schedules", probe, ("Enabled",))
    assert "status" not in get(custom, "schedules", elsewhere, namespace="default")


def test_restore_into_scratch_namespace_with_modifiers_and_a_half_way_failure(custom, core, s3):
    from kubernetes import client

    bsl = location(custom, bucket(s3))
    phase_of(custom, "backupstoragelocations", bsl, ("Available",))
    ns = workload_namespace(core, apps_objects=3)
    core.create_namespaced_config_map(
        ns,
        {
            "metadata": {
                "name": "zz-breaks-restore",
                "annotations": {"gpuops.cluster/sandbox-restore-fail": "true"},
            }
        },
    )
    name = f"bk-{uuid.uuid4().hex[:6]}"
    create(
        custom,
        "backups",
        {"metadata": {"name": name}, "spec": {"includedNamespaces": [ns], "storageLocation": bsl}},
    )
    phase_of(custom, "backups", name, ("Completed",))
    rules = {
        "version": "v1",
        "resourceModifierRules": [
            {
                "conditions": {"groupResource": "deployments.apps"},
                "patches": [{"operation": "replace", "path": "/spec/replicas", "value": "0"}],
                "strategicPatches": [
                    {
                        "patchData": json.dumps(
                            {
                                "spec": {
                                    "template": {
                                        "spec": {
                                            "containers": [
                                                {
                                                    "name": "main",
                                                    "resources": {
                                                        "limits": {"nvidia.com/gpu": None}
                                                    },
                                                }
                                            ]
                                        }
                                    }
                                }
                            }
                        )
                    }
                ],
            }
        ],
    }
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": f"mod-{name}"}, "data": {"rules.yaml": json.dumps(rules)}}
    )
    scratch = f"drill-{uuid.uuid4().hex[:6]}"
    restore = f"rs-{uuid.uuid4().hex[:6]}"
    create(
        custom,
        "restores",
        {
            "metadata": {"name": restore},
            "spec": {
                "backupName": name,
                "namespaceMapping": {ns: scratch},
                "resourceModifier": {"kind": "ConfigMap", "name": f"mod-{name}"},
            },
        },
    )
    status = phase_of(
        custom, "restores", restore, ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
    )["status"]
    results = json.loads(
        gzip.decompress(
            s3.get_object(
                Bucket=get(custom, "backupstoragelocations", bsl)["spec"]["objectStorage"][
                    "bucket"
                ],
                Key=f"cluster/restores/{restore}/restore-{restore}-results.gz",
            )["Body"].read()
        )
    )
    assert status["phase"] == "PartiallyFailed", status
    assert status["errors"] == 1, results
    # the namespace (mapped), 3 deployments, settings; the annotated ConfigMap fails
    assert status["progress"] == {"totalItems": 6, "itemsRestored": 5}
    apps = client.AppsV1Api(core.api_client)
    restored = apps.list_namespaced_deployment(scratch).items
    assert sorted(d.metadata.name for d in restored) == ["trainer-0", "trainer-1", "trainer-2"]
    for deployment in restored:
        assert deployment.spec.replicas == 0
        assert "nvidia.com/gpu" not in (
            deployment.spec.template.spec.containers[0].resources.limits or {}
        )
    # Production untouched.
    for deployment in apps.list_namespaced_deployment(ns).items:
        assert deployment.spec.replicas == 2
        assert deployment.spec.template.spec.containers[0].resources.limits == {
            "nvidia.com/gpu": "1"
        }
    results = json.loads(
        gzip.decompress(
            s3.get_object(
                Bucket=get(custom, "backupstoragelocations", bsl)["spec"]["objectStorage"][
                    "bucket"
                ],
                Key=f"cluster/restores/{restore}/restore-{restore}-results.gz",
            )["Body"].read()
        )
    )
    assert "zz-breaks-restore" in results["errors"]["namespaces"][scratch][0]


def test_restore_of_unknown_backup_fails_validation(custom):
    restore = f"rs-{uuid.uuid4().hex[:6]}"
    create(custom, "restores", {"metadata": {"name": restore}, "spec": {"backupName": "nope"}})
    status = phase_of(custom, "restores", restore, ("FailedValidation",))["status"]
    assert "not found" in status["validationErrors"][0]
