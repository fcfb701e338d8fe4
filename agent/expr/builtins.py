"""expr-lang's builtin functions: their compile-time rules and their run-time behaviour.

Each builtin is described once, here: how the checker validates its arguments (expr
uses either a list of Go overloads or a ``Validate`` function, and the two give
different error texts) and what it does at run time, with Go's semantics (byte-based
``indexOf``, ``strings.Split`` on an empty separator, truncating ``int()``, memory
accounting for ``repeat``/``concat``/``flatten``/``sort``...).

The collection builtins that take a predicate (``filter``, ``map``, ``all``, ...) are
control flow, not functions: the checker and the interpreter handle them directly.

:func:`fetch` (member and index access) and the methods of time values live here too,
since ``get``, ``first`` and ``last`` are defined in terms of them.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import gotime
from .errors import Panic
from .gotime import GoDuration, GoLocation, GoMonth, GoTime, GoWeekday, TimeError
from .state import State
from .types import (
    ANY,
    ARRAY,
    BOOL,
    DURATION,
    FLOAT,
    INT,
    LOCATION,
    MAP,
    STRING,
    STRINGS,
    TIME,
    UNKNOWN,
    Nature,
    Signature,
    assignable,
)
from .values import (
    INT64_MIN,
    AnyKeyMap,
    GoFunc,
    equal,
    go_sprint,
    go_type,
    json_marshal,
    less,
    to_int,
    type_name,
    wrap,
)

__all__ = [
    "BUILTINS",
    "NAMES",
    "Builtin",
    "CheckError",
    "check_arguments",
    "fetch",
    "from_json",
    "go_split",
    "method_nature",
    "overloads",
    "parse_go_float",
    "parse_go_int",
    "sort_values",
    "to_float",
    "to_go_int",
]


class CheckError(Exception):
    """A compile-time error of a builtin call; ``arg`` is the offending argument index."""

    def __init__(self, message: str, arg: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.arg = arg


Check = Callable[[str, list[Nature]], Nature]
Impl = Callable[[State, list[Any]], Any]


@dataclass(frozen=True, slots=True)
class Builtin:
    name: str
    check: Check
    run: Impl


# --------------------------------------------------------------------- type helpers


def _assert_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise Panic(f"interface conversion: interface {{}} is {_iface(value)}, not string")


def _iface(value: Any) -> str:
    return "nil" if value is None else go_type(value)


def _reflect_kind(value: Any) -> str:
    """``reflect.Value.Kind()`` names, for messages like ``cannot reverse int``."""
    if value is None:
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64" if isinstance(value, GoDuration) else "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple, bytes, bytearray)):
        return "slice"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, GoFunc) or callable(value):
        return "func"
    return "struct"


def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple, bytes, bytearray))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_GO_INT = re.compile(r"[+-]?[0-9]+\Z")


def parse_go_int(text: str) -> int | None:
    """``strconv.Atoi``: an optional sign and decimal digits, within int64."""
    if not _GO_INT.match(text):
        return None
    value = int(text)
    if not -(2**63) <= value <= 2**63 - 1:
        return None
    return value


_GO_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9](?:_?[0-9])*)?\.?[0-9]*(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)\Z",
    re.IGNORECASE,
)
_GO_HEX_FLOAT = re.compile(r"([+-]?)0[xX]([0-9a-fA-F_]*\.?[0-9a-fA-F_]*)[pP]([+-]?[0-9]+)\Z")


def parse_go_float(text: str) -> float | None:
    """``strconv.ParseFloat(text, 64)``: Go's syntax, out-of-range is an error."""
    hex_match = _GO_HEX_FLOAT.match(text)
    if hex_match:
        try:
            sign, mantissa, exp = hex_match.groups()
            mantissa = mantissa.replace("_", "")
            return float.fromhex(f"{sign}0x{mantissa}p{exp}")
        except (ValueError, OverflowError):
            return None
    if "_" in text or not text or not _GO_FLOAT.match(text):
        return None
    if not any(c.isdigit() for c in text) and text.lstrip("+-").lower() not in (
        "inf", "infinity", "nan",
    ):  # fmt: skip
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if math.isinf(value) and "inf" not in text.lower():
        return None  # value out of range
    return value


def to_go_int(value: Any) -> int:
    """The ``int()`` builtin (and Argo's ``asInt``)."""
    if isinstance(value, bool):
        raise Panic("invalid operation: int(bool)")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value) or not -(2**63) <= value < 2**63:
            return INT64_MIN
        return int(value)
    if isinstance(value, str):
        parsed = parse_go_int(value)
        if parsed is None:
            raise Panic(f"invalid operation: int({value})")
        return parsed
    raise Panic(f"invalid operation: int({go_type(value)})")


def to_float(value: Any) -> float:
    """The ``float()`` builtin (and Argo's ``asFloat``)."""
    if isinstance(value, bool):
        raise Panic("invalid operation: float(bool)")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        parsed = parse_go_float(value)
        if parsed is None:
            raise Panic(f"invalid operation: float({value})")
        return parsed
    raise Panic(f"invalid operation: float({go_type(value)})")


# ----------------------------------------------------------------------- fetching


def fetch(base: Any, key: Any) -> Any:
    """``runtime.Fetch``: map lookup, array/string index (negative counts from the end)."""
    if isinstance(base, dict):
        if isinstance(base, AnyKeyMap):
            try:
                return base.get(key)
            except TypeError:
                raise Panic(f"runtime error: hash of unhashable type {go_type(key)}") from None
        if key is None or isinstance(key, str):
            return base.get(key) if key is not None else base.get("")
        raise Panic(
            f"reflect.Value.MapIndex: value of type {go_type(key)} is not assignable to type string"
        )
    if isinstance(base, (list, tuple, str, bytes, bytearray)):
        if isinstance(key, str):
            raise Panic("invalid operation: int(string)")
        index = to_int(key)
        if isinstance(base, str):
            # Indexing a Go string yields a byte.
            data: Sequence[Any] = base.encode("utf-8")
        else:
            data = base
        length = len(data)
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise Panic(f"index out of range: {index} (array length is {length})")
        return data[index]
    if isinstance(key, str):
        method = _bound_method(base, key)
        if method is not None:
            return method
    if base is None:
        raise Panic(f"cannot fetch {go_sprint(key)} from <nil>")
    raise Panic(f"cannot fetch {go_sprint(key)} from {go_type(base)}")


# ------------------------------------------------------------------ time methods

_M = Signature


def _time_methods() -> dict[str, tuple[Signature, Callable[..., Any]]]:
    def month(t: GoTime) -> GoMonth:
        return GoMonth(t.local().month)

    def weekday(t: GoTime) -> GoWeekday:
        return GoWeekday((t.local().weekday() + 1) % 7)

    def add_date(t: GoTime, years: int, months: int, days: int) -> GoTime:
        local = t.local()
        total_months = local.month - 1 + months
        year = local.year + years + total_months // 12
        month_ = total_months % 12 + 1
        import datetime as dt

        base = dt.datetime(
            year, month_, 1, local.hour, local.minute, local.second, tzinfo=local.tzinfo
        )
        shifted = base + dt.timedelta(days=local.day - 1 + days)
        return GoTime.from_datetime(shifted, t.loc, t.nsec)

    def truncate(t: GoTime, d: int) -> GoTime:
        if d <= 0:
            return t
        nanos = t.unix_nano()
        return GoTime(0, 0, t.loc).add(nanos - nanos % d)

    return {
        "Year": (_M((), INT), lambda t: t.local().year),
        "Month": (_M((), Nature("month", "time.Month")), month),
        "Day": (_M((), INT), lambda t: t.local().day),
        "Hour": (_M((), INT), lambda t: t.local().hour),
        "Minute": (_M((), INT), lambda t: t.local().minute),
        "Second": (_M((), INT), lambda t: t.local().second),
        "Nanosecond": (_M((), INT), lambda t: t.nsec),
        "Weekday": (_M((), Nature("weekday", "time.Weekday")), weekday),
        "YearDay": (_M((), INT), lambda t: t.local().timetuple().tm_yday),
        "Unix": (_M((), INT), lambda t: t.sec),
        "UnixMilli": (_M((), INT), lambda t: t.unix_nano() // 1_000_000),
        "UnixMicro": (_M((), INT), lambda t: t.unix_nano() // 1_000),
        "UnixNano": (_M((), INT), lambda t: wrap(t.unix_nano())),
        "Format": (_M((STRING,), STRING), lambda t, layout: gotime.format_layout(t, layout)),
        "String": (_M((), STRING), str),
        "In": (_M((LOCATION,), TIME), lambda t, loc: t.in_location(loc)),
        "UTC": (_M((), TIME), lambda t: t.in_location(gotime.UTC)),
        "Local": (_M((), TIME), lambda t: t.in_location(gotime.LOCAL)),
        "Location": (_M((), LOCATION), lambda t: t.loc),
        "Add": (_M((DURATION,), TIME), lambda t, d: t.add(int(d))),
        "Sub": (_M((TIME,), DURATION), lambda t, u: t.sub(u)),
        "AddDate": (_M((INT, INT, INT), TIME), add_date),
        "Before": (_M((TIME,), BOOL), lambda t, u: t.unix_nano() < u.unix_nano()),
        "After": (_M((TIME,), BOOL), lambda t, u: t.unix_nano() > u.unix_nano()),
        "Equal": (_M((TIME,), BOOL), lambda t, u: t.unix_nano() == u.unix_nano()),
        "IsZero": (_M((), BOOL), lambda t: t.sec == -62135596800 and t.nsec == 0),
        "Truncate": (_M((DURATION,), TIME), truncate),
    }


def _duration_methods() -> dict[str, tuple[Signature, Callable[..., Any]]]:
    return {
        "Hours": (_M((), FLOAT), lambda d: d.hours()),
        "Minutes": (_M((), FLOAT), lambda d: d.minutes()),
        "Seconds": (_M((), FLOAT), lambda d: d.seconds()),
        "Milliseconds": (_M((), INT), lambda d: int(d / 1_000_000)),
        "Microseconds": (_M((), INT), lambda d: int(d / 1_000)),
        "Nanoseconds": (_M((), INT), int),
        "String": (_M((), STRING), str),
        "Abs": (_M((), DURATION), lambda d: GoDuration(wrap(abs(int(d))))),
        "Round": (_M((DURATION,), DURATION), lambda d, m: GoDuration(_round_to(int(d), int(m)))),
        "Truncate": (
            _M((DURATION,), DURATION),
            lambda d, m: GoDuration(int(d) - int(d) % int(m) if m > 0 else int(d)),
        ),
    }


def _round_to(value: int, multiple: int) -> int:
    if multiple <= 0:
        return value
    remainder = abs(value) % multiple
    magnitude = abs(value) - remainder
    if remainder + remainder >= multiple:
        magnitude += multiple
    return magnitude if value >= 0 else -magnitude


_SIMPLE_METHODS: dict[str, tuple[Signature, Callable[..., Any]]] = {"String": (_M((), STRING), str)}
_METHODS: dict[str, dict[str, tuple[Signature, Callable[..., Any]]]] = {
    "time": _time_methods(),
    "duration": _duration_methods(),
    "month": _SIMPLE_METHODS,
    "weekday": _SIMPLE_METHODS,
    "location": _SIMPLE_METHODS,
}


def _value_kind(value: Any) -> str:
    if isinstance(value, GoTime):
        return "time"
    if isinstance(value, GoDuration):
        return "duration"
    if isinstance(value, GoMonth):
        return "month"
    if isinstance(value, GoWeekday):
        return "weekday"
    if isinstance(value, GoLocation):
        return "location"
    return ""


def method_nature(nature: Nature, name: str) -> Signature | None:
    methods = _METHODS.get(nature.kind)
    if methods is None or name not in methods:
        return None
    return methods[name][0]


def _bound_method(value: Any, name: str) -> GoFunc | None:
    methods = _METHODS.get(_value_kind(value))
    if methods is None or name not in methods:
        return None
    sig, impl = methods[name]
    params = tuple(_PARAM_OF.get(p.kind, "any") for p in sig.params)

    def bound(*args: Any) -> Any:
        return impl(value, *args)

    return GoFunc(name, params, _PARAM_OF.get(sig.result.kind, "any"), bound)


_PARAM_OF = {
    "string": "string", "int": "int", "float": "float64", "bool": "bool",
    "time": "time", "duration": "duration", "location": "location",
}  # fmt: skip


# ----------------------------------------------------------------------- checking


def overloads(*signatures: tuple[tuple[Nature, ...], Nature]) -> Check:
    """expr's ``checkFunction`` over Go overloads: the first that fits wins."""
    sigs = [Signature(params, result) for params, result in signatures]

    def check(name: str, args: list[Nature]) -> Nature:
        last: CheckError | None = None
        for sig in sigs:
            try:
                return check_arguments(name, sig, args)
            except CheckError as exc:
                last = exc
        assert last is not None
        raise last

    return check


def check_arguments(name: str, sig: Signature, args: list[Nature]) -> Nature:
    """expr's ``checkArguments``: count, then assignability of each argument."""
    count = len(sig.params)
    if sig.variadic:
        if len(args) < count - 1:
            raise CheckError(f"not enough arguments to call {name}")
    elif len(args) > count:
        raise CheckError(f"too many arguments to call {name}")
    elif len(args) < count:
        raise CheckError(f"not enough arguments to call {name}")
    for index, arg in enumerate(args):
        param = sig.params[-1] if sig.variadic and index >= count - 1 else sig.params[index]
        if param.is_float and arg.is_integer:
            continue
        if param.is_integer and arg.is_integer:
            continue
        if arg.nil:
            if param.kind in ("unknown", "location"):
                continue
            raise CheckError(f"cannot use nil as argument (type {param}) to call {name}", index)
        if not arg.unknown and not assignable(arg, param):
            raise CheckError(f"cannot use {arg} as argument (type {param}) to call {name} ", index)
    return sig.result


def _arity(name: str, args: list[Nature], expected: int) -> None:
    if len(args) != expected:
        raise CheckError(f"invalid number of arguments (expected {expected}, got {len(args)})")


def _check_len(name: str, args: list[Nature]) -> Nature:
    _arity(name, args, 1)
    if args[0].kind in ("unknown", "array", "map", "string"):
        return INT
    raise CheckError(f"invalid argument for len (type {args[0]})")


def _check_abs(name: str, args: list[Nature]) -> Nature:
    _arity(name, args, 1)
    if args[0].unknown or args[0].is_number:
        return args[0]
    raise CheckError(f"invalid argument for abs (type {args[0]})")


def _check_round(name: str, args: list[Nature]) -> Nature:
    _arity(name, args, 1)
    if args[0].unknown or args[0].is_number:
        return FLOAT
    raise CheckError(f"invalid argument for {name} (type {args[0]})")


def _check_convert(result: Nature) -> Check:
    def check(name: str, args: list[Nature]) -> Nature:
        _arity(name, args, 1)
        if args[0].unknown or args[0].is_number or args[0].is_string:
            return result
        raise CheckError(f"invalid argument for {name} (type {args[0]})")

    return check


def _check_aggregate(result: Nature | None) -> Check:
    def check(name: str, args: list[Nature]) -> Nature:
        if not args:
            raise CheckError(f"not enough arguments to call {name}")
        for arg in args:
            if arg.unknown or arg.is_array:
                return result or UNKNOWN
            if not arg.is_number:
                raise CheckError(f"invalid argument for {name} (type {arg})")
        return result or args[0]

    return check


def _check_now(name: str, args: list[Nature]) -> Nature:
    if not args or (len(args) == 1 and args[0].kind in ("location", "unknown")):
        return TIME
    raise CheckError(f"invalid number of arguments (expected 0, got {len(args)})")


def _check_date(name: str, args: list[Nature]) -> Nature:
    if not args:
        raise CheckError(f"invalid number of arguments (expected at least 1, got {len(args)})")
    rest = args[1:] if args[0].kind == "location" else args
    if len(rest) > 3:
        raise CheckError(f"invalid number of arguments (expected at most 3, got {len(rest)})")
    return TIME


def _check_first_last(name: str, args: list[Nature]) -> Nature:
    _arity(name, args, 1)
    if args[0].unknown:
        return UNKNOWN
    if args[0].is_array:
        return args[0].element()
    raise CheckError(f"cannot get {'first' if name == 'first' else 'last'} element from {args[0]}")


def _check_take(name: str, args: list[Nature]) -> Nature:
    _arity(name, args, 2)
    if not (args[0].unknown or args[0].is_array):
        raise CheckError(f"cannot take from {args[0]}")
    if not (args[1].unknown or args[1].kind == "int"):
        raise CheckError(f"cannot take {args[1]} elements")
    return args[0]


def _check_map_arg(verb: str, result: Nature) -> Check:
    def check(name: str, args: list[Nature]) -> Nature:
        _arity(name, args, 1)
        if args[0].unknown or args[0].is_map:
            return result
        raise CheckError(f"{verb} {args[0]}")

    return check


def _check_array_arg(verb: str, result: Nature, *, variadic: bool = False) -> Check:
    def check(name: str, args: list[Nature]) -> Nature:
        if variadic:
            if not args:
                raise CheckError("invalid number of arguments (expected at least 1, got 0)")
        else:
            _arity(name, args, 1)
        for arg in args:
            if not (arg.unknown or arg.is_array):
                raise CheckError(f"{verb} {arg}")
        return result

    return check


def _check_get(name: str, args: list[Nature]) -> Nature:
    # The checker applies expr's checkBuiltinGet itself (it needs the argument nodes).
    _arity(name, args, 2)
    return UNKNOWN


# ----------------------------------------------------------------------- runtime


def _trim_space(text: str) -> str:
    return text.strip(_GO_SPACE)


# unicode.IsSpace
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _go_upper(text: str) -> str:
    if text.isascii():
        return text.upper()
    return "".join(c.upper() if len(c.upper()) == 1 else c for c in text)


def _go_lower(text: str) -> str:
    if text.isascii():
        return text.lower()
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def split_count(text: str, sep: str, limit: int = -1) -> int:
    """How many parts ``go_split`` returns (to bound memory before splitting)."""
    if limit == 0:
        return 0
    parts = len(text) if sep == "" else text.count(sep) + 1
    return min(parts, limit) if limit > 0 else parts


def go_split(text: str, sep: str, limit: int = -1, *, after: bool = False) -> list[Any]:
    """``strings.SplitN`` / ``strings.SplitAfterN`` (at most 1,000,000 parts)."""
    if split_count(text, sep, limit) >= 1_000_000:
        raise Panic("memory budget exceeded", kind="limit")
    if limit == 0:
        return []
    if sep == "":
        chars: list[Any] = list(text)
        if limit > 0 and len(chars) > limit:
            chars = [*chars[: limit - 1], "".join(chars[limit - 1 :])]
        return chars
    parts: list[Any] = []
    start = 0
    while limit < 0 or len(parts) < limit - 1:
        index = text.find(sep, start)
        if index < 0:
            break
        end = index + len(sep) if after else index
        parts.append(text[start:end])
        start = index + len(sep)
    parts.append(text[start:])
    return parts


def _byte_index(text: str, sub: str, *, last: bool) -> int:
    if text.isascii() and sub.isascii():
        return text.rfind(sub) if last else text.find(sub)
    data, needle = text.encode(), sub.encode()
    return data.rfind(needle) if last else data.find(needle)


def _ints(name: str, args: list[Any]) -> tuple[int, int]:
    values = []
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool):
            values.append(int(arg))
        else:
            raise Panic(f"invalid argument for {name} (type {go_type(arg)})")
    return values[0], values[1]


def _min_max(name: str, replace_if: str, args: list[Any]) -> Any:
    best: Any = None
    for arg in args:
        if _is_array(arg):
            for item in arg:
                value = _min_max(name, replace_if, [item])
                if not _is_number(value):
                    raise Panic(f"invalid argument for {name} (type {go_type(value)})")
                if best is None or less(best, value, replace_if):
                    best = value
        elif _is_number(arg):
            if best is None or less(best, arg, replace_if):
                best = arg
        else:
            if len(args) == 1:
                return arg
            raise Panic(f"invalid argument for {name} (type {go_type(arg)})")
    return best


def _numbers(name: str, args: list[Any]) -> list[float]:
    out: list[float] = []
    for arg in args:
        if _is_array(arg):
            out.extend(_numbers(name, list(arg)))
        elif _is_number(arg):
            out.append(float(arg))
        else:
            raise Panic(f"invalid argument for {name} (type {go_type(arg)})")
    return out


def _go_round(value: float) -> float:
    if math.isnan(value) or math.isinf(value) or abs(value) >= 2**52:
        return value
    whole = float(math.trunc(value))
    if abs(value - whole) >= 0.5:
        whole += math.copysign(1.0, value)
    return whole if whole != 0 else math.copysign(0.0, value)


def _abs(state: State, args: list[Any]) -> Any:
    value = args[0]
    if isinstance(value, bool) or not _is_number(value):
        raise Panic(f"invalid argument for abs (type {go_type(value)})")
    if isinstance(value, float):
        return abs(value)
    result = wrap(abs(int(value)))
    return GoDuration(result) if isinstance(value, GoDuration) else result


def _rounding(name: str, fn: Callable[[float], float]) -> Impl:
    def run(state: State, args: list[Any]) -> Any:
        value = args[0]
        if isinstance(value, bool) or not _is_number(value):
            raise Panic(f"invalid argument for {name} (type {go_type(value)})")
        return float(fn(float(value))) if isinstance(value, float) else float(value)

    return run


def _len(state: State, args: list[Any]) -> int:
    value = args[0]
    if isinstance(value, str):
        return len(value)  # runes, as expr v1.17 counts them
    if isinstance(value, (list, tuple, dict, bytes, bytearray)):
        return len(value)
    raise Panic(f"invalid argument for len (type {go_type(value)})")


def _repeat(state: State, args: list[Any]) -> str:
    text = _assert_str(args[0])
    count = to_int(args[1])
    if count < 0:
        raise Panic(f"invalid argument for repeat (expected positive integer, got {count})")
    if count > 1_000_000:
        raise Panic("memory budget exceeded", kind="limit")
    state.grow(len(text.encode()) * count)
    return state.check_string(text * count)


def _join(state: State, args: list[Any]) -> str:
    glue = _assert_str(args[1]) if len(args) == 2 else ""
    items = args[0]
    if not isinstance(items, (list, tuple)):
        raise Panic(f"invalid argument for join (type {go_type(items)})")
    texts = [_assert_str(item) for item in items]
    size = sum(map(len, texts)) + len(glue) * max(len(texts) - 1, 0)
    if size > state.limits.max_string_length:
        raise Panic("memory budget exceeded", kind="limit")
    return glue.join(texts)


def _split_impl(after: bool) -> Impl:
    def run(state: State, args: list[Any]) -> Any:
        text, sep = _assert_str(args[0]), _assert_str(args[1])
        limit = to_int(args[2]) if len(args) == 3 else -1
        state.grow(split_count(text, sep, limit))
        return go_split(text, sep, limit, after=after)

    return run


def replaced_length(text: str, old: str, new: str, count: int = -1) -> int:
    """The length ``text.replace(old, new, count)`` would have, computed without building it."""
    hits = len(text) + 1 if old == "" else text.count(old)
    if count >= 0:
        hits = min(hits, count)
    return len(text) + hits * (len(new) - len(old))


def _replace(state: State, args: list[Any]) -> str:
    text, old, new = (_assert_str(a) for a in args[:3])
    count = to_int(args[3]) if len(args) == 4 else -1
    if replaced_length(text, old, new, count) > state.limits.max_string_length:
        raise Panic("memory budget exceeded", kind="limit")
    return text.replace(old, new, count if count >= 0 else -1)


def _trim(state: State, args: list[Any]) -> str:
    text = _assert_str(args[0])
    return text.strip(_assert_str(args[1])) if len(args) == 2 else _trim_space(text)


def _trim_prefix(state: State, args: list[Any]) -> str:
    return _assert_str(args[0]).removeprefix(_assert_str(args[1]) if len(args) == 2 else " ")


def _trim_suffix(state: State, args: list[Any]) -> str:
    return _assert_str(args[0]).removesuffix(_assert_str(args[1]) if len(args) == 2 else " ")


def _to_json(state: State, args: list[Any]) -> str:
    return json_marshal(args[0], indent="  ", limit=state.limits.max_string_length)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def from_json(text: str) -> Any:
    """``json.Unmarshal`` into ``any``: numbers become float64.

    A number beyond float64's range is Go's ``UnmarshalTypeError`` (``convertNumber``),
    which ``Unmarshal`` reports only once the whole text proved syntactically valid, so the
    first such number is remembered and raised after a successful parse.
    """
    overflow: list[str] = []

    def number(literal: str) -> float:
        value = float(literal)
        if value in (_INF, -_INF) and not overflow:
            overflow.append(literal)
        return value

    try:
        result = json.loads(
            text, parse_int=number, parse_float=number, parse_constant=_reject_constant
        )
    except ValueError as exc:
        message = str(exc)
        if isinstance(exc, json.JSONDecodeError):
            message = _go_json_error(text, exc)
        raise Panic(message) from None
    except RecursionError:
        raise Panic("exceeded max depth") from None
    if overflow:
        raise Panic(f"json: cannot unmarshal number {overflow[0]} into Go value of type float64")
    return result


_INF = float("inf")


def _go_json_error(text: str, exc: json.JSONDecodeError) -> str:
    if exc.pos >= len(text.rstrip()) and "Expecting" in exc.msg:
        return "unexpected end of JSON input"
    char = text[exc.pos] if exc.pos < len(text) else ""
    if exc.msg.startswith("Extra data"):
        return f"invalid character {_quote_char(char)} after top-level value"
    if exc.msg.startswith("Expecting value"):
        return f"invalid character {_quote_char(char)} looking for beginning of value"
    if exc.msg.startswith("Expecting property name"):
        return f"invalid character {_quote_char(char)} looking for beginning of object key string"
    return f"invalid character {_quote_char(char)} {exc.msg.lower()}"


def _quote_char(char: str) -> str:
    if char == "'":
        return "'\\''"
    if char == "\n":
        return "'\\n'"
    return f"'{char}'"


def _from_json(state: State, args: list[Any]) -> Any:
    text = _assert_str(args[0])
    state.charge(len(text))  # the decoded values take at least as much memory as the text
    return from_json(text)


def _to_base64(state: State, args: list[Any]) -> str:
    return base64.b64encode(_assert_str(args[0]).encode()).decode("ascii")


def _from_base64(state: State, args: list[Any]) -> str:
    text = _assert_str(args[0]).replace("\r", "").replace("\n", "")
    try:
        if len(text) % 4:
            raise binascii.Error("length")
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        offset = next(
            (i for i, c in enumerate(text) if not (c.isalnum() or c in "+/=")),
            len(text) - len(text) % 4 if len(text) % 4 else len(text),
        )
        raise Panic(f"illegal base64 data at input byte {offset}") from None
    return raw.decode("utf-8", errors="replace")


def _now(state: State, args: list[Any]) -> GoTime:
    if not args:
        return gotime.now()
    if len(args) == 1 and isinstance(args[0], GoLocation):
        return gotime.now().in_location(args[0])
    raise Panic(f"invalid number of arguments (expected 0, got {len(args)})")


def _duration(state: State, args: list[Any]) -> GoDuration:
    try:
        return gotime.parse_duration(_assert_str(args[0]))
    except TimeError as exc:
        raise Panic(str(exc)) from None


_DATE_LAYOUTS = (
    "2006-01-02",
    "15:04:05",
    "2006-01-02 15:04:05",
    gotime.RFC3339,
    gotime.RFC822,
    gotime.RFC850,
    gotime.RFC1123,
)


def _date(state: State, args: list[Any]) -> GoTime:
    location: GoLocation | None = None
    if args and isinstance(args[0], GoLocation):
        location, args = args[0], args[1:]
    if not args:
        raise Panic("invalid number of arguments (expected at least 1, got 0)")
    text = _assert_str(args[0])
    try:
        if len(args) == 2:
            return gotime.parse_layout(_assert_str(args[1]), text, location=location)
        if len(args) == 3:
            loc = gotime.load_location(_assert_str(args[2]))
            return gotime.parse_layout(_assert_str(args[1]), text, location=loc)
    except TimeError as exc:
        raise Panic(str(exc)) from None
    for layout in _DATE_LAYOUTS:
        try:
            return gotime.parse_layout(layout, text, location=location)
        except TimeError:
            continue
    raise Panic(f"invalid date {text}")


def _timezone(state: State, args: list[Any]) -> GoLocation:
    try:
        return gotime.load_location(_assert_str(args[0]))
    except TimeError as exc:
        raise Panic(str(exc)) from None


def _first_last(index: int) -> Impl:
    def run(state: State, args: list[Any]) -> Any:
        try:
            return fetch(args[0], index)
        except Panic:
            return None

    return run


def _get(state: State, args: list[Any]) -> Any:
    try:
        return fetch(args[0], args[1])
    except Panic:
        return None


def _take(state: State, args: list[Any]) -> Any:
    items, count = args
    if not _is_array(items):
        raise Panic(f"cannot take from {_reflect_kind(items)}")
    if not isinstance(count, int) or isinstance(count, bool):
        raise Panic(f"cannot take {_reflect_kind(count)} elements")
    if count > len(items):
        return items
    if count < 0:
        raise Panic(f"runtime error: slice bounds out of range [:{count}]")
    return list(items[:count])


def _map_of(verb: str, fn: Callable[[dict[Any, Any]], Any]) -> Impl:
    def run(state: State, args: list[Any]) -> Any:
        value = args[0]
        if not isinstance(value, dict):
            raise Panic(f"{verb} {_reflect_kind(value)}")
        return fn(value)

    return run


def _from_pairs(state: State, args: list[Any]) -> AnyKeyMap:
    pairs = args[0]
    if not _is_array(pairs):
        raise Panic(f"cannot transform {go_sprint(pairs)} from pairs")
    out = AnyKeyMap()
    for pair in pairs:
        if not _is_array(pair):
            raise Panic(f"invalid pair {go_sprint(pair)}")
        if len(pair) != 2:
            raise Panic(f"invalid pair length {go_sprint(pair)}")
        try:
            out[pair[0]] = pair[1]
        except TypeError:
            raise Panic(f"runtime error: hash of unhashable type {go_type(pair[0])}") from None
    return out


def _array_of(verb: str, fn: Callable[[State, list[Any]], Any]) -> Impl:
    def run(state: State, args: list[Any]) -> Any:
        for arg in args:
            if not _is_array(arg):
                raise Panic(f"{verb} {_reflect_kind(arg)}")
        return fn(state, args)

    return run


def _uniq(state: State, args: list[Any]) -> list[Any]:
    out: list[Any] = []
    hashed: set[tuple[str, Any]] = set()
    for item in args[0]:
        state.tick()
        key = _hash_key(item)
        if key is not None:
            # runtime.Equal on scalars: numbers compare by value across int/float.
            if key not in hashed:
                hashed.add(key)
                out.append(item)
        elif not _contains(state, out, item):
            out.append(item)
    return out


def _contains(state: State, items: list[Any], item: Any) -> bool:
    for seen in items:
        state.tick()  # pairwise comparison is quadratic: keep it under the deadline
        if equal(item, seen):
            return True
    return False


def _hash_key(value: Any) -> tuple[str, Any] | None:
    if value is None:
        return ("nil", None)
    if isinstance(value, bool):
        return ("bool", value)
    if _is_number(value):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return None


def _concat(state: State, args: list[Any]) -> list[Any]:
    if not args:
        raise Panic("invalid number of arguments (expected at least 1, got 0)")
    state.grow(sum(len(arg) for arg in args))  # before building: arguments may alias
    out: list[Any] = []
    for arg in args:
        out.extend(arg)
    return out


def _flatten(state: State, args: list[Any]) -> list[Any]:
    out: list[Any] = []

    def walk(items: Sequence[Any]) -> None:
        for item in items:
            state.tick()
            if _is_array(item):
                walk(item)
            else:
                state.grow(1)
                out.append(item)

    walk(args[0])
    return out


def _sort(state: State, args: list[Any]) -> list[Any]:
    if len(args) not in (1, 2):
        raise Panic(f"invalid number of arguments (expected 1 or 2, got {len(args)})")
    items = args[0]
    if not _is_array(items):
        raise Panic(
            f"interface conversion: interface {{}} is {_iface(items)}, not []interface {{}}"
        )
    desc = False
    if len(args) == 2:
        order = _assert_str(args[1])
        if order not in ("asc", "desc"):
            raise Panic(f"invalid order {order}, expected asc or desc")
        desc = order == "desc"
    result = sort_values(list(items), desc=desc)
    state.grow(len(result))
    return result


def sort_values(items: list[Any], *, desc: bool, keys: list[Any] | None = None) -> list[Any]:
    """Sort with ``runtime.Less`` (a panic for values that do not compare)."""
    import functools

    def compare(a: tuple[Any, Any], b: tuple[Any, Any]) -> int:
        if less(a[0], b[0]):
            return -1
        if less(b[0], a[0]):
            return 1
        return 0

    pairs = list(zip(keys if keys is not None else items, items, strict=True))
    natural = _natural_key([key for key, _ in pairs])
    if natural is not None:
        # Homogeneous keys sort natively (fast); mixed ones go through runtime.Less.
        pairs.sort(key=lambda pair: natural(pair[0]), reverse=desc)
    else:
        pairs.sort(key=functools.cmp_to_key(compare), reverse=desc)
    return [item for _, item in pairs]


def _natural_key(keys: list[Any]) -> Callable[[Any], Any] | None:
    if all(_is_number(key) for key in keys):
        return lambda key: key
    if all(isinstance(key, str) for key in keys):
        return lambda key: key
    if all(isinstance(key, GoTime) for key in keys):
        return lambda key: key.unix_nano()
    return None


def _bit(name: str, fn: Callable[[int, int], int]) -> Impl:
    def run(state: State, args: list[Any]) -> int:
        x, y = _ints(name, args)
        return wrap(fn(x, y))

    return run


def _shift(name: str, fn: Callable[[int, int], int]) -> Impl:
    def run(state: State, args: list[Any]) -> int:
        x, y = _ints(name, args)
        if y < 0:
            raise Panic(f"invalid operation: negative shift count {y} (type int)")
        return wrap(fn(x, min(y, 64)))

    return run


def _bitnot(state: State, args: list[Any]) -> int:
    value = args[0]
    if not isinstance(value, int) or isinstance(value, bool):
        raise Panic(f"invalid argument for bitnot (type {go_type(value)}) to call bitnot")
    return wrap(~int(value))


def _string(state: State, args: list[Any]) -> str:
    return go_sprint(args[0], limit=state.limits.max_string_length)


def _convert(fn: Callable[[Any], Any]) -> Impl:
    def run(state: State, args: list[Any]) -> Any:
        return fn(args[0])

    return run


def _mean(state: State, args: list[Any]) -> float:
    values = _numbers("mean", args)
    return sum(values) / len(values) if values else 0.0


def _median(state: State, args: list[Any]) -> float:
    values = sorted(_numbers("median", args))
    if not values:
        return 0.0
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _unary(fn: Callable[[Any], Any]) -> Impl:
    def run(state: State, args: list[Any]) -> Any:
        return fn(args[0])

    return run


def _binary(fn: Callable[[Any, Any], Any]) -> Impl:
    def run(state: State, args: list[Any]) -> Any:
        return fn(args[0], args[1])

    return run


_S1 = ((STRING,), STRING)
_SS_B = ((STRING, STRING), BOOL)

_TABLE: list[Builtin] = [
    Builtin("len", _check_len, _len),
    Builtin("type", overloads(((ANY,), STRING)), _unary(type_name)),
    Builtin("abs", _check_abs, _abs),
    Builtin("ceil", _check_round, _rounding("ceil", math.ceil)),
    Builtin("floor", _check_round, _rounding("floor", math.floor)),
    Builtin("round", _check_round, _rounding("round", _go_round)),
    Builtin("int", _check_convert(INT), _convert(to_go_int)),
    Builtin("float", _check_convert(FLOAT), _convert(to_float)),
    Builtin("string", overloads(((ANY,), STRING)), _string),
    Builtin("trim", overloads(_S1, ((STRING, STRING), STRING)), _trim),
    Builtin("trimPrefix", overloads(((STRING, STRING), STRING), _S1), _trim_prefix),
    Builtin("trimSuffix", overloads(((STRING, STRING), STRING), _S1), _trim_suffix),
    Builtin("upper", overloads(_S1), _unary(lambda s: _go_upper(_assert_str(s)))),
    Builtin("lower", overloads(_S1), _unary(lambda s: _go_lower(_assert_str(s)))),
    Builtin(
        "split",
        overloads(((STRING, STRING), STRINGS), ((STRING, STRING, INT), STRINGS)),
        _split_impl(False),
    ),
    Builtin(
        "splitAfter",
        overloads(((STRING, STRING), STRINGS), ((STRING, STRING, INT), STRINGS)),
        _split_impl(True),
    ),
    Builtin(
        "replace",
        overloads(((STRING, STRING, STRING, INT), STRING), ((STRING, STRING, STRING), STRING)),
        _replace,
    ),
    Builtin("repeat", overloads(((STRING, INT), STRING)), _repeat),
    Builtin(
        "join",
        overloads(
            ((STRINGS, STRING), STRING),
            ((ARRAY, STRING), STRING),
            ((ARRAY,), STRING),
            ((STRINGS,), STRING),
        ),
        _join,
    ),
    Builtin(
        "indexOf",
        overloads(((STRING, STRING), INT)),
        _binary(lambda a, b: _byte_index(_assert_str(a), _assert_str(b), last=False)),
    ),
    Builtin(
        "lastIndexOf",
        overloads(((STRING, STRING), INT)),
        _binary(lambda a, b: _byte_index(_assert_str(a), _assert_str(b), last=True)),
    ),
    Builtin(
        "hasPrefix",
        overloads(_SS_B),
        _binary(lambda a, b: _assert_str(a).startswith(_assert_str(b))),
    ),
    Builtin(
        "hasSuffix", overloads(_SS_B), _binary(lambda a, b: _assert_str(a).endswith(_assert_str(b)))
    ),
    Builtin("max", _check_aggregate(None), lambda state, args: _min_max("max", "<", args)),
    Builtin("min", _check_aggregate(None), lambda state, args: _min_max("min", ">", args)),
    Builtin("mean", _check_aggregate(FLOAT), _mean),
    Builtin("median", _check_aggregate(FLOAT), _median),
    Builtin("toJSON", overloads(((ANY,), STRING)), _to_json),
    Builtin("fromJSON", overloads(((STRING,), UNKNOWN)), _from_json),
    Builtin("toBase64", overloads(_S1), _to_base64),
    Builtin("fromBase64", overloads(_S1), _from_base64),
    Builtin("now", _check_now, _now),
    Builtin("duration", overloads(((STRING,), DURATION)), _duration),
    Builtin("date", _check_date, _date),
    Builtin("timezone", overloads(((STRING,), LOCATION)), _timezone),
    Builtin("first", _check_first_last, _first_last(0)),
    Builtin("last", _check_first_last, _first_last(-1)),
    Builtin("get", _check_get, _get),
    Builtin("take", _check_take, _take),
    Builtin(
        "keys",
        _check_map_arg("cannot get keys from", ARRAY),
        _map_of("cannot get keys from", lambda m: list(m)),
    ),
    Builtin(
        "values",
        _check_map_arg("cannot get values from", ARRAY),
        _map_of("cannot get values from", lambda m: list(m.values())),
    ),
    Builtin(
        "toPairs",
        _check_map_arg("cannot transform", ARRAY),
        _map_of("cannot transform", lambda m: [[k, v] for k, v in m.items()]),
    ),
    Builtin("fromPairs", _check_array_arg("cannot transform", MAP), _from_pairs),
    Builtin(
        "reverse",
        _check_array_arg("cannot reverse", ARRAY),
        _array_of("cannot reverse", lambda s, a: list(reversed(a[0]))),
    ),
    Builtin("uniq", _check_array_arg("cannot uniq", ARRAY), _array_of("cannot uniq", _uniq)),
    Builtin(
        "concat",
        _check_array_arg("cannot concat", ARRAY, variadic=True),
        _array_of("cannot concat", _concat),
    ),
    Builtin(
        "flatten", _check_array_arg("cannot flatten", ARRAY), _array_of("cannot flatten", _flatten)
    ),
    Builtin(
        "sort",
        overloads(
            ((ARRAY, STRING), ARRAY),
            ((STRINGS, STRING), ARRAY),
            ((ARRAY,), ARRAY),
            ((STRINGS,), ARRAY),
        ),
        _sort,
    ),
    Builtin("bitand", overloads(((INT, INT), INT)), _bit("bitand", lambda x, y: x & y)),
    Builtin("bitor", overloads(((INT, INT), INT)), _bit("bitor", lambda x, y: x | y)),
    Builtin("bitxor", overloads(((INT, INT), INT)), _bit("bitxor", lambda x, y: x ^ y)),
    Builtin("bitnand", overloads(((INT, INT), INT)), _bit("bitnand", lambda x, y: x & ~y)),
    Builtin("bitshl", overloads(((INT, INT), INT)), _shift("bitshl", lambda x, y: x << y)),
    Builtin("bitshr", overloads(((INT, INT), INT)), _shift("bitshr", lambda x, y: x >> y)),
    Builtin(
        "bitushr", overloads(((INT, INT), INT)), _shift("bitushr", lambda x, y: (x % 2**64) >> y)
    ),
    Builtin("bitnot", overloads(((INT,), INT)), _bitnot),
]

BUILTINS: dict[str, Builtin] = {b.name: b for b in _TABLE}
NAMES: frozenset[str] = frozenset(BUILTINS)
