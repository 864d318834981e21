#!/usr/bin/env bash
# Stop the Kubernetes API stand-in that kube-up.sh started (and only that one), by the PID in
# its state folder; it writes its snapshot (state.json) on the way out.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SANDBOX_DIR=$(realpath -m "${SANDBOX_DIR:-$ROOT/.sandbox}")
STATE=$SANDBOX_DIR/kube
PIDFILE=$STATE/kubeapi.pid

if [ ! -f "$PIDFILE" ]; then
    echo "kube-down: not running (no $PIDFILE)"
    exit 0
fi
pid=$(cat "$PIDFILE")
if ! kill -0 "$pid" 2>/dev/null; then
    echo "kube-down: pid $pid is not running; removing $PIDFILE"
    rm -f "$PIDFILE"
    exit 0
fi
cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
if [[ $cmdline != *gpuops_kubeapi* || $cmdline != *"--state-dir $STATE "* ]]; then
    echo "kube-down: pid $pid is not the stand-in of $STATE ($cmdline); refusing to stop it" >&2
    exit 1
fi
echo "kube-down: stopping the Kubernetes API stand-in (pid $pid)"
kill -TERM "$pid"
for _ in $(seq 1 80); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
done
if kill -0 "$pid" 2>/dev/null; then
    echo "kube-down: pid $pid still running after 20 s; sending KILL" >&2
    kill -KILL "$pid" || true
    rm -f "$PIDFILE"
fi
