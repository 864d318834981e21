"""Scale benchmark of the Kubernetes API stand-in (sandbox/kube), controllers off vs on.

Loads 5,000 nodes, 12,500 Jobs and their 100,000 running pods (8 each, with the status a
kubelet reports) straight into the store (not through HTTP) and reports the server's RSS. Then,
side by side in one run, with no controllers and with every simulated controller running
(after their first pass over that cluster has settled): list every pod through HTTP with
limit=500 (raw bytes, with json.loads, through the kubernetes client), list nodes, one typed
page, and the node-scoped field-selector query k8s_drain issues, with the on/off ratio of each.
Last, the cost of single controller passes against decoding the cluster once.

The server runs alone in a forked process, on plain HTTP as before (TLS costs the same with or
without controllers; this measures the controllers).

    PYTHONPATH=sandbox/kube .venv/bin/python benchmarks/bench_kube_api.py [--nodes N] [--pods N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "sandbox" / "kube"))

from gpuops_kubeapi.api import Cluster  # noqa: E402
from gpuops_kubeapi.server import KubeApiServer  # noqa: E402
from gpuops_kubeapi.sim.kubelet import RUN_SECONDS, pod_status  # noqa: E402

PODS_PER_JOB = 8
START = time.time() - 3600  # everything has been running for an hour


def rss_mib(pid: int | None = None) -> float:
    with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as handle:
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
            "uid": f"10000000-0000-0000-0000-{index:012d}",
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


def job_uid(job: int) -> str:
    return f"00000000-0000-0000-0000-{job:012d}"


def make_job(job: int) -> dict:
    """A Job as the apiserver stores it (defaults, generated selector and labels)."""
    name = f"job-{job}"
    namespace = f"team-{job * PODS_PER_JOB % 20:02d}"
    labels = {"batch.kubernetes.io/controller-uid": job_uid(job), "batch.kubernetes.io/job-name": name}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "uid": job_uid(job), "generation": 1},
        "spec": {
            "completions": PODS_PER_JOB,
            "parallelism": PODS_PER_JOB,
            "backoffLimit": 6,
            "completionMode": "NonIndexed",
            "suspend": False,
            "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": job_uid(job)}},
            "template": {
                "metadata": {"labels": dict(labels, app="trainer")},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "trainer", "image": "x"}]},
            },
        },
        # What the job controller reports for 8 running, ready pods.
        "status": {
            "startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START)),
            "active": PODS_PER_JOB,
            "ready": PODS_PER_JOB,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        },
    }


def make_pod(index: int, nodes: list[dict]) -> dict:
    job = index // PODS_PER_JOB
    namespace = f"team-{job * PODS_PER_JOB % 20:02d}"
    name = f"trainer-{index:06d}"
    node = nodes[index % len(nodes)]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"20000000-0000-0000-0000-{index:012d}",
            "labels": {
                "app": "trainer",
                "batch.kubernetes.io/controller-uid": job_uid(job),
                "batch.kubernetes.io/job-name": f"job-{job}",
                "tier": "gpu" if index % 4 else "cpu",
            },
            # A training run of a day: the kubelets have nothing to change for a while.
            "annotations": {RUN_SECONDS: "86400"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": f"job-{job}",
                    "uid": job_uid(job),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": node["metadata"]["name"],
            "restartPolicy": "Never",
            "schedulerName": "default-scheduler",
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
        "status": {"startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START))},
    }
    # What the simulated kubelet reports for it, so its first pass finds nothing to write.
    pod["status"], _unused = pod_status(pod, node, time.time(), 10.0)
    return pod


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


def measure(port: int, limit: int, pods: int) -> dict[str, float]:
    """The HTTP figures, as rates (higher is better) or times (lower is better)."""
    figures: dict[str, float] = {}
    objects, _pages, seconds = list_all(port, "/api/v1/pods", limit, decode=False)
    figures["list pods, raw HTTP (objects/s)"] = objects / seconds
    objects, _pages, seconds = list_all(port, "/api/v1/pods", limit)
    figures["list pods, HTTP + json.loads (objects/s)"] = objects / seconds
    objects, _pages, seconds = list_all(port, "/api/v1/nodes", limit)
    figures["list nodes, HTTP + json.loads (objects/s)"] = objects / seconds

    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    core = client.CoreV1Api(client.ApiClient(configuration))
    started = time.perf_counter()
    token, objects = None, 0
    while True:
        response = core.list_pod_for_all_namespaces(limit=limit, _continue=token, _preload_content=False)
        page = json.loads(response.data)
        objects += len(page["items"])
        token = page["metadata"].get("continue")
        if not token:
            break
    figures["list pods, kubernetes client raw (objects/s)"] = objects / (time.perf_counter() - started)
    started = time.perf_counter()
    core.list_pod_for_all_namespaces(limit=limit)
    figures["one typed page of pods, client models (s)"] = time.perf_counter() - started
    started = time.perf_counter()
    rounds = 20
    for index in range(rounds):
        _unused = core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName=gpu-node-{index:05d}", _preload_content=False
        ).data
    figures[f"fieldSelector spec.nodeName over {pods} pods (ms/query)"] = (
        (time.perf_counter() - started) / rounds * 1000
    )
    return figures


def start_child(cluster: Cluster, controllers: bool) -> tuple[int, int, dict]:
    """Fork a server over `cluster` (with every simulated controller when asked); returns
    (pid, port, settle figures) once it serves and its controllers' first pass settled. It
    runs until SIGTERM."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the server runs alone in its own process, as in the sandbox
        os.close(reader)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        try:
            server = KubeApiServer(("127.0.0.1", 0), cluster)
            info: dict = {"port": server.server_address[1]}
            if controllers:
                from gpuops_kubeapi.sim.controllers import build_runner, parse_controllers

                runner = build_runner(cluster, parse_controllers("all"), {"shared_crds": []})
                started = time.perf_counter()
                written = cluster.store.resource_version
                runner.start()
                settled = wait_settled(cluster, runner)
                info["settle"] = {
                    "seconds": settled - started,
                    "passes": runner.passes,
                    "writes": cluster.store.resource_version - written,
                }
        except Exception as error:  # reported by the parent
            info = {"error": repr(error)}
        with os.fdopen(writer, "w") as handle:
            json.dump(info, handle)
        if "error" not in info:
            server.serve_forever()
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as handle:
        info = json.load(handle)
    if "error" in info:
        os.waitpid(child, 0)
        raise RuntimeError(info["error"])
    return child, info["port"], info.get("settle") or {}


def wait_settled(cluster: Cluster, runner, quiet: float = 2.0, limit: float = 600.0) -> float:
    """When the controllers stopped writing: no new resourceVersion for `quiet` seconds."""
    deadline = time.perf_counter() + limit
    last_rv, last_change = cluster.store.resource_version, time.perf_counter()
    while time.perf_counter() < deadline:
        time.sleep(0.1)
        rv = cluster.store.resource_version
        if rv != last_rv or runner.passes == 0:
            last_rv, last_change = rv, time.perf_counter()
        elif time.perf_counter() - last_change >= quiet:
            return last_change
    raise RuntimeError("controllers did not settle")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=100000)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="measurement rounds per server")
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
                "metadata": {"name": f"team-{i:02d}", "labels": {"kubernetes.io/metadata.name": f"team-{i:02d}"}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
            for i in range(20)
        ],
    )
    started = time.perf_counter()
    nodes = [make_node(i) for i in range(args.nodes)]
    cluster.load_objects(cluster.types[("", "v1", "nodes")], nodes)
    jobs = (args.pods + PODS_PER_JOB - 1) // PODS_PER_JOB
    cluster.load_objects(cluster.types[("batch", "v1", "jobs")], [make_job(j) for j in range(jobs)])
    cluster.load_objects(cluster.types[("", "v1", "pods")], [make_pod(i, nodes) for i in range(args.pods)])
    del nodes
    load_seconds = time.perf_counter() - started
    loaded = rss_mib()
    print(f"loaded {args.nodes} nodes + {jobs} jobs + {args.pods} pods in {load_seconds:.1f} s")
    print(f"server RSS: {loaded:.0f} MiB (baseline {baseline:.0f} MiB, store {loaded - baseline:.0f} MiB)")

    # Both servers run side by side; they are measured in turns (off, on, off, on, ...) and
    # the median of the rounds is reported, so load from elsewhere hits both alike.
    off_pid, off_port, _unused = start_child(cluster, False)
    try:
        on_pid, on_port, settle = start_child(cluster, True)
    except BaseException:
        os.kill(off_pid, signal.SIGTERM)
        os.waitpid(off_pid, 0)
        raise
    try:
        print(
            f"controllers on: every simulated controller's first pass over the cluster settled in "
            f"{settle['seconds']:.1f} s ({settle['passes']} passes, {settle['writes']} writes: "
            f"the default ServiceAccounts)"
        )
        rounds: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        cpu = {"off": 0.0, "on": 0.0}
        idle_before = {name: cpu_seconds(pid) for name, pid in (("off", off_pid), ("on", on_pid))}
        for _unused in range(args.rounds):
            for name, pid, port in (("off", off_pid, off_port), ("on", on_pid, on_port)):
                before = cpu_seconds(pid)
                rounds[name].append(measure(port, args.limit, args.pods))
                cpu[name] += cpu_seconds(pid) - before
        idle = {
            name: cpu_seconds(pid) - idle_before[name] - cpu[name] for name, pid in (("off", off_pid), ("on", on_pid))
        }
        print(
            f"server RSS: off {rss_mib(off_pid):.0f} MiB, on {rss_mib(on_pid):.0f} MiB; server CPU while "
            f"measuring itself: off {cpu['off']:.1f} s, on {cpu['on']:.1f} s; while the other was measured "
            f"(idle cost of the controllers): off {idle['off']:.1f} s, on {idle['on']:.1f} s"
        )
    finally:
        for pid in (off_pid, on_pid):
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    width = max(len(name) for name in rounds["off"][0])
    print(f"median of {args.rounds} rounds each")
    print(f"{'':{width}}  {'off':>12}  {'on':>12}  on/off")
    for name in rounds["off"][0]:
        value = statistics.median(r[name] for r in rounds["off"])
        other = statistics.median(r[name] for r in rounds["on"])
        print(f"{name:{width}}  {value:12,.2f}  {other:12,.2f}  {other / value:6.2f}")
    controller_resync(cluster, args.nodes, args.pods)
    return 0


def controller_resync(cluster: Cluster, nodes: int, pods: int) -> None:
    """What single controller passes cost on this cluster, against a baseline measured here:
    decoding every stored node and pod once (what any full pass has to beat)."""
    import tempfile

    from gpuops_kubeapi.sim.fleet import FIXTURE_ANNOTATION, STATE_ANNOTATION, node_object
    from gpuops_kubeapi.sim.gpu_operator import GpuOperator
    from gpuops_kubeapi.sim.kubelet import Kubelet
    from gpuops_kubeapi.sim.scheduler import Scheduler

    started = time.perf_counter()
    for type_key in (("", "nodes"), ("", "pods")):
        for record in cluster.store.scan(type_key, None, None):
            record.decode()
    baseline = time.perf_counter() - started
    print(f"baseline: decode {nodes} nodes + {pods} pods from the store: {baseline:.2f} s")

    for name, controller in (("scheduler", Scheduler(cluster, {})), ("kubelet", Kubelet(cluster, {}))):
        for label, changes in (("first: full resync", None), ("settled: nothing changed", {})):
            controller.changes = changes
            started = time.perf_counter()
            controller.reconcile()
            seconds = time.perf_counter() - started
            print(f"{name} pass ({label}) over {pods} bound pods: {seconds:.2f} s ({seconds / baseline:.2f}x baseline)")
    cluster.kubelets = False

    shared = Path(os.environ.get("GPUOPS_SHARED_DIR") or REPO_ROOT.parent / "shared")
    crd = shared / "crds" / "nvidia.com_clusterpolicies.yaml"
    if not crd.exists():
        crd = REPO_ROOT / "sandbox" / "charts" / "gpu-operator" / "crds" / "nvidia.com_clusterpolicies.yaml"
    import yaml
    from gpuops_kubeapi.api import WriteOptions

    crd_type = cluster.types[("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
    document = next(d for d in yaml.safe_load_all(crd.read_text()) if d)
    cluster.create(crd_type, None, document, WriteOptions())
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
