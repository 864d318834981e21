"""velero_schedule against the stand-in running the velero controller (real backups in moto's
S3): server-side apply, dry-run check mode, redacted diff, changed only on change, state
absent, and verify mode's verdicts from real Backups."""

from __future__ import annotations

import datetime
import sys
import uuid

import pytest

import velero_env
from conftest import REPO_ROOT, run_playbook, wait_for
from velero_env import NS

COLLECTIONS = REPO_ROOT / "build" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

kube_mod = pytest.importorskip(
    "ansible_collections.gpuops.cluster.plugins.module_utils.velero.kube"
)
spec_mod = pytest.importorskip(
    "ansible_collections.gpuops.cluster.plugins.module_utils.velero.spec"
)

s3_endpoint, s3, velero_server = velero_env.s3_endpoint, velero_env.s3, velero_env.velero_server
api, core, custom = velero_env.api, velero_env.core, velero_env.custom


@pytest.fixture(scope="module")
def dynamic(api, tmp_path_factory):
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(api)


def options(bucket, **extra):
    name = extra.pop("name", f"s-{uuid.uuid4().hex[:6]}")
    base = {
        "backup_storage_location": {
            "name": extra.pop("bsl", "default"),
            "provider": "aws",
            "bucket": bucket,
            "prefix": "cluster",
            "region": "us-east-1",
            "s3_force_path_style": True,
            "default": True,
            "ca_cert": "-----BEGIN CERTIFICATE-----\nMIIBcafe\n-----END CERTIFICATE-----\n",
        },
        "schedules": [
            {
                "name": name,
                "schedule": "0 */6 * * *",
                "ttl": "720h",
                "rpo": "12h",
                "included_namespaces": [extra.pop("ns", "default")],
            }
        ],
    }
    base.update(extra)
    return base


def run(dynamic, params, check_mode=False):
    normalized, _warnings = spec_mod.validate(params)
    kube = kube_mod.VeleroKube(dynamic, check_mode=check_mode)
    if normalized["mode"] == "verify":
        return kube_mod.verify_all(kube, normalized)
    return kube_mod.apply_all(kube, normalized)


def bucket(s3):
    name = f"b-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def test_apply_is_idempotent_check_mode_changes_nothing_diff_is_redacted(dynamic, custom, s3):
    params = options(bucket(s3), bsl=f"l-{uuid.uuid4().hex[:6]}")
    params["backup_storage_location"]["default"] = False
    name = params["schedules"][0]["name"]
    predicted = run(dynamic, params, check_mode=True)
    assert predicted["changed"] and [o["action"] for o in predicted["objects"]] == [
        "create",
        "create",
    ]
    assert run(dynamic, {**params, "mode": "verify"})[0]["verdict"] == "failed"  # nothing stored
    first = run(dynamic, params)
    assert first["changed"]
    assert "MIIBcafe" not in str(first["diff"]) and "TUlJQmNhZmU" not in str(first["diff"])
    again = run(dynamic, params)
    assert not again["changed"] and again["diff"]["after"]["objects"] == []
    paused = {**params, "schedules": [dict(params["schedules"][0], paused=True)]}
    predicted = run(dynamic, paused, check_mode=True)
    assert [o["action"] for o in predicted["objects"]] == ["none", "update"]
    stored = custom.get_namespaced_custom_object("velero.io", "v1", NS, "schedules", name)
    assert stored["spec"]["paused"] is False
    assert stored["metadata"]["annotations"]["gpuops.cluster/rpo"] == "12h0m0s"
    assert run(dynamic, paused)["changed"]
    stored = custom.get_namespaced_custom_object("velero.io", "v1", NS, "schedules", name)
    assert stored["spec"]["paused"] is True
    absent = {"state": "absent", "schedules": [{"name": name}]}
    assert run(dynamic, absent, check_mode=True)["changed"]
    assert custom.get_namespaced_custom_object("velero.io", "v1", NS, "schedules", name)
    assert run(dynamic, absent)["changed"]
    assert not run(dynamic, absent)["changed"]


def test_verify_judges_real_backups(dynamic, s3):
    bsl = f"l-{uuid.uuid4().hex[:6]}"
    params = options(bucket(s3), bsl=bsl)
    params["backup_storage_location"]["default"] = False
    params["schedules"][0]["storage_location"] = bsl
    name = params["schedules"][0]["name"]
    run(dynamic, params)
    verify = {"mode": "verify", "schedules": [{"name": name}]}

    def judged():
        verdicts = run(dynamic, verify)
        return verdicts[0] if verdicts[0]["last_successful_backup"] else None

    verdict = wait_for(judged, timeout=20)
    assert verdict["verdict"] == "ok", verdict["reasons"]
    assert verdict["rpo_seconds"] == 12 * 3600 and verdict["within_rpo"]
    assert verdict["storage_location"]["phase"] == "Available"
    # 13 hours later with no new run: the RPO read from the annotation is breached.
    normalized, _w = spec_mod.validate(verify)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=13)
    breached = kube_mod.verify_all(kube_mod.VeleroKube(dynamic), normalized, now=later)[0]
    assert breached["verdict"] == "breach" and not breached["within_rpo"]
    # The bucket goes away: the location turns Unavailable and the verdict fails.
    missing = {
        **params,
        "backup_storage_location": dict(params["backup_storage_location"], bucket="gone-bucket-x"),
    }
    run(dynamic, missing)

    def unavailable():
        verdict = run(dynamic, verify)[0]
        return verdict if verdict["storage_location"]["phase"] == "Unavailable" else None

    verdict = wait_for(unavailable, timeout=20)
    assert verdict["verdict"] == "failed"


def test_module_through_ansible(velero_server, core, s3):
    ns = f"w-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    run_playbook(
        velero_server,
        "velero_schedule.yml",
        bsl_name=f"l-{uuid.uuid4().hex[:6]}",
        bucket=bucket(s3),
        schedule_name=f"s-{uuid.uuid4().hex[:6]}",
        workload_ns=ns,
    )
