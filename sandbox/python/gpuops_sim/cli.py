"""Command line of the simulator: render hosts, reset and inspect state, inject faults."""

import argparse
import json
import os
import sys

from gpuops_sim import fixture as fixture_mod
from gpuops_sim import hostroot
from gpuops_sim.constants import NVML_DEVICE_ARCH_AMPERE
from gpuops_sim.errors import error_code
from gpuops_sim.state import StateStore, live_processes


class CliError(Exception):
    """A usage problem, reported on stderr with exit status 2."""


def _uuids(fixture, host):
    return [gpu["uuid"] or fixture_mod.derive_uuid(host, gpu["bus_id"]) for gpu in fixture["gpus"]]


def _read_state_file(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise CliError(
            "state file %s does not exist: create it with `reset --fixture F --state %s`" % (path, path)
        ) from None


def _store(args):
    """StateStore for --state, with the fixture from --fixture or the one the state names."""
    fixture_path = getattr(args, "fixture", None)
    host = None
    if not fixture_path:
        data = _read_state_file(args.state)
        fixture_path = data.get("fixture_path")
        host = data.get("host")
        if not fixture_path or not os.path.exists(fixture_path):
            raise CliError("state %s does not say which fixture it came from; pass --fixture" % args.state)
    fixture = fixture_mod.load(fixture_path, args.state + ".fixture-cache.json")
    store = StateStore(fixture, args.state, host=getattr(args, "host", None) or host)
    store.load()
    return store


def cmd_render(args):
    fixture = fixture_mod.load(args.fixture)
    host = args.host or fixture["host"]["name"]
    hostroot.render(fixture, args.root, _uuids(fixture, host))
    print(os.path.abspath(args.root))


def cmd_reset(args):
    fixture = fixture_mod.load(args.fixture, args.state + ".fixture-cache.json")
    StateStore(fixture, args.state, host=args.host).reset()
    print(os.path.abspath(args.state))


def cmd_inject(args):
    try:
        code = error_code(args.error)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.times is not None and args.times < 1:
        raise CliError("--times must be at least 1")
    if args.skip is not None and args.skip < 0:
        raise CliError("--skip must be 0 or more")
    store = _store(args)
    if args.gpu is not None and not 0 <= args.gpu < len(store.fixture["gpus"]):
        raise CliError("--gpu %d: this host has GPUs 0..%d" % (args.gpu, len(store.fixture["gpus"]) - 1))

    def change(data):
        fault_id = max([f["id"] for f in data["faults"]] + [0]) + 1
        fault = {"id": fault_id, "gpu": args.gpu, "call": args.call, "error": code, "times": args.times}
        if args.skip:
            fault["skip"] = args.skip
        data["faults"].append(fault)

    store.mutate(change)


def cmd_clear_faults(args):
    store = _store(args)

    def change(data):
        data["faults"] = [f for f in data["faults"] if args.gpu is not None and f["gpu"] != args.gpu]

    store.mutate(change)


def cmd_show(args):
    json.dump(_read_state_file(args.state), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def _check_gpu(store, gpu):
    if not 0 <= gpu < len(store.fixture["gpus"]):
        raise CliError("--gpu %d: this host has GPUs 0..%d" % (gpu, len(store.fixture["gpus"]) - 1))


def cmd_reset_gpu(args):
    """Like `nvidia-smi -r`: refused while anything holds the GPU; applies pending MIG mode."""
    store = _store(args)
    _check_gpu(store, args.gpu)

    def change(data):
        gpu = data["gpus"][args.gpu]
        holders = ["pid %d" % p["pid"] for p in live_processes(gpu)] + gpu["other_clients"]
        if holders:
            raise CliError("GPU %d is in use by another client (%s); stop them first" % (args.gpu, ", ".join(holders)))
        gpu["mig"]["current"] = gpu["mig"]["pending"]
        gpu["gpu_instances"] = []

    store.mutate(change)


def cmd_reboot(args):
    """Host reboot: processes and MIG instances go; MIG mode stays on Ampere (InfoROM),
    and is off again on Hopper and later. With --driver-version the host comes back with that
    driver loaded (see gpuops_sim.driver_reload)."""
    store = _store(args)
    fixture = store.fixture
    if args.driver_version:
        from gpuops_sim import driver_reload

        try:
            new_fixture = driver_reload.install(
                fixture["path"], args.driver_version, args.kernel_module, args.cuda_driver_version
            )
        except driver_reload.DriverChangeError as exc:
            raise CliError(str(exc)) from None
        root = args.root or driver_reload.default_root(args.state)
        if root:
            hostroot.render(new_fixture, root, _uuids(new_fixture, store.data.get("host") or store.host))

    def change(data):
        data["boots"] = data.get("boots", 0) + 1
        for gpu, entry in zip(fixture["gpus"], data["gpus"]):
            entry["processes"] = []
            entry["gpu_instances"] = []
            if gpu["model"]["architecture"] <= NVML_DEVICE_ARCH_AMPERE:
                entry["mig"]["current"] = entry["mig"]["pending"]
            else:
                entry["mig"] = {"current": False, "pending": False}

    store.mutate(change)


def cmd_spawn(args):
    """Start a (simulated) process on a GPU or on a MIG device of it."""
    store = _store(args)
    _check_gpu(store, args.gpu)

    def change(data):
        gpu = data["gpus"][args.gpu]
        record = {
            "pid": args.pid,
            "name": args.name,
            "used_memory_mib": args.memory_mib,
            "type": args.type,
            "gpu_instance_id": None,
            "compute_instance_id": None,
        }
        if args.track:
            if not os.path.exists("/proc/%d" % args.pid):
                raise CliError("--track: no process %d on this machine" % args.pid)
            record["track_os_pid"] = True
        if gpu["mig"]["current"]:
            if args.gpu_instance is None:
                raise CliError("GPU %d is in MIG mode: pass --gpu-instance ID [--compute-instance ID]" % args.gpu)
            gi = next((g for g in gpu["gpu_instances"] if g["id"] == args.gpu_instance), None)
            ci_id = args.compute_instance or 0
            if gi is None or not any(ci["id"] == ci_id for ci in gi["compute_instances"]):
                raise CliError(
                    "GPU %d has no compute instance %d in GPU instance %s" % (args.gpu, ci_id, args.gpu_instance)
                )
            record["gpu_instance_id"] = gi["id"]
            record["compute_instance_id"] = ci_id
        gpu["processes"].append(record)

    store.mutate(change)


def cmd_kill(args):
    store = _store(args)

    def change(data):
        found = False
        for gpu in data["gpus"]:
            kept = [p for p in gpu["processes"] if p["pid"] != args.pid]
            found = found or len(kept) != len(gpu["processes"])
            gpu["processes"] = kept
        if not found:
            raise CliError("no GPU process with pid %d" % args.pid)

    store.mutate(change)


def cmd_clients(args):
    """Set the other clients (monitoring agents) holding a GPU open."""
    store = _store(args)
    _check_gpu(store, args.gpu)

    def change(data):
        data["gpus"][args.gpu]["other_clients"] = list(args.client or [])

    store.mutate(change)


def _load_fleet(path):
    import yaml

    with open(path) as handle:
        doc = yaml.safe_load(handle) or {}
    hosts = doc.get("hosts") if isinstance(doc, dict) else None
    if not isinstance(hosts, dict) or not hosts:
        raise CliError("%s: expected `hosts:` mapping host name -> fixture name" % path)
    return hosts


def cmd_fleet_up(args):
    hosts = _load_fleet(args.fleet)
    fixtures_dir = args.fixtures or os.path.join(os.path.dirname(os.path.abspath(args.fleet)), "fixtures")
    summary = {}
    for host, fixture_name in sorted(hosts.items()):
        fixture_path = os.path.join(fixtures_dir, "%s.yml" % fixture_name)
        if not os.path.exists(fixture_path):
            raise CliError(
                "%s: host %s names fixture %r, but %s does not exist" % (args.fleet, host, fixture_name, fixture_path)
            )
        host_dir = os.path.abspath(os.path.join(args.dir, "hosts", host))
        os.makedirs(host_dir, exist_ok=True)
        state_path = os.path.join(host_dir, "nvml-state.json")
        root = os.path.join(host_dir, "root")
        fixture = fixture_mod.load(fixture_path, state_path + ".fixture-cache.json")
        StateStore(fixture, state_path, host=host).reset()
        hostroot.render(fixture, root, _uuids(fixture, host))
        env = {
            "GPUOPS_NVML_SIM_FIXTURE": os.path.abspath(fixture_path),
            "GPUOPS_NVML_SIM_STATE": state_path,
            "GPUOPS_HOST_ROOT": root,
        }
        with open(os.path.join(host_dir, "env"), "w") as handle:
            handle.writelines("export %s=%s\n" % item for item in sorted(env.items()))
        summary[host] = dict(env, fixture=fixture_name, gpus=len(fixture["gpus"]), driver=fixture["driver"]["state"])
    with open(os.path.join(args.dir, "fleet.json"), "w") as handle:
        json.dump({"hosts": summary}, handle, indent=2, sort_keys=True)
    for host in sorted(summary):
        print(
            "%-14s %-20s gpus=%d driver=%s"
            % (host, summary[host]["fixture"], summary[host]["gpus"], summary[host]["driver"])
        )


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m gpuops_sim", description="NVML simulator for the gpuops sandbox")
    sub = parser.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("render", help="(re)write the host tree for a fixture")
    p.add_argument("--fixture", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--host", help="host name the GPU UUIDs derive from")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("reset", help="state back to what the fixture says")
    p.add_argument("--fixture", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--host", help="host name the GPU UUIDs derive from")
    p.set_defaults(func=cmd_reset)

    p = sub.add_parser("inject", help="make NVML calls fail")
    p.add_argument("--state", required=True)
    p.add_argument("--fixture", help="fixture, if the state file does not exist yet")
    p.add_argument("--gpu", type=int, help="NVML index; omitted: every call, system ones too")
    p.add_argument("--call", default="*", help="NVML function name or * (default)")
    p.add_argument("--error", required=True, help="e.g. GPU_IS_LOST, IN_USE, NO_PERMISSION")
    p.add_argument("--times", type=int, help="fire K times, then clear (default: until cleared)")
    p.add_argument("--skip", type=int, help="let the first N matching calls succeed, then fire (default 0)")
    p.set_defaults(func=cmd_inject)

    p = sub.add_parser("clear-faults", help="remove injected faults (fixture faults stay)")
    p.add_argument("--state", required=True)
    p.add_argument("--gpu", type=int, help="only this GPU's faults")
    p.set_defaults(func=cmd_clear_faults)

    p = sub.add_parser("show", help="print the state as JSON")
    p.add_argument("--state", required=True)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("reset-gpu", help="GPU reset: applies a pending MIG mode")
    p.add_argument(
        "--state",
        default=os.environ.get("GPUOPS_NVML_SIM_STATE"),
        required=not os.environ.get("GPUOPS_NVML_SIM_STATE"),
        help="state file (default: $GPUOPS_NVML_SIM_STATE)",
    )
    p.add_argument("--gpu", type=int, required=True)
    p.set_defaults(func=cmd_reset_gpu)

    p = sub.add_parser("reboot", help="host reboot: instances and processes go")
    p.add_argument("--state", required=True)
    p.add_argument("--driver-version", help="come back with this driver loaded (host-local fixture needed)")
    p.add_argument("--kernel-module", choices=("open", "proprietary"), help="with --driver-version: module flavour")
    p.add_argument("--cuda-driver-version", type=int, help="with --driver-version: e.g. 12040 (default: by branch)")
    p.add_argument("--root", help="host tree to render again (default: root/ next to the state, if there)")
    p.set_defaults(func=cmd_reboot)

    p = sub.add_parser("spawn", help="start a GPU process")
    p.add_argument("--state", required=True)
    p.add_argument("--gpu", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--name", default="python3")
    p.add_argument("--memory-mib", type=int, default=1024)
    p.add_argument("--type", choices=("compute", "graphics"), default="compute")
    p.add_argument("--gpu-instance", type=int, help="GPU instance id (MIG mode)")
    p.add_argument("--compute-instance", type=int, help="compute instance id (default 0)")
    p.add_argument(
        "--track",
        action="store_true",
        help="PID is a real process on this machine: the simulated one goes when it exits",
    )
    p.set_defaults(func=cmd_spawn)

    p = sub.add_parser("kill", help="end a GPU process")
    p.add_argument("--state", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.set_defaults(func=cmd_kill)

    p = sub.add_parser("clients", help="set other clients holding a GPU (blocks resets)")
    p.add_argument("--state", required=True)
    p.add_argument("--gpu", type=int, required=True)
    p.add_argument("--client", action="append", help="e.g. dcgm; repeat; none clears")
    p.set_defaults(func=cmd_clients)

    p = sub.add_parser("fleet-up", help="render every host of a fleet file and reset its state")
    p.add_argument("--fleet", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--fixtures", help="fixture folder (default: fixtures/ next to the fleet)")
    p.set_defaults(func=cmd_fleet_up)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CliError, fixture_mod.FixtureError) as exc:
        sys.stderr.write("gpuops_sim: %s\n" % exc)
        return 2
    return 0
