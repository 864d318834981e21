"""pytest setup for the MIG unit tests: the collection and this folder's helpers on sys.path."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLLECTIONS = HERE.parents[2] / "build" / "collections"

for path in (COLLECTIONS, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
