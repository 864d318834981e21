"""Where the stand-in's CustomResourceDefinitions come from.

The sandbox carries a schema of its own for every custom kind it serves (data/crds/, written for
gpuops.cluster, marked `gpuops.cluster/schema-source: sandbox`), so it stands on its own. Where
the upstream CRDs are at hand (the team's shared/crds folder, GPUOPS_SHARED_DIR), they are loaded
first and win: a sandbox CRD is only created for a name upstream does not provide.
"""

from __future__ import annotations

import glob
import os

SANDBOX = "sandbox"
SANDBOX_CRDS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "crds")


def resolve(location: str) -> str:
    """A --crds / --operator-crds argument as a path: the word `sandbox` names data/crds."""
    return SANDBOX_CRDS_DIR if location == SANDBOX else location


def crd_files(location: str) -> list[str]:
    """A CRD file, or every *.yaml / *.yml file of a directory, sorted."""
    location = resolve(location)
    if os.path.isfile(location):
        return [location]
    return sorted(
        glob.glob(os.path.join(location, "*.yaml")) + glob.glob(os.path.join(location, "*.yml"))
    )


def sandbox_file(file_name: str) -> str:
    """The sandbox's own CRD file of that name (upstream's file naming: <group>_<plural>.yaml)."""
    return os.path.join(SANDBOX_CRDS_DIR, file_name)
