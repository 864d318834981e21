"""`python -m gpuops_metrics exporter --sandbox-dir .sandbox [...]`: serve the DCGM-exporter-shaped
endpoints of a sandbox fleet until SIGTERM/SIGINT (see exporter.py)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from .exporter import HOSTNAME_LABELS, FleetExporter
from .fields import CountersError, default_fields, parse_counters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpuops_metrics")
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("exporter", help="serve one DCGM-exporter-shaped endpoint per sandbox GPU host")
    exp.add_argument("--sandbox-dir", type=Path, required=True, help="a fleet-up directory (fleet.json, hosts/)")
    exp.add_argument("--host", action="append", dest="hosts", help="only these hosts (repeatable)")
    exp.add_argument("-f", "--collectors", type=Path, help="dcgm-exporter counters CSV (default: its defaults)")
    exp.add_argument("--hostname-label", choices=HOSTNAME_LABELS, default="Hostname")
    exp.add_argument("--kubernetes-virtual-gpus", action="store_true", help="one series per pod sharing a GPU")
    exp.add_argument("--targets-file", type=Path, help="write Prometheus file_sd targets (JSON) here")
    args = parser.parse_args(argv)
    try:
        fields = parse_counters(args.collectors.read_text(), str(args.collectors)) if args.collectors else None
        exporter = FleetExporter.start(
            args.sandbox_dir,
            args.hosts,
            fields or default_fields(),
            hostname_label=args.hostname_label,
            virtual_gpus=args.kubernetes_virtual_gpus,
        )
    except (OSError, ValueError, CountersError) as exc:
        print(f"exporter: {exc}", file=sys.stderr)
        return 2
    targets = json.dumps(exporter.file_sd(), indent=2)
    if args.targets_file:
        args.targets_file.write_text(targets + "\n")
    print(targets, flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    exporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
