"""velero_schedule's option checks and manifests (pure logic): every bad input names the
option and what is allowed; good input becomes the Velero objects."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.velero import durations
from ansible_collections.gpuops.cluster.plugins.module_utils.velero.spec import (
    VeleroParamError,
    manifests,
    redact,
    validate,
)

BSL = {
    "provider": "aws",
    "bucket": "gpuops-backups",
    "region": "us-east-1",
    "s3_force_path_style": True,
    "credential": {"name": "cloud-credentials", "key": "cloud"},
}


def good_schedule(**overrides):
    item = {
        "name": "cluster-state",
        "schedule": "0 */6 * * *",
        "ttl": "720h",
        "rpo": "12h",
        "included_namespaces": ["*"],
        "excluded_namespaces": ["kube-system"],
    }
    item.update(overrides)
    return item


def params(schedules=None, **overrides):
    base = {
        "schedules": schedules if schedules is not None else [good_schedule()],
        "backup_storage_location": dict(BSL),
    }
    base.update(overrides)
    return base


POD_HOOK = {"name": "freeze", "pre": [{"command": ["/sbin/fsfreeze", "--freeze", "/data"]}]}

# (id, params, the option path named in the error, a word of the allowed values)
BAD = [
    ("six-field-cron", params([good_schedule(schedule="0 0 */6 * * *")]), "schedules[0].schedule", "exactly 5"),
    ("four-field-cron", params([good_schedule(schedule="0 6 * *")]), "schedules[0].schedule", "exactly 5"),
    ("minute-60", params([good_schedule(schedule="60 * * * *")]), "schedules[0].schedule", "0-59"),
    ("hour-24", params([good_schedule(schedule="0 24 * * *")]), "schedules[0].schedule", "0-23"),
    ("dom-0", params([good_schedule(schedule="0 0 0 * *")]), "schedules[0].schedule", "1-31"),
    ("month-name", params([good_schedule(schedule="0 0 1 JANUARY *")]), "schedules[0].schedule", "month"),
    ("zero-step", params([good_schedule(schedule="*/0 * * * *")]), "schedules[0].schedule", "positive"),
    ("backward-range", params([good_schedule(schedule="0 10-2 * * *")]), "schedules[0].schedule", "backwards"),
    ("bad-descriptor", params([good_schedule(schedule="@fortnightly")]), "schedules[0].schedule", "@every"),
    ("every-days", params([good_schedule(schedule="@every 1d")]), "schedules[0].schedule", "Go duration"),
    ("never-runs", params([good_schedule(schedule="0 0 30 2 *")]), "schedules[0].schedule", "never"),
    ("ttl-days", params([good_schedule(ttl="30d")]), "schedules[0].ttl", "Go duration"),
    ("ttl-zero", params([good_schedule(ttl="0s")]), "schedules[0].ttl", "positive"),
    ("ttl-number", params([good_schedule(ttl=720)]), "schedules[0].ttl", "Go duration"),
    ("rpo-shorter-than-period", params([good_schedule(rpo="1h")]), "schedules[0].rpo", "longest gap"),
    ("rpo-garbage", params([good_schedule(rpo="six hours")]), "schedules[0].rpo", "Go duration"),
    ("wrong-namespace", params([good_schedule(namespace="default")]), "schedules[0].namespace", "stays New"),
    ("bad-name", params([good_schedule(name="Cluster_State")]), "schedules[0].name", "DNS-1123"),
    ("duplicate-name", params([good_schedule(), good_schedule()]), "schedules[1].name", "not used"),
    (
        "ns-in-both",
        params([good_schedule(included_namespaces=["ml"], excluded_namespaces=["ml"])]),
        "schedules[0].excluded_namespaces",
        "not also in included",
    ),
    ("exclude-star", params([good_schedule(excluded_resources=["*"])]), "schedules[0].excluded_resources", "not '*'"),
    (
        "exclusion-without-star",
        params([good_schedule(included_namespaces=["ml"], excluded_namespaces=["dev"])]),
        "schedules[0].excluded_namespaces",
        "only narrow",
    ),
    (
        "resource-in-both",
        params([good_schedule(included_resources=["pods"], excluded_resources=["pods"])]),
        "schedules[0].excluded_resources",
        "not also",
    ),
    (
        "resource-uppercase",
        params([good_schedule(included_resources=["Deployments"])]),
        "schedules[0].included_resources[0]",
        "plural[.group]",
    ),
    (
        "pod-hook-pods-excluded",
        params([good_schedule(excluded_resources=["pods"], hooks=[POD_HOOK])]),
        "schedules[0].hooks[0]",
        "does not include pods",
    ),
    (
        "pod-hook-ns-not-backed-up",
        params([good_schedule(hooks=[dict(POD_HOOK, included_namespaces=["kube-system"])])]),
        "schedules[0].hooks[0]",
        "not backed up",
    ),
    (
        "hook-shell-string",
        params([good_schedule(hooks=[{"name": "h", "pre": [{"command": "fsfreeze -f /"}]}])]),
        "schedules[0].hooks[0].pre[0].command",
        "list of strings",
    ),
    (
        "hook-on-error",
        params([good_schedule(hooks=[{"name": "h", "pre": [{"command": ["x"], "on_error": "Ignore"}]}])]),
        "schedules[0].hooks[0].pre[0].on_error",
        "Continue, Fail",
    ),
    ("unknown-key", params([good_schedule(retention="30d")]), "schedules[0]", "unknown keys"),
    ("paused-string", params([good_schedule(paused="yes")]), "schedules[0].paused", "true or false"),
    (
        "bsl-provider",
        params(backup_storage_location=dict(BSL, provider="AWS S3")),
        "backup_storage_location.provider",
        "plugin",
    ),
    (
        "bsl-bucket",
        params(backup_storage_location=dict(BSL, bucket="Bad_Bucket")),
        "backup_storage_location.bucket",
        "S3 bucket",
    ),
    (
        "bsl-access-mode",
        params(backup_storage_location=dict(BSL, access_mode="ReadOnlyMany")),
        "backup_storage_location.access_mode",
        "ReadWrite, ReadOnly",
    ),
    (
        "bsl-prefix-absolute",
        params(backup_storage_location=dict(BSL, prefix="/cluster")),
        "backup_storage_location.prefix",
        "relative",
    ),
    (
        "bsl-credential-shape",
        params(backup_storage_location=dict(BSL, credential={"name": "c"})),
        "backup_storage_location.credential",
        "name and key",
    ),
    (
        "bsl-ca-not-pem",
        params(backup_storage_location=dict(BSL, ca_cert="hello")),
        "backup_storage_location.ca_cert",
        "PEM",
    ),
    (
        "bsl-region",
        params(backup_storage_location=dict(BSL, region="US East")),
        "backup_storage_location.region",
        "us-east-1",
    ),
    (
        "vsl-duplicate",
        params(volume_snapshot_locations=[{"name": "a", "provider": "aws"}, {"name": "a", "provider": "aws"}]),
        "volume_snapshot_locations[1].name",
        "not used",
    ),
    ("namespace", params(namespace="Velero"), "namespace", "DNS-1123"),
    ("hook-conflicts", params(hook_conflicts="ignore"), "hook_conflicts", "error, warn"),
    ("expiring-within", params(expiring_within="1 day"), "expiring_within", "Go duration"),
]


@pytest.mark.parametrize("case", BAD, ids=[case[0] for case in BAD])
def test_bad_input_names_the_option_and_what_is_allowed(case):
    _id, bad, path, allowed = case
    with pytest.raises(VeleroParamError) as info:
        validate(bad)
    message = str(info.value)
    assert message.startswith((path + "=", path + ":")), message
    assert allowed in message, message


def test_at_least_25_bad_inputs():
    assert len(BAD) >= 25


def test_secrets_never_in_error_messages():
    bad = params(backup_storage_location=dict(BSL, credential={"name": "c", "secret": "AKIA-SECRET"}))
    with pytest.raises(VeleroParamError) as info:
        validate(bad)
    assert "AKIA-SECRET" not in str(info.value)


def test_good_input_becomes_velero_objects():
    normalized, warnings = validate(params())
    objects = manifests(normalized)
    assert [o["kind"] for o in objects] == ["BackupStorageLocation", "Schedule"]
    bsl, schedule = objects
    assert bsl["metadata"] == {"name": "default", "namespace": "velero"}
    assert bsl["spec"]["config"] == {"region": "us-east-1", "s3ForcePathStyle": "true"}
    assert bsl["spec"]["credential"] == {"name": "cloud-credentials", "key": "cloud"}
    assert schedule["spec"]["schedule"] == "0 */6 * * *"
    assert schedule["spec"]["template"]["ttl"] == "720h0m0s"
    assert schedule["spec"]["template"]["excludedNamespaces"] == ["kube-system"]
    assert schedule["metadata"]["annotations"] == {"gpuops.cluster/rpo": "12h0m0s"}
    assert warnings == []


def test_rpo_equal_to_the_period_warns_that_one_missed_run_breaches_it():
    _normalized, warnings = validate(params([good_schedule(rpo="6h")]))
    assert len(warnings) == 1 and "one missed or failed run" in warnings[0]


def test_hook_conflict_can_be_a_warning():
    normalized, warnings = validate(
        params([good_schedule(excluded_resources=["pods"], hooks=[POD_HOOK])], hook_conflicts="warn")
    )
    assert any("can never run" in w for w in warnings)
    hook = normalized["schedules"][0]["spec"]["template"]["hooks"]["resources"][0]
    assert hook["pre"] == [{"exec": {"command": ["/sbin/fsfreeze", "--freeze", "/data"], "onError": "Fail"}}]


def test_redaction_hides_ca_and_secret_config_values():
    normalized, _w = validate(
        params(
            backup_storage_location=dict(
                BSL,
                ca_cert="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                config={"kmsKeyId": "k", "secretAccessKey": "s3cr3t"},
            )
        )
    )
    shown = str(redact(manifests(normalized)[0]))
    assert "s3cr3t" not in shown and "MIIB" not in shown and "TUlJ" not in shown
    assert "cloud-credentials" in shown


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("0 */6 * * *", 6 * 3600),
        ("@daily", 86400),
        ("@every 90m", 5400),
        ("0 2 * * 0", 7 * 86400),  # weekly full
        ("30 1,13 * * *", 12 * 3600),
        ("0 0 1 * *", 31 * 86400),
        ("0 9 * * 1-5", 3 * 86400 - 0),  # Friday 09:00 -> Monday 09:00
        ("0 0 29 2 *", (366 + 365 * 3) * 86400),  # leap days only
    ],
)
def test_longest_gap_between_runs(text, seconds):
    assert durations.longest_gap(text) == seconds


def test_go_durations():
    assert durations.parse_duration("1h30m") == 5400
    assert durations.parse_duration("720h0m0s") == 720 * 3600
    assert durations.parse_duration("1.5h") == 5400
    assert durations.format_duration(5400) == "1h30m0s"
    for bad in ("", "1", "h", "1d", "1h 30m", "--1h"):
        with pytest.raises(durations.DurationError):
            durations.parse_duration(bad)


def test_next_runs_follow_the_cron():
    after = datetime.datetime(2026, 1, 1, 5, 0)
    assert durations.next_runs("0 */6 * * *", after, 3) == [
        datetime.datetime(2026, 1, 1, 6, 0),
        datetime.datetime(2026, 1, 1, 12, 0),
        datetime.datetime(2026, 1, 1, 18, 0),
    ]
