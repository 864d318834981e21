"""The backups role and playbooks/dr_drill.yml against the stand-in running the velero
controller (real backups in moto's S3): bad inputs rejected with nothing written, the role's
apply + verification, a dry-run drill, an executed drill (restore into scratch namespaces,
replicas 0 and no GPUs, report within RTO/RPO, scratch cleaned, production untouched) and a
drill whose restore fails half-way (stops there, production untouched)."""

from __future__ import annotations

import json
import uuid

import velero_env
import velero_objects
from conftest import REPO_ROOT, ansible_playbook, run_playbook, wait_for
from velero_env import CREDS, GROUP, NS, VERSION

s3_endpoint, s3, velero_server = velero_env.s3_endpoint, velero_env.s3, velero_env.velero_server
api, core, custom = velero_env.api, velero_env.core, velero_env.custom
DRILL = REPO_ROOT / "playbooks" / "dr_drill.yml"


def drill(server, *args, **extra_vars):
    return ansible_playbook(server.kubeconfig, DRILL, *args, extra_vars=extra_vars)


def report(directory):
    found = sorted(directory.glob("*.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text()), found[0].with_suffix(".txt").read_text()


def production(core, with_restore_fault=False):
    from kubernetes import client

    ns = f"prod-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "settings"}, "data": {"a": "1"}})
    if with_restore_fault:
        core.create_namespaced_config_map(
            ns,
            {
                "metadata": {
                    "name": "zz-fails",
                    "annotations": {"gpuops.cluster/sandbox-restore-fail": "true"},
                }
            },
        )
    trainer = velero_objects.gpu_deployment(
        "trainer", app="trainer", image="trainer:1", gpus=2, replicas=2
    )
    client.AppsV1Api(core.api_client).create_namespaced_deployment(ns, trainer)
    return ns


def backup_of(custom, ns, bsl):
    name = f"bk-{uuid.uuid4().hex[:6]}"
    body = velero_objects.backup(name, [ns], f"sched-{ns}", bsl)
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, "backups", body)

    def done():
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, NS, "backups", name)
        return (obj.get("status") or {}).get("phase") in ("Completed", "PartiallyFailed", "Failed")

    wait_for(done, timeout=20)
    return name


def location(custom, s3):
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    name = f"l-{uuid.uuid4().hex[:6]}"
    body = velero_objects.storage_location(name, bucket)
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, "backupstoragelocations", body)
    wait_for(
        lambda: (
            (
                custom.get_namespaced_custom_object(
                    GROUP, VERSION, NS, "backupstoragelocations", name
                ).get("status")
                or {}
            ).get("phase")
            == "Available"
        ),
        timeout=20,
    )
    return name


# What the drills compare here (one lookup per kind and namespace).
KINDS = ["Deployment", "ConfigMap"]


def plan(ns):
    return {
        "sandbox": {
            "rto_minutes": 15,
            "rpo_minutes": 60,
            "schedule": f"sched-{ns}",
            "namespaces": [ns],
            "smoke_checks": [{"kind": "ConfigMap", "namespace": ns, "name": "settings"}],
        }
    }


def executed_drill(server, ns, report_dir):
    """The sandbox plan of `ns` drilled for real (dr_drill_execute), comparing KINDS."""
    return drill(
        server,
        dr_drill_plan="sandbox",
        dr_drill_plans=plan(ns),
        dr_drill_report_dir=str(report_dir),
        dr_drill_execute=True,
        dr_drill_compare_kinds=KINDS,
    )


def test_backups_role(velero_server, core, s3):
    ns = f"w-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    run_playbook(
        velero_server,
        "backups_role.yml",
        bsl_name=f"l-{uuid.uuid4().hex[:6]}",
        bucket=bucket,
        schedule_name=f"s-{uuid.uuid4().hex[:6]}",
        bad_name=f"bad-{uuid.uuid4().hex[:6]}",
        workload_ns=ns,
        access_key=CREDS["AWS_ACCESS_KEY_ID"],
        secret_key=CREDS["AWS_SECRET_ACCESS_KEY"],
    )


def test_drill_dry_run_then_executed(velero_server, core, custom, s3, tmp_path):
    from kubernetes import client

    ns = production(core)
    backup_of(custom, ns, location(custom, s3))
    dry = tmp_path / "dry"
    # --check wins over dr_drill_execute: a dry run all the same (the default is a dry run too).
    result = drill(
        velero_server,
        "--check",
        dr_drill_plan="sandbox",
        dr_drill_plans=plan(ns),
        dr_drill_report_dir=str(dry),
        dr_drill_execute=True,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    dry_report, _text = report(dry)
    assert dry_report["mode"] == "dry_run" and dry_report["within_rpo"] is True
    assert [s["name"] for s in dry_report["steps"]] == ["pick-backup", "preflight"]
    assert (
        custom.list_namespaced_custom_object(
            GROUP, VERSION, NS, "restores", label_selector="gpuops.cluster/dr-drill"
        )["items"]
        == []
    )
    done = tmp_path / "done"
    with velero_env.presigned_urls_readable():
        result = executed_drill(velero_server, ns, done)
    assert result.returncode == 0, result.stdout[-6000:]
    executed, text = report(done)
    assert executed["mode"] == "execute" and executed["failed_step"] is None, executed
    assert executed["within_rto"] is True and executed["within_rpo"] is True
    assert [s["name"] for s in executed["steps"]] == [
        "pick-backup",
        "preflight",
        "restore",
        "compare",
        "smoke-checks",
        "cleanup",
    ]
    assert all(s["status"] == "ok" for s in executed["steps"])
    assert executed["restored_counts"]["Deployment"] == 1 and executed["differences"] == []
    # compared with the backup's own resource list, fetched through a DownloadRequest
    assert executed["contents_source"] == "BackupResourceList", executed
    assert executed["production_untouched"] is True
    assert "RTO 15 min met" in text
    names = [n.metadata.name for n in core.list_namespace().items]
    assert f"drill-{ns}" not in names  # scratch cleaned
    deployment = client.AppsV1Api(core.api_client).read_namespaced_deployment("trainer", ns)
    assert deployment.spec.replicas == 2


def test_drill_restore_failing_half_way(velero_server, core, custom, s3, tmp_path):
    ns = production(core, with_restore_fault=True)
    backup_of(custom, ns, location(custom, s3))
    result = executed_drill(velero_server, ns, tmp_path)
    assert result.returncode != 0
    failed, text = report(tmp_path)
    assert failed["failed_step"] == "restore" and "PartiallyFailed" in failed["failure"], failed
    assert failed["within_rto"] is False
    assert failed["production_untouched"] is True
    assert "FAILED at restore" in text
    assert f"drill-{ns}" not in [n.metadata.name for n in core.list_namespace().items]


def bad_plan(**overrides):
    return {
        "sandbox": dict(
            {"rto_minutes": 1, "rpo_minutes": 1, "schedule": "s", "namespaces": ["a"]}, **overrides
        )
    }


def test_drill_bad_inputs(velero_server, tmp_path):
    cases = [
        ({"dr_drill_plan": "nope"}, "dr_drill_plan"),
        ({"dr_drill_plan": "sandbox", "dr_drill_plans": bad_plan(rto_minutes=-1)}, "rto_minutes"),
        (
            {"dr_drill_plan": "sandbox", "dr_drill_plans": bad_plan(namespaces=["Bad_NS"])},
            "DNS-1123",
        ),
        (
            {"dr_drill_plan": "model_corruption", "dr_drill_scratch_prefix": "DRILL/"},
            "dr_drill_scratch_prefix",
        ),
        (
            {"dr_drill_plan": "model_corruption", "dr_drill_compare_kinds": ["Pod"]},
            "dr_drill_compare_kinds",
        ),
    ]
    for extra, named in cases:
        result = drill(velero_server, dr_drill_report_dir=str(tmp_path), **extra)
        assert result.returncode != 0, extra
        assert named in result.stdout, (extra, result.stdout[-3000:])
    assert list(tmp_path.iterdir()) == []  # rejected before the drill started: no report
