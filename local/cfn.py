"""CloudFormation's template language: YAML with its short-form tags, and the intrinsic functions evaluated locally.

`parse` reads a template's text into a plain document (`load` reads any YAML in that language, a part of a
template too), `!Ref X` as `{"Ref": "X"}` and `!GetAtt X.Arn` as `{"Fn::GetAtt": ["X", "Arn"]}`. A `Resolver`
evaluates the intrinsic functions and conditions of such a document against local values (parameters, pseudo
parameters, physical names, attributes); anything it cannot evaluate raises `TemplateError`, naming the function
and where it is.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import yaml  # type: ignore[import-untyped, unused-ignore]


class TemplateError(Exception):
    """The template uses something the local stack cannot read or emulate; the message says what and where."""


# ---------------------------------------------------------------- YAML with CloudFormation's tags


class CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc, unused-ignore]
    """A safe YAML loader that turns CloudFormation's short-form tags into their long form.

    LibYAML's parser where PyYAML was built with it (its wheels are): template.yaml in a sixth of the time.
    """


def _long_form(name: str) -> Callable[[Any, Any], dict[str, Any]]:
    def construct(loader: Any, node: Any) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if name == "Fn::GetAtt" and isinstance(value, str):
            resource, dot, attribute = value.partition(".")
            if not dot:
                raise TemplateError(f"!GetAtt {value!r} is not Resource.Attribute (line {node.start_mark.line + 1})")
            value = [resource, attribute]
        return {name: value}

    return construct


for _tag in ("Ref", "Condition"):
    CfnLoader.add_constructor(f"!{_tag}", _long_form(_tag))
for _tag in (
    *("GetAtt", "Sub", "If", "Equals", "Not", "And", "Or", "Select", "Split", "Join", "FindInMap"),
    *("GetAZs", "ImportValue", "Base64", "Cidr", "Contains"),
):
    CfnLoader.add_constructor(f"!{_tag}", _long_form(f"Fn::{_tag}"))


def load(text: str) -> Any:
    """YAML in CloudFormation's language (a template, or a part of one) as plain data, short-form tags in long form."""
    try:
        return yaml.load(text, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise TemplateError(f"template is not valid YAML: {exc}") from exc


def parse(text: str) -> dict[str, Any]:
    """A template's text as a plain document, short-form tags in their long form."""
    document = load(text)
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError("template has no Resources mapping")
    return document


# ---------------------------------------------------------------- intrinsic functions


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()
"""What Ref AWS::NoValue evaluates to: the key or list item holding it is removed."""
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def as_text(value: Any, where: str) -> str:
    """A scalar as CloudFormation writes it into a string (booleans as true/false); TemplateError for the rest."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise TemplateError(f"{where}: expected a string, got {type(value).__name__} {value!r}")


def _pair(value: Any, where: str, what: str, length: int = 2) -> list[Any]:
    if not isinstance(value, list) or len(value) != length:
        raise TemplateError(f"{where}: {what} takes a list of {length}, got {value!r}")
    return value


class Documented(Protocol):
    """What carries a parsed template document, as `local.specs.Template` does."""

    @property
    def document(self) -> Mapping[str, Any]: ...


class Resolver:
    """Evaluates intrinsic functions against local values: parameters, pseudo parameters, physical names.

    `parameters` override the template's defaults; `physical` gives what Ref of a resource returns
    and `attributes` what Fn::GetAtt returns, keyed by (logical id, attribute). Conditions, parameter
    definitions and mappings come from `template` (a `local.specs.Template` or a parsed document).
    """

    def __init__(
        self,
        parameters: Mapping[str, str],
        pseudo: Mapping[str, str],
        physical: Mapping[str, str],
        attributes: Mapping[tuple[str, str], str],
        *,
        template: Documented | Mapping[str, Any] | None = None,
    ) -> None:
        if template is None or isinstance(template, Mapping):
            document: Mapping[str, Any] = template or {}
        else:
            document = template.document
        self._definitions: Mapping[str, Any] = document.get("Parameters") or {}
        self._mappings: Mapping[str, Any] = document.get("Mappings") or {}
        self._conditions: Mapping[str, Any] = document.get("Conditions") or {}
        self._resources: Mapping[str, Any] = document.get("Resources") or {}
        self.parameters = dict(parameters)
        self.pseudo = dict(pseudo)
        self.physical = dict(physical)
        self.attributes = dict(attributes)
        self._known: dict[str, bool] = {}
        self._evaluating: set[str] = set()
        self._functions: dict[str, Callable[[Any, str], Any]] = {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::If": self._if,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::Join": self._join,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": self._base64,
        }

    def resolve(self, value: Any, where: str = "value") -> Any:
        """`value` with every intrinsic function evaluated; AWS::NoValue removes its key or list item (None at top)."""
        resolved = self._value(value, where)
        return None if resolved is NO_VALUE else resolved

    def parameter(self, name: str, where: str = "Parameters") -> Any:
        """A template parameter's value: given, else its default; a list for list types."""
        definition = self._definitions.get(name) or {}
        if name in self.parameters:
            value: Any = self.parameters[name]
        elif "Default" in definition:
            value = definition["Default"]
        else:
            raise TemplateError(f"{where}: parameter {name} has no value and no default")
        text = value if isinstance(value, list) else as_text(value, where)
        kind = str(definition.get("Type", "String"))
        if isinstance(text, str) and (kind == "CommaDelimitedList" or kind.startswith("List<")):
            return text.split(",")
        return text

    def condition_holds(self, name: str | None, where: str = "Conditions") -> bool:
        """Whether a template condition is true for these parameters (no condition: true)."""
        if name is None:
            return True
        if name in self._known:
            return self._known[name]
        if name not in self._conditions:
            hint = "" if self._conditions else " (was the Resolver built without template=...?)"
            raise TemplateError(f"{where}: unknown condition {name!r}{hint}")
        if name in self._evaluating:
            raise TemplateError(f"{where}: condition {name} depends on itself")
        self._evaluating.add(name)
        try:
            self._known[name] = self._truth(self._conditions[name], f"Conditions.{name}")
        finally:
            self._evaluating.discard(name)
        return self._known[name]

    def _value(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Ref" or key.startswith("Fn::"):
                    function = self._functions.get(key)
                    if function is None:
                        raise TemplateError(f"{where}: intrinsic function {key} is not supported by the local stack")
                    return function(arg, f"{where}.{key}")
            resolved = {key: self._value(item, f"{where}.{key}") for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not NO_VALUE}
        if isinstance(value, list):
            items = [self._value(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if item is not NO_VALUE]
        return value

    def _truth(self, value: Any, where: str) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Condition":
                return self.condition_holds(arg, where)
            if key == "Fn::Equals":
                left, right = (self._value(side, f"{where}.Fn::Equals") for side in _pair(arg, where, key))
                return bool(self._comparable(left, where) == self._comparable(right, where))
            if key == "Fn::Not":
                return not self._truth(_pair(arg, where, key, 1)[0], f"{where}.Fn::Not")
            if key in ("Fn::And", "Fn::Or") and isinstance(arg, list) and arg:
                truths = (self._truth(item, f"{where}.{key}[{i}]") for i, item in enumerate(arg))
                return all(truths) if key == "Fn::And" else any(truths)
        raise TemplateError(f"{where}: {value!r} is not a condition (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition)")

    @staticmethod
    def _comparable(value: Any, where: str) -> Any:
        return [as_text(item, where) for item in value] if isinstance(value, list) else as_text(value, where)

    def _ref(self, name: Any, where: str) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"{where}: Ref takes a name, got {name!r}")
        if name == "AWS::NoValue":
            return NO_VALUE
        if name.startswith("AWS::"):
            if name not in self.pseudo:
                raise TemplateError(f"{where}: pseudo parameter {name} has no local value")
            return self.pseudo[name]
        if name in self.parameters or name in self._definitions:
            return self.parameter(name, where)
        if name in self.physical:
            return self.physical[name]
        if name in self._resources:
            kind = self._resources[name].get("Type", "?")
            raise TemplateError(f"{where}: Ref {name} ({kind}): the local stack has no physical name for it")
        raise TemplateError(f"{where}: Ref to {name!r}, which is neither a parameter nor a resource")

    def _get_att(self, arg: Any, where: str) -> Any:
        resource, attribute = _pair(arg, where, "Fn::GetAtt")
        key = (resource, as_text(self._value(attribute, where), where))
        if key not in self.attributes:
            raise TemplateError(f"{where}: Fn::GetAtt {key[0]}.{key[1]} has no local value")
        return self.attributes[key]

    def _sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict):
            text = arg[0]
            variables = {name: self._value(value, f"{where}.{name}") for name, value in arg[1].items()}
        else:
            raise TemplateError(f"{where}: Fn::Sub takes a string or [string, {{variables}}], got {arg!r}")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} writes ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                value = self._get_att(name.split(".", 1), f"{where}.${{{name}}}")
            else:
                value = self._ref(name, f"{where}.${{{name}}}")
            return as_text(value, f"{where}.${{{name}}}")

        return _SUB_VARIABLE.sub(substitute, text)

    def _if(self, arg: Any, where: str) -> Any:
        condition, if_true, if_false = _pair(arg, where, "Fn::If", 3)
        holds = self.condition_holds(condition, where)
        return self._value(if_true if holds else if_false, f"{where}[{1 if holds else 2}]")

    def _select(self, arg: Any, where: str) -> Any:
        index, items = (self._value(item, where) for item in _pair(arg, where, "Fn::Select"))
        if not isinstance(items, list) or not as_text(index, where).isdigit() or int(index) >= len(items):
            raise TemplateError(f"{where}: Fn::Select index {index!r} is not within {items!r}")
        return items[int(index)]

    def _split(self, arg: Any, where: str) -> list[str]:
        delimiter, text = (as_text(self._value(item, where), where) for item in _pair(arg, where, "Fn::Split"))
        return text.split(delimiter)

    def _join(self, arg: Any, where: str) -> str:
        delimiter, items = _pair(arg, where, "Fn::Join")
        values = self._value(items, where)
        if not isinstance(values, list):
            raise TemplateError(f"{where}: Fn::Join takes a list, got {values!r}")
        return as_text(delimiter, where).join(as_text(value, where) for value in values)

    def _find_in_map(self, arg: Any, where: str) -> Any:
        name, top, second = (as_text(self._value(item, where), where) for item in _pair(arg, where, "Fn::FindInMap", 3))
        try:
            return self._mappings[name][top][second]
        except (KeyError, TypeError) as exc:
            raise TemplateError(f"{where}: Fn::FindInMap [{name}, {top}, {second}] is not in Mappings") from exc

    def _base64(self, arg: Any, where: str) -> str:
        return base64.b64encode(as_text(self._value(arg, where), where).encode()).decode()
