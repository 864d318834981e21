# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers for the plugin unit tests: import path, a fake pynvml, host trees."""

from __future__ import annotations

import ctypes
import os
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
COLLECTIONS = os.path.join(REPO, "build", "collections")
HERE = os.path.dirname(os.path.abspath(__file__))
# The collection, this folder's helpers (simhost) and the MIG tests' brute-force oracle.
for _path in (COLLECTIONS, HERE, os.path.join(HERE, "module_utils", "mig")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

MIB = 1024 * 1024

ERROR_NAMES = {
    2: "Invalid Argument",
    3: "Not Supported",
    4: "Insufficient Permissions",
    6: "Not Found",
    9: "Driver Not Loaded",
    12: "NVML Shared Library Not Found",
    15: "GPU is lost",
    18: "RM has detected an NVML/RM version mismatch.",
    999: "Unknown Error",
}


class FakeNVMLError(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return ERROR_NAMES.get(self.value, "NVML Error with code %d" % self.value)


# A100-40GB-like GPU instance profiles: index -> (id, slices, max count, memory MiB)
A100_40_PROFILES = {
    0: (19, 1, 7, 4864),
    7: (20, 1, 1, 4864),
    9: (15, 1, 4, 9856),
    1: (14, 2, 3, 9856),
    2: (9, 3, 2, 19968),
    3: (5, 4, 1, 19968),
    4: (0, 7, 1, 40192),
}


def gpu_spec(index=0, **overrides):
    """A healthy A100-SXM4-40GB as the fake NVML describes it."""
    spec = {
        "name": "NVIDIA A100-SXM4-40GB",
        "uuid": "GPU-0000000%d-aaaa-bbbb-cccc-000000000000" % index,
        "bus_id": "00000000:%02X:00.0" % (0x07 + index * 0x10),
        "device_id": 0x20B0,
        "subsystem": 0x134F10DE,
        "serial": "15647200046%02d" % index,
        "arch": 7,
        "cc": (8, 0),
        "memory_total": 40960 * MIB,
        "memory_used": 0,
        "temperature": 34,
        "power_mw": 62500,
        "limit_mw": 400000,
        "ecc": [1, 1],
        "ecc_volatile": 0,
        "ecc_aggregate": 0,
        "retired": None,  # NOT_SUPPORTED (Ampere)
        "remapped": (0, 0, 0, 0),
        "persistence": 1,
        "nvlinks": [1] * 12,
        "mig": {"current": 0, "pending": 0, "profiles": A100_40_PROFILES, "gis": []},
        "processes": [],
    }
    spec.update(overrides)
    return spec


class _Namespace:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class FakeNvml:
    """Just enough of pynvml's surface for the collector, with fault injection.

    faults: {(gpu index or None, function name or '*'): error code}.
    """

    NVML_GPU_INSTANCE_PROFILE_COUNT = 0x12
    NVML_COMPUTE_INSTANCE_PROFILE_COUNT = 0x9
    NVML_NVLINK_MAX_LINKS = 18
    c_nvmlGpuInstance_t = ctypes.c_void_p
    c_nvmlComputeInstance_t = ctypes.c_void_p

    def __init__(self, gpus, faults=None, init_error=None, give_names=False):
        self.NVMLError = FakeNVMLError
        self.gpus = gpus
        self.faults = dict(faults or {})
        self.init_error = init_error
        self.give_names = give_names
        self.calls = []
        self.initialized = 0
        self._objects = {}

    # --- plumbing
    def _check(self, name, index):
        self.calls.append((name, index))
        if not self.initialized:
            raise FakeNVMLError(1)
        for key in ((index, name), (index, "*"), (None, name)):
            if key in self.faults:
                raise FakeNVMLError(self.faults[key])

    def __getattr__(self, name):
        raise AttributeError(name)

    # --- system
    def nvmlInit(self):
        if self.init_error:
            raise FakeNVMLError(self.init_error)
        self.initialized += 1

    def nvmlShutdown(self):
        self.initialized -= 1

    def nvmlSystemGetDriverVersion(self):
        self._check("nvmlSystemGetDriverVersion", None)
        return "550.127.05"

    def nvmlSystemGetCudaDriverVersion(self):
        self._check("nvmlSystemGetCudaDriverVersion", None)
        return 12040

    def nvmlSystemGetNVMLVersion(self):
        self._check("nvmlSystemGetNVMLVersion", None)
        return "12.550.127.05"

    def nvmlDeviceGetCount(self):
        self._check("nvmlDeviceGetCount", None)
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        self._check("nvmlDeviceGetHandleByIndex", index)
        return ("gpu", index)

    # --- device
    def _gpu(self, name, handle):
        kind, index = handle[0], handle[1]
        assert kind == "gpu", (name, handle)
        self._check(name, index)
        return self.gpus[index]

    def nvmlDeviceGetName(self, h):
        return self._gpu("nvmlDeviceGetName", h)["name"]

    def nvmlDeviceGetUUID(self, h):
        if h[0] == "mig":
            self._check("nvmlDeviceGetUUID", h[1])
            return "MIG-%d-%d-%d" % (h[1], h[2], h[3])
        return self._gpu("nvmlDeviceGetUUID", h)["uuid"]

    def nvmlDeviceGetSerial(self, h):
        serial = self._gpu("nvmlDeviceGetSerial", h)["serial"]
        if serial is None:
            raise FakeNVMLError(3)
        return serial

    def nvmlDeviceGetPciInfo(self, h):
        gpu = self._gpu("nvmlDeviceGetPciInfo", h)
        return _Namespace(
            busId=gpu["bus_id"].encode(), pciDeviceId=(gpu["device_id"] << 16) | 0x10DE, pciSubSystemId=gpu["subsystem"]
        )

    def nvmlDeviceGetArchitecture(self, h):
        return self._gpu("nvmlDeviceGetArchitecture", h)["arch"]

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return self._gpu("nvmlDeviceGetCudaComputeCapability", h)["cc"]

    def nvmlDeviceGetMemoryInfo(self, h):
        if h[0] == "mig":
            self._check("nvmlDeviceGetMemoryInfo", h[1])
            gi = self._gi(h[1], h[2])
            mem = self.gpus[h[1]]["mig"]["profiles"][gi["profile_index"]][3] * MIB
            return _Namespace(total=mem, used=0, free=mem)
        gpu = self._gpu("nvmlDeviceGetMemoryInfo", h)
        return _Namespace(
            total=gpu["memory_total"], used=gpu["memory_used"], free=gpu["memory_total"] - gpu["memory_used"]
        )

    def nvmlDeviceGetTemperature(self, h, sensor):
        assert sensor == 0
        return self._gpu("nvmlDeviceGetTemperature", h)["temperature"]

    def nvmlDeviceGetPowerUsage(self, h):
        return self._gpu("nvmlDeviceGetPowerUsage", h)["power_mw"]

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return self._gpu("nvmlDeviceGetEnforcedPowerLimit", h)["limit_mw"]

    def nvmlDeviceGetEccMode(self, h):
        ecc = self._gpu("nvmlDeviceGetEccMode", h)["ecc"]
        if ecc is None:
            raise FakeNVMLError(3)
        return list(ecc)

    def nvmlDeviceGetTotalEccErrors(self, h, error_type, counter):
        gpu = self._gpu("nvmlDeviceGetTotalEccErrors", h)
        assert error_type == 1
        return gpu["ecc_volatile"] if counter == 0 else gpu["ecc_aggregate"]

    def nvmlDeviceGetRetiredPages(self, h, cause):
        retired = self._gpu("nvmlDeviceGetRetiredPages", h)["retired"]
        if retired is None:
            raise FakeNVMLError(3)
        return [0x1000 * i for i in range(retired[cause])]

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h):
        retired = self._gpu("nvmlDeviceGetRetiredPagesPendingStatus", h)["retired"]
        if retired is None:
            raise FakeNVMLError(3)
        return retired[2]

    def nvmlDeviceGetRemappedRows(self, h):
        rows = self._gpu("nvmlDeviceGetRemappedRows", h)["remapped"]
        if rows is None:
            raise FakeNVMLError(3)
        return rows

    def nvmlDeviceGetPersistenceMode(self, h):
        return self._gpu("nvmlDeviceGetPersistenceMode", h)["persistence"]

    def nvmlDeviceGetNvLinkState(self, h, link):
        links = self._gpu("nvmlDeviceGetNvLinkState", h)["nvlinks"]
        if links is None:
            raise FakeNVMLError(3)
        if link >= len(links):
            raise FakeNVMLError(2)
        return links[link]

    def nvmlDeviceGetMigMode(self, h):
        mig = self._gpu("nvmlDeviceGetMigMode", h)["mig"]
        if mig is None:
            raise FakeNVMLError(3)
        return [mig["current"], mig["pending"]]

    def nvmlDeviceGetGpuInstanceProfileInfo(self, h, profile_index):
        mig = self._gpu("nvmlDeviceGetGpuInstanceProfileInfo", h)["mig"]
        if mig is None or profile_index not in mig["profiles"]:
            raise FakeNVMLError(3)
        pid, slices, count, mem = mig["profiles"][profile_index]
        info = _Namespace(id=pid, sliceCount=slices, instanceCount=count, memorySizeMB=mem)
        if self.give_names:
            info.name = ("MIG NAMED-%d" % pid).encode()  # NVML prefixes names with 'MIG '

        return info

    def _gi(self, index, gi_id):
        for gi in self.gpus[index]["mig"]["gis"]:
            if gi["id"] == gi_id:
                return gi
        raise FakeNVMLError(6)

    def nvmlDeviceGetGpuInstances(self, h, profile_id, array, count_ref):
        mig = self._gpu("nvmlDeviceGetGpuInstances", h)["mig"]
        found = [gi for gi in mig["gis"] if mig["profiles"][gi["profile_index"]][0] == profile_id]
        count = count_ref._obj
        assert len(found) <= count.value
        for i, gi in enumerate(found):
            array[i] = h[1] * 1000 + gi["id"] + 1
        count.value = len(found)
        return 0

    def nvmlGpuInstanceGetInfo(self, gi_handle):
        index, gi_id = divmod(gi_handle - 1, 1000)
        self._check("nvmlGpuInstanceGetInfo", index)
        gi = self._gi(index, gi_id)
        profile = self.gpus[index]["mig"]["profiles"][gi["profile_index"]]
        return _Namespace(id=gi["id"], profileId=profile[0], placement=_Namespace(start=gi["start"], size=gi["size"]))

    def nvmlGpuInstanceGetComputeInstanceProfileInfo(self, gi_handle, ci_index, engine):
        index, gi_id = divmod(gi_handle - 1, 1000)
        self._check("nvmlGpuInstanceGetComputeInstanceProfileInfo", index)
        gi = self._gi(index, gi_id)
        gi_slices = self.gpus[index]["mig"]["profiles"][gi["profile_index"]][1]
        slices = {0: 1, 1: 2, 2: 3, 3: 4, 4: 7}.get(ci_index)
        if slices is None or slices > gi_slices:
            raise FakeNVMLError(3)
        return _Namespace(id=ci_index, sliceCount=slices, instanceCount=gi_slices // slices)

    def nvmlGpuInstanceGetComputeInstances(self, gi_handle, profile_id, array, count_ref):
        index, gi_id = divmod(gi_handle - 1, 1000)
        self._check("nvmlGpuInstanceGetComputeInstances", index)
        gi = self._gi(index, gi_id)
        found = [ci for ci in gi["cis"] if ci["profile_id"] == profile_id]
        for i, ci in enumerate(found):
            array[i] = gi_handle * 100 + ci["id"] + 1
        count_ref._obj.value = len(found)
        return 0

    def nvmlComputeInstanceGetInfo(self, ci_handle):
        gi_handle, ci_id = divmod(ci_handle - 1, 100)
        index, gi_id = divmod(gi_handle - 1, 1000)
        self._check("nvmlComputeInstanceGetInfo", index)
        for ci in self._gi(index, gi_id)["cis"]:
            if ci["id"] == ci_id:
                return _Namespace(
                    id=ci["id"], profileId=ci["profile_id"], placement=_Namespace(start=ci.get("start", 0), size=1)
                )
        raise FakeNVMLError(6)

    def _mig_devices(self, index):
        devices = []
        for gi in self.gpus[index]["mig"]["gis"]:
            for ci in gi["cis"]:
                devices.append((gi["id"], ci["id"]))
        return devices

    def nvmlDeviceGetMaxMigDeviceCount(self, h):
        self._gpu("nvmlDeviceGetMaxMigDeviceCount", h)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, i):
        self._gpu("nvmlDeviceGetMigDeviceHandleByIndex", h)
        devices = self._mig_devices(h[1])
        if i >= len(devices):
            raise FakeNVMLError(6)
        return ("mig", h[1], devices[i][0], devices[i][1])

    def nvmlDeviceGetGpuInstanceId(self, h):
        self._check("nvmlDeviceGetGpuInstanceId", h[1])
        return h[2]

    def nvmlDeviceGetComputeInstanceId(self, h):
        self._check("nvmlDeviceGetComputeInstanceId", h[1])
        return h[3]

    def _procs(self, name, h):
        if h[0] == "mig":
            self._check(name, h[1])
            procs = [p for p in self.gpus[h[1]]["processes"] if p.get("gi") == h[2]]
        else:
            procs = self._gpu(name, h)["processes"]
        # like nvidia-ml-py's v3 struct: the instance ids ride along (0xFFFFFFFF without MIG)
        return [
            _Namespace(
                pid=p["pid"],
                usedGpuMemory=p["mib"] * MIB,
                gpuInstanceId=p.get("gi", 0xFFFFFFFF),
                computeInstanceId=p.get("ci", 0 if "gi" in p else 0xFFFFFFFF),
            )
            for p in procs
        ]

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return self._procs("nvmlDeviceGetComputeRunningProcesses", h)

    def nvmlDeviceGetGraphicsRunningProcesses(self, h):
        self._procs("nvmlDeviceGetGraphicsRunningProcesses", h)
        return []


@pytest.fixture
def fake_nvml():
    return FakeNvml


@pytest.fixture
def spec():
    return gpu_spec


def write_tree(root, files):
    """files: {relative path: str|bytes|('link', target)}."""
    for rel, content in files.items():
        path = os.path.join(str(root), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(content, tuple) and content[0] == "link":
            os.symlink(content[1], path)
        elif isinstance(content, bytes):
            with open(path, "wb") as handle:
                handle.write(content)
        else:
            with open(path, "w") as handle:
                handle.write(content)


def pci_device_files(bus_id, device="0x20b0", cls="0x030200", vendor="0x10de", driver="nvidia", numa="0", group="40"):
    base = "sys/bus/pci/devices/%s/" % bus_id
    files = {
        base + "vendor": vendor + "\n",
        base + "device": device + "\n",
        base + "class": cls + "\n",
        base + "subsystem_vendor": "0x10de\n",
        base + "subsystem_device": "0x134f\n",
        base + "numa_node": numa + "\n",
    }
    if driver:
        files[base + "driver"] = ("link", "../../../bus/pci/drivers/%s" % driver)
    if group is not None:
        files[base + "iommu_group"] = ("link", "../../../kernel/iommu_groups/%s" % group)
    return files


@pytest.fixture
def tree():
    return write_tree


@pytest.fixture
def pci_files():
    return pci_device_files


@pytest.fixture
def no_pynvml(monkeypatch):
    """Make `import pynvml` fail as on a host without nvidia-ml-py."""
    monkeypatch.setitem(sys.modules, "pynvml", None)


def load_module(name, path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SIM_DIR = os.path.join(REPO, "sandbox", "python")
FIXTURES_DIR = os.path.join(REPO, "sandbox", "fixtures")
