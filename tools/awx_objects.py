"""AWX objects as code: awx/controller.yml (an awx.awx playbook) from awx/templates.yml.

    tools/awx_objects.py            write awx/controller.yml (make awx)
    tools/awx_objects.py --check    exit 1 when awx/controller.yml is stale or a survey is wrong

Each survey question names a variable; its question type, choices, default, description and
whether it is required come from the argument spec documenting that variable (the roles'
meta/argument_specs.yml, playbooks/argument_specs/<playbook>.yml), never copied by hand:
choices -> multiplechoice, bool -> multiplechoice true/false, int -> integer, str/path -> text.
Lists and dicts cannot be survey answers and are refused. Every survey is checked the way AWX's
API checks one on save (awx/api/views JobTemplateSurveySpec._validate_spec_data).

Apply the playbook with the awx.awx collection against your controller:

    CONTROLLER_HOST=https://awx.example.org CONTROLLER_OAUTH_TOKEN=... \\
      ansible-playbook awx/controller.yml -e awx_project_scm_url=https://git.example.org/gpuops/cluster.git \\
        -e awx_ee_image=registry.example.org/gpuops/ee:1 -e awx_inventory=gpu-fleet \\
        -e '{"awx_credentials": ["gpu-hosts ssh", "gpu cluster api"]}'
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "awx" / "templates.yml"
OUTPUT = ROOT / "awx" / "controller.yml"
# AWX's SURVEY_TYPE_MAPPING (awx/main/constants.py): question type -> Python type of a default.
SURVEY_TYPES = {
    "text": str,
    "textarea": str,
    "password": str,
    "multiplechoice": str,
    "multiselect": str,
    "integer": int,
    "float": (float, int),
}
MARKUP = re.compile(r"\b([A-Z])\(([^)]*)\)")


def argument_specs(root: Path = ROOT) -> dict[str, dict]:
    """Spec name -> options: every role's entry point `main` (by role name; other entry points as
    role:entry) and every playbooks/argument_specs/<name>.yml (by playbook name)."""
    specs = {}
    for path in sorted((root / "roles").glob("*/meta/argument_specs.yml")):
        role = path.parent.parent.name
        for entry, spec in (yaml.safe_load(path.read_text()).get("argument_specs") or {}).items():
            specs[role if entry == "main" else f"{role}:{entry}"] = spec.get("options") or {}
    for path in sorted((root / "playbooks" / "argument_specs").glob("*.yml")):
        spec = yaml.safe_load(path.read_text())["argument_specs"]["main"]
        specs[path.stem] = spec.get("options") or {}
    return specs


def plain(text) -> str:
    """Argument-spec markup (C(x), O(y), E(Z)...) as plain text, one paragraph."""
    if isinstance(text, list):
        text = " ".join(text)
    return MARKUP.sub(lambda m: m.group(2), str(text or "")).strip()


def question(item: dict, specs: dict[str, dict]) -> dict:
    """One AWX survey question from a survey entry {variable, spec[, question, min, max, required]}."""
    name, spec_name = item["variable"], item["spec"]
    if spec_name not in specs:
        raise ValueError(f"survey variable {name}: no argument spec named {spec_name!r}")
    option = specs[spec_name].get(name)
    if option is None:
        raise ValueError(f"survey variable {name}: not an option of the {spec_name} argument spec")
    kind = option.get("type", "str")
    description = plain(option.get("description"))
    title = description.split(". ")[0].rstrip(".")
    if len(title) > 80:
        title = title[:77].rsplit(" ", 1)[0] + "..."
    out = {
        "question_name": item.get("question") or title or name,
        "question_description": description,
        "variable": name,
        "required": bool(item.get("required", option.get("required", False))),
    }
    default = option.get("default")
    if option.get("choices"):
        out["type"] = "multiplechoice"
        out["choices"] = [str(c) for c in option["choices"]]
        if default is not None:
            out["default"] = str(default)
    elif kind == "bool":
        out["type"] = "multiplechoice"
        out["choices"] = ["true", "false"]
        if default is not None:
            out["default"] = "true" if default else "false"
    elif kind == "int":
        out["type"] = "integer"
        if default is not None:
            out["default"] = int(default)
        for key in ("min", "max"):
            if key in item:
                out[key] = int(item[key])
    elif kind in ("str", "path", "raw"):
        out["type"] = "text"
        if default is not None:
            out["default"] = str(default)
    else:
        raise ValueError(f"survey variable {name}: type {kind} cannot be a survey answer")
    return out


def survey_problems(survey: dict) -> list[str]:
    """What AWX's API would refuse in a survey spec (JobTemplateSurveySpec._validate_spec_data)."""
    problems = []
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if not isinstance(survey.get(field), kind):
            problems.append(f"field {field!r} missing or not a {kind.__name__}")
    spec = survey.get("spec") if isinstance(survey.get("spec"), list) else []
    if not spec:
        problems.append("'spec' doesn't contain any items")
    seen = set()
    for idx, item in enumerate(spec):
        if not isinstance(item, dict):
            problems.append(f"question {idx} is not an object")
            continue
        for field, kind in (("type", str), ("question_name", str), ("variable", str), ("required", bool)):
            if not isinstance(item.get(field), kind):
                problems.append(f"question {idx}: {field!r} missing or not a {kind.__name__}")
        if item.get("variable") in seen:
            problems.append(f"question {idx}: variable {item.get('variable')!r} duplicated")
        seen.add(item.get("variable"))
        qtype = item.get("type")
        if qtype not in SURVEY_TYPES:
            problems.append(f"question {idx}: type {qtype!r} is not one of {', '.join(SURVEY_TYPES)}")
            continue
        if "default" in item and item["default"] != "" and not isinstance(item["default"], SURVEY_TYPES[qtype]):
            problems.append(f"question {idx}: default {item['default']!r} is not a {qtype}")
        for key in ("min", "max"):
            if key in item and item[key] is not None and not isinstance(item[key], int):
                problems.append(f"question {idx}: {key} is not an integer")
        if qtype in ("multiplechoice", "multiselect"):
            choices = item.get("choices")
            if not choices:
                problems.append(f"question {idx}: {qtype} needs choices")
                continue
            defaults = item.get("default", "")
            defaults = [d for d in defaults.splitlines() if d.strip()] if isinstance(defaults, str) else list(defaults)
            if qtype == "multiplechoice" and len(defaults) > 1:
                problems.append(f"question {idx}: a multiplechoice has one default")
            if any(d not in choices for d in defaults):
                problems.append(f"question {idx}: default {defaults} not among the choices {choices}")
    return problems


def build(source: dict, specs: dict[str, dict]) -> tuple[dict, list[str]]:
    """(the playbook as data, problems)."""
    problems = []
    tasks = [
        {
            "name": "Execution environment",
            "awx.awx.execution_environment": {
                "name": source["execution_environment"]["name"],
                "description": source["execution_environment"]["description"],
                "image": "{{ awx_ee_image }}",
                "organization": "{{ awx_organization }}",
                "pull": "missing",
            },
        },
        {
            "name": "Project",
            "awx.awx.project": {
                "name": source["project"]["name"],
                "description": source["project"]["description"],
                "organization": "{{ awx_organization }}",
                "scm_type": "git",
                "scm_url": "{{ awx_project_scm_url }}",
                "scm_branch": "{{ awx_project_scm_branch }}",
                "scm_update_on_launch": True,
                "default_environment": source["execution_environment"]["name"],
            },
        },
    ]
    for template in source["job_templates"]:
        args = {
            "name": template["name"],
            "description": " ".join(template["description"].split()),
            "organization": "{{ awx_organization }}",
            "project": source["project"]["name"],
            "playbook": template["playbook"],
            "inventory": "{{ awx_inventory }}",
            "execution_environment": source["execution_environment"]["name"],
            "credentials": "{{ awx_credentials }}",
            "job_type": template.get("job_type", "run"),
        }
        for key in ("diff_mode", "ask_limit_on_launch", "ask_job_slice_count_on_launch", "job_slice_count"):
            if key in template:
                args[key] = template[key]
        if template.get("survey"):
            try:
                spec = [question(item, specs) for item in template["survey"]]
            except ValueError as exc:
                problems.append(f"{template['name']}: {exc}")
                continue
            survey = {"name": template["name"], "description": "Run-wide settings (extra variables).", "spec": spec}
            problems += [f"{template['name']}: survey: {p}" for p in survey_problems(survey)]
            args["survey_enabled"] = True
            args["survey_spec"] = survey
        tasks.append({"name": f"Job template {template['name']}", "awx.awx.job_template": args})
    for workflow in source.get("workflow_job_templates", []):
        nodes = []
        for node in workflow["nodes"]:
            entry = {
                "identifier": node["identifier"],
                "unified_job_template": {"name": node["job_template"], "type": "job_template"},
            }
            if node.get("success"):
                entry["related"] = {"success_nodes": [{"identifier": i} for i in node["success"]]}
            nodes.append(entry)
        tasks.append(
            {
                "name": f"Workflow {workflow['name']}",
                "awx.awx.workflow_job_template": {
                    "name": workflow["name"],
                    "description": " ".join(workflow["description"].split()),
                    "organization": "{{ awx_organization }}",
                    "inventory": "{{ awx_inventory }}",
                    "workflow_nodes": nodes,
                    "destroy_current_nodes": True,
                },
            }
        )
    play = {
        "name": "Create the gpuops.cluster objects in AWX / Automation Platform",
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {
            "awx_organization": "Default",
            "awx_project_scm_url": "https://git.example.org/gpuops/cluster.git",
            "awx_project_scm_branch": "main",
            "awx_ee_image": "registry.example.org/gpuops/ee:latest",
            "awx_inventory": "gpu-fleet",
            "awx_credentials": [],
        },
        "tasks": tasks,
    }
    return [play], problems


HEADER = """\
# Generated by tools/awx_objects.py from awx/templates.yml and the argument specs (make awx);
# do not edit. Creates the execution environment, project, job templates (with surveys) and the
# sliced-run workflow in AWX / Automation Platform with the awx.awx collection:
#   CONTROLLER_HOST=... CONTROLLER_OAUTH_TOKEN=... ansible-playbook awx/controller.yml \\
#     -e awx_project_scm_url=... -e awx_ee_image=... -e awx_inventory=... -e '{"awx_credentials": [...]}'
"""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):  # lists indented under their key
        return super().increase_indent(flow, False)


def render(playbook: list) -> str:
    return "---\n" + HEADER + yaml.dump(playbook, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when stale or wrong")
    args = parser.parse_args(argv)
    playbook, problems = build(yaml.safe_load(SOURCE.read_text()), argument_specs())
    for problem in problems:
        print(f"awx-objects: {problem}", file=sys.stderr)
    if problems:
        return 1
    text = render(playbook)
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            print(f"awx-objects: {OUTPUT.relative_to(ROOT)} is stale: run `make awx`", file=sys.stderr)
            return 1
        print(f"awx-objects: {OUTPUT.relative_to(ROOT)} is current")
        return 0
    OUTPUT.write_text(text)
    print(f"awx-objects: wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
