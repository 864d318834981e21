"""Bring a sandbox fleet up from an inventory: `make sandbox-up`, tests and benchmarks.

The inventory is the single source of which host runs which fixture (gpuops_sandbox_fixture);
this renders each host's /sys and /proc tree and resets its NVML state under a directory the
inventory reads from GPUOPS_SANDBOX_DIR. It also writes `<dir>/kube-fleet.json`, the hosts the
Kubernetes API stand-in registers as Nodes (`gpuops_kube_node`), each bound to its NVML state.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SIM_PYTHONPATH = str(REPO_ROOT / "sandbox" / "python")


def inventory_listing(inventory: Path) -> dict:
    """`ansible-inventory --list` as a dict (hostvars unrendered, groups with their hosts)."""
    out = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def inventory_hosts(inventory: Path) -> dict[str, dict]:
    """Host name -> hostvars (unrendered) as ansible-inventory lists them."""
    return dict(inventory_listing(inventory)["_meta"]["hostvars"])


def _group_hosts(listing: dict, group: str) -> set[str]:
    """Every host of `group`, children included."""
    entry = listing.get(group) or {}
    hosts = set(entry.get("hosts") or [])
    for child in entry.get("children") or []:
        hosts |= _group_hosts(listing, child)
    return hosts


def kube_fleet(listing: dict, sandbox_dir: Path) -> dict:
    """The Kubernetes API stand-in's fleet manifest: one Node per host with gpuops_kube_node,
    bound to that host's simulated GPUs (fixture and NVML state file), with the extra labels of
    gpuops_kube_node_labels (what a cloud provider's kubelet adds: instance type, zone, ...)."""
    control_plane = _group_hosts(listing, "kube_control_plane")
    nodes = []
    for host, hostvars in sorted(listing["_meta"]["hostvars"].items()):
        if not hostvars.get("gpuops_kube_node") or not hostvars.get("gpuops_sandbox_fixture"):
            continue
        fixture = hostvars["gpuops_sandbox_fixture"]
        name = str(hostvars.get("gpuops_kube_node_name") or host)
        nodes.append(
            {
                "name": host if "{{" in name else name,
                "host": host,
                "fixture": str(fixture_path(fixture)),
                "state": str(sandbox_dir / "hosts" / host / "nvml-state.json"),
                "control_plane": host in control_plane,
                "labels": {str(k): str(v) for k, v in (hostvars.get("gpuops_kube_node_labels") or {}).items()},
            }
        )
    return {"nodes": nodes}


def kube_fleet_path(sandbox_dir: Path) -> Path:
    return sandbox_dir / "kube-fleet.json"


def sim(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SIM_PYTHONPATH)
    return subprocess.run(
        [sys.executable, "-m", "gpuops_sim", *args], cwd=REPO_ROOT, env=env, check=True, capture_output=True, text=True
    )


def fixture_path(name: str) -> Path:
    return REPO_ROOT / "sandbox" / "fixtures" / f"{name}.yml"


def bring_up(inventory: Path, sandbox_dir: Path) -> dict[str, str]:
    """Render every inventory host that names a fixture; return host -> fixture name."""
    listing = inventory_listing(inventory)
    fixtures = {
        host: hostvars["gpuops_sandbox_fixture"]
        for host, hostvars in listing["_meta"]["hostvars"].items()
        if hostvars.get("gpuops_sandbox_fixture")
    }
    sandbox_dir.mkdir(parents=True, exist_ok=True)
    fleet_file = sandbox_dir / "fleet.yml"
    # JSON is YAML: the simulator's fleet-up reads it as a fleet file.
    fleet_file.write_text(json.dumps({"hosts": fixtures}, indent=2, sort_keys=True) + "\n")
    sim(
        "fleet-up",
        "--fleet",
        str(fleet_file),
        "--fixtures",
        str(REPO_ROOT / "sandbox" / "fixtures"),
        "--dir",
        str(sandbox_dir),
    )
    # What the Kubernetes API stand-in registers as Nodes (`serve --fleet`).
    kube_fleet_path(sandbox_dir).write_text(
        json.dumps(kube_fleet(listing, sandbox_dir.resolve()), indent=2, sort_keys=True) + "\n"
    )
    return fixtures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, default=REPO_ROOT / "inventories" / "sandbox")
    parser.add_argument(
        "--dir",
        type=Path,
        default=REPO_ROOT / ".sandbox",
        help="where host trees and NVML state go (GPUOPS_SANDBOX_DIR)",
    )
    parser.add_argument(
        "--kube-manifest-only",
        action="store_true",
        help="only (re)write DIR/kube-fleet.json, the Nodes of the Kubernetes API stand-in",
    )
    args = parser.parse_args(argv)
    if args.kube_manifest_only:
        sandbox_dir = args.dir.resolve()
        sandbox_dir.mkdir(parents=True, exist_ok=True)
        manifest = kube_fleet(inventory_listing(args.inventory), sandbox_dir)
        kube_fleet_path(sandbox_dir).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        print(f"sandbox: {len(manifest['nodes'])} Kubernetes nodes in {kube_fleet_path(sandbox_dir)}")
        return 0
    fixtures = bring_up(args.inventory, args.dir.resolve())
    for host, fixture in sorted(fixtures.items()):
        print(f"{host:<16} {fixture:<22} {args.dir / 'hosts' / host}")
    print(f"sandbox: {len(fixtures)} hosts rendered under {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
