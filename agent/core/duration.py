"""Go durations (``time.ParseDuration``), the format of Argo's duration settings.

``ARGO_AGENT_PATCH_RATE=250ms``, plugin ``requeue: 1m30s``, retry backoffs and the
expression language's ``duration("1h")`` are Go durations. :func:`parse_duration_nanos`
is the one parser (Go's algorithm: int64 nanoseconds, the same overflow); it raises
:class:`DurationError` and each caller words it: settings name the offending variable (Argo
panics on an unparsable one), the expression language repeats Go's own message.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["DurationError", "parse_duration", "parse_duration_nanos"]

_NS = 1
_US = 1_000
_MS = 1_000_000
_S = 1_000_000_000
_UNITS = {
    "ns": _NS,
    "us": _US,
    "µs": _US,  # U+00B5 micro sign
    "μs": _US,  # U+03BC Greek mu
    "ms": _MS,
    "s": _S,
    "m": 60 * _S,
    "h": 3600 * _S,
}
_PART = re.compile(r"([0-9]*)(\.[0-9]*)?([^0-9.]*)")
_INT64_MAX = 2**63 - 1

Reason = Literal["invalid duration", "missing unit", "unknown unit"]


class DurationError(ValueError):
    """``text`` is not a Go duration; ``reason`` is what Go's message says is wrong and
    ``unit`` the offending unit (for ``"unknown unit"``)."""

    def __init__(self, text: str, reason: Reason, unit: str = "") -> None:
        if reason == "unknown unit":
            super().__init__(f"unknown unit {unit!r} in duration {text!r}")
        elif reason == "missing unit":
            super().__init__(f"missing unit in duration {text!r}")
        else:
            super().__init__(f"invalid duration {text!r}")
        self.text = text
        self.reason: Reason = reason
        self.unit = unit


def parse_duration_nanos(text: str) -> int:
    """Parse a Go duration such as ``1h2m3.5s`` or ``-250ms`` into nanoseconds.

    As in Go, ``"0"`` is valid without a unit, every other term needs one, an empty string
    is an error, and so is a total beyond an int64.
    """
    original = text
    sign = 1
    if text[:1] in ("-", "+"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise DurationError(original, "invalid duration")
    total = 0
    while text:
        match = _PART.match(text)
        if not match:  # pragma: no cover - the pattern matches any prefix
            raise DurationError(original, "invalid duration")
        whole, frac, unit = match.group(1), match.group(2) or "", match.group(3)
        if not whole and len(frac) <= 1:
            raise DurationError(original, "invalid duration")
        if not unit:
            raise DurationError(original, "missing unit")
        unit_ns = _UNITS.get(unit)
        if unit_ns is None:
            raise DurationError(original, "unknown unit", unit)
        value = int(whole or "0") * unit_ns
        if len(frac) > 1:
            digits = frac[1:]
            value += int(digits) * unit_ns // (10 ** len(digits))
        total += value
        if total > _INT64_MAX + (1 if sign < 0 else 0):
            raise DurationError(original, "invalid duration")
        text = text[match.end() :]
    return sign * total


def parse_duration(text: str) -> float:
    """:func:`parse_duration_nanos` in seconds; the :class:`ValueError` names the text."""
    try:
        return parse_duration_nanos(text) / _S
    except DurationError as exc:
        if exc.reason == "invalid duration":
            raise ValueError(f"invalid duration {text!r}") from None
        raise ValueError(f"missing or unknown unit in duration {text!r}") from None
