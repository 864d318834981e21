#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: cost_snapshot
short_description: What every GPU, MIG slice and shared replica costs, who uses it, what sits idle
version_added: 0.1.0
description:
  - Reads the cluster's Nodes and Pods through the kubernetes client, a page at a time
    (O(page_size)), with the MIG and sharing labels and resources the NVIDIA device plugin and
    GPU Feature Discovery publish.
  - Prices each node from dated sources, each reported with its C(as_of) and origin; nothing is a
    constant in code. Precedence per node - the node group's O(onprem_tco), the price file's
    C(node_groups), for spot nodes the EC2 spot price history of the node's zone (else the
    price file's C(spot_hourly)), the price file's C(instance_types), the AWS Pricing API
    (O(aws_pricing)).
  - Splits each node's hourly price into GPU, CPU and memory (the on-prem TCO gives the GPU part;
    otherwise by O(split_weights), the same ratio formula OpenCost uses), then gives each GPU's
    cost to what runs on it - a whole GPU to its pod, a MIG device by its share of the GPU's
    compute slices (C(1g) on a 7-slice GPU is 1/7), a time-sliced or MPS replica by the
    replicas. What is advertised but not requested, and MIG slices in no instance, are idle.
  - With O(prometheus_url), reads DCGM_FI_PROF_GR_ENGINE_ACTIVE and DCGM_FI_DEV_FB_USED per pod
    and DCGM_FI_DEV_POWER_USAGE per node over O(prometheus_window) - allocated-but-unused GPU cost,
    measured power in the TCO, and activity-based recommendations.
  - Rolls the costs up by namespace, by the pod labels in O(label_keys) and by node group; puts
    each pod's GPU cost beside what OpenCost's published formula gives and says why they differ
    (MIG, time-slicing); writes an OpenCost on-prem pricing CSV of the TCO prices.
  - Recommends savings (MIG right-sizing, more sharing replicas, spot, consolidation, reserved
    capacity for the steady on-demand baseline), each with
    its evidence, current and projected $/month, effort and the role variable to change.
  - Every option is checked before anything is read; bad input fails naming the option and what
    is allowed.
author:
  - gpuops.cluster developers (@gpuops)
extends_documentation_fragment:
  - gpuops.cluster.attributes
  - gpuops.cluster.aws
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode is the same run and RV(ignore:changed) is always false.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  price_file:
    description:
      - A YAML or JSON price file on the controller-side target - C(as_of) (date), C(source),
        C(currency) (C(USD)), C(instance_types) (type -> C(on_demand_hourly), C(spot_hourly)),
        C(node_groups) (group -> C(hourly), optional C(gpu_hourly) per GPU).
      - An instance type may list C(commitments) - Reserved Instance or Savings Plan rates, each
        with C(kind) (C(reserved-instance), C(savings-plan)), C(term) (C(1yr), C(3yr)),
        C(purchase_option) (C(No Upfront), C(Partial Upfront), C(All Upfront)), C(offering_class)
        (C(standard), C(convertible); for savings plans C(compute), C(ec2-instance)), C(hourly) and
        C(upfront) in USD.
    type: path
  aws_pricing:
    description:
      - Read on-demand prices from the AWS Pricing API (C(pricing.get_products)) and spot prices
        from EC2's C(describe_spot_price_history) for the cloud nodes' instance types.
    type: bool
    default: false
  pricing_region:
    description: The region of the Pricing API endpoint (it serves from us-east-1 and a few others).
    type: str
    default: us-east-1
  onprem_tco:
    description:
      - Per node group, the on-prem TCO - C(as_of), C(source), C(server_capex_usd),
        C(gpu_capex_usd) (per GPU), C(gpus_per_server), C(amortization_years), C(usd_per_kwh),
        and optionally C(gpu_tdp_watts) (per GPU), C(server_base_watts), C(pue) (default 1.0),
        C(opex_usd_per_year), C(rack_usd_per_month).
    type: dict
    default: {}
  split_weights:
    description:
      - Relative hourly weights that split a node price without a GPU part into GPU, CPU and
        memory - C(cpu_core_hourly), C(memory_gib_hourly), C(gpu_hourly), C(source). OpenCost's
        defaults (default.json) are 0.031611, 0.004237 and 0.95.
    type: dict
    required: true
  node_groups:
    description: Node group -> node names, from the inventory (wins over O(node_group_labels)).
    type: dict
    default: {}
  node_group_labels:
    description: Node labels that name a node's group, first found wins.
    type: list
    elements: str
    default: [gpuops.io/node-group, karpenter.sh/nodepool, eks.amazonaws.com/nodegroup]
  label_keys:
    description: Pod label keys to roll costs up by.
    type: list
    elements: str
    default: [team, cost-center]
  node_selector:
    description: Only nodes matching this label selector.
    type: str
  pod_selector:
    description: Only pods matching this label selector.
    type: str
  page_size:
    description: Objects per list call (C(limit)); the rest follows with C(continue).
    type: int
    default: 500
  prometheus_url:
    description: Prometheus base URL for GPU activity, framebuffer and power (dcgm-exporter metrics).
    type: str
  prometheus_window:
    description: The window to average over, as a Prometheus duration between 5m and 90d.
    type: str
    default: 1h
  low_activity:
    description: Mean GPU activity (0 to 1) under which a workload or pool counts as under-used.
    type: float
    default: 0.3
  reserved_min_age:
    description:
      - How long an on-demand node must have run (its creationTimestamp) and be in use to count
        as its node group's steady baseline, for reserved-capacity advice; hours or days, 1d to 365d.
      - The baseline is priced at the cheapest commitment rate (Reserved terms of the Pricing API
        with O(aws_pricing), the price file's C(commitments)) no longer than O(reserved_max_term).
    type: str
    default: 30d
  reserved_max_term:
    description: The longest commitment to recommend.
    type: str
    choices: [1yr, 3yr]
    default: 1yr
  interruption_tolerant_groups:
    description: Node groups whose workloads tolerate interruption (candidates for spot).
    type: list
    elements: str
    default: []
  cost_explorer:
    description:
      - Cross-check with AWS Cost Explorer (GetCostAndUsage, UnblendedCost, grouped by the
        cost-allocation tag C(tag_key)) between C(start) and C(end) (YYYY-MM-DD).
    type: dict
  include_pods:
    description: Return the per-pod rows (large clusters may want only the rollups).
    type: bool
    default: true
requirements:
  - kubernetes
  - boto3 (for O(aws_pricing) and O(cost_explorer))
"""

EXAMPLES = r"""
- name: Cost of the cluster with on-prem TCO and AWS prices
  gpuops.cluster.cost_snapshot:
    split_weights:
      cpu_core_hourly: 0.031611
      memory_gib_hourly: 0.004237
      gpu_hourly: 0.95
      source: OpenCost defaults
    aws_pricing: true
    region: us-east-1
    onprem_tco:
      onprem-a100:
        as_of: "2026-10-01"
        source: PO 4711
        server_capex_usd: 40000
        gpu_capex_usd: 15000
        gpus_per_server: 8
        amortization_years: 4
        gpu_tdp_watts: 400
        server_base_watts: 800
        usd_per_kwh: 0.12
        pue: 1.4
    prometheus_url: http://prometheus.monitoring:9090
    prometheus_window: 24h
  register: cost
"""

RETURN = r"""
totals:
  description: Hourly cost of all nodes, split into GPU, CPU and memory; monthly (730 h); allocated to pods.
  returned: success
  type: dict
idle:
  description:
    - Idle hourly cost (GPU by kind - whole, mig, time-slicing, unpartitioned; CPU; memory).
    - Allocated-but-unused GPU cost when Prometheus was read.
  returned: success
  type: dict
by_namespace:
  description: Cost per namespace.
  returned: success
  type: dict
by_label:
  description: Cost per value of each O(label_keys) key.
  returned: success
  type: dict
by_node_group:
  description: Cost, GPUs and idle GPU cost per node group.
  returned: success
  type: dict
idle_by_pool:
  description: Per node group and GPU resource, capacity, allocated and idle units with their hourly cost.
  returned: success
  type: dict
nodes:
  description: Per node, its price (source, as_of), split, GPU units with unit prices, idle.
  returned: success
  type: list
  elements: dict
pods:
  description: Per pod holding resources, its GPU, CPU and memory hourly cost, GPU activity.
  returned: success
  type: list
  elements: dict
price_sources:
  description: Every price source used, with its as_of date.
  returned: success
  type: list
  elements: str
opencost_comparison:
  description: Per GPU pod, our GPU cost and OpenCost's formula's, with the reason where they differ.
  returned: success
  type: dict
opencost_pricing_csv:
  description: OpenCost CSV-provider rows (node and gpu asset classes) for the on-prem nodes.
  returned: success
  type: str
recommendations:
  description:
    - Savings with category, subject, current/projected/savings $/month, effort, evidence.
    - The action names the role, node group, variable and value to set; a reserved-capacity one
      also the purchase (kind, instance type, count, term, purchase option, offering class).
    - C(alternatives) lists the other categories advised on the same node group (their savings
      do not add up).
  returned: success
  type: list
  elements: dict
savings_monthly_total:
  description:
    - Savings that can be had together ($/month) - per node group only the category that saves
      most counts, the others being alternatives on the same capacity.
  returned: success
  type: float
cost_explorer:
  description: Cost Explorer totals per tag value, when O(cost_explorer) was given.
  returned: success
  type: dict
counts:
  description: Nodes, pods holding resources and GPUs read.
  returned: success
  type: dict
"""

import json  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.aws.client import (  # noqa: E402
    AWS_ARGUMENT_SPEC,
    AWS_MUTUALLY_EXCLUSIVE,
    AwsClients,
    AwsSettingsError,
    connection_settings,
    error_summary,
)
from ansible_collections.gpuops.cluster.plugins.module_utils.cost import runner  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.cost._common import CostInputError  # noqa: E402
from ansible_collections.gpuops.cluster.plugins.module_utils.cost.prometheus import (  # noqa: E402
    Prometheus,
    PrometheusError,
)
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC  # noqa: E402
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule  # noqa: E402

MAX_PRICE_FILE = 4 * 1024 * 1024


def _load_price_file(path):
    import yaml

    with open(path, "rb") as handle:
        data = handle.read(MAX_PRICE_FILE + 1)
    if len(data) > MAX_PRICE_FILE:
        raise CostInputError("price_file", "%s is larger than 4 MiB" % path)
    try:
        return yaml.safe_load(data) if not path.endswith(".json") else json.loads(data)
    except ValueError as error:
        raise CostInputError("price_file", "%s is not valid JSON: %s" % (path, error)) from None
    except yaml.YAMLError as error:
        raise CostInputError("price_file", "%s is not valid YAML: %s" % (path, str(error).splitlines()[0])) from None


def main():
    spec = dict(
        price_file=dict(type="path"),
        aws_pricing=dict(type="bool", default=False),
        pricing_region=dict(type="str", default="us-east-1"),
        onprem_tco=dict(type="dict", default={}),
        split_weights=dict(type="dict", required=True),
        node_groups=dict(type="dict", default={}),
        node_group_labels=dict(
            type="list",
            elements="str",
            default=["gpuops.io/node-group", "karpenter.sh/nodepool", "eks.amazonaws.com/nodegroup"],
        ),
        label_keys=dict(type="list", elements="str", default=["team", "cost-center"], no_log=False),
        node_selector=dict(type="str"),
        pod_selector=dict(type="str"),
        page_size=dict(type="int", default=500),
        prometheus_url=dict(type="str"),
        prometheus_window=dict(type="str", default="1h"),
        low_activity=dict(type="float", default=0.3),
        reserved_min_age=dict(type="str", default="30d"),
        reserved_max_term=dict(type="str", default="1yr", choices=["1yr", "3yr"]),
        interruption_tolerant_groups=dict(type="list", elements="str", default=[]),
        cost_explorer=dict(type="dict"),
        include_pods=dict(type="bool", default=True),
    )
    spec.update(AWS_ARGUMENT_SPEC)
    spec.update(AUTH_ARG_SPEC)
    # kubernetes.core's module class: its client factory (get_api_client) reads the auth options.
    module = AnsibleK8SModule(
        module_class=AnsibleModule,
        argument_spec=spec,
        mutually_exclusive=AWS_MUTUALLY_EXCLUSIVE,
        supports_check_mode=True,
    )
    params = module.params

    def core_api():
        from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
        from kubernetes import client

        return client.CoreV1Api(get_api_client(module=module).client.client)

    aws_client = None
    if params["aws_pricing"] or params.get("cost_explorer"):
        try:
            clients = AwsClients(connection_settings(params))
        except AwsSettingsError as error:
            module.fail_json(msg=str(error))
        aws_client = clients.client
    prometheus = Prometheus(params["prometheus_url"]) if params.get("prometheus_url") else None
    try:
        result = runner.run(params, core_api, _load_price_file, aws_client, prometheus)
    except CostInputError as error:
        module.fail_json(msg=str(error), field=error.field)
    except (runner.SnapshotError, PrometheusError) as error:
        module.fail_json(msg=str(error))
    except Exception as error:  # kubernetes ApiException, botocore errors: one line, no request dump
        module.fail_json(msg="cost_snapshot failed: %s" % error_summary(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
