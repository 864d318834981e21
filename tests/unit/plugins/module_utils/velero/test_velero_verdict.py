"""verify mode's verdict rules (pure logic): the RPO is judged on the last SUCCESSFUL backup."""

from __future__ import annotations

import datetime

from ansible_collections.gpuops.cluster.plugins.module_utils.velero.verdict import (
    backup_failure,
    judge_schedule,
    pick_bsl,
)

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
HOUR = 3600.0


def stamp(hours_ago):
    return (NOW - datetime.timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def backup(name, hours_ago, phase="Completed", ttl_hours=720, **status):
    body = {
        "phase": phase,
        "startTimestamp": stamp(hours_ago + 0.1),
        "completionTimestamp": stamp(hours_ago),
        "expiration": stamp(hours_ago - ttl_hours),
    }
    body.update(status)
    return {"metadata": {"name": name, "labels": {"velero.io/schedule-name": "s"}}, "status": body}


def schedule(phase="Enabled", paused=False, rpo=None, location=None):
    meta = {"name": "s", "namespace": "velero"}
    if rpo:
        meta["annotations"] = {"gpuops.cluster/rpo": rpo}
    template = {"ttl": "720h0m0s"}
    if location:
        template["storageLocation"] = location
    return {
        "metadata": meta,
        "spec": {"schedule": "0 */6 * * *", "paused": paused, "template": template},
        "status": {"phase": phase},
    }


BSL_OK = {"metadata": {"name": "default"}, "spec": {"default": True}, "status": {"phase": "Available"}}


def test_recent_completed_backup_is_ok():
    verdict = judge_schedule(schedule(rpo="6h"), [backup("s-1", 2)], BSL_OK, NOW)
    assert verdict["verdict"] == "ok", verdict["reasons"]
    assert verdict["within_rpo"] is True
    assert verdict["last_successful_backup"]["name"] == "s-1"


def test_failed_runs_after_an_old_success_breach_the_rpo():
    backups = [backup("s-1", 13), backup("s-2", 7, "PartiallyFailed", errors=3), backup("s-3", 1, "Failed")]
    verdict = judge_schedule(schedule(), backups, BSL_OK, NOW, rpo_seconds=12 * HOUR)
    assert verdict["verdict"] == "breach"
    assert verdict["last_backup"]["name"] == "s-3"
    assert verdict["last_successful_backup"]["name"] == "s-1"
    assert verdict["backups_failed"] == 2
    assert any("13h0m0s old" in r for r in verdict["reasons"])
    assert any("2 backup(s) failed" in r for r in verdict["reasons"])


def test_snapshots_attempted_over_completed_is_a_failure():
    partial = backup("s-2", 1, volumeSnapshotsAttempted=3, volumeSnapshotsCompleted=2)
    assert "1 of 3 volume snapshots failed" in backup_failure(partial)
    verdict = judge_schedule(schedule(), [backup("s-1", 8), partial], BSL_OK, NOW, rpo_seconds=6 * HOUR)
    assert verdict["verdict"] == "breach"
    assert verdict["last_successful_backup"]["name"] == "s-1"


def test_failed_validation_and_new_schedules_fail():
    verdict = judge_schedule(schedule(phase="FailedValidation"), [], BSL_OK, NOW)
    assert verdict["verdict"] == "failed"
    new = judge_schedule(schedule(phase="New"), [], BSL_OK, NOW)
    assert new["verdict"] == "failed" and "still New" in new["reasons"][0]


def test_no_successful_backup_breaches_a_declared_rpo():
    verdict = judge_schedule(schedule(rpo="6h"), [backup("s-1", 1, "FailedValidation")], BSL_OK, NOW)
    assert verdict["verdict"] == "breach"
    assert verdict["within_rpo"] is False


def test_in_progress_backup_is_not_the_last_one():
    verdict = judge_schedule(schedule(rpo="6h"), [backup("s-1", 2), backup("s-2", 0.01, "InProgress")], BSL_OK, NOW)
    assert verdict["last_backup"]["name"] == "s-1"
    assert verdict["verdict"] == "ok"


def test_unavailable_storage_location_fails():
    bsl = {"metadata": {"name": "default"}, "spec": {}, "status": {"phase": "Unavailable", "message": "NoSuchBucket"}}
    verdict = judge_schedule(schedule(rpo="6h"), [backup("s-1", 2)], bsl, NOW)
    assert verdict["verdict"] == "failed"
    assert "NoSuchBucket" in verdict["reasons"][-1]


def test_expired_and_expiring_backups_are_reported():
    backups = [backup("s-1", 740, ttl_hours=720), backup("s-2", 2, ttl_hours=12)]
    verdict = judge_schedule(schedule(rpo="6h"), backups, BSL_OK, NOW)
    assert verdict["expired"] == ["s-1"]
    assert verdict["expiring"] == ["s-2"]
    assert verdict["verdict"] == "warning"
    assert any("only successful backup s-2 expires" in r for r in verdict["reasons"])


def test_paused_schedule_warns():
    verdict = judge_schedule(schedule(paused=True), [backup("s-1", 1)], BSL_OK, NOW)
    assert verdict["verdict"] == "warning" and "paused" in verdict["reasons"][0]


def test_storage_location_is_the_named_one_or_the_default():
    other = {"metadata": {"name": "other"}, "spec": {}}
    assert pick_bsl(schedule(location="other"), [BSL_OK, other]) is other
    assert pick_bsl(schedule(), [other, BSL_OK]) is BSL_OK
    missing = judge_schedule(schedule(location="gone"), [backup("s-1", 1)], None, NOW)
    assert missing["verdict"] == "failed"
