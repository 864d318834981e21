"""AWX objects as code (awx/controller.yml), checked offline: current, surveys as AWX validates
them, every survey variable documented by an argument spec, every awx.awx option real."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tools"))
import awx_objects  # noqa: E402

BIN = Path(sys.executable).parent
PLAYBOOK = yaml.safe_load((ROOT / "awx" / "controller.yml").read_text())
TASKS = PLAYBOOK[0]["tasks"]
SPECS = awx_objects.argument_specs()


def _surveys():
    for task in TASKS:
        args = task.get("awx.awx.job_template")
        if args and args.get("survey_spec"):
            yield args["name"], args["survey_spec"]


def test_controller_playbook_is_generated_from_the_sources():
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "awx_objects.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr


def test_surveys_pass_awx_validation():
    surveys = dict(_surveys())
    assert {"gpuops site", "gpuops site - plan (check mode, diff)", "gpuops upgrade driver"} <= set(surveys)
    for name, survey in surveys.items():
        assert awx_objects.survey_problems(survey) == [], name


def test_every_survey_variable_is_an_argument_spec_option_with_its_choices_and_default():
    options = {}
    for spec in SPECS.values():
        options.update(spec)
    for name, survey in _surveys():
        for q in survey["spec"]:
            option = options.get(q["variable"])
            assert option is not None, f"{name}: {q['variable']} is in no argument spec"
            if option.get("choices"):
                assert q["choices"] == [str(c) for c in option["choices"]], q
            if option.get("type") == "bool":
                assert q["type"] == "multiplechoice" and q["choices"] == ["true", "false"], q
            if option.get("type") == "int":
                assert q["type"] == "integer", q
            if "default" in option and option["default"] is not None:
                want = option["default"]
                if option.get("type") == "bool":
                    want = "true" if want else "false"
                assert q["default"] == (want if q["type"] == "integer" else str(want)), q


@pytest.mark.parametrize(
    "survey, problem",
    [
        ({"name": "s", "description": "d", "spec": []}, "doesn't contain any items"),
        ({"name": "s", "spec": [{}]}, "'description' missing"),
        (
            {
                "name": "s",
                "description": "d",
                "spec": [{"type": "bool", "question_name": "q", "variable": "v", "required": False}],
            },
            "is not one of",
        ),
        (
            {
                "name": "s",
                "description": "d",
                "spec": [{"type": "integer", "question_name": "q", "variable": "v", "required": False, "default": "3"}],
            },
            "is not a integer",
        ),
        (
            {
                "name": "s",
                "description": "d",
                "spec": [{"type": "multiplechoice", "question_name": "q", "variable": "v", "required": False}],
            },
            "needs choices",
        ),
        (
            {
                "name": "s",
                "description": "d",
                "spec": [
                    {
                        "type": "multiplechoice",
                        "question_name": "q",
                        "variable": "v",
                        "required": False,
                        "choices": ["a"],
                        "default": "b",
                    }
                ],
            },
            "not among the choices",
        ),
        (
            {
                "name": "s",
                "description": "d",
                "spec": [{"type": "text", "question_name": "q", "variable": "v", "required": "no"}],
            },
            "'required' missing or not a bool",
        ),
        (
            {
                "name": "s",
                "description": "d",
                "spec": [{"type": "text", "question_name": "q", "variable": "v", "required": False}] * 2,
            },
            "duplicated",
        ),
    ],
)
def test_survey_problems_catch_what_awx_refuses(survey, problem):
    assert any(problem in p for p in awx_objects.survey_problems(survey)), awx_objects.survey_problems(survey)


def test_a_survey_variable_without_a_spec_is_refused():
    with pytest.raises(ValueError, match="not an option of the gpu_operator argument spec"):
        awx_objects.question({"variable": "gpu_operator_no_such_thing", "spec": "gpu_operator"}, SPECS)
    with pytest.raises(ValueError, match="no argument spec named"):
        awx_objects.question({"variable": "x", "spec": "nope"}, SPECS)
    with pytest.raises(ValueError, match="cannot be a survey answer"):
        awx_objects.question({"variable": "gpu_operator_tolerations", "spec": "gpu_operator"}, SPECS)


@functools.cache
def _module_options(module: str) -> dict:
    out = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "module", "--json", module], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)[module]["doc"]["options"]


def test_every_awx_module_option_exists():
    for task in TASKS:
        (module,) = [k for k in task if k.startswith("awx.awx.")]
        options = _module_options(module)
        for key, value in task[module].items():
            assert key in options, f"{task['name']}: {module} has no option {key}"
            choices = options[key].get("choices")
            if choices and not (isinstance(value, str) and "{{" in value):
                assert value in choices, f"{task['name']}: {key}={value!r} not in {choices}"
        if module == "awx.awx.workflow_job_template":
            node_options = options["workflow_nodes"]["suboptions"]
            for node in task[module]["workflow_nodes"]:
                assert set(node) <= set(node_options), node


def test_workflow_nodes_name_job_templates_that_exist():
    names = {t["awx.awx.job_template"]["name"] for t in TASKS if "awx.awx.job_template" in t}
    for task in TASKS:
        args = task.get("awx.awx.workflow_job_template")
        if args:
            for node in args["workflow_nodes"]:
                assert node["unified_job_template"]["name"] in names


def test_job_templates_run_playbooks_of_the_project():
    for task in TASKS:
        args = task.get("awx.awx.job_template")
        if args:
            assert (ROOT / args["playbook"]).is_file(), args["playbook"]


def test_the_upgrade_driver_spec_names_only_variables_the_playbook_reads():
    text = "".join(
        p.read_text()
        for p in [
            ROOT / "playbooks" / "upgrade_driver.yml",
            *(ROOT / "playbooks" / "tasks").glob("upgrade_driver*.yml"),
        ]
    )
    read = set(re.findall(r"\bupgrade_driver_[a-z_]+", text))
    for name in SPECS["upgrade_driver"]:
        assert name in read, f"{name} is in playbooks/argument_specs/upgrade_driver.yml but the playbook never reads it"


def test_the_site_spec_names_only_variables_site_yml_or_its_roles_read():
    # Collection-wide conventions (gpuops_*) are read by site.yml or by the roles' defaults.
    text = (ROOT / "playbooks" / "site.yml").read_text()
    text += "".join(p.read_text() for p in (ROOT / "roles").glob("*/defaults/main.yml"))
    for name in SPECS["site"]:
        assert re.search(rf"\b{name}\b", text), f"{name} is in playbooks/argument_specs/site.yml but nothing reads it"


def test_the_controller_playbook_parses():
    out = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", str(ROOT / "awx" / "controller.yml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
