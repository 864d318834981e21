"""playbooks/site.yml end to end against the sandbox fleet.

Expectations are derived from the fixtures (what each simulated host really has), not from
the collection's own output.
"""

from __future__ import annotations

import json
from collections import Counter

import yaml
from conftest import REPO_ROOT, load_fixture, run_playbook

SITE = REPO_ROOT / "playbooks" / "site.yml"
GPU_MODELS = yaml.safe_load((REPO_ROOT / "sandbox" / "python" / "gpuops_sim" / "data" / "gpu_models.yml").read_text())


def expected_host(fixture_name: str) -> dict:
    fixture = load_fixture(fixture_name)
    gpus = fixture.get("gpus") or []
    driver_state = (fixture.get("driver") or {}).get("state", "none")
    if not gpus:
        source = "none"
    elif driver_state == "loaded":
        source = "nvml"
    else:
        source = "pci"
    lost = sum(1 for gpu in gpus if any(f.get("error") == "GPU_IS_LOST" for f in gpu.get("faults") or []))
    models = Counter(GPU_MODELS[gpu["model"]]["nvml_name"] for gpu in gpus)
    return {
        "count": len(gpus),
        "source": source,
        "lost": lost,
        "models": dict(models),
        "driver_state": driver_state,
        "nvswitches": len(fixture.get("nvswitches") or []),
    }


def test_site_probes_every_host_writes_the_report_and_a_second_run_changes_nothing(sandbox, kube):
    # One sandbox for both halves: a site.yml run is the costliest thing in this tier.
    run = run_playbook(SITE, env={**sandbox["env"], **kube.env})
    assert run.rc == 0, run
    assert run.recap["localhost"]["changed"] > 0, run  # the report was written
    recap = run.recap
    assert set(sandbox["fixtures"]) <= set(recap), run
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()), run

    report = json.loads((sandbox["reports"] / "fleet.json").read_text())
    by_name = {entry["name"]: entry for entry in report["hosts"]}
    assert set(by_name) == set(sandbox["fixtures"])
    for host, fixture_name in sandbox["fixtures"].items():
        want, got = expected_host(fixture_name), by_name[host]
        assert got["probed"], host
        assert got["gpu_count"] == want["count"], host
        assert got["source"] == want["source"], host
        assert got["driver"]["state"] == want["driver_state"], host
        assert got["nvswitch_count"] == want["nvswitches"], host
        if want["source"] == "nvml":
            assert got["models"] == want["models"], host
            assert got["health"]["unhealthy"] == want["lost"], host
            assert got["health"]["healthy"] + got["health"]["degraded"] == want["count"] - want["lost"], host
        if want["source"] == "pci":
            assert got["health"]["unknown"] == want["count"], host
            assert got["nvml_reason"], host

    assert report["totals"]["gpus"] == sum(expected_host(f)["count"] for f in sandbox["fixtures"].values())
    table = (sandbox["reports"] / "fleet.txt").read_text()
    for host in sandbox["fixtures"]:
        assert host in table
    # The lost GPU is named in the problems section with its host.
    lost_hosts = [h for h, f in sandbox["fixtures"].items() if expected_host(f)["lost"]]
    assert lost_hosts
    for host in lost_hosts:
        assert any(line.strip().startswith("- %s GPU" % host) and "unhealthy" in line for line in table.splitlines()), (
            table
        )

    # Second run: nothing changes, the report is not rewritten.
    report_file = sandbox["reports"] / "fleet.json"
    mtime = report_file.stat().st_mtime_ns
    second = run_playbook(SITE, env={**sandbox["env"], **kube.env})
    assert second.rc == 0, second
    assert {host: r["changed"] for host, r in second.recap.items()} == {host: 0 for host in second.recap}, second
    assert report_file.stat().st_mtime_ns == mtime


def test_check_mode_writes_nothing(sandbox, kube):
    run = run_playbook(SITE, "--check", env={**sandbox["env"], **kube.env})
    assert run.rc == 0, run
    assert not sandbox["reports"].exists()
    # The probe itself still ran (it supports check mode) and the report would be written.
    assert run.recap["localhost"]["changed"] > 0, run
