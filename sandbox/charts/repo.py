"""A Helm chart repository on 127.0.0.1 for the sandbox's charts.

    .venv/bin/python sandbox/charts/repo.py --dir DIR [--chart gpu-operator=v25.10.1 ...]
        [--helm .venv/bin/helm] [--port 0]

Packages each chart of sandbox/charts at the version asked (`helm package --version`, so the
gpu-operator stand-in chart matches the version the gpu_operator role pins), writes the
repository index (`helm repo index --url`), then serves DIR over HTTP until SIGTERM/SIGINT. The
first stdout line is `gpuops-charts pid <PID> serving <URL>`: the URL to give
`gpu_operator_helm_repo_url` (kubernetes.core.helm_repository adds it, the helm module installs
`<repo>/gpu-operator` from it). Chart repositories on the network cannot be reached here.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHARTS = Path(__file__).resolve().parent


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


def package(helm: str, chart: str, version: str, out: Path) -> Path:
    """`helm package` one sandbox chart at `version` (also its appVersion) into `out`."""
    source = CHARTS / chart
    if not (source / "Chart.yaml").is_file():
        raise SystemExit(f"repo.py: no chart {chart!r} under {CHARTS}")
    subprocess.run(
        [helm, "package", str(source), "--version", version, "--app-version", version, "--destination", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out / f"{chart}-{version}.tgz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--dir", required=True, help="where the packages and index.yaml go")
    parser.add_argument(
        "--chart",
        action="append",
        default=[],
        metavar="NAME=VERSION",
        help="chart of sandbox/charts and the version to package it at (repeatable; default "
        "gpu-operator=0.0.0-sandbox)",
    )
    parser.add_argument("--helm", default=str(Path(sys.executable).parent / "helm"))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), functools.partial(_Handler, directory=str(out)))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    for spec in args.chart or ["gpu-operator=0.0.0-sandbox"]:
        name, _unused, version = spec.partition("=")
        package(args.helm, name, version or "0.0.0-sandbox", out)
    subprocess.run([args.helm, "repo", "index", str(out), "--url", url], check=True)

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"gpuops-charts pid {os.getpid()} serving {url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
