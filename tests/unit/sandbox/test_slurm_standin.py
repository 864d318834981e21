"""The Slurm stand-in keeps the scontrol/squeue behaviour the upgrade playbook relies on."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BIN = ROOT / "sandbox" / "slurm" / "bin"
STANDIN = ROOT / "sandbox" / "slurm" / "slurm_standin.py"


@pytest.fixture
def cluster(tmp_path):
    env = dict(os.environ, GPUOPS_SLURM_STATE=str(tmp_path / "slurm.json"))

    def run(*args, check=False):
        if args[0] in ("scontrol", "squeue"):
            command = [str(BIN / args[0]), *args[1:]]
        else:
            command = [sys.executable, str(STANDIN), *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=check, timeout=30)

    run("admin", "init", "--node", "n1", "--node", "n2", check=True)
    return run


def _field(text, name):
    return next(word.split("=", 1)[1] for word in text.split() if word.startswith(name + "="))


def test_drain_waits_for_jobs_then_resume(cluster):
    assert "Submitted batch job 1001" in cluster("admin", "submit", "--node", "n1", "--seconds", "6").stdout
    lines = cluster("squeue", "-h", "-w", "n1").stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].split() == ["1001", "gpu", "train", "alice", "R", lines[0].split()[5], "1", "n1"]
    assert cluster("squeue", "-h", "-w", "n2").stdout == ""

    result = cluster("scontrol", "update", "NodeName=n1", "State=DRAIN", "Reason=driver upgrade")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    shown = cluster("scontrol", "show", "node", "n1").stdout
    assert _field(shown, "State") == "ALLOCATED+DRAIN"
    assert "Reason=driver upgrade [" in shown
    deadline = time.monotonic() + 30
    while cluster("squeue", "-h", "-w", "n1").stdout:  # the job ends by itself
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert _field(cluster("scontrol", "show", "node", "n1").stdout, "State") == "IDLE+DRAIN"

    assert cluster("scontrol", "update", "nodename=n1", "state=resume").returncode == 0
    shown = cluster("scontrol", "show", "node", "n1").stdout
    assert _field(shown, "State") == "IDLE"
    assert "Reason=" not in shown


def test_header_and_format(cluster):
    cluster("admin", "submit", "--node", "n2", check=True)
    out = cluster("squeue").stdout.splitlines()
    assert out[0] == "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)"
    assert out[1].startswith("              1001       gpu    train    alice  R ")
    assert cluster("squeue", "-h", "-o", "%i %N").stdout == "1001 n2\n"
    assert cluster("admin", "end", "--job", "1001").returncode == 0
    assert cluster("squeue", "-h").stdout == ""
    assert cluster("admin", "end", "--job", "1001").returncode == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["scontrol", "show", "node", "n9"], "Node n9 not found"),
        (["scontrol", "update", "nodename=n9", "state=drain", "reason=x"], "Invalid node name specified"),
        (["scontrol", "update", "nodename=n1", "state=drain"], "You must specify a reason"),
        (["scontrol", "update", "nodename=n1", "state=resume"], "Invalid node state specified"),
        (["squeue", "-h", "-w", "n9"], "Invalid node name"),
    ],
)
def test_errors_exit_1_with_slurm_messages(cluster, args, message):
    before = cluster("scontrol", "show", "node").stdout
    result = cluster(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""
    assert cluster("scontrol", "show", "node").stdout == before


def test_no_controller(tmp_path):
    env = dict(os.environ, GPUOPS_SLURM_STATE=str(tmp_path / "missing.json"))
    result = subprocess.run([str(BIN / "squeue")], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "Unable to contact slurm controller" in result.stderr
