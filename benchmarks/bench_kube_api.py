"""Scale benchmark of the Kubernetes API stand-in (sandbox/kube).

Loads 5,000 nodes and 100,000 pods straight into the store (not through HTTP), reports the
server's RSS, then lists every pod through HTTP with limit=500 and prints objects per second:
raw HTTP + JSON decoding, the kubernetes client without model deserialization, and the
node-scoped field-selector query k8s_drain issues. Last, the cost of one pass of the simulated
scheduler and gpu-operator controllers over that cluster, against decoding it once.

    PYTHONPATH=sandbox/kube .venv/bin/python benchmarks/bench_kube_api.py [--nodes N] [--pods N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "sandbox" / "kube"))

from gpuops_kubeapi.api import Cluster  # noqa: E402
from gpuops_kubeapi.server import KubeApiServer  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_node(index: int) -> dict:
    name = f"gpu-node-{index:05d}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                "nvidia.com/gpu.count": "8",
                "topology.kubernetes.io/zone": f"zone-{index % 3}",
            },
        },
        "spec": {"podCIDR": f"10.{index // 256 % 256}.{index % 256}.0/24"},
        "status": {
            "capacity": {"cpu": "96", "memory": "2063731380Ki", "nvidia.com/gpu": "8", "pods": "110"},
            "allocatable": {"cpu": "95", "memory": "2060000000Ki", "nvidia.com/gpu": "8", "pods": "110"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "message": "kubelet is posting ready status",
                }
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.34.0",
                "containerRuntimeVersion": "containerd://2.1.0",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "architecture": "amd64",
            },
        },
    }


def make_pod(index: int, nodes: int) -> dict:
    namespace = f"team-{index % 20:02d}"
    name = f"trainer-{index:06d}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": "trainer", "job": f"job-{index // 8}", "tier": "gpu" if index % 4 else "cpu"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": f"job-{index // 8}",
                    "uid": f"00000000-0000-0000-0000-{index // 8:012d}",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "nodeName": f"gpu-node-{index % nodes:05d}",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "trainer",
                    "image": "nvcr.io/nvidia/pytorch:25.01-py3",
                    "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "8", "memory": "64Gi"}},
                    "env": [{"name": "NCCL_DEBUG", "value": "WARN"}],
                }
            ],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
            "conditions": [{"type": "Ready", "status": "True"}],
            "startTime": "2026-01-01T00:00:00Z",
        },
    }


def list_all(port: int, path: str, limit: int, decode: bool = True) -> tuple[int, int, float]:
    """Page through `path`; returns (objects, pages, seconds). Without `decode`, only the list
    head is parsed (for the continue token), which measures the server and the transfer."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    objects = pages = 0
    token = ""
    started = time.perf_counter()
    while True:
        query = f"?limit={limit}" + (f"&continue={token}" if token else "")
        connection.request("GET", path + query, headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read()
        pages += 1
        if decode:
            page = json.loads(body)
            objects += len(page["items"])
            token = page["metadata"].get("continue", "")
        else:
            head = json.loads(body[: body.index(b',"items":[')] + b"}")
            objects += body.count(b'{"apiVersion":"v1","kind":"Pod"')
            token = head["metadata"].get("continue", "")
        if not token:
            break
    return objects, pages, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=100000)
    parser.add_argument("--limit", type=int, default=500)
    args = parser.parse_args()

    baseline = rss_mib()
    cluster = Cluster()
    cluster.bootstrap()
    namespaces = cluster.types[("", "v1", "namespaces")]
    cluster.load_objects(
        namespaces,
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": f"team-{i:02d}"},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
            for i in range(20)
        ],
    )
    started = time.perf_counter()
    cluster.load_objects(cluster.types[("", "v1", "nodes")], [make_node(i) for i in range(args.nodes)])
    cluster.load_objects(cluster.types[("", "v1", "pods")], [make_pod(i, args.nodes) for i in range(args.pods)])
    load_seconds = time.perf_counter() - started
    loaded = rss_mib()
    print(f"loaded {args.nodes} nodes + {args.pods} pods in {load_seconds:.1f} s")
    print(f"server RSS: {loaded:.0f} MiB (baseline {baseline:.0f} MiB, store {loaded - baseline:.0f} MiB)")

    server = KubeApiServer(("127.0.0.1", 0), cluster)
    port = server.server_address[1]
    child = os.fork()
    if child == 0:  # the server runs alone in its own process, as in the sandbox
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        server.serve_forever()
        os._exit(0)
    server.socket.close()
    try:
        objects, pages, seconds = list_all(port, "/api/v1/pods", args.limit, decode=False)
        print(
            f"list pods (raw HTTP, bytes only), limit={args.limit}: {objects} objects in {pages} pages, "
            f"{seconds:.2f} s, {objects / seconds:,.0f} objects/s"
        )
        objects, pages, seconds = list_all(port, "/api/v1/pods", args.limit)
        print(
            f"list pods (raw HTTP + json.loads), limit={args.limit}: {objects} objects in {pages} pages, "
            f"{seconds:.2f} s, {objects / seconds:,.0f} objects/s"
        )
        objects, pages, seconds = list_all(port, "/api/v1/nodes", args.limit)
        print(
            f"list nodes (raw HTTP + json.loads), limit={args.limit}: {objects} objects in {pages} pages, "
            f"{seconds:.2f} s, {objects / seconds:,.0f} objects/s"
        )

        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{port}"
        core = client.CoreV1Api(client.ApiClient(configuration))
        started = time.perf_counter()
        token, objects = None, 0
        while True:
            response = core.list_pod_for_all_namespaces(limit=args.limit, _continue=token, _preload_content=False)
            page = json.loads(response.data)
            objects += len(page["items"])
            token = page["metadata"].get("continue")
            if not token:
                break
        seconds = time.perf_counter() - started
        print(
            f"list pods (kubernetes client, _preload_content=False): {objects} objects, "
            f"{seconds:.2f} s, {objects / seconds:,.0f} objects/s"
        )
        started = time.perf_counter()
        typed = core.list_pod_for_all_namespaces(limit=args.limit)
        seconds = time.perf_counter() - started
        print(f"one typed page (kubernetes client models): {len(typed.items)} pods in {seconds:.2f} s")
        started = time.perf_counter()
        rounds = 20
        for index in range(rounds):
            _unused = core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName=gpu-node-{index:05d}", _preload_content=False
            ).data
        seconds = (time.perf_counter() - started) / rounds
        print(f"field selector spec.nodeName=<node> over {args.pods} pods: {seconds * 1000:.0f} ms/query")
    finally:
        os.kill(child, signal.SIGTERM)
        os.waitpid(child, 0)
    controller_resync(cluster, args.nodes, args.pods)
    return 0


def controller_resync(cluster: Cluster, nodes: int, pods: int) -> None:
    """What the simulated controllers cost per pass on this cluster, against a baseline measured
    here: decoding every stored node and pod once (what any full pass has to beat)."""
    import tempfile

    from gpuops_kubeapi.sim.fleet import FIXTURE_ANNOTATION, STATE_ANNOTATION, node_object
    from gpuops_kubeapi.sim.gpu_operator import GpuOperator
    from gpuops_kubeapi.sim.scheduler import Scheduler

    started = time.perf_counter()
    for type_key in (("", "nodes"), ("", "pods")):
        for record in cluster.store.scan(type_key, None, None):
            record.decode()
    baseline = time.perf_counter() - started
    print(f"baseline: decode {nodes} nodes + {pods} pods from the store: {baseline:.2f} s")

    scheduler = Scheduler(cluster, {})
    for label in ("first", "settled"):
        started = time.perf_counter()
        scheduler.reconcile()
        seconds = time.perf_counter() - started
        print(f"scheduler pass ({label}) over {pods} bound pods: {seconds:.2f} s ({seconds / baseline:.2f}x baseline)")

    shared = Path(os.environ.get("GPUOPS_SHARED_DIR") or REPO_ROOT.parent / "shared")
    crd = shared / "crds" / "nvidia.com_clusterpolicies.yaml"
    if not crd.exists():
        print(f"gpu-operator pass: skipped (no {crd})")
        return
    import yaml
    from gpuops_kubeapi.api import WriteOptions

    crd_type = cluster.types[("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
    cluster.create(crd_type, None, yaml.safe_load(crd.read_text()), WriteOptions())
    policy_type = cluster.types[("nvidia.com", "v1", "clusterpolicies")]
    spec = {k: {} for k in ("operator", "daemonsets", "dcgm", "dcgmExporter", "devicePlugin", "driver", "gfd")}
    spec.update(nodeStatusExporter={}, toolkit={}, migManager={"config": {"default": ""}})
    cluster.create(policy_type, None, {"metadata": {"name": "cluster-policy"}, "spec": spec}, WriteOptions())
    fixture = REPO_ROOT / "sandbox" / "fixtures" / "h100-80gb-hbm3-x8.yml"
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "nvml-state.json"
        node_type = cluster.types[("", "v1", "nodes")]
        bound = []
        for record in cluster.store.scan(node_type.key, None, None):
            obj = record.decode()
            obj["metadata"]["annotations"] = {FIXTURE_ANNOTATION: str(fixture), STATE_ANNOTATION: str(state)}
            # A complete nodeInfo, as kubelets report it (controller writes are validated).
            obj["status"]["nodeInfo"] = node_object({"name": "x"}, 0, "2026-01-01T00:00:00Z")["status"]["nodeInfo"]
            bound.append(obj)
        cluster.load_objects(node_type, bound)  # every node bound to one simulated 8x H100 host
        operator = GpuOperator(cluster, {"controllers": ["gpu-operator"]})
        for label in ("first: labels and resources written", "settled: nothing to write"):
            started = time.perf_counter()
            operator.reconcile()
            seconds = time.perf_counter() - started
            print(
                f"gpu-operator pass ({label}) over {nodes} nodes: {seconds:.2f} s ({seconds / baseline:.2f}x baseline)"
            )


if __name__ == "__main__":
    sys.exit(main())
