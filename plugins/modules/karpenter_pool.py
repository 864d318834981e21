#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: karpenter_pool
short_description: Manage one Karpenter GPU pool (NodePool, EC2NodeClass, NodeOverlays) as one unit
version_added: 0.1.0
description:
  - Manages a GPU node pool for Karpenter on AWS as one unit, a C(karpenter.sh/v1) NodePool and its
    C(karpenter.k8s.aws/v1) EC2NodeClass of the same name, plus one C(karpenter.sh/v1alpha1)
    NodeOverlay per instance type when the pool's nodes will advertise MIG profiles
    (O(mig_layout)) or renamed shared GPUs (O(sharing_config)), so Karpenter provisions nodes
    for pods that ask for C(nvidia.com/mig-1g.10gb) and the like.
  - Before any change, every option is validated (errors name the option and the allowed
    values), the rules the upstream CRDs state in CEL are checked, every instance type is looked up
    in EC2 (DescribeInstanceTypes, DescribeInstanceTypeOfferings, DescribeSubnets) for existence,
    GPUs and zones of the selected subnets, and the objects are checked against the CRD schemas
    the cluster serves (the Karpenter version there). A refused pool changes nothing.
  - Shapes of older Karpenter APIs (Provisioner, C(ttlSecondsAfterEmpty), v1beta1
    C(nodeClassRef) with only a name, C(WhenUnderutilized)) are refused with the v1 equivalent.
  - Objects are written with server-side apply under O(field_manager); check mode is a server
    dry-run; C(changed) is true only when an object changes.
extends_documentation_fragment:
  - gpuops.cluster.attributes
  - gpuops.cluster.aws
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    details: Server-side dry-run of every apply and delete; the result shows the objects as they would be.
  diff_mode:
    support: full
    details: Each changed object before and after (managedFields, resourceVersion and status left out).
  platform:
    platforms: posix
options:
  name:
    description: Name of the pool, its NodePool and its EC2NodeClass (a DNS label).
    type: str
    required: true
  state:
    description: C(absent) deletes the NodePool (Karpenter drains its nodes), its NodeOverlays and its EC2NodeClass.
    type: str
    choices: [present, absent]
    default: present
  instance_types:
    description: EC2 instance types the pool may launch (C(node.kubernetes.io/instance-type)).
    type: list
    elements: str
  instance_families:
    description: EC2 instance families the pool may launch (C(karpenter.k8s.aws/instance-family)), like C(p5), C(g6e).
    type: list
    elements: str
  gpu_names:
    description: GPU names (C(karpenter.k8s.aws/instance-gpu-name)) like C(a100), C(h100), C(l40s).
    type: list
    elements: str
  gpu_count_min:
    description: Least GPUs per instance.
    type: int
  gpu_memory_min_mib:
    description: Least memory per GPU, MiB.
    type: int
  capacity_types:
    description: Capacity types the pool may use; Karpenter takes reserved, then spot, then on-demand by price.
    type: list
    elements: str
    default: [on-demand]
  requirements:
    description:
      - More NodePool requirements (C(key), C(operator), C(values), C(minValues)), checked with the CRD's rules.
    type: list
    elements: dict
  limits:
    description: Most the pool may hold in total.
    type: dict
    suboptions:
      cpu:
        description: CPU cores (a quantity).
        type: str
      memory:
        description: Memory (a quantity like C(2Ti)).
        type: str
      gpu:
        description: GPUs (C(nvidia.com/gpu)).
        type: str
  weight:
    description: Priority of this pool among pools that fit a pod (1-100).
    type: int
  consolidation_policy:
    description:
      - C(WhenEmpty), C(WhenEmptyOrUnderutilized) or C(Balanced) (where the cluster's Karpenter serves it).
      - Defaults to C(WhenEmpty), which never moves a running GPU pod.
    type: str
    default: WhenEmpty
  consolidate_after:
    description: How long a node stays empty/underutilized before consolidation (always emitted).
    type: str
    default: 10m
  budgets:
    description: Disruption budgets (C(nodes), C(schedule) with C(duration), C(reasons)).
    type: list
    elements: dict
  expire_after:
    description: Node lifetime (C(Never) for none).
    type: str
    default: 720h
  termination_grace_period:
    description: Longest a node drains before it is terminated, do-not-disrupt pods included.
    type: str
  taints:
    description:
      - Node taints. Defaults to C(nvidia.com/gpu=true:NoSchedule); C([]) for none (with a warning).
    type: list
    elements: dict
  startup_taints:
    description: Taints removed by a daemon once the node is ready.
    type: list
    elements: dict
  labels:
    description: Labels of the pool's nodes.
    type: dict
  kubelet:
    description: EC2NodeClass kubelet settings (C(maxPods), C(systemReserved), C(kubeReserved), C(evictionHard)...).
    type: dict
  block_device_mappings:
    description: EBS volumes of the nodes.
    type: list
    elements: dict
    suboptions:
      device_name:
        description: Device, like C(/dev/xvda).
        type: str
        required: true
      root_volume:
        description: Whether this is the root volume.
        type: bool
      volume_size:
        description: Size like C(200Gi).
        type: str
      volume_type:
        description: EBS volume type.
        type: str
      iops:
        description: IOPS.
        type: int
      throughput:
        description: Throughput MiB/s.
        type: int
      encrypted:
        description: Encrypt the volume.
        type: bool
      kms_key_id:
        description: KMS key.
        type: str
      delete_on_termination:
        description: Delete with the instance.
        type: bool
      snapshot_id:
        description: Snapshot to restore.
        type: str
  ami_alias:
    description:
      - AMI alias pinned to a release, like C(al2023@v20250505). Required with O(state=present).
      - C(family@latest) is refused unless O(allow_latest_ami=true) (every release would replace the nodes).
    type: str
  allow_latest_ami:
    description: Accept an O(ami_alias) ending in C(@latest).
    type: bool
    default: false
  ami_family:
    description: AMI family (must match the alias family, or C(Custom)).
    type: str
  role:
    description: IAM role of the nodes (exactly one of O(role) and O(instance_profile)).
    type: str
  instance_profile:
    description: IAM instance profile of the nodes.
    type: str
  subnet_selector:
    description: Subnet selector terms (C(id) or C(tags)).
    type: list
    elements: dict
  security_group_selector:
    description: Security group selector terms (C(id), C(name) or C(tags)).
    type: list
    elements: dict
  tags:
    description: Tags of the instances, volumes and launch templates (cost allocation).
    type: dict
  user_data:
    description: User data of the nodes, merged by Karpenter with its own.
    type: str
  gpu_operator_driver:
    description: Whether the GPU Operator installs the driver (a driver in O(user_data) is warned about then).
    type: bool
    default: true
  mig_layout:
    description:
      - "The node group's MIG layout, C({profile: count}) per GPU, as the C(gpuops.cluster.mig) role takes it."
      - Checked against each instance type's GPU model; NodeOverlays add the MIG resources.
    type: dict
  mig_strategy:
    description: The GPU Operator's MIG strategy.
    type: str
    choices: [mixed, single]
    default: mixed
  sharing_config:
    description:
      - The node group's device plugin sharing config (v1, C(timeSlicing) or C(mps)), as the
        C(gpuops.cluster.gpu_sharing) role renders it.
    type: dict
  node_pool_spec:
    description: More NodePool spec fields, merged over the rendered ones and checked with the CRD's rules.
    type: dict
  node_class_spec:
    description: More EC2NodeClass spec fields (those without an option here), merged over the rendered ones.
    type: dict
  interruption_queue:
    description:
      - Name of the SQS queue Karpenter reads interruption events from. When given, the queue
        (300 s retention, SSE, a policy for EventBridge) and the EventBridge rules for spot
        interruption warnings, rebalance recommendations, instance state changes and AWS Health
        scheduled changes are created or corrected with boto3; RV(karpenter_settings) gives the
        Karpenter setting to pass (C(settings.interruptionQueue)).
    type: str
  validate_instance_types:
    description: Look the instance types up in EC2. Required with O(mig_layout) or O(sharing_config).
    type: bool
    default: true
  field_manager:
    description: Server-side apply field manager.
    type: str
    default: gpuops-karpenter-pool
  force_conflicts:
    description: Take over fields another manager owns.
    type: bool
    default: false
notes:
  - A NodeOverlay can only add resources; Karpenter keeps C(nvidia.com/gpu) at the instance type's
    GPU count, so MIG C(single) strategy and un-renamed time-slicing are planned with whole GPUs (warned).
seealso:
  - module: kubernetes.core.k8s
author:
  - gpuops.cluster developers (@gpuops)
"""

EXAMPLES = r"""
- name: A100 pool for MIG inference, spot first
  gpuops.cluster.karpenter_pool:
    name: a100-mig
    instance_types: [p4d.24xlarge]
    capacity_types: [spot, on-demand]
    limits: {gpu: "32"}
    ami_alias: al2023@v20250505
    role: KarpenterNodeRole-prod
    subnet_selector: [{tags: {karpenter.sh/discovery: prod}}]
    security_group_selector: [{tags: {karpenter.sh/discovery: prod}}]
    termination_grace_period: 24h
    mig_layout: {1g.5gb: 7}
    tags: {team: ml, cost-center: "4711"}
"""

RETURN = r"""
node_pool:
  description: The NodePool as the server returned it.
  returned: state is present
  type: dict
node_class:
  description: The EC2NodeClass as the server returned it.
  returned: state is present
  type: dict
node_overlays:
  description: The NodeOverlays, one per instance type whose nodes advertise MIG or shared resources.
  returned: always
  type: list
  elements: dict
instance_types:
  description:
    - The resolved instance types with C(name), C(gpu_count), C(gpu_name), C(gpu_manufacturer),
      C(gpu_memory_mib), C(vcpus), C(memory_mib), C(zones) (offered in the subnets' zones) and
      C(advertised) (GPU resources a node will advertise).
  returned: always
  type: list
  elements: dict
interruption_queue:
  description: The queue (C(name), C(url), C(arn)), its rules and what was changed.
  returned: when interruption_queue is given
  type: dict
karpenter_settings:
  description: Karpenter settings this pool relies on (C(interruptionQueue)).
  returned: when interruption_queue is given
  type: dict
subnet_zones:
  description: Zones of the subnets the node class selects.
  returned: when instance types were validated
  type: list
  elements: str
"""

import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.aws.client import (  # noqa: E402
    AWS_ARGUMENT_SPEC,
    AWS_MUTUALLY_EXCLUSIVE,
    AwsClients,
    AwsSettingsError,
    connection_settings,
    error_summary,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter._common import KarpenterPoolError  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.kube import HAS_K8S, KubeAccess  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.runner import run  # noqa: E402

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
except ImportError:  # pragma: no cover - depends on the host
    AUTH_ARG_SPEC = {}

BLOCK_DEVICE_OPTIONS = dict(
    device_name=dict(type="str", required=True),
    root_volume=dict(type="bool"),
    volume_size=dict(type="str"),
    volume_type=dict(type="str"),
    iops=dict(type="int"),
    throughput=dict(type="int"),
    encrypted=dict(type="bool"),
    kms_key_id=dict(type="str"),
    delete_on_termination=dict(type="bool"),
    snapshot_id=dict(type="str"),
)

POOL_OPTIONS = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    instance_types=dict(type="list", elements="str"),
    instance_families=dict(type="list", elements="str"),
    gpu_names=dict(type="list", elements="str"),
    gpu_count_min=dict(type="int"),
    gpu_memory_min_mib=dict(type="int"),
    capacity_types=dict(type="list", elements="str", default=["on-demand"]),
    requirements=dict(type="list", elements="dict"),
    limits=dict(type="dict", options=dict(cpu=dict(type="str"), memory=dict(type="str"), gpu=dict(type="str"))),
    weight=dict(type="int"),
    consolidation_policy=dict(type="str", default="WhenEmpty"),
    consolidate_after=dict(type="str", default="10m"),
    budgets=dict(type="list", elements="dict"),
    expire_after=dict(type="str", default="720h"),
    termination_grace_period=dict(type="str"),
    taints=dict(type="list", elements="dict"),
    startup_taints=dict(type="list", elements="dict"),
    labels=dict(type="dict"),
    kubelet=dict(type="dict"),
    block_device_mappings=dict(type="list", elements="dict", options=BLOCK_DEVICE_OPTIONS),
    ami_alias=dict(type="str"),
    allow_latest_ami=dict(type="bool", default=False),
    ami_family=dict(type="str"),
    role=dict(type="str"),
    instance_profile=dict(type="str"),
    subnet_selector=dict(type="list", elements="dict"),
    security_group_selector=dict(type="list", elements="dict"),
    tags=dict(type="dict"),
    user_data=dict(type="str"),
    gpu_operator_driver=dict(type="bool", default=True),
    mig_layout=dict(type="dict"),
    mig_strategy=dict(type="str", choices=["mixed", "single"], default="mixed"),
    sharing_config=dict(type="dict"),
    node_pool_spec=dict(type="dict"),
    node_class_spec=dict(type="dict"),
    interruption_queue=dict(type="str"),
    validate_instance_types=dict(type="bool", default=True),
    field_manager=dict(type="str", default="gpuops-karpenter-pool"),
    force_conflicts=dict(type="bool", default=False),
)


def main():
    argument_spec = dict(AUTH_ARG_SPEC)
    argument_spec.update(AWS_ARGUMENT_SPEC)
    argument_spec.update(POOL_OPTIONS)
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=list(AWS_MUTUALLY_EXCLUSIVE) + [("role", "instance_profile")],
        supports_check_mode=True,
    )
    if not HAS_K8S:
        module.fail_json(msg=missing_required_lib("kubernetes (and the kubernetes.core collection)"))
    params = module.params

    def kube_factory():
        auth = {key: params.get(key) for key in AUTH_ARG_SPEC}
        return KubeAccess(auth, params["field_manager"], params["force_conflicts"], module.check_mode)

    aws = {}

    def aws_factory(service):
        if "clients" not in aws:
            aws["clients"] = AwsClients(connection_settings(params))
        return aws["clients"].client(service)

    def ec2_factory():
        return aws_factory("ec2")

    try:
        result = run(params, kube_factory, ec2_factory, module.check_mode, aws_factory)
    except (KarpenterPoolError, AwsSettingsError) as exc:
        module.fail_json(msg="%s; nothing changed" % exc)
    except Exception as exc:  # boto3 / Kubernetes API errors: the reason, never the request
        module.fail_json(
            msg="karpenter_pool %s: %s" % (params["name"], error_summary(exc)), exception=traceback.format_exc()
        )
    for warning in result.pop("warnings"):
        module.warn(warning)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
