"""Argo's layer over expr: its environment, its functions and its message texts.

``util/expr/env.GetFuncMap`` builds the environment of ``{{=...}}`` tags and
``retryStrategy.expression``:

* **dotted keys are expanded** into nested maps (``inputs.parameters.x`` becomes
  ``inputs -> parameters -> x``); a less specific key is dropped when a more specific
  one exists (``{"a": 1, "a.b": 2}`` keeps only ``a.b``);
* **functions** are added: ``asInt`` and ``asFloat`` (expr's ``int``/``float``, strict
  parsing), ``toJson`` (compact JSON, sorted keys, ``<>&`` escaped), ``jsonpath(json,
  path)`` and ``sprig`` (see :mod:`agent.expr.sprig`).

``argoexpr.EvalBool`` decides the texts users see in node messages, and the HTTP agent
adds one of its own. Which layer produces which text:

=================================  ===========================================  =========
situation                          message                                      produced by
=================================  ===========================================  =========
compile error                      expr's error as is (``unknown name x (1:1)``  EvalBool
                                   + snippet) -- **not** wrapped
run-time error                     ``unable to evaluate expression '<cond>':``   EvalBool
                                   `` <expr error>``
result is not a bool               ``unable to cast expression result '<v>'``    EvalBool
                                   `` to bool`` (``<v>`` printed with Go's
                                   ``%s``: ``%!s(int=201)``)
result is ``false``                ``successCondition '<cond>' evaluated false``  HTTP agent
=================================  ===========================================  =========

:func:`eval_bool` raises :class:`ExprError` whose ``str()`` is exactly EvalBool's text, and
:func:`success_condition_message` returns the node message the HTTP agent would write
(empty when the condition holds).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from .builtins import from_json, to_float, to_go_int
from .errors import ExprError, Panic
from .sprig import sprig_map
from .values import GoFunc, go_sprint_s, json_marshal

__all__ = [
    "ARGO_FUNCTIONS",
    "argo_env",
    "cast_error",
    "eval_bool_error",
    "expand",
    "jsonpath",
    "success_condition_false_message",
]


def expand(env: Mapping[str, Any]) -> dict[str, Any]:
    """``util/expand.Expand``: drop keys that have more specific children, then nest."""
    ordered = sorted(env)
    out: dict[str, Any] = {}
    for key in ordered:
        # A more specific key "key.x" sorts right after "key." in the ordered keys.
        position = bisect.bisect_left(ordered, key + ".")
        if position < len(ordered) and ordered[position].startswith(key + "."):
            continue
        value = env[key]
        if "." not in key:
            out[key] = value
            continue
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return out


# ------------------------------------------------------------------------ jsonpath


def jsonpath(document: str, path: str) -> Any:
    """Argo's ``jsonpath(jsonString, path)``: one value for a definite path, else a list.

    A definite path (only names and indexes) that does not exist is an error, as with
    evilmonkeyinc/jsonpath which Argo uses; wildcards, slices, unions, filters and
    recursive descent return the list of matches.
    """
    data = _unmarshal(document)
    steps = _definite_steps(path)
    if steps is not None:
        return _walk(data, steps)
    try:
        from jsonpath_ng.ext.parser import parse as parse_path
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise Panic(f"jsonpath unavailable: {exc}") from None
    try:
        expression = parse_path(path)
    except Exception as exc:
        raise Panic(f"invalid JSONPath query '{path}': {exc}") from None
    return [match.value for match in expression.find(data)]


def _unmarshal(document: str) -> Any:
    try:
        return from_json(document)
    except Panic as exc:
        raise Panic(exc.message) from None


_STEP_KEY, _STEP_INDEX = "key", "index"


def _definite_steps(path: str) -> list[tuple[str, Any]] | None:
    """Parse ``$.a.b[0]['c']`` into steps; None if the path is not definite."""
    text = path.strip()
    if not text.startswith("$"):
        return None
    i = 1
    steps: list[tuple[str, Any]] = []
    while i < len(text):
        char = text[i]
        if char == ".":
            if text.startswith("..", i):
                return None
            j = i + 1
            while j < len(text) and text[j] not in ".[":
                j += 1
            name = text[i + 1 : j]
            if not name or name == "*":
                return None
            steps.append((_STEP_KEY, name))
            i = j
        elif char == "[":
            end = text.find("]", i)
            if end < 0:
                return None
            inner = text[i + 1 : end].strip()
            if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
                body = inner[1:-1]
                if inner[0] in body:
                    return None
                steps.append((_STEP_KEY, body))
            else:
                try:
                    steps.append((_STEP_INDEX, int(inner)))
                except ValueError:
                    return None
            i = end + 1
        else:
            return None
    return steps


def _walk(data: Any, steps: list[tuple[str, Any]]) -> Any:
    current = data
    for kind, value in steps:
        if kind == _STEP_KEY:
            if current is None:
                raise Panic("key: invalid token target. expected [map] got [nil]")
            if not isinstance(current, dict):
                raise Panic(f"key: invalid token target. expected [map] got [{_kind(current)}]")
            if value not in current:
                raise Panic(f"key: invalid token key '{value}' not found")
            current = current[value]
        else:
            if current is None:
                raise Panic("index: invalid token target. expected [array slice] got [nil]")
            if not isinstance(current, list):
                raise Panic(
                    f"index: invalid token target. expected [array slice] got [{_kind(current)}]"
                )
            index = value + len(current) if value < 0 else value
            if not 0 <= index < len(current):
                raise Panic("index: invalid token out of range")
            current = current[index]
    return current


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "slice"
    if isinstance(value, dict):
        return "map"
    return "invalid"


def _to_json(value: Any) -> str:
    return json_marshal(value)


ARGO_FUNCTIONS: dict[str, Any] = {
    "asInt": GoFunc(
        "asInt", ("any",), "any", to_go_int, go_signature="func(interface {}) interface {}"
    ),
    "asFloat": GoFunc(
        "asFloat", ("any",), "any", to_float, go_signature="func(interface {}) interface {}"
    ),
    "jsonpath": GoFunc("jsonpath", ("string", "string"), "any", jsonpath),
    "toJson": GoFunc("toJson", ("any",), "string", _to_json),
}
_SPRIG = sprig_map()


def argo_env(env: Mapping[str, Any]) -> dict[str, Any]:
    """``env.GetFuncMap``: expanded variables plus Argo's functions (which win on clashes)."""
    out = expand(env)
    out.update(ARGO_FUNCTIONS)
    out["sprig"] = _SPRIG
    return out


# ------------------------------------------------------------------------ messages


def eval_bool_error(source: str, error: ExprError) -> ExprError:
    """Reword an evaluation error as ``argoexpr.EvalBool`` returns it."""
    if error.phase == "compile":
        return error
    wrapped = ExprError(f"unable to evaluate expression '{source}': {error}", kind=error.kind)
    wrapped.line, wrapped.column = error.line, error.column
    return wrapped


def cast_error(result: Any) -> ExprError:
    return ExprError(
        f"unable to cast expression result '{go_sprint_s(result)}' to bool", kind="cast"
    )


def success_condition_false_message(condition: str) -> str:
    """The HTTP agent's message when ``successCondition`` evaluates to false."""
    return f"successCondition '{condition}' evaluated false"
