"""Pure logic of module_utils/karpenter: rendering, CEL rules, version gating, overlays."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter import cel, gate, render
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter._common import KarpenterPoolError
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.runner import plan
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.spec import validate_params

REPO = Path(__file__).resolve().parents[5]
SHARED_CRDS = Path(os.environ.get("GPUOPS_SHARED_DIR") or REPO.parent / "shared") / "crds"
SANDBOX_CRDS = REPO / "sandbox" / "kube" / "gpuops_kubeapi" / "data" / "crds"
P4D = dict(
    name="p4d.24xlarge",
    gpu_count=8,
    gpu_name="a100",
    gpu_memory_mib=40960,
    gpu_manufacturer="nvidia",
    vcpus=96,
    memory_mib=1179648,
)
P5 = dict(
    name="p5.48xlarge",
    gpu_count=8,
    gpu_name="h100",
    gpu_memory_mib=81920,
    gpu_manufacturer="nvidia",
    vcpus=192,
    memory_mib=2097152,
)
SHARING = {
    "version": "v1",
    "sharing": {"timeSlicing": {"renameByDefault": True, "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}},
}


def _params(**overrides):
    params = dict(
        name="gpu",
        instance_types=["p4d.24xlarge", "p5.48xlarge"],
        ami_alias="al2023@v20250505",
        role="R",
        subnet_selector=[{"tags": {"k": "v"}}],
        security_group_selector=[{"id": "sg-0abc"}],
        budgets=[{"nodes": "0", "schedule": "0 9 * * mon-fri", "duration": "8h", "reasons": ["Underutilized"]}],
        block_device_mappings=[
            {"device_name": "/dev/xvda", "volume_size": "200Gi", "volume_type": "gp3", "root_volume": True}
        ],
        kubelet={"maxPods": 110, "systemReserved": {"cpu": "500m"}},
        tags={"team": "ml"},
        labels={"gpuops.io/pool": "gpu"},
        limits={"cpu": "1000", "memory": "4Ti", "gpu": "64"},
        weight=50,
    )
    params.update(overrides)
    return params


def _crd(folder, name):
    return yaml.safe_load((folder / name).read_text())


@pytest.mark.parametrize("folder", [SHARED_CRDS, SANDBOX_CRDS], ids=["upstream", "sandbox"])
def test_rendered_objects_pass_the_crd_schemas_and_gates(folder):
    if not folder.is_dir():
        pytest.skip("CRDs not found at %s (set GPUOPS_SHARED_DIR)" % folder)
    import jsonschema

    pool, klass, overlays = plan(validate_params(_params(mig_layout={"3g.20gb": 2})), [P4D])
    assert overlays and overlays[0]["spec"]["capacity"] == {"nvidia.com/mig-3g.20gb": "16"}
    files = {
        "NodePool": "karpenter.sh_nodepools.yaml",
        "EC2NodeClass": "karpenter.k8s.aws_ec2nodeclasses.yaml",
        "NodeOverlay": "karpenter.sh_nodeoverlays.yaml",
    }
    for obj in [pool, klass] + overlays:
        crd = _crd(folder, files[obj["kind"]])
        assert gate.gate_problems(obj, crd) == []
        schema = gate.served_schema(crd, obj["apiVersion"].split("/")[1])
        jsonschema.validate(obj["spec"], schema["properties"]["spec"])


def test_h100_mig_and_renamed_sharing_overlays():
    spec = validate_params(_params(mig_layout={"1g.10gb": 7}))
    with pytest.raises(KarpenterPoolError, match=r"mig_layout: on p4d.24xlarge \(A100-40GB\).*1g.5gb"):
        plan(spec, [P4D, P5])
    _pool, _klass, overlays = plan(spec, [P5])
    assert overlays[0]["metadata"]["name"] == "gpu-p5-48xlarge"
    assert overlays[0]["spec"]["capacity"] == {"nvidia.com/mig-1g.10gb": "56"}
    shared = validate_params(_params(sharing_config=SHARING))
    _pool, _klass, overlays = plan(shared, [P4D])
    assert overlays[0]["spec"]["capacity"] == {"nvidia.com/gpu.shared": "32"}
    assert render.advertised_resources(shared, P4D) == {"nvidia.com/gpu.shared": 32}
    unrenamed = copy.deepcopy(SHARING)
    unrenamed["sharing"]["timeSlicing"]["renameByDefault"] = False
    _pool, _klass, overlays = plan(validate_params(_params(sharing_config=unrenamed)), [P4D])
    assert overlays == []


def test_gate_names_what_an_older_karpenter_lacks():
    pool, _klass, overlays = plan(validate_params(_params(mig_layout={"7g.40gb": 1})), [P4D])
    assert (
        "NodeOverlay: the cluster does not serve the CRD nodeoverlays.karpenter.sh"
        in gate.gate_problems(overlays[0], None)[0]
    )
    old = {"spec": {"versions": [{"name": "v1beta1", "served": True, "schema": {"openAPIV3Schema": {}}}]}}
    assert "serves nodepools.karpenter.sh versions v1beta1, not v1" in gate.gate_problems(pool, old)[0]
    crd = _crd(SANDBOX_CRDS, "karpenter.sh_nodepools.yaml")
    schema = gate.served_schema(crd, "v1")
    disruption = schema["properties"]["spec"]["properties"]["disruption"]["properties"]
    disruption["consolidationPolicy"]["enum"] = ["WhenEmpty", "WhenEmptyOrUnderutilized"]
    del schema["properties"]["spec"]["properties"]["weight"]
    balanced = plan(validate_params(_params(consolidation_policy="Balanced")), [P4D])[0]
    problems = gate.gate_problems(balanced, crd)
    assert any("consolidationPolicy: 'Balanced' is not served" in p for p in problems), problems
    assert any("NodePool spec.weight: not a field of the Karpenter version the cluster serves" in p for p in problems)


def test_update_rules_and_static_pools():
    pool = plan(validate_params(_params()), [P4D])[0]
    changed = copy.deepcopy(pool)
    changed["spec"]["template"]["spec"]["nodeClassRef"]["kind"] = "OtherNodeClass"
    assert "nodeClassRef.kind is immutable" in cel.nodepool_update_problems(pool, changed)[0]
    static = copy.deepcopy(pool)
    static["spec"]["replicas"] = 2
    assert "Cannot transition NodePool between static" in cel.nodepool_update_problems(pool, static)[0]
    problems = cel.nodepool_problems(static)
    assert any("only 'limits.nodes' is supported on static NodePools" in p for p in problems)
    assert any("'weight' is not supported on static NodePools" in p for p in problems)


def test_nodeclass_and_overlay_cel_rules():
    klass = plan(validate_params(_params()), [P4D])[1]
    both = copy.deepcopy(klass)
    both["spec"]["instanceProfile"] = "p"
    assert cel.nodeclass_problems(both) == [
        "EC2NodeClass spec: must specify exactly one of ['role', 'instanceProfile']"
    ]
    no_alias = copy.deepcopy(klass)
    no_alias["spec"]["amiSelectorTerms"] = [{"id": "ami-123"}]
    assert "must specify amiFamily" in cel.nodeclass_problems(no_alias)[0]
    overlay = {
        "kind": "NodeOverlay",
        "metadata": {"name": "o"},
        "spec": {
            "capacity": {"memory": "1Gi"},
            "price": "1",
            "priceAdjustment": "+1",
            "requirements": [{"key": "a/b", "operator": "NotIn", "values": []}],
        },
    }
    problems = cel.overlay_problems(overlay)
    assert len(problems) == 3 and "invalid resource restricted" in " ".join(problems)


def test_validation_of_100_specs_is_fast_enough_to_be_pure():
    specs = [_params(name="pool-%d" % i, weight=1 + i % 100) for i in range(100)]
    planned = [plan(validate_params(p), [P4D, P5]) for p in specs]
    assert len({p[0]["metadata"]["name"] for p in planned}) == 100
