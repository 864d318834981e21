# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Slurm node state from ``scontrol show node`` and ``squeue``, and the drain/resume logic of
the slurm_node module. Parsing is pure; commands run through a ``run(argv)`` callback
(AnsibleModule.run_command in the module), never through a shell.

A node this collection drains carries a reason starting with ``gpuops <owner>:``; only such a
node is resumed by it, so a node an administrator drained for another reason stays drained.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re
import time

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
OWNER = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_REASON = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_STATE = re.compile(r"(?:^|\s)State=(\S+)")
_REASON = re.compile(r"^\s*Reason=(.*?)(?:\s+\[[^\]]*\])?\s*$", re.M)
_NODE = re.compile(r"(?:^|\s)NodeName=(\S+)")


class SlurmError(Exception):
    """A Slurm command failed or said something unexpected; the message says which and why."""


def mark(owner):
    return "gpuops %s:" % owner


def validate(name, owner, reason=None):
    """Raise ValueError naming the option for a bad node name, owner or reason."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(
            "name: not a Slurm node name; allowed: letters, digits, '.', '_' and '-' (up to 255, starting "
            "with a letter or digit)"
        )
    if not isinstance(owner, str) or not OWNER.match(owner):
        raise ValueError("owner: allowed: a lower-case word of letters, digits and _ (up to 32)")
    if reason is not None:
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("reason: must be a non-empty text")
        if len(reason) > MAX_REASON or _CONTROL.search(reason):
            raise ValueError("reason: at most %d characters, without line breaks or control characters" % MAX_REASON)


def parse_node(text):
    """``scontrol show node NAME`` output -> {name, state, flags, drained, down, reason}."""
    node = _NODE.search(text or "")
    state = _STATE.search(text or "")
    if node is None or state is None:
        raise SlurmError("scontrol show node printed no NodeName=/State= record")
    words = state.group(1).upper().split("+")
    reason = _REASON.search(text)
    base = words[0].rstrip("*~#!%$@^-")
    return {
        "name": node.group(1),
        "state": state.group(1),
        "base_state": base,
        "flags": sorted(set(words[1:])),
        "drained": "DRAIN" in words or base in ("DRAINED", "DRAINING", "DRAIN"),
        "down": base == "DOWN" or "DOWN" in words,
        "reason": reason.group(1).strip() if reason else None,
    }


def running_jobs(text):
    """``squeue -h -w NAME`` output -> number of jobs listed."""
    return len([line for line in (text or "").splitlines() if line.strip()])


def _run(run, argv, what):
    try:
        rc, out, err = run(argv)
    except OSError as exc:
        raise SlurmError("%s: cannot run %s: %s" % (what, argv[0], exc.strerror or exc)) from None
    if rc != 0:
        said = " ".join(((err or "") + " " + (out or "")).split())[:300]
        raise SlurmError("%s: %s exited %d%s" % (what, " ".join(argv[:3]), rc, ": " + said if said else ""))
    return out


def show(run, scontrol, name):
    node = parse_node(_run(run, [scontrol, "show", "node", name], "scontrol show node %s" % name))
    if node["name"] != name:
        raise SlurmError("scontrol show node %s answered for node %s" % (name, node["name"]))
    return node


def jobs(run, squeue, name):
    return running_jobs(_run(run, [squeue, "-h", "-w", name], "squeue -w %s" % name))


def converge(params, run, check_mode=False, sleep=time.sleep, clock=time.monotonic):
    """The slurm_node run. Returns the module result; raises SlurmError / ValueError."""
    name = params["name"]
    owner = params["owner"]
    state = params["state"]
    validate(name, owner, params.get("reason") if state == "drained" else None)
    node = show(run, params["scontrol"], name)
    ours = bool(node["reason"]) and node["reason"].startswith(mark(owner))
    result = {"changed": False, "node": dict(node, ours=ours), "jobs": None, "msg": ""}
    held_by_others = (node["drained"] or node["down"]) and not ours
    if state is None:  # read only
        result["jobs"] = jobs(run, params["squeue"], name)
        result["msg"] = "%s is %s" % (name, node["state"])
        return result
    if state == "resumed":
        if held_by_others:
            result["msg"] = "%s is %s for another reason (%s): left as it is" % (name, node["state"], node["reason"])
            return result
        if not (node["drained"] or node["down"]):
            result["msg"] = "%s is in service" % name
            return result
        result["changed"] = True
        if not check_mode:
            _run(run, [params["scontrol"], "update", "nodename=%s" % name, "state=resume"], "scontrol update")
            result["node"] = dict(show(run, params["scontrol"], name), ours=False)
        result["msg"] = "%s resumed" % name
        return result
    # drained
    if held_by_others:
        result["held_by_others"] = True
        result["msg"] = "%s is already %s for another reason (%s): left as it is" % (
            name,
            node["state"],
            node["reason"],
        )
    elif not node["drained"]:
        result["changed"] = True
        if not check_mode:
            reason = "%s %s" % (mark(owner), params["reason"].strip())
            _run(
                run,
                [params["scontrol"], "update", "nodename=%s" % name, "state=drain", "reason=%s" % reason],
                "scontrol update",
            )
            result["node"] = dict(show(run, params["scontrol"], name), ours=True)
    if check_mode or not params.get("wait", True):
        result["jobs"] = jobs(run, params["squeue"], name)
        result["msg"] = result["msg"] or "%s would be drained" % name
        return result
    deadline = clock() + params.get("wait_timeout", 3600)
    while True:
        count = jobs(run, params["squeue"], name)
        result["jobs"] = count
        if count == 0:
            break
        if clock() >= deadline:
            raise SlurmError(
                "%s: %d job(s) still run after %ds (the node stays drained; its jobs keep running)"
                % (name, count, params.get("wait_timeout", 3600))
            )
        sleep(params.get("poll_interval", 30))
    result["msg"] = result["msg"] or "%s drained, no job runs" % name
    return result
