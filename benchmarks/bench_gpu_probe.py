"""gpu_probe speed: module time on the 8-GPU fixtures, and playbook wall time across hosts.

Run from the repository root with the venv's python:

    .venv/bin/python benchmarks/bench_gpu_probe.py [--repeat 20] [--hosts 1,8,32]

Prints:
  1. module time in-process (AnsibleModule + probe, no interpreter start-up), full vs PCI-only,
     median and p90 over --repeat runs, against the 0.25 s target;
  2. module time as its own process (python start-up and imports included, Ansible's
     controller and transport excluded), first run of a fresh state;
  3. ansible-playbook wall time probing 1, 8 and 32 sandbox hosts (8x A100 each), with the
     ratio to the 1-host run measured in the same session;
  4. the module in-process side by side with the baseline revision's code (benchmarks/_baseline.py,
     default bffa4e8), interleaved child processes in the same run, and the ratio new/old.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "build" / "collections"))
sys.path.insert(0, str(REPO_ROOT / "sandbox" / "python"))
sys.path.insert(0, str(REPO_ROOT / "sandbox"))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import _baseline  # noqa: E402
import fleet_up  # noqa: E402

TARGET_S = 0.25
FIXTURES = ("a100-sxm4-40gb-x8", "h100-80gb-hbm3-x8")
MODULE = "ansible_collections.gpuops.cluster.plugins.modules.gpu_probe"


def render(fixture: str, where: Path) -> dict[str, str]:
    root, state = where / "root", where / "nvml-state.json"
    fixture_file = str(fleet_up.fixture_path(fixture))
    fleet_up.sim("render", "--fixture", fixture_file, "--root", str(root))
    fleet_up.sim("reset", "--fixture", fixture_file, "--state", str(state))
    return {"GPUOPS_NVML_SIM_FIXTURE": fixture_file, "GPUOPS_NVML_SIM_STATE": str(state), "GPUOPS_HOST_ROOT": str(root)}


def run_module_in_process(args: dict) -> dict:
    """One module run through AnsibleModule, as Ansible would run it, minus the interpreter."""
    import importlib

    from ansible.module_utils import basic

    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
    basic._ANSIBLE_PROFILE = "legacy"  # what `python -m module args.json` uses by default
    module = importlib.import_module(MODULE)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        module.main()
    return json.loads(out.getvalue())


def time_in_process(env: dict[str, str], collect: list[str], repeat: int) -> list[float]:
    os.environ.update(env)
    samples = []
    for _unused in range(repeat):
        start = time.perf_counter()
        result = run_module_in_process({"collect": collect})
        samples.append(time.perf_counter() - start)
        assert "failed" not in result, result
    return samples


def time_subprocess(env: dict[str, str], collect: list[str], repeat: int) -> list[float]:
    args_file = Path(tempfile.mkstemp(suffix=".json")[1])
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"collect": collect}}))
    full_env = dict(os.environ, **env)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT / "build" / "collections"), str(REPO_ROOT / "sandbox" / "python")]
    )
    samples = []
    for _unused in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", MODULE, str(args_file)], env=full_env, capture_output=True, text=True, check=False
        )
        samples.append(time.perf_counter() - start)
        assert proc.returncode == 0 and '"failed"' not in proc.stdout, proc.stdout + proc.stderr
    args_file.unlink()
    return samples


def time_baseline(repeat: int) -> list[float]:
    """What any module pays before it runs: the interpreter and AnsibleModule's imports."""
    samples = []
    for _unused in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from ansible.module_utils.basic import AnsibleModule"], check=True)
        samples.append(time.perf_counter() - start)
    return samples


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"median {statistics.median(samples) * 1000:7.1f} ms  p90 {p90 * 1000:7.1f} ms"


def write_inventory(where: Path, hosts: int, fixture: str) -> Path:
    inventory = where / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    group_vars = (REPO_ROOT / "inventories" / "sandbox" / "group_vars" / "all.yml").read_text()
    (inventory / "group_vars" / "all.yml").write_text(group_vars)
    names = {f"bench-{i:03d}": {"gpuops_sandbox_fixture": fixture} for i in range(1, hosts + 1)}
    (inventory / "hosts.yml").write_text(
        json.dumps({"all": {"vars": {"gpuops_repo_root": str(REPO_ROOT)}, "children": {"gpu_nodes": {"hosts": names}}}})
    )
    return inventory


def time_playbook(hosts: int, fixture: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        inventory = write_inventory(where, hosts, fixture)
        sandbox_dir = where / "sandbox"
        fleet_up.bring_up(inventory, sandbox_dir)
        env = dict(os.environ, GPUOPS_SANDBOX_DIR=str(sandbox_dir), ANSIBLE_FORKS="16")
        playbook = REPO_ROOT / "tests" / "integration" / "playbooks" / "probe.yml"
        start = time.perf_counter()
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                str(inventory),
                str(playbook),
                "-e",
                "target=gpu_nodes",
                "-e",
                f"out_dir={where}",
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(proc.stdout[-3000:] + proc.stderr[-2000:])
        return elapsed


SIDE_BY_SIDE = r"""
import contextlib, io, json, os, sys, time, importlib
from ansible.module_utils import basic
module = importlib.import_module("ansible_collections.gpuops.cluster.plugins.modules.gpu_probe")
basic._ANSIBLE_PROFILE = "legacy"

def run(collect):
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": {"collect": collect}}).encode()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        module.main()
    result = json.loads(out.getvalue())
    assert "failed" not in result, result

result = {}
for fixture in os.environ["BENCH_FIXTURES"].split(","):
    env = json.loads(os.environ["BENCH_ENV_" + fixture.replace("-", "_")])
    os.environ.update(env)
    for label, collect in (("full", ["pci", "nvml", "mig", "processes", "telemetry"]), ("pci", ["pci"])):
        run(collect)  # warm
        samples = []
        for _ in range(int(os.environ["BENCH_REPEAT"])):
            start = time.perf_counter()
            run(collect)
            samples.append(time.perf_counter() - start)
        result["%s %s" % (fixture, label)] = samples
print(json.dumps(result))
"""


def bench_side_by_side(repeat: int, rounds: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"BENCH_FIXTURES": ",".join(FIXTURES), "BENCH_REPEAT": str(repeat)}
        for fixture in FIXTURES:
            env["BENCH_ENV_" + fixture.replace("-", "_")] = json.dumps(render(fixture, Path(tmp) / fixture))
        merged = _baseline.side_by_side(SIDE_BY_SIDE, rounds=rounds, env=env)
    _baseline.report("4. gpu_probe in-process, side by side with the baseline (same machine, same run)", merged)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--hosts", default="1,8,32")
    parser.add_argument("--side-by-side-only", action="store_true", help="only section 4")
    args = parser.parse_args()
    if args.side_by_side_only:
        bench_side_by_side(max(5, args.repeat // 2))
        return 0

    print("1. gpu_probe module time in-process (target %.2f s for a full probe of 8 GPUs)" % TARGET_S)
    with tempfile.TemporaryDirectory() as tmp:
        for fixture in FIXTURES:
            env = render(fixture, Path(tmp) / fixture)
            full = time_in_process(env, ["pci", "nvml", "mig", "processes", "telemetry"], args.repeat)
            pci = time_in_process(env, ["pci"], args.repeat)
            ratio = statistics.median(full) / TARGET_S
            print(f"   {fixture:<20} full {summary(full)}  ({ratio:.2f}x of target)")
            print(
                f"   {fixture:<20} pci  {summary(pci)}  (full/pci "
                f"{statistics.median(full) / statistics.median(pci):.1f}x)"
            )

        print("2. gpu_probe as its own process, cold (interpreter start-up + imports included)")
        baseline = time_baseline(5)
        print(f"   baseline: python + import AnsibleModule  {summary(baseline)}")
        for fixture in FIXTURES:
            env = render(fixture, Path(tmp) / (fixture + "-proc"))
            full = time_subprocess(env, ["pci", "nvml", "mig", "processes", "telemetry"], 5)
            pci = time_subprocess(env, ["pci"], 5)
            own = statistics.median(full) - statistics.median(baseline)
            print(f"   {fixture:<20} full {summary(full)}   pci {summary(pci)}")
            print(f"   {fixture:<20} full minus baseline {own * 1000:7.1f} ms ({own / TARGET_S:.2f}x of target)")

    print("3. ansible-playbook wall time probing N hosts of 8x A100 (forks 16)")
    baseline = None
    for hosts in [int(n) for n in args.hosts.split(",")]:
        elapsed = time_playbook(hosts, FIXTURES[0])
        baseline = baseline or elapsed
        print(
            f"   {hosts:>3} hosts  {elapsed:6.2f} s  {elapsed / hosts * 1000:7.1f} ms/host  "
            f"{elapsed / baseline:5.2f}x the 1-host run"
        )
    bench_side_by_side(max(5, args.repeat // 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
