#!/usr/bin/env bash
# `make test`: run every tier (a make target) even when an earlier one fails, print a table and
# a last line "make test: N passed, M failed", exit non-zero if any tier failed. Stops a dockerd
# that this run started.
set -uo pipefail

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
for tier in "$@"; do
    echo
    echo "=================== make $tier"
    start=$SECONDS
    if make "$tier"; then
        passed=$((passed + 1))
        summary+=("$(printf '  %-12s passed  %4d s' "$tier" $((SECONDS - start)))")
    else
        failed=$((failed + 1))
        summary+=("$(printf '  %-12s FAILED  %4d s' "$tier" $((SECONDS - start)))")
    fi
done

stop_our_dockerd
trap - EXIT
echo
echo "=================== summary"
printf '%s\n' "${summary[@]}"
echo "make test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
