"""Label and field selectors, parsed and matched the way the apiserver does."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from .errors import bad_request

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


LABEL_VALUE_HELP = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
LABEL_KEY_HELP = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def label_errors(labels: dict[str, Any] | None) -> list[dict[str, str]]:
    """metadata.labels validation causes, worded like the apiserver's."""
    causes = []
    for key, value in (labels or {}).items():
        if not _LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "message": f'Invalid value: "{key}": {LABEL_KEY_HELP}',
                    "field": "metadata.labels",
                }
            )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "message": f"Invalid value: {json.dumps(value)}: {LABEL_VALUE_HELP}",
                    "field": "metadata.labels",
                }
            )
    return causes


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects that lack the label, as upstream does.
        return not present or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside an (a,b) value set."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


_SET_RE = re.compile(r"^(\S+)\s+(in|notin)\s*\(([^)]*)\)$")
_EQ_RE = re.compile(r"^([^=!\s]+)\s*(==|=|!=)\s*(.*)$")


def _check_key(key: str, selector: str) -> None:
    if not _LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise bad_request(
            f'unable to parse requirement: {selector}: invalid label key "{key}": '
            "name part must consist of alphanumeric characters, '-', '_' or '.'"
        )


def _check_value(value: str, selector: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise bad_request(
            f'unable to parse requirement: values[0][{selector}]: Invalid value: "{value}": '
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character"
        )


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse `labelSelector` query syntax: =, ==, !=, in, notin, key, !key."""
    if not text:
        return []
    requirements = []
    for part in _split_top_level(text):
        set_match = _SET_RE.match(part)
        if set_match:
            key, operator, raw_values = set_match.groups()
            values = tuple(v.strip() for v in raw_values.split(",") if v.strip())
            _check_key(key, text)
            for value in values:
                _check_value(value, text)
            requirements.append(Requirement(key, operator, values))
            continue
        if part.startswith("!"):
            key = part[1:].strip()
            _check_key(key, text)
            requirements.append(Requirement(key, "!"))
            continue
        eq_match = _EQ_RE.match(part)
        if eq_match:
            key, operator, value = eq_match.groups()
            value = value.strip()
            _check_key(key, text)
            _check_value(value, text)
            requirements.append(Requirement(key, "!=" if operator == "!=" else "=", (value,)))
            continue
        _check_key(part, text)
        requirements.append(Requirement(part, "exists"))
    return requirements


def labels_match(requirements: list[Requirement], labels: dict[str, str]) -> bool:
    return all(requirement.matches(labels) for requirement in requirements)


def label_selector_object_matcher(selector: dict[str, Any] | None) -> Callable[[dict], bool]:
    """Matcher for a metav1.LabelSelector (matchLabels + matchExpressions), e.g. a PDB's.

    A null selector matches nothing and an empty one matches everything, as for PDBs in
    policy/v1.
    """
    if selector is None:
        return lambda labels: False
    requirements = [
        Requirement(key, "=", (value,))
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or []:
        operator = operators[expression["operator"]]
        requirements.append(
            Requirement(expression["key"], operator, tuple(expression.get("values") or ()))
        )
    return lambda labels: labels_match(requirements, labels)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    negate: bool
    value: str

    def matches(self, fields: dict[str, str]) -> bool:
        equal = fields.get(self.field, "") == self.value
        return not equal if self.negate else equal


def parse_field_selector(
    text: str | None, supported: tuple[str, ...] | list[str]
) -> list[FieldRequirement]:
    """Parse `fieldSelector` (=, ==, !=); unknown fields are a 400 like upstream."""
    if not text:
        return []
    requirements = []
    for part in _split_top_level(text):
        match = re.match(r"^([^=!]+)(==|=|!=)(.*)$", part)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        name, operator, value = match.group(1).strip(), match.group(2), match.group(3).strip()
        if name not in supported:
            raise bad_request(f"field label not supported: {name}")
        requirements.append(FieldRequirement(name, operator == "!=", value))
    return requirements


def fields_match(requirements: list[FieldRequirement], fields: dict[str, str]) -> bool:
    return all(requirement.matches(fields) for requirement in requirements)


def field_value(obj: dict[str, Any], label: str, path: tuple[str, ...] | None = None) -> str:
    """The string a field selector compares against (booleans as "true"/"false")."""
    current: Any = obj
    for segment in path or tuple(label.split(".")):
        if not isinstance(current, dict):
            return ""
        current = current.get(segment)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)
