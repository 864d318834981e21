# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's GPU software stack as structured facts, for the gpu_stack_facts module: whether
it is a container, the NVIDIA driver packages (and their holds), systemd units, container
runtimes and the NVIDIA container toolkit, and the state of the files the roles manage.

Commands run through a ``run(argv)`` callback (AnsibleModule.run_command), never a shell; their
output is parsed here, in one place, with tests (the roles no longer parse text in Jinja).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import grp
import hashlib
import os
import pwd
import re
import stat

from ansible_collections.gpuops.cluster.plugins.module_utils._fileio import PROC_LIMIT, ReadError, read_bytes

# Package name globs per package manager: the driver, its libraries, firmware, headers.
DPKG_PATTERNS = (
    "nvidia-*",
    "libnvidia-*",
    "libcuda1",
    "firmware-nvidia-*",
    "linux-modules-nvidia-*",
    "cuda-drivers*",
    "linux-headers-*",
)
RPM_PATTERNS = ("nvidia-*", "kmod-nvidia*", "libnvidia*", "cuda-drivers*", "kernel-devel*")
RUNTIMES = {
    "containerd": ("containerd", "containerd.service"),
    "crio": ("crio", "crio.service"),
    "docker": ("dockerd", "docker.service"),
}
TOOLKIT = "nvidia-container-toolkit"
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")
_CGROUP_CONTAINER = re.compile(r"/(docker|lxc|kubepods|containerd|libpod|machine\.slice/libpod)[/-]")
_VERSION = re.compile(r"(?:^|[\s/v])v?(\d+)\.(\d+)\.(\d+)")
_UNIT = re.compile(r"^[A-Za-z0-9@:._-]{1,255}\.(service|socket|timer|target|mount)$")
MAX_FILES = 64
MAX_HASHED = 64 * 1024 * 1024


# ------------------------------------------------------------------------------ parsing


def parse_dpkg(text):
    """``dpkg-query -W -f='${Package}\\t${Version}\\t${Status}\\n'`` -> (packages, selections).

    packages: {name: [{version}]} for installed ones (the shape of ansible_facts.packages);
    selections: {name: install|hold|deinstall|purge}.
    """
    packages, selections = {}, {}
    for line in (text or "").splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or not fields[0]:
            continue
        name, version, status = fields[0], fields[1], fields[2].split()
        if len(status) == 3 and status[2] == "installed":
            packages.setdefault(name, []).append({"version": version})
            selections[name] = status[0]
    return packages, selections


def parse_rpm(text):
    """``rpm -qa --qf '%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n'`` -> packages."""
    packages = {}
    for line in (text or "").splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0]:
            packages.setdefault(fields[0], []).append({"version": fields[1]})
    return packages


def parse_version(text):
    """{version, major, minor, patch} from a ``--version`` output, or Nones."""
    match = _VERSION.search(text or "")
    if match is None:
        return {"version": None, "major": None, "minor": None, "patch": None}
    major, minor, patch = (int(g) for g in match.groups())
    return {"version": "%d.%d.%d" % (major, minor, patch), "major": major, "minor": minor, "patch": patch}


def parse_crio_version(text):
    """CRI-O prints ``Version:  1.30.4`` among other lines (its git commit has digits too)."""
    for line in (text or "").splitlines():
        if line.strip().lower().startswith("version:"):
            return parse_version(line.split(":", 1)[1])
    return parse_version(text)


def cgroup_says_container(text):
    return bool(_CGROUP_CONTAINER.search(text or ""))


# ------------------------------------------------------------------------------ collecting


def _run(run, argv):
    """(rc, stdout) of argv; rc 127 when the program is missing."""
    try:
        rc, out, _err = run(argv)
    except OSError:
        return 127, ""
    return rc, out or ""


def detect_container(run, which, root="/"):
    """{detected, how}: systemd-detect-virt when present, else marker files and PID 1's cgroups."""
    if which("systemd-detect-virt"):
        rc, out = _run(run, ["systemd-detect-virt", "--container"])
        kind = out.strip()
        if rc == 0 and kind and kind != "none":
            return {"detected": True, "how": "systemd-detect-virt: %s" % kind}
        if rc in (0, 1):
            return {"detected": False, "how": "systemd-detect-virt: none"}
    markers = [m for m in CONTAINER_MARKERS if os.path.exists(os.path.join(root, m.lstrip("/")))]
    if markers:
        return {"detected": True, "how": "marker %s" % ", ".join(markers)}
    try:
        cgroup = read_bytes(os.path.join(root, "proc/1/cgroup"), PROC_LIMIT).decode("utf-8", "replace")
    except ReadError:
        cgroup = ""
    if cgroup_says_container(cgroup):
        return {"detected": True, "how": "container cgroup of PID 1"}
    return {"detected": False, "how": None}


def packages(run, which):
    """(manager, packages, selections) for the driver's package names."""
    if which("dpkg-query"):
        _rc, out = _run(run, ["dpkg-query", "-W", "-f=${Package}\t${Version}\t${Status}\n"] + list(DPKG_PATTERNS))
        found, selections = parse_dpkg(out)
        return "dpkg", found, selections
    if which("rpm"):
        _rc, out = _run(
            run, ["rpm", "-qa", "--qf", "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n"] + list(RPM_PATTERNS)
        )
        return "rpm", parse_rpm(out), {}
    return None, {}, {}


def units(run, which, names):
    """{unit: {enabled, active}} as systemctl answers (``unknown`` without systemctl)."""
    result = {}
    if not names:
        return result
    if not which("systemctl"):
        return {name: {"enabled": "unknown", "active": "unknown"} for name in names}
    _rc, enabled = _run(run, ["systemctl", "is-enabled"] + list(names))
    _rc, active = _run(run, ["systemctl", "is-active"] + list(names))
    enabled_lines = enabled.splitlines() + ["unknown"] * len(names)
    active_lines = active.splitlines() + ["unknown"] * len(names)
    for position, name in enumerate(names):
        result[name] = {
            "enabled": enabled_lines[position].strip() or "unknown",
            "active": active_lines[position].strip() or "unknown",
        }
    return result


def runtimes(run, which, names):
    """{runtime: {installed, version, major, minor, patch}} for containerd, crio, docker."""
    result = {}
    for name in names:
        binary = RUNTIMES[name][0]
        entry = {"installed": False, "binary": binary}
        entry.update(parse_version(None))
        path = which(binary)
        if path:
            entry["installed"] = True
            _rc, out = _run(run, [path, "--version"])
            entry.update(parse_crio_version(out) if name == "crio" else parse_version(out))
        result[name] = entry
    return result


def file_state(path):
    """{exists, type, mode, owner, group, sha1} of a path; sha1 only for regular files up to 64 MiB."""
    try:
        info = os.lstat(path)
    except OSError:
        return {"exists": False}
    kind = (
        "file"
        if stat.S_ISREG(info.st_mode)
        else "directory"
        if stat.S_ISDIR(info.st_mode)
        else "link"
        if stat.S_ISLNK(info.st_mode)
        else "other"
    )
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    state = {
        "exists": True,
        "type": kind,
        "mode": "%o" % stat.S_IMODE(info.st_mode),
        "owner": owner,
        "group": group,
        "sha1": None,
    }
    if kind == "file" and info.st_size <= MAX_HASHED:
        try:
            state["sha1"] = hashlib.sha1(read_bytes(path, MAX_HASHED)).hexdigest()  # noqa: S324 - a checksum, not security
        except ReadError:
            state["sha1"] = None
    return state


def validate(params):
    """ValueError naming the option for bad input."""
    for name in params.get("services") or []:
        if not isinstance(name, str) or not _UNIT.match(name):
            raise ValueError("services: %r is not a systemd unit name like nvidia-persistenced.service" % (name,))
    for name in params.get("runtimes") or []:
        if name not in RUNTIMES:
            raise ValueError("runtimes: %r is not one of %s" % (name, ", ".join(sorted(RUNTIMES))))
    files = params.get("files") or []
    if len(files) > MAX_FILES:
        raise ValueError("files: at most %d paths" % MAX_FILES)
    for path in files:
        if not isinstance(path, str) or not os.path.isabs(path) or "\x00" in path or "\n" in path:
            raise ValueError("files: every path must be absolute, without NUL or newline characters")


def collect(params, run, which):
    """The gpu_stack fact."""
    validate(params)
    facts = {"container": detect_container(run, which)}
    if params.get("packages", True):
        manager, found, selections = packages(run, which)
        facts.update(package_manager=manager, packages=found, selections=selections)
    services = list(params.get("services") or [])
    runtime_names = list(params.get("runtimes") or [])
    runtime_units = [RUNTIMES[name][1] for name in runtime_names]
    state = units(run, which, services + [u for u in runtime_units if u not in services])
    facts["services"] = {name: state[name] for name in services}
    facts["runtimes"] = runtimes(run, which, runtime_names)
    for name in runtime_names:
        facts["runtimes"][name]["active"] = state[RUNTIMES[name][1]]["active"] == "active"
    if params.get("toolkit"):
        found_all = facts["packages"] if "packages" in facts else packages(run, which)[1]
        found = found_all.get(TOOLKIT)
        facts["toolkit"] = {"installed": bool(found), "version": found[0]["version"] if found else None}
    facts["files"] = {path: file_state(path) for path in params.get("files") or []}
    return facts
