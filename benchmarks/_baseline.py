"""Side-by-side timing of this checkout's code and a baseline revision's, in one benchmark run.

The baseline is the collection as it was at ``BASELINE_REV`` (``git archive`` of that revision,
extracted once under build/bench-baseline-<rev>/ansible_collections/gpuops/cluster), or the
collection root given in ``GPUOPS_BENCH_BASELINE``. Each measurement runs in a fresh child
process per code version, the versions interleaved round after round, so machine load drifts
hit both alike; the ratio new/old of the medians is what a regression check reads.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REV = os.environ.get("GPUOPS_BENCH_BASELINE_REV", "bffa4e8")
NEW = ROOT / "build" / "collections"


def baseline_root():
    """Folder holding ansible_collections/gpuops/cluster at the baseline revision, or None."""
    given = os.environ.get("GPUOPS_BENCH_BASELINE")
    if given:
        return Path(given)
    target = ROOT / "build" / ("bench-baseline-%s" % BASELINE_REV)
    tree = target / "ansible_collections" / "gpuops" / "cluster"
    if (tree / "galaxy.yml").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "baseline.tar"
        proc = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "-o", str(archive), BASELINE_REV],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print("baseline: git archive %s failed (%s); side-by-side skipped" % (BASELINE_REV, proc.stderr.strip()))
            return None
        tree.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
    return target


def run_child(root, code, env=None, timeout=900):
    """Run ``code`` (prints one JSON document) with ``root`` first on PYTHONPATH; its result."""
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join([str(root), str(ROOT / "sandbox" / "python")])
    proc = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, check=False, timeout=timeout
    )
    if proc.returncode != 0:
        raise SystemExit("benchmark child failed (%s):\n%s\n%s" % (root, proc.stdout[-2000:], proc.stderr[-3000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def side_by_side(code, rounds=5, env=None):
    """{case: {"old": [samples], "new": [samples]}} from ``rounds`` interleaved child runs each.

    ``code`` prints ``{case: [seconds, ...]}``. None when no baseline is available.
    """
    old_root = baseline_root()
    if old_root is None:
        return None
    merged = {}
    for _round in range(rounds):
        for label, root in (("old", old_root), ("new", NEW)):
            for case, samples in run_child(root, code, env).items():
                merged.setdefault(case, {"old": [], "new": []})[label].extend(samples)
    return merged


def report(title, merged, unit=1000.0, unit_name="ms"):
    print(title)
    if merged is None:
        return
    print("   %-46s %12s %12s %8s" % ("case", "old median", "new median", "new/old"))
    for case, versions in merged.items():
        old, new = statistics.median(versions["old"]), statistics.median(versions["new"])
        print(
            "   %-46s %9.2f %s %9.2f %s %7.2fx"
            % (case, old * unit, unit_name, new * unit, unit_name, new / old if old else float("nan"))
        )
    print("   (old: %s; new: this checkout; interleaved child processes, medians of all samples)" % BASELINE_REV)
