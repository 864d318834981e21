#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: slurm_node
short_description: Read, drain or resume a Slurm node, marking the drains it makes
version_added: 0.2.0
description:
  - Reads a Slurm node with C(scontrol show node) and its running jobs with C(squeue) and returns
    them as structured data (no text parsing left to the playbook).
  - >-
    O(state=drained) drains the node with the reason C(gpuops <owner>: <reason>) and waits until
    no job runs on it. A node already drained or down for another reason is left as it is (the
    result says C(held_by_others)), and the module still waits for its jobs to end.
  - O(state=resumed) resumes the node only when its drain reason carries the C(gpuops <owner>:)
    mark, so a node an administrator drained stays drained.
  - Commands run without a shell; the node name, owner and reason are validated first.
author:
  - gpuops.cluster developers (@gpuops)
options:
  name:
    description: Slurm node name (letters, digits, C(.), C(_), C(-)).
    type: str
    required: true
  state:
    description:
      - C(drained) and C(resumed) change the node when needed.
      - Without it, the module only reads the node.
    type: str
    choices: [drained, resumed]
  owner:
    description: Who drains the node; the drain reason starts with C(gpuops <owner>:).
    type: str
    default: maintenance
  reason:
    description: Why, for O(state=drained) (at most 200 characters, one line).
    type: str
    default: maintenance
  wait:
    description: With O(state=drained), wait until no job runs on the node.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the jobs (0 to 86400); the module fails after it, the node stays drained.
    type: int
    default: 3600
  poll_interval:
    description: Seconds between job checks (1 to 3600).
    type: int
    default: 30
  scontrol:
    description: The C(scontrol) command (a name on PATH or a path).
    type: str
    default: scontrol
  squeue:
    description: The C(squeue) command (a name on PATH or a path).
    type: str
    default: squeue
extends_documentation_fragment:
  - gpuops.cluster.attributes
attributes:
  check_mode:
    support: full
    details: Reads the node and its jobs, predicts the change, changes nothing and does not wait.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it where C(scontrol) reaches the controller (C(delegate_to) a Slurm login or control host).
seealso:
  - name: scontrol
    description: The Slurm command this module drives.
    link: https://slurm.schedmd.com/scontrol.html
"""

EXAMPLES = r"""
- name: Drain the node for a driver upgrade and wait for its jobs
  gpuops.cluster.slurm_node:
    name: gpu-a100-01
    state: drained
    owner: upgrade_driver
    reason: driver upgrade to 550.163.01
    wait_timeout: 7200
  delegate_to: slurm-ctl-01

- name: Put it back in service (only if this collection drained it)
  gpuops.cluster.slurm_node:
    name: gpu-a100-01
    state: resumed
    owner: upgrade_driver
  delegate_to: slurm-ctl-01
"""

RETURN = r"""
node:
  description: The node as scontrol shows it after the run.
  returned: always
  type: dict
  contains:
    name:
      description: Node name.
      type: str
    state:
      description: State as scontrol prints it, for example C(ALLOCATED+DRAIN).
      type: str
    base_state:
      description: The state without flags, for example C(ALLOCATED).
      type: str
    flags:
      description: State flags, for example C([DRAIN]).
      type: list
      elements: str
    drained:
      description: Drained or draining.
      type: bool
    down:
      description: Down.
      type: bool
    reason:
      description: The reason set on the node, or null.
      type: str
    ours:
      description: The reason carries this module's C(gpuops <owner>:) mark.
      type: bool
jobs:
  description: Jobs running on the node (at the end of the wait).
  returned: always
  type: int
held_by_others:
  description: With O(state=drained), the node was drained or down for another reason and left alone.
  returned: when the node was held by others
  type: bool
msg:
  description: What happened.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.slurm import SlurmError, converge  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["drained", "resumed"]),
            owner=dict(type="str", default="maintenance"),
            reason=dict(type="str", default="maintenance"),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=3600),
            poll_interval=dict(type="int", default=30),
            scontrol=dict(type="str", default="scontrol"),
            squeue=dict(type="str", default="squeue"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for option, low, high in (("wait_timeout", 0, 86400), ("poll_interval", 1, 3600)):
        if not low <= params[option] <= high:
            module.fail_json(msg="%s: %d is out of range; allowed: %d-%d seconds" % (option, params[option], low, high))
    for option in ("scontrol", "squeue"):
        value = params[option]
        if not value or any(ch in value for ch in ("\x00", "\n", "\r")) or value.startswith("-"):
            module.fail_json(msg="%s: must be a command name or path, without line breaks" % option)
    try:
        result = converge(params, module.run_command, check_mode=module.check_mode)
    except (SlurmError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
