"""config_formats: one validating/quoting helper per file format (systemd, modprobe.d, TOML, shell, URLs)."""

from __future__ import annotations

import shlex

import pytest
from ansible_collections.gpuops.cluster.plugins.plugin_utils import config_formats as cf

NASTY = ["a\nExecStartPre=/bin/sh", "x\rb", "nul\x00", "bell\x07", "del\x7f"]


def systemd_words(line):
    """Split a command line as systemd does (double quotes with C escapes, $$ and %%)."""
    words, word, quoted, started, i = [], [], False, False, 0
    while i < len(line):
        ch = line[i]
        if quoted:
            if ch == "\\":
                i += 1
                word.append(line[i])
            elif ch == '"':
                quoted = False
            else:
                word.append(ch)
        elif ch == '"':
            quoted = started = True
        elif ch == " ":
            if started:
                words.append("".join(word))
            word, started = [], False
        else:
            word.append(ch)
            started = True
        i += 1
    if started:
        words.append("".join(word))
    return [w.replace("$$", "$").replace("%%", "%") for w in words]


@pytest.mark.parametrize(
    "argv",
    [
        ["/usr/bin/python3", "/x/run", "--name", "a b"],
        ["/usr/bin/python3", '["nvidia-smi", "-i", "{uuid}"]', "$HOME", "%h", "back\\slash", ";"],
    ],
)
def test_systemd_exec_round_trips(argv):
    line = cf.systemd_exec(argv, "cmd")
    assert "\n" not in line
    assert systemd_words(line) == argv


@pytest.mark.parametrize("bad", NASTY)
def test_systemd_exec_refuses_control_characters(bad):
    with pytest.raises(cf.FormatError, match=r"cmd\[1\]: must not contain line breaks"):
        cf.systemd_exec(["/usr/bin/x", bad], "cmd")


@pytest.mark.parametrize("program", ["python3", "/usr/bin/python3 -c x", "-/usr/bin/x", "/a/../b", "/a b"])
def test_systemd_exec_needs_a_plain_absolute_program(program):
    with pytest.raises(cf.FormatError, match=r"cmd\[0\]: must be an absolute path"):
        cf.systemd_exec([program], "cmd")


def test_systemd_environment_quotes_and_sorts():
    lines = cf.systemd_environment({"B": 'x "y" $Z %h', "A": 1}, "env")
    # Environment= expands specifiers (%) but not variables: $ stays single (a real systemd reads
    # it back unchanged in molecule/mig_host).
    assert lines == ['Environment="A=1"', 'Environment="B=x \\"y\\" $Z %%h"']


@pytest.mark.parametrize(
    ("variables", "needle"),
    [
        ({"A B": "x"}, "env: variable names"),
        ({"1A": "x"}, "env: variable names"),
        ({"A": "x\ny"}, "env.A: must not contain line breaks"),
        ({"A": ["x"]}, "env.A: must be a string or a number"),
        ("A=x", "env: must be a mapping"),
    ],
)
def test_systemd_environment_refuses(variables, needle):
    with pytest.raises(cf.FormatError, match=needle):
        cf.systemd_environment(variables, "env")


def test_secret_values_are_not_echoed():
    with pytest.raises(cf.FormatError) as caught:
        cf.systemd_environment({"TOKEN": "hunter2\nsecret"}, "env")
    assert "hunter2" not in str(caught.value)


def test_modprobe_options():
    line = cf.modprobe_options("nvidia", {"NVreg_B": True, "NVreg_A": 1, "NVreg_C": "0x1,2:3"})
    assert line == "options nvidia NVreg_A=1 NVreg_B=1 NVreg_C=0x1,2:3"


@pytest.mark.parametrize(
    ("module", "options", "needle"),
    [
        ("nvidia", {"NVreg_A": "1\ninstall nvidia /bin/sh"}, "o.NVreg_A: must not contain line breaks"),
        ("nvidia", {"NVreg_A": "a b"}, "o.NVreg_A: allowed"),
        ("nvidia", {"NVreg_A": "#x"}, "o.NVreg_A: allowed"),
        ("nvidia", {"NVreg_A": '"x"'}, "o.NVreg_A: allowed"),
        ("nvidia", {"NVreg_A": 1.5}, "o.NVreg_A: must be an integer or a word"),
        ("nvidia", {"a b": 1}, "o: parameter names"),
        ("nvidia x", {"A": 1}, "o: module name"),
    ],
)
def test_modprobe_options_refuse(module, options, needle):
    with pytest.raises(cf.FormatError, match=needle):
        cf.modprobe_options(module, options, "o")


def test_toml_and_shell_and_urls():
    assert cf.toml_string('a"b\\c') == '"a\\"b\\\\c"'
    assert cf.toml_path("/usr/bin/nvidia-container-runtime") == '"/usr/bin/nvidia-container-runtime"'
    with pytest.raises(cf.FormatError):
        cf.toml_path('/usr/bin/x"\nBinaryName = "/bin/sh', "p")
    word = cf.shell_quote("it's $(id) `x`")
    assert shlex.split(word) == ["it's $(id) `x`"]
    with pytest.raises(cf.FormatError):
        cf.shell_quote("a\nb")
    assert cf.url("https://example.invalid/x") == "https://example.invalid/x"
    for bad in ("ftp://x", "http://a b", "http://x\ny", 'http://x"'):
        with pytest.raises(cf.FormatError):
            cf.url(bad, "u")
    with pytest.raises(cf.FormatError):
        cf.deb822_value("http://m/\nTypes: deb", "URIs")
