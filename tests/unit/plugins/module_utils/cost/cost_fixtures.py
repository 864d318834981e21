"""Data shared by the cost tests (a module name no other test folder uses): the hand-built
mixed cluster of issue 14 section 3, as the API would return its objects.

- cloud-od: p4d.24xlarge on-demand, 8 whole A100-40GB (96 cores, 1152 GiB)
- cloud-spot: p4d.24xlarge spot in us-east-1a, 8 whole A100-40GB
- onprem-a100: 2 A100-40GB, MIG mixed: GPU 0 as 3g.20gb + 2g.10gb + 1g.5gb x2, GPU 1 whole
- onprem-h100: 1 H100 80GB time-sliced x4 (no renameByDefault)
- cpu-1: m5.xlarge on-demand, no GPU
"""

GPU_LABELS = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}


def node(name, labels, cpu, memory, extra):
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110", **extra}
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"capacity": dict(allocatable), "allocatable": allocatable},
    }


def pod(namespace, name, node_name, requests, labels=None, phase="Running", limits=None):
    resources = {"requests": requests}
    if limits:
        resources["limits"] = limits
    return {
        "metadata": {"namespace": namespace, "name": name, "labels": labels or {}},
        "spec": {"nodeName": node_name, "containers": [{"name": "main", "resources": resources}]},
        "status": {"phase": phase},
    }


def mixed_nodes_data():
    cloud = {
        "node.kubernetes.io/instance-type": "p4d.24xlarge",
        "topology.kubernetes.io/zone": "us-east-1a",
        "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/gpu.sharing-strategy": "none",
        **GPU_LABELS,
    }
    return [
        node(
            "cloud-od",
            {**cloud, "karpenter.sh/capacity-type": "on-demand", "karpenter.sh/nodepool": "train"},
            "96",
            "1152Gi",
            {"nvidia.com/gpu": "8"},
        ),
        node(
            "cloud-spot",
            {**cloud, "karpenter.sh/capacity-type": "spot", "karpenter.sh/nodepool": "batch"},
            "96",
            "1152Gi",
            {"nvidia.com/gpu": "8"},
        ),
        node(
            "onprem-a100",
            {
                **GPU_LABELS,
                "nvidia.com/gpu.count": "2",
                "nvidia.com/mig.strategy": "mixed",
                "gpuops.io/node-group": "onprem-a100",
            },
            "64",
            "512Gi",
            {
                "nvidia.com/gpu": "1",
                "nvidia.com/mig-3g.20gb": "1",
                "nvidia.com/mig-2g.10gb": "1",
                "nvidia.com/mig-1g.5gb": "2",
            },
        ),
        node(
            "onprem-h100",
            {
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-SHARED",
                "nvidia.com/gpu.count": "1",
                "nvidia.com/gpu.replicas": "4",
                "nvidia.com/gpu.sharing-strategy": "time-slicing",
                "gpuops.io/node-group": "inference",
            },
            "32",
            "256Gi",
            {"nvidia.com/gpu": "4"},
        ),
        node(
            "cpu-1",
            {
                "node.kubernetes.io/instance-type": "m5.xlarge",
                "eks.amazonaws.com/capacityType": "ON_DEMAND",
                "eks.amazonaws.com/nodegroup": "system",
            },
            "4",
            "16Gi",
            {},
        ),
    ]


def team(name):
    return {"team": name}


def mixed_pods_data():
    return [
        pod("train", "llm-0", "cloud-od", {"cpu": "12", "memory": "144Gi", "nvidia.com/gpu": "2"}, team("ml")),
        pod("train", "llm-1", "cloud-od", {"cpu": "12", "memory": "144Gi"}, team("ml"), limits={"nvidia.com/gpu": "2"}),
        pod(
            "batch", "sweep-0", "cloud-spot", {"cpu": "24", "memory": "288Gi", "nvidia.com/gpu": "4"}, team("research")
        ),
        pod(
            "dev",
            "notebook-a",
            "onprem-a100",
            {"cpu": "4", "memory": "32Gi", "nvidia.com/mig-3g.20gb": "1"},
            team("research"),
        ),
        pod(
            "dev", "notebook-b", "onprem-a100", {"cpu": "2", "memory": "16Gi", "nvidia.com/mig-1g.5gb": "1"}, team("ml")
        ),
        pod("dev", "finetune", "onprem-a100", {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"}, team("ml")),
        pod("serve", "api-0", "onprem-h100", {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}, team("web")),
        pod("serve", "api-1", "onprem-h100", {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}, team("web")),
        pod("serve", "api-2", "onprem-h100", {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}, team("web")),
        pod("kube-system", "coredns", "cpu-1", {"cpu": "500m", "memory": "512Mi"}),
        pod(
            "train",
            "done",
            "cloud-od",
            {"cpu": "12", "memory": "1Gi", "nvidia.com/gpu": "1"},
            team("ml"),
            phase="Succeeded",
        ),
    ]


# Real-shaped get_products PriceList entries (JSON strings, as the API returns them).
P4D_PRICE_ITEM = {
    "product": {
        "productFamily": "Compute Instance",
        "sku": "H7NADMHPFTEKPPVK",
        "attributes": {
            "instanceType": "p4d.24xlarge",
            "regionCode": "us-east-1",
            "location": "US East (N. Virginia)",
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
            "gpu": "8",
            "vcpu": "96",
            "memory": "1152 GiB",
        },
    },
    "serviceCode": "AmazonEC2",
    "terms": {
        "OnDemand": {
            "H7NADMHPFTEKPPVK.JRTCKXETXF": {
                "priceDimensions": {
                    "H7NADMHPFTEKPPVK.JRTCKXETXF.6YS6EN2CT7": {
                        "unit": "Hrs",
                        "endRange": "Inf",
                        "description": "$32.7726 per On Demand Linux p4d.24xlarge Instance Hour",
                        "appliesTo": [],
                        "rateCode": "H7NADMHPFTEKPPVK.JRTCKXETXF.6YS6EN2CT7",
                        "beginRange": "0",
                        "pricePerUnit": {"USD": "32.7726000000"},
                    }
                },
                "sku": "H7NADMHPFTEKPPVK",
                "effectiveDate": "2026-11-01T00:00:00Z",
                "offerTermCode": "JRTCKXETXF",
                "termAttributes": {},
            }
        }
    },
    "version": "20261101000000",
    "publicationDate": "2026-11-01T00:00:00Z",
}


def _reserved_term(sku, code, length, option, offering, hourly, upfront, effective="2026-11-01T00:00:00Z"):
    """One terms.Reserved entry as get_products returns it: the rate codes 6YS6EN2CT7 (the
    hourly fee, unit Hrs) and 2TG2D8R56U (the upfront fee, unit Quantity)."""
    dimensions = {
        "%s.%s.6YS6EN2CT7" % (sku, code): {
            "unit": "Hrs",
            "endRange": "Inf",
            "description": "USD %s per Linux/UNIX (Amazon VPC), p4d.24xlarge reserved instance applied" % hourly,
            "appliesTo": [],
            "rateCode": "%s.%s.6YS6EN2CT7" % (sku, code),
            "beginRange": "0",
            "pricePerUnit": {"USD": "%.10f" % hourly},
        }
    }
    if upfront is not None:
        dimensions["%s.%s.2TG2D8R56U" % (sku, code)] = {
            "unit": "Quantity",
            "description": "Upfront Fee",
            "appliesTo": [],
            "rateCode": "%s.%s.2TG2D8R56U" % (sku, code),
            "pricePerUnit": {"USD": "%d" % upfront},
        }
    return {
        "priceDimensions": dimensions,
        "sku": sku,
        "effectiveDate": effective,
        "offerTermCode": code,
        "termAttributes": {"LeaseContractLength": length, "OfferingClass": offering, "PurchaseOption": option},
    }


# The same product with its Reserved terms, as one get_products item carries both (test data,
# shaped like the real answer; the figures are this fixture's own).
P4D_RESERVED_TERMS = {
    "H7NADMHPFTEKPPVK.%s" % code: _reserved_term("H7NADMHPFTEKPPVK", code, *rest)
    for code, *rest in (
        ("4NA7Y494T4", "1yr", "No Upfront", "standard", 20.5620, None),
        ("HU7G6KETJZ", "1yr", "Partial Upfront", "standard", 9.8220, 86040),
        ("6QCMYABX3D", "1yr", "All Upfront", "standard", 0.0, 168620),
        ("7NE97W5U4E", "1yr", "No Upfront", "convertible", 24.1180, None),
        ("BPH4J8HBKS", "3yr", "No Upfront", "standard", 14.0340, None),
        ("NQ3QZPMQV9", "3yr", "All Upfront", "standard", 0.0, 312070),
        ("Z2E3P23VKM", "3yr", "Heavy Utilization", "standard", 3.0, 100000),
    )
}
P4D_PRICE_ITEM_RESERVED = dict(P4D_PRICE_ITEM, terms=dict(P4D_PRICE_ITEM["terms"], Reserved=P4D_RESERVED_TERMS))
