"""What `make demo` prints after site.yml: each layer's result, read back from the sandbox itself
(the Kubernetes API stand-in, its Prometheus, the report files), not from the playbook's output.

    python sandbox/demo_summary.py --dir .sandbox --reports reports
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

PRIVILEGED_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "demo-privileged", "namespace": "ml-serving"},
    "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]},
}


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - 127.0.0.1 only
        return json.load(response)


def security(api) -> list[str]:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api)
    lines = []
    for ns in core.list_namespace().items:
        level = (ns.metadata.labels or {}).get("pod-security.kubernetes.io/enforce")
        if level:
            lines.append(f"namespace {ns.metadata.name}: Pod Security enforce={level}")
    policies = client.NetworkingV1Api(api).list_network_policy_for_all_namespaces().items
    lines.append(f"{len(policies)} NetworkPolicies (default deny, DNS, declared allows)")
    quotas = core.list_resource_quota_for_all_namespaces().items
    gpu = sorted({key for quota in quotas for key in (quota.spec.hard or {}) if "nvidia.com" in key})
    lines.append(f"{len(quotas)} ResourceQuotas on {', '.join(gpu) or 'no GPU resource'}")
    try:
        core.create_namespaced_pod("ml-serving", PRIVILEGED_POD, dry_run="All")
        lines.append("a privileged pod in ml-serving was ACCEPTED (it should be refused)")
    except ApiException as exc:
        message = json.loads(exc.body).get("message", exc.reason) if exc.body else exc.reason
        lines.append(f"a privileged pod in ml-serving is refused: {message}")
    return lines


def alerts(prometheus_url: str, timeout: float = 60.0) -> list[str]:
    """Firing alerts, after giving the rules written by the monitoring role one evaluation."""
    deadline = time.monotonic() + timeout
    while True:
        found = _get(prometheus_url + "/api/v1/alerts")["data"]["alerts"]
        firing = [alert for alert in found if alert["state"] == "firing"]
        if firing or time.monotonic() > deadline:
            break
        time.sleep(2)
    rules = sum(len(group["rules"]) for group in _get(prometheus_url + "/api/v1/rules")["data"]["groups"])
    lines = [f"Prometheus {prometheus_url}: {rules} rules loaded, {len(firing)} alert(s) firing"]
    for alert in sorted(firing, key=lambda a: (a["labels"].get("alertname", ""), a["labels"].get("host", ""))):
        lines.append(f"FIRING {alert['labels'].get('alertname')}: {alert['annotations'].get('summary', '')}")
    for alert in found:
        if alert["state"] == "pending":
            where = alert["labels"].get("host") or alert["labels"].get("node") or alert["labels"].get("instance", "")
            lines.append(f"pending (firing once its `for:` has passed) {alert['labels'].get('alertname')}: {where}")
    return lines


def autoscaling(api) -> list[str]:
    from kubernetes import client, dynamic
    from kubernetes.client.rest import ApiException

    dyn = dynamic.DynamicClient(api)
    lines = []

    def items(api_version, kind, namespace=None):
        try:
            return dyn.resources.get(api_version=api_version, kind=kind).get(namespace=namespace).items
        except ApiException:
            return []

    for pool in items("karpenter.sh/v1", "NodePool"):
        limits = dict(pool.spec.limits or {})
        lines.append(
            f"Karpenter NodePool {pool.metadata.name}: limits {limits}, "
            f"consolidation {pool.spec.disruption.consolidationPolicy}"
        )
    for overlay in items("karpenter.sh/v1alpha1", "NodeOverlay"):
        lines.append(f"NodeOverlay {overlay.metadata.name}: capacity {dict(overlay.spec.capacity or {})}")
    hpas = {
        h.metadata.name: h
        for h in client.AutoscalingV2Api(api).list_horizontal_pod_autoscaler_for_all_namespaces().items
    }
    for scaled in items("keda.sh/v1alpha1", "ScaledObject"):
        conditions = {c["type"]: c["status"] for c in (scaled.status or {}).get("conditions", [])}
        hpa = hpas.get(f"keda-hpa-{scaled.metadata.name}")
        replicas = f"{hpa.status.current_replicas}->{hpa.status.desired_replicas}" if hpa and hpa.status else "?"
        lines.append(
            f"KEDA ScaledObject {scaled.metadata.namespace}/{scaled.metadata.name}: Ready={conditions.get('Ready')} "
            f"Active={conditions.get('Active')}, HPA replicas {replicas}, triggers "
            f"{[t['metadata'].get('query', '')[:60] for t in scaled.spec.triggers]}"
        )
    for md in items("cluster.x-k8s.io/v1beta2", "MachineDeployment"):
        notes = md.metadata.annotations or {}
        low = notes.get("cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size")
        high = notes.get("cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size")
        gpus = notes.get("capacity.cluster-autoscaler.kubernetes.io/gpu-count")
        lines.append(
            f"MachineDeployment {md.metadata.namespace}/{md.metadata.name}: cluster-autoscaler "
            f"{low}..{high} nodes, {gpus} GPUs each from zero"
        )
    return lines


def backups(api) -> list[str]:
    from kubernetes import dynamic

    dyn = dynamic.DynamicClient(api)
    lines = []
    for bsl in (
        dyn.resources.get(api_version="velero.io/v1", kind="BackupStorageLocation").get(namespace="velero").items
    ):
        where = f"s3://{bsl.spec.objectStorage.bucket}/{bsl.spec.objectStorage.prefix}"
        lines.append(f"BackupStorageLocation {bsl.metadata.name}: {(bsl.status or {}).get('phase')} ({where})")
    for schedule in dyn.resources.get(api_version="velero.io/v1", kind="Schedule").get(namespace="velero").items:
        lines.append(
            f"Schedule {schedule.metadata.name}: '{schedule.spec.schedule}', ttl {schedule.spec.template.ttl}, "
            f"last backup {(schedule.status or {}).get('lastBackup')}"
        )
    for backup in dyn.resources.get(api_version="velero.io/v1", kind="Backup").get(namespace="velero").items:
        status = backup.status or {}
        progress = status.get("progress") or {}
        lines.append(
            f"Backup {backup.metadata.name}: {status.get('phase')}, {progress.get('itemsBackedUp')} items, "
            f"expires {status.get('expiration')}"
        )
    return lines


def drill(reports: Path) -> list[str]:
    found = sorted((reports / "dr-drill").glob("*.txt"))
    if not found:
        return [f"no drill report under {reports / 'dr-drill'}"]
    return [*found[-1].read_text().splitlines(), f"report: {found[-1]} (and .json)"]


def cost(reports: Path) -> list[str]:
    path = reports / "cost" / "cost.json"
    if not path.exists():
        return [f"no cost report at {path}"]
    report = json.loads(path.read_text())
    totals = report.get("totals", {})
    hours = totals["monthly"] / totals["hourly"] if totals.get("hourly") else 0
    idle = sum(group.get("idle_gpu_hourly", 0) for group in report.get("by_node_group", {}).values()) * hours
    lines = [f"cluster {totals.get('monthly', 0):,.2f} $/month, of which idle GPUs {idle:,.2f} $/month"]
    for namespace, entry in sorted(report.get("by_namespace", {}).items()):
        lines.append(f"  namespace {namespace}: {entry['monthly']:,.2f} $/month ({entry['pods']} pod(s))")
    for item in report.get("recommendations", [])[:5]:
        action = item.get("action") or {}
        change = f"{action.get('role')}: {action.get('variable')}={action.get('value')}" if action else ""
        lines.append(
            f"  save {item.get('savings_monthly', 0):,.2f} $/month: {item.get('category')} {item.get('subject', '')}"
            f" ({item.get('effort')} effort; {change}{', then ' + action['then'] if action.get('then') else ''})"
        )
    lines.append(f"report: {reports / 'cost' / 'cost.html'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox/demo_summary.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--dir", type=Path, default=Path(".sandbox"))
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    from kubernetes import config

    services = json.loads((args.dir / "services.json").read_text())
    api = config.new_client_from_config(config_file=str(args.dir / "kube" / "kubeconfig"))
    sections = [
        ("Security baseline", lambda: security(api)),
        ("Monitoring: alerts in the sandbox's Prometheus", lambda: alerts(services["prometheus_url"])),
        ("Autoscaling", lambda: autoscaling(api)),
        ("Backups (Velero stand-in, S3 in the AWS stand-in)", lambda: backups(api)),
        ("DR drill", lambda: drill(args.reports)),
        ("Cost", lambda: cost(args.reports)),
    ]
    try:
        for title, section in sections:
            print(f"\n== {title}")
            for line in section():
                print(f"  {line}")
    finally:
        api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
