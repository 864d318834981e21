#!/usr/bin/env bash
# Run `molecule test -s NAME` for every scenario under molecule/ (each folder with a
# molecule.yml), in two lanes that run side by side: the docker-driver scenarios (fleet
# containers) one after another, and the delegated-driver scenarios (sandbox hosts simulated on
# this machine, each with its own Kubernetes API stand-in on a free port) one after another.
# The lanes wait on different things (containers and apt vs. the stand-in and Ansible), so
# together they take about as long as the longer lane. Each scenario's output goes to
# build/molecule/NAME.log and is printed when it fails. Runs them all, then fails if any failed.
# MOLECULE_LANES=1 runs everything in one lane.
set -euo pipefail

shopt -s nullglob
LOGS=build/molecule
mkdir -p "$LOGS"
docker_lane=()
delegated_lane=()
for f in molecule/*/molecule.yml; do
    s=$(basename "$(dirname "$f")")
    if grep -qE '^  name: (default|delegated)$' "$f"; then
        delegated_lane+=("$s")
    else
        docker_lane+=("$s")
    fi
done
total=$((${#docker_lane[@]} + ${#delegated_lane[@]}))
if [ "$total" -eq 0 ]; then
    echo "molecule: no scenarios under molecule/"
    exit 0
fi

run_lane() {  # NAME... : one after another; one line per scenario in $LOGS/lane-<first>.result
    local s start rc
    for s in "$@"; do
        start=$SECONDS
        rc=0
        molecule test -s "$s" >"$LOGS/$s.log" 2>&1 || rc=$?
        echo "$s $rc $((SECONDS - start))"
    done
}

start=$SECONDS
results=$(mktemp)
trap 'rm -f "$results"' EXIT
if [ "${MOLECULE_LANES:-2}" = 1 ]; then
    run_lane "${docker_lane[@]}" "${delegated_lane[@]}" >>"$results"
else
    echo "molecule: docker lane: ${docker_lane[*]:-none}; delegated lane: ${delegated_lane[*]:-none}"
    run_lane "${docker_lane[@]}" >"$results.docker" &
    docker_pid=$!
    run_lane "${delegated_lane[@]}" >"$results.delegated" &
    delegated_pid=$!
    wait "$docker_pid" || true
    wait "$delegated_pid" || true
    cat "$results.docker" "$results.delegated" >>"$results"
    rm -f "$results.docker" "$results.delegated"
fi

failed=()
while read -r s rc secs; do
    if [ "$rc" -eq 0 ]; then
        echo "molecule: $s passed in $secs s"
    else
        echo "molecule: $s FAILED after $secs s (log: $LOGS/$s.log); its last lines:"
        tail -n 60 "$LOGS/$s.log" | sed 's/^/    /'
        failed+=("$s")
    fi
done <"$results"
ran=$(wc -l <"$results")
if [ "$ran" -ne "$total" ]; then
    echo "molecule: only $ran of $total scenarios reported a result"
    exit 1
fi
if [ "${#failed[@]}" -gt 0 ]; then
    echo "molecule: failed scenarios: ${failed[*]} ($((SECONDS - start)) s)"
    exit 1
fi
echo "molecule: all $total scenario(s) passed in $((SECONDS - start)) s"
