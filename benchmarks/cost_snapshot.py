"""Benchmark of cost_snapshot at scale: 5,000 nodes (8x H100 each) and 100,000 running pods
(1 GPU, 8 cores, 64 GiB each) on the Kubernetes API stand-in, loaded straight into its store
(benchmarks/bench_kube_api.py's objects) and served by a forked server on plain HTTP.

Side by side, each in a fresh interpreter, in turns (list, list-nogc, snapshot, ...): the time
to merely list those nodes and pods with the same client and page size (raw JSON, json.loads),
once plainly and once with the cyclic GC paused as the snapshot pauses it, and the time of the
full snapshot (list, facts, prices, allocation, rollups, OpenCost comparison, recommendations).
Prints the medians, the snapshot's ratio to each listing (target <= 1.5) and each run's peak RSS
(target <= 1 GiB).

    .venv/bin/python benchmarks/cost_snapshot.py [--nodes N] [--pods N] [--rounds N]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = REPO_ROOT / "build" / "collections"
PRICES = {"as_of": "2026-11-15", "source": "benchmark", "node_groups": {"ungrouped": {"hourly": 98.32}}}
PARAMS = {
    "price_file": "bench.json",
    "page_size": 500,
    "label_keys": ["app", "tier"],
    "node_group_labels": ["gpuops.io/node-group"],
    "split_weights": {"cpu_core_hourly": 0.031611, "memory_gib_hourly": 0.004237, "gpu_hourly": 0.95},
}


def core_api(port: int):
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    return client.CoreV1Api(client.ApiClient(configuration))


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it starts afresh at exec, so the parent's
    loaded store does not count)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(kind: str, port: int) -> dict:
    """One measurement in this (fresh) process."""
    sys.path.insert(0, str(COLLECTIONS))
    from ansible_collections.gpuops.cluster.plugins.module_utils.cost import cluster, runner

    started = time.perf_counter()
    if kind in ("list", "list-nogc"):
        if kind == "list-nogc":  # the snapshot pauses the cyclic GC; the same for the listing
            gc.disable()
        core = core_api(port)
        nodes = cluster.list_nodes(core, PARAMS["page_size"])
        pods = sum(1 for _unused in cluster.list_pods(core, PARAMS["page_size"]))
        result = {"nodes": len(nodes), "pods": pods}
    else:
        snapshot = runner.run(PARAMS, lambda: core_api(port), lambda path: PRICES)
        result = dict(snapshot["counts"], total_hourly=snapshot["totals"]["hourly"])
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=100000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--measure", choices=["list", "list-nogc", "snapshot"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.port)))
        return 0

    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import bench_kube_api as kube  # the same objects and forked server as the stand-in's benchmark

    cluster = kube.Cluster()
    cluster.bootstrap()
    cluster.load_objects(
        cluster.types[("", "v1", "namespaces")],
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": f"team-{i:02d}"},
                "spec": {},
                "status": {"phase": "Active"},
            }
            for i in range(20)
        ],
    )
    started = time.perf_counter()
    nodes = [kube.make_node(i) for i in range(args.nodes)]
    cluster.load_objects(cluster.types[("", "v1", "nodes")], nodes)
    cluster.load_objects(cluster.types[("", "v1", "pods")], [kube.make_pod(i, nodes) for i in range(args.pods)])
    del nodes
    print(f"loaded {args.nodes} nodes + {args.pods} pods into the stand-in in {time.perf_counter() - started:.1f} s")
    pid, port, _settle = kube.start_child(cluster, False)
    del cluster
    runs = {"list": [], "list-nogc": [], "snapshot": []}
    try:
        for _round in range(args.rounds):
            for kind in ("list", "list-nogc", "snapshot"):
                out = subprocess.run(
                    [sys.executable, __file__, "--measure", kind, "--port", str(port)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                runs[kind].append(result)
                print(
                    f"{kind:8s} {result['seconds']:7.2f} s  peak RSS {result['peak_rss_mib']:6.0f} MiB  "
                    f"{ {k: v for k, v in result.items() if k not in ('seconds', 'peak_rss_mib')} }"
                )
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    listing = statistics.median(r["seconds"] for r in runs["list"])
    listing_nogc = statistics.median(r["seconds"] for r in runs["list-nogc"])
    snapshot = statistics.median(r["seconds"] for r in runs["snapshot"])
    peak = max(r["peak_rss_mib"] for r in runs["snapshot"])
    print(
        f"median list {listing:.2f} s (GC paused too: {listing_nogc:.2f} s), median snapshot {snapshot:.2f} s; "
        f"ratio {snapshot / listing:.2f} to the plain listing, {snapshot / listing_nogc:.2f} to the GC-paused one "
        f"(target <= 1.5); snapshot peak RSS {peak:.0f} MiB (target <= 1024)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
