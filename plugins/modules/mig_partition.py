#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mig_partition
short_description: Partition NVIDIA GPUs into MIG instances, changing only what differs
version_added: 0.1.0
description:
  - Reads the live MIG state of the selected GPUs through NVML (mode, GPU instances with their
    placements, compute instances, processes in each instance), plans the smallest change
    to reach the wanted layout, and applies it with explicit placements.
  - Instances that can stay where they are are kept (their MIG device UUIDs do not change);
    only what must change is destroyed and created. GPUs whose layout already matches are not
    touched.
  - The wanted state is either O(layout) (the same on every selected GPU) or a named config of
    a mig-parted v1 file (O(config_file) + O(config_name)), so GPU Operator mig-manager
    configs are reused unchanged.
  - Every option is validated and every selected GPU planned before anything changes; bad input
    (unknown profile, over a profile's maximum count, no room, a config name not in the file, a
    GPU selector matching nothing, C(gpus=[]), a config entry naming a GPU index the host does
    not have, a GPU matched by two entries, an empty O(config_file), out-of-range numbers)
    fails naming the option and what is allowed, with no change. Errors about a config file
    name the file and the key path, never its content.
  - An instance with running processes is never destroyed unless O(force=true); without it the
    module fails naming the GPU (index and UUID), the instance (profile, placement, GPU instance
    id) and the PIDs.
  - Every NVML call is checked. When any call fails half-way (a create with
    NVML_ERROR_INSUFFICIENT_RESOURCES, a mode change, even the read of a new instance's id),
    the GPU is rolled back to its previous state (what was created is destroyed, what was
    destroyed is re-created at the same placements, a mode change is set back) and the module
    fails naming the GPU, the call and the error, which steps ran and what was undone. If the
    rollback fails too, the message says so loudly with the layout the GPU was left in. GPUs
    after the failing one are not touched. RV(changed) compares the state read back with the
    state before (a rollback that re-made instances is a change, since their MIG device UUIDs
    are new).
  - A lost GPU (NVML_ERROR_GPU_IS_LOST) is reported in RV(failed_gpus) and makes the module
    fail, after the other selected GPUs were configured; nothing is attempted on the lost GPU.
  - MIG profiles are resolved by name on each GPU. A GPU model missing from the collection's
    catalog still works, since its profiles and placements are read from NVML at run time.
author:
  - gpuops.cluster developers (@gpuops)
options:
  gpus:
    description:
      - GPUs to manage, by NVML index (C("0")), GPU UUID (C(GPU-...)), or C(all).
      - With C(all), GPUs that cannot do MIG are skipped; a non-MIG GPU named by index or UUID
        is an error.
    type: list
    elements: str
    default: [all]
  device_filter:
    description:
      - Only GPUs whose PCI device id (device << 16 | vendor, as mig-parted's C(device-filter),
        for example C(0x20B010DE) for A100-SXM4-40GB) is in this list, among O(gpus).
    type: list
    elements: str
  layout:
    description:
      - 'Wanted GPU instances per GPU, as profile name -> count, for example
        C({"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}).'
      - 'A value may also be C({count: N, compute_instances: {PROFILE: COUNT}}) for compute
        instances smaller than their GPU instance, for example
        C({"3g.20gb": {count: 1, compute_instances: {"1c.3g.20gb": 3}}}). Without
        C(compute_instances) every GPU instance gets one full-size compute instance.'
      - C({}) means MIG on with no instances. Not given (and no O(config_file)) with
        O(mig_enabled=true) means MIG on, instances left as they are.
      - Mutually exclusive with O(config_file).
    type: dict
  config_file:
    description:
      - A mig-parted v1 config file (C(version), C(mig-configs)), as the GPU Operator's
        mig-manager reads it. The entries of O(config_name) apply to the GPUs they match
        (C(device-filter), C(devices)), in order; O(gpus) and O(device_filter) narrow the GPUs
        further. O(mig_enabled) is not used then (each entry has its own C(mig-enabled)).
      - A Kubernetes ConfigMap holding such a file under C(data.config.yaml) (how the GPU
        Operator ships C(default-mig-parted-config)) is read as that file.
      - Needs PyYAML on the managed host.
      - The file is read on the managed host, at most 1 MiB.
    type: path
  config:
    description:
      - An inline mig-parted v1 config (C(version), C(mig-configs)), as O(config_file) holds
        it. The C(gpuops.cluster.mig) role passes its validated plan for the host this way (and
        writes the same entries to the file its boot-time unit applies).
      - Mutually exclusive with O(layout) and O(config_file).
    type: dict
    version_added: 0.2.0
  config_name:
    description:
      - Name of the config in O(config_file) or O(config) (for example C(all-balanced)).
        Required with either, not allowed without.
    type: str
  mig_enabled:
    description:
      - C(true) enables MIG mode where it is off. C(false) destroys every instance (subject to
        the same busy rules and O(force)) and disables MIG mode.
    type: bool
    default: true
  reset_policy:
    description:
      - What to do when a MIG mode change stays pending (the GPU could not be reset when the
        mode was set, for example because a process or a monitoring agent held it).
      - C(never) leaves it pending and reports RV(reset_required) (and RV(reboot_required) on
        GPUs that keep MIG mode across reboots); no instances are created on a GPU whose mode
        is only pending.
      - C(if_idle) resets the GPU with O(reset_command) when NVML lists no process on it, then
        goes on with the layout. A reset that fails (another client holds the GPU) leaves the
        mode pending, as with C(never).
    type: str
    choices: [never, if_idle]
    default: never
  reset_command:
    description:
      - Command (argv list) that resets one GPU, for O(reset_policy=if_idle). NVML has no GPU
        reset call; C(nvidia-smi --gpu-reset) is what NVIDIA's tools use.
      - C({uuid}), C({index}) and C({bus_id}) in an item are replaced with the GPU's values;
        no other C({...}) placeholder is allowed. At most 64 items, none empty, none with a
        NUL or line break. The command runs without a shell.
    type: list
    elements: str
    default: [nvidia-smi, --gpu-reset, -i, "{uuid}"]
  force:
    description:
      - Destroy instances that have running processes. The processes on those instances (and
        only those) are sent SIGTERM, then SIGKILL after half of O(force_timeout), and the
        instances are destroyed once NVML no longer lists the processes.
      - A PID is signalled only when a live process with that PID and the name NVML reports
        exists where the module runs; otherwise the module fails without changing anything
        on that GPU.
    type: bool
    default: false
  force_timeout:
    description:
      - Seconds to wait for processes to go with O(force=true) (SIGTERM for half, SIGKILL for
        the other half). 0 to 3600.
    type: int
    default: 30
extends_documentation_fragment:
  - gpuops.cluster.attributes
attributes:
  check_mode:
    support: full
    details: No NVML change; the plan is the result and RV(changed) says whether anything would change.
  diff_mode:
    support: full
    details: The layout per GPU before and after.
  platform:
    platforms: posix
notes:
  - Ampere GPUs keep MIG mode across reboots (it lives in the InfoROM); Hopper and later come
    back with MIG off. GPU and compute instances never survive a reset or reboot on any GPU;
    re-apply the layout at boot (the C(gpuops.cluster.mig) role installs a unit that does).
  - Needs root (or the MIG capability files under C(/proc/driver/nvidia/capabilities/mig)).
requirements:
  - nvidia-ml-py on the managed host.
  - PyYAML on the managed host, for O(config_file).
seealso:
  - name: NVIDIA MIG user guide
    description: MIG profiles, placements and modes.
    link: https://docs.nvidia.com/datacenter/tesla/mig-user-guide/
  - name: mig-parted
    description: The config format O(config_file) reads.
    link: https://github.com/NVIDIA/mig-parted
"""

EXAMPLES = r"""
- name: Balanced layout on every A100-40GB
  gpuops.cluster.mig_partition:
    device_filter: ["0x20B010DE"]
    layout:
      3g.20gb: 1
      2g.10gb: 1
      1g.5gb: 2

- name: One GPU, three compute instances sharing one 3g GPU instance, plus a 4g
  gpuops.cluster.mig_partition:
    gpus: ["0"]
    layout:
      4g.40gb: 1
      3g.40gb:
        count: 1
        compute_instances:
          1c.3g.40gb: 3

- name: Reuse the GPU Operator's mig-parted config
  gpuops.cluster.mig_partition:
    config_file: /etc/nvidia-mig-manager/config.yaml
    config_name: all-balanced

- name: The same entries inline (what the gpuops.cluster.mig role passes)
  gpuops.cluster.mig_partition:
    config_name: gpuops-all-3g.20gb-x2
    config:
      version: v1
      mig-configs:
        gpuops-all-3g.20gb-x2:
          - devices: all
            mig-enabled: true
            mig-devices: {3g.20gb: 2}

- name: Turn MIG off, resetting idle GPUs so it takes effect now
  gpuops.cluster.mig_partition:
    mig_enabled: false
    reset_policy: if_idle

- name: Show what would change
  gpuops.cluster.mig_partition:
    layout: {7g.80gb: 1}
  check_mode: true
  diff: true
  register: mig_plan
"""

RETURN = r"""
changed:
  description: Whether anything changed (in check mode, whether anything would change).
  returned: always
  type: bool
reset_required:
  description:
    - A MIG mode change is pending on at least one selected GPU; a GPU reset applies it.
  returned: always
  type: bool
reboot_required:
  description:
    - A pending MIG mode change sits on a GPU that keeps its MIG mode across reboots (Ampere),
      so a reboot applies it too (the way out when other clients block the reset). Hopper and
      later lose the mode at reboot, so they never set this; reset them instead.
  returned: always
  type: bool
msg:
  description: What happened, or why it failed.
  returned: always
  type: str
driver_version:
  description: NVIDIA driver version NVML reports.
  returned: always
  type: str
  sample: 550.127.05
plan:
  description: The plan per selected GPU.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: NVML index.
      type: int
    uuid:
      description: GPU UUID.
      type: str
    name:
      description: GPU name as NVML reports it.
      type: str
    summary:
      description: One line about the change.
      type: str
      sample: "A100-40GB: keep 2 (1g.5gb@0, 1g.5gb@1); destroy 5 (...); create 2 (3g.20gb@4, 2g.10gb@2)"
    keep:
      description: Live GPU instances that stay (gi_id, profile, start, compute_instances, busy).
      type: list
      elements: dict
    destroy:
      description: Live GPU instances that go.
      type: list
      elements: dict
    create:
      description: GPU instances to create (profile, start; compute_instances when not full-size).
      type: list
      elements: dict
    steps:
      description: NVML steps in execution order (destroy_ci, destroy_gi, create_gi, create_ci).
      type: list
      elements: dict
    busy_destroyed:
      description: Instances with processes that the plan destroys (need O(force)).
      type: list
      elements: dict
    mode_change:
      description: C({from, pending, to}) when MIG mode changes, else null.
      type: dict
gpus:
  description: The selected GPUs after the run (before it in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: NVML index.
      type: int
    uuid:
      description: GPU UUID.
      type: str
    name:
      description: GPU name.
      type: str
    mig:
      description: C({current, pending}) MIG mode (null on GPUs without MIG).
      type: dict
    instances:
      description:
        - GPU instances, each with C(profile), C(placement) C({start, size}),
          C(gpu_instance_id), C(compute_instances) (C(compute_instance_id), C(profile),
          C(placement)) and C(pids).
      type: list
      elements: dict
    devices:
      description: MIG devices, each with C(uuid) (C(MIG-...)), C(gpu_instance_id), C(compute_instance_id), C(profile).
      type: list
      elements: dict
    lost:
      description: True on a GPU NVML reports lost (then C(error) says what failed).
      type: bool
failed_gpus:
  description: GPUs that could not be handled (lost), with C(index) and C(error).
  returned: always
  type: list
  elements: dict
apply:
  description:
    - Per GPU that was worked on, what ran. C(steps) as run (with the ids NVML gave), C(mode),
      C(reset), and on failure C(error), C(failed_step), C(rolled_back) and, when the rollback
      failed, C(rollback_failed).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils._fileio import CONFIG_LIMIT, ReadError, read_text  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.parted import (  # noqa: E402
    YAML_IMPORT_ERROR,
    MigConfigError,
    parse_mig_parted_config,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.reset import (  # noqa: E402
    DEFAULT_RESET_COMMAND,
    make_reset_runner,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.runner import MigRunError, converge  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.selection import (  # noqa: E402
    MigParamError,
    validate_params,
)


def _load_config(module, params):
    """The parsed config of config_file or config; errors name the file and key path only."""
    if params.get("config") is not None:
        try:
            return parse_mig_parted_config(params["config"], source="config")
        except MigConfigError as exc:
            module.fail_json(msg="%s; nothing changed" % exc)
    path = params.get("config_file")
    if path is None:
        return None
    if YAML_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("PyYAML (for config_file)"), exception=YAML_IMPORT_ERROR)
    try:
        text = read_text(path, CONFIG_LIMIT)
    except ReadError as exc:
        module.fail_json(msg="config_file: cannot read %s: %s; nothing changed" % (path, exc.reason))
    try:
        return parse_mig_parted_config(text, source="config_file %s" % path)
    except MigConfigError as exc:
        module.fail_json(msg="%s; nothing changed" % exc)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            gpus=dict(type="list", elements="str", default=["all"]),
            device_filter=dict(type="list", elements="str"),
            layout=dict(type="dict"),
            config_file=dict(type="path"),
            config=dict(type="dict"),
            config_name=dict(type="str"),
            mig_enabled=dict(type="bool", default=True),
            reset_policy=dict(type="str", choices=["never", "if_idle"], default="never"),
            reset_command=dict(type="list", elements="str", default=list(DEFAULT_RESET_COMMAND)),
            force=dict(type="bool", default=False),
            force_timeout=dict(type="int", default=30),
        ),
        mutually_exclusive=[("layout", "config_file", "config")],
        supports_check_mode=True,
    )
    try:
        params = validate_params(module.params)
    except MigParamError as exc:
        module.fail_json(msg="%s; nothing changed" % exc)
    config = _load_config(module, params)
    if params.get("config_file") is not None:
        params["_config_source"] = "config_file %s" % params["config_file"]

    def run(argv):
        return module.run_command(argv)

    try:
        result = converge(
            params,
            check_mode=module.check_mode,
            reset_gpu=make_reset_runner(params["reset_command"], run),
            config=config,
        )
    except MigRunError as exc:
        if exc.missing_library:
            module.fail_json(msg=missing_required_lib("nvidia-ml-py"), exception=exc.import_traceback)
        failed = dict(exc.result)
        failed.pop("msg", None)
        if not module._diff:
            failed.pop("diff", None)
        module.fail_json(msg=exc.msg, **failed)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    if result["failed_gpus"]:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
