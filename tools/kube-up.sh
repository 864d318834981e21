#!/usr/bin/env bash
# Start the sandbox's Kubernetes API stand-in (sandbox/kube) in the background, once.
# State (snapshot, PID file, logs) and the kubeconfig live in $SANDBOX_DIR/kube; the custom kinds
# are served from the sandbox's own CRDs (sandbox/kube/gpuops_kubeapi/data/crds), or from the
# upstream ones when the team's shared CRDs folder is beside the checkout (GPUOPS_SHARED_DIR,
# test data only; the sandbox fills in any kind it lacks); every host of
# inventories/sandbox with gpuops_kube_node becomes a Node bound to its simulated GPUs; every
# simulated controller runs. Re-running while it runs changes nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
SANDBOX_DIR=$(realpath -m "${SANDBOX_DIR:-$ROOT/.sandbox}")
STATE=$SANDBOX_DIR/kube
PIDFILE=$STATE/kubeapi.pid
SHARED=${GPUOPS_SHARED_DIR:-$ROOT/../shared}
PORT=${GPUOPS_KUBE_PORT:-0}
CONTROLLERS=${GPUOPS_KUBE_CONTROLLERS:-all}

ours() {  # is PID a stand-in serving this state dir?
    local cmdline
    cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *gpuops_kubeapi* && $cmdline == *"--state-dir $STATE "* ]]
}

if [ -f "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null && ours "$pid"; then
        echo "kube-up: already running (pid $pid, $(grep -Eo 'https?://[^ ]*' "$STATE/server.out" 2>/dev/null || echo '?'))"
        echo "kube-up: export GPUOPS_KUBECONFIG=$STATE/kubeconfig"
        exit 0
    fi
    echo "kube-up: removing stale $PIDFILE (pid $pid is not a stand-in of $STATE)"
    rm -f "$PIDFILE"
fi

mkdir -p "$STATE"
if [ ! -f "$SANDBOX_DIR/kube-fleet.json" ]; then
    "$PY" "$ROOT/sandbox/fleet_up.py" --inventory "$ROOT/inventories/sandbox" --dir "$SANDBOX_DIR" \
        --kube-manifest-only
fi
args=(--port "$PORT" --state-dir "$STATE" --kubeconfig-out "$STATE/kubeconfig"
      --fleet "$SANDBOX_DIR/kube-fleet.json" --controllers "$CONTROLLERS")
if [ -d "$SHARED/crds" ]; then
    echo "kube-up: custom kinds from the upstream CRDs in $SHARED/crds (the sandbox's own fill in the rest)"
    args+=(--crds "$SHARED/crds" --crds sandbox --operator-crds "$SHARED/crds" --operator-crds sandbox)
else
    echo "kube-up: custom kinds from the sandbox's own CRDs (no upstream CRDs at $SHARED/crds)"
    args+=(--crds sandbox --operator-crds sandbox)
fi
if [ "${GPUOPS_KUBE_OPENSHIFT:-0}" = 1 ]; then
    args+=(--openshift)
fi

# The sandbox's outside services (sandbox/services.py: AWS stand-in, Prometheus), when they run:
# the stand-in's Karpenter, Velero and KEDA controllers call them.
services_env=()
if [ -f "$SANDBOX_DIR/services.json" ]; then
    mapfile -t services_env < <("$PY" - "$SANDBOX_DIR/services.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"GPUOPS_SANDBOX_AWS_ENDPOINT={s['aws_endpoint']}")
for key, value in s.get("aws_env", {}).items():
    print(f"{key}={value}")
if s.get("prometheus_url"):
    print(f"GPUOPS_SANDBOX_PROMETHEUS_URL={s['prometheus_url']}")
PY
)
    echo "kube-up: the stand-in's controllers use the services in $SANDBOX_DIR/services.json"
fi

: >"$STATE/server.out"
env "${services_env[@]}" PYTHONPATH="$ROOT/sandbox/kube" setsid "$PY" -m gpuops_kubeapi serve "${args[@]}" \
    >"$STATE/server.out" 2>"$STATE/server.log" </dev/null &
started=$!
for _ in $(seq 1 240); do
    if grep -q serving "$STATE/server.out"; then
        break
    fi
    if ! kill -0 "$started" 2>/dev/null; then
        echo "kube-up: the stand-in exited; see $STATE/server.log" >&2
        tail -20 "$STATE/server.log" >&2 || true
        exit 1
    fi
    sleep 0.25
done
if ! grep -q serving "$STATE/server.out"; then
    echo "kube-up: no answer after 60 s; stopping pid $started (see $STATE/server.log)" >&2
    kill -TERM "$started" 2>/dev/null || true
    exit 1
fi
echo "kube-up: $(cat "$STATE/server.out")"
echo "kube-up: kubeconfig $STATE/kubeconfig (the sandbox inventory's gpuops_kubeconfig)"
echo "kube-up: export GPUOPS_KUBECONFIG=$STATE/kubeconfig KUBECONFIG=$STATE/kubeconfig"
