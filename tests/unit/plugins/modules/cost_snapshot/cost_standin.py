"""One Kubernetes API stand-in per module run (subprocess on a free port, stopped by PID),
loaded with the mixed cluster of tests/unit/plugins/module_utils/cost/cost_fixtures.py."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[5]
KUBE_PACKAGE_DIR = REPO / "sandbox" / "kube"
FIXTURES_DIR = REPO / "tests" / "unit" / "plugins" / "module_utils" / "cost"
for extra in (FIXTURES_DIR, REPO / "sandbox" / "metrics"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from cost_fixtures import mixed_nodes_data, mixed_pods_data  # noqa: E402


class StandIn:
    def __init__(self, process, url, kubeconfig):
        self.process, self.url, self.kubeconfig = process, url, kubeconfig

    def core(self):
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        return client.CoreV1Api(client.ApiClient(configuration))


def start_standin(state_dir: Path) -> StandIn:
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
    env = dict(os.environ, PYTHONPATH=str(KUBE_PACKAGE_DIR))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    line = process.stdout.readline()
    if "serving" not in line:
        process.kill()
        raise RuntimeError(f"kube API stand-in did not start: {line!r}")
    return StandIn(process, line.rsplit(" ", 1)[-1].strip(), kubeconfig)


def stop_standin(standin: StandIn) -> None:
    os.kill(standin.process.pid, signal.SIGTERM)
    try:
        standin.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(standin.process.pid, signal.SIGKILL)
        standin.process.wait()


def load_cluster(core) -> None:
    from kubernetes import client

    for node in mixed_nodes_data():
        core.create_node(dict(node, apiVersion="v1", kind="Node"))
    namespaces = set()
    for pod in mixed_pods_data():
        namespace = pod["metadata"]["namespace"]
        if namespace not in namespaces:
            try:
                core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
            except client.ApiException as error:
                if error.status != 409:
                    raise
            namespaces.add(namespace)
        phase = pod["status"]["phase"]
        spec = dict(pod["spec"])
        spec["containers"] = [dict(c, image="registry.example/app:1") for c in spec["containers"]]
        created = core.create_namespaced_pod(
            namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": pod["metadata"], "spec": spec}
        )
        core.patch_namespaced_pod_status(created.metadata.name, namespace, {"status": {"phase": phase}})


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    server = start_standin(tmp_path_factory.mktemp("kubeapi-cost"))
    try:
        load_cluster(server.core())
        yield server
    finally:
        stop_standin(server)
