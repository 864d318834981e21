#!/usr/bin/env bash
# `make test`: run every tier (a make target) even when an earlier one fails, print a table and
# a last line "make test: N passed, M failed", exit non-zero if any tier failed. Stops a dockerd
# that this run started.
#   run-tiers.sh [--background TARGET --after TIER --before TIER] TIER[+TIER...]...
# --background starts `make TARGET` in the background once TIER (--after) has passed, and waits
# for it before TIER (--before) starts: a long build (the execution environment image) overlaps
# the CPU-bound tiers instead of adding to the total. It is reported as a tier of its own.
# TIER+TIER... runs those tiers side by side (each into build/make-TIER.log, printed when all
# have ended): tiers that each keep one CPU busy, or that mostly wait, share the machine's CPUs.
set -uo pipefail

bg_target="" bg_after="" bg_before="" bg_pid="" bg_start=0
while [ "${1:-}" = --background ]; do
    bg_target=$2 bg_after=$4 bg_before=$6
    shift 6
done

pidfile=build/dockerd.pid
had_dockerd=no
[ -f "$pidfile" ] && had_dockerd=yes

stop_our_dockerd() {
    if [ "$had_dockerd" = no ] && [ -f "$pidfile" ]; then
        make docker-stop
    fi
}
trap stop_our_dockerd EXIT

passed=0
failed=0
summary=()
wait_background() {
    [ -n "$bg_pid" ] || return 0
    echo
    echo "=================== waiting for make $bg_target (background, log build/make-$bg_target.log)"
    if wait "$bg_pid"; then
        passed=$((passed + 1))
        summary+=("$(printf '  %-12s passed  %4d s (background)' "$bg_target" $((SECONDS - bg_start)))")
        tail -n 12 "build/make-$bg_target.log"
    else
        failed=$((failed + 1))
        summary+=("$(printf '  %-12s FAILED  %4d s (background)' "$bg_target" $((SECONDS - bg_start)))")
        tail -n 60 "build/make-$bg_target.log"
    fi
    bg_pid=""
}
start_background() {  # after TIER passed
    if [ -n "$bg_target" ] && [ "$1" = "$bg_after" ]; then
        mkdir -p build
        echo "=================== make $bg_target started in the background"
        bg_start=$SECONDS
        make "$bg_target" >"build/make-$bg_target.log" 2>&1 &
        bg_pid=$!
    fi
}
run_side_by_side() {  # TIER... : all at once, each into its log; then each log and verdict in order
    local tier rc secs members=("$@") pids=()
    mkdir -p build
    echo "=================== make ${members[*]} (side by side; logs build/make-TIER.log)"
    for tier in "${members[@]}"; do
        (
            begin=$SECONDS
            rc=0
            make "$tier" >"build/make-$tier.log" 2>&1 || rc=$?
            echo $((SECONDS - begin)) >"build/make-$tier.seconds"
            exit "$rc"
        ) &
        pids+=($!)
    done
    for i in "${!members[@]}"; do
        tier=${members[$i]}
        rc=0
        wait "${pids[$i]}" || rc=$?
        echo
        echo "=================== make $tier (ended; it ran beside the others)"
        cat "build/make-$tier.log"
        secs=$(cat "build/make-$tier.seconds" 2>/dev/null || echo 0)
        if [ "$rc" -eq 0 ]; then
            passed=$((passed + 1))
            summary+=("$(printf '  %-12s passed  %4d s (side by side)' "$tier" "$secs")")
            start_background "$tier"
        else
            failed=$((failed + 1))
            summary+=("$(printf '  %-12s FAILED  %4d s (side by side)' "$tier" "$secs")")
        fi
    done
}
for spec in "$@"; do
    IFS=+ read -r -a members <<<"$spec"
    for tier in "${members[@]}"; do
        [ "$tier" = "$bg_before" ] && wait_background
    done
    echo
    if [ "${#members[@]}" -gt 1 ]; then
        run_side_by_side "${members[@]}"
        continue
    fi
    tier=$spec
    echo "=================== make $tier"
    start=$SECONDS
    if make "$tier"; then
        passed=$((passed + 1))
        summary+=("$(printf '  %-12s passed  %4d s' "$tier" $((SECONDS - start)))")
        start_background "$tier"
    else
        failed=$((failed + 1))
        summary+=("$(printf '  %-12s FAILED  %4d s' "$tier" $((SECONDS - start)))")
    fi
done
wait_background

stop_our_dockerd
trap - EXIT
echo
echo "=================== summary"
printf '%s\n' "${summary[@]}"
echo "make test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
