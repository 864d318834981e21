#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, gpuops.cluster developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_probe
short_description: Inventory NVIDIA GPUs, NVSwitches and the NVIDIA driver of a host
version_added: 0.1.0
description:
  - Reads the host's PCI bus from sysfs (works before any driver is installed, and as non-root),
    the NVIDIA driver state from C(/proc) and C(/sys), and, when the driver is loaded and
    nvidia-ml-py is installed, NVML for identity, telemetry, reliability counters, NVLink,
    MIG layout and processes.
  - Returns everything as the fact C(gpu) (C(ansible_facts.gpu)); never changes anything.
  - One NVML initialisation per run and no subprocesses (no C(nvidia-smi), C(lspci) or
    C(modinfo)).
  - Without nvidia-ml-py, without libnvidia-ml, or with the driver not loaded, the GPUs found on
    PCI are still reported (C(source=pci)) and C(driver.nvml.reason) says why NVML was not used.
  - A failing NVML call is recorded in that GPU's C(errors) under the field it was reading; the
    other fields and GPUs are still read.
  - "Health verdict per GPU, worst rule wins. C(unknown): NVML unavailable (PCI-only facts).
    C(unhealthy): NVML reports the GPU lost (GPU_IS_LOST); the GPU is on PCI while NVML works
    but NVML does not enumerate it (fallen off the bus or bound to another driver such as
    vfio-pci); NVML cannot read an identity field (name, UUID, PCI info); uncorrected volatile
    ECC errors above 0; a row-remapping failure.
    C(degraded): row remapping or page retirement pending (needs a GPU reset); an ECC or MIG
    mode change pending; ECC disabled on a datacenter GPU; temperature at or above the slowdown
    threshold (NVML's own threshold when it reports one, else 85 C); any other field NVML could
    not read. C(healthy) otherwise."
  - MIG profile names come from NVML on each GPU (the name in the profile information, or
    C(<slices>g.<memory>gb) built from it), never from another GPU's table.
author:
  - gpuops.cluster developers (@gpuops)
options:
  collect:
    description:
      - What to collect. C(pci) scans sysfs; C(nvml) reads identity, ECC, retired pages,
        remapped rows and persistence mode; C(mig) adds the MIG mode and layout; C(processes)
        counts GPU processes; C(telemetry) adds memory, temperature and power.
      - C(mig), C(processes) and C(telemetry) need NVML, so asking for any of them reads NVML
        as C(nvml) does.
      - At least one; C([]) is refused (it would report no GPU on a host full of them).
    type: list
    elements: str
    choices: [pci, nvml, mig, processes, telemetry]
    default: [pci, nvml, mig, processes, telemetry]
  host_root:
    description:
      - Directory standing for the host's C(/) when reading C(sys), C(proc), C(lib/modules) and
        C(usr/share) (probing from a container with the host mounted, or a simulated host).
      - NVML itself always talks to the driver of the machine the module runs on.
      - When not set, the E(GPUOPS_HOST_ROOT) environment variable is used if present (the
        sandbox sets it per simulated host).
      - Must be an absolute path to an existing directory holding C(sys) or C(proc); it is
        resolved (symbolic links, C(..)) before use, else the module fails naming this option.
        A relative path is refused (it would be relative to the module's temporary folder).
    type: path
    default: /
  nvlink:
    description:
      - Count the active NVLinks of each GPU (C(nvlinks_active)).
    type: bool
    default: true
extends_documentation_fragment:
  - gpuops.cluster.attributes
  - gpuops.cluster.attributes.FACTS
attributes:
  check_mode:
    support: full
    details: The module only reads, so RV(ignore:changed) is always false.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Every file is read with a size limit and only if it is a regular file (a FIFO or a device
    standing where a sysfs attribute should be is reported, never read forever).
  - Non-root users see everything except what the driver restricts (NVML then reports
    NO_PERMISSION on that field, listed in C(errors)).
requirements:
  - nvidia-ml-py on the managed host for NVML facts (optional; without it facts are PCI-only).
seealso:
  - name: NVIDIA Management Library (NVML)
    description: The API behind the NVML facts.
    link: https://docs.nvidia.com/deploy/nvml-api/
"""

EXAMPLES = r"""
- name: Probe GPUs
  gpuops.cluster.gpu_probe:

- name: Fail when a GPU is unhealthy
  ansible.builtin.assert:
    that: ansible_facts.gpu.summary.unhealthy == 0
    fail_msg: "{{ ansible_facts.gpu.gpus | selectattr('health.status', 'eq', 'unhealthy')
                  | map(attribute='health.reasons') | list }}"

- name: Only look at the PCI bus (fast, no NVML)
  gpuops.cluster.gpu_probe:
    collect: [pci]

- name: Probe a host mounted at /host from a container
  gpuops.cluster.gpu_probe:
    host_root: /host
    nvlink: false
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    gpu:
      description: GPU inventory of the host.
      returned: always
      type: dict
      contains:
        collected:
          description:
            - The collectors that actually ran, in the order pci, nvml, mig, processes,
              telemetry. NVML collectors are missing when NVML was unavailable.
          returned: always
          type: list
          elements: str
          sample: [pci, nvml, mig, processes, telemetry]
        source:
          description:
            - C(nvml) when NVML answered, C(pci) when the facts come from PCI only, C(none)
              when the host has no NVIDIA device.
          returned: always
          type: str
          sample: nvml
        host:
          description: Host facts.
          returned: always
          type: dict
          contains:
            kernel:
              description: Kernel release (from C(proc/sys/kernel/osrelease)).
              returned: always
              type: str
              sample: 6.1.0-28-amd64
            secure_boot:
              description:
                - C(enabled) or C(disabled) from the SecureBoot EFI variable; C(disabled) when
                  the host booted without EFI; C(unknown) when the variable cannot be read.
              returned: always
              type: str
              sample: disabled
        driver:
          description: NVIDIA driver state.
          returned: always
          type: dict
          contains:
            state:
              description:
                - C(loaded) (kernel module loaded), C(installed) (module file or libnvidia-ml
                  present but not loaded) or C(none).
              returned: always
              type: str
              sample: loaded
            version:
              description: Driver version, or null when unknown.
              returned: always
              type: str
              sample: 550.127.05
            kernel_module:
              description: C(open) or C(proprietary) kernel module flavour, null when not loaded.
              returned: always
              type: str
              sample: open
            nouveau_loaded:
              description: Whether the nouveau driver is loaded (it blocks the NVIDIA driver).
              returned: always
              type: bool
              sample: false
            profiling_admin_only:
              description:
                - Whether the driver restricts GPU performance counters to admin users
                  (C(RmProfilingAdminOnly) in C(/proc/driver/nvidia/params); the driver option
                  C(NVreg_RestrictProfilingToAdminUsers)); null when the driver is not loaded or
                  does not report it.
              returned: always
              type: bool
              sample: true
            cuda_driver_version:
              description: Highest CUDA version the driver supports (from NVML), or null.
              returned: always
              type: str
              sample: "12.4"
            nvml_version:
              description: NVML library version, or null.
              returned: always
              type: str
              sample: 12.550.127.05
            nvml:
              description: Whether NVML was usable.
              returned: always
              type: dict
              contains:
                available:
                  description: True when nvmlInit succeeded.
                  returned: always
                  type: bool
                  sample: true
                reason:
                  description:
                    - Why NVML was not used (bindings missing, libnvidia-ml not found, driver not
                      loaded, no permission, not collected, ...); null when available.
                  returned: always
                  type: str
                  sample: "nvidia-ml-py not installed: python bindings (pynvml) missing"
        nvswitches:
          description: NVSwitches on the PCI bus (class 0x0680).
          returned: always
          type: list
          elements: dict
          contains:
            pci_bus_id:
              description: PCI address.
              returned: always
              type: str
              sample: "0000:c0:00.0"
            device_id:
              description: PCI device id.
              returned: always
              type: str
              sample: "0x1af1"
            name:
              description: Product name, or null when unknown.
              returned: always
              type: str
              sample: NVSwitch (A100 generation)
            driver:
              description: Bound kernel driver, or null.
              returned: always
              type: str
              sample: nvidia
            numa_node:
              description: NUMA node, or null.
              returned: always
              type: int
              sample: 0
        gpus:
          description:
            - One entry per NVIDIA GPU found on PCI or in NVML, sorted by PCI bus id.
            - NVML fields are null when NVML was unavailable, not collected, or the read failed
              (then C(errors) says why).
          returned: always
          type: list
          elements: dict
          contains:
            index:
              description: NVML index, null when NVML does not see the GPU.
              returned: always
              type: int
              sample: 0
            pci:
              description: PCI facts.
              returned: always
              type: dict
              contains:
                bus_id:
                  description: PCI address, 4-digit domain, lower case.
                  returned: always
                  type: str
                  sample: "0000:07:00.0"
                vendor_id:
                  description: PCI vendor id.
                  returned: always
                  type: str
                  sample: "0x10de"
                device_id:
                  description: PCI device id.
                  returned: always
                  type: str
                  sample: "0x20b0"
                subsystem_vendor_id:
                  description: PCI subsystem vendor id.
                  returned: always
                  type: str
                  sample: "0x10de"
                subsystem_device_id:
                  description: PCI subsystem device id.
                  returned: always
                  type: str
                  sample: "0x134f"
                class:
                  description: PCI class (0x030000 VGA or 0x030200 3D controller).
                  returned: always
                  type: str
                  sample: "0x030200"
                product:
                  description: Product name from the collection's table, else the host's pci.ids.
                  returned: always
                  type: str
                  sample: A100 SXM4 40GB
                driver:
                  description: Bound kernel driver (nvidia, vfio-pci, ...), or null.
                  returned: always
                  type: str
                  sample: nvidia
                numa_node:
                  description: NUMA node, or null.
                  returned: always
                  type: int
                  sample: 0
                iommu_group:
                  description: IOMMU group, or null.
                  returned: always
                  type: int
                  sample: 40
            name:
              description: NVML device name.
              returned: always
              type: str
              sample: NVIDIA A100-SXM4-40GB
            uuid:
              description: GPU UUID.
              returned: always
              type: str
              sample: GPU-4f7a5c1e-2b7d-4c1a-9d6e-0c2b8f3a1d90
            serial:
              description: Board serial number; null when the board has none (NOT_SUPPORTED).
              returned: always
              type: str
              sample: "1564720004631"
            architecture:
              description: ampere, hopper, ada, blackwell, ... (from NVML, else from the device id).
              returned: always
              type: str
              sample: ampere
            compute_capability:
              description: CUDA compute capability.
              returned: always
              type: str
              sample: "8.0"
            memory:
              description: Frame buffer memory (telemetry).
              returned: always
              type: dict
              contains:
                total_mib:
                  description: Total memory in MiB.
                  returned: always
                  type: int
                  sample: 40960
                used_mib:
                  description: Used memory in MiB.
                  returned: always
                  type: int
                  sample: 0
            temperature_c:
              description: GPU temperature in degrees Celsius (telemetry).
              returned: always
              type: int
              sample: 34
            power:
              description: Power (telemetry).
              returned: always
              type: dict
              contains:
                draw_w:
                  description: Power draw in watts.
                  returned: always
                  type: float
                  sample: 62.5
                limit_w:
                  description: Enforced power limit in watts.
                  returned: always
                  type: float
                  sample: 400.0
            ecc:
              description: ECC mode and uncorrected error counters.
              returned: always
              type: dict
              contains:
                enabled:
                  description: Current ECC mode; null when ECC is not supported.
                  returned: always
                  type: bool
                  sample: true
                pending:
                  description: ECC mode after the next reset.
                  returned: always
                  type: bool
                  sample: true
                uncorrected_volatile:
                  description: Uncorrected ECC errors since the driver loaded.
                  returned: always
                  type: int
                  sample: 0
                uncorrected_aggregate:
                  description: Uncorrected ECC errors over the board's life.
                  returned: always
                  type: int
                  sample: 0
            retired_pages:
              description: Page retirement (pre-Ampere GPUs; not supported on Ampere and later).
              returned: always
              type: dict
              contains:
                supported:
                  description: Whether the GPU retires pages (null when the read failed).
                  returned: always
                  type: bool
                  sample: false
                single_bit:
                  description: Pages retired for multiple single-bit errors.
                  returned: always
                  type: int
                  sample: 0
                double_bit:
                  description: Pages retired for double-bit errors.
                  returned: always
                  type: int
                  sample: 0
                pending:
                  description: A retirement waits for a GPU reset.
                  returned: always
                  type: bool
                  sample: false
            remapped_rows:
              description: Row remapping (Ampere and later).
              returned: always
              type: dict
              contains:
                supported:
                  description: Whether the GPU remaps rows (null when the read failed).
                  returned: always
                  type: bool
                  sample: true
                correctable:
                  description: Rows remapped for correctable errors.
                  returned: always
                  type: int
                  sample: 0
                uncorrectable:
                  description: Rows remapped for uncorrectable errors.
                  returned: always
                  type: int
                  sample: 0
                pending:
                  description: A remapping waits for a GPU reset.
                  returned: always
                  type: bool
                  sample: false
                failure:
                  description: A remapping failed (the GPU needs service).
                  returned: always
                  type: bool
                  sample: false
            persistence_mode:
              description: Whether persistence mode is on.
              returned: always
              type: bool
              sample: true
            nvlinks_active:
              description: Active NVLinks; null without NVLink or with I(nvlink=false).
              returned: always
              type: int
              sample: 12
            mig:
              description: MIG state and layout (null when C(mig) is not collected).
              returned: always
              type: dict
              contains:
                capable:
                  description: Whether the GPU supports MIG.
                  returned: always
                  type: bool
                  sample: true
                current:
                  description: MIG mode now.
                  returned: always
                  type: bool
                  sample: true
                pending:
                  description: MIG mode after the next reset.
                  returned: always
                  type: bool
                  sample: true
                gpu_instances:
                  description: GPU instances, by placement.
                  returned: always
                  type: list
                  elements: dict
                  contains:
                    id:
                      description: GPU instance id.
                      returned: always
                      type: int
                      sample: 1
                    profile_id:
                      description: GPU instance profile id on this GPU.
                      returned: always
                      type: int
                      sample: 9
                    profile:
                      description: Profile name as NVML gives it on this GPU.
                      returned: always
                      type: str
                      sample: 3g.20gb
                    placement:
                      description: Memory slices the instance occupies.
                      returned: always
                      type: dict
                      contains:
                        start:
                          description: First memory slice.
                          returned: always
                          type: int
                          sample: 0
                        size:
                          description: Number of memory slices.
                          returned: always
                          type: int
                          sample: 4
                    compute_instances:
                      description: Compute instances inside the GPU instance.
                      returned: always
                      type: list
                      elements: dict
                      contains:
                        id:
                          description: Compute instance id.
                          returned: always
                          type: int
                          sample: 0
                        profile_id:
                          description: Compute instance profile id.
                          returned: always
                          type: int
                          sample: 2
                        profile:
                          description:
                            - Compute instance profile name; C(1c.3g.20gb) style when smaller
                              than its GPU instance.
                          returned: always
                          type: str
                          sample: 3g.20gb
                devices:
                  description: MIG devices (what CUDA and Kubernetes see).
                  returned: always
                  type: list
                  elements: dict
                  contains:
                    uuid:
                      description: MIG device UUID.
                      returned: always
                      type: str
                      sample: MIG-5c1e4f7a-2b7d-5c1a-9d6e-0c2b8f3a1d90
                    gpu_instance_id:
                      description: Its GPU instance id.
                      returned: always
                      type: int
                      sample: 1
                    compute_instance_id:
                      description: Its compute instance id.
                      returned: always
                      type: int
                      sample: 0
                    memory_total_mib:
                      description: Its memory in MiB.
                      returned: always
                      type: int
                      sample: 19968
            processes:
              description: Compute and graphics processes (per MIG device in MIG mode).
              returned: always
              type: dict
              contains:
                count:
                  description: Distinct processes using the GPU.
                  returned: always
                  type: int
                  sample: 1
                used_memory_mib:
                  description: GPU memory they use, in MiB.
                  returned: always
                  type: int
                  sample: 2048
            health:
              description: Health verdict (rules in the module description).
              returned: always
              type: dict
              contains:
                status:
                  description: healthy, degraded, unhealthy or unknown.
                  returned: always
                  type: str
                  sample: healthy
                reasons:
                  description: Short sentences, worst first; empty when healthy.
                  returned: always
                  type: list
                  elements: str
                  sample: ["row remapping pending: reset the GPU to apply it"]
            errors:
              description: Field name to NVML error text for each failed read; empty when none.
              returned: always
              type: dict
              sample: {"temperature_c": "nvmlDeviceGetTemperature: Insufficient Permissions"}
        summary:
          description: Host summary.
          returned: always
          type: dict
          contains:
            count:
              description: Number of GPUs.
              returned: always
              type: int
              sample: 8
            models:
              description: GPU count per model name (NVML name, else PCI product).
              returned: always
              type: dict
              sample: {"NVIDIA A100-SXM4-40GB": 8}
            memory_total_mib:
              description: Total GPU memory in MiB (telemetry; 0 when not collected).
              returned: always
              type: int
              sample: 327680
            healthy:
              description: GPUs with status healthy.
              returned: always
              type: int
              sample: 8
            degraded:
              description: GPUs with status degraded.
              returned: always
              type: int
              sample: 0
            unhealthy:
              description: GPUs with status unhealthy.
              returned: always
              type: int
              sample: 0
            unknown:
              description: GPUs with status unknown.
              returned: always
              type: int
              sample: 0
            mig_capable:
              description: GPUs that support MIG.
              returned: always
              type: int
              sample: 8
            mig_enabled:
              description: GPUs with MIG mode on.
              returned: always
              type: int
              sample: 0
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, env_fallback  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils._fileio import resolve_root  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.gpu_probe import probe  # noqa: E402

COLLECT = ["pci", "nvml", "mig", "processes", "telemetry"]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            collect=dict(type="list", elements="str", choices=COLLECT, default=list(COLLECT)),
            host_root=dict(type="path", default="/", fallback=(env_fallback, ["GPUOPS_HOST_ROOT"])),
            nvlink=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    if not module.params["collect"]:
        module.fail_json(msg="collect: must name at least one of %s" % ", ".join(COLLECT))
    try:
        host_root = resolve_root(module.params["host_root"])
    except ValueError as exc:
        # A mistyped root would otherwise look like a host without GPUs.
        module.fail_json(msg="host_root: %s; give the absolute folder that stands for the host's /" % exc)
    if not (os.path.isdir(os.path.join(host_root, "sys")) or os.path.isdir(os.path.join(host_root, "proc"))):
        module.fail_json(
            msg="host_root: %s has neither sys/ nor proc/: not a host's root; give the folder that stands for "
            "the host's /" % host_root
        )
    facts, warnings = probe(
        host_root=host_root,
        collect=module.params["collect"],
        nvlink=module.params["nvlink"],
    )
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=False, ansible_facts={"gpu": facts})


if __name__ == "__main__":
    main()
