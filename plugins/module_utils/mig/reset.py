# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU reset runner (NVML has no reset call; ``nvidia-smi --gpu-reset`` is what NVIDIA's
tools use), shared by mig_partition and the boot-time launcher.

The command is an argv list (never a shell line): ``{uuid}``, ``{index}`` and ``{bus_id}`` in
an item are replaced with the GPU's values, which are checked first so a value can never turn
into an option or a second argument.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuops.cluster.plugins.module_utils.mig.selection import validate_reset_command

DEFAULT_RESET_COMMAND = ["nvidia-smi", "--gpu-reset", "-i", "{uuid}"]
_VALUES = {
    "{uuid}": re.compile(r"^GPU-[0-9a-fA-F-]{1,64}$"),
    "{index}": re.compile(r"^[0-9]{1,4}$"),
    "{bus_id}": re.compile(r"^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$"),
}
MAX_OUTPUT = 300


def reset_argv(command, gpu):
    """The argv that resets ``gpu``; raises ValueError when a GPU value is unusable."""
    validate_reset_command(command)
    values = {"{uuid}": gpu.get("uuid") or "", "{index}": str(gpu["index"]), "{bus_id}": gpu.get("bus_id") or ""}
    argv = []
    for item in command:
        for key, value in values.items():
            if key in item:
                if not _VALUES[key].match(value):
                    raise ValueError("GPU %s has no usable %s for the reset command" % (gpu["index"], key.strip("{}")))
                item = item.replace(key, value)
        argv.append(item)
    return argv


def make_reset_runner(command, run):
    """reset_gpu(gpu) -> None on success, else an error text.

    ``run(argv)`` returns (rc, stdout, stderr) and raises OSError when the program cannot be
    started: AnsibleModule.run_command in the module, subprocess in the launcher.
    """
    command = list(DEFAULT_RESET_COMMAND if command is None else command)
    validate_reset_command(command)

    def reset(gpu):
        try:
            argv = reset_argv(command, gpu)
        except ValueError as exc:
            return str(exc)
        try:
            rc, out, err = run(argv)
        except OSError as exc:
            return "%s: cannot run: %s" % (argv[0], exc.strerror or exc)
        if rc != 0:
            said = ((err or out) or "").strip().replace("\n", " ")
            if len(said) > MAX_OUTPUT:
                said = said[:MAX_OUTPUT] + "..."
            return "%s exited %d%s" % (" ".join(argv), rc, ": " + said if said else "")
        return None

    return reset
