"""``{{...}}`` template rendering with Argo's rules (``util/template``).

A tag runs from ``{{`` to the *first* following ``}}`` (fasttemplate). Two kinds:

* ``{{=expr}}`` -- an expression tag, evaluated with Argo's environment (functions and
  dotted-key expansion). The result is JSON-marshalled; a JSON string is inserted
  without its quotes (``{{='a'}}`` -> ``a``), anything else as compact JSON with sorted
  keys (``{{=[1, 2]}}`` -> ``[1,2]``, ``{{=4/2}}`` -> ``2``). A nil result is an error.
* ``{{name}}`` -- a simple tag: the trimmed name is looked up in the (flat) map; the value
  must be a string. For ``{{outer-{{inner}}}}`` Argo resolves the inner tag first and
  leaves ``{{outer-<value>}}`` for a later pass; so do we.

Argo applies these rules to a JSON-encoded template and writes JSON-escaped output; this
function works on the plain string, so its output is what Argo's is once decoded. Errors
carry Argo's texts (``failed to evaluate expression: ...``, ``failed to resolve {{x}}``).
As an extension for callers that pass nested maps, a simple tag that is not a flat key
is also looked up as a dotted path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ExprError, Panic
from .program import evaluate
from .state import DEFAULT_LIMITS, Limits
from .values import json_marshal

__all__ = ["render"]

_OPEN, _CLOSE = "{{", "}}"


def _lookup(env: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    if name in env:
        return True, env[name]
    node: Any = env
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _simple(tag: str, env: Mapping[str, Any]) -> str:
    found, value = _lookup(env, tag.strip())
    if not found:
        nested = tag.rfind(_OPEN)
        if nested > 0:
            inner_found, inner = _lookup(env, tag[nested + 2 :])
            if inner_found and isinstance(inner, str):
                return _OPEN + tag[:nested] + inner
        raise ExprError(f"failed to resolve {{{{{tag}}}}}", kind="template")
    if not isinstance(value, str):
        raise ExprError(f"failed to resolve {{{{{tag}}}}} to string", kind="template")
    return value


def _expression(source: str, env: Mapping[str, Any], limits: Limits) -> str:
    try:
        result = evaluate(source, env, argo=True, limits=limits)
    except ExprError as exc:
        raise ExprError(
            f"failed to evaluate expression: {exc}", kind=exc.kind, phase=exc.phase
        ) from None
    if result is None:
        raise ExprError(f'failed to evaluate expression "{source}"', kind="template")
    if isinstance(result, str):
        return result
    try:
        return json_marshal(result)
    except Panic as exc:
        raise ExprError(
            f"failed to marshal evaluated expression: {exc.message}", kind="template"
        ) from None


def render(text: str, env: Mapping[str, Any], *, limits: Limits = DEFAULT_LIMITS) -> str:
    """Replace every ``{{=expr}}`` and ``{{name}}`` tag in ``text``.

    Raises :class:`ExprError` (with Argo's text) when a tag cannot be resolved.
    """
    out: list[str] = []
    position = 0
    while True:
        start = text.find(_OPEN, position)
        if start < 0:
            out.append(text[position:])
            return "".join(out)
        end = text.find(_CLOSE, start + 2)
        if end < 0:
            raise ExprError(
                f'Cannot find end tag="}}}}" in the template="{text}"'
                f' starting from "{text[start + 2 :]}"',
                kind="template",
            )
        out.append(text[position:start])
        tag = text[start + 2 : end]
        if tag.startswith("="):
            out.append(_expression(tag[1:], env, limits))
        else:
            out.append(_simple(tag, env))
        position = end + 2
