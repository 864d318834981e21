"""MIG planner benchmark: planning time and NVML calls versus destroy-everything-and-recreate.

Run from the repository root: ``.venv/bin/python benchmarks/bench_mig.py``. Pure Python, no GPU:
it times plugins/module_utils/mig/planner.py and counts the NVML create/destroy calls its plans
need, next to what mig-parted does for a GPU whose profile counts differ (destroy every compute
and GPU instance on it, then create the whole layout again). The last section times the planner
and a whole mig_partition run side by side with the code of the baseline revision
(benchmarks/_baseline.py, default bffa4e8), in the same run, and prints the ratio.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "collections"))

sys.path.insert(0, str(ROOT / "benchmarks"))

import _baseline  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import catalog as mig_catalog  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import planner as mig  # noqa: E402

A100 = "NVIDIA A100-SXM4-40GB"
H100 = "NVIDIA H100 80GB HBM3"
TARGET_MS = 20.0

LAYOUTS = {
    A100: {
        "all-1g": {"1g.5gb": 7},
        "balanced": {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1},
        "3g+2g+1g": {"1g.5gb": 1, "2g.10gb": 1, "3g.20gb": 1},
        "7g": {"7g.40gb": 1},
        "3g+4g": {"3g.20gb": 1, "4g.20gb": 1},
        "all-2g": {"2g.10gb": 3},
    },
    H100: {
        "all-1g": {"1g.10gb": 7},
        "balanced": {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1},
        "3g+2g+1g": {"1g.10gb": 1, "2g.20gb": 1, "3g.40gb": 1},
        "7g": {"7g.80gb": 1},
        "3g+4g": {"3g.40gb": 1, "4g.40gb": 1},
        "all-2g": {"2g.20gb": 3},
    },
}


def live_state(gpu_name, layout):
    """Instances as this planner would have created them, one compute instance each."""
    return [
        {"gi_id": i + 1, "profile": name, "start": start, "compute_instances": [{"ci_id": 0}], "busy": False}
        for i, (name, start) in enumerate(mig.plan_layout(gpu_name, layout))
    ]


def timed(function, repeats):
    samples = []
    for _unused in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return min(samples), statistics.median(samples)


def bench_host_planning():
    print("== Planning one host of 8 GPUs (target < %.0f ms)" % TARGET_MS)
    print("%-44s %9s %9s %8s" % ("case", "min ms", "median ms", "ratio"))
    for gpu_name in (A100, H100):
        layouts = LAYOUTS[gpu_name]
        cases = {
            "plan_layout balanced x8": lambda g=gpu_name, ls=layouts: [
                mig.plan_layout(g, ls["balanced"]) for _unused in range(8)
            ],
            "plan_changes all-1g -> balanced x8": lambda g=gpu_name, ls=layouts: [
                mig.plan_changes(g, live_state(g, ls["all-1g"]), ls["balanced"]) for _unused in range(8)
            ],
            "plan_changes converged (no change) x8": lambda g=gpu_name, ls=layouts: [
                mig.plan_changes(g, live_state(g, ls["balanced"]), ls["balanced"]) for _unused in range(8)
            ],
        }
        model = mig_catalog.find_model(gpu_name).key
        for label, function in cases.items():
            best, median = timed(function, 50)
            print("%-44s %9.3f %9.3f %7.3fx" % ("%s %s" % (model, label), best, median, median / TARGET_MS))


def count_valid_layouts(gpu_name):
    model = mig_catalog.find_model(gpu_name)
    ranges = [range(p.max_count + 1) for p in model.profiles]
    valid = 0
    for counts in itertools.product(*ranges):
        layout = {p.name: c for p, c in zip(model.profiles, counts)}  # noqa: B905 (3.8 target)
        try:
            mig.plan_layout(gpu_name, layout)
        except mig.MigLayoutError:
            continue
        valid += 1
    return valid, len(list(itertools.product(*ranges)))


def bench_enumeration():
    print("\n== Enumerating every valid layout through plan_layout (all counts <= max count)")
    print("%-12s %8s %10s %9s" % ("model", "valid", "candidates", "ms"))
    for gpu_name in (A100, H100, "NVIDIA A30"):
        started = time.perf_counter()
        valid, candidates = count_valid_layouts(gpu_name)
        elapsed = (time.perf_counter() - started) * 1000
        print("%-12s %8d %10d %9.1f" % (mig_catalog.find_model(gpu_name).key, valid, candidates, elapsed))


def mig_parted_calls(live, desired):
    """mig-parted: a GPU whose counts differ loses every CI and GI, then gets all created."""
    counts = {}
    for entry in live:
        counts[entry["profile"]] = counts.get(entry["profile"], 0) + 1
    if counts == {n: c for n, c in desired.items() if c}:
        return 0, 0
    destroys = sum(len(e["compute_instances"]) + 1 for e in live)
    creates = 2 * sum(desired.values())
    return destroys, creates


def our_calls(plan):
    destroys = sum(1 for s in plan.steps if s["action"].startswith("destroy"))
    return destroys, len(plan.steps) - destroys


def bench_relayouts():
    print("\n== NVML destroy/create calls per re-layout (CI + GI calls; 8-GPU host rows sum all GPUs)")
    header = "%-11s %-38s %6s %9s %9s %7s %9s %9s %6s" % (
        "model",
        "re-layout",
        "GPUs",
        "ours del",
        "ours new",
        "kept",
        "parted del",
        "parted new",
        "saved",
    )
    print(header)
    print("-" * len(header))
    for gpu_name in (A100, H100):
        layouts = LAYOUTS[gpu_name]
        model = mig_catalog.find_model(gpu_name).key
        scenarios = [
            ("all-1g -> balanced", [("all-1g", "balanced")]),
            ("balanced -> all-1g", [("balanced", "all-1g")]),
            ("3g+2g+1g -> balanced (one 1g added)", [("3g+2g+1g", "balanced")]),
            ("7g -> 3g+4g", [("7g", "3g+4g")]),
            ("all-2g -> balanced", [("all-2g", "balanced")]),
            (
                "8x balanced, GPU 3 -> all-1g",
                [("balanced", "balanced")] * 3 + [("balanced", "all-1g")] + [("balanced", "balanced")] * 4,
            ),
            ("8x all-1g -> 8x balanced", [("all-1g", "balanced")] * 8),
        ]
        for label, gpus in scenarios:
            ours_del = ours_new = parted_del = parted_new = kept = 0
            for before, after in gpus:
                live = live_state(gpu_name, layouts[before])
                plan = mig.plan_changes(gpu_name, live, layouts[after])
                destroys, creates = our_calls(plan)
                ours_del += destroys
                ours_new += creates
                kept += len(plan.keep) if plan.changed else 0
                destroys, creates = mig_parted_calls(live, layouts[after])
                parted_del += destroys
                parted_new += creates
            saved = (parted_del + parted_new) - (ours_del + ours_new)
            print(
                "%-11s %-38s %6d %9d %9d %7d %9d %9d %6d"
                % (model, label, len(gpus), ours_del, ours_new, kept, parted_del, parted_new, saved)
            )
    print("kept: instances left running on GPUs that changed (mig-parted keeps none of them)")


def _simulator():
    """The NVML simulator's pynvml module, loaded without putting sandbox/python on sys.path."""
    import importlib.util  # noqa: PLC0415

    if "gpuops_sim" not in sys.modules:
        init = ROOT / "sandbox" / "python" / "gpuops_sim" / "__init__.py"
        spec = importlib.util.spec_from_file_location("gpuops_sim", init, submodule_search_locations=[str(init.parent)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpuops_sim"] = module
        spec.loader.exec_module(module)
    from gpuops_sim import nvml  # noqa: PLC0415

    return nvml


def bench_module_run(repeats=5):
    """One mig_partition run in-process (mig/runner.converge) on the simulated 8x A100 host."""
    import os  # noqa: PLC0415

    from ansible_collections.gpuops.cluster.plugins.module_utils.mig import runner  # noqa: PLC0415

    nvml = _simulator()
    os.environ["GPUOPS_NVML_SIM_FIXTURE"] = str(ROOT / "sandbox" / "fixtures" / "a100-sxm4-40gb-x8.yml")
    os.environ.pop("GPUOPS_NVML_SIM_STATE", None)  # in-memory state: times the module, not the disk
    params = dict(
        gpus=["all"],
        device_filter=None,
        layout=LAYOUTS[A100]["balanced"],
        config_file=None,
        config_name=None,
        mig_enabled=True,
        reset_policy="never",
        force=False,
        force_timeout=5,
    )
    print("\n== One mig_partition run in-process on the simulated 8x A100-40GB host (NVML simulator)")
    print("%-44s %9s %9s %9s" % ("case", "min ms", "median ms", "vs plan"))
    plan_only = timed(lambda: [mig.plan_layout(A100, params["layout"]) for _i in range(8)], 20)[0]
    rows = []
    for label, check_mode, fresh in (
        ("apply balanced on 8 GPUs (MIG off -> on)", False, True),
        ("rerun, nothing to change", False, False),
        ("check mode, nothing to change", True, False),
    ):
        samples = []
        for _i in range(repeats):
            if fresh:
                nvml.sim_forget()
            started = time.perf_counter()
            runner.converge(params, check_mode=check_mode, nvml=nvml)
            samples.append((time.perf_counter() - started) * 1000)
        rows.append((label, min(samples), statistics.median(samples)))
    for label, best, median in rows:
        print("%-44s %9.2f %9.2f %8.0fx" % (label, best, median, median / plan_only))
    print("vs plan: ratio to planning the same 8 GPUs alone (%.3f ms), measured in this run" % plan_only)


# Runs in a child process with either version of the collection first on sys.path.
SIDE_BY_SIDE = r"""
import json, os, sys, time
from pathlib import Path
try:
    from ansible_collections.gpuops.cluster.plugins.module_utils.mig import planner as mig
    from ansible_collections.gpuops.cluster.plugins.module_utils.mig.runner import converge
except ImportError:  # the baseline's layout
    from ansible_collections.gpuops.cluster.plugins.module_utils import mig
    from ansible_collections.gpuops.cluster.plugins.module_utils.mig_apply import converge
import gpuops_sim.nvml as nvml

A100 = "NVIDIA A100-SXM4-40GB"
BALANCED = {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}
ALL_1G = {"1g.5gb": 7}
live = [
    {"gi_id": i + 1, "profile": n, "start": s, "compute_instances": [{"ci_id": 0}], "busy": False}
    for i, (n, s) in enumerate(mig.plan_layout(A100, ALL_1G))
]
params = dict(gpus=["all"], device_filter=None, layout=BALANCED, config_file=None, config_name=None,
              mig_enabled=True, reset_policy="never", force=False, force_timeout=5)
os.environ["GPUOPS_NVML_SIM_FIXTURE"] = os.environ["BENCH_FIXTURE"]
os.environ.pop("GPUOPS_NVML_SIM_STATE", None)

def timed(function, repeats):
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        out.append(time.perf_counter() - start)
    return out

result = {
    "plan_layout balanced x8": timed(lambda: [mig.plan_layout(A100, BALANCED) for _ in range(8)], 30),
    "plan_changes all-1g -> balanced x8": timed(lambda: [mig.plan_changes(A100, live, BALANCED) for _ in range(8)], 30),
}
apply, rerun, check = [], [], []
for _ in range(3):
    nvml.sim_forget()
    apply += timed(lambda: converge(params, nvml=nvml, sleep=lambda s: None), 1)
    rerun += timed(lambda: converge(params, nvml=nvml, sleep=lambda s: None), 1)
    check += timed(lambda: converge(params, check_mode=True, nvml=nvml, sleep=lambda s: None), 1)
result["mig_partition apply balanced, 8 GPUs"] = apply
result["mig_partition rerun, nothing to change"] = rerun
result["mig_partition check mode, nothing to change"] = check
print(json.dumps(result))
"""


def bench_side_by_side(rounds=5):
    merged = _baseline.side_by_side(
        SIDE_BY_SIDE,
        rounds=rounds,
        env={"BENCH_FIXTURE": str(ROOT / "sandbox" / "fixtures" / "a100-sxm4-40gb-x8.yml")},
    )
    _baseline.report("\n== Side by side with the baseline (same machine, same run)", merged)


def main():
    started = time.perf_counter()
    if "--side-by-side-only" in sys.argv[1:]:
        bench_side_by_side()
        return
    bench_host_planning()
    bench_enumeration()
    bench_relayouts()
    bench_module_run()
    bench_side_by_side()
    print("\ntotal %.2f s" % (time.perf_counter() - started))


if __name__ == "__main__":
    main()
