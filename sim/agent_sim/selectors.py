"""Label and field selectors (``labelSelector=``, ``fieldSelector=``) as the API parses them.

Label selectors accept the equality forms (``a=b``, ``a==b``, ``a!=b``), existence
(``a``, ``!a``) and the set forms (``a in (x,y)``, ``a notin (x)``), comma meaning AND,
as ``k8s.io/apimachinery/pkg/labels`` does. Field selectors accept ``=``, ``==`` and
``!=`` on the fields a resource declares selectable. A malformed selector is a
:class:`SelectorError` whose message names the parameter, answered as 400 BadRequest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["FieldSelector", "LabelSelector", "SelectorError"]

# A label key: optional DNS-subdomain prefix, then a name of at most 63 characters.
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY_RE = re.compile(
    rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}$"
)
_VALUE_RE = re.compile(rf"^({_NAME})?$")
_SET_RE = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s*\((.*)\)\s*$")


class SelectorError(ValueError):
    """A selector the server would reject with 400 BadRequest."""


@dataclass(frozen=True, slots=True)
class _LabelRequirement:
    key: str
    operator: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        if self.operator == "in":
            return self.key in labels and labels[self.key] in self.values
        # notin, like !=, also matches objects that lack the label.
        return self.key not in labels or labels[self.key] not in self.values


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed label selector; the empty selector matches everything."""

    requirements: tuple[_LabelRequirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse the ``labelSelector`` query parameter."""
        if not text or not text.strip():
            return cls()
        return cls(tuple(_parse_label_term(term, text) for term in _split_terms(text)))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these labels is selected."""
        present = labels or {}
        return all(r.matches(present) for r in self.requirements)


def _split_terms(text: str) -> list[str]:
    # Commas separate terms except inside the parentheses of a set.
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _check_key(key: str, text: str) -> str:
    if not _KEY_RE.match(key):
        raise SelectorError(
            f"unable to parse labelSelector {text!r}: invalid label key {key!r}: a label key "
            "must be an optional DNS subdomain prefix and '/', then at most 63 alphanumeric "
            "characters, '-', '_' or '.', starting and ending with an alphanumeric character"
        )
    return key


def _check_value(value: str, key: str, text: str) -> str:
    if not _VALUE_RE.match(value):
        raise SelectorError(
            f"unable to parse labelSelector {text!r}: invalid value {value!r} for label "
            f"{key!r}: a label value must be empty or at most 63 alphanumeric characters, "
            "'-', '_' or '.', starting and ending with an alphanumeric character"
        )
    return value


def _parse_label_term(term: str, text: str) -> _LabelRequirement:
    stripped = term.strip()
    if not stripped:
        raise SelectorError(f"unable to parse labelSelector {text!r}: empty requirement")
    set_match = _SET_RE.match(stripped)
    if set_match:
        key = _check_key(set_match.group(1), text)
        raw_values = [v.strip() for v in set_match.group(3).split(",")]
        if set_match.group(2) == "in" and raw_values == [""]:
            raise SelectorError(
                f"unable to parse labelSelector {text!r}: {key!r} in () needs at least one value"
            )
        values = frozenset(_check_value(v, key, text) for v in raw_values)
        return _LabelRequirement(key, set_match.group(2), values)
    for operator, kind in (("!=", "notin"), ("==", "in"), ("=", "in")):
        if operator in stripped:
            key, _, value = stripped.partition(operator)
            key, value = key.strip(), value.strip()
            _check_key(key, text)
            return _LabelRequirement(key, kind, frozenset({_check_value(value, key, text)}))
    if stripped.startswith("!"):
        return _LabelRequirement(_check_key(stripped[1:].strip(), text), "!exists", frozenset())
    return _LabelRequirement(_check_key(stripped, text), "exists", frozenset())


@dataclass(frozen=True, slots=True)
class _FieldRequirement:
    field: str
    value: str
    equal: bool


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A parsed field selector over a resource's selectable fields."""

    requirements: tuple[_FieldRequirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None, *, allowed: tuple[str, ...], custom: bool) -> FieldSelector:
        """Parse the ``fieldSelector`` query parameter against the ``allowed`` fields.

        ``custom`` picks the error text: custom resources and built-in types word an
        unknown field differently.
        """
        if not text or not text.strip():
            return cls()
        requirements = []
        for term in text.split(","):
            stripped = term.strip()
            operator = next((op for op in ("!=", "==", "=") if op in stripped), None)
            if operator is None:
                raise SelectorError(
                    f"invalid fieldSelector {text!r}: {stripped!r} is not of the form "
                    "field=value, field==value or field!=value"
                )
            field, _, value = stripped.partition(operator)
            equal = operator != "!="
            field = field.strip()
            if field not in allowed:
                if custom:
                    known = ", ".join(f'"{f}"' for f in allowed)
                    raise SelectorError(f'"{field}" is not a known field selector: only {known}')
                raise SelectorError(f"field label not supported: {field}")
            requirements.append(_FieldRequirement(field, value.strip(), equal))
        return cls(tuple(requirements))

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether an object whose selectable fields are ``fields`` is selected."""
        return all((fields.get(r.field, "") == r.value) == r.equal for r in self.requirements)

    def exact(self, field: str) -> str | None:
        """The value ``field`` must equal, when the selector pins it (``field=value``)."""
        for r in self.requirements:
            if r.field == field and r.equal:
                return r.value
        return None
