# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One mig_partition run (the module and the boot-time launcher both call ``converge``).

1. Validate every option; open NVML; read the identity of every GPU; select.
2. Read the selected GPUs (strict: an NVML error fails the run naming GPU and call, before
   anything changes), resolve what each should look like, plan every one of them.
3. Refuse busy instances without ``force``. Check mode stops here with the plan.
4. Apply GPU by GPU; every mutating call is journaled, so a failure anywhere on a GPU (an
   NVML error in any call, including reads between steps) rolls that GPU back; later GPUs are
   not touched.
5. Read the selected GPUs back. ``changed`` compares that state with the one read in 2 (mode,
   instances with their ids, MIG device UUIDs), so it is exact: a rolled-back run that re-made
   instances reports changed (their MIG device UUIDs are new), one that undid only creations
   does not. When the read-back fails, the state reported is projected from the steps that ran
   and the run fails saying so.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import time

from ansible_collections.gpuops.cluster.plugins.module_utils.mig import planner
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import state as mig_state
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.executor import (
    Executor,
    describe_error,
    step_text,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.force import check_signalable, terminate
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.selection import (
    RESET_POLICIES,
    MigParamError,
    describe_layout_error,
    desired_states,
    select_gpus,
    validate_params,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml.bindings import InitError, Session
from ansible_collections.gpuops.cluster.plugins.module_utils.nvml.device import GpuLost, NvmlCallError

ARCH_AMPERE = 7

__all__ = ["RESET_POLICIES", "MigRunError", "converge"]


class MigRunError(Exception):
    """A failure the caller must see; ``result`` is the module result to return with it."""

    def __init__(self, msg, result=None, missing_library=False, import_traceback=None):
        super(MigRunError, self).__init__(msg)
        self.msg = msg
        self.result = result or {}
        self.missing_library = missing_library
        self.import_traceback = import_traceback


class _Run:
    """What one run carries around: the NVML session, options, callbacks."""

    def __init__(self, session, lib, params, reset_gpu, sleep, trace):
        self.session = session
        self.nvml = lib
        self.params = params
        self.reset_gpu = reset_gpu
        self.sleep = sleep
        self.trace = trace
        self.driver_version = None


def _new_result():
    return {
        "changed": False,
        "reset_required": False,
        "reboot_required": False,
        "plan": [],
        "gpus": [],
        "failed_gpus": [],
        "apply": [],
        "diff": {"before": "", "after": ""},
        "msg": "",
    }


def converge(params, check_mode=False, nvml=None, reset_gpu=None, config=None, sleep=time.sleep, trace=None):
    """One mig_partition run. Returns the module result; raises MigRunError with a result.

    params: gpus, device_filter, layout, config_name, mig_enabled, reset_policy, force,
    force_timeout (config_file / config already parsed into ``config``).
    reset_gpu(gpu) resets one GPU and returns None, or an error text (see mig.reset).
    trace: a list the NVML calls are appended to as (name, gpu index) (tests, benchmarks).
    """
    try:
        params = validate_params(params)
    except MigParamError as exc:
        raise MigRunError(str(exc) + "; nothing changed") from None
    session = Session(nvml)
    try:
        lib = session.__enter__()
    except InitError as exc:
        raise MigRunError(
            "NVML: %s; nothing changed" % exc.reason,
            missing_library=exc.missing_library,
            import_traceback=exc.import_traceback,
        ) from None
    try:
        return _converge(_Run(session, lib, params, reset_gpu, sleep, trace), check_mode, config)
    finally:
        session.__exit__(None, None, None)


def _converge(run, check_mode, config):
    params = run.params
    result = _new_result()
    try:
        run.driver_version = mig_state.driver_version(run.nvml, run.trace)
        count = mig_state.device_count(run.nvml, run.trace)
        identities = mig_state.read_identities(run.nvml, count, run.trace)
    except (NvmlCallError, ValueError) as exc:
        raise MigRunError("%s; nothing changed" % exc) from None
    result["driver_version"] = run.driver_version
    try:
        chosen, explicit = select_gpus(identities, params.get("gpus"), params.get("device_filter"))
    except MigParamError as exc:
        raise MigRunError("%s; nothing changed" % exc) from None
    unreadable = [g for g in chosen if g.get("unreadable")]
    if unreadable:
        raise MigRunError("%s; nothing changed" % "; ".join(g["error"] for g in unreadable)) from None
    selected = []
    for identity in chosen:
        if identity.get("lost"):
            selected.append(identity)
            continue
        try:
            selected.append(mig_state.read_gpu(run.nvml, identity, run.trace))
        except GpuLost as exc:
            selected.append(dict(mig_state.lost_record(identity["index"], exc), uuid=identity.get("uuid")))
        except NvmlCallError as exc:
            raise MigRunError("%s; nothing changed" % exc) from None
    try:
        wanted = desired_states(selected, explicit, params, config, known_indices=list(range(count)))
    except MigParamError as exc:
        raise MigRunError("%s; nothing changed" % exc) from None
    what = "layout" if params.get("layout") is not None else "config %s" % params.get("config_name")

    # 1. Plan every GPU before touching any.
    plans = {}
    for gpu in selected:
        if gpu.get("lost"):
            continue
        want = wanted[gpu["index"]]
        if want["mig_enabled"] is None:
            plans[gpu["index"]] = (None, None)
            continue
        mode_change = None
        current = gpu["mig"]["current"]
        if want["mig_enabled"] != current or want["mig_enabled"] != gpu["mig"]["pending"]:
            mode_change = {"from": current, "pending": gpu["mig"]["pending"], "to": want["mig_enabled"]}
        plan = None
        if want["mig_enabled"] or current:
            plan = _plan_for(gpu, want, run.driver_version, what)
        plans[gpu["index"]] = (plan, mode_change)

    # 2. Busy instances: refuse (naming GPU, instance, PIDs) unless forced.
    busy = [(g, plans[g["index"]][0]) for g in selected if not g.get("lost") and plans[g["index"]][0] is not None]
    busy = [(g, p) for g, p in busy if p.busy_destroyed]
    if busy and not params.get("force"):
        raise MigRunError(
            "refusing to destroy MIG instances with running processes (set force: true to stop them, "
            "or drain the node first): " + " | ".join(_busy_message(g, p) for g, p in busy) + "; nothing changed"
        )

    for gpu in selected:
        if gpu.get("lost"):
            result["plan"].append(
                {"index": gpu["index"], "uuid": gpu.get("uuid"), "name": None, "summary": gpu["error"], "lost": True}
            )
            continue
        plan, mode_change = plans[gpu["index"]]
        result["plan"].append(plan_entry(gpu, plan, mode_change))
    result["diff"]["before"] = "".join(mig_state.layout_text(g) for g in selected)

    if check_mode:
        result["changed"] = any(
            _would_change(g, params, *plans.get(g["index"], (None, None))) for g in selected if not g.get("lost")
        )
        result["gpus"] = [mig_state.public_gpu(g) for g in selected]
        for gpu in selected:
            if gpu.get("lost"):
                continue
            _plan, mode_change = plans[gpu["index"]]
            if mode_change and mode_change["to"] != mode_change["from"] and gpu["processes"]:
                # Setting the mode resets an idle GPU at once; with processes it stays pending.
                _mark_pending(result, gpu)
        result["diff"]["after"] = _predicted_after(selected, plans)
        _finish(result, selected, check_mode=True)
        return result

    # 3. Apply, GPU by GPU; stop at the first GPU that fails (after rolling it back).
    stopped = None
    executors = {}
    for gpu in selected:
        if gpu.get("lost"):
            continue
        plan, mode_change = plans[gpu["index"]]
        report, executor = _apply_gpu(run, gpu, plan, mode_change, wanted[gpu["index"]], what)
        executors[gpu["index"]] = (executor, report)
        if report.get("worked"):
            result["apply"].append(report)
        report.pop("worked", None)
        if not report["ok"]:
            stopped = report
            break

    # 4. Read back.
    final = {}
    read_failures = []
    for gpu in selected:
        if gpu.get("lost"):
            final[gpu["index"]] = gpu
            continue
        try:
            final[gpu["index"]] = mig_state.read_gpu(run.nvml, gpu, run.trace)
        except NvmlCallError as exc:
            read_failures.append(exc)
            executor, report = executors.get(gpu["index"], (None, None))
            if executor is None:
                final[gpu["index"]] = gpu  # untouched: as read before
            elif not report.get("ok"):
                # Rolled back: the previous layout, except that re-made instances have new MIG
                # device UUIDs (unknown without the read); a failed rollback is in the message.
                touched = {s.get("gi_id") for s in report.get("ran", [])}
                final[gpu["index"]] = dict(
                    gpu,
                    projected=True,
                    devices=[d for d in gpu.get("devices", []) if d["gpu_instance_id"] not in touched],
                )
            else:
                final[gpu["index"]] = mig_state.project(gpu, report.get("ran", []), report.get("mode_after"))
    for gpu in selected:
        fresh = final[gpu["index"]]
        if mig_state.snapshot(fresh) != mig_state.snapshot(gpu):
            result["changed"] = True
        if (
            not fresh.get("lost")
            and fresh.get("mig_capable")
            and fresh["mig"]["current"] is not None
            and fresh["mig"]["current"] != fresh["mig"]["pending"]
        ):
            _mark_pending(result, fresh)
    for report in result["apply"]:
        report.pop("ran", None)
        report.pop("mode_after", None)
        fresh = final.get(report["index"])
        report["changed"] = mig_state.snapshot(fresh) != mig_state.snapshot(
            next(g for g in selected if g["index"] == report["index"])
        )
    result["gpus"] = [mig_state.public_gpu(final[g["index"]]) for g in selected]
    result["diff"]["after"] = "".join(mig_state.layout_text(final[g["index"]]) for g in selected)
    _finish(result, selected)
    problems = []
    if stopped is not None:
        done = [r["index"] for r in result["apply"] if r["ok"]]
        left = [
            g["index"]
            for g in selected
            if not g.get("lost") and g["index"] not in done and g["index"] != stopped["index"]
        ]
        msg = "GPU %d (%s): %s" % (stopped["index"], stopped["uuid"], stopped.get("error"))
        if stopped.get("rollback_failed"):
            msg += "; ROLLBACK FAILED (%s), GPU left as: %s" % (
                "; ".join("%s: %s" % (f["undoing"], f["error"]) for f in stopped["rollback_failed"]),
                mig_state.layout_text(final[stopped["index"]]).strip(),
            )
        else:
            msg += "; rolled back to the previous layout (%d step(s) undone)" % len(stopped.get("rolled_back", []))
        msg += "; GPUs done before it: %s; not touched: %s" % (done or "none", left or "none")
        problems.append(msg)
    for exc in read_failures:
        problems.append(
            "reading the state back failed: %s; the state shown for that GPU is projected from the steps that ran" % exc
        )
    if problems:
        result["msg"] = "; ".join(problems) + "; " + result["msg"]
        raise MigRunError(result["msg"], result)
    return result


def _plan_for(gpu, want, driver_version, what):
    """MigPlan for one GPU, or None when its layout is left alone."""
    layout = want["layout"]
    if layout is None:
        return None
    model = mig_state.model_for(gpu)
    if model is None:
        raise MigRunError(
            "GPU %d (%s): MIG profiles unknown: not in the catalog and NVML reports none%s; nothing changed"
            % (gpu["index"], gpu.get("name"), " (enable MIG first)" if not gpu["mig"]["current"] else "")
        )
    live = mig_state.live_for_plan(gpu) if gpu["mig"]["current"] else []
    try:
        return planner.plan_changes(gpu["name"], live, layout, model=model, driver_version=driver_version)
    except planner.MigLayoutError as exc:
        raise MigRunError(describe_layout_error(exc, what, gpu) + "; nothing changed") from exc


def plan_entry(gpu, plan, mode_change):
    entry = {
        "index": gpu["index"],
        "uuid": gpu.get("uuid"),
        "name": gpu.get("name"),
        "summary": plan.summary if plan is not None else "layout left alone",
        "keep": plan.keep if plan is not None else [],
        "destroy": plan.destroy if plan is not None else [],
        "create": plan.create if plan is not None else [],
        "steps": plan.steps if plan is not None else [],
        "busy_destroyed": plan.busy_destroyed if plan is not None else [],
        "mode_change": mode_change,
    }
    if mode_change:
        entry["summary"] = "MIG %s%s; %s" % (
            "on" if mode_change["to"] else "off",
            " (already pending: needs a GPU reset)" if mode_change["pending"] == mode_change["to"] else "",
            entry["summary"],
        )
    return entry


def _busy_message(gpu, plan):
    parts = []
    names = {p["pid"]: p.get("name") for p in gpu["processes"]}
    for entry in plan.busy_destroyed:
        inst = next((i for i in gpu["instances"] if i["gi_id"] == entry["gi_id"]), {})
        pids = inst.get("pids") or []
        what = "compute instances of" if entry.get("compute_instances_only") else "GPU instance"
        parts.append(
            "%s %s at placement start %d size %s (gi %d) has running processes: %s"
            % (
                what,
                entry["profile"],
                entry["start"],
                inst.get("size", "?"),
                entry["gi_id"],
                ", ".join("pid %d (%s)" % (pid, names.get(pid) or "?") for pid in pids),
            )
        )
    return "GPU %d (%s): %s" % (gpu["index"], gpu.get("uuid"), "; ".join(parts))


def _would_change(gpu, params, plan, mode_change):
    if mode_change is None:
        return plan is not None and plan.changed
    if mode_change["pending"] != mode_change["to"]:
        return True  # nvmlDeviceSetMigMode
    # Already pending: only a reset (if_idle, nothing running) would change something.
    return params.get("reset_policy") == "if_idle" and not gpu["processes"]


def _mark_pending(result, gpu):
    result["reset_required"] = True
    if gpu.get("architecture") is not None and int(gpu["architecture"]) <= ARCH_AMPERE:
        result["reboot_required"] = True
    pending = result.setdefault("pending", [])
    if gpu["index"] not in pending:
        pending.append(gpu["index"])


def _predicted_after(selected, plans):
    lines = []
    for gpu in selected:
        if gpu.get("lost"):
            lines.append(mig_state.layout_text(gpu))
            continue
        plan, mode_change = plans[gpu["index"]]
        if plan is None and mode_change is None:
            lines.append(mig_state.layout_text(gpu))
            continue
        enabled = mode_change["to"] if mode_change else gpu["mig"]["current"]
        head = "GPU %s %s (%s): MIG %s" % (gpu["index"], gpu.get("name"), gpu.get("uuid"), "on" if enabled else "off")
        body = ["  %s" % item for item in (plan.after if plan is not None else [])]
        lines.append("\n".join([head] + body) + "\n")
    return "".join(lines)


def _finish(result, selected, check_mode=False):
    lost = [g for g in selected if g.get("lost")]
    result["failed_gpus"] = [{"index": g["index"], "error": g["error"]} for g in lost]
    parts = []
    if check_mode:
        parts.append(
            "would change: %s"
            % ([p["index"] for p in result["plan"] if p.get("steps") or p.get("mode_change")] or "none")
        )
    else:
        parts.append("changed GPUs: %s" % ([r["index"] for r in result["apply"] if r.get("changed")] or "none"))
    if result.get("pending"):
        parts.append("MIG mode change pending on GPUs %s (reset required)" % result["pending"])
    if lost:
        parts.append("LOST: " + "; ".join(g["error"] for g in lost))
    result["msg"] = "; ".join(parts)


def _refresh(executor, gpu):
    executor.gpu = gpu
    executor.profiles = gpu.get("profiles") or {}
    executor.ci_by_id = {
        (e["gi_id"], c["ci_id"]): dict(c, gi_profile=e["profile"])
        for e in gpu.get("instances", [])
        for c in e["compute_instances"]
    }


def _apply_gpu(run, gpu, plan, mode_change, want, what):
    """Mode change, then the layout, on one GPU; rolled back when anything fails.

    Returns (report, executor). report: ok, steps, mode, reset, note; on failure error,
    failed_step, rolled_back and, when the rollback failed, rollback_failed. ``ran`` and
    ``mode_after`` are internal (for projecting the state when the read-back fails).
    """
    report = {"index": gpu["index"], "uuid": gpu.get("uuid"), "ok": True, "steps": [], "mode": None}
    if mode_change is None and (plan is None or not plan.changed):
        return report, None
    report["worked"] = True
    params = run.params
    executor = None
    progress = {"step": None}  # the step under way, for the error and the report
    try:
        executor = Executor(run.nvml, gpu, run.trace)
        enabled = mode_change["to"] if mode_change else gpu["mig"]["current"]
        if plan is not None and plan.busy_destroyed:
            _stop_busy(run, gpu, plan)
        if enabled:
            if mode_change:
                current = _set_mode(executor, gpu, mode_change, True, report, progress)
                if not current and params.get("reset_policy") == "if_idle":
                    current = _try_reset(run, executor, gpu, report)
                if not current:
                    report["note"] = "MIG enable pending: instances are created once the mode is current"
                    return report, executor
                gpu = mig_state.read_gpu(run.nvml, gpu, run.trace)
                _refresh(executor, gpu)
                plan = _plan_for(gpu, want, run.driver_version, what)
            _run_steps(executor, plan, report, progress)
        else:
            # Instances go before MIG mode can be disabled.
            _run_steps(executor, plan, report, progress)
            if mode_change:
                current = _set_mode(executor, gpu, mode_change, False, report, progress)
                if current and params.get("reset_policy") == "if_idle":
                    _try_reset(run, executor, gpu, report)
        report["ran"] = executor.ran_steps()
    except Exception as exc:  # every failure on this GPU: name it, undo what ran
        report["ok"] = False
        error = describe_error(exc)
        prefix = "GPU %d (%s): " % (gpu["index"], gpu.get("uuid"))
        if error.startswith(prefix):
            error = error[len(prefix) :]
        current_step = progress["step"]
        report["error"] = "%s: %s" % (step_text(current_step), error) if current_step else error
        report["failed_step"] = dict(current_step) if current_step else None
        report["ran"] = executor.ran_steps() if executor is not None else []
        if executor is not None and executor.done:
            undone, failed = executor.rollback()
            report["rolled_back"] = undone
            if failed:
                report["rollback_failed"] = failed
        else:
            report["rolled_back"] = []
        report.pop("mode_after", None)
    return report, executor


def _run_steps(executor, plan, report, progress):
    """The plan's steps in order, each recorded in the report as it completes."""
    if plan is None or not plan.changed:
        return
    for step in plan.steps:
        progress["step"] = step
        report["steps"].append(executor.run_step(step))
    progress["step"] = None


def _set_mode(executor, gpu, mode_change, enabled, report, progress):
    """Request MIG mode ``enabled`` unless it is already pending. Returns MIG current."""
    current = gpu["mig"]["current"]
    if mode_change["pending"] != mode_change["to"]:
        progress["step"] = {"action": "set_mode", "enabled": enabled}
        current, pending, status = executor.set_mode(enabled, gpu["mig"]["pending"])
        report["mode"] = {"current": current, "pending": pending, "status": status}
        report["mode_after"] = {"current": current, "pending": pending}
        progress["step"] = None
    return current


def _try_reset(run, executor, gpu, report):
    """reset_policy if_idle: reset when NVML lists no process on the GPU. Returns MIG current."""
    fresh = mig_state.read_gpu(run.nvml, gpu, run.trace)
    if fresh["processes"]:
        report["reset"] = "skipped: processes on the GPU: %s" % ", ".join(str(p["pid"]) for p in fresh["processes"])
        return fresh["mig"]["current"]
    if run.reset_gpu is None:
        report["reset"] = "skipped: no way to reset GPUs here"
        return fresh["mig"]["current"]
    # Our own NVML session would hold the GPU open and block the reset: close it meanwhile.
    run.session.pause()
    try:
        error = run.reset_gpu(fresh)
    finally:
        run.session.resume()
        executor.reopen()
    report["reset"] = "failed: %s" % error if error else "done"
    fresh = mig_state.read_gpu(run.nvml, gpu, run.trace)
    report["mode_after"] = dict(fresh["mig"])
    return fresh["mig"]["current"]


def _stop_busy(run, gpu, plan):
    """force: stop the processes on instances the plan destroys; raise when they stay."""
    busy_ids = {e["gi_id"] for e in plan.busy_destroyed}
    procs = [p for p in gpu["processes"] if p["gpu_instance_id"] in busy_ids]
    problems = check_signalable(procs)
    if problems:
        raise MigRunError(
            "force: cannot stop the processes on the instances to destroy: %s; nothing changed on this GPU"
            % "; ".join(problems)
        )

    def still_running():
        fresh = mig_state.read_gpu(run.nvml, gpu, run.trace)
        return [p["pid"] for p in fresh["processes"] if p["gpu_instance_id"] in busy_ids]

    left = terminate(procs, still_running, float(run.params.get("force_timeout") or 30), sleep=run.sleep)
    if left:
        raise MigRunError(
            "force: processes %s still hold the instances after SIGTERM and SIGKILL; nothing destroyed" % left
        )
