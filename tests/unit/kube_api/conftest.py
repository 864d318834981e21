"""Fixtures for the Kubernetes API stand-in conformance tests: one server per session,
started as a subprocess on a free 127.0.0.1 port and stopped by its PID."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
KUBE_PACKAGE_DIR = REPO_ROOT / "sandbox" / "kube"
# The upstream CRDs live in the workplace's shared/ folder beside the checkout (CI has it too);
# only tests that check conformance with them skip without it. Everything else runs on the
# sandbox's own CRDs (CRDS: upstream where present, else the sandbox's).
SHARED_DIR = Path(os.environ.get("GPUOPS_SHARED_DIR") or REPO_ROOT.parent / "shared")
SHARED_CRDS = SHARED_DIR / "crds"
SANDBOX_CRDS = KUBE_PACKAGE_DIR / "gpuops_kubeapi" / "data" / "crds"
CRDS = SHARED_CRDS if SHARED_CRDS.is_dir() else SANDBOX_CRDS
requires_shared_crds = pytest.mark.skipif(
    not SHARED_CRDS.is_dir(),
    reason=f"upstream CRDs not found at {SHARED_CRDS} (set GPUOPS_SHARED_DIR)",
)

# sandbox/kube for the stand-in's package; tests/helpers for the helpers both test tiers share.
for _path in (KUBE_PACKAGE_DIR, REPO_ROOT / "tests" / "helpers"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


class RunningServer:
    def __init__(self, process: subprocess.Popen, url: str, kubeconfig: Path, state_dir: Path):
        self.process = process
        self.url = url
        self.kubeconfig = kubeconfig
        self.state_dir = state_dir

    def _config(self) -> dict:
        return yaml.safe_load(self.kubeconfig.read_text())

    @property
    def token(self) -> str:
        """The admin bearer token the kubeconfig carries."""
        return self._config()["users"][0]["user"]["token"]

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context trusting the server's CA (from the kubeconfig)."""
        cluster = self._config()["clusters"][0]["cluster"]
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        return ssl.create_default_context(cadata=ca)

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=self.ssl_context()
            )
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers=None, token=True):
        """One raw request as the admin (or anonymous with token=False): (status, headers,
        body bytes)."""
        connection = self.connection()
        headers = dict(headers or {})
        if token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


def start_server(state_dir: Path, crds: Path | None = None, *extra_args: str) -> RunningServer:
    kubeconfig = state_dir / "kubeconfig"
    command = [
        sys.executable,
        "-m",
        "gpuops_kubeapi",
        "serve",
        "--port",
        "0",
        "--state-dir",
        str(state_dir),
        "--kubeconfig-out",
        str(kubeconfig),
    ]
    if crds is not None:
        command += ["--crds", str(crds)]
    command += list(extra_args)
    env = dict(os.environ, PYTHONPATH=str(KUBE_PACKAGE_DIR))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    line = process.stdout.readline()
    if "serving" not in line:
        process.kill()
        raise RuntimeError(f"kube API stand-in did not start: {line!r}")
    url = line.rsplit(" ", 1)[-1].strip()
    return RunningServer(process, url, kubeconfig, state_dir)


def stop_server(server: RunningServer) -> None:
    os.kill(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()


@pytest.fixture(scope="session")
def kube_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("kubeapi"))
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def api_client(kube_server):
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(kube_server.kubeconfig), client_configuration=configuration
    )
    with client.ApiClient(configuration) as api:
        yield api


@pytest.fixture(scope="session")
def core(api_client):
    from kubernetes import client

    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def dynamic(api_client, tmp_path_factory):
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.discovery import LazyDiscoverer

    cache = tmp_path_factory.mktemp("discovery") / "cache.json"
    return DynamicClient(api_client, discoverer=LazyDiscoverer, cache_file=str(cache))


@pytest.fixture
def namespace(core):
    """A fresh namespace per test, deleted afterwards."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except Exception:  # the test may have deleted it itself
        pass


# ------------------------------------------------------------------ a cluster with controllers

PLAYBOOKS = REPO_ROOT / "tests" / "unit" / "kube_api" / "playbooks"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def ansible_playbook(kubeconfig, playbook, *args, extra_vars, env=None):
    """ansible-playbook `playbook` on localhost (local connection, this Python) with
    K8S_AUTH_KUBECONFIG pointing at `kubeconfig` (a KUBECONFIG of the caller's dropped), `args`,
    `extra_vars` as one JSON -e and `env` on top of os.environ: the finished process, unchecked
    (the callers assert)."""
    env = {
        **os.environ,
        "K8S_AUTH_KUBECONFIG": str(kubeconfig),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        **(env or {}),
    }
    env.pop("KUBECONFIG", None)
    command = [
        str(ANSIBLE_PLAYBOOK),
        "-i",
        "localhost,",
        "-c",
        "local",
        str(playbook),
        *args,
        "-e",
        json.dumps(extra_vars),
    ]
    return subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def run_playbook(server, playbook, **extra_vars):
    """ansible-playbook on localhost with K8S_AUTH_KUBECONFIG pointing at `server`."""
    result = ansible_playbook(server.kubeconfig, PLAYBOOKS / playbook, extra_vars=extra_vars)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "failed=0" in result.stdout
    return result


def ready_node(name, labels=None, taints=None, cpu="8", memory="32Gi", pods="110", extra=None):
    """A Node as a kubelet registers it: Ready, with capacity and allocatable."""
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                **(labels or {}),
            },
        },
        "spec": {"taints": taints} if taints else {},
        "status": {
            "capacity": dict(allocatable),
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def api_client_for(server, context=None):
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(server.kubeconfig), context=context, client_configuration=configuration
    )
    return client.ApiClient(configuration)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A server with every simulated controller (workloads, scheduler, kubelets...) and two
    general-purpose nodes; failed containers back off 0.5 s (upstream: 10 s)."""
    server = start_server(
        tmp_path_factory.mktemp("cluster"),
        None,
        "--controllers",
        "all",
        "--pod-failure-backoff",
        "0.5",
    )
    from kubernetes import client

    with api_client_for(server) as api:
        core = client.CoreV1Api(api)
        for name in ("pool-a", "pool-b"):
            core.create_node(ready_node(name, labels={"pool": "general"}))
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def cluster_api(cluster):
    with api_client_for(cluster) as api:
        yield api


@pytest.fixture
def cluster_namespace(cluster_api):
    """A fresh namespace of the controller cluster, deleted afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(cluster_api)
    name = f"w-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except Exception:  # the test may have deleted it itself
        pass


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` every `interval` s until it returns something truthy (returned); after
    `timeout` s fail naming `what`, the timeout and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not met in {timeout}s (last: {last!r})")
