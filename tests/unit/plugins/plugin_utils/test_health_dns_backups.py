"""dns and backups findings (plugin_utils/health_dns.py, health_backups.py)."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_backups import (
    backup_findings,
    declared_rpos,
    rpo_errors,
)
from ansible_collections.gpuops.cluster.plugins.plugin_utils.health_dns import dns_findings

SERVICE = {"metadata": {"name": "kube-dns", "namespace": "kube-system"}, "spec": {"selector": {"k8s-app": "kube-dns"}}}


def endpoints(ready=("10.0.0.10",), not_ready=()):
    subset = {"addresses": [{"ip": ip} for ip in ready], "notReadyAddresses": [{"ip": ip} for ip in not_ready]}
    return {"metadata": {"name": "kube-dns", "namespace": "kube-system"}, "subsets": [subset]}


def test_dns_service_and_ready_endpoints():
    assert dns_findings([SERVICE], [endpoints()]) == []
    (absent,) = dns_findings([], [endpoints()])
    assert absent["severity"] == "critical" and "no kube-dns Service" in absent["finding"]
    (empty,) = dns_findings([SERVICE], [endpoints(ready=(), not_ready=("10.0.0.10",))])
    assert "no ready endpoints (1 not ready)" in empty["finding"]
    (missing,) = dns_findings([SERVICE], [])
    assert "(no Endpoints object)" in missing["finding"]
    other = dict(endpoints(), metadata={"name": "kube-dns", "namespace": "default"})
    assert len(dns_findings([SERVICE], [other])) == 1
    ready_slice = {
        "metadata": {"namespace": "kube-system", "labels": {"kubernetes.io/service-name": "kube-dns"}},
        "endpoints": [{"addresses": ["10.0.0.11"], "conditions": {"ready": True}}],
    }
    assert dns_findings([SERVICE], [], [ready_slice]) == []
    ready_slice["endpoints"][0]["conditions"]["ready"] = False
    assert len(dns_findings([SERVICE], [], [ready_slice])) == 1


NOW = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.timezone.utc)


def stamp(hours_ago):
    return (NOW - datetime.timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule(name, rpo=None):
    annotations = {"gpuops.cluster/rpo": rpo} if rpo else {}
    return {
        "metadata": {"name": name, "namespace": "velero", "annotations": annotations},
        "spec": {"schedule": "0 2 * * *", "template": {"storageLocation": "default"}},
        "status": {"phase": "Enabled"},
    }


def backup(name, of, hours_ago, phase="Completed", namespace="velero"):
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"velero.io/schedule-name": of}},
        "status": {"phase": phase, "completionTimestamp": stamp(hours_ago)},
    }


BSL = {"metadata": {"name": "default", "namespace": "velero"}, "status": {"phase": "Available"}}


def test_backups_behind_rpo_from_the_annotation_or_declared():
    schedules = [schedule("nightly", "26h"), schedule("fresh", "26h")]
    backups = [
        backup("nightly-1", "nightly", 30),
        backup("nightly-2", "nightly", 5, phase="PartiallyFailed"),
        backup("fresh-1", "fresh", 3),
        backup("elsewhere", "fresh", 100, namespace="other"),
    ]
    (found,) = backup_findings(schedules, backups, [BSL], NOW)
    assert found["check"] == "backups" and found["subject"] == "Schedule/velero/nightly"
    assert found["severity"] == "critical" and found["finding"].startswith("behind its RPO: ")
    assert "over the RPO of 26h" in found["finding"] and "nightly-2 phase PartiallyFailed" in found["finding"]
    assert backup_findings(schedules, backups, [BSL], NOW, {"nightly": "48h"})[0]["severity"] == "warning"
    found = backup_findings(schedules, backups, [BSL], NOW, {"fresh": "2h"})
    assert sorted(f["subject"] for f in found) == ["Schedule/velero/fresh", "Schedule/velero/nightly"]


def test_broken_location_and_bad_declared_rpo():
    unavailable = dict(BSL, status={"phase": "Unavailable", "message": "bucket not found"})
    (found,) = backup_findings([schedule("fresh", "26h")], [backup("f", "fresh", 1)], [unavailable], NOW)
    assert found["severity"] == "critical" and "Unavailable: bucket not found" in found["finding"]
    with pytest.raises(ValueError, match=r"health_check_backup_rpo\[nightly\]='a day'"):
        declared_rpos({"nightly": "a day"})
    with pytest.raises(ValueError, match="must be a mapping"):
        declared_rpos(["26h"])
    assert rpo_errors({"nightly": "26h", "weekly": "7 days", "hourly": "90m"}) == [
        "health_check_backup_rpo[weekly]='7 days' is not a duration: expected a Go duration such as 720h, 1h30m "
        "or 90m (units h, m, s, ms, us, ns)"
    ]
    assert rpo_errors("26h") == ["health_check_backup_rpo must be a mapping of Schedule name to a duration like 26h"]
