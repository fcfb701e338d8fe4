"""Compiled programs and the cache that makes "compile once, run many times" automatic.

expr compiles against an environment: which names exist (an env name shadows a builtin)
and what type each top-level value has (``retries + 1`` is a compile error when
``retries`` is a string) are part of compilation. A :class:`Program` therefore parses
its source once and keeps one checked, closure-compiled form per environment *shape*
(names and value types), which for a given ``successCondition`` is always the same:
the first run pays for the check, every later run is a dictionary lookup and a call.

:func:`compile` is memoised per ``(source, argo)`` with an LRU cache, so callers that
just call :func:`evaluate` / :func:`eval_bool` get the same benefit.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from typing import Any

from . import argo as _argo
from .builtins import NAMES as _BUILTIN_NAMES
from .checker import check
from .errors import ExprError, Panic
from .interp import Closure, build
from .parser import PREDICATES, parse
from .state import DEFAULT_LIMITS, Limits, State
from .types import Nature, nature_of
from .values import GoFunc

__all__ = ["Program", "compile", "eval_bool", "evaluate", "success_condition_message"]

_SHADOWABLE = frozenset(_BUILTIN_NAMES | frozenset(PREDICATES))
_MAX_SHAPES = 32


def _shape(scope: Mapping[str, Any]) -> tuple[Any, ...]:
    """Names and value types: what the parse and the type check depend on."""
    types = tuple(map(type, scope.values()))
    if GoFunc in types:  # a function's signature is part of its type
        return (*scope, *types, *(v for v in scope.values() if type(v) is GoFunc))
    return (*scope, *types)


class Program:
    """One expression, ready to run against environments of any shape."""

    __slots__ = ("_lock", "_shapes", "_trees", "argo", "source")

    def __init__(self, source: str, *, argo: bool) -> None:
        self.source = source
        self.argo = argo
        self._trees: dict[frozenset[str], Any] = {}
        self._shapes: dict[tuple[Any, ...], tuple[Closure, int]] = {}
        self._lock = threading.Lock()
        # Parse now so that syntax errors surface at compile time, as in expr.
        self._tree(frozenset())

    def __repr__(self) -> str:
        return f"Program({self.source!r}, argo={self.argo})"

    def _tree(self, overridden: frozenset[str]) -> Any:
        tree = self._trees.get(overridden)
        if tree is None:
            tree = parse(self.source, builtins=_BUILTIN_NAMES, overridden=overridden)
            self._trees[overridden] = tree
        return tree

    def _bind(self, env: Mapping[str, Any], shape: tuple[Any, ...]) -> tuple[Closure, int]:
        overridden = frozenset(name for name in env if name in _SHADOWABLE)
        tree = self._tree(overridden)
        natures: dict[str, Nature] = {name: nature_of(value) for name, value in env.items()}
        try:
            check(tree, self.source, natures)
            compiled = build(tree, self.source)
        except RecursionError:
            raise ExprError(
                "compilation failed: expression is too deeply nested", kind="limit", phase="compile"
            ) from None
        with self._lock:
            if len(self._shapes) >= _MAX_SHAPES:
                self._shapes.pop(next(iter(self._shapes)))
            self._shapes[shape] = compiled
        return compiled

    def check(self, env: Mapping[str, Any]) -> None:
        """Type-check against ``env`` without running (raises :class:`ExprError`)."""
        scope = _argo.argo_env(env) if self.argo else dict(env)
        shape = _shape(scope)
        if shape not in self._shapes:
            self._bind(scope, shape)

    def run(self, env: Mapping[str, Any], *, limits: Limits = DEFAULT_LIMITS) -> Any:
        """Evaluate against ``env``; :class:`ExprError` on any compile or run-time error."""
        scope = _argo.argo_env(env) if self.argo else (env if type(env) is dict else dict(env))
        shape = _shape(scope)
        compiled = self._shapes.get(shape)
        if compiled is None:
            compiled = self._bind(scope, shape)
        closure, slots = compiled
        state = State(scope, limits)
        if slots:
            state.vars = [None] * slots
        try:
            return closure(state)
        except ExprError:
            raise
        except Panic as exc:
            raise ExprError(exc.message, kind=exc.kind) from None
        except RecursionError:
            raise ExprError("evaluation exceeded the maximum nesting depth", kind="limit") from None
        except MemoryError:
            raise ExprError("memory budget exceeded", kind="limit") from None
        except Exception as exc:
            raise ExprError(f"internal error: {type(exc).__name__}: {exc}") from None


@functools.lru_cache(maxsize=1024)
def _cached(source: str, argo: bool) -> Program:
    return Program(source, argo=argo)


def compile(source: str, *, argo: bool = True) -> Program:
    """Parse ``source`` into a :class:`Program` (cached per source and mode).

    ``argo=True`` runs it with Argo's environment (dotted keys expanded, ``asInt``,
    ``toJson``, ``jsonpath``, ``sprig``...); ``argo=False`` with the environment as given.
    Syntax errors raise :class:`ExprError` here; type errors depend on the environment
    and surface on the first :meth:`Program.run`.
    """
    if not isinstance(source, str):
        raise ExprError(f"expression must be a string, got {type(source).__name__}", kind="syntax")
    try:
        return _cached(source, argo)
    except RecursionError:
        raise ExprError(
            "compilation failed: expression is too deeply nested", kind="limit", phase="compile"
        ) from None


def evaluate(
    source: str, env: Mapping[str, Any], *, argo: bool = True, limits: Limits = DEFAULT_LIMITS
) -> Any:
    """Compile (cached) and run ``source`` against ``env``."""
    return compile(source, argo=argo).run(env, limits=limits)


def eval_bool(
    source: str, env: Mapping[str, Any], *, argo: bool = False, limits: Limits = DEFAULT_LIMITS
) -> bool:
    """Argo's ``argoexpr.EvalBool``: the result must be a bool.

    Raises :class:`ExprError` whose text is exactly Argo's: compile errors as expr words
    them, run-time errors as ``unable to evaluate expression '<source>': ...``, a
    non-bool result as ``unable to cast expression result '<v>' to bool``.
    """
    try:
        result = compile(source, argo=argo).run(env, limits=limits)
    except ExprError as exc:
        raise _argo.eval_bool_error(source, exc) from None
    if result is True or result is False:
        return result
    raise _argo.cast_error(result)


def success_condition_message(
    condition: str, env: Mapping[str, Any], *, limits: Limits = DEFAULT_LIMITS
) -> str:
    """The message Argo's HTTP agent writes for ``successCondition``; "" when it holds.

    ``env`` is ``{"request": {...}, "response": {...}}``; no Argo functions are in scope.
    """
    try:
        if eval_bool(condition, env, argo=False, limits=limits):
            return ""
    except ExprError as exc:
        return str(exc)
    return _argo.success_condition_false_message(condition)
