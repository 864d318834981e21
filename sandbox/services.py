"""The sandbox's outside services, beside the Kubernetes API stand-in: an AWS stand-in (moto's
server: EC2, SQS, EventBridge, S3, Cost Explorer), the DCGM-exporter-shaped endpoints of the GPU
hosts (sandbox/metrics) and a real Prometheus (Debian's package) scraping them.

    python sandbox/services.py up   --dir .sandbox    # start what is not running; prints services.json
    python sandbox/services.py down --dir .sandbox    # stop them, by PID
    python sandbox/services.py reload --dir .sandbox  # Prometheus re-reads its rule files (SIGHUP)

Each runs in the background with its PID, log and endpoint under DIR/services/; DIR/services.json
says where they answer ({"aws_endpoint": ..., "prometheus_url": ..., "exporter_targets": ...}).
tools/kube-up.sh hands the endpoints to the stand-in's controllers (GPUOPS_SANDBOX_AWS_ENDPOINT,
GPUOPS_SANDBOX_PROMETHEUS_URL); the sandbox inventory reads them from services.json.
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "metrics"))

from gpuops_metrics.prometheus import PrometheusError, PrometheusServer, find_binary  # noqa: E402

# moto accepts any credentials; these make boto3 sign requests without a profile.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox", "AWS_DEFAULT_REGION": "us-east-1"}
SCRAPE_INTERVAL = "5s"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return marker in cmdline


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer in {timeout:.0f} s: {exc}") from None
            time.sleep(0.2)


def _spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, **(env or {})),
            start_new_session=True,
        )


def start_moto(state: Path) -> dict:
    port = _free_port()
    process = _spawn(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], state / "moto.log", AWS_ENV
    )
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/moto-api/")
    return {"pid": process.pid, "marker": "moto.server", "url": url}


def start_exporter(sandbox_dir: Path, state: Path) -> dict:
    targets = state / "dcgm-targets.json"
    targets.unlink(missing_ok=True)
    process = _spawn(
        [
            sys.executable,
            "-m",
            "gpuops_metrics",
            "exporter",
            "--sandbox-dir",
            str(sandbox_dir),
            "--targets-file",
            str(targets),
        ],
        state / "exporter.log",
        {"PYTHONPATH": os.pathsep.join([str(HERE / "metrics"), str(HERE / "python")])},
    )
    deadline = time.monotonic() + 30
    while not targets.exists() or not targets.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the exporter did not start; see {state / 'exporter.log'}")
        time.sleep(0.1)
    return {"pid": process.pid, "marker": "gpuops_metrics", "targets": str(targets)}


def start_prometheus(state: Path, targets: str) -> dict:
    # The job name the GPU Operator's ServiceMonitor gives its targets (monitoring_exporter_job).
    scrape = [{"job_name": "nvidia-dcgm-exporter", "file_sd_configs": [{"files": [targets], "refresh_interval": "5s"}]}]
    rules = state / "rules"
    rules.mkdir(exist_ok=True)
    server = PrometheusServer.start(
        state / "prometheus", scrape, scrape_interval=SCRAPE_INTERVAL, rule_files=[str(rules / "*.rules.yml")]
    )
    return {"pid": server.pid, "marker": "prometheus", "url": server.url, "rules_dir": str(rules)}


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def up(sandbox_dir: Path) -> dict:
    state = sandbox_dir / "services"
    state.mkdir(parents=True, exist_ok=True)
    record = _load(state / "pids.json")
    running = {name: info for name, info in record.items() if _alive(info["pid"], info["marker"])}
    if "moto" not in running:
        running["moto"] = start_moto(state)
    if "exporter" not in running and (sandbox_dir / "fleet.json").exists():
        running["exporter"] = start_exporter(sandbox_dir, state)
    if "prometheus" not in running and "exporter" in running:
        if find_binary() is None:
            raise PrometheusError("prometheus not installed (make host-tools)")
        running["prometheus"] = start_prometheus(state, running["exporter"]["targets"])
    (state / "pids.json").write_text(json.dumps(running, indent=2) + "\n")
    services = {
        "aws_endpoint": running["moto"]["url"],
        "aws_env": AWS_ENV,
        "prometheus_url": running.get("prometheus", {}).get("url"),
        "prometheus_rules_dir": running.get("prometheus", {}).get("rules_dir"),
        "exporter_targets": running.get("exporter", {}).get("targets"),
    }
    (sandbox_dir / "services.json").write_text(json.dumps(services, indent=2) + "\n")
    return services


def down(sandbox_dir: Path) -> list[str]:
    state = sandbox_dir / "services"
    record = _load(state / "pids.json")
    stopped = []
    for name, info in record.items():
        pid = info["pid"]
        if not _alive(pid, info["marker"]):
            continue
        os.kill(pid, signal.SIGTERM)
        for _unused in range(100):
            if not _alive(pid, info["marker"]):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        stopped.append(f"{name} (pid {pid})")
    (state / "pids.json").unlink(missing_ok=True)
    (sandbox_dir / "services.json").unlink(missing_ok=True)
    return stopped


def reload(sandbox_dir: Path) -> str:
    """SIGHUP to the sandbox's Prometheus: it re-reads its configuration and rule files, as a
    plain Prometheus does after the monitoring role wrote new rules."""
    info = _load(sandbox_dir / "services" / "pids.json").get("prometheus")
    if not info or not _alive(info["pid"], info["marker"]):
        raise RuntimeError("the sandbox's Prometheus is not running (make sandbox-up)")
    os.kill(info["pid"], signal.SIGHUP)
    return f"prometheus (pid {info['pid']}) reloads its rules"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox/services.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("action", choices=["up", "down", "reload"])
    parser.add_argument("--dir", type=Path, default=Path(".sandbox"), help="the sandbox folder")
    args = parser.parse_args(argv)
    sandbox_dir = args.dir.resolve()
    try:
        if args.action == "up":
            print(json.dumps(up(sandbox_dir), indent=2))
        elif args.action == "reload":
            print(f"services: {reload(sandbox_dir)}")
        else:
            for line in down(sandbox_dir):
                print(f"services: stopped {line}")
    except (OSError, RuntimeError, PrometheusError) as exc:
        print(f"services: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
