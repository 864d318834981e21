# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health check ``backups``: Velero Schedules behind their RPO. Pure functions.

The verdict is velero_schedule's verify mode (module_utils/velero/verdict.py), not a second
reading of Velero's objects: the RPO is judged on the age of the last SUCCESSFUL backup, taken
from the ``gpuops.cluster/rpo`` annotation the backups role writes, or declared here per Schedule
name (which wins). A breach or a broken schedule / storage location is critical; the verdict's
warnings (recent failures, paused, expiring) are warnings.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

from ansible_collections.gpuops.cluster.plugins.module_utils.velero.durations import DurationError, parse_duration
from ansible_collections.gpuops.cluster.plugins.module_utils.velero.verdict import (
    SCHEDULE_LABEL,
    judge_schedule,
    pick_bsl,
)
from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_findings import finding

SEVERITY = {"breach": "critical", "failed": "critical", "warning": "warning"}


def declared_rpos(rpos):
    """{schedule name: seconds} from {name: Go duration}; ValueError naming the bad entry."""
    out = {}
    if not isinstance(rpos, dict):
        raise ValueError("health_check_backup_rpo must be a mapping of Schedule name to a duration like 26h")
    for name, text in rpos.items():
        try:
            out[str(name)] = parse_duration(str(text))
        except DurationError as error:
            raise ValueError("health_check_backup_rpo[%s]=%r is not a duration: %s" % (name, text, error)) from error
    return out


def rpo_errors(rpos):
    """The problems of declared RPOs, one message each naming the entry; [] when valid."""
    if not isinstance(rpos, dict):
        return ["health_check_backup_rpo must be a mapping of Schedule name to a duration like 26h"]
    errors = []
    for name, text in rpos.items():
        try:
            declared_rpos({name: text})
        except ValueError as error:
            errors.append(str(error))
    return errors


def backup_findings(schedules, backups, locations, now, rpos=None):
    """One finding per Velero Schedule whose verdict is not ok."""
    declared = declared_rpos(rpos or {})
    found = []
    for schedule in schedules or []:
        meta = schedule.get("metadata") or {}
        name, namespace = meta.get("name"), meta.get("namespace")
        mine = [
            b
            for b in backups or []
            if (b.get("metadata") or {}).get("namespace") == namespace
            and ((b.get("metadata") or {}).get("labels") or {}).get(SCHEDULE_LABEL) == name
        ]
        here = [loc for loc in locations or [] if (loc.get("metadata") or {}).get("namespace") == namespace]
        verdict = judge_schedule(schedule, mine, pick_bsl(schedule, here), now, rpo_seconds=declared.get(name))
        if verdict["verdict"] == "ok":
            continue
        breach = verdict["verdict"] == "breach"
        found.append(
            finding(
                "backups",
                SEVERITY[verdict["verdict"]],
                "Schedule/%s/%s" % (namespace, name),
                "%s: %s" % ("behind its RPO" if breach else verdict["verdict"], "; ".join(verdict["reasons"])),
                "Run a backup now (velero backup create --from-schedule %s) and find why the scheduled ones "
                "fail or stopped: `gpuops.cluster.velero_schedule` with verify gives the verdict per schedule, "
                "the BackupStorageLocation's phase and message say whether the bucket is reachable." % name,
            )
        )
    return found
