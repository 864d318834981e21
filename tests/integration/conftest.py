"""Integration tier: real ansible-playbook runs against the sandbox fleet."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "sandbox"))

import fleet_up  # noqa: E402  (lives in sandbox/, shared with `make sandbox-up`)

VENV_BIN = Path(sys.executable).parent
SANDBOX_INVENTORY = REPO_ROOT / "inventories" / "sandbox"
RECAP_LINE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


class PlaybookRun:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP as host -> {ok, changed, unreachable, failed}."""
        recap = {}
        in_recap = False
        for line in self.stdout.splitlines():
            if line.startswith("PLAY RECAP"):
                in_recap = True
                continue
            match = RECAP_LINE.match(line) if in_recap else None
            if match:
                host, ok, changed, unreachable, failed = match.groups()
                recap[host] = {
                    "ok": int(ok),
                    "changed": int(changed),
                    "unreachable": int(unreachable),
                    "failed": int(failed),
                }
        return recap

    def __repr__(self):  # shown by pytest when an assertion on a run fails
        return f"<rc={self.rc}\n{self.stdout[-6000:]}\n{self.stderr[-3000:]}>"


def run_playbook(
    playbook: Path, *args: str, env: dict | None = None, inventory: Path = SANDBOX_INVENTORY
) -> PlaybookRun:
    full_env = dict(
        os.environ,
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
    )
    full_env.update(env or {})
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,  # callers assert on rc with the output in the message
    )
    return PlaybookRun(proc)


def load_fixture(name: str) -> dict:
    return yaml.safe_load(fleet_up.fixture_path(name).read_text())


@pytest.fixture
def sandbox(tmp_path):
    """A freshly rendered sandbox fleet and an empty reports folder, wired through env vars."""
    sandbox_dir = tmp_path / "sandbox"
    fixtures = fleet_up.bring_up(SANDBOX_INVENTORY, sandbox_dir)
    reports = tmp_path / "reports"
    return {
        "dir": sandbox_dir,
        "reports": reports,
        "fixtures": fixtures,
        "env": {"GPUOPS_SANDBOX_DIR": str(sandbox_dir), "GPUOPS_REPORTS_DIR": str(reports)},
    }
