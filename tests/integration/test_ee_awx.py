"""site.yml in the execution environment through ansible-runner, as AWX runs it, unsliced and
as a sliced job (job_slice_count 3) whose slice reports merge into the unsliced run's report.

The image is built by tools/ee.py (make ee; cached by recipe hash). Each run gets its own fresh
sandbox fleet and Kubernetes API stand-in; the two runs go concurrently. The jobs reach the API
only through what AWX's Kubernetes credential injects (K8S_AUTH_*): gpuops_kubeconfig is null.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, SANDBOX_INVENTORY, fleet_up, start_kube

sys.path.insert(0, str(REPO_ROOT / "tools"))
import awx_jobs  # noqa: E402  (tools/awx_jobs.py)

SLICES = 3
# The cluster layers after the fleet report (security baseline, monitoring, cost report; the
# autoscaling and backups layers need the sandbox's services, not started here) run in
# test_site_sandbox; here the jobs keep to the host layers, the GPU
# Operator and the report merge that slicing is about. The image's Python libraries for those
# layers (boto3, matplotlib) are checked by the EE build's smoke test.
JOB_TEMPLATE_VARS = {"gpuops_security_baseline": False, "gpuops_monitoring": False, "gpuops_cost_report": False}


@pytest.fixture(scope="module")
def ee_image():
    build = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "ee.py"), "build"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return (REPO_ROOT / "build" / "ee" / "image").read_text().strip()


def _one_run(base: Path, image: str, slices: int) -> dict:
    sandbox_dir = base / "sandbox"
    fixtures = fleet_up.bring_up(SANDBOX_INVENTORY, sandbox_dir)
    kube = start_kube(base / "kube", fleet=fleet_up.kube_fleet_path(sandbox_dir))
    try:
        summary = awx_jobs.run_site(
            image=image,
            sandbox=sandbox_dir,
            kubeconfig=kube.kubeconfig,
            out=base / "awx",
            slices=slices,
            extravars=JOB_TEMPLATE_VARS,
        )
        policy = (
            kube.dynamic().resources.get(api_version="nvidia.com/v1", kind="ClusterPolicy").get(name="cluster-policy")
        )
        summary["cluster_policy_state"] = (policy.to_dict().get("status") or {}).get("state")
    finally:
        kube.stop()
    summary["fixtures"] = fixtures
    summary["base"] = base
    return summary


@pytest.fixture(scope="module")
def awx_runs(ee_image, tmp_path_factory):
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        whole = pool.submit(_one_run, tmp_path_factory.mktemp("unsliced"), ee_image, 1)
        sliced = pool.submit(_one_run, tmp_path_factory.mktemp("sliced"), ee_image, SLICES)
        runs = {"image": ee_image, "unsliced": whole.result(), "sliced": sliced.result()}
    # The times, for the record (build/awx-timings.json; make test prints nothing of it).
    timings = {
        name: {"total_s": run["seconds"], "jobs": {job["ident"]: job["seconds"] for job in run["jobs"]}}
        for name, run in (("unsliced", runs["unsliced"]), ("sliced", runs["sliced"]))
    }
    timings["sliced"]["merge_s"] = runs["sliced"]["merge"]["seconds"]
    (REPO_ROOT / "build").mkdir(exist_ok=True)
    (REPO_ROOT / "build" / "awx-timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    return runs


def _report(summary: dict) -> tuple[bytes, bytes]:
    folder = Path(summary["report_dir"])
    return (folder / "fleet.json").read_bytes(), (folder / "fleet.txt").read_bytes()


def test_site_runs_in_the_ee_through_ansible_runner(awx_runs):
    run = awx_runs["unsliced"]
    (job,) = run["jobs"]
    stdout = Path(job["stdout"]).read_text()
    assert job["rc"] == 0 and job["status"] == "successful", stdout[-6000:]
    # Every sandbox host and the controller ran, nothing failed or was unreachable.
    assert set(job["recap"]) == set(run["fixtures"]) | {"localhost"}, job["recap"]
    assert all(r["failures"] == 0 and r["dark"] == 0 for r in job["recap"].values()), job["recap"]
    # It ran in the image, in a container, as AWX runs jobs.
    command = json.loads((run["base"] / "awx" / "site" / "artifacts" / "site" / "command").read_text())
    assert command["command"][0] == "docker" and awx_runs["image"] in command["command"], command
    assert "--network=host" in command["command"]
    # The cluster layer reached the API with the injected credential only.
    envvars = json.loads((run["base"] / "awx" / "site" / "env" / "envvars").read_text())
    extravars = json.loads((run["base"] / "awx" / "site" / "env" / "extravars").read_text())
    assert (
        envvars["K8S_AUTH_HOST"].startswith(("http://127.0.0.1:", "https://127.0.0.1:")) and envvars["K8S_AUTH_API_KEY"]
    )
    assert extravars["gpuops_kubeconfig"] is None
    assert run["cluster_policy_state"] == "ready"
    # The report: a file, and the same data published with set_stats (the job's artifacts).
    report = json.loads(_report(run)[0])
    assert job["artifacts"]["gpuops_fleet_report"] == report
    assert job["artifacts"]["gpuops_fleet_report_job_1001"] == report
    assert [h["name"] for h in report["hosts"]] == sorted(run["fixtures"])
    assert report["totals"]["hosts_probed"] == len(run["fixtures"])


def test_slices_follow_awx_and_share_nothing(awx_runs):
    run = awx_runs["sliced"]
    hosts = sorted(run["fixtures"])
    assert len(run["jobs"]) == SLICES
    for number, job in enumerate(run["jobs"], start=1):
        stdout = Path(job["stdout"]).read_text()
        assert job["rc"] == 0 and job["status"] == "successful", stdout[-6000:]
        # AWX: hosts in name order, slice k of n takes hosts[k-1::n].
        assert job["hosts"] == hosts[number - 1 :: SLICES], job["hosts"]
        assert set(job["recap"]) == set(job["hosts"]) | {"localhost"}, job["recap"]
        # Each slice reports its own hosts only.
        sliced_report = job["artifacts"][f"gpuops_fleet_report_job_{1000 + number}"]
        assert [h["name"] for h in sliced_report["hosts"]] == job["hosts"]
    assert run["cluster_policy_state"] == "ready"


def test_merged_slice_reports_equal_the_unsliced_report(awx_runs):
    sliced, whole = awx_runs["sliced"], awx_runs["unsliced"]
    merge = sliced["merge"]
    assert merge["rc"] == 0 and merge["status"] == "successful", Path(merge["stdout"]).read_text()[-6000:]
    merged_json, merged_txt = _report(sliced)
    whole_json, whole_txt = _report(whole)
    assert merged_json == whole_json
    assert merged_txt == whole_txt
    assert merge["artifacts"]["gpuops_fleet_report"] == json.loads(whole_json)
