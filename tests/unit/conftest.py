"""Shared pytest setup for the unit tests.

The collection is importable as ``ansible_collections.gpuops.cluster`` through the link that
``make collection`` keeps at build/collections/ansible_collections/gpuops/cluster (-> repo root).
The NVML simulator is not put on the path here: tests that want it add sandbox/python
themselves, so that no test gets the simulator for ``pynvml`` by accident.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "build" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "gpuops" / "cluster"

if not (LINK / "galaxy.yml").is_file():
    raise RuntimeError(f"{LINK} is missing: run `make collection` first")

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
