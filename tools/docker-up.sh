#!/usr/bin/env bash
# Make sure docker is installed and its daemon answers. Without systemd to start it, launch
# dockerd in the background and record its PID in build/dockerd.pid so that docker-stop.sh
# stops only a daemon we started.
set -euo pipefail

PIDFILE=${DOCKERD_PIDFILE:-build/dockerd.pid}
LOG=${DOCKERD_LOG:-build/dockerd.log}
here=$(dirname "$0")

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1 \
    || ! command -v debootstrap >/dev/null 2>&1; then
    "$here/ensure-apt.sh" docker.io containerd runc debootstrap iptables
else
    "$here/ensure-apt.sh" debootstrap iptables
fi

if docker info >/dev/null 2>&1; then
    echo "docker: daemon answers"
    exit 0
fi

mkdir -p "$(dirname "$PIDFILE")"
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "docker: dockerd $(cat "$PIDFILE") started earlier is not answering yet"
else
    echo "docker: starting dockerd (log: $LOG)"
    # setsid: its own session, so it outlives this shell and make's process group.
    setsid dockerd >"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
fi

for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "docker: daemon answers (pid $(cat "$PIDFILE"))"
        exit 0
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "docker: dockerd exited; last lines of $LOG:" >&2
        tail -n 30 "$LOG" >&2 || true
        rm -f "$PIDFILE"
        exit 1
    fi
    sleep 0.5
done
echo "docker: dockerd did not answer within 30 s; see $LOG" >&2
exit 1
