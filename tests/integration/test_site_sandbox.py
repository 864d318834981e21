"""playbooks/site.yml end to end against the sandbox fleet: check mode exact, every layer's
result, idempotence.

Expectations are derived from the fixtures (what each simulated host really has), not from
the collection's own output.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from pathlib import Path

import yaml
from change_records import changes, recording_env
from conftest import REPO_ROOT, crd_sources, load_fixture, run_playbook, sandbox_services

SITE = REPO_ROOT / "playbooks" / "site.yml"
# Every layer of site.yml: about 4 min a run on 2 idle CPUs; a safety net, not a target.
SITE_TIMEOUT = 1500
GPU_MODELS = yaml.safe_load((REPO_ROOT / "sandbox" / "python" / "gpuops_sim" / "data" / "gpu_models.yml").read_text())


def expected_host(fixture_name: str) -> dict:
    fixture = load_fixture(fixture_name)
    gpus = fixture.get("gpus") or []
    driver_state = (fixture.get("driver") or {}).get("state", "none")
    if not gpus:
        source = "none"
    elif driver_state == "loaded":
        source = "nvml"
    else:
        source = "pci"
    lost = sum(1 for gpu in gpus if any(f.get("error") == "GPU_IS_LOST" for f in gpu.get("faults") or []))
    models = Counter(GPU_MODELS[gpu["model"]]["nvml_name"] for gpu in gpus)
    return {
        "count": len(gpus),
        "source": source,
        "lost": lost,
        "models": dict(models),
        "driver_state": driver_state,
        "nvswitches": len(fixture.get("nvswitches") or []),
    }


def test_site_check_mode_predicts_the_run_every_layer_lands_and_a_second_run_changes_nothing(sandbox, world, tmp_path):
    """One sandbox for the whole story, a site.yml run being the costliest thing in this tier:
    --check predicts, host by host and object by object, what the real run then changes (and
    itself changes no GPU and writes no report); the real run's results are read back; a second
    run changes nothing. `world` is the sandbox as `make sandbox-up` brings it up (services,
    seeded objects), so every layer runs, with no shared/ folder's CRDs: the run is also the
    proof that site.yml stands on its own."""
    kube = world
    states = sorted((sandbox["dir"] / "hosts").glob("*/nvml-state.json"))
    before = {str(p): p.read_bytes() for p in states}
    check = run_playbook(
        SITE,
        "--check",
        "--diff",
        env={**sandbox["env"], **kube.env, **recording_env(tmp_path / "check.jsonl")},
        timeout=SITE_TIMEOUT,
    )
    assert check.rc == 0, check
    assert {str(p): p.read_bytes() for p in states} == before  # check mode changed no GPU
    assert not sandbox["reports"].exists()  # and wrote no report
    # The probe itself still ran (it supports check mode) and the report would be written.
    assert check.recap["localhost"]["changed"] > 0, check
    predicted = changes(tmp_path / "check.jsonl")

    run = run_playbook(
        SITE, env={**sandbox["env"], **kube.env, **recording_env(tmp_path / "real.jsonl")}, timeout=SITE_TIMEOUT
    )
    assert run.rc == 0, run
    done = changes(tmp_path / "real.jsonl")
    assert sorted(predicted) == sorted(done), (sorted(predicted), sorted(done))
    for host in sorted(done):
        assert predicted[host] == done[host], (
            host,
            "predicted, not done: %s" % sorted(predicted[host] - done[host], key=str),
            "done, not predicted: %s" % sorted(done[host] - predicted[host], key=str),
        )
    # And per host, check mode reported a change exactly where the real run made one.
    assert {h: c["changed"] > 0 for h, c in check.recap.items()} == {h: c["changed"] > 0 for h, c in run.recap.items()}

    assert run.recap["localhost"]["changed"] > 0, run  # the report was written
    recap = run.recap
    assert set(sandbox["fixtures"]) <= set(recap), run
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()), run

    report = json.loads((sandbox["reports"] / "fleet.json").read_text())
    by_name = {entry["name"]: entry for entry in report["hosts"]}
    assert set(by_name) == set(sandbox["fixtures"])
    for host, fixture_name in sandbox["fixtures"].items():
        want, got = expected_host(fixture_name), by_name[host]
        assert got["probed"], host
        assert got["gpu_count"] == want["count"], host
        assert got["source"] == want["source"], host
        assert got["driver"]["state"] == want["driver_state"], host
        assert got["nvswitch_count"] == want["nvswitches"], host
        if want["source"] == "nvml":
            assert got["models"] == want["models"], host
            assert got["health"]["unhealthy"] == want["lost"], host
            assert got["health"]["healthy"] + got["health"]["degraded"] == want["count"] - want["lost"], host
        if want["source"] == "pci":
            assert got["health"]["unknown"] == want["count"], host
            assert got["nvml_reason"], host

    assert report["totals"]["gpus"] == sum(expected_host(f)["count"] for f in sandbox["fixtures"].values())
    table = (sandbox["reports"] / "fleet.txt").read_text()
    for host in sandbox["fixtures"]:
        assert host in table
    # The lost GPU is named in the problems section with its host.
    lost_hosts = [h for h, f in sandbox["fixtures"].items() if expected_host(f)["lost"]]
    assert lost_hosts
    for host in lost_hosts:
        assert any(line.strip().startswith("- %s GPU" % host) and "unhealthy" in line for line in table.splitlines()), (
            table
        )

    check_cluster_layers(sandbox, kube, lost_hosts)

    # Second run: nothing changes, the report is not rewritten.
    report_file = sandbox["reports"] / "fleet.json"
    mtime = report_file.stat().st_mtime_ns
    cost_before = json.loads((sandbox["reports"] / "cost" / "cost.json").read_text())
    second = run_playbook(
        SITE, env={**sandbox["env"], **kube.env, **recording_env(tmp_path / "second.jsonl")}, timeout=SITE_TIMEOUT
    )
    assert second.rc == 0, second
    cost_after = json.loads((sandbox["reports"] / "cost" / "cost.json").read_text())
    assert changes(tmp_path / "second.jsonl") == {}, (
        changes(tmp_path / "second.jsonl"),
        differences(cost_before, cost_after),
    )
    assert {host: r["changed"] for host, r in second.recap.items()} == {host: 0 for host in second.recap}, second
    assert report_file.stat().st_mtime_ns == mtime


def check_cluster_layers(sandbox, kube, lost_hosts):
    """Layers 5-9, read back from the cluster, the AWS stand-in, Prometheus and the reports, against
    what the sandbox inventory and seed declare."""
    import boto3
    from kubernetes import client

    inventory = yaml.safe_load((REPO_ROOT / "inventories" / "sandbox" / "group_vars" / "all.yml").read_text())
    services = json.loads((sandbox["dir"] / "services.json").read_text())
    api = kube.api_client()
    dyn = kube.dynamic()

    # Nothing came from a shared/ folder: every custom kind site.yml used is the sandbox's own.
    sources = crd_sources(api)
    assert "clusterpolicies.nvidia.com" in sources and set(sources.values()) == {"sandbox"}, sources
    custom = client.CustomObjectsApi(api)
    policy = custom.get_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", "cluster-policy")
    assert policy["status"]["state"] == "ready", policy.get("status")

    # Security baseline: tenant namespaces enforce `restricted`, and are default-deny.
    core = client.CoreV1Api(api)
    labels = core.read_namespace("ml-serving").metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted", labels
    policies = client.NetworkingV1Api(api).list_namespaced_network_policy("ml-serving").items
    assert any(
        not p.spec.pod_selector.match_labels and set(p.spec.policy_types) == {"Ingress", "Egress"} for p in policies
    )

    # Monitoring: the rules the role wrote, loaded by the sandbox's real Prometheus, fire for every
    # lost GPU of the fleet (Xid 79 from the NVML simulator through the DCGM-shaped exporter).
    assert list(Path(services["prometheus_rules_dir"]).glob("*.rules.yml"))
    sandbox_services.reload(sandbox["dir"])

    def firing_hosts():
        with urllib.request.urlopen(services["prometheus_url"] + "/api/v1/alerts", timeout=10) as response:
            alerts = json.load(response)["data"]["alerts"]
        return {
            a["labels"].get("host")
            for a in alerts
            if a["state"] == "firing" and a["labels"]["alertname"] == "GpuXidCriticalError"
        }

    kube.wait_for(
        lambda: firing_hosts() >= set(lost_hosts), timeout=90, interval=2, message="no Xid alert for the lost GPUs"
    )

    # Autoscaling: the Karpenter pool, the KEDA ScaledObject (Ready in the KEDA stand-in) and the
    # cluster-autoscaler bounds on the seeded MachineDeployment, as the inventory declares them.
    pool = inventory["autoscaling_karpenter_pools"][0]
    node_pool = dyn.resources.get(api_version="karpenter.sh/v1", kind="NodePool").get(name=pool["name"])
    assert node_pool.spec.limits["nvidia.com/gpu"] == pool["limits"]["gpu"]
    scaled = inventory["autoscaling_inference"][0]
    objects = dyn.resources.get(api_version="keda.sh/v1alpha1", kind="ScaledObject")

    def ready():
        status = objects.get(name=scaled["deployment"], namespace=scaled["namespace"]).to_dict().get("status") or {}
        return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))

    kube.wait_for(ready, timeout=60, interval=1, message="the ScaledObject never became Ready")
    group = inventory["autoscaling_node_groups"][0]
    md = dyn.resources.get(api_version="cluster.x-k8s.io/v1beta2", kind="MachineDeployment").get(
        name=group["machine_deployment"]["name"], namespace=group["machine_deployment"]["namespace"]
    )
    annotations = md.metadata.annotations
    assert annotations["cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"] == str(group["min_size"])
    assert annotations["cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"] == str(group["max_size"])

    # Backups: every schedule's first backup completed and its tarball is in the bucket.
    backups = dyn.resources.get(api_version="velero.io/v1", kind="Backup").get(namespace="velero").items
    completed = {
        b.metadata.labels["velero.io/schedule-name"] for b in backups if (b.status or {}).get("phase") == "Completed"
    }
    assert completed == {s["name"] for s in inventory["backups_schedules"]}, backups
    s3 = boto3.client(
        "s3",
        endpoint_url=services["aws_endpoint"],
        region_name="us-east-1",
        aws_access_key_id=services["aws_env"]["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=services["aws_env"]["AWS_SECRET_ACCESS_KEY"],
    )
    storage = inventory["backups_storage"]
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=storage["bucket"], Prefix=storage["prefix"]).get("Contents", [])
    ]
    for backup in backups:
        assert any(backup.metadata.name in key and key.endswith(".tar.gz") for key in keys), keys

    # Cost: the seeded inference pod is priced in its namespace; every node is in the report.
    report = json.loads((sandbox["reports"] / "cost" / "cost.json").read_text())
    assert report["by_namespace"]["ml-serving"]["pods"] == 1, report["by_namespace"]
    assert report["by_namespace"]["ml-serving"]["monthly"] > 0
    assert report["totals"]["monthly"] > report["totals"]["allocated_hourly"] > 0


def differences(before, after, path=""):
    """Where two JSON documents differ (paths with both values), for an assertion message."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after), key=str):
            found += differences(before.get(key), after.get(key), f"{path}.{key}")
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        found = []
        for index, (one, two) in enumerate(zip(before, after)):
            found += differences(one, two, f"{path}[{index}]")
        return found
    return [] if before == after else [(path, before, after)]
