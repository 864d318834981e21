#!/usr/bin/env bash
# Build or refresh the development virtual environment from requirements-dev.txt.
# The venv is rebuilt only when the requirements file changes (hash stamp in the venv).
set -euo pipefail

VENV=${VENV:-.venv}
REQ=${REQ:-requirements-dev.txt}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.requirements.sha256"

want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    echo "venv: $VENV up to date ($REQ unchanged)"
    exit 0
fi

# The interpreter the venv is made from, as an absolute path resolved now: make puts .venv/bin
# first on PATH, so "python3" may be the very venv about to be removed.
PYTHON=$(readlink -f "$(command -v "$PYTHON")")
case "$PYTHON" in
    "$(readlink -f "$VENV")"/*)
        PYTHON=$(readlink -f "$("$PYTHON" -c 'import sys; print(sys._base_executable)')") ;;
esac

# python3 -m venv needs ensurepip and its wheels, which Debian ships separately (python3-venv).
case "$PYTHON" in
    /usr/bin/*) "$(dirname "$0")/ensure-apt.sh" python3-venv ;;
    *) "$PYTHON" -c 'import ensurepip, venv' ;;
esac

if [ -f "$STAMP" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    # Requirements changed (or no usable venv): start from scratch.
    echo "venv: creating $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
else
    # A venv made by hand before the stamp existed: bring it in line without deleting it.
    echo "venv: refreshing existing $VENV"
fi

"$VENV/bin/python" -m pip install --quiet -r "$REQ"
echo "$want" >"$STAMP"
echo "venv: $VENV ready"
