# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""force: stopping the processes that hold MIG instances a new layout destroys.

A PID is signalled only when a live process with that PID exists here and its name matches the
one NVML reports (a reused PID, one from another PID namespace, or one whose name NVML could
not tell is never signalled).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import signal
import time

from ansible_collections.gpuops.cluster.plugins.module_utils._fileio import PROC_LIMIT, ReadError, read_bytes


def _proc_name(pid, proc_root="/proc"):
    """Short name of a live process, None when it does not exist (or is a zombie)."""
    base = os.path.join(proc_root, str(int(pid)))
    try:
        stat = read_bytes(os.path.join(base, "stat"), 4096).decode("utf-8", "replace")
    except ReadError:
        return None
    after = stat.rsplit(")", 1)[-1].split()
    if after and after[0] in ("Z", "X"):
        return None
    names = []
    try:
        names.append(read_bytes(os.path.join(base, "comm"), 4096).decode("utf-8", "replace").strip())
    except ReadError:
        pass
    try:
        first = read_bytes(os.path.join(base, "cmdline"), PROC_LIMIT).split(b"\0", 1)[0].decode("utf-8", "replace")
        if first:
            names.append(os.path.basename(first))
    except ReadError:
        pass
    return names


def check_signalable(procs):
    """Problems that forbid signalling ``procs`` (each {pid, name}); empty list when all fine.

    A PID is signalled only when a live process with that PID exists here and its name matches
    the one NVML reports, so a PID that was reused (or one from another PID namespace) is
    never killed by mistake.
    """
    problems = []
    for proc in procs:
        names = _proc_name(proc["pid"])
        if names is None:
            problems.append("pid %d (%s) is not a live process on this host" % (proc["pid"], proc.get("name") or "?"))
            continue
        wanted = os.path.basename(proc.get("name") or "")
        if not wanted:
            problems.append("pid %d: NVML does not tell its name, so it cannot be told from a reused PID" % proc["pid"])
            continue
        if not any(n == wanted or (len(n) == 15 and wanted.startswith(n)) for n in names):
            problems.append(
                "pid %d is %s here but NVML names it %s: not signalling it"
                % (proc["pid"], "/".join(sorted(set(names))) or "?", wanted)
            )
    return problems


def terminate(procs, still_running, timeout, sleep=time.sleep, clock=time.monotonic):
    """SIGTERM, wait up to ``timeout`` / 2 for NVML to stop listing them, then SIGKILL.

    ``still_running()`` returns the PIDs NVML still lists. Returns the PIDs left (empty: done).
    """
    pids = sorted({p["pid"] for p in procs})
    for sig, share in ((signal.SIGTERM, 0.5), (signal.SIGKILL, 0.5)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = clock() + timeout * share
        while True:
            left = sorted(set(still_running()) & set(pids))
            if not left or clock() >= deadline:
                break
            sleep(0.2)
        pids = left
        if not pids:
            return []
    return pids
