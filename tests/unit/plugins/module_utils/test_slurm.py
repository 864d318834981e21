"""slurm: scontrol/squeue parsing and the drain/resume logic of slurm_node, against the Slurm stand-in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils import slurm

ROOT = Path(__file__).resolve().parents[4]
STANDIN = ROOT / "sandbox" / "slurm"


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUOPS_SLURM_STATE", str(tmp_path / "state.json"))

    def admin(*args):
        subprocess.run(
            [sys.executable, str(STANDIN / "slurm_standin.py"), "admin", *args], check=True, capture_output=True
        )

    admin("init", "--node", "n1", "--node", "n2")

    def run(argv):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=dict(os.environ))
        return proc.returncode, proc.stdout, proc.stderr

    return admin, run


def params(**overrides):
    base = dict(
        name="n1",
        state=None,
        owner="maint",
        reason="firmware",
        wait=True,
        wait_timeout=30,
        poll_interval=1,
        scontrol=str(STANDIN / "bin" / "scontrol"),
        squeue=str(STANDIN / "bin" / "squeue"),
    )
    base.update(overrides)
    return base


def test_parse_node_states():
    text = (
        "NodeName=n1 Arch=x86_64\n   State=ALLOCATED+DRAIN ThreadsPerCore=1\n"
        "   Reason=gpuops maint: fw [root@2025-01-01T00:00:00]\n"
    )
    node = slurm.parse_node(text)
    assert node == {
        "name": "n1",
        "state": "ALLOCATED+DRAIN",
        "base_state": "ALLOCATED",
        "flags": ["DRAIN"],
        "drained": True,
        "down": False,
        "reason": "gpuops maint: fw",
    }
    with pytest.raises(slurm.SlurmError):
        slurm.parse_node("garbage")


def test_drain_waits_for_jobs_then_resume_only_ours(cluster):
    admin, run = cluster
    admin("submit", "--node", "n1", "--seconds", "30")
    polls = []

    def sleep(seconds):
        polls.append(seconds)
        if len(polls) == 2:  # the job ends while the node drains (the stand-in's first job is 1001)
            admin("end", "--job", "1001")

    result = slurm.converge(params(state="drained"), run, sleep=sleep)
    assert result["changed"] and result["jobs"] == 0 and len(polls) >= 2
    assert result["node"]["drained"] and result["node"]["ours"]
    assert slurm.converge(params(state="drained"), run)["changed"] is False  # already ours
    assert slurm.converge(params(state="resumed"), run)["changed"] is True
    assert slurm.converge(params(state="resumed"), run)["changed"] is False
    # Drained by an administrator: neither drained again nor resumed by us.
    run([params()["scontrol"], "update", "nodename=n2", "state=drain", "reason=hardware"])
    held = slurm.converge(params(name="n2", state="drained"), run)
    assert held["changed"] is False and held["held_by_others"]
    assert slurm.converge(params(name="n2", state="resumed"), run)["changed"] is False


def test_check_mode_predicts_and_changes_nothing(cluster):
    _admin, run = cluster
    result = slurm.converge(params(state="drained"), run, check_mode=True)
    assert result["changed"] is True
    assert slurm.converge(params(), run)["node"]["drained"] is False


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"name": "n1;reboot"}, "name: not a Slurm node name"),
        ({"owner": "Bad Owner"}, "owner:"),
        ({"state": "drained", "reason": "a\nb"}, "reason:"),
        ({"state": "drained", "reason": "x" * 201}, "reason:"),
    ],
)
def test_bad_input(cluster, overrides, needle):
    _admin, run = cluster
    with pytest.raises(ValueError, match=needle):
        slurm.converge(params(**overrides), run)


def test_unknown_node_is_an_error_naming_it(cluster):
    _admin, run = cluster
    with pytest.raises(slurm.SlurmError, match="scontrol show node nope"):
        slurm.converge(params(name="nope"), run)
