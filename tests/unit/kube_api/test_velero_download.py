"""Velero's DownloadRequest in the stand-in (pre-signed URLs of a backup's files, expiry) and
the drill's comparison with the backup's own contents, run in-process (velero_drill's
module_utils against the stand-in): the resource list, the tarball when the list is missing,
and the source namespaces when DownloadRequest is not served."""

from __future__ import annotations

import datetime
import gzip
import io
import json
import sys
import tarfile
import urllib.error
import urllib.request
import uuid

import pytest

import velero_env
import velero_objects
from conftest import REPO_ROOT, wait_for
from velero_env import GROUP, NS, VERSION

COLLECTIONS = REPO_ROOT / "build" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

drill_kube = pytest.importorskip(
    "ansible_collections.gpuops.cluster.plugins.module_utils.velero.drill_kube"
)

s3_endpoint, s3, velero_server = velero_env.s3_endpoint, velero_env.s3, velero_env.velero_server
api, core, custom = velero_env.api, velero_env.core, velero_env.custom


@pytest.fixture(scope="module")
def dynamic(api):
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(api)


@pytest.fixture(scope="module")
def backed_up(custom, core, s3):
    """A namespace with two ConfigMaps and a GPU Deployment, backed up to its own bucket."""
    from kubernetes import client

    ns = f"src-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    for name in ("a", "b"):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name}, "data": {"k": name}})
    trainer = velero_objects.gpu_deployment("trainer", app="t", image="t:1", gpus=1)
    client.AppsV1Api(core.api_client).create_namespaced_deployment(ns, trainer)
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    bsl = f"l-{uuid.uuid4().hex[:6]}"
    location = velero_objects.storage_location(bsl, bucket, prefix="pfx")
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, "backupstoragelocations", location)
    wait_for(lambda: status("backupstoragelocations", bsl).get("phase") == "Available", 20)
    name = f"bk-{uuid.uuid4().hex[:6]}"
    backup = velero_objects.backup(name, [ns], f"s-{ns}", bsl)
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, "backups", backup)
    wait_for(lambda: status("backups", name).get("phase") == "Completed", 20)
    return {"ns": ns, "bucket": bucket, "backup": name}


_custom = []


@pytest.fixture(scope="module", autouse=True)
def _keep_custom(custom):
    _custom.append(custom)


def status(plural, name):
    obj = _custom[0].get_namespaced_custom_object(GROUP, VERSION, NS, plural, name)
    return obj.get("status") or {}


def download_request(custom, kind, target):
    name = f"dr-{uuid.uuid4().hex[:6]}"
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        NS,
        "downloadrequests",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DownloadRequest",
            "metadata": {"name": name},
            "spec": {"target": {"kind": kind, "name": target}},
        },
    )
    return name


def fetch(url):
    with velero_env.presigned_urls_readable():
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - moto on 127.0.0.1
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""


def test_download_request_answers_with_signed_urls_of_the_backup_files(custom, backed_up):
    backup, ns = backed_up["backup"], backed_up["ns"]
    listing = download_request(custom, "BackupResourceList", backup)
    answered = wait_for(
        lambda: (
            status("downloadrequests", listing).get("downloadURL")
            and status("downloadrequests", listing)
        ),
        15,
    )
    assert answered["phase"] == "Processed"
    expires = datetime.datetime.fromisoformat(answered["expiration"].replace("Z", "+00:00"))
    left = (expires - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    assert 540 < left <= 601  # DownloadURLTTL: 10 minutes
    url = answered["downloadURL"]
    assert f"/pfx/backups/{backup}/{backup}-resource-list.json.gz" in url and "Signature" in url
    code, data = fetch(url)
    assert code == 200
    resources = json.loads(gzip.decompress(data))
    assert {f"{ns}/a", f"{ns}/b"} <= set(resources["v1/ConfigMap"])
    assert resources["apps/v1/Deployment"] == [f"{ns}/trainer"]

    contents = download_request(custom, "BackupContents", backup)
    url = wait_for(lambda: status("downloadrequests", contents).get("downloadURL"), 15)
    code, data = fetch(url)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
    assert f"resources/deployments.apps/namespaces/{ns}/trainer.json" in names

    # A file the backup never wrote: the URL is signed all the same, fetching it is a 404.
    snapshots = download_request(custom, "BackupVolumeSnapshots", backup)
    url = wait_for(lambda: status("downloadrequests", snapshots).get("downloadURL"), 15)
    assert fetch(url)[0] == 404


def test_download_request_for_a_missing_backup_stays_unprocessed_then_expires(
    custom, core, backed_up
):
    from kubernetes.client.exceptions import ApiException

    missing = download_request(custom, "BackupLog", "no-such-backup")
    wait_for(lambda: status("downloadrequests", missing).get("expiration"), 15)
    assert status("downloadrequests", missing).get("phase") in (None, "New")
    assert not status("downloadrequests", missing).get("downloadURL")
    with pytest.raises(ApiException) as bad:  # the CRD's enum of target kinds
        download_request(custom, "Everything", backed_up["backup"])
    assert bad.value.status == 422
    # Past its expiration (the stand-in's clock moved 11 minutes on), a request is deleted.
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=11)
    core.create_namespaced_config_map(
        NS,
        {
            "metadata": {"name": "gpuops-sandbox-clock"},
            "data": {"now": later.strftime("%Y-%m-%dT%H:%M:%SZ")},
        },
    )
    try:
        wait_for(
            lambda: (
                missing
                not in [
                    i["metadata"]["name"]
                    for i in custom.list_namespaced_custom_object(
                        GROUP, VERSION, NS, "downloadrequests"
                    )["items"]
                ]
            ),
            15,
        )
    finally:
        core.delete_namespaced_config_map("gpuops-sandbox-clock", NS)


def params(backed_up, **extra):
    return dict(
        {
            "backup": backed_up["backup"],
            "schedule": None,
            "namespaces": [backed_up["ns"]],
            "scratch_prefix": f"d{uuid.uuid4().hex[:4]}-",
            "velero_namespace": NS,
            "drill_id": uuid.uuid4().hex[:8],
            "compare_kinds": ["Deployment", "ConfigMap"],
            "smoke_checks": [{"kind": "ConfigMap", "namespace": backed_up["ns"], "min_count": 2}],
            "restore_timeout": 60,
            "download_timeout": 10,
            "cleanup_timeout": 60,
            "check_mode": False,
            "now": datetime.datetime.now(datetime.timezone.utc),
        },
        **extra,
    )


class NoDownloadRequests(drill_kube.DrillKube):
    def served(self, api_version, kind):
        return kind != "DownloadRequest" and super().served(api_version, kind)


def test_drill_compares_with_the_resource_list_else_the_tarball_else_the_source(
    dynamic, s3, backed_up
):
    with velero_env.presigned_urls_readable():
        result = drill_kube.execute(drill_kube.DrillKube(dynamic, fetch=fetch), params(backed_up))
    assert result["failed_step"] is None, result
    assert result["contents_source"] == "BackupResourceList"
    assert result["restored_counts"] == {"Deployment": 1, "ConfigMap": 2}
    assert [s["name"] for s in result["steps"]][-1] == "cleanup" and result[
        "production_untouched"
    ] is True

    # An older backup without its resource list: the tarball is read instead.
    backup = backed_up["backup"]
    s3.delete_object(
        Bucket=backed_up["bucket"], Key=f"pfx/backups/{backup}/{backup}-resource-list.json.gz"
    )
    result = drill_kube.execute(drill_kube.DrillKube(dynamic, fetch=fetch), params(backed_up))
    assert result["failed_step"] is None and result["contents_source"] == "BackupContents", result

    # A Velero without DownloadRequest: the source namespaces, and the reason in the result.
    result = drill_kube.execute(NoDownloadRequests(dynamic, fetch=fetch), params(backed_up))
    assert result["failed_step"] is None and result["contents_source"] == "source namespaces", (
        result
    )
    assert result["contents_warning"] == "DownloadRequest not served"


def test_drill_stops_at_preflight_when_a_scratch_namespace_exists(dynamic, core, custom, backed_up):
    options = params(backed_up)
    scratch = options["scratch_prefix"] + backed_up["ns"]
    core.create_namespace({"metadata": {"name": scratch}})
    result = drill_kube.execute(drill_kube.DrillKube(dynamic, fetch=fetch), options)
    assert result["failed_step"] == "preflight" and scratch in result["failure"], result
    assert [s["name"] for s in result["steps"]] == ["pick-backup", "preflight"]
    restores = custom.list_namespaced_custom_object(GROUP, VERSION, NS, "restores")["items"]
    assert f"dr-drill-{options['drill_id']}" not in [r["metadata"]["name"] for r in restores]
    assert core.read_namespace(scratch).metadata.name == scratch  # left as it was found
