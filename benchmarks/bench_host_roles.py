"""Host roles: first converge vs idempotent rerun of nvidia_driver + container_toolkit on one container.

Run from the repository root (docker daemon up, `make fleet-image` done):

    .venv/bin/python benchmarks/bench_host_roles.py [--cold-cache] [--top 8] [--keep]

What it does:
  1. starts one Debian 12 fleet container (systemd as PID 1, the molecule options), gives it a
     stock main-only apt source and Debian's containerd (setup, not timed);
  2. runs one playbook applying gpuops.cluster.nvidia_driver (Debian's driver packages really
     installed; no GPU in a container, so nvidia_driver_require_gpu=false) and
     gpuops.cluster.container_toolkit (containerd, CRI-O, docker wiring; package install off,
     NVIDIA's repository being unreachable here) — the first converge;
  3. runs the same playbook again — the rerun, which must report changed=0;
  4. prints both wall times, the slowest tasks of each (ansible.posix.profile_tasks), and the
     rerun / first-converge ratio against the 30 % target, also net of a baseline measured in the
     same run (best of three no-op playbooks on the same container: controller start-up and
     connection, which every run pays).

Downloaded .debs are shared with the molecule scenarios in build/apt-archives, so the first
converge measures installing, not downloading; --cold-cache uses an empty folder instead.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE = "gpuops/fleet:debian12"
TARGET_RATIO = 0.30

PLAYBOOK = """\
---
- name: Host roles
  hosts: all
  gather_facts: false
  vars:
    nvidia_driver_require_gpu: false
    container_toolkit_runtimes: [containerd, crio, docker]
    container_toolkit_install_package: false
  roles:
    - role: gpuops.cluster.nvidia_driver
    - role: gpuops.cluster.container_toolkit
"""

NOOP = """\
---
- name: Baseline (controller start, connection, one module round trip)
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""

PREPARE = """\
---
- name: Prepare (not timed)
  hosts: all
  gather_facts: false
  tasks:
    - name: Stock apt sources (main only)
      ansible.builtin.replace:
        path: /etc/apt/sources.list
        regexp: '^(deb\\s+\\S+\\s+\\S+)\\s.*$'
        replace: '\\1 main'
    - name: Keep downloaded packages
      ansible.builtin.copy:
        dest: /etc/apt/apt.conf.d/99keep-downloads
        content: 'APT::Keep-Downloaded-Packages "true";'
        mode: "0644"
    - name: Debian's containerd
      ansible.builtin.apt:
        name: containerd
        update_cache: true
        install_recommends: false
"""


def sh(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


def start_container(name: str, archives: Path) -> None:
    sh("docker", "rm", "-f", name, check=False)
    sh(
        "docker", "run", "-d", "--name", name, "--hostname", "bench-host",
        "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
        "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
        "-v", f"{archives}:/var/cache/apt/archives",
        "--stop-signal", "SIGRTMIN+3",
        IMAGE, "/lib/systemd/systemd",
    )  # fmt: skip
    state = ""
    deadline = time.monotonic() + 120
    while state not in ("running", "degraded") and time.monotonic() < deadline:
        # Right after the start systemd may not answer on its bus yet: ask again.
        state = sh("docker", "exec", name, "systemctl", "is-system-running", "--wait", check=False).stdout.strip()
        if state not in ("running", "degraded"):
            time.sleep(1)
    if state not in ("running", "degraded"):
        raise SystemExit(f"bench_host_roles: container did not boot (systemd says {state!r})")


def playbook(inventory: Path, path: Path, env: dict) -> tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.monotonic() - start
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.stderr.write(output[-6000:])
        raise SystemExit(f"bench_host_roles: {path.name} failed (rc {proc.returncode})")
    return wall, output


def recap(output: str) -> dict[str, int]:
    match = re.search(r"^bench-host\s+:\s+((?:\w+=\d+\s*)+)$", output, re.MULTILINE)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))} if match else {}


def slowest(output: str, top: int) -> list[tuple[float, str]]:
    """The profile_tasks summary lines: 'role : task ---- 12.34s'."""
    rows = []
    for line in output.splitlines():
        match = re.match(r"^(.*?)\s-{2,}\s+(\d+\.\d+)s$", line.strip())
        if match:
            rows.append((float(match.group(2)), match.group(1).strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cold-cache", action="store_true", help="empty apt archive folder (downloads timed too)")
    parser.add_argument("--top", type=int, default=8, help="slowest tasks to list per run")
    parser.add_argument("--keep", action="store_true", help="leave the container running")
    args = parser.parse_args()

    if shutil.which("docker") is None or sh("docker", "image", "inspect", IMAGE, check=False).returncode != 0:
        print(f"bench_host_roles: skipped: docker or the image {IMAGE} is missing (make docker fleet-image)")
        return 0

    name = f"gpuops-bench-host-roles-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="bench-host-roles-") as tmp:
        work = Path(tmp)
        archives = work / "archives" if args.cold_cache else REPO_ROOT / "build" / "apt-archives"
        archives.mkdir(parents=True, exist_ok=True)
        inventory = work / "inventory.yml"
        inventory.write_text(
            "all:\n  hosts:\n    bench-host:\n"
            f"      ansible_connection: community.docker.docker\n      ansible_host: {name}\n"
            "      ansible_python_interpreter: /usr/bin/python3\n"
        )
        (work / "prepare.yml").write_text(PREPARE)
        (work / "converge.yml").write_text(PLAYBOOK)
        (work / "noop.yml").write_text(NOOP)
        env = dict(
            os.environ,
            ANSIBLE_COLLECTIONS_PATH=str(REPO_ROOT / "build" / "collections"),
            ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
            ANSIBLE_PIPELINING="true",
            ANSIBLE_NOCOLOR="1",
            PROFILE_TASKS_TASK_OUTPUT_LIMIT="100",
        )
        try:
            start_container(name, archives)
            playbook(inventory, work / "prepare.yml", env)
            baseline_s = min(playbook(inventory, work / "noop.yml", env)[0] for _unused in range(3))
            first_s, first_out = playbook(inventory, work / "converge.yml", env)
            rerun_s, rerun_out = playbook(inventory, work / "converge.yml", env)
        finally:
            if not args.keep:
                sh("docker", "rm", "-f", name, check=False)

    first, rerun = recap(first_out), recap(rerun_out)
    cache = "cold (downloads included)" if args.cold_cache else "warm shared apt cache (build/apt-archives)"
    print(f"host roles on one Debian 12 fleet container, {cache}")
    print(f"  first converge : {first_s:7.1f} s  (changed={first.get('changed')}, ok={first.get('ok')})")
    print(f"  rerun          : {rerun_s:7.1f} s  (changed={rerun.get('changed')}, ok={rerun.get('ok')})")
    print(f"  baseline       : {baseline_s:7.1f} s  (no-op playbook: controller start + connection)")
    ratio = rerun_s / first_s
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"  rerun / first  : {ratio:7.2f}  ({verdict} the <= {TARGET_RATIO:.2f} target)")
    net = (rerun_s - baseline_s) / (first_s - baseline_s)
    print(f"  same, net of the baseline: {net:.2f}")
    for label, output in (("first converge", first_out), ("rerun", rerun_out)):
        print(f"  slowest tasks, {label}:")
        for seconds, task in slowest(output, args.top):
            print(f"    {seconds:6.2f} s  {task}")
    if rerun.get("changed") != 0:
        print("  rerun was not idempotent: changed != 0")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
