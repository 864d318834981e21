#!/usr/bin/env bash
# ansible-test sanity, offline, on a copy of the collection (tracked + untracked-not-ignored
# files) under build/sanity/ansible_collections/gpuops/cluster, with two ansible-cores: the newest
# we support (the one the pinned `ansible` package brings, .venv) and the floor that
# meta/runtime.yml declares (requirements-floor.txt, .venv-floor, built here and cached like .venv).
# SANITY_CORES="newest floor" (default) picks which.
set -euo pipefail

ROOT=$(pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
DEST=build/sanity/ansible_collections/gpuops/cluster
PYVER=${SANITY_PYTHON:-3.11}
CORES=${SANITY_CORES:-newest floor}

# ansible-test's shellcheck test is skipped (with only a warning) when shellcheck is missing.
"$(dirname "$0")/ensure-apt.sh" shellcheck

# ansible-test bootstraps pip in its venvs with a get-pip script it downloads from a host that
# is unreachable here. Put a stand-in in its cache: ensurepip, then pip install <args>.
# It keeps the caller's environment (pip's configuration comes from there).
write_get_pip_standin() {  # VENV_BIN
    local pip_version cache standin
    pip_version=$("$1/python" - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", src.read_text()).group(1))
PY
)
    cache="$HOME/.ansible/test/cache"
    standin="$cache/get_pip_${pip_version//./_}.py"
    mkdir -p "$cache"
    cat >"$standin.tmp" <<'PY'
"""Offline stand-in for get-pip.py (written by tools/sanity.sh): ensurepip, then pip install."""
import os
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], env=os.environ)
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args, env=os.environ)
PY
    mv "$standin.tmp" "$standin"
}

# Fresh copy: what git would ship (tracked and untracked-but-not-ignored files).
rm -rf "$DEST"
mkdir -p "$DEST"
git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] || [ -L "$f" ] || continue   # deleted in the working tree
    printf '%s\0' "$f"
done | tar -c --null -T - -f - | tar -x -C "$DEST" -f -

# The collections ours depends on (galaxy.yml: kubernetes.core, community.general), from the
# ansible package in .venv, beside the copy: ansible-test finds them in the same
# ansible_collections root (the import and validate-modules tests of cost_snapshot, karpenter_pool
# and velero_schedule need kubernetes.core's module_utils and doc fragments).
for dep in kubernetes/core community/general; do
    src=$("$ROOT/.venv/bin/python" -c "import importlib, os; m = importlib.import_module('ansible_collections.${dep//\//.}'); print(list(m.__path__)[0])")
    mkdir -p "$(dirname "build/sanity/ansible_collections/$dep")"
    ln -sfn "$src" "build/sanity/ansible_collections/$dep"
done

cd "$DEST"
# build/ is ignored by the checkout's git, and ansible-test lists files through git when it is
# inside a work tree: give the copy its own (empty) repository so it sees every copied file.
git init -q .

failed=()
for core in $CORES; do
    case $core in
        newest) venv="$ROOT/.venv" ;;
        floor)
            (cd "$ROOT" && VENV=.venv-floor REQ=requirements-floor.txt "$HERE/venv.sh")
            venv="$ROOT/.venv-floor" ;;
        *) echo "sanity: unknown SANITY_CORES entry $core (newest, floor)" >&2; exit 2 ;;
    esac
    write_get_pip_standin "$venv/bin"
    version=$("$venv/bin/python" -c "import ansible; print('ansible-core', ansible.__version__)")
    echo "sanity: $version ($core): ansible-test sanity --venv --python $PYVER in $DEST"
    start=$SECONDS
    rm -rf tests/output
    if "$venv/bin/ansible-test" sanity --venv --python "$PYVER" --color no "$@"; then
        echo "sanity: $core passed in $((SECONDS - start)) s"
    else
        echo "sanity: $core FAILED after $((SECONDS - start)) s"
        failed+=("$core")
    fi
done
[ "${#failed[@]}" -eq 0 ]
