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
from .errors import ExprError
from .jsonpath import query as _query
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
    """Argo's ``jsonpath(jsonString, path)`` (``util/expr/env.jsonPath``).

    The document is decoded with ``json.Unmarshal`` (numbers are float64, a number out of
    float64's range is an error), then queried with evilmonkeyinc/jsonpath v0.8.1's
    ``Query`` (:mod:`agent.expr.jsonpath`): a definite path gives the value, wildcards,
    ranges, unions, filters and recursive descent give lists, a missing key is an error.
    """
    return _query(path, from_json(document))


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
