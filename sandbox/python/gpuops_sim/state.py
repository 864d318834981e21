"""Mutable simulator state (MIG mode, instances, processes, injected faults).

Kept in memory, or in a JSON file shared by successive processes: readers read the file
whole (writes replace it atomically), writers hold an exclusive lock on `<file>.lock` while
they read, change and write it back.
"""

import contextlib
import copy
import fcntl
import json
import os

from gpuops_sim import mig
from gpuops_sim.errors import NVMLError
from gpuops_sim.fixture import FixtureError

STATE_FORMAT = 1


def process_alive(proc):
    """A simulated process is there until killed, unless it tracks a real OS process
    (`spawn --track`): then it goes when that process exits (zombies count as gone), as a
    CUDA process leaves NVML's lists when it dies."""
    if not proc.get("track_os_pid"):
        return True
    try:
        with open("/proc/%d/stat" % int(proc["pid"])) as handle:
            state = handle.read().rsplit(")", 1)[-1].split()
    except OSError:
        return False
    return bool(state) and state[0] not in ("Z", "X")


def live_processes(gpu_state):
    return [p for p in gpu_state["processes"] if process_alive(p)]


def driver_major(fixture):
    version = fixture["driver"].get("version") or "0"
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def initial_state(fixture, host=None):
    """State as the fixture describes it."""
    state = {
        "format": STATE_FORMAT,
        "fixture_name": fixture["name"],
        "fixture_path": fixture.get("path"),
        "host": host or fixture["host"]["name"],
        "next_uid": 1,
        "boots": 0,
        "faults": [],
        "gpus": [],
    }
    for gpu in fixture["gpus"]:
        state["gpus"].append(_initial_gpu(state, fixture, gpu))
    return state


def _uid(state):
    uid = state["next_uid"]
    state["next_uid"] = uid + 1
    return uid


def _initial_gpu(state, fixture, gpu):
    where = "gpus[%d]" % gpu["position"]
    entry = {
        "mig": dict(gpu["mig"]),
        "gpu_instances": [],
        "processes": [],
        "other_clients": list(gpu["other_clients"]),
    }
    geometry = gpu["model"]["mig_geometry"]
    if gpu["mig_devices"] and not gpu["mig"]["current"]:
        raise FixtureError("%s.mig_devices: only allowed when mig.current is true" % where)
    for i, raw in enumerate(gpu["mig_devices"]):
        spot = "%s.mig_devices[%d]" % (where, i)
        profile = mig.gi_profile_by_name(geometry, str(raw.get("profile")))
        if profile is None:
            names = [p["name"] for p in geometry["gpu_instance_profiles"]]
            raise FixtureError(
                "%s.profile: %r is not a GI profile of %s; known: %s"
                % (spot, raw.get("profile"), gpu["model"]["key"], names)
            )
        gis = entry["gpu_instances"]
        major = driver_major(fixture)
        if raw.get("placement") is None:
            try:
                start = mig.choose_start(geometry, gis, profile, major)
            except NVMLError:
                raise FixtureError("%s: no room left for %s" % (spot, profile["name"])) from None
        else:
            start = int(raw["placement"])
            if mig.placement_error(geometry, gis, profile, start, major) is not None:
                raise FixtureError("%s.placement: %s cannot go at slot %d here" % (spot, profile["name"], start))
        gi = {
            "id": mig.gi_id_for(geometry, start, profile["size"]),
            "uid": _uid(state),
            "profile_id": profile["id"],
            "start": start,
            "size": profile["size"],
            "compute_instances": [],
        }
        cis_raw = raw.get("compute_instances")
        if cis_raw is None:
            cis_raw = [{"profile": profile["name"]}]
        for j, ci_raw in enumerate(cis_raw):
            ci_spot = "%s.compute_instances[%d]" % (spot, j)
            ci_profile = None
            for candidate in mig.ci_profiles_for(geometry, profile):
                if candidate["name"] == ci_raw.get("profile"):
                    ci_profile = candidate
            if ci_profile is None:
                names = [p["name"] for p in mig.ci_profiles_for(geometry, profile)]
                raise FixtureError(
                    "%s.profile: %r unknown in %s; known: %s" % (ci_spot, ci_raw.get("profile"), profile["name"], names)
                )
            cis = gi["compute_instances"]
            if ci_raw.get("placement") is None:
                try:
                    ci_start = mig.choose_ci_start(profile, cis, ci_profile)
                except NVMLError:
                    raise FixtureError("%s: no room left" % ci_spot) from None
            else:
                ci_start = int(ci_raw["placement"])
                if mig.ci_placement_error(profile, cis, ci_profile, ci_start) is not None:
                    raise FixtureError("%s.placement: cannot go at %d" % (ci_spot, ci_start))
            cis.append(
                {
                    "id": mig.next_ci_id(cis),
                    "uid": _uid(state),
                    "profile_id": ci_profile["id"],
                    "start": ci_start,
                    "size": ci_profile["slices"],
                }
            )
        gis.append(gi)
    entry["gpu_instances"].sort(key=lambda item: item["id"])
    for i, proc in enumerate(gpu["processes"]):
        spot = "%s.processes[%d]" % (where, i)
        record = {
            "pid": proc["pid"],
            "name": proc["name"],
            "used_memory_mib": proc["used_memory_mib"],
            "type": proc["type"],
            "gpu_instance_id": None,
            "compute_instance_id": None,
        }
        if gpu["mig"]["current"]:
            if proc["gpu_instance"] is None:
                raise FixtureError(
                    "%s.gpu_instance: a process on a MIG GPU names the "
                    "placement (start slot) of its GPU instance" % spot
                )
            gi = next((g for g in entry["gpu_instances"] if g["start"] == int(proc["gpu_instance"])), None)
            if gi is None:
                raise FixtureError("%s.gpu_instance: no GPU instance at slot %s" % (spot, proc["gpu_instance"]))
            ci = next((x for x in gi["compute_instances"] if x["start"] == int(proc["compute_instance"] or 0)), None)
            if ci is None:
                raise FixtureError(
                    "%s.compute_instance: no compute instance at slot %s" % (spot, proc["compute_instance"])
                )
            record["gpu_instance_id"] = gi["id"]
            record["compute_instance_id"] = ci["id"]
        entry["processes"].append(record)
    return entry


class StateStore:
    """State of one simulated host, in memory or backed by a JSON file."""

    def __init__(self, fixture, path=None, host=None):
        self.fixture = fixture
        self.path = path
        self.host = host
        self.data = None

    # -- file plumbing -------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self):
        lock_path = self.path + ".lock"
        with open(lock_path, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _read_file(self):
        try:
            with open(self.path) as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        if not self._matches(data):
            return None
        return data

    def _matches(self, data):
        return (
            isinstance(data, dict)
            and data.get("format") == STATE_FORMAT
            and data.get("fixture_name") == self.fixture["name"]
            and len(data.get("gpus", [])) == len(self.fixture["gpus"])
        )

    def _write_file(self, data):
        directory = os.path.dirname(os.path.abspath(self.path))
        tmp = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(self.path), os.getpid()))
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        # Atomic rename, no fsync: readers never see a half-written file, and a simulated host's
        # state need not survive a crash of this machine (it is rebuilt from the fixture).
        os.replace(tmp, self.path)

    # -- API -----------------------------------------------------------------------------
    def load(self):
        """Read the state (creating it from the fixture when absent or for another fixture)."""
        if self.path is None:
            if self.data is None:
                self.data = initial_state(self.fixture, self.host)
            return self.data
        data = self._read_file()
        if data is None:
            with self._locked():
                data = self._read_file()
                if data is None:
                    data = initial_state(self.fixture, self.host)
                    self._write_file(data)
        self.data = data
        return data

    def reset(self):
        """State back to what the fixture says."""
        data = initial_state(self.fixture, self.host)
        if self.path is not None:
            with self._locked():
                self._write_file(data)
        self.data = data
        return data

    def mutate(self, change):
        """Apply `change(state)` atomically; returns what `change` returns.

        With a file, the change runs on the freshest copy under the lock, so concurrent
        writers never lose each other's updates. If `change` raises, nothing is written.
        """
        if self.path is None:
            if self.data is None:
                self.load()
            trial = copy.deepcopy(self.data)
            result = change(trial)
            self.data = trial
            return result
        with self._locked():
            data = self._read_file()
            if data is None:
                data = initial_state(self.fixture, self.host)
            result = change(data)
            self._write_file(data)
        self.data = data
        return result

    @staticmethod
    def new_uid(data):
        return _uid(data)
