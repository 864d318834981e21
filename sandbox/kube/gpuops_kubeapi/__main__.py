"""Command line: `python -m gpuops_kubeapi serve --port P --state-dir D --kubeconfig-out F`
[--crds DIR|FILE ...] [--fleet MANIFEST.json] [--controllers all|none|a,b] [--openshift]
[--simulate-workloads] [--plain-http]."""

from __future__ import annotations

import argparse
import base64
import os
import signal
import sys
import tempfile
import threading

import yaml

from . import crd_sources
from .api import Cluster, WriteOptions, now
from .auth import Pki
from .server import KubeApiServer
from .sim import fleet
from .sim.controllers import WORKLOAD_CONTROLLERS, build_runner, parse_controllers
from .sim.runner import CONTROLLER_NAMES
from .store import Store

SNAPSHOT_NAME = "state.json"
CONTEXT = "gpuops-sandbox"
CERT_CONTEXT = "gpuops-sandbox-cert"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(url: str, pki: Pki | None = None) -> dict:
    """A kubeconfig for this server. With TLS: the cluster CA, the admin bearer token (current
    context), and a second context authenticating with the admin client certificate."""
    cluster: dict = {"server": url}
    users: list[dict] = [{"name": CONTEXT, "user": {}}]
    contexts = [
        {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}
    ]
    if pki is not None:
        cluster["certificate-authority-data"] = _b64(pki.ca_pem)
        users[0]["user"] = {"token": pki.admin_token}
        users.append(
            {
                "name": CERT_CONTEXT,
                "user": {
                    "client-certificate-data": _b64(pki.admin_cert_pem),
                    "client-key-data": _b64(pki.admin_key_pem),
                },
            }
        )
        contexts.append(
            {
                "name": CERT_CONTEXT,
                "context": {"cluster": CONTEXT, "user": CERT_CONTEXT, "namespace": "default"},
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": users,
        "contexts": contexts,
        "current-context": CONTEXT,
        "preferences": {},
    }


def load_crds(cluster: Cluster, location: str) -> int:
    crd_type = cluster.types[("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
    loaded = 0
    for path in crd_sources.crd_files(location):
        with open(path, encoding="utf-8") as handle:
            documents = [d for d in yaml.safe_load_all(handle) if isinstance(d, dict)]
            for document in documents:
                if document.get("kind") == "List":  # as kubectl reads a List
                    documents.extend(i for i in document.get("items") or [] if isinstance(i, dict))
                if (
                    not isinstance(document, dict)
                    or document.get("kind") != "CustomResourceDefinition"
                ):
                    continue
                name = document["metadata"]["name"]
                if cluster.store.get(crd_type.key, ("", name)) is None:
                    cluster.create(
                        crd_type, None, document, WriteOptions(field_manager="gpuops-kubeapi")
                    )
                    loaded += 1
    return loaded


def serve(args: argparse.Namespace) -> int:
    # Deeply nested (but accepted, see store.MAX_JSON_DEPTH) objects recurse in validation
    # and managed-fields code: room for that on every thread.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 8000))
    threading.stack_size(32 * 1024 * 1024)
    cluster = Cluster(Store())
    snapshot_path = os.path.join(args.state_dir, SNAPSHOT_NAME) if args.state_dir else None
    scratch = None
    if args.state_dir:
        os.makedirs(args.state_dir, exist_ok=True)
        pki_dir = os.path.join(args.state_dir, "pki")
    else:
        scratch = tempfile.TemporaryDirectory(prefix="gpuops-kubeapi-pki-")
        pki_dir = scratch.name
    pki = Pki(pki_dir)
    if snapshot_path:
        snapshot = Store.read_snapshot(snapshot_path)
        if snapshot:
            cluster.restore(snapshot)
    cluster.bootstrap()
    for location in args.crds or []:
        load_crds(cluster, location)
    names = parse_controllers(args.controllers)
    if args.simulate_workloads:
        names = parse_controllers(",".join(dict.fromkeys(names + list(WORKLOAD_CONTROLLERS))))
    if args.fleet:
        fleet.register(cluster, fleet.read_manifest(args.fleet), now())
    operator_crds = [crd_sources.resolve(x) for x in args.operator_crds or args.crds or []]
    runner = build_runner(
        cluster,
        names,
        {
            "openshift": args.openshift,
            "shared_crds": operator_crds,
            "pki": pki,
            "pod_failure_backoff": args.pod_failure_backoff,
        },
        resync=args.resync,
    )
    server = KubeApiServer(
        ("127.0.0.1", args.port),
        cluster,
        verbose=args.verbose,
        pki=None if args.plain_http else pki,
    )
    server.token_pki = pki
    if args.kubeconfig_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.kubeconfig_out)), exist_ok=True)
        descriptor = os.open(args.kubeconfig_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yaml.safe_dump(
                kubeconfig(server.url, None if args.plain_http else pki), handle, sort_keys=False
            )
        os.chmod(args.kubeconfig_out, 0o600)
    pid_file = args.pid_file or (
        os.path.join(args.state_dir, "kubeapi.pid") if args.state_dir else None
    )
    if pid_file:
        with open(pid_file, "w", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        # shutdown() blocks until serve_forever returns, so it cannot run on this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runner.start()
    print(f"gpuops-kubeapi pid {os.getpid()} serving {server.url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        runner.stop()
        with cluster.store.changed:
            cluster.store.closed = True
            cluster.store.changed.notify_all()
        server.server_close()
        if snapshot_path:
            cluster.store.save(snapshot_path)
        if pid_file and os.path.exists(pid_file):
            os.remove(pid_file)
        if scratch is not None:
            scratch.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpuops_kubeapi", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the API stand-in on 127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve_parser.add_argument("--state-dir", help="where the snapshot and PID file live")
    serve_parser.add_argument("--kubeconfig-out", help="write a kubeconfig for this server here")
    serve_parser.add_argument(
        "--crds",
        action="append",
        help="CRD YAML file, or directory of them, to install at start (repeatable; the word "
        "`sandbox` names the sandbox's own CRDs; a CRD already created by an earlier location "
        "is kept, so list upstream CRDs first and `sandbox` last to fill in what they lack)",
    )
    serve_parser.add_argument(
        "--operator-crds",
        action="append",
        help="where the olm controller finds the CRDs an operator serves once installed "
        "(default: the --crds locations; `sandbox` works here too)",
    )
    serve_parser.add_argument(
        "--fleet", help="fleet manifest (sandbox/fleet_up.py) whose hosts become Nodes"
    )
    serve_parser.add_argument(
        "--controllers",
        default="none",
        help="simulated controllers to run: all, none, or a comma list of "
        + ",".join(CONTROLLER_NAMES),
    )
    serve_parser.add_argument(
        "--openshift",
        action="store_true",
        help="serve config.openshift.io ClusterVersion and route.openshift.io as OpenShift does",
    )
    serve_parser.add_argument(
        "--resync", type=float, default=0.5, help="controller resync period in seconds"
    )
    serve_parser.add_argument(
        "--pod-failure-backoff",
        type=float,
        default=10.0,
        help="first back-off in seconds after a container or Job pod fails, doubled each time "
        "(upstream: 10); tests use less",
    )
    serve_parser.add_argument("--pid-file", help="PID file (default: STATE_DIR/kubeapi.pid)")
    serve_parser.add_argument(
        "--simulate-workloads",
        action="store_true",
        help="also run the workload controllers, scheduler and kubelets ("
        + ",".join(WORKLOAD_CONTROLLERS)
        + "), so workloads roll out with real pods",
    )
    serve_parser.add_argument(
        "--plain-http",
        action="store_true",
        help="serve plain HTTP without authentication or authorization (every request is the "
        "admin), as the apiserver's old insecure port did; the default is HTTPS with auth",
    )
    serve_parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            parse_controllers(args.controllers)
        except ValueError as exc:
            parser.error(str(exc))
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
