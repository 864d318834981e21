# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""velero_schedule's verify mode: a verdict per Schedule from what the cluster says. Pure logic.

The RPO is judged on the age of the last SUCCESSFUL backup (phase Completed, every volume
snapshot attempted also completed), never on the last backup: with an RPO equal to the
schedule's period, one failed run is enough to breach it.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.gpuops.cluster.plugins.module_utils.velero.durations import (
    DurationError,
    format_duration,
    parse_duration,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.velero.spec import RPO_ANNOTATION

SCHEDULE_LABEL = "velero.io/schedule-name"
FAILED_PHASES = ("PartiallyFailed", "Failed", "FailedValidation")
RUNNING_PHASES = (
    "New",
    "InProgress",
    "WaitingForPluginOperations",
    "WaitingForPluginOperationsPartiallyFailed",
    "Finalizing",
    "FinalizingPartiallyFailed",
)
SEVERITY = {"ok": 0, "warning": 1, "breach": 2, "failed": 3}


def parse_time(value):
    """RFC 3339 (as Kubernetes writes it) -> aware UTC datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def backup_failure(backup):
    """Why a finished backup does not count as successful, or None when it does."""
    status = backup.get("status") or {}
    phase = status.get("phase") or "New"
    if phase in FAILED_PHASES:
        detail = status.get("failureReason") or "; ".join(status.get("validationErrors") or [])
        counts = []
        if status.get("errors"):
            counts.append("%d errors" % status["errors"])
        if status.get("warnings"):
            counts.append("%d warnings" % status["warnings"])
        return "phase %s%s%s" % (
            phase,
            (": " + detail) if detail else "",
            (" (" + ", ".join(counts) + ")") if counts else "",
        )
    if phase != "Completed":
        return None
    for prefix in ("volumeSnapshots", "csiVolumeSnapshots"):
        attempted = status.get(prefix + "Attempted") or 0
        completed = status.get(prefix + "Completed") or 0
        if attempted > completed:
            return "phase Completed but %d of %d %s failed" % (
                attempted - completed,
                attempted,
                "CSI snapshots" if prefix.startswith("csi") else "volume snapshots",
            )
    return None


def _when(backup):
    status = backup.get("status") or {}
    return (
        parse_time(status.get("completionTimestamp"))
        or parse_time(status.get("startTimestamp"))
        or parse_time((backup.get("metadata") or {}).get("creationTimestamp"))
    )


def _summary(backup, now):
    if backup is None:
        return None
    status = backup.get("status") or {}
    when = _when(backup)
    return {
        "name": backup["metadata"]["name"],
        "phase": status.get("phase") or "New",
        "completion_timestamp": status.get("completionTimestamp"),
        "expiration": status.get("expiration"),
        "age_seconds": round((now - when).total_seconds(), 1) if when else None,
        "items_backed_up": (status.get("progress") or {}).get("itemsBackedUp"),
        "failure": backup_failure(backup),
    }


def judge_schedule(schedule, backups, bsl, now, rpo_seconds=None, expiring_within=86400.0):
    """One Schedule, the Backups of its label, the BSL it writes to (or None) -> the verdict
    dict: verdict (ok, warning, breach, failed), reasons, last backup, last successful one."""
    meta = schedule.get("metadata") or {}
    name = meta.get("name")
    spec = schedule.get("spec") or {}
    status = schedule.get("status") or {}
    reasons = []
    verdict = "ok"

    def raise_to(level, reason):
        nonlocal verdict
        reasons.append(reason)
        if SEVERITY[level] > SEVERITY[verdict]:
            verdict = level

    if rpo_seconds is None:
        annotated = (meta.get("annotations") or {}).get(RPO_ANNOTATION)
        if annotated:
            try:
                rpo_seconds = parse_duration(annotated)
            except DurationError:
                raise_to("warning", "annotation %s=%r is not a duration" % (RPO_ANNOTATION, annotated))
    phase = status.get("phase") or "New"
    if phase == "FailedValidation":
        raise_to(
            "failed",
            "schedule FailedValidation: %s" % "; ".join(status.get("validationErrors") or ["no reason"]),
        )
    elif phase == "New":
        raise_to(
            "failed",
            "schedule still New: Velero has not picked it up (is it in Velero's namespace, is Velero running?)",
        )
    if spec.get("paused"):
        raise_to("warning", "schedule is paused")
    ordered = sorted(
        backups,
        key=lambda b: _when(b) or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc),
    )
    finished = [b for b in ordered if ((b.get("status") or {}).get("phase") or "New") not in RUNNING_PHASES]
    last = finished[-1] if finished else None
    successful = [
        b for b in finished if (b.get("status") or {}).get("phase") == "Completed" and backup_failure(b) is None
    ]
    last_ok = successful[-1] if successful else None
    failures = [b for b in finished if backup_failure(b) is not None]
    recent_failures = [b for b in failures if last_ok is None or _when(b) > _when(last_ok)]
    if recent_failures:
        raise_to(
            "warning",
            "%d backup(s) failed since the last successful one: %s"
            % (
                len(recent_failures),
                "; ".join("%s %s" % (b["metadata"]["name"], backup_failure(b)) for b in recent_failures[-3:]),
            ),
        )
    age = None
    if last_ok is not None:
        age = (now - _when(last_ok)).total_seconds()
    if rpo_seconds is not None:
        if last_ok is None:
            raise_to("breach", "no successful backup: RPO %s cannot be met" % format_duration(rpo_seconds))
        elif age > rpo_seconds:
            raise_to(
                "breach",
                "last successful backup %s is %s old, over the RPO of %s"
                % (last_ok["metadata"]["name"], format_duration(age), format_duration(rpo_seconds)),
            )
    elif last_ok is None:
        raise_to("warning", "no successful backup yet (no RPO declared)")
    expired = []
    expiring = []
    for backup in finished:
        expiration = parse_time((backup.get("status") or {}).get("expiration"))
        if expiration is None:
            continue
        if expiration <= now:
            expired.append(backup["metadata"]["name"])
        elif (expiration - now).total_seconds() <= expiring_within:
            expiring.append(backup["metadata"]["name"])
    if expired:
        raise_to("warning", "%d expired backup(s) not yet deleted: %s" % (len(expired), ", ".join(expired[:5])))
    kept = [b for b in successful if b["metadata"]["name"] not in expired]
    if last_ok is not None and last_ok["metadata"]["name"] in expiring and len(kept) == 1:
        raise_to(
            "warning",
            "the only successful backup %s expires within %s"
            % (last_ok["metadata"]["name"], format_duration(expiring_within)),
        )
    location_name = (spec.get("template") or {}).get("storageLocation")
    bsl_report = None
    if bsl is not None:
        bsl_status = bsl.get("status") or {}
        bsl_report = {
            "name": bsl["metadata"]["name"],
            "phase": bsl_status.get("phase"),
            "last_validation_time": bsl_status.get("lastValidationTime"),
            "message": bsl_status.get("message"),
        }
        if bsl_status.get("phase") == "Unavailable":
            raise_to(
                "failed",
                "backup storage location %s is Unavailable%s"
                % (bsl["metadata"]["name"], (": " + bsl_status["message"]) if bsl_status.get("message") else ""),
            )
        elif bsl_status.get("phase") != "Available":
            raise_to("warning", "backup storage location %s not validated yet" % bsl["metadata"]["name"])
    elif location_name:
        raise_to("failed", "backup storage location %s does not exist" % location_name)
    else:
        raise_to("failed", "no backup storage location (no default one)")
    return {
        "name": name,
        "verdict": verdict,
        "reasons": reasons,
        "phase": phase,
        "paused": bool(spec.get("paused")),
        "rpo_seconds": rpo_seconds,
        "last_backup": _summary(last, now),
        "last_successful_backup": _summary(last_ok, now),
        "last_successful_age_seconds": round(age, 1) if age is not None else None,
        "within_rpo": None if rpo_seconds is None else (age is not None and age <= rpo_seconds),
        "backups_total": len(ordered),
        "backups_failed": len(failures),
        "expired": expired,
        "expiring": expiring,
        "storage_location": bsl_report,
    }


def pick_bsl(schedule, locations):
    """The BSL a schedule writes to: its storageLocation, else the one marked default."""
    wanted = ((schedule.get("spec") or {}).get("template") or {}).get("storageLocation")
    by_name = {loc["metadata"]["name"]: loc for loc in locations}
    if wanted:
        return by_name.get(wanted)
    for location in locations:
        if (location.get("spec") or {}).get("default"):
            return location
    return by_name.get("default")
