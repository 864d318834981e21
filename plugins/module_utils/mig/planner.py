# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MIG layout planning: pure logic, no I/O and no NVML.

- ``plan_layout``: explicit (profile, start slot) placements for a layout such as
  ``{"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}``.
- ``plan_changes``: the smallest set of destroys/creates that turns the live GPU instances
  into a desired layout, keeping what can stay.

Placement order (the documented, deterministic contract):
  instances are ordered largest first -- memory slices descending, then compute slices
  descending, then profile name ascending. An instance of at least half the GPU's memory takes
  the highest free allowed start, a smaller one the lowest: big instances fill the top, small
  ones pack from the bottom, so free memory stays in one piece for later additions (on an A100,
  3g+2g+1g becomes 3g@4, 2g@0, 1g@2, and a second 1g still fits at 3). When a later instance
  finds no room the search backtracks (depth first, in that slot order), so every layout that
  fits at all is found; the answer is the first fitting assignment in that order. The returned
  list is in instance order, which is also a safe creation order when the driver is left to
  choose placements.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.gpuops.cluster.plugins.module_utils.mig.catalog import (
    GpuModel,
    MigProfile,
    ci_profiles_for,
    find_model,
    known_gpu_names,
)


class MigLayoutError(ValueError):
    """A layout, a live state or a config that cannot be honoured; the message says why."""


# --------------------------------------------------------------------------------------------
# Layout planning
# --------------------------------------------------------------------------------------------


def resolve_model(gpu_name: str) -> GpuModel:
    model = find_model(gpu_name)
    if model is None:
        raise MigLayoutError(
            "unknown GPU model %r: the MIG catalog knows %s; for another GPU build an entry "
            "with mig_catalog.model_from_nvml() and use plan_layout_for_model()"
            % (gpu_name, ", ".join(known_gpu_names()))
        )
    return model


def _instance_order(profile: MigProfile) -> Tuple[int, int, str]:
    return (-profile.memory_slices, -profile.compute_slices, profile.name)


def _slot_mask(start: int, size: int) -> int:
    return ((1 << size) - 1) << start


def _free_slices(model: GpuModel, occupied: int) -> List[int]:
    return [s for s in range(model.memory_slices) if not occupied >> s & 1]


def _describe(profile_name: str, start: int) -> str:
    return "%s@%d" % (profile_name, start)


def _layout_counts(model: GpuModel, layout: Any, what: str = "layout") -> Dict[str, int]:
    """Validate a {profile: count} mapping against a model; return the non-zero counts."""
    if not isinstance(layout, Mapping):
        raise MigLayoutError("%s must be a mapping of profile name to count, got %s" % (what, type(layout).__name__))
    counts: Dict[str, int] = {}
    allowed = ", ".join(model.profile_names)
    for name, count in layout.items():
        profile = model.profile(name) if isinstance(name, str) else None
        if profile is None:
            raise MigLayoutError("%s: unknown profile %r for %s; allowed: %s" % (what, name, model.key, allowed))
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise MigLayoutError("%s.%s: count must be a non-negative int, got %r" % (what, name, count))
        if count > profile.max_count:
            raise MigLayoutError(
                "%s.%s: count %d is over the maximum of %d per GPU on %s"
                % (what, name, count, profile.max_count, model.key)
            )
        if count:
            counts[name] = count
    media = {n: c for n, c in counts.items() if model.profile(n).media_extensions}
    if sum(media.values()) > 1:
        raise MigLayoutError(
            "%s: at most one +me (media extensions) instance per GPU, got %s"
            % (what, ", ".join("%s: %d" % item for item in sorted(media.items())))
        )
    return counts


_ENTRY_KEYS_LAYOUT = ("count", "compute_instances")


def split_layout(
    model: GpuModel, layout: Any, what: str = "layout"
) -> Tuple[Dict[str, int], Dict[str, Dict[str, int]]]:
    """Validate a layout whose values are counts or ``{count, compute_instances}`` mappings.

    ``{"3g.20gb": {"count": 1, "compute_instances": {"1c.3g.20gb": 3}}, "1g.5gb": 2}`` gives
    counts ``{"3g.20gb": 1, "1g.5gb": 2}`` and compute-instance specs
    ``{"3g.20gb": {"1c.3g.20gb": 3}}``. A profile without ``compute_instances`` gets one
    full-size compute instance per GPU instance (what mig-parted and the GPU Operator create).
    """
    if not isinstance(layout, Mapping):
        raise MigLayoutError("%s must be a mapping of profile name to count, got %s" % (what, type(layout).__name__))
    plain: Dict[Any, Any] = {}
    specs: Dict[str, Dict[str, int]] = {}
    for name, value in layout.items():
        if isinstance(value, Mapping):
            where = "%s.%s" % (what, name)
            for key in value:
                if key not in _ENTRY_KEYS_LAYOUT:
                    raise MigLayoutError(
                        "%s.%s: unknown key; allowed: %s" % (where, key, ", ".join(_ENTRY_KEYS_LAYOUT))
                    )
            if "count" not in value:
                raise MigLayoutError("%s.count: required (instances of %s per GPU)" % (where, name))
            plain[name] = value["count"]
            cis = value.get("compute_instances")
            if cis is not None:
                if not isinstance(cis, Mapping) or not cis:
                    raise MigLayoutError(
                        "%s.compute_instances: must be a non-empty mapping of compute instance profile to count" % where
                    )
                specs[str(name)] = dict(cis)
        else:
            plain[name] = value
    counts = _layout_counts(model, plain, what)
    for name, spec in specs.items():
        if name in counts:
            plan_compute_instances(model, name, spec, what="%s.%s.compute_instances" % (what, name))
    return counts, {n: s for n, s in specs.items() if n in counts}


def plan_compute_instances(
    model: GpuModel, gi_profile_name: str, spec: Optional[Mapping[str, int]] = None, what: str = "compute_instances"
) -> List[Tuple[str, int]]:
    """(compute instance profile, start) inside one GI of ``gi_profile_name``; largest first.

    ``spec`` None means one full-size compute instance.
    """
    gi_profile = model.profile(gi_profile_name)
    offered = ci_profiles_for(gi_profile)
    if spec is None:
        return [(gi_profile.name, 0)]
    by_name = {c.name: c for c in offered}
    wanted = []
    for name, count in spec.items():
        ci = by_name.get(name)
        if ci is None:
            raise MigLayoutError(
                "%s: unknown compute instance profile %r in %s; allowed: %s"
                % (what, name, gi_profile_name, ", ".join(c.name for c in offered))
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise MigLayoutError("%s.%s: count must be a non-negative int, got %r" % (what, name, count))
        if count > ci.max_count:
            raise MigLayoutError(
                "%s.%s: count %d is over the maximum of %d per %s instance"
                % (what, name, count, ci.max_count, gi_profile_name)
            )
        wanted.extend([ci] * count)
    if not wanted:
        raise MigLayoutError("%s: at least one compute instance per GPU instance of %s" % (what, gi_profile_name))
    wanted.sort(key=lambda c: (-c.compute_slices, c.name))
    if sum(c.compute_slices for c in wanted) > gi_profile.compute_slices:
        raise MigLayoutError(
            "%s: %d compute slices asked for, a %s instance has %d"
            % (what, sum(c.compute_slices for c in wanted), gi_profile_name, gi_profile.compute_slices)
        )
    starts: List[int] = []

    def place(index: int, occupied: int) -> bool:
        if index == len(wanted):
            return True
        ci = wanted[index]
        for start in ci.start_slots:
            mask = _slot_mask(start, ci.compute_slices)
            if occupied & mask:
                continue
            starts.append(start)
            if place(index + 1, occupied | mask):
                return True
            starts.pop()
        return False

    if not place(0, 0):
        raise MigLayoutError(
            "%s: %s do not fit together in a %s instance"
            % (what, ", ".join("%s x%d" % i for i in sorted(Counter(c.name for c in wanted).items())), gi_profile_name)
        )
    return [(wanted[i].name, s) for i, s in enumerate(starts)]


def driver_major(driver_version: Any) -> Optional[int]:
    """550 for "550.127.05"; None when unknown."""
    if driver_version is None:
        return None
    if isinstance(driver_version, int) and not isinstance(driver_version, bool):
        return driver_version
    match = re.match(r"^\s*(\d+)", str(driver_version))
    return int(match.group(1)) if match else None


def check_driver_gates(model: GpuModel, counts: Mapping[str, int], driver_version: Any, what: str = "layout") -> None:
    """Raise when the layout needs a newer driver than ``driver_version`` (None: not checked)."""
    major = driver_major(driver_version)
    if major is None:
        return
    present = {name for name, count in counts.items() if count}
    for gate in model.driver_gates:
        if set(gate.profiles) <= present and major < gate.min_driver_major:
            raise MigLayoutError(
                "%s: %s on %s; this host runs driver %s" % (what, gate.reason, model.key, driver_version)
            )


def _expand(model: GpuModel, counts: Mapping[str, int]) -> List[MigProfile]:
    profiles = [model.profile(name) for name, count in counts.items() for _unused in range(count)]
    return sorted(profiles, key=_instance_order)


@dataclass
class _Search:
    """Depth-first placement search; remembers the deepest partial result for error messages."""

    model: GpuModel
    instances: List[MigProfile]
    best_partial: List[int] = field(default_factory=list)
    best_occupied: int = 0
    best_depth: int = -1

    def run(self, occupied: int) -> Optional[List[int]]:
        starts: List[int] = []
        self.best_occupied = occupied
        return starts if self._place(0, occupied, starts) else None

    def _slot_order(self, profile: MigProfile) -> Tuple[int, ...]:
        if 2 * profile.memory_slices >= self.model.memory_slices:
            return tuple(reversed(profile.start_slots))
        return profile.start_slots

    def _place(self, index: int, occupied: int, starts: List[int]) -> bool:
        if index == len(self.instances):
            return True
        profile = self.instances[index]
        order = self._slot_order(profile)
        # Identical instances are interchangeable: each tries only the slots after the
        # previous one's in slot order, which visits every set of starts once.
        first = 0
        if index and self.instances[index - 1] is profile:
            first = order.index(starts[-1]) + 1
        for start in order[first:]:
            if start + profile.memory_slices > self.model.memory_slices:
                continue
            mask = _slot_mask(start, profile.memory_slices)
            if occupied & mask:
                continue
            starts.append(start)
            if self._place(index + 1, occupied | mask, starts):
                return True
            starts.pop()
        if index > self.best_depth:
            self.best_depth = index
            self.best_partial = list(starts)
            self.best_occupied = occupied
        return False


def _no_room_message(
    model: GpuModel, instances: List[MigProfile], search: _Search, kept: Sequence[Tuple[str, int]] = ()
) -> str:
    placed = [_describe(instances[i].name, s) for i, s in enumerate(search.best_partial)]
    missing = instances[len(search.best_partial)]
    free = _free_slices(model, search.best_occupied)
    rest = Counter(p.name for p in instances[len(search.best_partial) :])
    return (
        "no room on %s for %s: %s%s; left free: memory slices %s; cannot place %s "
        "(needs %d consecutive memory slices starting at one of %s)"
        % (
            model.key,
            ", ".join("%s x%d" % i for i in sorted(Counter(p.name for p in instances).items())),
            "kept " + ", ".join(_describe(*k) for k in kept) + "; " if kept else "",
            "placed " + ", ".join(placed) if placed else "placed nothing",
            free or "none",
            ", ".join("%s x%d" % i for i in sorted(rest.items())),
            missing.memory_slices,
            list(missing.start_slots),
        )
    )


def _fit(
    model: GpuModel, instances: List[MigProfile], occupied: int = 0, used_compute: int = 0
) -> Tuple[Optional[List[int]], _Search]:
    search = _Search(model, instances)
    compute = used_compute + sum(p.compute_slices for p in instances)
    memory = bin(occupied).count("1") + sum(p.memory_slices for p in instances)
    if compute > model.compute_slices or memory > model.memory_slices:
        return None, search
    return search.run(occupied), search


def plan_layout_for_model(
    model: GpuModel, layout: Mapping[str, Any], driver_version: Any = None
) -> List[Tuple[str, int]]:
    """``plan_layout`` for a catalog entry, e.g. one built by mig_catalog.model_from_nvml."""
    counts, _unused = split_layout(model, layout)
    check_driver_gates(model, counts, driver_version)
    instances = _expand(model, counts)
    compute = sum(p.compute_slices for p in instances)
    memory = sum(p.memory_slices for p in instances)
    if compute > model.compute_slices or memory > model.memory_slices:
        raise MigLayoutError(
            "no room on %s: the layout needs %d compute and %d memory slices, the GPU has %d "
            "and %d" % (model.key, compute, memory, model.compute_slices, model.memory_slices)
        )
    starts, search = _fit(model, instances)
    if starts is None:
        raise MigLayoutError(_no_room_message(model, instances, search))
    return [(instances[i].name, s) for i, s in enumerate(starts)]


def plan_layout(gpu_name: str, layout: dict, driver_version: Any = None) -> list[tuple[str, int]]:
    """One (profile, start slot) per instance of ``layout`` on the GPU NVML calls ``gpu_name``.

    Raises MigLayoutError for an unknown GPU model or profile, a count that is not a
    non-negative int or is over the profile's maximum, more than one +me instance, a layout
    that does not fit (the message says what was left), or, when ``driver_version`` is given,
    a combination that driver cannot create (4g + 3g before R510). Layout values may also be
    ``{"count": N, "compute_instances": {...}}`` (see ``split_layout``). See the module
    docstring for the order.
    """
    return plan_layout_for_model(resolve_model(gpu_name), layout, driver_version)


def check_placements(model: GpuModel, placements: Sequence[Tuple[str, int]]) -> None:
    """Raise MigLayoutError unless the explicit placements can coexist on one GPU of ``model``.

    Creating them in the given order then always succeeds, whatever that order is.
    """
    counts = Counter(name for name, _unused in placements)
    _layout_counts(model, dict(counts), what="placements")
    occupied = 0
    compute = 0
    for name, start in placements:
        profile = model.profile(name)
        if start not in profile.start_slots:
            raise MigLayoutError(
                "%s: start %r is not one of %s" % (_describe(name, start), start, list(profile.start_slots))
            )
        mask = _slot_mask(start, profile.memory_slices)
        if occupied & mask:
            raise MigLayoutError(
                "%s: memory slices %s overlap another instance; left free: %s"
                % (
                    _describe(name, start),
                    list(range(start, start + profile.memory_slices)),
                    _free_slices(model, occupied) or "none",
                )
            )
        occupied |= mask
        compute += profile.compute_slices
        if compute > model.compute_slices:
            raise MigLayoutError(
                "%s: more than %d compute slices in use" % (_describe(name, start), model.compute_slices)
            )


# --------------------------------------------------------------------------------------------
# Diff planning
# --------------------------------------------------------------------------------------------


@dataclass
class MigPlan:
    """What to do on one GPU; plain data for check mode, diff mode and the module's result.

    ``steps`` is the execution order: per destroyed GPU instance its compute instances first,
    then the GPU instance; then creates, largest first, each at an explicit placement, each
    followed by its compute instance.
    """

    gpu_name: str
    model: str
    keep: List[Dict[str, Any]]
    destroy: List[Dict[str, Any]]
    create: List[Dict[str, Any]]
    steps: List[Dict[str, Any]]
    busy_destroyed: List[Dict[str, Any]]
    before: List[str]
    after: List[str]
    summary: str
    remade: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    @property
    def requires_force(self) -> bool:
        return bool(self.busy_destroyed)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "gpu_name": self.gpu_name,
            "model": self.model,
            "changed": self.changed,
            "requires_force": self.requires_force,
            "keep": [dict(i) for i in self.keep],
            "destroy": [dict(i) for i in self.destroy],
            "create": [dict(i) for i in self.create],
            "steps": [dict(s) for s in self.steps],
            "busy_destroyed": [dict(i) for i in self.busy_destroyed],
            "remade": [dict(i) for i in self.remade],
            "before": list(self.before),
            "after": list(self.after),
            "summary": self.summary,
        }


def _normalize_live(model: GpuModel, live_instances: Any) -> List[Dict[str, Any]]:
    if not isinstance(live_instances, (list, tuple)):
        raise MigLayoutError("live_instances must be a list, got %s" % type(live_instances).__name__)
    result = []
    occupied: Dict[int, str] = {}
    seen_ids = set()
    for index, item in enumerate(live_instances):
        where = "live_instances[%d]" % index
        if not isinstance(item, Mapping):
            raise MigLayoutError("%s must be a mapping" % where)
        for key in ("gi_id", "profile", "start"):
            if key not in item:
                raise MigLayoutError("%s.%s: required" % (where, key))
        gi_id, name, start = item["gi_id"], item["profile"], item["start"]
        for key, value in (("gi_id", gi_id), ("start", start)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise MigLayoutError("%s.%s: must be a non-negative int, got %r" % (where, key, value))
        if gi_id in seen_ids:
            raise MigLayoutError("%s.gi_id: %d appears twice" % (where, gi_id))
        seen_ids.add(gi_id)
        compute_instances = list(item.get("compute_instances") or [])
        entry = {
            "gi_id": gi_id,
            "profile": str(name),
            "start": start,
            "compute_instances": compute_instances,
            "busy": bool(item.get("busy", False)),
        }
        profile = model.profile(entry["profile"])
        if profile is not None:
            end = start + profile.memory_slices
            if end > model.memory_slices:
                raise MigLayoutError(
                    "%s: %s ends past memory slice %d" % (where, _describe(name, start), model.memory_slices - 1)
                )
            for s in range(start, end):
                if s in occupied:
                    raise MigLayoutError(
                        "%s: %s overlaps %s: live state is inconsistent" % (where, _describe(name, start), occupied[s])
                    )
                occupied[s] = _describe(name, start)
        result.append(entry)
    # Canonical order, so the plan does not depend on how the caller listed instances.
    result.sort(key=lambda e: (e["start"], e["gi_id"]))
    return result


def _ci_id(compute_instance: Any) -> Any:
    if isinstance(compute_instance, Mapping):
        return compute_instance.get("ci_id", compute_instance.get("id"))
    return compute_instance


def _public(entry: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: entry[k] for k in ("gi_id", "profile", "start", "compute_instances", "busy")}


def _choose_kept(
    model: GpuModel,
    live: List[Dict[str, Any]],
    counts: Mapping[str, int],
    desired_cis: Optional[Mapping[str, Sequence[Tuple[str, int]]]] = None,
):
    """Best subset of live instances to keep and placements for the rest.

    Objective, in order: keep the most busy instances, then the most instances, then the most
    memory slices; ties go to the subset that keeps the earliest instances (canonical order).
    Subsets are tried best first and the first whose complement fits wins, so the result is
    optimal: every subset is a candidate, nothing is pruned on a heuristic.
    """
    candidates = [i for i, e in enumerate(live) if counts.get(e["profile"], 0) > 0]
    ci_match = {
        e["gi_id"]: bool(desired_cis)
        and e["profile"] in desired_cis
        and Counter(_live_ci_profiles(e)) == Counter(n for n, _unused in desired_cis[e["profile"]])
        for e in live
    }
    scored = []
    for bits in range(1 << len(candidates)):
        chosen = [live[candidates[j]] for j in range(len(candidates)) if bits >> j & 1]
        kept_counts = Counter(e["profile"] for e in chosen)
        if any(c > counts[name] for name, c in kept_counts.items()):
            continue
        busy = sum(1 for e in chosen if e["busy"])
        slices = sum(model.profile(e["profile"]).memory_slices for e in chosen)
        ci_ok = sum(1 for e in chosen if ci_match[e["gi_id"]])
        # Reverse the bit order so that keeping earlier instances sorts first.
        preference = -int(format(bits, "0%db" % len(candidates))[::-1], 2)
        scored.append(((-busy, -len(chosen), -slices, -ci_ok, preference), chosen, kept_counts))
    scored.sort(key=lambda item: item[0])
    last_search = None
    for _unused, chosen, kept_counts in scored:
        occupied = 0
        compute = 0
        for entry in chosen:
            profile = model.profile(entry["profile"])
            occupied |= _slot_mask(entry["start"], profile.memory_slices)
            compute += profile.compute_slices
        remaining = Counter(counts)
        remaining.subtract(kept_counts)
        instances = _expand(model, {n: c for n, c in remaining.items() if c > 0})
        starts, search = _fit(model, instances, occupied, compute)
        if starts is not None:
            return chosen, [(instances[i], s) for i, s in enumerate(starts)]
        last_search = (instances, search)
    # Unreachable when the desired layout fits on an empty GPU (keeping nothing always works).
    instances, search = last_search
    raise MigLayoutError(_no_room_message(model, instances, search))


def _live_ci_profiles(entry: Mapping[str, Any]) -> List[str]:
    """Profile names of a live GI's compute instances; one without a name is the full-size one."""
    names = []
    for ci in entry["compute_instances"]:
        name = ci.get("profile") if isinstance(ci, Mapping) else None
        names.append(name or entry["profile"])
    return names


def _ci_busy(ci: Any) -> bool:
    return bool(ci.get("busy", False)) if isinstance(ci, Mapping) else False


def plan_changes(
    gpu_name: str,
    live_instances: Sequence[Mapping[str, Any]],
    desired_layout: Mapping[str, Any],
    model: Optional[GpuModel] = None,
    driver_version: Any = None,
) -> MigPlan:
    """Plan the re-layout of one GPU from its live GPU instances to ``desired_layout``.

    live_instances: ``[{"gi_id": 1, "profile": "3g.20gb", "start": 4,
    "compute_instances": [{"ci_id": 0, "profile": "3g.20gb", "start": 0, "busy": False}],
    "busy": False}, ...]`` (a compute instance without ``profile`` is the full-size one).
    Keeps every live instance that can stay where it is (busy ones first, then as many as
    possible), destroys only what must go and creates the rest at explicit placements around
    the kept ones. A kept GPU instance whose compute instances differ from the desired ones
    (``compute_instances`` in the layout; default one full-size) gets them re-made inside it.
    ``busy_destroyed`` lists busy instances that would be destroyed (GPU instances, or compute
    instances of a kept one): the caller refuses unless forced. Pass ``model`` for a GPU the
    catalog does not know (see mig_catalog.model_from_nvml), ``driver_version`` to apply the
    catalog's driver gates.
    """
    model = model or resolve_model(gpu_name)
    counts, ci_specs = split_layout(model, desired_layout, what="desired_layout")
    check_driver_gates(model, counts, driver_version, what="desired_layout")
    # Fail on an impossible layout before looking at the live state.
    plan_layout_for_model(model, counts)
    live = _normalize_live(model, live_instances)
    desired_cis = {name: plan_compute_instances(model, name, ci_specs.get(name)) for name in counts}

    kept, created = _choose_kept(model, live, counts, desired_cis)
    kept_ids = {e["gi_id"] for e in kept}
    destroy = [e for e in live if e["gi_id"] not in kept_ids]
    create = [{"profile": p.name, "start": s} for p, s in created]
    for entry in create:
        if entry["profile"] in ci_specs:
            entry["compute_instances"] = [{"profile": n, "start": cs} for n, cs in desired_cis[entry["profile"]]]

    steps: List[Dict[str, Any]] = []
    for entry in destroy:
        for ci in entry["compute_instances"]:
            steps.append(
                {
                    "action": "destroy_ci",
                    "gi_id": entry["gi_id"],
                    "ci_id": _ci_id(ci),
                    "profile": entry["profile"],
                    "start": entry["start"],
                }
            )
        steps.append(
            {"action": "destroy_gi", "gi_id": entry["gi_id"], "profile": entry["profile"], "start": entry["start"]}
        )
    # Compute instances of kept GPU instances that must change: destroy first, re-make below.
    remake = []
    busy_destroyed = [_public(e) for e in destroy if e["busy"]]
    for entry in kept:
        wanted = desired_cis[entry["profile"]]
        have = _live_ci_profiles(entry)
        if not have or Counter(have) == Counter(n for n, _unused in wanted):
            if not have:
                remake.append(entry)
            continue
        remake.append(entry)
        for ci in entry["compute_instances"]:
            steps.append(
                {
                    "action": "destroy_ci",
                    "gi_id": entry["gi_id"],
                    "ci_id": _ci_id(ci),
                    "profile": entry["profile"],
                    "start": entry["start"],
                }
            )
        if any(_ci_busy(ci) for ci in entry["compute_instances"]):
            busy = _public(entry)
            busy["compute_instances_only"] = True
            busy_destroyed.append(busy)
    for entry in create:
        steps.append({"action": "create_gi", "profile": entry["profile"], "start": entry["start"]})
        for ci_name, ci_start in desired_cis[entry["profile"]]:
            steps.append(
                {
                    "action": "create_ci",
                    "profile": entry["profile"],
                    "start": entry["start"],
                    "ci_profile": ci_name,
                    "ci_start": ci_start,
                }
            )
    # A kept GPU instance without a compute instance is no usable MIG device yet.
    for entry in remake:
        for ci_name, ci_start in desired_cis[entry["profile"]]:
            steps.append(
                {
                    "action": "create_ci",
                    "gi_id": entry["gi_id"],
                    "profile": entry["profile"],
                    "start": entry["start"],
                    "ci_profile": ci_name,
                    "ci_start": ci_start,
                }
            )

    before = [_describe_live(e) for e in live]
    after_items = [(e["start"], e["profile"], tuple(n for n, _unused in desired_cis[e["profile"]])) for e in kept]
    after_items += [(c["start"], c["profile"], tuple(n for n, _unused in desired_cis[c["profile"]])) for c in create]
    plan = MigPlan(
        gpu_name=gpu_name,
        model=model.key,
        keep=[_public(e) for e in kept],
        destroy=[_public(e) for e in destroy],
        create=create,
        steps=steps,
        busy_destroyed=busy_destroyed,
        before=before,
        after=[_describe_cis(name, start, cis) for start, name, cis in sorted(after_items)],
        summary="",
    )
    plan.remade = [_public(e) for e in remake if e["compute_instances"]]
    plan.summary = _summarize(plan)
    return plan


def _describe_cis(name: str, start: int, ci_names: Sequence[str]) -> str:
    text = _describe(name, start)
    if list(ci_names) != [name]:
        text += "[%s]" % ",".join(ci_names)
    return text


def _describe_live(entry: Mapping[str, Any]) -> str:
    names = _live_ci_profiles(entry)
    return _describe_cis(entry["profile"], entry["start"], names or [entry["profile"]])


def _summarize(plan: MigPlan) -> str:
    if not plan.changed:
        return "%s: no change (%s)" % (plan.model, ", ".join(plan.before) or "no instances")
    parts = []
    if plan.keep:
        parts.append(
            "keep %d (%s)" % (len(plan.keep), ", ".join(_describe(e["profile"], e["start"]) for e in plan.keep))
        )
    if plan.destroy:
        parts.append(
            "destroy %d (%s)"
            % (
                len(plan.destroy),
                ", ".join(
                    "%s gi %d%s" % (_describe(e["profile"], e["start"]), e["gi_id"], " BUSY" if e["busy"] else "")
                    for e in plan.destroy
                ),
            )
        )
    if plan.create:
        parts.append(
            "create %d (%s)" % (len(plan.create), ", ".join(_describe(c["profile"], c["start"]) for c in plan.create))
        )
    remade = getattr(plan, "remade", [])
    if remade:
        parts.append("re-make compute instances of %d kept" % len(remade))
    missing_ci = {s["gi_id"] for s in plan.steps if s["action"] == "create_ci" and "gi_id" in s}
    missing_ci -= {e["gi_id"] for e in remade}
    if missing_ci:
        parts.append("add compute instance to %d kept" % len(missing_ci))
    text = "%s: %s" % (plan.model, "; ".join(parts))
    if plan.busy_destroyed:
        text += "; %d busy instance(s) would be destroyed: needs force" % len(plan.busy_destroyed)
    return text
