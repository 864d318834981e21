"""The DR drill's pure logic: modifier rules that keep drills off GPUs, the backup's contents
(resource list and tarball) mapped into scratch namespaces, the comparison, smoke checks,
production fingerprints and the restore poll's back-off; and velero_drill's option checks."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import tarfile

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.velero import drill
from ansible_collections.gpuops.cluster.plugins.modules import velero_drill

MAPPING = {"prod": "drill-prod"}


def deployment(name, ns="prod", gpus=True, replicas=2, rv="1"):
    resources = {"limits": {"nvidia.com/gpu": "1", "cpu": "1"}, "requests": {"nvidia.com/mig-1g.5gb": "1"}}
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": rv},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "main", "resources": resources if gpus else {}}]}},
        },
    }


def configmap(name, ns="prod", rv="1", owned=False):
    meta = {"name": name, "namespace": ns, "resourceVersion": rv}
    if owned:
        meta["ownerReferences"] = [{"kind": "X", "name": "x", "controller": True}]
    return {"kind": "ConfigMap", "metadata": meta}


def test_modifier_rules_scale_to_zero_and_strip_only_gpu_resources():
    rules = drill.modifier_rules([deployment("gpu"), deployment("cpu", gpus=False), configmap("c")], MAPPING)
    assert [r["conditions"]["groupResource"] for r in rules[:2]] == ["deployments.apps", "statefulsets.apps"]
    assert rules[0]["patches"] == [{"operation": "replace", "path": "/spec/replicas", "value": "0"}]
    assert len(rules) == 3  # one strategic patch, for the GPU deployment only
    rule = rules[2]
    assert rule["conditions"] == {
        "groupResource": "deployments.apps",
        "resourceNameRegex": "^(gpu)$",
        "namespaces": ["drill-prod"],
    }
    patch = json.loads(rule["strategicPatches"][0]["patchData"])
    assert patch["spec"]["template"]["spec"]["containers"] == [
        {"name": "main", "resources": {"limits": {"nvidia.com/gpu": None}, "requests": {"nvidia.com/mig-1g.5gb": None}}}
    ]


def test_modifier_rules_escape_names_and_reach_cronjob_templates():
    cron = {
        "kind": "CronJob",
        "metadata": {"name": "a.b", "namespace": "prod"},
        "spec": {
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}
                    }
                }
            }
        },
    }
    rule = drill.modifier_rules([cron], MAPPING)[2]
    assert rule["conditions"]["resourceNameRegex"] == r"^(a\.b)$"
    assert "jobTemplate" in json.loads(rule["strategicPatches"][0]["patchData"])["spec"]


def test_modifier_rules_share_one_rule_per_patch_kind_and_namespace():
    many = [deployment("d-%03d" % i) for i in range(150)] + [deployment("other", ns="else")]
    rules = drill.modifier_rules(many, dict(MAPPING, **{"else": "drill-else"}))
    named = rules[2:]
    assert [r["conditions"]["namespaces"] for r in named] == [["drill-else"], ["drill-prod"], ["drill-prod"]]
    assert named[1]["conditions"]["resourceNameRegex"].count("|") == drill.NAMES_PER_RULE - 1
    assert named[2]["conditions"]["resourceNameRegex"] == "^(%s)$" % "|".join("d-%03d" % i for i in range(100, 150))


def test_pick_backup_newest_successful_or_named():
    def backup(name, phase, done, attempted=0, completed=0):
        status = {"phase": phase, "completionTimestamp": done}
        status.update(volumeSnapshotsAttempted=attempted, volumeSnapshotsCompleted=completed)
        return {"metadata": {"name": name}, "status": status}

    backups = [
        backup("a", "Completed", "2026-01-01T00:00:00Z"),
        backup("b", "Completed", "2026-01-02T00:00:00Z", attempted=2, completed=1),
        backup("c", "PartiallyFailed", "2026-01-03T00:00:00Z"),
        backup("d", "InProgress", None),
    ]
    assert drill.pick_backup(backups, "")["metadata"]["name"] == "a"
    assert drill.pick_backup(backups, "c")["metadata"]["name"] == "c"
    assert drill.pick_backup(backups, "b") is None
    assert drill.pick_backup(backups[3:], "") is None


def resource_list(listing):
    return gzip.compress(json.dumps(listing).encode())


def test_keys_from_resource_list_maps_namespaces_and_filters_kinds():
    data = resource_list(
        {
            "apps/v1/Deployment": ["prod/a", "other/b"],
            "v1/ConfigMap": ["prod/c"],
            "v1/Namespace": ["prod"],
            "v1/Secret": ["prod/s"],
        }
    )
    keys = drill.keys_from_resource_list(data, ["prod"], MAPPING, ["Deployment", "ConfigMap"])
    assert keys == ["ConfigMap/drill-prod/c", "Deployment/drill-prod/a"]
    with pytest.raises(ValueError):
        drill.keys_from_resource_list(gzip.compress(b"[]"), ["prod"], MAPPING, ["ConfigMap"])


def tarball(objects):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, obj in objects:
            data = json.dumps(obj).encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_keys_from_tarball_skips_controller_owned_objects_and_other_namespaces():
    data = tarball(
        [
            ("metadata/version", {}),
            ("resources/deployments.apps/namespaces/prod/a.json", deployment("a")),
            ("resources/configmaps/namespaces/prod/owned.json", configmap("owned", owned=True)),
            ("resources/configmaps/namespaces/else/c.json", configmap("c", ns="else")),
            ("resources/namespaces/cluster/prod.json", {"kind": "Namespace", "metadata": {"name": "prod"}}),
        ]
    )
    assert drill.keys_from_tarball(data, ["prod"], MAPPING, ["Deployment", "ConfigMap"]) == ["Deployment/drill-prod/a"]


def test_compare_lists_both_directions_and_ignores_the_root_ca():
    expected = ["ConfigMap/drill-prod/c", "Deployment/drill-prod/a"]
    restored = [
        configmap("c", ns="drill-prod"),
        configmap("kube-root-ca.crt", ns="drill-prod"),
        configmap("x", ns="drill-prod"),
    ]
    differences, counts = drill.compare(expected, restored, ["Deployment", "ConfigMap"])
    assert differences == ["missing in restore: Deployment/drill-prod/a", "not in the backup: ConfigMap/drill-prod/x"]
    assert counts == {"Deployment": 0, "ConfigMap": 3}
    assert drill.compare(expected, restored[:1] + [deployment("a", ns="drill-prod")], ["ConfigMap"])[0] == []


def test_smoke_judgement_names_counts_replicas_and_gpus():
    checks = [{"kind": "ConfigMap", "namespace": "prod", "min_count": 2}, {"kind": "Service", "namespace": "prod"}]
    restored = [deployment("a", ns="drill-prod", replicas=0, gpus=False), deployment("b", ns="drill-prod", replicas=0)]
    failures = drill.judge_smoke(checks, [1, 1], restored, MAPPING)
    assert failures == [
        "ConfigMap in drill-prod: 1 found, 2 wanted",
        "Deployment drill-prod/b was restored with nvidia.com/* resources in main",
    ]
    assert drill.judge_smoke(checks, [2, 1], restored[:1], MAPPING) == []
    scaled = drill.judge_smoke([], [], [deployment("c", ns="drill-prod", gpus=False)], MAPPING)
    assert scaled == ["Deployment drill-prod/c was restored with replicas 2"]


def test_fingerprint_changes():
    before = drill.fingerprint([configmap("a"), configmap("b"), configmap("c")])
    after = drill.fingerprint([configmap("a"), configmap("b", rv="9"), configmap("d")])
    assert drill.fingerprint_changes(before, before) == []
    assert drill.fingerprint_changes(before, after) == [
        "deleted: ConfigMap/prod/c",
        "created: ConfigMap/prod/d",
        "changed: ConfigMap/prod/b",
    ]


def test_poll_backs_off_from_a_short_first_interval():
    delays = list(itertools.islice(drill.poll_delays(), 25))
    assert delays[0] == 0.05 and delays[-1] == 2.0
    assert all(a <= b for a, b in itertools.pairwise(delays))


GOOD = {
    "backup": "models-20260101010000",
    "namespaces": ["models"],
    "scratch_prefix": "drill-",
    "velero_namespace": "velero",
    "drill_id": "20260101",
    "compare_kinds": ["ConfigMap"],
    "smoke_checks": [{"kind": "ConfigMap", "namespace": "models", "min_count": 1}],
    "restore_timeout": 60,
    "download_timeout": 5,
    "cleanup_timeout": 60,
}


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"backup": "Bad_Name"}, "backup"),
        ({"namespaces": []}, "namespaces"),
        ({"namespaces": ["UPPER"]}, "namespaces"),
        ({"namespaces": ["x" * 60]}, "63 characters"),
        ({"velero_namespace": "a/b"}, "velero_namespace"),
        ({"drill_id": ""}, "drill_id"),
        ({"scratch_prefix": "Drill_"}, "scratch_prefix"),
        ({"smoke_checks": [{"namespace": "models"}]}, "smoke_checks[0].kind"),
        ({"smoke_checks": [{"kind": "ConfigMap", "namespace": "prod"}]}, "smoke_checks[0].namespace"),
        ({"smoke_checks": [{"kind": "ConfigMap", "namespace": "models", "min_count": -1}]}, "min_count"),
        ({"restore_timeout": 0}, "restore_timeout"),
    ],
)
def test_velero_drill_rejects_bad_options_naming_them(override, named):
    assert velero_drill.validate(GOOD) is None
    message = velero_drill.validate(dict(GOOD, **override))
    assert message is not None and named in message


def test_report_and_its_text():
    result = {
        "backup": "b1",
        "backup_age_seconds": 1800.0,
        "steps": [{"name": "restore", "status": "failed", "seconds": 1.5}],
        "failed_step": "restore",
        "failure": "restore dr-drill-1 ended PartiallyFailed",
        "production_untouched": True,
    }
    plan = {"name": "p", "rto_minutes": 15.0, "rpo_minutes": 60}
    report = drill.build_report(result, plan, "1", "execute", 1000.0, 1060.0)
    assert report["elapsed_minutes"] == 1.0 and report["backup_age_minutes"] == 30.0
    assert report["within_rpo"] is True and report["within_rto"] is False
    text = drill.report_text(report)
    assert "RPO 60 min met" in text and "RTO 15 min NOT met" in text
    assert "FAILED at restore: restore dr-drill-1 ended PartiallyFailed" in text
    ok = drill.build_report(dict(result, failed_step=None, backup_age_seconds=7200.0), plan, "1", "execute", 0.0, 60.0)
    assert ok["within_rto"] is True and ok["within_rpo"] is False
    assert "RPO 60 min BREACHED" in drill.report_text(ok)
    dry = drill.build_report({}, plan, "1", "dry_run", 0.0, 1.0)
    assert dry["within_rto"] is None and "not measured (dry run)" in drill.report_text(dry)
