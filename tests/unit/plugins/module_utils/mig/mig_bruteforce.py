"""Test-side MIG geometry and brute-force searches, written independently of module_utils.

The tables are copied from ../shared/reference/mig-profiles.md by hand, so a wrong row in
mig_catalog.py shows up as a difference here instead of being checked against itself.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations

# name -> (compute slices, memory slices, start slots, max count, media extensions)
A100_40GB = {
    "1g.5gb": (1, 1, range(7), 7, False),
    "1g.5gb+me": (1, 1, range(7), 1, True),
    "1g.10gb": (1, 2, (0, 2, 4, 6), 4, False),
    "2g.10gb": (2, 2, (0, 2, 4), 3, False),
    "3g.20gb": (3, 4, (0, 4), 2, False),
    "4g.20gb": (4, 4, (0,), 1, False),
    "7g.40gb": (7, 8, (0,), 1, False),
}
H100_80GB = {
    "1g.10gb": (1, 1, range(7), 7, False),
    "1g.10gb+me": (1, 1, range(7), 1, True),
    "1g.20gb": (1, 2, (0, 2, 4, 6), 4, False),
    "2g.20gb": (2, 2, (0, 2, 4), 3, False),
    "3g.40gb": (3, 4, (0, 4), 2, False),
    "4g.40gb": (4, 4, (0,), 1, False),
    "7g.80gb": (7, 8, (0,), 1, False),
}
A30_24GB = {
    "1g.6gb": (1, 1, range(4), 4, False),
    "1g.6gb+me": (1, 1, range(4), 1, True),
    "2g.12gb": (2, 2, (0, 2), 2, False),
    "2g.12gb+me": (2, 2, (0, 2), 1, True),
    "4g.24gb": (4, 4, (0,), 1, False),
}

# GPU name as NVML reports it -> (geometry, memory slices, compute slices)
GPUS = {
    "NVIDIA A100-SXM4-40GB": (A100_40GB, 8, 7),
    "NVIDIA H100 80GB HBM3": (H100_80GB, 8, 7),
    "NVIDIA A30": (A30_24GB, 4, 4),
}


def slices(geometry, name, start):
    return set(range(start, start + geometry[name][1]))


def all_placements(geometry, memory_slices):
    return [(name, start) for name, row in geometry.items() for start in row[2] if start + row[1] <= memory_slices]


def placement_set_ok(geometry, memory_slices, compute_slices, placements):
    """Every rule of the reference, checked directly on a set of explicit placements."""
    used = set()
    counts = Counter(name for name, _unused in placements)
    for name, start in placements:
        if name not in geometry or start not in geometry[name][2]:
            return False
        cells = slices(geometry, name, start)
        if used & cells or max(cells) >= memory_slices:
            return False
        used |= cells
    if any(counts[name] > geometry[name][3] for name in counts):
        return False
    if sum(c for name, c in counts.items() if geometry[name][4]) > 1:
        return False
    return sum(geometry[name][0] for name, _unused in placements) <= compute_slices


def enumerate_valid_layouts(gpu_name):
    """Every multiset of profiles that fits, by trying every subset of disjoint placements."""
    geometry, memory_slices, compute_slices = GPUS[gpu_name]
    candidates = all_placements(geometry, memory_slices)
    layouts = set()

    def walk(index, chosen, used):
        if index == len(candidates):
            if placement_set_ok(geometry, memory_slices, compute_slices, chosen):
                layouts.add(frozenset(Counter(name for name, _unused in chosen).items()))
            return
        walk(index + 1, chosen, used)
        name, start = candidates[index]
        cells = slices(geometry, name, start)
        if not used & cells:
            walk(index + 1, [*chosen, (name, start)], used | cells)

    walk(0, [], set())
    return [dict(layout) for layout in layouts]


def fits_around(gpu_name, kept_placements, profiles):
    """Can ``profiles`` (a list of names) be placed next to ``kept_placements``? Try everything."""
    geometry, memory_slices, compute_slices = GPUS[gpu_name]
    options = all_placements(geometry, memory_slices)

    def place(chosen, remaining, floor):
        if not remaining:
            return placement_set_ok(geometry, memory_slices, compute_slices, chosen)
        name = remaining[0]
        for option in options:
            # Copies of one profile are interchangeable: try their starts in increasing order.
            if option[0] != name or option[1] <= floor:
                continue
            if placement_set_ok(geometry, memory_slices, compute_slices, [*chosen, option]):
                next_floor = option[1] if remaining[1:2] == [name] else -1
                if place([*chosen, option], remaining[1:], next_floor):
                    return True
        return False

    return place(list(kept_placements), sorted(profiles), -1)


def valid_keep_sets(gpu_name, live, desired):
    """Every subset of live instances (by position) that some valid plan could keep."""
    result = []
    for size in range(len(live) + 1):
        for subset in combinations(range(len(live)), size):
            kept = Counter(live[i]["profile"] for i in subset)
            if any(kept[name] > desired.get(name, 0) for name in kept):
                continue
            rest = Counter(desired)
            rest.subtract(kept)
            todo = [name for name, count in rest.items() for _unused in range(count)]
            placements = [(live[i]["profile"], live[i]["start"]) for i in subset]
            if fits_around(gpu_name, placements, todo):
                result.append(subset)
    return result
