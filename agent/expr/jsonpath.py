"""Argo's ``jsonpath()``: the dialect of github.com/evilmonkeyinc/jsonpath v0.8.1, step by step.

JSONPath has no single standard, and libraries disagree on exactly the cases users hit:
whether ``$.['key']`` is a value or a one-element list, whether a path may omit ``$``,
what ``$.length`` means, in which order ``$..*`` lists its matches, what a filter may say.
Argo answers with evilmonkeyinc/jsonpath v0.8.1 (``util/expr/env.jsonPath`` calls its
``Query`` on the ``json.Unmarshal``-ed document), so this module follows that library's
algorithm rather than any other dialect:

* **tokenising** (``token.Tokenize``): the selector must start with ``$`` or ``@``
  followed by ``.`` or ``[``; it is cut into key, ``..``, and bracket tokens with the same
  quote and bracket counting (counters that are not reset between tokens included);
* **parsing** (``token.Parse``): ``*``, ``length``, keys, ``['quoted']`` keys, indexes,
  ranges ``[a:b:c]``, unions ``[a,b]`` of keys or indexes, scripts ``[(...)]``,
  filters ``[?(...)]``;
* **applying**: each token applies to the current value and hands on to the rest. A
  key or index that is missing is an error; wildcards, ranges, unions, filters and
  recursive descent collect lists and silently drop members where the rest of the path
  fails or yields null. Map members are visited in sorted key order (``sortMapKeys``),
  so results have Go's deterministic order;
* **scripts** (``script/standard``): the expression is split at the first unquoted
  occurrence of each operator in a fixed order (``||`` first, ``$``/``@`` last) -- not
  a precedence grammar -- and operands are strings until an operator reads them as a
  number (``strconv.ParseFloat`` of ``%v``), a boolean (``ParseBool``), a quoted string
  or a JSON array/map. Strings that a selector yields are compared in single quotes.

The quirks are the library's and deliberate here: ``@.kind`` inside a filter is read as
``@.k in d`` because ``in`` is searched before ``@``; ``5 - 2 - 1`` is ``5 - (2 - 1)``.
Values are the decoded JSON (``dict``, ``list``, ``str``, ``float``, ``bool``, ``None``);
``length`` yields an int (Go's ``int64``). Errors are :class:`Panic` with the library's text,
which Argo passes on as the expression's error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .builtins import parse_go_float
from .errors import Panic
from .values import go_pow, go_sprint

__all__ = ["query"]

_INVALID_SELECTOR = "invalid JSONPath selector"
_INVALID_TOKEN = "invalid token"
_INVALID_TARGET = "invalid token target"
_INVALID_EXPRESSION = "invalid expression"
_UNEXPECTED_RESULT = "unexpected expression result"
_ARRAY, _MAP, _SLICE, _STRING, _INT = "array", "map", "slice", "string", "int"


class JsonPathError(Exception):
    """An error of the library; ``base`` is the sentinel it wraps (for ``errors.Is``)."""

    def __init__(self, message: str, base: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.base = base


def _kinds(*kinds: str) -> str:
    return "[" + " ".join(kinds) + "]"


def _kind(value: Any) -> str:
    """``reflect.Kind`` of a decoded JSON value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return _STRING
    if isinstance(value, list):
        return _SLICE
    if isinstance(value, dict):
        return _MAP
    return "invalid"


def _target_error(kind: str, got: Any, *expected: str) -> JsonPathError:
    shown = "nil" if got is None else _kind(got)
    return JsonPathError(
        f"{kind}: {_INVALID_TARGET}. expected {_kinds(*expected)} got [{shown}]", _INVALID_TOKEN
    )


def _argument_error(kind: str, got: str, *expected: str) -> JsonPathError:
    return JsonPathError(
        f"{kind}: {_INVALID_TOKEN} argument. expected {_kinds(*expected)} got [{got}]",
        _INVALID_TOKEN,
    )


def _out_of_range(kind: str) -> JsonPathError:
    return JsonPathError(f"{kind}: {_INVALID_TOKEN} out of range", _INVALID_TOKEN)


def _format_error(token: str) -> JsonPathError:
    return JsonPathError(
        f"{_INVALID_TOKEN}. '{token}' does not match any token format", _INVALID_TOKEN
    )


def _expression_error(reason: JsonPathError) -> JsonPathError:
    if reason.base == _INVALID_EXPRESSION:
        return reason
    return JsonPathError(f"{_INVALID_EXPRESSION}. {reason.message}", _INVALID_EXPRESSION)


def _token_error(kind: str, reason: JsonPathError) -> JsonPathError:
    if reason.base == _INVALID_TOKEN:
        return reason
    return JsonPathError(f"{kind}: {_INVALID_TOKEN} {reason.message}", _INVALID_TOKEN)


def _unexpected_result(got: Any, *expected: str) -> JsonPathError:
    shown = "nil" if got is None else _kind(got)
    return JsonPathError(
        f"{_UNEXPECTED_RESULT}. expected {_kinds(*expected)} got [{shown}]", _UNEXPECTED_RESULT
    )


def _as_integer(value: Any) -> int | None:
    """token.isInteger: ints, and floats without a fraction."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and value not in (_INF, -_INF):
        if value == int(value):
            return int(value)
    return None


_INF = float("inf")

# ------------------------------------------------------------------------------ tokens


class _Token:
    kind = ""

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        raise NotImplementedError


def _then(root: Any, value: Any, rest: list[_Token]) -> Any:
    return rest[0].apply(root, value, rest[1:]) if rest else value


class _Root(_Token):
    kind = "root"

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        return _then(root, root, rest)


class _Current(_Token):
    kind = "current"

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        return _then(root, current, rest)


class _Key(_Token):
    kind = "key"

    def __init__(self, key: str) -> None:
        self.key = key

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        if current is None:
            raise _target_error(self.kind, None, _MAP)
        if not isinstance(current, dict):
            raise _target_error(self.kind, current, _MAP)
        if self.key not in current:
            raise JsonPathError(
                f"{self.kind}: {_INVALID_TOKEN} key '{self.key}' not found", _INVALID_TOKEN
            )
        return _then(root, current[self.key], rest)


class _Index(_Token):
    kind = "index"

    def __init__(self, index: int) -> None:
        self.index = index

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        if current is None:
            raise _target_error(self.kind, None, _ARRAY, _SLICE)
        if not isinstance(current, list):
            raise _target_error(self.kind, current, _ARRAY, _SLICE)
        index = self.index + len(current) if self.index < 0 else self.index
        if not 0 <= index < len(current):
            raise _out_of_range(self.kind)
        return _then(root, current[index], rest)


class _Length(_Token):
    kind = "length"

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        expected = (_ARRAY, _MAP, _SLICE, _STRING)
        if current is None:
            raise _target_error(self.kind, None, *expected)
        value: Any
        if isinstance(current, dict):
            # A map's own "length" member wins over its size.
            value = current["length"] if "length" in current else len(current)
        elif isinstance(current, list):
            value = len(current)
        elif isinstance(current, str):
            value = len(current.encode())
        else:
            raise _target_error(self.kind, current, *expected)
        return _then(root, value, rest)


def _members(value: dict[str, Any]) -> list[Any]:
    return [value[key] for key in sorted(value)]


class _Wildcard(_Token):
    kind = "wildcard"

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        if isinstance(current, dict):
            items = _members(current)
        elif isinstance(current, list):
            items = current
        else:
            raise _target_error(self.kind, current, _ARRAY, _MAP, _SLICE)
        if not rest:
            return list(items)
        out: list[Any] = []
        for item in items:
            try:
                result = rest[0].apply(root, item, rest[1:])
            except JsonPathError:
                continue
            if result is not None:
                out.append(result)
        return out


class _Recursive(_Token):
    kind = "recursive"

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        return self._collect(root, current, rest)

    def _collect(self, root: Any, current: Any, rest: list[_Token]) -> list[Any]:
        out: list[Any] = []
        if current is None:
            return out
        if rest:
            try:
                result = rest[0].apply(root, current, rest[1:])
            except JsonPathError:
                result = None
            if isinstance(result, list):
                out.extend(result)
            elif result is not None:
                out.append(result)
        else:
            out.append(current)
        if isinstance(current, dict):
            children = _members(current)
        elif isinstance(current, list):
            children = current
        else:
            return out
        for child in children:
            out.extend(self._collect(root, child, rest))
        return out


def _for_each(rest: list[_Token]) -> bool:
    """Ranges and unions hand each member on, except to an index (which picks a member)."""
    return bool(rest) and not isinstance(rest[0], _Index)


def _each(root: Any, item: Any, rest: list[_Token]) -> tuple[Any, bool]:
    try:
        value = rest[0].apply(root, item, rest[1:])
    except JsonPathError:
        return None, False
    return value, value is not None


class _Range(_Token):
    kind = "range"

    def __init__(self, start: Any, stop: Any, step: Any) -> None:
        self.start, self.stop, self.step = start, stop, step

    def _argument(self, root: Any, current: Any, argument: Any) -> int:
        if isinstance(argument, _Token):
            try:
                result = argument.apply(root, current, [])
            except JsonPathError as exc:
                raise _token_error(self.kind, exc) from None
            if result is None:
                raise _token_error(self.kind, _unexpected_result(None, _INT))
            number = _as_integer(result)
            if number is None:
                raise _token_error(self.kind, _unexpected_result(result, _INT))
            return number
        number = _as_integer(argument)
        if number is None:
            raise _argument_error(self.kind, _kind(argument), _INT)
        return number

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        if current is None or not isinstance(current, list):
            raise _target_error(self.kind, current, _ARRAY, _SLICE)
        length = len(current)
        start = 0
        if self.start is not None:
            start = self._argument(root, current, self.start)
            start = min(max(start + length if start < 0 else start, 0), length)
        stop = length
        if self.stop is not None:
            stop = self._argument(root, current, self.stop)
            stop = min(max(stop + length if stop < 0 else stop, 0), length)
        step = 1
        if self.step is not None:
            step = self._argument(root, current, self.step)
            if step == 0:
                raise _out_of_range(self.kind)
        indexes = range(stop - 1, start - 1, step) if step < 0 else range(start, stop, step)
        for_each = _for_each(rest)
        out: list[Any] = []
        for i in indexes:
            if not for_each:
                out.append(current[i])
                continue
            value, keep = _each(root, current[i], rest)
            if keep:
                out.append(value)
        if rest and not for_each:
            return rest[0].apply(root, out, rest[1:])
        return out


class _Union(_Token):
    kind = "union"

    def __init__(self, arguments: list[Any]) -> None:
        self.arguments = arguments

    def _argument(self, root: Any, current: Any, argument: Any) -> str | int:
        if isinstance(argument, _Token):
            try:
                argument = argument.apply(root, current, [])
            except JsonPathError as exc:
                raise _token_error(self.kind, exc) from None
        if argument is None:
            raise JsonPathError(
                f"{self.kind}: {_INVALID_TOKEN} argument. expected [int string] got [nil]",
                _INVALID_TOKEN,
            )
        if isinstance(argument, str):
            return argument
        number = _as_integer(argument)
        if number is None:
            raise _argument_error(self.kind, _kind(argument), _INT, _STRING)
        return number

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        keys: list[str] = []
        indexes: list[int] = []
        for argument in self.arguments:
            value = self._argument(root, current, argument)
            if isinstance(value, str):
                keys.append(value)
                if indexes:
                    raise _argument_error(self.kind, _STRING, _INT)
            else:
                indexes.append(value)
                if keys:
                    raise _argument_error(self.kind, _INT, _STRING)
        for_each = _for_each(rest)
        out: list[Any] = []
        if keys:
            if current is None or not isinstance(current, dict):
                raise _target_error(self.kind, current, _MAP)
            picked = [current[key] for key in keys if key in current]
        else:
            if current is None or not isinstance(current, list):
                raise _target_error(self.kind, current, _ARRAY, _SLICE)
            length = len(current)
            picked = []
            for index in indexes:
                index = index + length if index < 0 else index
                if 0 <= index < length:  # out-of-range members are skipped
                    picked.append(current[index])
        for item in picked:
            if not for_each:
                out.append(item)
                continue
            value, keep = _each(root, item, rest)
            if keep:
                out.append(value)
        if rest and not for_each:
            return rest[0].apply(root, out, rest[1:])
        return out


def _run_script(compiled: _CompiledScript, root: Any, current: Any) -> Any:
    if compiled.expression == "":
        raise JsonPathError(f"{_INVALID_EXPRESSION}. is empty", _INVALID_EXPRESSION)
    try:
        return compiled.evaluate(root, current)
    except JsonPathError as exc:
        raise _expression_error(exc) from None


class _Script(_Token):
    """``[(expr)]``: the result picks a key (string) or an index (integer)."""

    kind = "script"

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.compiled = _compile_script(expression)

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        value = _run_script(self.compiled, root, current)
        if value is None:
            raise _unexpected_result(None, _INT, _STRING)
        if isinstance(value, str):
            return _Key(value).apply(root, current, rest)
        number = _as_integer(value)
        if number is not None:
            return _Index(number).apply(root, current, rest)
        raise _unexpected_result(value, _INT, _STRING)


class _Expression(_Token):
    """A script inside a range or union: its value is the argument itself."""

    kind = "expression"

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.compiled = _compile_script(expression)

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        return _then(root, _run_script(self.compiled, root, current), rest)


class _Filter(_Token):
    kind = "filter"

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.compiled = _compile_script(expression)

    @staticmethod
    def _include(value: Any) -> bool:
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, (list, dict)):
            return len(value) > 0
        if isinstance(value, str):
            if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            return len(value) > 0
        return bool(value)  # IsZero on numbers

    def apply(self, root: Any, current: Any, rest: list[_Token]) -> Any:
        if self.expression == "":
            raise JsonPathError(f"{_INVALID_EXPRESSION}. is empty", _INVALID_EXPRESSION)
        if isinstance(current, dict):
            items = _members(current)
        elif isinstance(current, list):
            items = current
        else:
            raise _target_error(self.kind, current, _ARRAY, _MAP, _SLICE)
        kept: list[Any] = []
        for item in items:
            try:
                verdict = self.compiled.evaluate(root, item)
            except JsonPathError:
                verdict = None
            if self._include(verdict):
                kept.append(item)
        if not rest:
            return kept
        if isinstance(rest[0], _Index):
            # The library passes the filtered node as the root here; kept for fidelity.
            return rest[0].apply(current, kept, rest[1:])
        out: list[Any] = []
        for item in kept:
            try:
                result = rest[0].apply(root, item, rest[1:])
            except JsonPathError:
                continue
            if result is not None:
                out.append(result)
        return out


# --------------------------------------------------------------------- tokenize / parse


def _unexpected_token(text: str, index: int) -> JsonPathError:
    return JsonPathError(f"unexpected token '{text}' at index {index}", "unexpected token")


def _tokenize(selector: str) -> list[str]:
    """``token.Tokenize``."""
    if selector == "":
        raise _unexpected_token("", 0)
    tokens: list[str] = []
    text = ""
    quotes = open_script = close_script = open_sub = close_sub = 0
    for idx, char in enumerate(selector):
        if text == "":
            quotes = open_script = close_script = 0
        if char == "'":
            quotes += 1
        elif char == "(":
            open_script += 1
        elif char == ")":
            close_script += 1
        elif char == "[":
            open_sub += 1
        elif char == "]":
            close_sub += 1
        text += char
        if idx == 0:
            if text not in ("$", "@"):
                raise _unexpected_token(char, idx)
            if len(selector) > 1 and selector[1] not in ".[":
                raise _unexpected_token(selector[1], idx + 1)
            tokens.append(text)
            text = ""
            continue
        if text == ".":
            continue
        if text == "..":
            tokens.append(text)
            text = ""
            continue
        if char == "[":
            if text in ("[", ".["):
                continue
            if text.count("[") > 1:
                continue
            tokens.append(text[1:-1] if text[0] == "." else text[:-1])
            text = "["
            continue
        if "[" in text:
            if quotes % 2 == 1 or open_script != close_script:
                continue
            if char == "]" and open_sub == close_sub:
                tokens.append(text[1:] if text[0] == "." else text)
                text = ""
                continue
        elif char == ".":
            if quotes % 2 == 1 or open_script != close_script:
                continue
            tokens.append(text[1:-1] if text[0] == "." else text[:-1])
            text = "."
            continue
    if text:
        tokens.append(text[1:] if text[0] == "." else text)
    return tokens


def _is_script(text: str) -> bool:
    return len(text) > 2 and text.startswith("(") and text.endswith(")")


def _is_key(text: str) -> bool:
    return len(text) > 1 and (
        (text.startswith("'") and text.endswith("'"))
        or (text.startswith('"') and text.endswith('"'))
    )


def _parse_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 10, 64)``."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


_COLON, _COMMA = object(), object()


def _parse(text: str) -> _Token:
    """``token.Parse``."""
    text = text.strip(" \t\n\v\f\r")
    if text == "":
        raise JsonPathError(f"{_INVALID_TOKEN}. token string is empty", _INVALID_TOKEN)
    simple: dict[str, Callable[[], _Token]] = {
        "$": _Root, "@": _Current, "*": _Wildcard, "..": _Recursive,
    }  # fmt: skip
    if text in simple:
        return simple[text]()
    if not text.startswith("["):
        return _Length() if text == "length" else _Key(text)
    if not text.endswith("]"):
        raise _format_error(text)
    subscript = text[1:-1].strip(" \t\n\v\f\r")
    if subscript == "":
        raise _format_error(text)
    if subscript == "*":
        return _Wildcard()
    if subscript.startswith("?"):
        if not subscript.startswith("?(") or not subscript.endswith(")"):
            raise _format_error(text)
        return _Filter(subscript[2:-1].strip(" \t\n\v\f\r"))

    opened = closed = 0
    single = double = False
    args: list[Any] = []
    buffer = ""
    for idx, char in enumerate(subscript):
        buffer += char
        in_quotes = single or double
        if char == " ":
            if not in_quotes and opened == closed:
                buffer = buffer.strip(" \t\n\v\f\r")
        elif char == "(":
            if in_quotes:
                continue
            opened += 1
        elif char == ")":
            closed += 1
            if opened == closed:
                if not _is_script(buffer):
                    raise JsonPathError(
                        f"{_INVALID_EXPRESSION}. invalid format '{buffer}'", _INVALID_EXPRESSION
                    )
                args.append(buffer)
                buffer = ""
        elif char in "'\"":
            if (double if char == "'" else single) or opened != closed:
                continue
            if len(buffer) > 1 and buffer[-2] == "\\":
                buffer = buffer[:-2] + char
                continue
            if char == "'":
                single = not single
                now_open = single
            else:
                double = not double
                now_open = double
            if now_open:
                if buffer != char:
                    raise _format_error(text)
            else:
                if not _is_key(buffer):
                    raise _format_error(text)
                args.append(buffer)
                buffer = ""
        elif char == ":":
            if in_quotes or opened != closed:
                continue
            arg = buffer[:-1]
            if arg != "":
                number = _parse_int(arg)
                if number is None:
                    raise _format_error(text)
                args.append(number)
            elif idx == 0:
                args.append(None)
            args.append(_COLON)
            buffer = ""
        elif char == ",":
            if in_quotes or opened != closed:
                continue
            arg = buffer[:-1]
            if arg != "":
                number = _parse_int(arg)
                args.append(arg if number is None else number)
            args.append(_COMMA)
            buffer = ""
    if buffer != "":
        number = _parse_int(buffer)
        args.append(buffer if number is None else number)

    if len(args) == 1:
        arg = args[0]
        if isinstance(arg, str):
            if _is_key(arg):
                return _Key(arg[1:-1])
            if _is_script(arg):
                return _Script(arg[1:-1])
        elif isinstance(arg, int):
            return _Index(arg)
        raise _format_error(text)

    colons = commas = 0
    last_colon = False
    plain: list[Any] = []
    for arg in args:
        if arg is _COLON:
            colons += 1
            if last_colon:
                plain.append(None)
            last_colon = True
            continue
        if arg is _COMMA:
            commas += 1
        else:
            plain.append(arg)
        last_colon = False

    if colons and commas:
        raise _format_error(text)
    if commas:
        if commas >= len(plain):
            raise _format_error(text)
        members: list[Any] = []
        for arg in plain:
            if isinstance(arg, str) and _is_script(arg):
                try:
                    members.append(_Expression(arg[1:-1]))
                except JsonPathError as exc:
                    raise _expression_error(exc) from None
            elif isinstance(arg, str) and _is_key(arg):
                members.append(arg[1:-1])
            elif isinstance(arg, int):
                members.append(arg)
            else:
                raise _format_error(text)
        return _Union(members)
    if colons:
        if colons > 2:
            raise _format_error(text)
        if colons == 1 and len(plain) == 1:
            plain.append(None)
        bounds: list[Any] = [plain[0], plain[1], plain[2] if len(plain) > 2 else None]
        for position, bound in enumerate(bounds):
            if isinstance(bound, str):
                if not _is_script(bound):
                    raise JsonPathError(
                        f"{_INVALID_EXPRESSION}. invalid format '{bound}'", _INVALID_EXPRESSION
                    )
                try:
                    bounds[position] = _Expression(bound[1:-1])
                except JsonPathError as exc:
                    raise _expression_error(exc) from None
        return _Range(*bounds)
    raise _format_error(text)


def _compile_path(selector: str) -> list[_Token]:
    return [_parse(part) for part in _tokenize(selector)]


# ---------------------------------------------------------------------- script engine

_OPERATORS = (
    "||", "&&", "==", "!=", "<=", ">=", "<", ">", "=~", "!", "+", "-", "**", "*", "/", "%",
    "not in", "in", "@", "$",
)  # fmt: skip
_MISSING = object()


class _Op:
    def evaluate(self, params: dict[str, Any]) -> Any:
        raise NotImplementedError


def _err(text: str) -> JsonPathError:
    return JsonPathError(text, "script")


_NIL_ARG = "invalid argument. is nil"


def _resolve(argument: Any, params: dict[str, Any]) -> Any:
    if isinstance(argument, _Op):
        argument = argument.evaluate(params)
    if isinstance(argument, str):
        value = params.get(argument, _MISSING)
        if value is not _MISSING:
            return value
    return argument


def _sprint(value: Any) -> str:
    return "<nil>" if value is None else go_sprint(value)


def _number(argument: Any, params: dict[str, Any]) -> float:
    if argument is None:
        raise _err(_NIL_ARG)
    value = _resolve(argument, params)
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    parsed = parse_go_float(_sprint(value))
    if parsed is None:
        raise _err("invalid argument. expected number")
    return parsed


def _integer(argument: Any, params: dict[str, Any]) -> int:
    if argument is None:
        raise _err(_NIL_ARG)
    parsed = _parse_int(_sprint(_resolve(argument, params)))
    if parsed is None:
        raise _err("invalid argument. expected integer")
    return parsed


_BOOLS = {
    "1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
    "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False,
}  # fmt: skip


def _boolean(argument: Any, params: dict[str, Any]) -> bool:
    if argument is None:
        return False
    value = _resolve(argument, params)
    if value is None:
        return False
    parsed = _BOOLS.get(_sprint(value))
    if parsed is None:
        raise _err("invalid argument. expected boolean")
    return parsed


def _unquote_double(text: str) -> str:
    if len(text) > 1 and text.startswith('"') and text.endswith('"'):
        return f"'{text[1:-1]}'"
    return text


def _string(argument: Any, params: dict[str, Any]) -> str:
    if argument is None:
        raise _err(_NIL_ARG)
    if isinstance(argument, _Op):
        argument = argument.evaluate(params)
    if isinstance(argument, str):
        value = params.get(argument, _MISSING)
        if value is _MISSING:
            if len(argument) > 1 and argument.startswith("'") and argument.endswith("'"):
                return argument
            return _unquote_double(argument)
        if isinstance(value, str):
            if len(value) > 1 and value.startswith("'") and value.endswith("'"):
                return value
            if len(value) > 1 and value.startswith('"') and value.endswith('"'):
                value = value[1:-1]
            return f"'{value}'"
        argument = value
    return _sprint(argument)


def _elements(argument: Any, params: dict[str, Any]) -> list[Any]:
    if argument is None:
        raise _err(_NIL_ARG)
    if isinstance(argument, _Op):
        argument = argument.evaluate(params)
    if isinstance(argument, str):
        value = params.get(argument, _MISSING)
        if value is not _MISSING:
            argument = value
        elif (argument.startswith("{") and argument.endswith("}")) or (
            argument.startswith("[") and argument.endswith("]")
        ):
            argument = _json_literal(argument)
            if argument is None:
                raise _err("invalid argument")
    if argument is None:
        raise _err(_NIL_ARG)
    if isinstance(argument, list):
        return list(argument)
    if isinstance(argument, dict):
        return list(argument.values())
    raise _err("invalid argument. expected array, map, or slice")


def _json_literal(text: str) -> Any:
    """json.Unmarshal into a map or slice; None when it does not decode to that shape."""
    from .builtins import from_json

    try:
        value = from_json(text)
    except Panic:
        return None
    wanted = dict if text.startswith("{") else list
    return value if isinstance(value, wanted) else None


def _go_equal(a: Any, b: Any) -> bool:
    """Interface equality of two decoded values (no deep comparison in ``in``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


class _Binary(_Op):
    def __init__(self, op: str, left: Any, right: Any) -> None:
        self.op, self.left, self.right = op, left, right

    def evaluate(self, params: dict[str, Any]) -> Any:
        op, left, right = self.op, self.left, self.right
        if op in ("&&", "||"):
            a, b = _boolean(left, params), _boolean(right, params)
            return (a and b) if op == "&&" else (a or b)
        if op in ("==", "!="):
            try:
                x = _number(left, params)
                y = _number(right, params)
            except JsonPathError:
                equal = _string(left, params) == _string(right, params)
            else:
                equal = x == y
            return equal if op == "==" else not equal
        if op in ("<", "<=", ">", ">=", "+", "-", "*", "/", "**"):
            x, y = _number(left, params), _number(right, params)
            return _ARITHMETIC[op](x, y)
        if op == "%":
            dividend, divisor = _integer(left, params), _integer(right, params)
            if divisor == 0:
                raise _err("runtime error: integer divide by zero")
            remainder = abs(dividend) % abs(divisor)  # Go's %: the dividend's sign
            return remainder if dividend >= 0 else -remainder
        if op == "=~":
            return _regex_match(left, right, params)
        found = _contains(left, right, params)
        return found if op == "in" else not found


def _divide(x: float, y: float) -> float:
    if y == 0:  # IEEE division, as Go's float64 does it
        if x == 0 or x != x:
            return float("nan")
        return math.copysign(_INF, x) * math.copysign(1.0, y)
    return x / y


_ARITHMETIC: dict[str, Callable[[float, float], Any]] = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
    "/": _divide,
    "**": go_pow,
}


def _strip_single(text: str) -> str:
    if len(text) > 1 and text.startswith("'") and text.endswith("'"):
        return text[1:-1]
    return text


def _regex_match(left: Any, right: Any, params: dict[str, Any]) -> bool:
    from .interp import compile_regexp
    from .state import check_regex_cost

    subject = _strip_single(_string(left, params))
    pattern = _strip_single(_string(right, params))
    try:
        regex = compile_regexp(pattern)
    except Panic:
        raise _err("invalid argument. expected a valid regexp") from None
    check_regex_cost(regex.programsize, subject)
    return regex.search(subject) is not None


def _contains(left: Any, right: Any, params: dict[str, Any]) -> bool:
    item: Any = left
    try:
        item = _number(left, params)
    except JsonPathError:
        try:
            item = _string(left, params)
        except JsonPathError:
            try:
                item = _boolean(left, params)
            except JsonPathError:
                item = left
    return any(_go_equal(element, item) for element in _elements(right, params))


class _Not(_Op):
    def __init__(self, argument: Any) -> None:
        self.argument = argument

    def evaluate(self, params: dict[str, Any]) -> Any:
        return not _boolean(self.argument, params)


class _Selector(_Op):
    def __init__(self, selector: str) -> None:
        self.tokens = _compile_path(selector)

    def evaluate(self, params: dict[str, Any]) -> Any:
        value = self.tokens[0].apply(params["$"], params["@"], self.tokens[1:])
        if isinstance(value, str):
            if len(value) > 1 and value.startswith("'") and value.endswith("'"):
                return value
            return f"'{value}'"
        return value


def _find_unquoted(source: str, operator: str) -> int:
    """``findUnquotedOperators``: first occurrence outside quotes and brackets (bytes)."""
    data = source.encode()
    op = operator.encode()
    single = double = False
    square_open = square_close = round_open = round_close = 0
    for idx, char in _rune_starts(data):
        in_square = square_open > square_close
        in_round = round_open > round_close
        if char == "(":
            if single or double or in_square:
                continue
            round_open += 1
        elif char == ")":
            if single or double or in_square:
                continue
            round_close += 1
        elif char == "[":
            if single or double or in_round:
                continue
            square_open += 1
        elif char == "]":
            if single or double or in_round:
                continue
            square_close += 1
        elif char == "'":
            if double or in_square or in_round:
                continue
            single = not single
        elif char == '"':
            if single or in_square or in_round:
                continue
            double = not double
        if single or double or square_open > square_close or round_open > round_close:
            continue
        if len(op) > idx + 1:
            continue
        start = idx + 1 - len(op)
        if data[start : idx + 1] == op:
            return len(data[:start].decode(errors="replace"))
    return -1


def _rune_starts(data: bytes) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for idx, byte in enumerate(data):
        if byte & 0xC0 != 0x80:
            out.append((idx, chr(byte) if byte < 0x80 else "\x80"))
    return out


class _CompiledScript:
    def __init__(self, expression: str, root_op: Any) -> None:
        self.expression = expression
        self.root_op = root_op

    def evaluate(self, root: Any, current: Any) -> Any:
        if self.expression == "":
            raise JsonPathError(f"{_INVALID_EXPRESSION}. is empty", _INVALID_EXPRESSION)
        params: dict[str, Any] = {"$": root, "@": current, "nil": None, "null": None}
        if self.root_op is None:
            expression = self.expression
            if expression in params:
                return params[expression]
            try:
                return _number(expression, params)
            except JsonPathError:
                pass
            try:
                return _boolean(expression, params)
            except JsonPathError:
                return expression
        return self.root_op.evaluate(params)


def _compile_script(expression: str) -> _CompiledScript:
    return _CompiledScript(expression, _build(expression, _OPERATORS))


_SPACE = " \t\n\v\f\r"


def _build(expression: str, tokens: tuple[str, ...]) -> Any:
    """``buildOperators``: split at the first unquoted occurrence of ``tokens[0]``."""
    operator = tokens[0]
    expression = expression.strip(_SPACE)
    if expression == "":
        return None
    if expression.startswith("(") and expression.endswith(")"):
        expression = expression[1:-1].strip(_SPACE)
        tokens = ("", *_OPERATORS)

    def skip() -> Any:
        return None if len(tokens) == 1 else _build(expression, tokens[1:])

    idx = _find_unquoted(expression, operator)
    if idx < 0:
        return skip()
    right_text = expression[idx + len(operator) :].strip(_SPACE)
    if right_text == "" and operator not in ("$", "@"):
        return skip()
    right = _argument(right_text, tokens)
    left_text = expression[:idx].strip(_SPACE)
    if left_text == "" and operator not in ("$", "@", "!"):
        return skip()
    left = _argument(left_text, tokens)
    if operator in ("@", "$"):
        if left is not None:
            return skip()
        return _Selector(expression)
    if operator == "!":
        if left is not None:
            return skip()
        return _Not(right)
    if operator in _OPERATORS:
        return _Binary(operator, left, right)
    raise _err("unsupported operator")


def _argument(text: str, tokens: tuple[str, ...]) -> Any:
    op = _build(text, tokens)
    if op is not None:
        return op
    text = text.strip(_SPACE)
    if text == "":
        return None
    if (text.startswith("[") and text.endswith("]")) or (
        text.startswith("{") and text.endswith("}")
    ):
        literal = _json_literal(text)
        if literal is not None:
            return literal
    return text


# --------------------------------------------------------------------------- entry


def query(path: str, data: Any) -> Any:
    """``jsonpath.Query(path, data)``: compile the selector, apply it; :class:`Panic` if not."""
    try:
        try:
            tokens = _compile_path(path)
        except JsonPathError as exc:
            if exc.base == _INVALID_SELECTOR:
                raise
            raise JsonPathError(
                f"{_INVALID_SELECTOR} '{path}' {exc.message}", _INVALID_SELECTOR
            ) from None
        if not tokens:
            raise JsonPathError(f"{_INVALID_SELECTOR} '{path}'", _INVALID_SELECTOR)
        return tokens[0].apply(data, data, tokens[1:])
    except JsonPathError as exc:
        raise Panic(exc.message) from None
    except RecursionError:
        raise Panic("jsonpath: selector or document nested too deeply") from None
