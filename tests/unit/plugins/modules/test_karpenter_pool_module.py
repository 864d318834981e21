"""karpenter_pool through AnsibleModule against the Kubernetes API stand-in and moto's EC2.

One stand-in (the sandbox's or upstream's Karpenter CRDs) and one moto server per module; each
test uses its own pool name. Bad inputs are table-driven: each must fail naming the option and
what is allowed, and leave no Karpenter object behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import simhost

REPO = Path(__file__).resolve().parents[4]
KUBE_PACKAGE_DIR = REPO / "sandbox" / "kube"
SHARED_CRDS = Path(os.environ.get("GPUOPS_SHARED_DIR") or REPO.parent / "shared") / "crds"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory):
    state = tmp_path_factory.mktemp("karpenter-kubeapi")
    config = state / "kubeconfig"
    command = [
        sys.executable,
        "-m",
        "gpuops_kubeapi",
        "serve",
        "--port",
        "0",
        "--state-dir",
        str(state),
        "--kubeconfig-out",
        str(config),
    ]
    if SHARED_CRDS.is_dir():
        command += ["--crds", str(SHARED_CRDS)]
    command += ["--crds", "sandbox"]
    env = dict(os.environ, PYTHONPATH=str(KUBE_PACKAGE_DIR))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    line = process.stdout.readline()
    assert "serving" in line, line
    yield str(config)
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def ec2_endpoint():
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = "http://%s:%d" % (host, port)
    import boto3

    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    for index, zone in enumerate(("us-east-1a", "us-east-1b")):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.%d.0/24" % index, AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        ec2.create_tags(Resources=[subnet], Tags=[{"Key": "karpenter.sh/discovery", "Value": "sandbox"}])
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _pool(**overrides):
    args = dict(
        name="p-" + uuid.uuid4().hex[:8],
        instance_types=["p4d.24xlarge"],
        capacity_types=["spot", "on-demand"],
        ami_alias="al2023@v20250505",
        role="KarpenterNodeRole-sandbox",
        subnet_selector=[{"tags": {"karpenter.sh/discovery": "sandbox"}}],
        security_group_selector=[{"tags": {"karpenter.sh/discovery": "sandbox"}}],
        termination_grace_period="24h",
        limits={"gpu": "64"},
    )
    args.update(overrides)
    return args


def _run(kubeconfig, endpoint, args, check_mode=False, diff=False):
    payload = dict(args, kubeconfig=kubeconfig, endpoint_url=endpoint, region=REGION)
    return simhost.run_module("karpenter_pool", payload, check_mode=check_mode, diff=diff)


def _objects(kubeconfig, name):
    """Every Karpenter object of pool ``name`` in the stand-in, as (kind, name)."""
    from kubernetes import client, config, dynamic

    api = dynamic.DynamicClient(config.new_client_from_config(config_file=kubeconfig))
    found = []
    for api_version, kind in (
        ("karpenter.sh/v1", "NodePool"),
        ("karpenter.k8s.aws/v1", "EC2NodeClass"),
        ("karpenter.sh/v1alpha1", "NodeOverlay"),
    ):
        items = api.resources.get(api_version=api_version, kind=kind).get(
            label_selector="gpuops.cluster/karpenter-pool=%s" % name
        )
        found += [(kind, item.metadata.name) for item in items.items]
    del client
    return sorted(found)


def test_mig_pool_check_apply_idempotent_absent(kubeconfig, ec2_endpoint):
    args = _pool(mig_layout={"1g.5gb": 7})
    name = args["name"]
    checked = _run(kubeconfig, ec2_endpoint, args, check_mode=True, diff=True)
    assert checked.get("failed") is not True, checked
    assert checked["changed"] is True
    assert _objects(kubeconfig, name) == [], "check mode must not create anything"
    first = _run(kubeconfig, ec2_endpoint, args, diff=True)
    assert first["changed"] is True, first
    assert _objects(kubeconfig, name) == sorted(
        [("EC2NodeClass", name), ("NodeOverlay", name + "-p4d-24xlarge"), ("NodePool", name)]
    )
    [instance] = first["instance_types"]
    assert (instance["name"], instance["gpu_count"], instance["gpu_name"], instance["gpu_memory_mib"]) == (
        "p4d.24xlarge",
        8,
        "a100",
        40960,
    )
    assert instance["advertised"] == {"nvidia.com/mig-1g.5gb": 56}
    assert first["node_overlays"][0]["spec"]["capacity"] == {"nvidia.com/mig-1g.5gb": "56"}
    assert first["node_pool"]["spec"]["disruption"] == {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": "10m",
        "budgets": [{"nodes": "10%"}],
    }
    assert set(instance["zones"]) <= {"us-east-1a", "us-east-1b"} and instance["zones"]
    assert [d["before_header"] for d in first["diff"]] == [
        "EC2NodeClass " + name,
        "NodeOverlay %s-p4d-24xlarge" % name,
        "NodePool " + name,
    ]
    second = _run(kubeconfig, ec2_endpoint, args, diff=True)
    assert second["changed"] is False, second.get("diff")
    # A change to one field changes the NodePool only; check mode predicts it exactly.
    bigger = dict(args, limits={"gpu": "128"})
    predicted = _run(kubeconfig, ec2_endpoint, bigger, check_mode=True, diff=True)
    assert predicted["changed"] is True and [d["before_header"] for d in predicted["diff"]] == ["NodePool " + name]
    assert _run(kubeconfig, ec2_endpoint, args)["changed"] is False
    applied = _run(kubeconfig, ec2_endpoint, bigger)
    assert applied["changed"] is True and applied["node_pool"]["spec"]["limits"] == {"nvidia.com/gpu": "128"}
    # Dropping MIG removes the overlay.
    plain = dict(bigger)
    plain.pop("mig_layout")
    dropped = _run(kubeconfig, ec2_endpoint, plain)
    assert dropped["changed"] is True and _objects(kubeconfig, name) == sorted(
        [("EC2NodeClass", name), ("NodePool", name)]
    )
    gone_check = _run(kubeconfig, ec2_endpoint, {"name": name, "state": "absent"}, check_mode=True)
    assert gone_check["changed"] is True and len(_objects(kubeconfig, name)) == 2
    gone = _run(kubeconfig, ec2_endpoint, {"name": name, "state": "absent"})
    assert gone["changed"] is True and _objects(kubeconfig, name) == []
    assert _run(kubeconfig, ec2_endpoint, {"name": name, "state": "absent"})["changed"] is False


def test_gpu_requirements_resolve_and_warn(kubeconfig, ec2_endpoint):
    args = _pool(
        instance_types=None,
        instance_families=["g5"],
        gpu_count_min=4,
        limits={"gpu": "2"},
        taints=[],
        termination_grace_period=None,
        user_data="#!/bin/bash\ndnf install -y nvidia-driver\n",
    )
    result = _run(kubeconfig, ec2_endpoint, args)
    assert result.get("failed") is not True, result
    names = [i["name"] for i in result["instance_types"]]
    assert names and all(n.startswith("g5.") for n in names)
    assert all(i["gpu_count"] >= 4 and i["gpu_name"] == "a10g" for i in result["instance_types"])
    warnings = " ".join(w if isinstance(w, str) else str(w) for w in result.get("warnings", []))
    for needle in (
        "no nvidia.com/gpu taint",
        "without termination_grace_period",
        "limits: smaller than one",
        "installs an NVIDIA driver",
    ):
        assert needle in warnings
    requirements = result["node_pool"]["spec"]["template"]["spec"]["requirements"]
    assert {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["3"]} in requirements
    _run(kubeconfig, ec2_endpoint, {"name": args["name"], "state": "absent"})


def test_interruption_queue_and_rules(kubeconfig, ec2_endpoint):
    import boto3

    args = _pool(interruption_queue="karpenter-sandbox")
    checked = _run(kubeconfig, ec2_endpoint, args, check_mode=True)
    assert checked.get("failed") is not True, checked
    assert checked["changed"] is True and checked["interruption_queue"]["changes"][0] == "queue karpenter-sandbox"
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=ec2_endpoint)
    assert "karpenter-sandbox" not in " ".join(sqs.list_queues().get("QueueUrls") or [])
    first = _run(kubeconfig, ec2_endpoint, args)
    assert first["karpenter_settings"] == {"interruptionQueue": "karpenter-sandbox"}
    events = boto3.client("events", region_name=REGION, endpoint_url=ec2_endpoint)
    rules = {r["Name"]: r for r in events.list_rules(NamePrefix="karpenter-sandbox-")["Rules"]}
    assert sorted(rules) == sorted(
        "karpenter-sandbox-" + s
        for s in ("ScheduledChangeRule", "SpotInterruptionRule", "RebalanceRule", "InstanceStateChangeRule")
    )
    spot = json.loads(rules["karpenter-sandbox-SpotInterruptionRule"]["EventPattern"])
    assert spot == {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}
    targets = events.list_targets_by_rule(Rule="karpenter-sandbox-SpotInterruptionRule")["Targets"]
    assert [t["Arn"] for t in targets] == [first["interruption_queue"]["arn"]]
    again = _run(kubeconfig, ec2_endpoint, args)
    assert again["changed"] is False and again["interruption_queue"]["changes"] == []
    _run(kubeconfig, ec2_endpoint, {"name": args["name"], "state": "absent"})


GOOD = {"tags": {"karpenter.sh/discovery": "sandbox"}}

# (case id, overrides of a good pool, needles the message must contain)
BAD = [
    ("name-upper", {"name": "GPU_Pool"}, ["name:", "DNS label"]),
    ("no-gpu-selection", {"instance_types": None}, ["instance_types, instance_families or gpu_names", "at least one"]),
    ("type-malformed", {"instance_types": ["p4d"]}, ["instance_types[0]", "instance type like p4d.24xlarge"]),
    ("type-unknown", {"instance_types": ["p9.99xlarge"]}, ["instance_types[0]: p9.99xlarge does not exist"]),
    (
        "type-no-gpu",
        {"instance_types": ["m5.large"]},
        ["instance_types[0]: m5.large has no NVIDIA GPU", "p4d.24xlarge"],
    ),
    (
        "type-too-few-gpus",
        {"instance_types": ["g5.xlarge"], "gpu_count_min": 4},
        ["instance_types[0]: g5.xlarge has 1 x a10g", "gpu_count_min 4"],
    ),
    (
        "family-empty",
        {"instance_types": None, "instance_families": ["zz9"]},
        ["instance_families[0]: zz9 has no instance types"],
    ),
    ("capacity-bad", {"capacity_types": ["preemptible"]}, ["capacity_types[0]", "allowed: reserved, spot, on-demand"]),
    ("capacity-twice", {"capacity_types": ["spot", "spot"]}, ["capacity_types", "twice"]),
    (
        "legacy-consolidation",
        {"consolidation_policy": "WhenUnderutilized"},
        ["consolidation_policy", "WhenEmptyOrUnderutilized", "v1beta1"],
    ),
    (
        "consolidation-bad",
        {"consolidation_policy": "Always"},
        ["consolidation_policy", "allowed: WhenEmpty, WhenEmptyOrUnderutilized"],
    ),
    ("consolidate-after-bad", {"consolidate_after": "10 minutes"}, ["consolidate_after", "30s, 10m, 1h or Never"]),
    (
        "legacy-ttl",
        {"node_pool_spec": {"ttlSecondsAfterEmpty": 30}},
        ["node_pool_spec.ttlSecondsAfterEmpty", "v1: consolidation_policy: WhenEmpty"],
    ),
    (
        "legacy-ttl-expired",
        {"node_pool_spec": {"ttlSecondsUntilExpired": 3600}},
        ["ttlSecondsUntilExpired", "v1: expire_after"],
    ),
    (
        "legacy-provider-ref",
        {"node_pool_spec": {"providerRef": {"name": "x"}}},
        ["providerRef", "v1alpha5 Provisioner", "nodeClassRef"],
    ),
    (
        "legacy-nodeclassref",
        {"node_pool_spec": {"template": {"spec": {"nodeClassRef": {"name": "x"}}}}},
        ["nodeClassRef", "group: karpenter.k8s.aws, kind: EC2NodeClass"],
    ),
    (
        "legacy-kubelet-in-pool",
        {"node_pool_spec": {"template": {"spec": {"kubelet": {"maxPods": 10}}}}},
        ["template.spec.kubelet", "EC2NodeClass spec.kubelet"],
    ),
    ("legacy-provisioner", {"api_version": "karpenter.sh/v1alpha5"}, ["Unsupported parameters", "api_version"]),
    (
        "budget-schedule-alone",
        {"budgets": [{"nodes": "1", "schedule": "@daily"}]},
        ["budgets[0]", "'schedule' must be set with 'duration'"],
    ),
    ("budget-nodes-bad", {"budgets": [{"nodes": "150%"}]}, ["budgets[0].nodes", "10%"]),
    (
        "budget-reason-bad",
        {"budgets": [{"nodes": "0", "reasons": ["Expired"]}]},
        ["budgets[0].reasons[0]", "allowed: Underutilized, Empty, Drifted"],
    ),
    ("expire-bad", {"expire_after": "30d"}, ["expire_after", "720h or Never"]),
    ("grace-bad", {"termination_grace_period": "Never"}, ["termination_grace_period", "30m or 48h"]),
    (
        "taint-effect",
        {"taints": [{"key": "nvidia.com/gpu", "effect": "NoExec"}]},
        ["taints[0].effect", "allowed: NoSchedule, PreferNoSchedule, NoExecute"],
    ),
    (
        "label-restricted",
        {"labels": {"karpenter.sh/custom": "x"}},
        ["labels[karpenter.sh/custom]", 'label domain "karpenter.sh" is restricted'],
    ),
    ("label-hostname", {"labels": {"kubernetes.io/hostname": "x"}}, ["kubernetes.io/hostname", "restricted"]),
    (
        "requirement-in-empty",
        {"requirements": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": []}]},
        ["requirements[", "'In' must have a value"],
    ),
    (
        "requirement-gt-text",
        {"requirements": [{"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["four"]}]},
        ["single positive integer"],
    ),
    (
        "requirement-operator",
        {"requirements": [{"key": "a/b", "operator": "Like", "values": ["x"]}]},
        ["operator", "allowed: In, NotIn, Exists"],
    ),
    (
        "requirement-aws-domain",
        {"requirements": [{"key": "karpenter.k8s.aws/made-up", "operator": "Exists"}]},
        ['label domain "karpenter.k8s.aws" is restricted'],
    ),
    ("ami-latest", {"ami_alias": "al2023@latest"}, ["ami_alias", "pin a version", "allow_latest_ami"]),
    ("ami-unpinned", {"ami_alias": "al2023@2025"}, ["ami_alias: version", "vYYYYMMDD"]),
    ("ami-family-bad", {"ami_alias": "ubuntu@v20250505"}, ["ami_alias family", "allowed: al2, al2023, bottlerocket"]),
    ("ami-family-mismatch", {"ami_family": "Bottlerocket"}, ["ami_family", "'AL2023' or 'Custom'"]),
    ("ami-missing", {"ami_alias": None}, ["ami_alias: required", "al2023@v"]),
    ("role-and-profile", {"instance_profile": "x"}, ["mutually exclusive", "role", "instance_profile"]),
    ("role-neither", {"role": None}, ["exactly one of ['role', 'instance_profile']"]),
    ("subnet-empty", {"subnet_selector": []}, ["subnet_selector: required", "id or tags"]),
    (
        "subnet-id-and-tags",
        {"subnet_selector": [{"id": "subnet-0abc", "tags": {"a": "b"}}]},
        ["subnet_selector[0]", "'id' is mutually exclusive"],
    ),
    (
        "subnet-nowhere",
        {"subnet_selector": [{"tags": {"karpenter.sh/discovery": "nowhere"}}]},
        ["not offered in the zones", "no subnet matched"],
    ),
    (
        "sg-bad-key",
        {"security_group_selector": [{"arn": "x"}]},
        ["security_group_selector[0].arn", "allowed: id, name, tags"],
    ),
    (
        "tag-restricted",
        {"tags": {"kubernetes.io/cluster/prod": "owned"}},
        ["tags.kubernetes.io/cluster/prod", "restricted"],
    ),
    ("limit-unknown", {"limits": {"gpu": "8", "gpus": "8"}}, ["limits", "gpus"]),
    ("limit-bad", {"limits": {"gpu": "eight"}}, ["limits.gpu", "quantity"]),
    ("weight-range", {"weight": 0}, ["weight", "allowed: 1-100"]),
    (
        "volume-size",
        {"block_device_mappings": [{"device_name": "/dev/xvda", "volume_size": "100TB"}]},
        ["block_device_mappings[0].volume_size", "1Gi-59000Gi"],
    ),
    (
        "volume-no-size",
        {"block_device_mappings": [{"device_name": "/dev/xvda", "volume_type": "gp3"}]},
        ["snapshotID or volumeSize"],
    ),
    (
        "two-roots",
        {
            "block_device_mappings": [
                {"device_name": "/dev/xvda", "volume_size": "100Gi", "root_volume": True},
                {"device_name": "/dev/xvdb", "volume_size": "100Gi", "root_volume": True},
            ]
        },
        ["only one entry with root_volume"],
    ),
    (
        "mig-on-a10g",
        {"instance_types": ["g5.xlarge"], "mig_layout": {"1g.5gb": 1}},
        ["mig_layout: instance type g5.xlarge has a10g GPUs", "do not support MIG"],
    ),
    ("mig-wrong-profile", {"mig_layout": {"1g.10gb": 7}}, ["mig_layout: on p4d.24xlarge (A100-40GB)", "1g.5gb"]),
    ("mig-too-many", {"mig_layout": {"3g.20gb": 3}}, ["mig_layout: on p4d.24xlarge"]),
    ("mig-profile-garbage", {"mig_layout": {"big": 1}}, ["mig_layout: 'big' is not a MIG profile"]),
    (
        "sharing-bad",
        {
            "sharing_config": {
                "version": "v1",
                "sharing": {"timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": 1}]}},
            }
        },
        ["sharing_config.sharing.timeSlicing.resources[0].replicas", ">= 2"],
    ),
    (
        "mig-without-ec2",
        {"mig_layout": {"1g.5gb": 7}, "validate_instance_types": False},
        ["validate_instance_types: must be true"],
    ),
    ("kubelet-bad", {"kubelet": {"maxPods": "many"}}, ["kubelet.maxPods", "non-negative integer"]),
    ("queue-name-bad", {"interruption_queue": "karpenter queue!"}, ["interruption_queue", "letters, digits"]),
    ("raw-class-role", {"node_class_spec": {"role": "x"}}, ["node_class_spec.role", "use the module's own option"]),
]


@pytest.mark.parametrize("case, overrides, needles", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_refused_before_any_change(kubeconfig, ec2_endpoint, case, overrides, needles):
    args = _pool(**overrides)
    args = {k: v for k, v in args.items() if v is not None}
    result = _run(kubeconfig, ec2_endpoint, args)
    assert result.get("failed") is True, (case, result)
    for needle in needles:
        assert needle in result["msg"], (case, needle, result["msg"])
    assert result.get("changed") in (None, False)
    assert _objects(kubeconfig, args["name"]) == [], case
