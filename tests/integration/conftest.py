"""Integration tier: real ansible-playbook runs against the sandbox fleet."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "sandbox"))

import fleet_up  # noqa: E402  (lives in sandbox/, shared with `make sandbox-up`)
import seed as sandbox_seed  # noqa: E402  (sandbox/seed.py, as `make sandbox-up` runs it)
import services as sandbox_services  # noqa: E402  (sandbox/services.py, as `make sandbox-up` runs it)

VENV_BIN = Path(sys.executable).parent
SANDBOX_INVENTORY = REPO_ROOT / "inventories" / "sandbox"
KUBE_PACKAGE_DIR = REPO_ROOT / "sandbox" / "kube"
# The sandbox serves every custom kind from CRDs of its own; the upstream CRDs (the team's shared/
# folder beside the checkout, test data only) replace them when they are there.
SHARED_DIR = Path(os.environ.get("GPUOPS_SHARED_DIR") or REPO_ROOT.parent / "shared")
SHARED_CRDS = SHARED_DIR / "crds"
SANDBOX_CRDS = KUBE_PACKAGE_DIR / "gpuops_kubeapi" / "data" / "crds"


# The longest files first (seconds in CI: site about 600, the EE/AWX runs about 500, the driver
# upgrade 400, the MIG role 270): with --dist loadfile each worker takes whole files in the
# order given, so a long file taken last runs alone at the end while the other worker idles.
LONGEST_FIRST = ("test_site_sandbox.py", "test_ee_awx.py", "test_upgrade_driver.py", "test_mig_role.py")


def pytest_configure(config):
    # pytest-xdist would order the files by their number of tests; the order is the hook's below.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def crd_locations(crds) -> list[Path]:
    """--crds arguments: crds is "all" or a list of CRD file names (upstream naming,
    <group>_<plural>.yaml); each comes from shared/crds when that folder is there, else from the
    sandbox's own CRDs."""
    if crds == "all":
        return [SHARED_CRDS, SANDBOX_CRDS] if SHARED_CRDS.is_dir() else [SANDBOX_CRDS]
    if crds == "sandbox":  # what a user who cloned the repository alone gets
        return [SANDBOX_CRDS]
    locations = []
    for name in crds:
        upstream = SHARED_CRDS / name
        location = upstream if upstream.is_file() else SANDBOX_CRDS / name
        if not location.is_file():
            raise FileNotFoundError(f"no CRD file {name} in {SHARED_CRDS} or {SANDBOX_CRDS}")
        locations.append(location)
    return locations


def crd_sources(api_client) -> dict[str, str | None]:
    """{CRD name: its gpuops.cluster/schema-source} for every custom kind that has a schema of the
    sandbox's own (data/crds): the kinds a shared/ folder's upstream CRDs would replace. "sandbox"
    for each one means nothing came from a shared/ folder."""
    from kubernetes import client

    own = {yaml.safe_load(path.read_text())["metadata"]["name"] for path in sorted(SANDBOX_CRDS.glob("*.yaml"))}
    served = client.ApiextensionsV1Api(api_client).list_custom_resource_definition().items
    return {
        crd.metadata.name: (crd.metadata.annotations or {}).get("gpuops.cluster/schema-source")
        for crd in served
        if crd.metadata.name in own
    }


RECAP_LINE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


class PlaybookRun:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP as host -> {ok, changed, unreachable, failed}."""
        recap = {}
        in_recap = False
        for line in self.stdout.splitlines():
            if line.startswith("PLAY RECAP"):
                in_recap = True
                continue
            match = RECAP_LINE.match(line) if in_recap else None
            if match:
                host, ok, changed, unreachable, failed = match.groups()
                recap[host] = {
                    "ok": int(ok),
                    "changed": int(changed),
                    "unreachable": int(unreachable),
                    "failed": int(failed),
                }
        return recap

    def __repr__(self):  # shown by pytest when an assertion on a run fails
        lines = self.stdout.splitlines()
        # The failed tasks first (with the task line above each): the tail may not reach them.
        failed = [
            "\n".join(lines[max(0, i - 2) : i + 1])[:2000]
            for i, line in enumerate(lines)
            if line.startswith(("fatal:", "failed:")) or "FAILED!" in line
        ]
        head = "\n".join(failed[:5])
        return f"<rc={self.rc}\n{head}\n...\n{self.stdout[-6000:]}\n{self.stderr[-3000:]}>"


def run_playbook(
    playbook: Path, *args: str, env: dict | None = None, inventory: Path = SANDBOX_INVENTORY, timeout: float = 600
) -> PlaybookRun:
    full_env = dict(
        os.environ,
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
    )
    full_env.update(env or {})
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,  # callers assert on rc with the output in the message
    )
    return PlaybookRun(proc)


def load_fixture(name: str) -> dict:
    return yaml.safe_load(fleet_up.fixture_path(name).read_text())


@pytest.fixture
def sandbox(tmp_path):
    """A freshly rendered sandbox fleet and an empty reports folder, wired through env vars."""
    sandbox_dir = tmp_path / "sandbox"
    fixtures = fleet_up.bring_up(SANDBOX_INVENTORY, sandbox_dir)
    reports = tmp_path / "reports"
    return {
        "dir": sandbox_dir,
        "reports": reports,
        "fixtures": fixtures,
        "env": {"GPUOPS_SANDBOX_DIR": str(sandbox_dir), "GPUOPS_REPORTS_DIR": str(reports)},
    }


class KubeSandbox:
    """A running Kubernetes API stand-in (sandbox/kube), started as a subprocess by PID."""

    def __init__(self, process: subprocess.Popen, url: str, state_dir: Path):
        self.process = process
        self.pid = process.pid
        self.url = url
        self.state_dir = state_dir
        self.kubeconfig = state_dir / "kubeconfig"
        self.env = {"GPUOPS_KUBECONFIG": str(self.kubeconfig), "K8S_AUTH_KUBECONFIG": str(self.kubeconfig)}
        self._api_client = None

    def api_client(self):
        """A kubernetes.client.ApiClient for this server (one per fixture, closed at the end)."""
        if self._api_client is None:
            from kubernetes import client, config

            configuration = client.Configuration()
            config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
            self._api_client = client.ApiClient(configuration)
        return self._api_client

    def dynamic(self):
        """A kubernetes.dynamic.DynamicClient; discovery is not cached across calls, so kinds
        served by CRDs created meanwhile (e.g. through OLM) are found."""
        from kubernetes.dynamic import DynamicClient
        from kubernetes.dynamic.discovery import LazyDiscoverer

        cache = self.state_dir / f"discovery-{time.monotonic_ns()}.json"
        return DynamicClient(self.api_client(), discoverer=LazyDiscoverer, cache_file=str(cache))

    def wait_for(self, predicate, timeout: float = 10.0, interval: float = 0.1, message: str = ""):
        """Poll `predicate` until it returns something truthy (controllers act asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(message or "condition not met in time")
            time.sleep(interval)

    def stop(self) -> None:
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None
        if self.process.poll() is not None:
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait()

    def __repr__(self):
        return f"<KubeSandbox pid={self.pid} {self.url} kubeconfig={self.kubeconfig}>"


def start_kube(
    state_dir: Path,
    *,
    fleet: Path | None = None,
    crds="all",
    controllers="all",
    openshift: bool = False,
    env: dict[str, str] | None = None,
) -> KubeSandbox:
    """Start the stand-in on a free 127.0.0.1 port with its state (snapshot, kubeconfig) in
    state_dir. crds: "all" (every custom kind the sandbox knows), "sandbox" (the sandbox's own
    CRDs only, as without a shared/ folder), None, or a list of CRD file names (see
    crd_locations: upstream when shared/crds is there, else the sandbox's own).
    controllers: "all", None, or a list of names (gpu-operator, mig-manager, device-plugin,
    scheduler, olm)."""
    state_dir.mkdir(parents=True, exist_ok=True)
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
        str(state_dir / "kubeconfig"),
        "--controllers",
        controllers if isinstance(controllers, str) else ",".join(controllers or []) or "none",
    ]
    for location in crd_locations(crds) if crds is not None else []:
        command += ["--crds", str(location)]
    # Where the olm controller finds what an installed operator serves.
    for location in crd_locations("sandbox" if crds == "sandbox" else "all"):
        command += ["--operator-crds", str(location)]
    if fleet is not None:
        command += ["--fleet", str(fleet)]
    if openshift:
        command.append("--openshift")
    log = open(state_dir / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    env = dict(os.environ, **(env or {}), PYTHONPATH=str(KUBE_PACKAGE_DIR))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    log.close()
    line = process.stdout.readline()
    if "serving" not in line:
        process.kill()
        process.wait()
        raise RuntimeError(f"kube API stand-in did not start: {line!r}; see {state_dir / 'server.log'}")
    return KubeSandbox(process, line.rsplit(" ", 1)[-1].strip(), state_dir)


@pytest.fixture
def kube_factory(sandbox, tmp_path):
    """kube_factory(crds="all"|[file names]|None, controllers="all"|[names]|None, openshift=False,
    register_fleet=True) -> KubeSandbox; every server started is stopped (by PID) at the end."""
    started: list[KubeSandbox] = []

    def factory(crds="all", controllers="all", openshift=False, register_fleet=True) -> KubeSandbox:
        state_dir = tmp_path / f"kube{len(started) or ''}"
        if state_dir.exists():
            shutil.rmtree(state_dir)
        server = start_kube(
            state_dir,
            fleet=fleet_up.kube_fleet_path(sandbox["dir"]) if register_fleet else None,
            crds=crds,
            controllers=controllers,
            openshift=openshift,
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def world(sandbox, tmp_path):
    """The sandbox as `make sandbox-up` brings it up for a user who cloned the repository and
    has no shared/ folder beside it: the fleet, its services (AWS stand-in, DCGM-shaped
    exporter, a real Prometheus), the Kubernetes API stand-in serving the sandbox's own CRDs
    only, whose controllers use the services, and the seeded objects other tools own
    (sandbox/seed.py). Every site.yml layer runs. Yields the KubeSandbox; services.json is in
    the sandbox folder, the inventory reads it. (The role and module tests check the same
    objects against the upstream CRDs.)"""
    services = sandbox_services.up(sandbox["dir"])
    env = {"GPUOPS_SANDBOX_AWS_ENDPOINT": services["aws_endpoint"], **services["aws_env"]}
    if services.get("prometheus_url"):
        env["GPUOPS_SANDBOX_PROMETHEUS_URL"] = services["prometheus_url"]
    server = None
    try:
        server = start_kube(tmp_path / "kube", fleet=fleet_up.kube_fleet_path(sandbox["dir"]), crds="sandbox", env=env)
        sandbox_seed.seed(sandbox["dir"], kubeconfig=server.kubeconfig)
        yield server
    finally:
        if server is not None:
            server.stop()
        sandbox_services.down(sandbox["dir"])


@pytest.fixture
def kube(kube_factory):
    """The sandbox fleet's Kubernetes cluster: every custom kind (upstream CRDs where shared/crds
    is there, else the sandbox's own), every simulated
    controller, every sandbox host a Node bound to its simulated GPUs."""
    return kube_factory()
