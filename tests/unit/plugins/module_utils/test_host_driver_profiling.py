# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RmProfilingAdminOnly from /proc/driver/nvidia/params (gpu_probe's driver.profiling_admin_only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils import host_driver as hd

REPO = Path(__file__).resolve().parents[4]
PARAMS = "ResmanDebugLevel: 4294967295\nRmLogonRC: 1\nRmProfilingAdminOnly: %s\nEnableMSI: 1\n"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("0", False), ("x", None)])
def test_profiling_admin_only_from_params(tmp_path, tree, value, expected):
    tree(tmp_path, {"proc/modules": "nvidia 5 1 - Live 0x0\n", "proc/driver/nvidia/params": PARAMS % value})
    _unused, driver = hd.read_host_driver(str(tmp_path))
    assert driver["state"] == "loaded"
    assert driver["profiling_admin_only"] is expected


def test_unknown_without_params_or_driver(tmp_path, tree):
    tree(tmp_path, {"proc/modules": "nvidia 5 1 - Live 0x0\n"})
    assert hd.read_host_driver(str(tmp_path))[1]["profiling_admin_only"] is None
    # Not loaded: a stale params file is not read.
    tree(tmp_path / "off", {"proc/driver/nvidia/params": PARAMS % "0"})
    assert hd.read_host_driver(str(tmp_path / "off"))[1]["profiling_admin_only"] is None


def test_parse_driver_params():
    assert hd.parse_driver_params("A: 1\nB:2\n\nnot a param\n") == {"A": "1", "B": "2"}
    assert hd.parse_driver_params(None) == {}


def test_sandbox_host_tree_reports_it(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "sandbox" / "python"))
    from gpuops_sim import fixture as fixture_mod  # noqa: PLC0415
    from gpuops_sim import hostroot  # noqa: PLC0415

    path = str(REPO / "sandbox" / "fixtures" / "a100-sxm4-40gb-x8.yml")
    fixture = fixture_mod.load(path)
    hostroot.render(fixture, str(tmp_path / "on"))
    assert hd.read_host_driver(str(tmp_path / "on"))[1]["profiling_admin_only"] is True
    fixture["driver"]["profiling_admin_only"] = False
    hostroot.render(fixture, str(tmp_path / "off"))
    assert hd.read_host_driver(str(tmp_path / "off"))[1]["profiling_admin_only"] is False
