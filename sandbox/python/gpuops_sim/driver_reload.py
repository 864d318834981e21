"""A host that reboots into another NVIDIA driver (`reboot --driver-version V`).

On a real host a driver upgrade installs new packages, and the new kernel module is loaded at the
next boot: from then on `/proc/driver/nvidia/version`, `/sys/module/nvidia/version`,
`libnvidia-ml.so.<version>` and NVML all report the new version. The simulator reads the driver
from the host's fixture, so the change is made there: the fixture file the host's NVML state was
made from gets the new `driver:` section, and the host tree is rendered again from it.

Shipped fixtures (sandbox/fixtures) describe hosts for every test and are never rewritten: a host
whose driver changes needs its own copy of its fixture (point `GPUOPS_NVML_SIM_FIXTURE` at a
copy in the host's folder, e.g. `<sandbox>/hosts/<host>/fixture.yml`).
"""

import os
import re

from gpuops_sim import fixture as fixture_mod

SHIPPED_FIXTURES = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures"))
VERSION_RE = re.compile(r"^\d{3}\.\d{1,3}(\.\d{1,3})?$")

# CUDA driver API version (as nvmlSystemGetCudaDriverVersion returns it) of each driver branch,
# from NVIDIA's CUDA toolkit / driver release notes.
CUDA_BY_BRANCH = {
    470: 11040,
    525: 12000,
    530: 12010,
    535: 12020,
    545: 12030,
    550: 12040,
    555: 12050,
    560: 12060,
    565: 12070,
    570: 12080,
    575: 12090,
    580: 13000,
}


class DriverChangeError(ValueError):
    """A driver change the simulator cannot make (bad version, shared fixture)."""


def _is_shipped(path):
    real = os.path.realpath(path)
    return os.path.dirname(real) == os.path.realpath(SHIPPED_FIXTURES)


def default_root(state_path):
    """The host tree next to the state file (the layout `fleet-up` writes), or None."""
    root = os.path.join(os.path.dirname(os.path.abspath(state_path)), "root")
    return root if os.path.isdir(root) else None


def changed_driver(doc, version, kernel_module=None, cuda_driver_version=None):
    """The fixture document with the driver `version` loaded (a new dict; `doc` is kept)."""
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise DriverChangeError("--driver-version %r is not a driver version like 550.163.01" % (version,))
    branch = int(version.split(".")[0])
    if cuda_driver_version is None:
        cuda_driver_version = CUDA_BY_BRANCH.get(branch)
        if cuda_driver_version is None:
            raise DriverChangeError(
                "no CUDA driver version known for branch %d (known: %s): pass --cuda-driver-version"
                % (branch, ", ".join(str(b) for b in sorted(CUDA_BY_BRANCH)))
            )
    if kernel_module is not None and kernel_module not in fixture_mod.KERNEL_MODULES:
        raise DriverChangeError(
            "--kernel-module %r: expected one of %s" % (kernel_module, ", ".join(fixture_mod.KERNEL_MODULES))
        )
    new = dict(doc)
    driver = dict(doc.get("driver") or {})
    driver["state"] = "loaded"
    driver["version"] = version
    driver["cuda_driver_version"] = int(cuda_driver_version)
    # The driver packages blacklist nouveau, so the reboot that loads them leaves it unloaded.
    driver["nouveau_loaded"] = False
    if kernel_module is not None:
        driver["kernel_module"] = kernel_module
    driver.setdefault("kernel_module", "open")
    new["driver"] = driver
    return new


def install(fixture_path, version, kernel_module=None, cuda_driver_version=None):
    """Rewrite the host's fixture file with the new driver; returns the resolved fixture.

    The new document is resolved (validated) before the file is replaced, atomically.
    """
    import yaml

    if _is_shipped(fixture_path):
        raise DriverChangeError(
            "%s is a shipped fixture shared by every host using it; give the host its own copy "
            "(GPUOPS_NVML_SIM_FIXTURE=<host dir>/fixture.yml) before changing its driver" % fixture_path
        )
    with open(fixture_path) as handle:
        doc = yaml.safe_load(handle)
    if not isinstance(doc, dict):
        raise DriverChangeError("%s: not a fixture (expected a mapping)" % fixture_path)
    new = changed_driver(doc, version, kernel_module, cuda_driver_version)
    fixture_mod.resolve(new, fixture_mod.load_catalog(), source=fixture_path)
    before = os.stat(fixture_path).st_mtime_ns
    directory = os.path.dirname(os.path.abspath(fixture_path))
    tmp = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(fixture_path), os.getpid()))
    with open(tmp, "w") as handle:
        handle.write("---\n# Host-local fixture: its driver was changed by `gpuops_sim reboot --driver-version`.\n")
        yaml.safe_dump(new, handle, sort_keys=False, default_flow_style=None, width=120)
    os.replace(tmp, fixture_path)
    # Loaders key their caches on (mtime, size); file times are coarse (a clock tick), and a new
    # version string often has the old one's length, so make sure the mtime moves.
    if os.stat(fixture_path).st_mtime_ns <= before:
        os.utime(fixture_path, ns=(before + 1000, before + 1000))
    return fixture_mod.load(fixture_path)
