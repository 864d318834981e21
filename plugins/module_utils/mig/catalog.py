# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MIG geometry per GPU model, as data.

Source: ../shared/reference/mig-profiles.md (MIG User Guide, published ``nvidia-smi mig -lgip``
and ``-lgipp`` outputs). Rows marked inferred there are marked ``inferred`` here: correct a row
when a real GPU says otherwise. ``model_from_nvml`` builds the same structure from what NVML
reports, so a GPU missing from this table still works without a code change.

GI profile ids are informational only: the driver assigns them, so callers must resolve a
profile by NAME on each device (mig-parted issue #157 came from reusing another GPU's ids).

No I/O here: Ansible's module packer ships this file to the target as plain Python.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple


@dataclass(frozen=True)
class MigProfile:
    """One GPU instance profile of one GPU model."""

    name: str  # e.g. "1g.5gb", "1g.5gb+me"
    gi_profile_id: Optional[int]  # as `nvidia-smi mig -lgip` shows it; None when never seen
    compute_slices: int  # the "g" of the name
    memory_slices: int  # placement size: consecutive memory slices occupied
    start_slots: Tuple[int, ...]  # allowed placement starts
    max_count: int  # instances of this profile per GPU
    media_extensions: bool  # "+me": at most one such instance per GPU
    memory_gib: Optional[float] = None
    sm_count: Optional[int] = None
    inferred: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "gi_profile_id": self.gi_profile_id,
            "compute_slices": self.compute_slices,
            "memory_slices": self.memory_slices,
            "start_slots": list(self.start_slots),
            "max_count": self.max_count,
            "media_extensions": self.media_extensions,
            "memory_gib": self.memory_gib,
            "sm_count": self.sm_count,
            "inferred": self.inferred,
        }


@dataclass(frozen=True)
class CiProfile:
    """A compute instance profile inside a GPU instance of some profile."""

    name: str  # "1c.3g.20gb"; the full-size one carries the GI profile's name ("3g.20gb")
    compute_slices: int
    start_slots: Tuple[int, ...]  # allowed starts inside the GPU instance (compute slices)
    max_count: int

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "compute_slices": self.compute_slices,
            "start_slots": list(self.start_slots),
            "max_count": self.max_count,
        }


@dataclass(frozen=True)
class DriverGate:
    """Profiles that together (or alone, for one name) need a minimum driver branch."""

    profiles: Tuple[str, ...]
    min_driver_major: int
    reason: str


# Compute instance sizes and their allowed starts inside a GI (the same scheme on every
# MIG GPU so far: `nvidia-smi mig -lcip` on A100/H100). A GI of g compute slices offers the
# sizes <= g whose start + size <= g.
CI_SHAPES: Tuple[Tuple[int, Tuple[int, ...]], ...] = (
    (1, (0, 1, 2, 3, 4, 5, 6)),
    (2, (0, 2, 4)),
    (3, (0, 4)),
    (4, (0,)),
    (7, (0,)),
)


def ci_profiles_for(gi_profile: "MigProfile") -> List[CiProfile]:
    """Compute instance profiles a GI of ``gi_profile`` offers, smallest first."""
    result = []
    for size, starts in CI_SHAPES:
        if size > gi_profile.compute_slices:
            continue
        fitting = tuple(s for s in starts if s + size <= gi_profile.compute_slices)
        if not fitting:
            continue
        full = size == gi_profile.compute_slices
        name = gi_profile.name if full else "%dc.%s" % (size, gi_profile.name)
        result.append(CiProfile(name=name, compute_slices=size, start_slots=fitting, max_count=len(fitting)))
    return result


@dataclass(frozen=True)
class GpuModel:
    """MIG geometry of one GPU model."""

    key: str
    description: str
    memory_slices: int
    compute_slices: int
    profiles: Tuple[MigProfile, ...]
    nvml_names: Tuple[str, ...] = ()
    pci_device_ids: Tuple[int, ...] = ()  # device << 16 | vendor, as mig-parted device-filter
    inferred: bool = False
    notes: Tuple[str, ...] = ()
    driver_gates: Tuple[DriverGate, ...] = ()
    _by_name: Dict[str, MigProfile] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update((p.name, p) for p in self.profiles)

    def profile(self, name: str) -> Optional[MigProfile]:
        return self._by_name.get(name)

    @property
    def profile_names(self) -> List[str]:
        return [p.name for p in self.profiles]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "key": self.key,
            "description": self.description,
            "memory_slices": self.memory_slices,
            "compute_slices": self.compute_slices,
            "nvml_names": list(self.nvml_names),
            "pci_device_ids": ["0x%08X" % d for d in self.pci_device_ids],
            "inferred": self.inferred,
            "notes": list(self.notes),
            "driver_gates": [
                {"profiles": list(g.profiles), "min_driver_major": g.min_driver_major, "reason": g.reason}
                for g in self.driver_gates
            ],
            "profiles": [p.to_dict() for p in self.profiles],
        }


# The shared 8-memory-slice / 7-compute-slice scheme of A100, H100, H100 NVL, H200 and B200.
# Columns: GI profile id, compute slices, memory slices (size), start slots, max count, +me.
_SLOTS_0_TO_6 = (0, 1, 2, 3, 4, 5, 6)
_EIGHT_SLICE_SHAPES = {
    "1g": (19, 1, 1, _SLOTS_0_TO_6, 7, False),
    "1g+me": (20, 1, 1, _SLOTS_0_TO_6, 1, True),
    "1g.2s": (15, 1, 2, (0, 2, 4, 6), 4, False),
    "2g": (14, 2, 2, (0, 2, 4), 3, False),
    "3g": (9, 3, 4, (0, 4), 2, False),
    "4g": (5, 4, 4, (0,), 1, False),
    "7g": (0, 7, 8, (0,), 1, False),
}

# Per model: shape -> (profile name, memory GiB, SMs) as -lgip reports them (None: not published).
# Columns of CATALOG rows below: key, description, nvml names, pci device ids, inferred, names.
_A100_40GB = {
    "1g": ("1g.5gb", 4.75, 14),
    "1g+me": ("1g.5gb+me", 4.75, 14),
    "1g.2s": ("1g.10gb", 9.62, 14),
    "2g": ("2g.10gb", 9.62, 28),
    "3g": ("3g.20gb", 19.50, 42),
    "4g": ("4g.20gb", 19.50, 56),
    "7g": ("7g.40gb", 39.25, 98),
}
_A100_80GB = {
    "1g": ("1g.10gb", 9.50, 14),
    "1g+me": ("1g.10gb+me", 9.50, 14),
    "1g.2s": ("1g.20gb", None, None),
    "2g": ("2g.20gb", 19.50, 28),
    "3g": ("3g.40gb", 39.25, 42),
    "4g": ("4g.40gb", None, None),
    "7g": ("7g.80gb", None, None),
}
_H100_80GB = {
    "1g": ("1g.10gb", 9.75, 16),
    "1g+me": ("1g.10gb+me", 9.75, 16),
    "1g.2s": ("1g.20gb", 19.62, 26),
    "2g": ("2g.20gb", 19.62, 32),
    "3g": ("3g.40gb", 39.50, 60),
    "4g": ("4g.40gb", 39.50, 64),
    "7g": ("7g.80gb", 79.25, 132),
}
_H100_NVL = {
    "1g": ("1g.12gb", None, None),
    "1g+me": ("1g.12gb+me", None, None),
    "1g.2s": ("1g.24gb", None, None),
    "2g": ("2g.24gb", None, None),
    "3g": ("3g.47gb", 46.38, 60),
    "4g": ("4g.47gb", 46.38, 64),
    "7g": ("7g.94gb", 93.12, 132),
}
_H200_141GB = {
    "1g": ("1g.18gb", None, None),
    "1g+me": ("1g.18gb+me", None, None),
    "1g.2s": ("1g.35gb", None, None),
    "2g": ("2g.35gb", None, None),
    "3g": ("3g.71gb", None, None),
    "4g": ("4g.71gb", None, None),
    "7g": ("7g.141gb", None, None),
}
_B200 = {
    "1g": ("1g.23gb", 20.50, 18),
    "1g+me": ("1g.23gb+me", 20.50, 18),
    "1g.2s": ("1g.45gb", 44.25, 36),
    "2g": ("2g.45gb", 44.25, 30),
    "3g": ("3g.90gb", None, None),
    "4g": ("4g.90gb", None, None),
    "7g": ("7g.180gb", None, None),
}

# Shapes whose placement (and id) the reference marks inferred, per model key.
_INFERRED_SHAPES = {
    "H200-141GB": ("3g", "4g", "7g"),
    "B200": ("3g", "4g", "7g"),
}

_EIGHT_SLICE_MODELS = (
    (
        "A100-40GB",
        "A100 40GB (SXM4 and PCIe)",
        ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB"),
        (0x20B010DE, 0x20B110DE, 0x20F110DE),
        False,
        _A100_40GB,
    ),
    (
        "A100-80GB",
        "A100 80GB (SXM4 and PCIe)",
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"),
        (0x20B210DE, 0x20B510DE),
        False,
        _A100_80GB,
    ),
    (
        "H100-80GB",
        "H100 80GB (SXM5 HBM3 and PCIe)",
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe"),
        (0x233010DE, 0x233110DE),
        False,
        _H100_80GB,
    ),
    (
        "H100-NVL",
        "H100 NVL 94GB",
        ("NVIDIA H100 NVL",),
        (0x232110DE,),
        False,
        _H100_NVL,
    ),
    (
        "H200-141GB",
        "H200 141GB (SXM and NVL)",
        ("NVIDIA H200", "NVIDIA H200 NVL"),
        (0x233510DE, 0x233B10DE),
        True,
        _H200_141GB,
    ),
    (
        "B200",
        "B200",
        ("NVIDIA B200",),
        (0x290110DE,),
        True,
        _B200,
    ),
)


def _eight_slice_model(row):
    key, description, nvml_names, pci_ids, inferred, names = row
    inferred_shapes = _INFERRED_SHAPES.get(key, ())
    profiles = []
    for shape, (gi_id, compute, size, starts, max_count, media) in _EIGHT_SLICE_SHAPES.items():
        name, memory_gib, sms = names[shape]
        profiles.append(
            MigProfile(
                name=name,
                gi_profile_id=gi_id,
                compute_slices=compute,
                memory_slices=size,
                start_slots=starts,
                max_count=max_count,
                media_extensions=media,
                memory_gib=memory_gib,
                sm_count=sms,
                inferred=shape in inferred_shapes,
            )
        )
    notes = ("4g + 3g together needs driver R510 or newer",)
    if inferred:
        notes += ("not seen on hardware: confirm placements with nvidia-smi mig -lgipp",)
    gate = DriverGate(
        profiles=(names["4g"][0], names["3g"][0]),
        min_driver_major=510,
        reason="4g + 3g instances together need driver R510 or newer",
    )
    return GpuModel(
        key=key,
        description=description,
        memory_slices=8,
        compute_slices=7,
        profiles=tuple(profiles),
        nvml_names=nvml_names,
        pci_device_ids=pci_ids,
        inferred=inferred,
        notes=notes,
        driver_gates=(gate,),
    )


# A30-24GB: 4 memory slices and 4 compute slices, its own ids.
_A30_24GB = GpuModel(
    key="A30-24GB",
    description="A30 24GB",
    memory_slices=4,
    compute_slices=4,
    nvml_names=("NVIDIA A30",),
    pci_device_ids=(0x20B710DE,),
    profiles=(
        MigProfile("1g.6gb", 14, 1, 1, (0, 1, 2, 3), 4, False),
        MigProfile("1g.6gb+me", 21, 1, 1, (0, 1, 2, 3), 1, True),
        MigProfile("2g.12gb", 5, 2, 2, (0, 2), 2, False),
        # Needs driver R525+; its id was never seen, so resolve it by name only.
        MigProfile("2g.12gb+me", None, 2, 2, (0, 2), 1, True, inferred=True),
        MigProfile("4g.24gb", 0, 4, 4, (0,), 1, False),
    ),
    notes=("2g.12gb+me needs driver R525 or newer",),
    driver_gates=(DriverGate(("2g.12gb+me",), 525, "2g.12gb+me needs driver R525 or newer"),),
)

CATALOG: Tuple[GpuModel, ...] = (
    *(_eight_slice_model(row) for row in _EIGHT_SLICE_MODELS),
    _A30_24GB,
)


def normalize_gpu_name(name: str) -> str:
    """Compare NVML names without case, extra blanks or the "NVIDIA " prefix older drivers omit."""
    text = " ".join(str(name).split()).lower()
    return text[len("nvidia ") :] if text.startswith("nvidia ") else text


_BY_NAME = {normalize_gpu_name(n): m for m in CATALOG for n in m.nvml_names}
_BY_PCI_ID = {d: m for m in CATALOG for d in m.pci_device_ids}
_BY_KEY = {m.key: m for m in CATALOG}

_PCI_ID_PATTERN = re.compile(r"^(0x)?([0-9a-fA-F]{1,8})$")


def parse_pci_device_id(value: Any) -> int:
    """Accept 0x20B010DE, "0x20B010DE" or "20b010de"; return the 32-bit int."""
    if isinstance(value, bool):
        raise ValueError("PCI device id must be an int or hex string, got %r" % (value,))
    if isinstance(value, int):
        return value
    match = _PCI_ID_PATTERN.match(str(value).strip())
    if not match:
        raise ValueError("PCI device id %r is not of the form 0x20B010DE" % (value,))
    return int(match.group(2), 16)


def find_model(gpu_name: Optional[str] = None, pci_device_id: Any = None) -> Optional[GpuModel]:
    """Catalog entry by PCI device id (preferred: names vary with driver versions) or NVML name."""
    if pci_device_id is not None:
        model = _BY_PCI_ID.get(parse_pci_device_id(pci_device_id))
        if model is not None:
            return model
    if gpu_name is not None:
        return _BY_NAME.get(normalize_gpu_name(gpu_name))
    return None


def model_by_key(key: str) -> Optional[GpuModel]:
    return _BY_KEY.get(key)


def known_gpu_names() -> List[str]:
    return sorted(n for m in CATALOG for n in m.nvml_names)


def _field(source: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in source:
            return source[name]
    raise ValueError("missing field %s" % " / ".join(names))


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("%s must be a non-negative int, got %r" % (what, value))
    return value


def model_from_nvml(
    gpu_name: str, profiles: Iterable[Mapping[str, Any]], pci_device_ids: Sequence[Any] = ()
) -> GpuModel:
    """Build a catalog entry from what NVML reports for a GPU this catalog does not know.

    ``profiles``: one dict per GI profile the device supports, shaped like
    nvmlGpuInstanceProfileInfo_v2 plus its possible placements:
    ``{"name": "MIG 1g.5gb", "id": 19, "sliceCount": 1, "instanceCount": 7,
    "multiprocessorCount": 14, "memorySizeMB": 4864,
    "placements": [{"start": 0, "size": 1}, ...]}``.
    snake_case keys (slice_count, instance_count, multiprocessor_count, memory_size_mb) work too.
    Memory slices of the GPU = furthest placement end; compute slices = largest sliceCount.
    """
    built = []
    for index, info in enumerate(profiles):
        where = "profiles[%d]" % index
        try:
            name = str(_field(info, "name")).strip()
            if name.startswith("MIG "):
                name = name[len("MIG ") :]
            gi_id = info.get("id")
            gi_id = None if gi_id is None else _as_int(gi_id, "id")
            compute = _as_int(_field(info, "sliceCount", "slice_count"), "sliceCount")
            max_count = _as_int(_field(info, "instanceCount", "instance_count"), "instanceCount")
            placements = list(_field(info, "placements"))
            sms = info.get("multiprocessorCount", info.get("multiprocessor_count"))
            memory_mb = info.get("memorySizeMB", info.get("memory_size_mb"))
        except ValueError as exc:
            raise ValueError("%s: %s" % (where, exc)) from exc
        if not name or compute < 1 or max_count < 1 or not placements:
            # The driver lists profiles it cannot create (0 instances): nothing to plan with.
            continue
        starts = sorted({_as_int(_field(p, "start"), where + ".placements.start") for p in placements})
        sizes = {_as_int(_field(p, "size"), where + ".placements.size") for p in placements}
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError("%s (%s): placements must share one positive size, got %s" % (where, name, sorted(sizes)))
        built.append(
            MigProfile(
                name=name,
                gi_profile_id=gi_id,
                compute_slices=compute,
                memory_slices=sizes.pop(),
                start_slots=tuple(starts),
                max_count=max_count,
                media_extensions="+me" in name,
                memory_gib=None if memory_mb is None else round(float(memory_mb) / 1024, 2),
                sm_count=None if sms is None else int(sms),
            )
        )
    if not built:
        raise ValueError("no creatable MIG profile reported for %s" % gpu_name)
    names = [p.name for p in built]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError("duplicate profile names for %s: %s" % (gpu_name, ", ".join(duplicates)))
    built.sort(key=lambda p: (p.memory_slices, p.compute_slices, p.name))
    memory_slices = max(start + p.memory_slices for p in built for start in p.start_slots)
    gates = ()
    halves = {
        p.compute_slices: p.name for p in built if 2 * p.memory_slices == memory_slices and not p.media_extensions
    }
    if 3 in halves and 4 in halves:
        # The 8-slice scheme's rule, whatever the model: 4g + 3g together needs R510.
        gates = (DriverGate((halves[4], halves[3]), 510, "4g + 3g instances together need driver R510 or newer"),)
    return GpuModel(
        key=" ".join(str(gpu_name).split()),
        description="%s (read from NVML)" % gpu_name,
        memory_slices=memory_slices,
        compute_slices=max(p.compute_slices for p in built),
        profiles=tuple(built),
        nvml_names=(gpu_name,),
        pci_device_ids=tuple(parse_pci_device_id(d) for d in pci_device_ids),
        notes=("built at run time from NVML profile and placement data",),
        driver_gates=gates,
    )
