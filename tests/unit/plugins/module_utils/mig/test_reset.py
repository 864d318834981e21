"""mig.reset: the one GPU reset runner (module and boot launcher)."""

from __future__ import annotations

import pytest
from ansible_collections.gpuops.cluster.plugins.module_utils.mig import reset
from ansible_collections.gpuops.cluster.plugins.module_utils.mig.selection import MigParamError

GPU = {"index": 3, "uuid": "GPU-12345678-1234-1234-1234-123456789abc", "bus_id": "0000:07:00.0"}


def test_placeholders_are_filled_in_one_argv_item_each():
    calls = []
    runner = reset.make_reset_runner(
        ["/usr/bin/r", "-i", "{uuid}", "--bus={bus_id}", "{index}"], lambda a: calls.append(a) or (0, "", "")
    )
    assert runner(GPU) is None
    assert calls == [["/usr/bin/r", "-i", GPU["uuid"], "--bus=0000:07:00.0", "3"]]


def test_failures_are_texts_naming_the_command():
    assert "exited 2: busy" in reset.make_reset_runner(["r"], lambda a: (2, "", "busy\n"))(GPU)

    def missing(argv):
        raise OSError(2, "No such file or directory")

    assert "r: cannot run" in reset.make_reset_runner(["r"], missing)(GPU)
    # A GPU value that could turn into an option never reaches the command line.
    assert "no usable uuid" in reset.make_reset_runner(["r", "{uuid}"], lambda a: (0, "", ""))(dict(GPU, uuid="--all"))


@pytest.mark.parametrize("command", [[], [""], ["r", "a\nb"], ["r", "{gpu}"], ["r"] * 65])
def test_bad_commands_are_refused(command):
    with pytest.raises(MigParamError):
        reset.make_reset_runner(command, lambda a: (0, "", ""))
