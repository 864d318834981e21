# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Changing one GPU's MIG state, with a journal that undoes what ran when a later call fails.

Every mutating NVML call (mode change, GPU/compute instance create and destroy) is journaled
with its undo the moment it returns, before any read that follows it, so a failure anywhere
(including the read of the id NVML gave a new instance) undoes exactly what happened:
created instances are destroyed (by handle when their id was never read), destroyed ones are
re-created at the same placements with the same compute instances, a mode change is set
back. ``rollback`` reports what was undone and what could not be.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import ctypes

from ansible_collections.gpuops.cluster.plugins.module_utils.nvml import mig_state
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml.bindings import (
    SUCCESS,
    const,
    error_detail,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml.device import Caller, NvmlCallError


class StepError(Exception):
    """A step that cannot run (a profile the GPU does not offer); names GPU and step."""


def step_text(step):
    action = step["action"]
    where = "%s@%s" % (step.get("profile"), step.get("start"))
    if action in ("destroy_ci", "create_ci"):
        ci = step.get("ci_profile")
        return "%s %s%s%s" % (
            action,
            where,
            " gi %s" % step["gi_id"] if step.get("gi_id") is not None else "",
            " %s@%s" % (ci, step.get("ci_start")) if ci else (" ci %s" % step.get("ci_id") if "ci_id" in step else ""),
        )
    if action == "set_mode":
        return "set MIG mode %s" % ("on" if step.get("enabled") else "off")
    return "%s %s%s" % (action, where, " gi %s" % step["gi_id"] if step.get("gi_id") is not None else "")


def describe_error(exc):
    if isinstance(exc, NvmlCallError):
        return exc.describe()
    if isinstance(exc, StepError):
        return str(exc)
    if isinstance(getattr(exc, "msg", None), str):
        return exc.msg
    return "%s: %s" % (exc.__class__.__name__, error_detail(exc))


class Executor:
    """Runs steps on one GPU and remembers how to undo each."""

    def __init__(self, nvml, gpu, trace=None):
        self.nvml = nvml
        self.gpu = gpu
        self.index = gpu["index"]
        self.call = Caller(nvml, gpu=self.index, strict=True, uuid=gpu.get("uuid"), trace=trace)
        self.handle = None
        self.profiles = gpu.get("profiles") or {}
        self.created_gi = {}  # (profile, start) -> gi_id of GIs this run created
        self.gi_map = {}  # gi_id before rollback -> gi_id after its re-creation
        self.done = []  # journal: (step as it ran, undo) in execution order
        self.ci_by_id = {
            (e["gi_id"], c["ci_id"]): dict(c, gi_profile=e["profile"])
            for e in gpu.get("instances", [])
            for c in e["compute_instances"]
        }
        self.reopen()

    def reopen(self):
        """(Re)take the device handle (after the NVML session was closed for a reset)."""
        self.handle = self.call("nvmlDeviceGetHandleByIndex", self.index)

    # -- primitives ----------------------------------------------------------------------
    def _gi(self, gi_id):
        return self.call("nvmlDeviceGetGpuInstanceById", self.handle, gi_id)

    def _profile(self, profile_name):
        profile = self.profiles.get(profile_name)
        if profile is None:
            raise StepError(
                "GPU %d reports no GPU instance profile %s (it offers %s)"
                % (self.index, profile_name, ", ".join(sorted(self.profiles)) or "none")
            )
        return profile

    def set_mode(self, enabled, previous_pending):
        """nvmlDeviceSetMigMode; journaled. Returns (current, pending, activation status)."""
        wanted = const(self.nvml, "NVML_DEVICE_MIG_ENABLE" if enabled else "NVML_DEVICE_MIG_DISABLE", int(enabled))
        status = self.call("nvmlDeviceSetMigMode", self.handle, wanted)
        step = {"action": "set_mode", "enabled": bool(enabled)}
        self.done.append((step, {"action": "set_mode", "enabled": bool(previous_pending)}))
        mode = self.call("nvmlDeviceGetMigMode", self.handle)
        return bool(mode[0]), bool(mode[1]), int(status) if isinstance(status, int) else SUCCESS

    def create_gi(self, profile_name, start, journal=True):
        profile = self._profile(profile_name)
        size = profile["placements"][0]["size"] if profile["placements"] else None
        if size is None:
            raise StepError(
                "GPU %d: NVML reports no placements for GPU instance profile %s" % (self.index, profile_name)
            )
        placement = self.nvml.c_nvmlGpuInstancePlacement_t()
        placement.start = start
        placement.size = size
        gi = self.call("nvmlDeviceCreateGpuInstanceWithPlacement", self.handle, profile["id"], ctypes.byref(placement))
        undo = {"action": "destroy_gi_handle", "handle": gi, "profile": profile_name, "start": start}
        if journal:
            self.done.append(({"action": "create_gi", "profile": profile_name, "start": start}, undo))
        info = self.call("nvmlGpuInstanceGetInfo", gi)
        gi_id = int(info.id)
        if journal:
            undo.update(gi_id=gi_id)
            self.done[-1][0]["gi_id"] = gi_id
        return gi_id, gi

    def destroy_gi(self, gi_id):
        self.call("nvmlGpuInstanceDestroy", self._gi(gi_id))

    def ci_profiles(self, gi, gi_profile):
        slices = self.profiles[gi_profile]["sliceCount"] if gi_profile in self.profiles else 0
        return mig_state.read_ci_profiles(self.call, gi, slices, gi_profile)

    def create_ci(self, gi_id, gi_profile, ci_profile, ci_start, journal_step=None):
        gi = self._gi(gi_id)
        offered = self.ci_profiles(gi, gi_profile)
        found = offered.get(ci_profile)
        if found is None:
            raise StepError(
                "GPU %d: GPU instance %d (%s) offers no compute instance profile %s (it offers %s)"
                % (self.index, gi_id, gi_profile, ci_profile, ", ".join(sorted(offered)) or "none")
            )
        if hasattr(self.nvml, "nvmlGpuInstanceCreateComputeInstanceWithPlacement"):
            placement = self.nvml.c_nvmlComputeInstancePlacement_t()
            placement.start = ci_start
            placement.size = found["slices"]
            ci = self.call(
                "nvmlGpuInstanceCreateComputeInstanceWithPlacement", gi, found["id"], ctypes.byref(placement)
            )
        else:
            ci = self.call("nvmlGpuInstanceCreateComputeInstance", gi, found["id"])
        undo = {"action": "destroy_ci_handle", "handle": ci, "gi_id": gi_id, "profile": gi_profile}
        if journal_step is not None:
            self.done.append((journal_step, undo))
        ci_id = int(self.call("nvmlComputeInstanceGetInfo", ci).id)
        undo["ci_id"] = ci_id
        return ci_id

    def destroy_ci(self, gi_id, ci_id):
        ci = self.call("nvmlGpuInstanceGetComputeInstanceById", self._gi(gi_id), ci_id)
        self.call("nvmlComputeInstanceDestroy", ci)

    # -- plan steps ----------------------------------------------------------------------
    def run_step(self, step):
        """Run one plan step; returns the step as it ran (with the ids NVML gave)."""
        action = step["action"]
        ran = dict(step)
        if action == "destroy_ci":
            live = self.ci_by_id.get((step["gi_id"], step["ci_id"]), {})
            self.destroy_ci(step["gi_id"], step["ci_id"])
            self.done.append(
                (
                    ran,
                    {
                        "action": "create_ci",
                        "gi_id": step["gi_id"],
                        "profile": step["profile"],
                        "start": step["start"],
                        "ci_profile": live.get("profile", step["profile"]),
                        "ci_start": live.get("start", 0),
                    },
                )
            )
        elif action == "destroy_gi":
            self.destroy_gi(step["gi_id"])
            self.done.append(
                (
                    ran,
                    {
                        "action": "create_gi",
                        "profile": step["profile"],
                        "start": step["start"],
                        "was_gi_id": step["gi_id"],
                    },
                )
            )
        elif action == "create_gi":
            gi_id, _handle = self.create_gi(step["profile"], step["start"])
            self.created_gi[(step["profile"], step["start"])] = gi_id
            ran["gi_id"] = gi_id
            self.done[-1] = (ran, self.done[-1][1])
        elif action == "create_ci":
            gi_id = step.get("gi_id")
            if gi_id is None:
                gi_id = self.created_gi[(step["profile"], step["start"])]
            ran["gi_id"] = gi_id
            ci_id = self.create_ci(
                gi_id, step["profile"], step.get("ci_profile", step["profile"]), step.get("ci_start", 0), ran
            )
            ran["ci_id"] = ci_id
        else:
            raise StepError("unknown plan step %s" % action)
        return ran

    def ran_steps(self):
        return [dict(step) for step, _undo in self.done if step["action"] != "set_mode"]

    # -- rollback ------------------------------------------------------------------------
    def _undo(self, undo):
        action = undo["action"]
        gi_id = self.gi_map.get(undo.get("gi_id"), undo.get("gi_id"))
        if action == "destroy_ci_handle":
            self.call("nvmlComputeInstanceDestroy", undo["handle"])
        elif action == "destroy_gi_handle":
            self.call("nvmlGpuInstanceDestroy", undo["handle"])
        elif action == "create_gi":
            new_id, _handle = self.create_gi(undo["profile"], undo["start"], journal=False)
            self.gi_map[undo["was_gi_id"]] = new_id
            return dict(undo, gi_id=new_id)
        elif action == "create_ci":
            ci_id = self.create_ci(gi_id, undo["profile"], undo["ci_profile"], undo["ci_start"])
            return dict(undo, gi_id=gi_id, ci_id=ci_id)
        elif action == "set_mode":
            wanted = const(
                self.nvml,
                "NVML_DEVICE_MIG_ENABLE" if undo["enabled"] else "NVML_DEVICE_MIG_DISABLE",
                int(undo["enabled"]),
            )
            self.call("nvmlDeviceSetMigMode", self.handle, wanted)
        return {k: v for k, v in undo.items() if k != "handle"}

    def rollback(self):
        """Undo the journal in reverse. Returns (undone, failed): failed entries say what and why."""
        undone = []
        failed = []
        if self.handle is None:
            try:
                self.reopen()
            except Exception as exc:
                return undone, [{"undoing": "everything", "error": describe_error(exc)}]
        for ran, undo in reversed(self.done):
            try:
                undone.append(self._undo(undo))
            except Exception as exc:  # keep undoing what can be undone, then report
                failed.append(
                    dict(
                        {k: v for k, v in undo.items() if k != "handle"},
                        error=describe_error(exc),
                        undoing=step_text(ran),
                    )
                )
        self.done = []
        return undone, failed
