"""What a real site has before site.yml runs, for the sandbox: the state that other tools own.

    python sandbox/seed.py --dir .sandbox     # after services.py up and kube-up; safe to re-run

In the AWS stand-in (moto, from DIR/services.json):
  - a VPC with two subnets and a security group tagged `karpenter.sh/discovery: gpuops-sandbox`
    (Terraform's job on a real account), which the autoscaling layer's Karpenter pool selects;
  - the S3 bucket the backups layer's BackupStorageLocation points at.
In the Kubernetes API stand-in (DIR/kube/kubeconfig):
  - Velero's namespace (Velero itself is installed out of band; its stand-in controller runs);
  - a Cluster API MachineDeployment for on-prem burst capacity (CAPI owns it; the autoscaling
    layer only annotates it for cluster-autoscaler);
  - an inference Deployment (`llm` in ml-serving, on a MIG slice of the H100 group), which the
    autoscaling layer scales with KEDA and the cost layer prices. Its pod satisfies the
    `restricted` Pod Security level the security layer enforces on ml-serving.

Each object is created only when absent, so re-running changes nothing; services.json then
carries a `seeded` entry, which the sandbox inventory reads to switch the layers that need it
on. Nothing here is read by a real inventory.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DISCOVERY_TAG = {"Key": "karpenter.sh/discovery", "Value": "gpuops-sandbox"}
BUCKET = "gpuops-sandbox-backups"
REGION = "us-east-1"
ZONES = ("us-east-1a", "us-east-1b")

NAMESPACES = ("velero", "capi-system", "ml-serving")

MACHINE_DEPLOYMENT = {
    "apiVersion": "cluster.x-k8s.io/v1beta2",
    "kind": "MachineDeployment",
    "metadata": {"name": "ng-a100-burst", "namespace": "capi-system"},
    "spec": {
        "clusterName": "gpuops-sandbox",
        "replicas": 0,
        "selector": {"matchLabels": {"gpuops.io/node-group": "ng_a100_train"}},
        "template": {
            "metadata": {"labels": {"gpuops.io/node-group": "ng_a100_train"}},
            "spec": {
                "clusterName": "gpuops-sandbox",
                "bootstrap": {"dataSecretName": "ng-a100-burst-bootstrap"},
                "infrastructureRef": {
                    "apiGroup": "infrastructure.cluster.x-k8s.io",
                    "kind": "Metal3MachineTemplate",
                    "name": "ng-a100-burst",
                },
            },
        },
    },
}

RESTRICTED_CONTAINER_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}

INFERENCE_DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "llm",
        "namespace": "ml-serving",
        "labels": {"app.kubernetes.io/name": "llm", "app.kubernetes.io/component": "model-server"},
    },
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "llm"}},
        "template": {
            "metadata": {
                "labels": {
                    "app.kubernetes.io/name": "llm",
                    "app.kubernetes.io/component": "model-server",
                    "team": "search",
                    "cost-center": "cc-1042",
                }
            },
            "spec": {
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 1000,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [
                    {
                        "name": "server",
                        "image": "registry.example/llm-server:1.0",
                        "ports": [{"containerPort": 8080}],
                        "securityContext": RESTRICTED_CONTAINER_CONTEXT,
                        "resources": {
                            "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/mig-2g.20gb": "1"},
                            "limits": {"memory": "8Gi", "nvidia.com/mig-2g.20gb": "1"},
                        },
                    }
                ],
            },
        },
    },
}


def seed_aws(endpoint: str, env: dict[str, str]) -> dict:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    ec2 = session.client("ec2", endpoint_url=endpoint)
    tagged = [{"Name": "tag:karpenter.sh/discovery", "Values": [DISCOVERY_TAG["Value"]]}]
    subnets = ec2.describe_subnets(Filters=tagged)["Subnets"]
    if not subnets:
        vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
        for index, zone in enumerate(ZONES):
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{index}.0/24", AvailabilityZone=zone)
            ec2.create_tags(Resources=[subnet["Subnet"]["SubnetId"]], Tags=[DISCOVERY_TAG])
        group = ec2.create_security_group(GroupName="gpuops-sandbox-nodes", Description="nodes", VpcId=vpc)
        ec2.create_tags(Resources=[group["GroupId"]], Tags=[DISCOVERY_TAG])
        subnets = ec2.describe_subnets(Filters=tagged)["Subnets"]
    s3 = session.client("s3", endpoint_url=endpoint)
    if BUCKET not in [bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=BUCKET)
    return {"subnets": sorted(subnet["SubnetId"] for subnet in subnets), "bucket": BUCKET}


def seed_kube(kubeconfig: Path) -> list[str]:
    from kubernetes import client, config, dynamic
    from kubernetes.client.rest import ApiException

    api = config.new_client_from_config(config_file=str(kubeconfig))
    created = []
    try:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        existing = {item.metadata.name for item in core.list_namespace().items}
        for name in NAMESPACES:
            if name not in existing:
                core.create_namespace({"metadata": {"name": name}})
                created.append(f"Namespace/{name}")
        mds = dynamic.DynamicClient(api).resources.get(api_version="cluster.x-k8s.io/v1beta2", kind="MachineDeployment")
        meta = MACHINE_DEPLOYMENT["metadata"]
        try:
            mds.get(name=meta["name"], namespace=meta["namespace"])
        except ApiException as exc:
            if exc.status != 404:
                raise
            mds.create(body=MACHINE_DEPLOYMENT, namespace=meta["namespace"])
            created.append(f"MachineDeployment/{meta['namespace']}/{meta['name']}")
        meta = INFERENCE_DEPLOYMENT["metadata"]
        try:
            apps.read_namespaced_deployment(meta["name"], meta["namespace"])
        except ApiException as exc:
            if exc.status != 404:
                raise
            apps.create_namespaced_deployment(meta["namespace"], INFERENCE_DEPLOYMENT)
            created.append(f"Deployment/{meta['namespace']}/{meta['name']}")
    finally:
        api.close()
    return created


def seed(sandbox_dir: Path, kubeconfig: Path | None = None) -> dict:
    services_file = sandbox_dir / "services.json"
    services = json.loads(services_file.read_text())
    aws = seed_aws(services["aws_endpoint"], services["aws_env"])
    created = seed_kube(kubeconfig or sandbox_dir / "kube" / "kubeconfig")
    services["seeded"] = {"aws": aws, "namespaces": list(NAMESPACES)}
    services_file.write_text(json.dumps(services, indent=2) + "\n")
    return {"aws": aws, "created": created}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox/seed.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--dir", type=Path, default=Path(".sandbox"), help="the sandbox folder")
    args = parser.parse_args(argv)
    try:
        result = seed(args.dir.resolve())
    except (OSError, ValueError, KeyError) as exc:
        print(f"seed: {exc} (run sandbox/services.py up and tools/kube-up.sh first)", file=sys.stderr)
        return 1
    for line in result["created"]:
        print(f"seed: created {line}")
    print(f"seed: AWS subnets {', '.join(result['aws']['subnets'])}; bucket {result['aws']['bucket']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
