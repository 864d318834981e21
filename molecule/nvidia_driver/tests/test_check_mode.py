"""--check on a fresh container reports the changes and makes none; no GPU means skip by default."""

from conftest import run_playbook


def _state(host):
    return {
        "sources.list": host.file("/etc/apt/sources.list").content_string,
        "sources.list.d": host.check_output("ls -A /etc/apt/sources.list.d"),
        "modprobe.d": host.check_output("ls -A /etc/modprobe.d"),
        "dpkg": host.check_output("dpkg-query -W -f '${Package} ${Version} ${Status}\\n'"),
        "selections": host.check_output("dpkg --get-selections"),
    }


def test_check_mode_reports_changes_and_makes_none(inventory, fresh):
    before = _state(fresh)
    assert not fresh.package("nvidia-kernel-dkms").is_installed
    rc, output, recap = run_playbook(inventory, "check.yml", "--check")
    assert rc == 0, output[-4000:]
    counters = recap["gpuops-nvd-fresh"]
    assert counters["failed"] == 0
    assert counters["changed"] >= 3, output[-4000:]  # sources, packages, nouveau blacklist, options, ...
    assert "would enable the package sources, then install nvidia-kernel-dkms" in output
    assert _state(fresh) == before


def test_host_without_gpu_is_skipped_by_default(inventory, node):
    before = node.check_output("ls -l --time-style=full-iso /etc/modprobe.d /etc/apt/sources.list.d")
    rc, output, recap = run_playbook(inventory, "skip.yml")
    assert rc == 0, output[-4000:]
    assert "no NVIDIA GPU found" in output
    assert recap["gpuops-nvd-host"]["changed"] == 0
    assert node.check_output("ls -l --time-style=full-iso /etc/modprobe.d /etc/apt/sources.list.d") == before
