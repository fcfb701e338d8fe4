"""Go value semantics for Python values.

Expressions see the values Go's ``expr`` VM sees, so every operation has to behave as
Go's does. Python values stand in for Go ones:

=====================  ==================================================
Go                     Python
=====================  ==================================================
``nil``                ``None``
``bool``               ``bool`` (always tested *before* ``int``)
``int`` (64-bit)       ``int`` kept in int64 range (arithmetic wraps)
``float64``            ``float``
``string``             ``str``
``[]any``              ``list`` (``bytes`` for ``[]byte``)
``map[string]any``     ``dict``; :class:`AnyKeyMap` for ``map[any]...``
``time.*``             :mod:`agent.expr.gotime` types
functions              :class:`GoFunc`
=====================  ==================================================

This module holds what the interpreter, the builtins and Argo's layer share: Go type
names (for messages), ``fmt``'s ``%v``/``%s`` printing, ``encoding/json`` marshalling,
``runtime.Equal`` / ``Less`` and friends. Operations that fail raise
:class:`~agent.expr.errors.Panic` with Go's wording.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import Panic
from .gotime import RFC3339_NANO, GoDuration, GoLocation, GoMonth, GoTime, GoWeekday, format_layout

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "AnyKeyMap",
    "GoFunc",
    "Param",
    "add",
    "deep_equal",
    "divide",
    "equal",
    "exponent",
    "go_float_v",
    "go_quote",
    "go_sprint",
    "go_sprint_s",
    "go_type",
    "json_marshal",
    "less",
    "modulo",
    "multiply",
    "negate",
    "subtract",
    "to_int",
    "type_name",
    "wrap",
]

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
_U64 = 2**64


def wrap(value: int) -> int:
    """Two's-complement wrap into int64, as Go's integer arithmetic does."""
    if INT64_MIN <= value <= INT64_MAX:
        return value
    return (value + 2**63) % _U64 - 2**63


class AnyKeyMap(dict[Any, Any]):
    """A ``map[any]...`` (``groupBy``, ``fromPairs``): JSON cannot marshal it."""


# A parameter kind of a Go function signature: "any", "string", "int", "float64",
# "bool", "[]any", "map", "time", "duration".
Param = str


@dataclass(frozen=True, slots=True)
class GoFunc:
    """A function value with a Go signature (env functions, Argo's and sprig's).

    Calls are checked as ``reflect.Value.Call`` checks them: argument count, then each
    argument's assignability to its parameter type.
    """

    name: str
    params: tuple[Param, ...]
    result: Param
    impl: Callable[..., Any]
    variadic: bool = False  # last param repeats
    go_signature: str = field(default="")

    def type_string(self) -> str:
        if self.go_signature:
            return self.go_signature
        names = [_PARAM_GO.get(p, p) for p in self.params]
        if self.variadic and names:
            names[-1] = "..." + names[-1]
        return f"func({', '.join(names)}) {_PARAM_GO.get(self.result, self.result)}"


_PARAM_GO = {
    "any": "interface {}",
    "[]any": "[]interface {}",
    "map": "map[string]interface {}",
    "time": "time.Time",
    "duration": "time.Duration",
    "[]string": "[]string",
}


# ------------------------------------------------------------------------ type names


def go_type(value: Any) -> str:
    """The ``%T`` of a value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, GoDuration):
        return "time.Duration"
    if isinstance(value, GoMonth):
        return "time.Month"
    if isinstance(value, GoWeekday):
        return "time.Weekday"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray)):
        return "[]uint8"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if isinstance(value, AnyKeyMap):
        return "map[interface {}]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, GoTime):
        return "time.Time"
    if isinstance(value, GoLocation):
        return "*time.Location"
    if isinstance(value, GoFunc):
        return value.type_string()
    if callable(value):
        return "func(...interface {}) interface {}"
    return type(value).__name__


def type_name(value: Any) -> str:
    """The ``type()`` builtin: nil, bool, int, uint, float, string, array, map, ..."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (GoDuration, GoMonth, GoWeekday)):
        return go_type(value)
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple, bytes, bytearray)):
        return "array"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, GoTime):
        return "time.Time"
    if isinstance(value, GoLocation):
        return "time.Location"
    if isinstance(value, GoFunc) or callable(value):
        return "func"
    return "unknown"


# --------------------------------------------------------------------------- printing


def go_quote(text: str) -> str:
    """``strconv.Quote``: a string as ``%q`` and ``%#v`` print it, in double quotes."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not char.isprintable():
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def go_float_v(value: float) -> str:
    """``%v`` of a float64: shortest digits, exponent form when exp < -4 or >= 6."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, exp = _shortest(value)
    sign = "-" if value < 0 else ""
    # strconv 'g' with shortest precision switches to %e when exp < -4 || exp >= 6.
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return sign + _fixed(digits, exp)


def _shortest(value: float) -> tuple[str, int]:
    """Shortest round-trip digits and the decimal exponent of the first digit."""
    text = repr(abs(value))
    if "e" in text or "E" in text:
        mantissa, _, exp_text = text.lower().partition("e")
        exp = int(exp_text)
    else:
        mantissa, exp = text, 0
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # position of the decimal point relative to the first significant digit
    leading_zeros = len(whole + frac) - len((whole + frac).lstrip("0"))
    point = len(whole) - leading_zeros + exp
    digits = digits.rstrip("0") or "0"
    return digits, point - 1


def _fixed(digits: str, exp: int) -> str:
    point = exp + 1
    if point <= 0:
        return "0." + "0" * (-point) + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


MAX_TEXT = 16 * 1024 * 1024  # largest string a printer may produce (see Limits)


class _Budget:
    """Characters a printer may still emit: aliasing can make output far larger than input."""

    __slots__ = ("left",)

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, text: str) -> str:
        self.left -= len(text)
        if self.left < 0:
            raise Panic("memory budget exceeded", kind="limit")
        return text


def go_sprint(value: Any, *, limit: int = MAX_TEXT) -> str:
    """``fmt.Sprintf("%v", value)`` (a :class:`Panic` beyond ``limit`` characters)."""
    return _sprint(value, _Budget(limit), verb_s=False)


def go_sprint_s(value: Any, *, limit: int = MAX_TEXT) -> str:
    """``fmt.Sprintf("%s", value)``: strings as-is, other scalars as ``%!s(T=v)``."""
    return _sprint(value, _Budget(limit), verb_s=True)


def _sprint(value: Any, budget: _Budget, *, verb_s: bool) -> str:
    if isinstance(value, str):
        return budget.take(value)
    if isinstance(value, (list, tuple)):
        budget.take("[]")
        parts = [_sprint(v, budget, verb_s=verb_s) for v in value]
        budget.take(" " * max(len(parts) - 1, 0))
        return "[" + " ".join(parts) + "]"
    if isinstance(value, dict):
        budget.take("map[]")
        parts = []
        for k, v in _sorted_items(value):
            key = _sprint(k, budget, verb_s=verb_s)
            budget.take(":")
            parts.append(f"{key}:{_sprint(v, budget, verb_s=verb_s)}")
        budget.take(" " * max(len(parts) - 1, 0))
        return "map[" + " ".join(parts) + "]"
    return budget.take(_sprint_scalar_s(value) if verb_s else _sprint_scalar(value))


def _sprint_scalar(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (GoDuration, GoMonth, GoWeekday)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float_v(value)
    if isinstance(value, (bytes, bytearray)):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, (GoTime, GoLocation)):
        return str(value)
    if isinstance(value, GoFunc) or callable(value):
        return "0x0"
    return str(value)


def _sprint_scalar_s(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (GoTime, GoDuration, GoMonth, GoWeekday, GoLocation)):
        return str(value)
    if value is None:
        return "%!s(<nil>)"
    return f"%!s({go_type(value)}={_sprint_scalar(value)})"


def _sorted_items(value: dict[Any, Any]) -> list[tuple[Any, Any]]:
    # fmt prints maps sorted by key (ints numerically, strings lexically, mixed by type).
    def key(item: tuple[Any, Any]) -> tuple[int, Any]:
        k = item[0]
        if isinstance(k, bool):
            return (0, int(k))
        if isinstance(k, (int, float)):
            return (1, k)
        if isinstance(k, str):
            return (2, k)
        return (3, go_sprint(k))

    try:
        return sorted(value.items(), key=key)
    except TypeError:
        return list(value.items())


# ------------------------------------------------------------------------------ JSON

_HTML_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_string(text: str) -> str:
    """A JSON string as Go's encoder writes it: HTML characters escaped, invalid text replaced."""
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return json.dumps(text, ensure_ascii=False).translate(_HTML_ESCAPES)


def _json_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise Panic(f"json: unsupported value: {go_float_v(value)}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, exp = _shortest(value)
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp_text = f"{'-' if exp < 0 else '+'}{abs(exp):02d}"
        if exp_text.startswith("-0"):  # encoding/json cleans e-07 to e-7
            exp_text = "-" + exp_text[2:]
        return f"{sign}{mantissa}e{exp_text}"
    return sign + _fixed(digits, exp)


def json_marshal(value: Any, *, indent: str = "", limit: int = MAX_TEXT) -> str:
    """``json.Marshal`` (compact) or ``json.MarshalIndent(v, "", indent)``."""
    return _marshal(value, indent, 0, _Budget(limit))


def _marshal(value: Any, indent: str, level: int, budget: _Budget) -> str:
    # Scalars are charged here, containers only for their punctuation: the budget counts
    # every output character once.
    if isinstance(value, (list, tuple)) and not isinstance(value, AnyKeyMap):
        if not value:
            return budget.take("[]")
        parts = [_marshal(v, indent, level + 1, budget) for v in value]
        budget.take(_join("[", "]", [""] * len(parts), indent, level))  # the punctuation
        return _join("[", "]", parts, indent, level)
    if isinstance(value, dict) and not isinstance(value, AnyKeyMap):
        if not value:
            return budget.take("{}")
        sep = ": " if indent else ":"
        parts = [
            budget.take(_json_string(str(k)) + sep) + _marshal(value[k], indent, level + 1, budget)
            for k in sorted(value)
        ]
        budget.take(_join("{", "}", [""] * len(parts), indent, level))  # the punctuation
        return _join("{", "}", parts, indent, level)
    return budget.take(_marshal_scalar(value))


def _marshal_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, (bytes, bytearray)):
        return '"' + base64.b64encode(bytes(value)).decode("ascii") + '"'
    if isinstance(value, GoTime):
        return _json_string(format_layout(value, RFC3339_NANO))
    if isinstance(value, GoLocation):
        return "{}"
    raise Panic(f"json: unsupported type: {go_type(value)}")


def _join(open_: str, close: str, parts: Sequence[str], indent: str, level: int) -> str:
    if not indent:
        return open_ + ",".join(parts) + close
    inner = "\n" + indent * (level + 1)
    return open_ + inner + ("," + inner).join(parts) + "\n" + indent * level + close


# ------------------------------------------------------------------------ arithmetic


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def to_int(value: Any) -> int:
    """``runtime.ToInt``: numbers only (floats truncate), else a panic."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return _float_to_int(value)
    raise Panic(f"invalid operation: int({go_type(value)})")


def _float_to_int(value: float) -> int:
    if math.isnan(value) or math.isinf(value) or not INT64_MIN <= value < 2**63:
        return INT64_MIN  # what amd64 produces for an out-of-range conversion
    return int(value)


def add(a: Any, b: Any) -> Any:
    if _is_number(a) and _is_number(b):
        if isinstance(a, GoDuration) and isinstance(b, GoDuration):
            return GoDuration(wrap(a + b))
        if isinstance(a, int) and isinstance(b, int):
            return wrap(int(a) + int(b))
        return float(a) + float(b)
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    if isinstance(a, GoTime) and isinstance(b, GoDuration):
        return a.add(int(b))
    if isinstance(a, GoDuration) and isinstance(b, GoTime):
        return b.add(int(a))
    raise Panic(f"invalid operation: {go_type(a)} + {go_type(b)}")


def subtract(a: Any, b: Any) -> Any:
    if _is_number(a) and _is_number(b):
        if isinstance(a, GoDuration) and isinstance(b, GoDuration):
            return GoDuration(wrap(a - b))
        if isinstance(a, int) and isinstance(b, int):
            return wrap(int(a) - int(b))
        return float(a) - float(b)
    if isinstance(a, GoTime) and isinstance(b, GoTime):
        return a.sub(b)
    if isinstance(a, GoTime) and isinstance(b, GoDuration):
        return a.add(-int(b))
    raise Panic(f"invalid operation: {go_type(a)} - {go_type(b)}")


def multiply(a: Any, b: Any) -> Any:
    if _is_number(a) and _is_number(b):
        if isinstance(a, int) and isinstance(b, int):
            product = wrap(int(a) * int(b))
            if isinstance(a, GoDuration) or isinstance(b, GoDuration):
                return GoDuration(product)
            return product
        return float(a) * float(b)
    raise Panic(f"invalid operation: {go_type(a)} * {go_type(b)}")


def divide(a: Any, b: Any) -> float:
    if _is_number(a) and _is_number(b):
        x, y = float(a), float(b)
        if y == 0:
            if x == 0 or math.isnan(x):
                return math.nan
            return math.copysign(math.inf, x) * math.copysign(1.0, y)
        return x / y
    raise Panic(f"invalid operation: {go_type(a)} / {go_type(b)}")


def modulo(a: Any, b: Any) -> int:
    if (
        isinstance(a, int)
        and isinstance(b, int)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        if b == 0:
            raise Panic("runtime error: integer divide by zero")
        # Go's % truncates toward zero: the result has the dividend's sign.
        result = abs(int(a)) % abs(int(b))
        return wrap(-result if a < 0 else result)
    raise Panic(f"invalid operation: {go_type(a)} % {go_type(b)}")


def exponent(a: Any, b: Any) -> float:
    if _is_number(a) and _is_number(b):
        return go_pow(float(a), float(b))
    raise Panic(f"invalid operation: {go_type(a)} ** {go_type(b)}")


def go_pow(x: float, y: float) -> float:
    """``math.Pow``: never raises, returns Inf/NaN where Python would."""
    try:
        return math.pow(x, y)
    except OverflowError:
        if x < 0 and y == int(y) and int(y) % 2 == 1:
            return -math.inf
        return math.inf
    except (ValueError, ZeroDivisionError):
        if x == 0 and y < 0:
            if y == int(y) and int(y) % 2 == 1:
                return math.copysign(math.inf, x)
            return math.inf
        return math.nan


def negate(value: Any) -> Any:
    if isinstance(value, bool):
        raise Panic(f"invalid operation: - {go_type(value)}")
    if isinstance(value, GoDuration):
        return GoDuration(wrap(-int(value)))
    if isinstance(value, int):
        return wrap(-value)
    if isinstance(value, float):
        return -value
    raise Panic(f"invalid operation: - {go_type(value)}")


# ------------------------------------------------------------------------ comparisons


def equal(a: Any, b: Any) -> bool:
    """``runtime.Equal``: numbers by value across int/float, else deep equality."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, GoTime) and isinstance(b, GoTime):
        return a.unix_nano() == b.unix_nano()
    return deep_equal(a, b)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "anymap" if isinstance(value, AnyKeyMap) else "map"
    if isinstance(value, tuple):
        return "list"
    return go_type(value)


def deep_equal(a: Any, b: Any) -> bool:
    """``reflect.DeepEqual``: same dynamic types all the way down."""
    if a is None or b is None:
        return a is None and b is None
    if _kind(a) != _kind(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        return a == b
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        for key, item in a.items():
            if key not in b or not deep_equal(item, b[key]):
                return False
        return True
    return bool(a == b)


def less(a: Any, b: Any, op: str = "<") -> bool:
    """``runtime.Less`` and friends; ``op`` is one of ``< > <= >=``."""
    if _is_number(a) and _is_number(b):
        x, y = a, b
    elif isinstance(a, str) and isinstance(b, str):
        # Go compares strings bytewise; code-point order is the same for UTF-8.
        x, y = a, b
    elif isinstance(a, GoTime) and isinstance(b, GoTime):
        x, y = a.unix_nano(), b.unix_nano()
    else:
        raise Panic(f"invalid operation: {go_type(a)} {op} {go_type(b)}")
    if op == "<":
        return bool(x < y)
    if op == ">":
        return bool(x > y)
    if op == "<=":
        return bool(x <= y)
    return bool(x >= y)
