"""mig_partition against bad input, table-driven, through AnsibleModule and the NVML simulator.

Every case must be rejected before anything changes: the module fails, its message names the
option (and, where there is a set, the allowed values), the simulator's state file is byte for
byte what it was, and no secret from a file it was pointed at shows up anywhere in the result.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import simhost

SECRET = "s3cr3t-hunter2-Z9"
BALANCED = {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}
ONE_OFF = {"version": "v1", "mig-configs": {"c": [{"devices": "all", "mig-enabled": False}]}}


def _config(entries, name="c"):
    return {"version": "v1", "mig-configs": {name: entries}}


@pytest.fixture
def files(tmp_path):
    """Files the cases point config_file at."""
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$%s:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n" % SECRET)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    big.write_text("version: v1\n# %s\n" % ("x" * (2 * 1024 * 1024)))
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: v1\nmig-configs:\n  c: [ {devices: all, password: %s\n" % SECRET)
    keyed = tmp_path / "keyed.yaml"
    keyed.write_text("version: v1\npassword: %s\nmig-configs: {c: [{devices: all, mig-enabled: false}]}\n" % SECRET)
    valued = tmp_path / "valued.yaml"
    valued.write_text(
        "version: v1\nmig-configs: {c: [{devices: all, mig-enabled: true, device-filter: '%s', mig-devices: {}}]}\n"
        % SECRET
    )
    return {
        "secret": secret,
        "fifo": fifo,
        "big": big,
        "broken": broken,
        "keyed": keyed,
        "valued": valued,
        "dir": tmp_path,
    }


# (case id, fixture, module args (a callable of the files fixture for file cases), needles)
CASES = [
    ("gpus-empty", "a100", {"gpus": [], "layout": BALANCED}, ["gpus:", "at least one GPU", "allowed: all"]),
    ("gpus-index-99", "a100", {"gpus": ["99"], "layout": BALANCED}, ["gpus: 99 matches no GPU", "0, 1, 2"]),
    ("gpus-negative", "a100", {"gpus": ["-1"], "layout": BALANCED}, ["gpus[0]: '-1'", "allowed: all"]),
    ("gpus-not-uuid", "a100", {"gpus": ["GPU-nope"], "layout": BALANCED}, ["gpus[0]", "GPU UUID"]),
    ("gpus-float", "a100", {"gpus": ["1e3"], "layout": BALANCED}, ["gpus[0]: '1e3'", "allowed"]),
    ("gpus-injection", "a100", {"gpus": ["0; rm -rf /"], "layout": BALANCED}, ["gpus[0]", "not a GPU selector"]),
    ("gpus-huge-index", "a100", {"gpus": ["4096"], "layout": BALANCED}, ["gpus[0]", "0-1023"]),
    (
        "gpus-unknown-uuid",
        "a100",
        {"gpus": ["GPU-00000000-0000-0000-0000-000000000000"], "layout": BALANCED},
        ["matches no GPU", "GPU UUID ("],
    ),
    ("filter-empty", "a100", {"device_filter": [], "layout": BALANCED}, ["device_filter:", "non-empty list"]),
    (
        "filter-garbage",
        "a100",
        {"device_filter": ["0xZZZZ10DE"], "layout": BALANCED},
        ["device_filter[0]", "0xDDDDVVVV"],
    ),
    ("filter-no-match", "a100", {"device_filter": ["0x233010DE"], "layout": BALANCED}, ["device_filter", "0x20B010DE"]),
    ("layout-and-file", "a100", {"layout": BALANCED, "config_file": "/x", "config_name": "c"}, ["mutually exclusive"]),
    ("layout-and-config", "a100", {"layout": BALANCED, "config": ONE_OFF, "config_name": "c"}, ["mutually exclusive"]),
    ("file-empty-path", "a100", {"config_file": "", "config_name": "c"}, ["config_file: empty path"]),
    ("file-without-name", "a100", {"config_file": "/x"}, ["config_name: required with config_file"]),
    ("name-without-config", "a100", {"config_name": "c", "layout": BALANCED}, ["config_name: only used with"]),
    ("config-without-name", "a100", {"config": ONE_OFF}, ["config_name: required with config"]),
    ("name-garbage", "a100", {"config": ONE_OFF, "config_name": "a b;c"}, ["config_name:", "allowed: letters"]),
    ("file-secret", "a100", lambda f: {"config_file": str(f["secret"]), "config_name": "c"}, ["config_file", "shadow"]),
    (
        "file-missing",
        "a100",
        lambda f: {"config_file": str(f["dir"] / "nope"), "config_name": "c"},
        ["cannot read", "nope"],
    ),
    ("file-directory", "a100", lambda f: {"config_file": str(f["dir"]), "config_name": "c"}, ["not a regular file"]),
    (
        "file-fifo",
        "a100",
        lambda f: {"config_file": str(f["fifo"]), "config_name": "c"},
        ["fifo", "not a regular file"],
    ),
    ("file-too-big", "a100", lambda f: {"config_file": str(f["big"]), "config_name": "c"}, ["larger than"]),
    (
        "file-broken-yaml",
        "a100",
        lambda f: {"config_file": str(f["broken"]), "config_name": "c"},
        ["not valid YAML (line"],
    ),
    (
        "file-unknown-key",
        "a100",
        lambda f: {"config_file": str(f["keyed"]), "config_name": "c"},
        ["password: unknown key"],
    ),
    ("file-bad-value", "a100", lambda f: {"config_file": str(f["valued"]), "config_name": "c"}, ["device-filter[0]"]),
    ("config-v2", "a100", {"config": {"version": "v2", "mig-configs": {}}, "config_name": "c"}, ["config: version"]),
    (
        "config-device-99",
        "a100",
        {
            "config": _config([{"devices": [0, 99], "mig-enabled": True, "mig-devices": {"7g.40gb": 1}}]),
            "config_name": "c",
        },
        ["devices: GPU 99 not on this host", "0-7"],
    ),
    (
        "config-two-entries",
        "a100",
        {
            "config": _config(
                [
                    {"devices": "all", "mig-enabled": True, "mig-devices": {"7g.40gb": 1}},
                    {"devices": [3], "mig-enabled": False},
                ]
            ),
            "config_name": "c",
        },
        ["GPU 3", "matched by mig-configs.c[0] and mig-configs.c[1]"],
    ),
    (
        "config-unknown-name",
        "a100",
        {"config": ONE_OFF, "config_name": "d"},
        ["unknown MIG config 'd'", "available: c"],
    ),
    (
        "config-count-float",
        "a100",
        {
            "config": _config([{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 1e12}}]),
            "config_name": "c",
        },
        ["mig-devices.1g.5gb: count must be an integer 0-64"],
    ),
    (
        "config-count-65",
        "a100",
        {
            "config": _config([{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 65}}]),
            "config_name": "c",
        },
        ["count must be an integer 0-64"],
    ),
    ("layout-over-max", "a100", {"layout": {"1g.5gb": 8}}, ["layout", "1g.5gb", "maximum of 7"]),
    ("layout-negative", "a100", {"layout": {"1g.5gb": -1}}, ["layout.1g.5gb", "non-negative int"]),
    ("layout-float", "a100", {"layout": {"1g.5gb": 1e12}}, ["layout.1g.5gb", "non-negative int"]),
    ("layout-string", "a100", {"layout": {"1g.5gb": "2"}}, ["layout.1g.5gb", "non-negative int"]),
    ("layout-unknown-profile", "a100", {"layout": {"bogus": 1}}, ["unknown profile 'bogus'", "allowed: 1g.5gb"]),
    ("layout-no-room", "a100", {"layout": {"4g.20gb": 1, "3g.20gb": 1, "1g.5gb": 1}}, ["layout", "no room"]),
    (
        "layout-bad-ci",
        "a100",
        {"layout": {"3g.20gb": {"count": 1, "compute_instances": {"9c.3g.20gb": 1}}}},
        ["compute_instances", "allowed: 1c.3g.20gb"],
    ),
    (
        "layout-bad-key",
        "a100",
        {"layout": {"3g.20gb": {"cnt": 1}}},
        ["unknown key", "allowed: count, compute_instances"],
    ),
    ("layout-with-mig-off", "a100", {"layout": BALANCED, "mig_enabled": False}, ["layout: must be empty"]),
    ("reset-empty", "a100", {"layout": BALANCED, "reset_command": []}, ["reset_command: must be a non-empty argv"]),
    (
        "reset-newline",
        "a100",
        {"layout": BALANCED, "reset_command": ["nvidia-smi", "-i", "{uuid}\nExecStartPre=/bin/sh"]},
        ["reset_command[2]", "without NUL or line breaks"],
    ),
    (
        "reset-placeholder",
        "a100",
        {"layout": BALANCED, "reset_command": ["nvidia-smi", "{gpu}"]},
        ["unknown placeholder {gpu}", "{uuid}"],
    ),
    (
        "reset-empty-item",
        "a100",
        {"layout": BALANCED, "reset_command": [""]},
        ["reset_command[0]: must be a non-empty string"],
    ),
    ("force-timeout-negative", "a100", {"layout": BALANCED, "force_timeout": -1}, ["force_timeout", "0-3600"]),
    ("force-timeout-huge", "a100", {"layout": BALANCED, "force_timeout": 1e20}, ["force_timeout", "0-3600"]),
    ("reset-policy-bogus", "a100", {"layout": BALANCED, "reset_policy": "always"}, ["reset_policy", "never, if_idle"]),
    ("mig-enabled-maybe", "a100", {"layout": BALANCED, "mig_enabled": "maybe"}, ["mig_enabled"]),
    ("non-mig-gpu-named", "l40s", {"gpus": ["0"], "layout": {"1g.5gb": 1}}, ["GPU 0", "cannot do MIG"]),
    (
        "busy-without-force",
        "h100mixed",
        {"gpus": ["0"], "layout": {"7g.80gb": 1}},
        ["running processes", "pid 41877", "force"],
    ),
]
FIXTURES = {"a100": "a100-sxm4-40gb-x8", "l40s": "l40s-x4", "h100mixed": "h100-mig-mixed"}


def test_the_table_is_large_enough():
    assert len(CASES) >= 40
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("case", "fixture", "args", "needles"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_before_any_change(monkeypatch, tmp_path, files, case, fixture, args, needles):
    host = simhost.SimHost(monkeypatch, tmp_path)
    state = host.activate(FIXTURES[fixture])
    monkeypatch.setitem(sys.modules, "pynvml", host.nvml)
    snapshot = state.read_bytes()
    if callable(args):
        args = args(files)
    result = simhost.run_module("mig_partition", args)
    text = json.dumps(result)
    assert result.get("failed") is True, (case, result)
    for needle in needles:
        assert needle in result["msg"], (case, needle, result["msg"])
    assert state.read_bytes() == snapshot, case
    assert SECRET not in text, (case, "the file's content leaked into the result")
    assert not result.get("changed"), case
