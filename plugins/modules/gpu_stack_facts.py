#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_stack_facts
short_description: The host's GPU software stack as facts (driver packages, units, container runtimes, files)
version_added: 0.2.0
description:
  - One round trip that tells the C(gpuops.cluster.nvidia_driver) and C(gpuops.cluster.container_toolkit)
    roles what is on the host, as structured facts (C(ansible_facts.gpu_stack)), namely whether it is a
    container, the NVIDIA driver packages and their dpkg selections (holds), the state of
    systemd units, the container runtimes (installed, version, running), the NVIDIA container
    toolkit, and mode, owner, group and checksum of the files the roles manage.
  - Commands run without a shell (C(systemd-detect-virt), C(dpkg-query) or C(rpm), C(systemctl),
    C(<runtime> --version)); their output is parsed by the module, not by the playbook.
  - Never changes anything.
author:
  - gpuops.cluster developers (@gpuops)
options:
  packages:
    description: Read the NVIDIA driver packages (C(nvidia-*), C(libnvidia-*), C(libcuda1), firmware, headers).
    type: bool
    default: true
  services:
    description: systemd units to report C(enabled) and C(active) for.
    type: list
    elements: str
    default: []
  runtimes:
    description: Container runtimes to report (installed, version, whether systemd runs them).
    type: list
    elements: str
    choices: [containerd, crio, docker]
    default: []
  toolkit:
    description: Report whether C(nvidia-container-toolkit) is installed, and its version.
    type: bool
    default: false
  files:
    description:
      - Absolute paths to report (exists, type, mode, owner, group, SHA-1 of regular files up
        to 64 MiB). At most 64.
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - gpuops.cluster.attributes
  - gpuops.cluster.attributes.FACTS
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: What the driver role needs to know
  gpuops.cluster.gpu_stack_facts:
    services: [nvidia-persistenced.service]
    files: [/etc/modprobe.d/gpuops-nvidia.conf]

- name: Container runtimes and the toolkit
  gpuops.cluster.gpu_stack_facts:
    packages: false
    runtimes: [containerd, docker]
    toolkit: true
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to the host.
  returned: always
  type: dict
  contains:
    gpu_stack:
      description: The stack.
      returned: always
      type: dict
      contains:
        container:
          description:
            - C({detected, how}); how names the evidence (systemd-detect-virt's answer, a marker
              file, PID 1's cgroups).
          returned: always
          type: dict
        package_manager:
          description: C(dpkg), C(rpm) or null.
          returned: when O(packages=true)
          type: str
        packages:
          description:
            - Installed driver packages by name, each a list of C(version) entries
              (the shape of C(ansible_facts.packages)).
          returned: when O(packages=true)
          type: dict
        selections:
          description: The dpkg selection of each of those packages by name (C(install), C(hold), ...).
          returned: when O(packages=true)
          type: dict
        services:
          description: Per unit name, C(enabled) and C(active) as systemctl answers them (C(unknown) without systemctl).
          returned: always
          type: dict
        runtimes:
          description: Per runtime, C(installed), C(binary), C(version), C(major), C(minor), C(patch) and C(active).
          returned: always
          type: dict
        toolkit:
          description: C(installed) and C(version) of nvidia-container-toolkit.
          returned: when O(toolkit=true)
          type: dict
        files:
          description: Per path, C(exists), C(type), C(mode), C(owner), C(group) and C(sha1).
          returned: always
          type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.gpu_stack import collect  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="bool", default=True),
            services=dict(type="list", elements="str", default=[]),
            runtimes=dict(type="list", elements="str", choices=["containerd", "crio", "docker"], default=[]),
            toolkit=dict(type="bool", default=False),
            files=dict(type="list", elements="path", default=[]),
        ),
        supports_check_mode=True,
    )

    def run(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C"})

    def which(name):
        return module.get_bin_path(name)

    try:
        facts = collect(module.params, run, which)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, ansible_facts={"gpu_stack": facts})


if __name__ == "__main__":
    main()
