"""The GPU Operator's ClusterPolicy as the tests of both tiers create it in the Kubernetes API
stand-in: a minimal spec (the driver off, the other components with empty settings, the MIG
manager with an empty default config), to which a test adds what it needs. The unit tier
(tests/unit/kube_api/conftest.py) puts tests/helpers on sys.path; the integration tests that use this
module add it themselves."""

from __future__ import annotations

BASE_POLICY = {
    "operator": {},
    "daemonsets": {},
    "dcgm": {},
    "dcgmExporter": {},
    "devicePlugin": {},
    "driver": {"enabled": False},
    "gfd": {},
    "nodeStatusExporter": {},
    "toolkit": {},
    "migManager": {"config": {"default": ""}},
}


def cluster_policy(**spec) -> dict:
    """The ClusterPolicy `cluster-policy` (nvidia.com/v1): BASE_POLICY with the top-level spec
    fields in `spec` set over it."""
    return {
        "apiVersion": "nvidia.com/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "cluster-policy"},
        "spec": {**BASE_POLICY, **spec},
    }
