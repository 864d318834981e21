"""Helpers for the container_toolkit scenario's testinfra tests."""

import os
import re
import subprocess
from pathlib import Path

import pytest
import testinfra

SCENARIO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def inventory():
    return os.environ["MOLECULE_INVENTORY_FILE"]


@pytest.fixture(scope="session")
def node(inventory):
    """The converged container (docker exec: much faster than the ansible backend)."""
    return testinfra.get_host("docker://gpuops-ctk-host")


@pytest.fixture(scope="session")
def fresh(inventory):
    """The container only ever touched in check mode."""
    return testinfra.get_host("docker://gpuops-ctk-fresh")


def run_playbook(inventory, playbook, *args):
    """Run a playbook of this scenario; returns (exit code, output, {host: recap counters})."""
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, str(SCENARIO / playbook), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=SCENARIO,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0"},
    )
    output = proc.stdout + proc.stderr
    recap = {}
    for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.MULTILINE):
        recap[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return proc.returncode, output, recap
