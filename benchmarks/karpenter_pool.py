"""karpenter_pool: a cold module run against kubernetes.core.k8s applying the same objects.

Starts the Kubernetes API stand-in (sandbox CRDs) and a moto server (EC2), then, round after
round, interleaved, runs as fresh `ansible` processes (cold: AnsiballZ, imports, discovery):

- `gpuops.cluster.karpenter_pool` for one p4d.24xlarge pool (validation, EC2 lookups,
  CRD gates, two server-side applies plus the NodeOverlay check);
- `kubernetes.core.k8s` server-side applying the same NodePool and EC2NodeClass
  (as karpenter_pool rendered them), no validation at all.

Prints the medians and the ratio (target: karpenter_pool <= 1.5 x k8s), then the time to
validate and render 100 pool specs in-process (pure module_utils, no I/O).

    make collection && .venv/bin/python benchmarks/karpenter_pool.py [ROUNDS]
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / "build" / "collections"
ANSIBLE = Path(sys.executable).parent / "ansible"
sys.path.insert(0, str(COLLECTIONS))

POOL = dict(
    name="bench-a100",
    instance_types=["p4d.24xlarge"],
    capacity_types=["spot", "on-demand"],
    ami_alias="al2023@v20250505",
    role="KarpenterNodeRole",
    subnet_selector=[{"tags": {"karpenter.sh/discovery": "bench"}}],
    security_group_selector=[{"tags": {"karpenter.sh/discovery": "bench"}}],
    termination_grace_period="24h",
    limits={"gpu": "64"},
)
P4D = dict(
    name="p4d.24xlarge",
    gpu_count=8,
    gpu_name="a100",
    gpu_memory_mib=40960,
    gpu_manufacturer="nvidia",
    vcpus=96,
    memory_mib=1179648,
)


def _server(state):
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
        str(state / "kubeconfig"),
        "--crds",
        "sandbox",
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sandbox" / "kube"))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    line = process.stdout.readline()
    if "serving" not in line:
        raise SystemExit("stand-in did not start: %r" % line)
    return process, state / "kubeconfig"


def _timed(module, args, env):
    started = time.perf_counter()
    proc = subprocess.run(
        [str(ANSIBLE), "localhost", "-c", "local", "-m", module, "-a", json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s\n%s" % (module, proc.stdout[-3000:], proc.stderr[-2000:]))
    return elapsed


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.runner import plan
    from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter.spec import validate_params

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = "http://%s:%d" % (host, port)
    import boto3

    ec2 = boto3.client("ec2", endpoint_url=endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    ec2.create_tags(Resources=[subnet], Tags=[{"Key": "karpenter.sh/discovery", "Value": "bench"}])
    with tempfile.TemporaryDirectory() as tmp:
        process, kubeconfig = _server(Path(tmp))
        try:
            env = dict(
                os.environ,
                ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
                K8S_AUTH_KUBECONFIG=str(kubeconfig),
                ANSIBLE_PYTHON_INTERPRETER=sys.executable,
                ANSIBLE_NOCOLOR="1",
            )
            pool, node_class, _overlays = plan(validate_params(POOL), [P4D])
            k8s_pool = dict(pool, metadata=dict(pool["metadata"], name="bench-k8s"))
            k8s_class = dict(node_class, metadata=dict(node_class["metadata"], name="bench-k8s"))
            k8s_pool["spec"]["template"]["spec"]["nodeClassRef"]["name"] = "bench-k8s"
            karpenter_args = dict(POOL, endpoint_url=endpoint, region="us-east-1")
            k8s_args = dict(
                definition=[k8s_class, k8s_pool],
                apply=True,
                server_side_apply={"field_manager": "bench", "force_conflicts": False},
            )
            # One warm-up each (creates the objects; the rounds measure steady-state applies).
            _timed("gpuops.cluster.karpenter_pool", karpenter_args, env)
            _timed("kubernetes.core.k8s", k8s_args, env)
            ours, theirs = [], []
            for _unused in range(rounds):
                ours.append(_timed("gpuops.cluster.karpenter_pool", karpenter_args, env))
                theirs.append(_timed("kubernetes.core.k8s", k8s_args, env))
        finally:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
    moto.stop()
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    print("karpenter_pool cold run (median of %d): %.3f s" % (rounds, ours_median))
    print("kubernetes.core.k8s apply of the same two objects (median of %d): %.3f s" % (rounds, theirs_median))
    print("ratio karpenter_pool / k8s: %.2f (target <= 1.50)" % (ours_median / theirs_median))
    specs = [
        dict(POOL, name="pool-%d" % i, weight=1 + i % 100, mig_layout={"1g.5gb": 7} if i % 2 else None)
        for i in range(100)
    ]
    started = time.perf_counter()
    for spec in specs:
        plan(validate_params(spec), [P4D])
    print("validate + render 100 pool specs: %.1f ms" % ((time.perf_counter() - started) * 1000))


if __name__ == "__main__":
    main()
