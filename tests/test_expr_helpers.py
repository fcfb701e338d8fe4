"""Shared helpers for the expression-language test tables.

Every table row carries ``src``: where the expected behaviour comes from (expr-lang's
docs/tests or Argo's docs/tests), so a failing row can be traced to its authority.
Values are compared with Go's typing in mind: ``1`` and ``1.0`` and ``True`` are three
different results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.expr.gotime import GoDuration, GoTime


@dataclass(frozen=True)
class Ok:
    """``expr`` evaluates to ``want``."""

    expr: str
    want: Any
    src: str
    env: dict[str, Any] = field(default_factory=dict)
    argo: bool = False

    def __str__(self) -> str:
        return self.expr


@dataclass(frozen=True)
class Err:
    """``expr`` fails in ``phase`` ("compile" or "run") with a message containing ``message``."""

    expr: str
    message: str
    phase: str
    src: str
    env: dict[str, Any] = field(default_factory=dict)
    argo: bool = False

    def __str__(self) -> str:
        return self.expr


def same(got: Any, want: Any) -> bool:
    """Equality that also compares Go types (int vs float vs bool, list vs map)."""
    if isinstance(want, bool) or isinstance(got, bool):
        return type(got) is type(want) and got == want
    if isinstance(want, GoDuration) or isinstance(got, GoDuration):
        return (
            isinstance(got, GoDuration) and isinstance(want, GoDuration) and int(got) == int(want)
        )
    if isinstance(want, int):
        return isinstance(got, int) and not isinstance(got, float) and got == want
    if isinstance(want, float):
        return isinstance(got, float) and (got == want or (got != got and want != want))
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(same(g, w) for g, w in zip(got, want, strict=True))
        )
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and set(got) == set(want)
            and all(same(got[k], want[k]) for k in want)
        )
    if isinstance(want, GoTime):
        return isinstance(got, GoTime) and got.unix_nano() == want.unix_nano()
    return type(got) is type(want) and bool(got == want)


def case_id(case: Any) -> str:
    return str(case)[:60]
