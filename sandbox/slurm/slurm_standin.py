"""Stand-in for the two Slurm commands the collection runs: `scontrol` and `squeue`.

Running slurmctld and slurmd needs munge, a cluster config and a daemon per node, which is too
heavy for CI here, so the upgrade playbook's Slurm branch runs against this script instead. It
keeps the commands' interface for what the collection uses: arguments, output formats, messages
on stderr and exit status, with the cluster in a JSON file (GPUOPS_SLURM_STATE) changed under a
lock. See sandbox/slurm/README.md for what it covers and what it does not.

    python slurm_standin.py scontrol show node [NAME]
    python slurm_standin.py scontrol update NodeName=NAME State=DRAIN|RESUME|DOWN|IDLE [Reason=TEXT]
    python slurm_standin.py squeue [-h] [-w NAME[,NAME]] [-t STATES] [-o FORMAT]
    python slurm_standin.py admin init --node NAME [--node NAME ...]
    python slurm_standin.py admin submit --node NAME [--seconds S] [--name N] [--user U]
    python slurm_standin.py admin end --job ID
"""

import argparse
import contextlib
import fcntl
import json
import os
import sys
import time

STATE_ENV = "GPUOPS_SLURM_STATE"
DEFAULT_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"
HEADERS = {"i": "JOBID", "P": "PARTITION", "j": "NAME", "u": "USER", "t": "ST", "M": "TIME", "D": "NODES"}
HEADERS["R"] = "NODELIST(REASON)"
HEADERS["N"] = "NODELIST"
BASE_STATES = ("IDLE", "ALLOCATED", "MIXED", "DOWN")


class SlurmError(Exception):
    """Printed on stderr; the command exits 1, like scontrol and squeue do."""


def _path():
    path = os.environ.get(STATE_ENV)
    if not path:
        raise SlurmError("slurm_load_partitions: Unable to contact slurm controller (connect failure)")
    return path


@contextlib.contextmanager
def _cluster(write=False):
    path = _path()
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            try:
                with open(path) as handle:
                    data = json.load(handle)
            except FileNotFoundError:
                raise SlurmError(
                    "slurm_load_partitions: Unable to contact slurm controller (connect failure)"
                ) from None
            _expire_jobs(data)
            yield data
            if write:
                tmp = "%s.%d.tmp" % (path, os.getpid())
                with open(tmp, "w") as handle:
                    json.dump(data, handle, indent=1, sort_keys=True)
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _expire_jobs(data):
    now = time.time()
    data["jobs"] = [job for job in data.get("jobs", []) if job.get("ends_at") is None or job["ends_at"] > now]


def _jobs_on(data, node):
    return [job for job in data["jobs"] if node in job["nodes"]]


def node_state(data, name):
    """State as scontrol prints it: IDLE, ALLOCATED, IDLE+DRAIN, ALLOCATED+DRAIN, DOWN+DRAIN..."""
    node = data["nodes"][name]
    base = node.get("base", "IDLE")
    if base != "DOWN":
        base = "ALLOCATED" if _jobs_on(data, name) else "IDLE"
    return base + ("+DRAIN" if node.get("drain") else "")


def _show_node(data, name):
    node = data["nodes"][name]
    gpus = node.get("gpus", 8)
    busy = bool(_jobs_on(data, name)) and node.get("base") != "DOWN"
    cpus = node.get("cpus", 64)
    reason = ""
    if node.get("reason"):
        reason = "   Reason=%s [%s@%s]\n" % (node["reason"], node.get("reason_user", "root"), node.get("reason_time"))
    return (
        "NodeName={n} Arch=x86_64 CoresPerSocket={cps}\n"
        "   CPUAlloc={alloc} CPUEfctv={cpus} CPUTot={cpus} CPULoad=0.00\n"
        "   AvailableFeatures=(null)\n"
        "   ActiveFeatures=(null)\n"
        "   Gres=gpu:{gpus}\n"
        "   NodeAddr={n} NodeHostName={n} Version=22.05.8\n"
        "   OS=Linux 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)\n"
        "   RealMemory=1000000 AllocMem=0 FreeMem=990000 Sockets=2 Boards=1\n"
        "   State={state} ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A\n"
        "   Partitions={part}\n"
        "   BootTime=2025-01-06T09:00:00 SlurmdStartTime=2025-01-06T09:01:00\n"
        "   LastBusyTime=2025-01-06T09:01:00\n"
        "   CfgTRES=cpu={cpus},mem=1000000M,billing={cpus},gres/gpu={gpus}\n"
        "   AllocTRES={alloctres}\n"
        "   CapWatts=n/a\n"
        "   CurrentWatts=0 AveWatts=0\n"
        "   ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s\n"
        "{reason}"
    ).format(
        n=name,
        cps=cpus // 2,
        cpus=cpus,
        alloc=cpus if busy else 0,
        gpus=gpus,
        state=node_state(data, name),
        part=node.get("partition", "gpu"),
        alloctres=("cpu=%d,gres/gpu=%d" % (cpus, gpus)) if busy else "",
        reason=reason,
    )


def scontrol(argv):
    if argv[:1] == ["show"]:
        what = argv[1:]
        if not what or (what[0].lower() not in ("node", "nodes") and not what[0].lower().startswith("node=")):
            raise SlurmError("invalid entity: %s for keyword: show" % (what[0] if what else ""))
        if "=" in what[0]:
            names = [what[0].split("=", 1)[1]]
        else:
            names = what[1:2]
        with _cluster() as data:
            if names:
                if names[0] not in data["nodes"]:
                    raise SlurmError("Node %s not found" % names[0])
                shown = names
            else:
                shown = sorted(data["nodes"])
            sys.stdout.write("\n".join(_show_node(data, name) for name in shown) + "\n")
        return 0
    if argv[:1] == ["update"]:
        fields = {}
        for item in argv[1:]:
            if "=" not in item:
                raise SlurmError("Invalid input: %s\nRequest aborted" % item)
            key, value = item.split("=", 1)
            fields[key.lower()] = value
        name = fields.get("nodename")
        if not name:
            raise SlurmError('No valid entity in update command\nInput line must include "NodeName"')
        state = fields.get("state", "").upper()
        reason = fields.get("reason")
        with _cluster(write=True) as data:
            if name not in data["nodes"]:
                raise SlurmError("slurm_update error: Invalid node name specified")
            node = data["nodes"][name]
            if state in ("DRAIN", "DOWN"):
                if not reason:
                    raise SlurmError("You must specify a reason when DOWNING or DRAINING a node. Request denied")
                node["drain"] = True
                if state == "DOWN":
                    node["base"] = "DOWN"
                    data["jobs"] = [job for job in data["jobs"] if name not in job["nodes"]]
                node["reason"] = reason
                node["reason_user"] = os.environ.get("USER") or "root"
                node["reason_time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            elif state in ("RESUME", "IDLE", "UNDRAIN"):
                if not node.get("drain") and node.get("base") != "DOWN":
                    raise SlurmError("slurm_update error: Invalid node state specified")
                node["drain"] = False
                node["base"] = "IDLE"
                node["reason"] = node["reason_user"] = node["reason_time"] = None
            elif state:
                raise SlurmError("Invalid node state specified")
            elif reason is not None:
                node["reason"] = reason
        return 0
    raise SlurmError("invalid keyword: %s" % (argv[0] if argv else ""))


def _layout(fmt, values):
    """squeue's -o format: %[.][width]<field>; '.' right-justifies; values longer are cut."""
    out = []
    i = 0
    while i < len(fmt):
        if fmt[i] != "%":
            out.append(fmt[i])
            i += 1
            continue
        j = i + 1
        right = fmt[j : j + 1] == "."
        if right:
            j += 1
        width = ""
        while j < len(fmt) and fmt[j].isdigit():
            width += fmt[j]
            j += 1
        value = values.get(fmt[j : j + 1], "")
        if width:
            value = value[: int(width)]
            value = value.rjust(int(width)) if right else value.ljust(int(width))
        out.append(value)
        i = j + 1
    return "".join(out)


def _job_values(job, now):
    elapsed = int(now - job["start"])
    return {
        "i": str(job["id"]),
        "P": job.get("partition", "gpu"),
        "j": job.get("name", "job"),
        "u": job.get("user", "root"),
        "t": "R",
        "M": "%d:%02d" % (elapsed // 60, elapsed % 60),
        "D": str(len(job["nodes"])),
        "R": ",".join(job["nodes"]),
        "N": ",".join(job["nodes"]),
    }


def squeue(argv):
    parser = argparse.ArgumentParser(prog="squeue", add_help=False)
    parser.add_argument("-h", "--noheader", action="store_true")
    parser.add_argument("-w", "--nodelist")
    parser.add_argument("-t", "--states")
    parser.add_argument("-o", "--format", default=DEFAULT_FORMAT)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        raise SlurmError("squeue: unrecognized option '%s'\nTry \"squeue --help\" for more information" % unknown[0])
    with _cluster() as data:
        wanted = None
        if args.nodelist:
            wanted = set(args.nodelist.split(","))
            missing = sorted(wanted - set(data["nodes"]))
            if missing:
                raise SlurmError("squeue: error: Invalid node name %s" % missing[0])
        states = {s.upper() for s in args.states.split(",")} if args.states else None
        now = time.time()
        lines = []
        if not args.noheader:
            lines.append(_layout(args.format, HEADERS))
        for job in sorted(data["jobs"], key=lambda item: item["id"]):
            if wanted is not None and not wanted & set(job["nodes"]):
                continue
            if states is not None and not states & {"R", "RUNNING", "ALL"}:
                continue
            lines.append(_layout(args.format, _job_values(job, now)))
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
    return 0


def admin(argv):
    parser = argparse.ArgumentParser(prog="slurm_standin.py admin")
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("init", help="a cluster of idle nodes (replaces the state file)")
    p.add_argument("--node", action="append", required=True)
    p.add_argument("--partition", default="gpu")
    p = sub.add_parser("submit", help="a running job on NODE, ending after --seconds (default: never)")
    p.add_argument("--node", action="append", required=True)
    p.add_argument("--seconds", type=float)
    p.add_argument("--name", default="train")
    p.add_argument("--user", default="alice")
    p = sub.add_parser("end", help="end a running job now")
    p.add_argument("--job", type=int, required=True)
    args = parser.parse_args(argv)
    if args.verb == "end":
        with _cluster(write=True) as data:
            if not any(job["id"] == args.job for job in data["jobs"]):
                raise SlurmError("scancel: error: Kill job error on job id %d: Invalid job id specified" % args.job)
            data["jobs"] = [job for job in data["jobs"] if job["id"] != args.job]
        return 0
    if args.verb == "init":
        nodes = {name: {"base": "IDLE", "drain": False, "partition": args.partition} for name in args.node}
        path = _path()
        with open(path, "w") as handle:
            json.dump({"nodes": nodes, "jobs": [], "next_job_id": 1001}, handle, indent=1, sort_keys=True)
        return 0
    with _cluster(write=True) as data:
        for name in args.node:
            if name not in data["nodes"]:
                raise SlurmError("sbatch: error: invalid node name specified: %s" % name)
            if data["nodes"][name].get("drain") or data["nodes"][name].get("base") == "DOWN":
                raise SlurmError(
                    "sbatch: error: Batch job submission failed: Requested node configuration is not available"
                )
        job_id = data.get("next_job_id", 1001)
        data["next_job_id"] = job_id + 1
        now = time.time()
        data["jobs"].append(
            {
                "id": job_id,
                "name": args.name,
                "user": args.user,
                "nodes": list(args.node),
                "start": now,
                "ends_at": now + args.seconds if args.seconds is not None else None,
            }
        )
        sys.stdout.write("Submitted batch job %d\n" % job_id)
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"scontrol": scontrol, "squeue": squeue, "admin": admin}
    if not argv or argv[0] not in commands:
        sys.stderr.write("usage: slurm_standin.py {scontrol,squeue,admin} ...\n")
        return 2
    try:
        return commands[argv[0]](argv[1:])
    except SlurmError as exc:
        sys.stderr.write("%s\n" % exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
