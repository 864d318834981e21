"""A DCGM-exporter-shaped endpoint served from the NVML simulator.

One HTTP endpoint per sandbox host (as dcgm-exporter runs one pod per GPU node), on 127.0.0.1
and a port the kernel picks, answering `GET /metrics` in Prometheus' text format with
dcgm-exporter's metric names, types, help texts and labels:

    DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-...",pci_bus_id="00000000:07:00.0",device="nvidia0",
        modelName="NVIDIA A100-SXM4-40GB",Hostname="gpu-a100-01",DCGM_FI_DRIVER_VERSION="550.127.05"} 31

- MIG: whole-GPU fields (temperatures, power, ECC, XID) stay on the GPU entity; memory and
  engine activity are reported per GPU instance with GPU_I_PROFILE and GPU_I_ID, as DCGM does.
- Pods: `container`, `namespace`, `pod` are added where the host's kubelet pod-resources list
  (`<host dir>/pod-resources.json`, the PodResourcesLister List answer as JSON) allocates the
  GPU or MIG device. Time-slicing replicas (`<UUID>::<n>`) map to the GPU; with
  `virtual_gpus` (dcgm-exporter's --kubernetes-virtual-gpus) each sharing pod gets its own
  series with a `vgpu` label, without it the GPU carries the last pod listed.
- A GPU NVML calls lost (GPU_IS_LOST) has only DCGM_FI_DEV_XID_ERRORS = 79 ("GPU has fallen
  off the bus"), its identity read from the driver's /proc/driver/nvidia/gpus/<bus>/information;
  its other fields are blank, and dcgm-exporter skips blank values.
- Fields the simulator does not model (fields.NOT_MODELLED) are blank, hence absent.
- The hostname label is `Hostname` (dcgm-exporter up to 4.x) or `hostname` (after its rename).

Every scrape reads the simulator afresh, so faults injected with `python -m gpuops_sim inject`
and MIG changes show at the next scrape.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shlex
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .fields import Field, default_fields

REPO_ROOT = Path(__file__).resolve().parents[3]
SIM_PATH = REPO_ROOT / "sandbox" / "python"
XID_FALLEN_OFF_BUS = 79
HOSTNAME_LABELS = ("Hostname", "hostname")
SIM_ENV = ("GPUOPS_NVML_SIM_FIXTURE", "GPUOPS_NVML_SIM_STATE", "GPUOPS_HOST_ROOT")
_MIB = 1024 * 1024

# One simulator per process: its configuration is the environment, so scrapes of different
# hosts take turns.
_SIM_LOCK = threading.Lock()


def _nvml():
    """The simulator's NVML module, loaded without putting sandbox/python on sys.path (its
    pynvml.py must not shadow a real nvidia-ml-py in the same process)."""
    if "gpuops_sim" not in sys.modules:
        init = SIM_PATH / "gpuops_sim" / "__init__.py"
        spec = importlib.util.spec_from_file_location(
            "gpuops_sim", init, submodule_search_locations=[str(SIM_PATH / "gpuops_sim")]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpuops_sim"] = module
        spec.loader.exec_module(module)
    return importlib.import_module("gpuops_sim.nvml")


def read_env_file(path: Path) -> dict[str, str]:
    """The `export K=V` lines fleet-up writes for a host."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    return env


def escape_label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


@dataclass
class Sample:
    field: str
    labels: list[tuple[str, str]]
    value: float


@dataclass
class Entity:
    """A GPU, or a MIG GPU instance of one, with dcgm-exporter's identity labels."""

    gpu: int
    uuid: str
    pci_bus_id: str
    model: str
    minor: int
    mig_profile: str | None = None
    gi_id: int | None = None
    values: dict[str, float] = field(default_factory=dict)
    device_ids: list[str] = field(default_factory=list)  # what pod-resources may name it by


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _call(fn, *args):
    """NVML value, or None where the call fails (DCGM leaves such a field blank)."""
    nvml = _nvml()
    try:
        return fn(*args)
    except nvml.NVMLError:
        return None


def _driver_info(host_root: str | None, bus_id: str) -> dict[str, str]:
    """`/proc/driver/nvidia/gpus/<bus>/information` of the host (sysfs form of the bus id)."""
    if not host_root:
        return {}
    path = Path(host_root) / "proc/driver/nvidia/gpus" / bus_id / "information"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    return {key.strip(): value.strip() for key, _unused, value in (line.partition(":") for line in lines)}


def _lost_gpu_identity(host_root: str | None, index: int) -> tuple[str, str, str]:
    """(uuid, pci bus id, model) of the index-th GPU from the driver's records: NVML enumerates
    GPUs in PCI bus order, and those records outlive the GPU falling off the bus."""
    if not host_root:
        return "", "", ""
    base = Path(host_root) / "proc/driver/nvidia/gpus"
    try:
        buses = sorted(p.name for p in base.iterdir())
    except OSError:
        return "", "", ""
    if index >= len(buses):
        return "", "", ""
    info = _driver_info(host_root, buses[index])
    domain, rest = buses[index].split(":", 1)
    return info.get("GPU UUID", ""), f"{int(domain, 16):08X}:{rest.upper()}", info.get("Model", "")


def _gpu_values(nvml, handle, elapsed: float, energy: dict[str, float], uuid: str) -> dict[str, float]:
    values: dict[str, float] = {}
    clocks = (("DCGM_FI_DEV_SM_CLOCK", nvml.NVML_CLOCK_SM), ("DCGM_FI_DEV_MEM_CLOCK", nvml.NVML_CLOCK_MEM))
    for name, clock in clocks:
        value = _call(nvml.nvmlDeviceGetClockInfo, handle, clock)
        if value is not None:
            values[name] = int(value)
    temp = _call(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
    if temp is not None:
        values["DCGM_FI_DEV_GPU_TEMP"] = int(temp)
    power_mw = _call(nvml.nvmlDeviceGetPowerUsage, handle)
    if power_mw is not None:
        values["DCGM_FI_DEV_POWER_USAGE"] = power_mw / 1000.0
        # Energy since boot: the simulator keeps no counter, so integrate the draw since the
        # exporter first saw the GPU (monotonic, as a counter must be).
        energy[uuid] = energy.get(uuid, 0.0) + power_mw * elapsed
        values["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] = int(energy[uuid])
    util = _call(nvml.nvmlDeviceGetUtilizationRates, handle)
    if util is not None:
        values["DCGM_FI_DEV_GPU_UTIL"] = int(util.gpu)
        values["DCGM_FI_DEV_MEM_COPY_UTIL"] = int(util.memory)
        values["DCGM_FI_PROF_GR_ENGINE_ACTIVE"] = util.gpu / 100.0
        values["DCGM_FI_PROF_DRAM_ACTIVE"] = util.memory / 100.0
    values["DCGM_FI_DEV_XID_ERRORS"] = 0
    memory = _call(nvml.nvmlDeviceGetMemoryInfo, handle)
    if memory is not None:
        values.update(_memory_values(memory))
    ecc = (
        ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, nvml.NVML_VOLATILE_ECC),
        ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC),
        ("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, nvml.NVML_AGGREGATE_ECC),
        ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_AGGREGATE_ECC),
    )
    for name, kind, counter in ecc:
        value = _call(nvml.nvmlDeviceGetTotalEccErrors, handle, kind, counter)
        if value is not None:
            values[name] = int(value)
    causes = (
        ("DCGM_FI_DEV_RETIRED_SBE", nvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS),
        ("DCGM_FI_DEV_RETIRED_DBE", nvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR),
    )
    for name, cause in causes:
        pages = _call(nvml.nvmlDeviceGetRetiredPages, handle, cause)
        if pages is not None:
            values[name] = len(pages)
    pending = _call(nvml.nvmlDeviceGetRetiredPagesPendingStatus, handle)
    if pending is not None:
        values["DCGM_FI_DEV_RETIRED_PENDING"] = int(pending)
    rows = _call(nvml.nvmlDeviceGetRemappedRows, handle)
    if rows is not None:
        correctable, uncorrectable, _pending, failure = rows
        values["DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"] = int(correctable)
        values["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"] = int(uncorrectable)
        values["DCGM_FI_DEV_ROW_REMAP_FAILURE"] = int(failure)
    return values


def _memory_values(memory) -> dict[str, float]:
    total, used, free = memory.total // _MIB, memory.used // _MIB, memory.free // _MIB
    return {
        "DCGM_FI_DEV_FB_USED": used,
        "DCGM_FI_DEV_FB_FREE": free,
        "DCGM_FI_DEV_FB_RESERVED": max(total - used - free, 0),
    }


def _mig_entities(nvml, handle, parent: Entity, util_gpu: float) -> list[Entity]:
    """One entity per GPU instance (DCGM's FE_GPU_I), its memory summed over its MIG devices."""
    count = _call(nvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0
    by_gi: dict[int, Entity] = {}
    for index in range(count):
        mig = _call(nvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, index)
        if mig is None:
            continue
        gi_id = int(nvml.nvmlDeviceGetGpuInstanceId(mig))
        name = _text(nvml.nvmlDeviceGetName(mig))
        profile = name.rsplit(" MIG ", 1)[-1] if " MIG " in name else name
        memory = nvml.nvmlDeviceGetMemoryInfo(mig)
        busy = bool(_call(nvml.nvmlDeviceGetComputeRunningProcesses, mig))
        entity = by_gi.get(gi_id)
        if entity is None:
            entity = Entity(parent.gpu, parent.uuid, parent.pci_bus_id, parent.model, parent.minor, profile, gi_id)
            entity.values = {"DCGM_FI_DEV_FB_USED": 0, "DCGM_FI_DEV_FB_FREE": 0, "DCGM_FI_DEV_FB_RESERVED": 0}
            entity.values["DCGM_FI_PROF_GR_ENGINE_ACTIVE"] = 0.0
            by_gi[gi_id] = entity
        for key, value in _memory_values(memory).items():
            # Compute instances of one GPU instance share its memory: count it once.
            entity.values[key] = max(entity.values[key], value)
        if busy:
            entity.values["DCGM_FI_PROF_GR_ENGINE_ACTIVE"] = util_gpu / 100.0
        entity.device_ids.append(_text(nvml.nvmlDeviceGetUUID(mig)))
    return [by_gi[key] for key in sorted(by_gi)]


class HostCollector:
    """Reads one host's GPUs through the NVML API (the simulator, configured by `env`)."""

    def __init__(self, host: str, env: dict[str, str], host_dir: Path | None = None):
        self.host = host
        self.env = dict(env)
        self.host_dir = host_dir
        self._energy: dict[str, float] = {}
        self._last = time.monotonic()

    def collect(self) -> tuple[str | None, list[Entity]]:
        """(driver version, entities). Raises the NVMLError of nvmlInit when NVML is unusable."""
        nvml = _nvml()
        with _SIM_LOCK:
            saved = {key: os.environ.get(key) for key in SIM_ENV}
            os.environ.update({key: value for key, value in self.env.items() if key in SIM_ENV})
            try:
                nvml.nvmlInit()
                try:
                    return self._read(nvml)
                finally:
                    nvml.nvmlShutdown()
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value

    def _read(self, nvml) -> tuple[str | None, list[Entity]]:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        host_root = self.env.get("GPUOPS_HOST_ROOT")
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        entities: list[Entity] = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _call(nvml.nvmlDeviceGetUUID, handle)
            if uuid is None:
                lost_uuid, bus, model = _lost_gpu_identity(host_root, index)
                entity = Entity(index, lost_uuid, bus, model, index)
                entity.values = {"DCGM_FI_DEV_XID_ERRORS": XID_FALLEN_OFF_BUS}
                entities.append(entity)
                continue
            uuid = _text(uuid)
            pci = nvml.nvmlDeviceGetPciInfo(handle)
            minor = _call(nvml.nvmlDeviceGetMinorNumber, handle)
            entity = Entity(
                index,
                uuid,
                _text(pci.busId),
                _text(nvml.nvmlDeviceGetName(handle)),
                index if minor is None else int(minor),
            )
            entity.values = _gpu_values(nvml, handle, elapsed, self._energy, uuid)
            entity.device_ids.append(uuid)
            entities.append(entity)
            mode = _call(nvml.nvmlDeviceGetMigMode, handle)
            if mode and mode[0] == nvml.NVML_DEVICE_MIG_ENABLE:
                # The GPU entity keeps device-wide fields only; memory and activity go per instance.
                for key in ("DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_RESERVED"):
                    entity.values.pop(key, None)
                for key in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_DRAM_ACTIVE"):
                    entity.values.pop(key, None)
                util = _call(nvml.nvmlDeviceGetUtilizationRates, handle)
                entities.extend(_mig_entities(nvml, handle, entity, util.gpu if util else 0))
        return driver, entities

    def pod_resources(self) -> list[dict[str, Any]]:
        if self.host_dir is None:
            return []
        path = self.host_dir / "pod-resources.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return []
        return list(data.get("pod_resources") or [])


def _allocations(pod_resources: list[dict[str, Any]]) -> dict[str, list[tuple[dict[str, str], str | None]]]:
    """Device id (GPU or MIG UUID) -> [(pod labels, virtual GPU replica)] in listing order."""
    found: dict[str, list[tuple[dict[str, str], str | None]]] = {}
    for pod in pod_resources:
        for container in pod.get("containers") or []:
            for device in container.get("devices") or []:
                if not str(device.get("resource_name", "")).startswith("nvidia.com/"):
                    continue
                for device_id in device.get("device_ids") or []:
                    uuid, _unused, replica = str(device_id).partition("::")
                    labels = {
                        "container": str(container.get("name", "")),
                        "namespace": str(pod.get("namespace", "")),
                        "pod": str(pod.get("name", "")),
                    }
                    found.setdefault(uuid, []).append((labels, replica or None))
    return found


def render(
    host: str,
    driver: str | None,
    entities: list[Entity],
    fields: list[Field],
    *,
    hostname_label: str = "Hostname",
    pod_resources: list[dict[str, Any]] | None = None,
    virtual_gpus: bool = False,
) -> str:
    """Prometheus text exposition, dcgm-exporter's layout (HELP, TYPE, then one line per entity)."""
    if hostname_label not in HOSTNAME_LABELS:
        raise ValueError(f"hostname_label must be one of {', '.join(HOSTNAME_LABELS)}, got {hostname_label!r}")
    attributes = [(f.name, driver or "") for f in fields if f.kind == "label" and f.name == "DCGM_FI_DRIVER_VERSION"]
    allocations = _allocations(pod_resources or [])
    out: list[str] = []
    for metric in (f for f in fields if f.kind != "label"):
        lines = []
        for entity in entities:
            if metric.name not in entity.values:
                continue
            base = [
                ("gpu", str(entity.gpu)),
                ("UUID", entity.uuid),
                ("pci_bus_id", entity.pci_bus_id),
                ("device", f"nvidia{entity.minor}"),
                ("modelName", entity.model),
            ]
            if entity.mig_profile:
                base += [("GPU_I_PROFILE", entity.mig_profile), ("GPU_I_ID", str(entity.gi_id))]
            base.append((hostname_label, host))
            pods: list[tuple[dict[str, str], str | None]] = []
            for device_id in entity.device_ids:
                pods.extend(allocations.get(device_id, []))
            if not pods:
                variants: list[list[tuple[str, str]]] = [[]]
            elif virtual_gpus:
                variants = [
                    sorted(labels.items()) + ([("vgpu", replica)] if replica is not None else [])
                    for labels, replica in pods
                ]
            else:
                variants = [sorted(pods[-1][0].items())]
            for extra in variants:
                labels = base + extra + attributes
                body = ",".join(f'{key}="{escape_label(value)}"' for key, value in labels)
                lines.append(f"{metric.name}{{{body}}} {format_value(entity.values[metric.name])}")
        if lines:
            out.append(f"# HELP {metric.name} {metric.help}")
            out.append(f"# TYPE {metric.name} {metric.kind}")
            out.extend(lines)
    return "\n".join(out) + "\n"


class _Handler(BaseHTTPRequestHandler):
    server: _HostServer

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.split("?", 1)[0] not in ("/metrics", "/metrics/"):
            self._send(404, "not found\n")
            return
        exporter = self.server.exporter
        try:
            body = exporter.scrape()
        except Exception as exc:  # noqa: BLE001 - a scrape error is the answer, not a crash
            # dcgm-exporter cannot start without a usable NVML/DCGM: the target is down.
            self._send(503, f"{type(exc).__name__}: {exc}\n")
            return
        self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")

    def _send(self, status: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass


class _HostServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, exporter: HostExporter):
        self.exporter = exporter
        super().__init__(("127.0.0.1", 0), _Handler)


@dataclass
class HostExporter:
    collector: HostCollector
    fields: list[Field]
    hostname_label: str = "Hostname"
    virtual_gpus: bool = False

    def scrape(self) -> str:
        driver, entities = self.collector.collect()
        return render(
            self.collector.host,
            driver,
            entities,
            self.fields,
            hostname_label=self.hostname_label,
            pod_resources=self.collector.pod_resources(),
            virtual_gpus=self.virtual_gpus,
        )


class FleetExporter:
    """One endpoint per host of a fleet-up directory (`.sandbox`: hosts/<host>/env)."""

    def __init__(self, servers: dict[str, _HostServer]):
        self.servers = servers
        self._threads = []
        for server in servers.values():
            thread = threading.Thread(target=server.serve_forever, name="dcgm-exporter", daemon=True)
            thread.start()
            self._threads.append(thread)

    @classmethod
    def start(
        cls,
        sandbox_dir: Path,
        hosts: list[str] | None = None,
        fields: list[Field] | None = None,
        *,
        hostname_label: str = "Hostname",
        virtual_gpus: bool = False,
    ) -> FleetExporter:
        if hostname_label not in HOSTNAME_LABELS:
            raise ValueError(f"hostname_label must be one of {', '.join(HOSTNAME_LABELS)}, got {hostname_label!r}")
        sandbox_dir = Path(sandbox_dir)
        gpu_hosts = gpu_hosts_of(sandbox_dir)
        chosen = gpu_hosts if hosts is None else list(hosts)
        unknown = sorted(set(chosen) - set(gpu_hosts))
        if unknown:
            raise ValueError(f"hosts {unknown} have no GPU fixture under {sandbox_dir}; known: {gpu_hosts}")
        servers = {}
        for host in chosen:
            host_dir = sandbox_dir / "hosts" / host
            collector = HostCollector(host, read_env_file(host_dir / "env"), host_dir)
            exporter = HostExporter(collector, list(fields or default_fields()), hostname_label, virtual_gpus)
            servers[host] = _HostServer(exporter)
        return cls(servers)

    @property
    def targets(self) -> dict[str, str]:
        return {host: "127.0.0.1:%d" % server.server_address[1] for host, server in self.servers.items()}

    def file_sd(self) -> list[dict[str, Any]]:
        """Prometheus file_sd_configs content: one target group per host."""
        return [{"targets": [target], "labels": {"node": host}} for host, target in sorted(self.targets.items())]

    def scrape_config(self, job: str = "dcgm-exporter") -> dict[str, Any]:
        return {"job_name": job, "static_configs": self.file_sd()}

    def stop(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()


def gpu_hosts_of(sandbox_dir: Path) -> list[str]:
    """Hosts of a fleet-up directory (its fleet.json) with GPUs: dcgm-exporter runs on GPU nodes."""
    fleet = json.loads((Path(sandbox_dir) / "fleet.json").read_text())
    hosts = fleet.get("hosts") if isinstance(fleet, dict) else None
    if not isinstance(hosts, dict):
        raise ValueError(f"{Path(sandbox_dir) / 'fleet.json'}: no hosts mapping (run fleet-up first)")
    return sorted(host for host, entry in hosts.items() if isinstance(entry, dict) and int(entry.get("gpus") or 0) > 0)
