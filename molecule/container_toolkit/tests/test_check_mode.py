"""--check on a fresh container reports the changes and makes none."""

from conftest import run_playbook

PATHS = "/etc/containerd /etc/crio /etc/docker /etc/cdi /var/lib/gpuops"


def _state(host):
    return {
        "listing": host.run("ls -lR --time-style=full-iso %s" % PATHS).stdout,
        "config.toml": host.file("/etc/containerd/config.toml").content_string,
        "daemon.json": host.file("/etc/docker/daemon.json").content_string,
    }


def test_check_mode_reports_changes_and_makes_none(inventory, fresh):
    before = _state(fresh)
    rc, output, recap = run_playbook(inventory, "check.yml", "--check", "--diff")
    assert rc == 0, output[-4000:]
    counters = recap["gpuops-ctk-fresh"]
    assert counters["failed"] == 0
    assert counters["changed"] >= 3, output[-4000:]  # containerd block, CRI-O drop-in, daemon.json
    assert '"nvidia"' in output  # the daemon.json diff shows the runtime it would add
    assert _state(fresh) == before
