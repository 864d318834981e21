"""Helm against the sandbox's charts, for the tests of both tiers that run the real helm 3 binary
(`make helm` puts it in the venv).

No chart repository is reachable here, so sandbox/charts/repo.py serves the sandbox's charts on
127.0.0.1 at the version a role pins, and helm keeps its configuration, cache and repositories in
the test's folder (HELM_*_HOME). The unit tier (tests/unit/kube_api/conftest.py) puts
tests/helpers on sys.path; the integration tests that use this module add it themselves."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]  # tests/helpers/ -> the repository
REPO_SERVER = REPO_ROOT / "sandbox" / "charts" / "repo.py"


def pinned_chart_version(role: str, variable: str) -> str:
    """The chart version `role` pins: `variable` of its defaults/main.yml."""
    defaults = yaml.safe_load((REPO_ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    return defaults[variable]


@contextlib.contextmanager
def chart_repository(directory: Path, chart: str, version: str, helm: Path) -> Iterator[str]:
    """The sandbox chart repository serving `chart` at `version` from `directory` on 127.0.0.1
    (started here, stopped by its PID): yields its URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO_SERVER),
            "--dir",
            str(directory),
            "--chart",
            f"{chart}={version}",
            "--helm",
            str(helm),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if "serving" not in line:
        process.kill()
        process.wait()
        raise RuntimeError(f"chart repository did not start: {line!r}")
    try:
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def helm_env(home: Path, helm: Path) -> dict[str, str]:
    """helm's configuration, cache and data under `home`, and `helm`'s folder first on PATH (the
    kubernetes.core helm modules run the helm they find there)."""
    return {
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
        "PATH": f"{helm.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
