#!/usr/bin/env bash
# Stop the dockerd that docker-up.sh started (and only that one), by its recorded PID.
set -euo pipefail

PIDFILE=${DOCKERD_PIDFILE:-build/dockerd.pid}
if [ ! -f "$PIDFILE" ]; then
    echo "docker-stop: no dockerd started by make (no $PIDFILE)"
    exit 0
fi
pid=$(cat "$PIDFILE")
if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
    echo "docker-stop: stopping dockerd $pid"
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "docker-stop: dockerd $pid still running after 30 s; sending KILL" >&2
        kill -KILL "$pid" || true
    fi
else
    echo "docker-stop: dockerd $pid is not running"
fi
rm -f "$PIDFILE"
