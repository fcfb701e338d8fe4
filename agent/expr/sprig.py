"""A curated, safe subset of Sprig's functions, reachable as ``sprig.<name>(...)``.

Argo puts Sprig's generic function map (minus ``env``/``expandenv``) into every
expression template's environment. We provide the deterministic, side-effect-free part
of it with Sprig's semantics, which surprise people:

* the value comes **last**: ``sprig.trunc(5, s)``, ``sprig.replace("a", "b", s)``;
* conversions never fail: ``sprig.int("x")`` is ``0`` (spf13/cast rules: base prefixes,
  ``"10.00"`` is 10); ``sprig.atoi`` ignores errors; ``b64dec`` returns the error text;
* arithmetic is int64 (``sprig.div(7, 2)`` is 3, division by zero is an error), the
  ``...f`` variants are decimal-exact floats;
* each function is a Go function called by reflection, so a wrongly typed argument
  (``sprig.trunc("5", s)``) fails with ``reflect: Call using string as type int``.

Left out on purpose (documented in the README): ``env``/``expandenv`` (secrets),
``getHostByName`` (network), random and time-dependent functions (``rand*``,
``uuidv4``, ``shuffle``, ``now``, ``date*``, ``ago``), cryptography (``genCA``,
``encryptAES``, ...), mutating dict functions (``set``, ``unset``, ``merge*``) and semver.
The text-wrapping and case-conversion helpers (``wrap``, ``wrapWith``, ``snakecase``,
``camelcase``, ``kebabcase``, ``swapcase``) come from :mod:`.textcase`, which follows the
libraries Sprig delegates them to.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import hashlib
import math
import re
import zlib
from collections.abc import Callable
from typing import Any

from . import textcase
from .errors import Panic
from .state import check_regex_cost
from .values import (
    MAX_TEXT,
    GoFunc,
    deep_equal,
    go_quote,
    go_sprint,
    go_type,
    json_marshal,
    wrap,
)

__all__ = ["FUNCTIONS", "sprig_map"]

_INT_BASE0 = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO]?[0-7_]*|[1-9][0-9_]*|0)\Z")


def _trim_zero_decimal(text: str) -> str:
    # spf13/cast: "10.00" parses as 10, "10.5" does not parse as an int.
    whole, dot, frac = text.partition(".")
    if dot and frac and set(frac) == {"0"}:
        return whole
    return text


def _parse_int_base0(text: str) -> int | None:
    """``strconv.ParseInt(s, 0, 64)``: sign, 0x/0o/0b/0 prefixes, underscores."""
    if not _INT_BASE0.match(text) or text.endswith("_") or "__" in text:
        return None
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-").replace("_", "")
    lower = body.lower()
    try:
        if lower.startswith("0x"):
            value = int(lower[2:], 16)
        elif lower.startswith("0b"):
            value = int(lower[2:], 2)
        elif lower.startswith("0o"):
            value = int(lower[2:], 8)
        elif len(lower) > 1 and lower.startswith("0"):
            value = int(lower[1:], 8)
        else:
            value = int(lower, 10)
    except ValueError:
        return None
    value *= sign
    if not -(2**63) <= value <= 2**63 - 1:
        return None
    return value


def to_int64(value: Any) -> int:
    """spf13/cast ``ToInt64``: anything to an int64, 0 when it does not convert."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return -(2**63)
        return wrap(int(value))
    if isinstance(value, str):
        parsed = _parse_int_base0(_trim_zero_decimal(value))
        return parsed if parsed is not None else 0
    return 0


def to_float64(value: Any) -> float:
    """spf13/cast ``ToFloat64``: 0 when it does not convert."""
    from .builtins import parse_go_float

    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        parsed = parse_go_float(value)
        return parsed if parsed is not None else 0.0
    return 0.0


def strval(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return go_sprint(value)


def _bounded(parts: list[str], glue: str = "") -> str:
    """Join, refusing results beyond the string size bound (arguments may alias)."""
    size = sum(map(len, parts)) + len(glue) * max(len(parts) - 1, 0)
    if size > MAX_TEXT:
        raise Panic("memory budget exceeded", kind="limit")
    return glue.join(parts)


def _strslice(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [strval(v) for v in value if v is not None]
    if value is None:
        return []
    return [strval(value)]


def _kind(value: Any) -> str:
    if value is None:
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple, bytes, bytearray)):
        return "slice"
    if isinstance(value, dict):
        return "map"
    if callable(value):
        return "func"
    return "struct"


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value == 0
    if isinstance(value, (str, list, tuple, dict, bytes, bytearray)):
        return len(value) == 0
    return False


def _list(value: Any, verb: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise Panic(f"Cannot {verb} on type {_kind(value)}")


def _byte_slice(text: str, start: int, end: int | None) -> str:
    data = text.encode("utf-8")
    stop = len(data) if end is None else end
    if start < 0 or stop < start or stop > len(data):
        raise Panic(
            f"runtime error: slice bounds out of range [{start}:{stop}] with length {len(data)}"
        )
    return data[start:stop].decode("utf-8", errors="replace")


def _substr(start: int, end: int, text: str) -> str:
    if start < 0:
        return _byte_slice(text, 0, end)
    if end < 0 or end > len(text.encode("utf-8")):
        return _byte_slice(text, start, None)
    return _byte_slice(text, start, end)


def _trunc(count: int, text: str) -> str:
    size = len(text.encode("utf-8"))
    if count < 0 and size + count > 0:
        return _byte_slice(text, size + count, None)
    if count >= 0 and size > count:
        return _byte_slice(text, 0, count)
    return text


def _abbreviate_full(text: str, offset: int, width: int) -> str:
    if text == "":
        return ""
    if width < 4:
        raise Panic("stringutils illegal argument: Minimum abbreviation width is 4")
    if len(text) <= width:
        return text
    offset = min(offset, len(text))
    if len(text) - offset < width - 3:
        offset = len(text) - (width - 3)
    if offset <= 4:
        return text[: width - 3] + "..."
    if width < 7:
        raise Panic("stringutils illegal argument: Minimum abbreviation width with offset is 7")
    if offset + width - 3 < len(text):
        return "..." + _abbreviate_full(text[offset:], 0, width - 3)
    return "..." + text[len(text) - (width - 3) :]


def _abbrev(width: int, text: str) -> str:
    if width < 4:
        return text
    return _abbreviate_full(text, 0, width)


def _abbrevboth(left: int, right: int, text: str) -> str:
    if right < 4 or (left > 0 and right < 7):
        return text
    return _abbreviate_full(text, left, right)


def _is_separator(char: str) -> bool:
    if char.isascii():
        return not (char.isalnum() or char == "_")
    if char.isalpha() or char.isdigit():
        return False
    return char.isspace()


def _title(text: str) -> str:
    out: list[str] = []
    prev = " "
    for char in text:
        out.append(char.title() if _is_separator(prev) and len(char.title()) == 1 else char)
        prev = char
    return "".join(out)


def _untitle(text: str) -> str:
    out: list[str] = []
    boundary = True
    for char in text:
        if char.isspace():
            boundary = True
            out.append(char)
        elif boundary:
            out.append(char.lower() if len(char.lower()) == 1 else char)
            boundary = False
        else:
            out.append(char)
    return "".join(out)


def _initials(text: str) -> str:
    return "".join(word[0] for word in text.split() if word)


def _regexp(pattern: str, text: str) -> Any:
    """The compiled pattern, once its cost on ``text`` is known to be within budget."""
    from .interp import compile_regexp

    try:
        regex = compile_regexp(pattern)
    except Panic as exc:
        raise Panic(f"regexp: Compile({_backquote(pattern)}): {exc.message}") from None
    check_regex_cost(regex.programsize, text)
    return regex


def _backquote(text: str) -> str:
    return f"`{text}`" if "`" not in text else go_quote(text)


def _regex_match(pattern: str, text: str) -> bool:
    try:
        regex = _regexp(pattern, text)
    except Panic as exc:
        if exc.kind == "limit":
            raise
        return False  # sprig ignores the compile error
    return regex.search(text) is not None


def _expand(template: str, match: Any) -> str:
    # Go's Regexp.Expand: $1, ${1}, $name, ${name}, $$.
    out: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char != "$" or i + 1 >= len(template):
            out.append(char)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = template.find("}", i + 2)
            if end < 0:
                out.append(char)
                i += 1
                continue
            name = template[i + 2 : end]
            i = end + 1
        else:
            j = i + 1
            while j < len(template) and (template[j].isalnum() or template[j] == "_"):
                j += 1
            name = template[i + 1 : j]
            if not name:
                out.append(char)
                i += 1
                continue
            i = j
        try:
            group = match.group(int(name)) if name.isdigit() else match.group(name)
        except (IndexError, ValueError, KeyError):
            group = None
        out.append(group or "")
    return "".join(out)


def _replace_all(pattern: str, text: str, repl: str, *, literal: bool) -> str:
    regex = _regexp(pattern, text)
    budget = MAX_TEXT - len(text)

    def piece(match: Any) -> str:
        nonlocal budget
        out = repl if literal else _expand(repl, match)
        budget -= len(out)
        if budget < 0:
            raise Panic("memory budget exceeded", kind="limit")
        return out

    return str(regex.sub(piece, text))


def _regex_split(pattern: str, text: str, count: int) -> list[Any]:
    if count == 0:
        return []
    regex = _regexp(pattern, text)
    if pattern and text == "":
        return [""]
    parts: list[Any] = []
    start = 0
    for match in regex.finditer(text):
        if count > 0 and len(parts) == count - 1:
            break
        if match.end() == 0:
            continue
        if len(parts) >= 1_000_000:
            raise Panic("memory budget exceeded", kind="limit")
        parts.append(text[start : match.start()])
        start = match.end()
    parts.append(text[start:])
    return parts


def _regex_find_all(pattern: str, text: str, count: int) -> list[Any]:
    regex = _regexp(pattern, text)
    found: list[Any] = []
    for match in regex.finditer(text):
        if 0 <= count <= len(found):
            break
        if len(found) >= 1_000_000:
            raise Panic("memory budget exceeded", kind="limit")
        found.append(match.group(0))
    return found


_META = set("\\.+*?()|[]{}^$")


def _quote_meta(text: str) -> str:
    return "".join("\\" + c if c in _META else c for c in text)


def _go_path_clean(path: str) -> str:
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _go_path_base(path: str) -> str:
    if path == "":
        return "."
    path = path.rstrip("/")
    if path == "":
        return "/"
    return path.rsplit("/", 1)[-1]


def _go_path_dir(path: str) -> str:
    head = path[: path.rfind("/") + 1]
    return _go_path_clean(head)


def _go_path_ext(path: str) -> str:
    for index in range(len(path) - 1, -1, -1):
        if path[index] == "/":
            break
        if path[index] == ".":
            return path[index:]
    return ""


def _decimal(value: Any) -> decimal.Decimal:
    number = to_float64(value)
    if math.isnan(number) or math.isinf(number):
        return decimal.Decimal(number)
    return decimal.Decimal(repr(number))


def _product(values: list[decimal.Decimal]) -> decimal.Decimal:
    result = decimal.Decimal(1)
    for value in values:
        result *= value
    return result


def _dec_float(value: decimal.Decimal) -> float:
    return float(value)


def _int_div(a: Any, b: Any) -> int:
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise Panic("runtime error: integer divide by zero")
    quotient = abs(x) // abs(y)
    return wrap(quotient if (x >= 0) == (y >= 0) else -quotient)


def _int_mod(a: Any, b: Any) -> int:
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise Panic("runtime error: integer divide by zero")
    remainder = abs(x) % abs(y)
    return remainder if x >= 0 else -remainder


def _sprig_round(value: Any, places: int, *round_on: float) -> float:
    threshold = round_on[0] if round_on else 0.5
    number = to_float64(value)
    power = math.pow(10, float(places))
    digit = power * number
    fraction = math.modf(digit)[0]
    rounded = math.ceil(digit) if fraction >= threshold else math.floor(digit)
    return rounded / power


def _until_step(start: int, stop: int, step: int) -> list[Any]:
    if step == 0 or (step > 0 and start >= stop) or (step < 0 and start <= stop):
        return []
    size = (abs(stop - start) + abs(step) - 1) // abs(step)
    if size >= 1_000_000:
        raise Panic("memory budget exceeded", kind="limit")
    return list(range(start, stop, step))


def _seq(*params: int) -> str:
    # numeric.go seq: the end is inclusive, so it moves one further in the direction of
    # travel, which is decided by end < start alone (a step against it yields nothing).
    if len(params) == 1:
        start, end = 1, params[0]
        step = increment = -1 if end < start else 1
    elif len(params) == 2:
        start, end = params
        step = increment = -1 if end < start else 1
    elif len(params) == 3:
        start, step, end = params
        increment = -1 if end < start else 1
        if end < start and step > 0:
            return ""
    else:
        return ""
    return " ".join(str(n) for n in _until_step(start, end + increment, step))


def _dict(*items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for index in range(0, len(items), 2):
        key = strval(items[index])
        out[key] = items[index + 1] if index + 1 < len(items) else ""
    return out


def _not_a_map(value: Any) -> str:
    return (
        f"interface conversion: interface {{}} is {go_type(value)}, not map[string]interface {{}}"
    )


def _dig(*args: Any) -> Any:
    if len(args) < 3:
        raise Panic("dig needs at least three arguments")
    current = args[-1]
    if not isinstance(current, dict):
        raise Panic(_not_a_map(current))
    default = args[-2]
    keys = args[:-2]
    for index, key in enumerate(keys):
        if not isinstance(key, str):
            raise Panic(f"interface conversion: interface {{}} is {go_type(key)}, not string")
        if key not in current:
            return default
        value = current[key]
        if index == len(keys) - 1:
            return value
        if not isinstance(value, dict):
            raise Panic(_not_a_map(value))
        current = value
    return default


def _slice(items: Any, *indices: Any) -> Any:
    values = _list(items, "slice")
    if not values:
        return None
    start = to_int64(indices[0]) if indices else 0
    end = to_int64(indices[1]) if len(indices) > 1 else len(values)
    if not 0 <= start <= end <= len(values):
        raise Panic(f"runtime error: slice bounds out of range [{start}:{end}]")
    return values[start:end]


def _first(items: Any) -> Any:
    values = _list(items, "find first")
    return values[0] if values else None


def _last(items: Any) -> Any:
    values = _list(items, "find last")
    return values[-1] if values else None


def _rest(items: Any) -> list[Any]:
    # Go returns a nil []interface{} for an empty list: still a list, of length 0.
    return _list(items, "find rest")[1:]


def _initial(items: Any) -> list[Any]:
    return _list(items, "find initial")[:-1]


def _uniq(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in _list(items, "uniq"):
        if not any(deep_equal(item, seen) for seen in out):
            out.append(item)
    return out


def _without(items: Any, *omit: Any) -> list[Any]:
    return [v for v in _list(items, "find without") if not any(deep_equal(v, o) for o in omit)]


def _has(needle: Any, haystack: Any) -> bool:
    if haystack is None:
        return False
    return any(deep_equal(needle, item) for item in _list(haystack, "find has"))


def _concat(*lists: Any) -> list[Any]:
    out: list[Any] = []
    for item in lists:
        if not isinstance(item, (list, tuple)):
            raise Panic(f"Cannot concat type {_kind(item)} as list")
        out.extend(item)
    return out


def _to_json(value: Any) -> str:
    try:
        return json_marshal(value)
    except Panic as exc:
        if exc.kind == "limit":
            raise
        return ""


def _to_pretty_json(value: Any) -> str:
    try:
        return json_marshal(value, indent="  ")
    except Panic as exc:
        if exc.kind == "limit":
            raise
        return ""


def _to_raw_json(value: Any) -> str:
    try:
        text = json_marshal(value)
    except Panic as exc:
        if exc.kind == "limit":
            raise
        return ""
    return text.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u0026", "&")


def _from_json(text: str) -> Any:
    from .builtins import from_json

    try:
        return from_json(text)
    except Panic:
        return None


def _must_from_json(text: str) -> Any:
    from .builtins import from_json

    return from_json(text)


def _b64dec(text: str) -> str:
    try:
        if len(text) % 4:
            raise binascii.Error
        return base64.b64decode(text, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        bad = next(
            (i for i, c in enumerate(text) if not (c.isalnum() or c in "+/=")), len(text) // 4 * 4
        )
        return f"illegal base64 data at input byte {bad}"


def _b32dec(text: str) -> str:
    try:
        return base64.b32decode(text).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        bad = next(
            (i for i, c in enumerate(text) if c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567="), 0
        )
        return f"illegal base32 data at input byte {bad}"


def _fail(message: str) -> str:
    raise Panic(message)


# A Go nil map reads as empty.


def _pick(source: dict[str, Any] | None, *keys: str) -> dict[str, Any]:
    source = source or {}
    return {k: source[k] for k in keys if k in source}


def _omit(source: dict[str, Any] | None, *keys: str) -> dict[str, Any]:
    return {k: v for k, v in (source or {}).items() if k not in keys}


def _pluck(name: str, *dicts: dict[str, Any] | None) -> list[Any]:
    return [d[name] for d in dicts if d and name in d]


def _keys(*dicts: dict[str, Any] | None) -> list[Any]:
    return [k for d in dicts for k in (d or {})]


def _to_decimal(value: Any) -> int:
    text = go_sprint(value)
    if not re.fullmatch(r"[+-]?[0-7]+", text):
        return 0
    parsed = int(text, 8)
    return parsed if -(2**63) <= parsed < 2**63 else 0


def _atoi(text: str) -> int:
    from .builtins import parse_go_int

    value = parse_go_int(text)
    return value if value is not None else 0


def _repeat(count: int, text: str) -> str:
    if count < 0:
        raise Panic("strings: negative Repeat count")
    if len(text) * count > 1_000_000:
        raise Panic("memory budget exceeded", kind="limit")
    return text * count


def _indent(spaces: int, text: str) -> str:
    if spaces < 0:
        raise Panic("strings: negative Repeat count")
    if len(text) + spaces * (text.count("\n") + 1) > MAX_TEXT:
        raise Panic("memory budget exceeded", kind="limit")
    pad = " " * spaces
    return pad + text.replace("\n", "\n" + pad)


def _replace(old: str, new: str, text: str) -> str:
    from .builtins import replaced_length

    if replaced_length(text, old, new) > MAX_TEXT:
        raise Panic("memory budget exceeded", kind="limit")
    return text.replace(old, new)


def _f(
    params: str, result: str, impl: Callable[..., Any], *, variadic: bool = False
) -> tuple[tuple[str, ...], str, Callable[..., Any], bool]:
    return (tuple(p for p in params.split(",") if p), result, impl, variadic)


_SPECS: dict[str, tuple[tuple[str, ...], str, Callable[..., Any], bool]] = {
    # strings
    "trim": _f("string", "string", lambda s: s.strip("\t\n\v\f\r \x85\xa0")),
    "trimAll": _f("string,string", "string", lambda cut, s: s.strip(cut)),
    "trimall": _f("string,string", "string", lambda cut, s: s.strip(cut)),
    "trimPrefix": _f("string,string", "string", lambda p, s: s.removeprefix(p)),
    "trimSuffix": _f("string,string", "string", lambda p, s: s.removesuffix(p)),
    "upper": _f(
        "string",
        "string",
        lambda s: (
            s.upper()
            if s.isascii()
            else "".join(c.upper() if len(c.upper()) == 1 else c for c in s)
        ),
    ),
    "lower": _f(
        "string",
        "string",
        lambda s: (
            s.lower()
            if s.isascii()
            else "".join(c.lower() if len(c.lower()) == 1 else c for c in s)
        ),
    ),
    "title": _f("string", "string", _title),
    "snakecase": _f("string", "string", textcase.snake_case),
    "kebabcase": _f("string", "string", lambda s: textcase.snake_case(s, "-")),
    "camelcase": _f("string", "string", textcase.pascal_case),
    "swapcase": _f("string", "string", textcase.swap_case),
    "wrap": _f(
        "int,string", "string", lambda n, s: textcase.wrap_custom(s, n, "", long_words=False)
    ),
    "wrapWith": _f(
        "int,string,string",
        "string",
        lambda n, sep, s: textcase.wrap_custom(s, n, sep, long_words=True),
    ),
    "untitle": _f("string", "string", _untitle),
    "substr": _f("int,int,string", "string", _substr),
    "repeat": _f("int,string", "string", _repeat),
    "nospace": _f("string", "string", lambda s: "".join(c for c in s if not c.isspace())),
    "trunc": _f("int,string", "string", _trunc),
    "abbrev": _f("int,string", "string", _abbrev),
    "abbrevboth": _f("int,int,string", "string", _abbrevboth),
    "initials": _f("string", "string", _initials),
    "contains": _f("string,string", "bool", lambda sub, s: sub in s),
    "hasPrefix": _f("string,string", "bool", lambda p, s: s.startswith(p)),
    "hasSuffix": _f("string,string", "bool", lambda p, s: s.endswith(p)),
    "quote": _f(
        "any",
        "string",
        lambda *v: _bounded([go_quote(strval(x)) for x in v if x is not None], " "),
        variadic=True,
    ),
    "squote": _f(
        "any",
        "string",
        lambda *v: _bounded([f"'{strval(x)}'" for x in v if x is not None], " "),
        variadic=True,
    ),
    "cat": _f(
        "any",
        "string",
        lambda *v: _bounded([go_sprint(x) for x in v if x is not None], " "),
        variadic=True,
    ),
    "indent": _f("int,string", "string", _indent),
    "nindent": _f("int,string", "string", lambda n, s: "\n" + _indent(n, s)),
    "replace": _f("string,string,string", "string", _replace),
    "plural": _f("string,string,int", "string", lambda one, many, n: one if n == 1 else many),
    # conversions
    "atoi": _f("string", "int", _atoi),
    "int": _f("any", "int", to_int64),
    "int64": _f("any", "int", to_int64),
    "float64": _f("any", "float64", to_float64),
    "toString": _f("any", "string", strval),
    "toStrings": _f("any", "[]string", _strslice),
    "toDecimal": _f("any", "int", _to_decimal),
    # integer math (int64, lenient conversions)
    "add": _f("any", "int", lambda *v: wrap(sum(to_int64(x) for x in v)), variadic=True),
    "add1": _f("any", "int", lambda v: wrap(to_int64(v) + 1)),
    "sub": _f("any,any", "int", lambda a, b: wrap(to_int64(a) - to_int64(b))),
    "div": _f("any,any", "int", _int_div),
    "mod": _f("any,any", "int", _int_mod),
    "mul": _f(
        "any,any",
        "int",
        lambda a, *v: wrap(math.prod([to_int64(a), *(to_int64(x) for x in v)])),
        variadic=True,
    ),
    "max": _f(
        "any,any", "int", lambda a, *v: max([to_int64(a), *(to_int64(x) for x in v)]), variadic=True
    ),
    "min": _f(
        "any,any", "int", lambda a, *v: min([to_int64(a), *(to_int64(x) for x in v)]), variadic=True
    ),
    "biggest": _f(
        "any,any", "int", lambda a, *v: max([to_int64(a), *(to_int64(x) for x in v)]), variadic=True
    ),
    # float math (decimal-exact like shopspring/decimal)
    "addf": _f(
        "any",
        "float64",
        lambda *v: _dec_float(sum((_decimal(x) for x in v), decimal.Decimal(0))),
        variadic=True,
    ),
    "add1f": _f("any", "float64", lambda v: _dec_float(_decimal(v) + 1)),
    "subf": _f(
        "any,any",
        "float64",
        lambda a, *v: _dec_float(_decimal(a) - sum((_decimal(x) for x in v), decimal.Decimal(0))),
        variadic=True,
    ),
    "mulf": _f(
        "any,any",
        "float64",
        lambda a, *v: _dec_float(_product([_decimal(a), *(_decimal(x) for x in v)])),
        variadic=True,
    ),
    "divf": _f("any,any", "float64", lambda a, *v: _divf(a, *v), variadic=True),
    "maxf": _f(
        "any,any",
        "float64",
        lambda a, *v: max([to_float64(a), *(to_float64(x) for x in v)]),
        variadic=True,
    ),
    "minf": _f(
        "any,any",
        "float64",
        lambda a, *v: min([to_float64(a), *(to_float64(x) for x in v)]),
        variadic=True,
    ),
    "floor": _f(
        "any",
        "float64",
        lambda v: (
            float(math.floor(to_float64(v))) if math.isfinite(to_float64(v)) else to_float64(v)
        ),
    ),
    "ceil": _f(
        "any",
        "float64",
        lambda v: (
            float(math.ceil(to_float64(v))) if math.isfinite(to_float64(v)) else to_float64(v)
        ),
    ),
    "round": _f("any,int,float64", "float64", _sprig_round, variadic=True),
    "until": _f("int", "[]any", lambda n: _until_step(0, n, 1 if n >= 0 else -1)),
    "untilStep": _f("int,int,int", "[]any", _until_step),
    "seq": _f("int", "string", _seq, variadic=True),
    # lists
    "list": _f("any", "[]any", lambda *v: list(v), variadic=True),
    "tuple": _f("any", "[]any", lambda *v: list(v), variadic=True),
    "first": _f("any", "any", _first),
    "rest": _f("any", "[]any", _rest),
    "last": _f("any", "any", _last),
    "initial": _f("any", "[]any", _initial),
    "append": _f("any,any", "[]any", lambda items, v: [*_list(items, "push"), v]),
    "push": _f("any,any", "[]any", lambda items, v: [*_list(items, "push"), v]),
    "prepend": _f("any,any", "[]any", lambda items, v: [v, *_list(items, "prepend")]),
    "concat": _f("any", "any", _concat, variadic=True),
    "reverse": _f("any", "[]any", lambda items: list(reversed(_list(items, "find reverse")))),
    "uniq": _f("any", "[]any", _uniq),
    "without": _f("any,any", "[]any", _without, variadic=True),
    "has": _f("any,any", "bool", _has),
    "compact": _f(
        "any", "[]any", lambda items: [v for v in _list(items, "compact") if not _empty(v)]
    ),
    "slice": _f("any,any", "any", _slice, variadic=True),
    "join": _f("string,any", "string", lambda sep, v: _bounded(_strslice(v), sep)),
    "split": _f(
        "string,string", "map", lambda sep, s: {f"_{i}": p for i, p in enumerate(_go_split(s, sep))}
    ),
    "splitList": _f("string,string", "[]string", lambda sep, s: _go_split(s, sep)),
    "splitn": _f(
        "string,int,string",
        "map",
        lambda sep, n, s: {f"_{i}": p for i, p in enumerate(_go_split(s, sep, n))},
    ),
    "sortAlpha": _f("any", "[]string", lambda v: sorted(_strslice(v))),
    # dicts (non-mutating)
    "dict": _f("any", "map", _dict, variadic=True),
    "get": _f("map,string", "any", lambda d, k: d.get(k, "") if d is not None else ""),
    "hasKey": _f("map,string", "bool", lambda d, k: d is not None and k in d),
    "pluck": _f("string,map", "[]any", _pluck, variadic=True),
    "keys": _f("map", "[]string", _keys, variadic=True),
    "values": _f("map", "[]any", lambda d: list((d or {}).values())),
    "pick": _f("map,string", "map", _pick, variadic=True),
    "omit": _f("map,string", "map", _omit, variadic=True),
    "dig": _f("any", "any", _dig, variadic=True),
    "deepCopy": _f(
        "any", "any", lambda v: _must_from_json(json_marshal(v)) if v is not None else None
    ),
    # defaults and logic
    "default": _f(
        "any,any",
        "any",
        lambda d, *given: d if not given or _empty(given[0]) else given[0],
        variadic=True,
    ),
    "empty": _f("any", "bool", _empty),
    "coalesce": _f(
        "any", "any", lambda *v: next((x for x in v if not _empty(x)), None), variadic=True
    ),
    "all": _f("any", "bool", lambda *v: all(not _empty(x) for x in v), variadic=True),
    "any": _f("any", "bool", lambda *v: any(not _empty(x) for x in v), variadic=True),
    "ternary": _f("any,any,bool", "any", lambda t, f, cond: t if cond else f),
    "fail": _f("string", "string", _fail),
    # JSON and encodings
    "fromJson": _f("string", "any", _from_json),
    "mustFromJson": _f("string", "any", _must_from_json),
    "toJson": _f("any", "string", _to_json),
    "mustToJson": _f("any", "string", json_marshal),
    "toPrettyJson": _f("any", "string", _to_pretty_json),
    "toRawJson": _f("any", "string", _to_raw_json),
    "b64enc": _f("string", "string", lambda s: base64.b64encode(s.encode()).decode("ascii")),
    "b64dec": _f("string", "string", _b64dec),
    "b32enc": _f("string", "string", lambda s: base64.b32encode(s.encode()).decode("ascii")),
    "b32dec": _f("string", "string", _b32dec),
    "sha1sum": _f("string", "string", lambda s: hashlib.sha1(s.encode()).hexdigest()),
    "sha256sum": _f("string", "string", lambda s: hashlib.sha256(s.encode()).hexdigest()),
    "sha512sum": _f("string", "string", lambda s: hashlib.sha512(s.encode()).hexdigest()),
    "adler32sum": _f("string", "string", lambda s: str(zlib.adler32(s.encode()))),
    # regular expressions (RE2)
    "regexMatch": _f("string,string", "bool", _regex_match),
    "mustRegexMatch": _f("string,string", "bool", lambda p, s: _regexp(p, s).search(s) is not None),
    "regexFind": _f(
        "string,string",
        "string",
        lambda p, s: (lambda m: m.group(0) if m else "")(_regexp(p, s).search(s)),
    ),
    "regexFindAll": _f("string,string,int", "[]string", _regex_find_all),
    "regexReplaceAll": _f(
        "string,string,string", "string", lambda p, s, r: _replace_all(p, s, r, literal=False)
    ),
    "regexReplaceAllLiteral": _f(
        "string,string,string", "string", lambda p, s, r: _replace_all(p, s, r, literal=True)
    ),
    "regexSplit": _f("string,string,int", "[]string", _regex_split),
    "regexQuoteMeta": _f("string", "string", _quote_meta),
    # paths (Go's path package)
    "base": _f("string", "string", _go_path_base),
    "dir": _f("string", "string", _go_path_dir),
    "clean": _f("string", "string", _go_path_clean),
    "ext": _f("string", "string", _go_path_ext),
    "isAbs": _f("string", "bool", lambda p: p.startswith("/")),
    # reflection
    "typeOf": _f("any", "string", go_type),
    "kindOf": _f("any", "string", _kind),
    "typeIs": _f("string,any", "bool", lambda t, v: go_type(v) == t),
    # Pointers never reach an expression, so only the plain type name can match.
    "typeIsLike": _f("string,any", "bool", lambda t, v: go_type(v) in (t, "*" + t)),
    "kindIs": _f("string,any", "bool", lambda k, v: _kind(v) == k),
    "deepEqual": _f("any,any", "bool", deep_equal),
}


def _divf(a: Any, *rest: Any) -> float:
    result = _decimal(a)
    for item in rest:
        divisor = _decimal(item)
        if divisor == 0:
            raise Panic("decimal division by 0")
        result = result / divisor
    return _dec_float(result)


def _go_split(text: str, sep: str, limit: int = -1) -> list[Any]:
    from .builtins import go_split

    return go_split(text, sep, limit)


FUNCTIONS: dict[str, GoFunc] = {
    name: GoFunc(f"sprig.{name}", params, result, impl, variadic)
    for name, (params, result, impl, variadic) in _SPECS.items()
}


def sprig_map() -> dict[str, Any]:
    """The ``sprig`` environment value: a map of function values."""
    return dict(FUNCTIONS)
