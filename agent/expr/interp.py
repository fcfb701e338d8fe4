"""Compile a checked tree into nested Python closures, then run them.

Each node becomes one closure ``f(state) -> value`` that calls its children's closures
directly: no per-evaluation parsing, no tree walking with ``isinstance`` dispatch, no
bytecode loop. Literal-keyed member access on a plain dict (``response.statusCode``) is a
``dict.get``; operators on two ints or two strings take a fast path before falling back
to the general Go semantics in :mod:`agent.expr.values`.

Errors keep expr's positions: an operation that fails raises :class:`Panic`, and the
closure of the node that ran it converts that into an :class:`ExprError` located at the
node, the way expr's VM reports the location of the failing opcode. Optional chains
(``a?.b``) unwind with a private exception caught by the enclosing chain node.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from . import ast
from .builtins import BUILTINS, fetch, sort_values
from .errors import ExprError, Panic
from .gotime import GoDuration, GoLocation, GoMonth, GoTime, GoWeekday
from .state import DEFAULT_LIMITS, State
from .values import (
    AnyKeyMap,
    GoFunc,
    add,
    divide,
    equal,
    exponent,
    go_type,
    less,
    modulo,
    multiply,
    negate,
    subtract,
    to_int,
    wrap,
)

__all__ = ["Closure", "build", "compile_regexp"]

Closure = Callable[[State], Any]


class _ChainNil(Exception):
    """Raised by an optional member access on nil; caught by the enclosing chain."""


@functools.lru_cache(maxsize=512)
def compile_regexp(pattern: str) -> Any:
    """Compile with RE2 (linear time, no backtracking), as Go's ``regexp`` does."""
    import re2

    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else str(exc)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", errors="replace")
        raise Panic(f"error parsing regexp: {detail}") from None


def _iface(value: Any) -> str:
    return "nil" if value is None else go_type(value)


def _as_bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise Panic(f"interface conversion: interface {{}} is {_iface(value)}, not bool")


def _as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise Panic(f"interface conversion: interface {{}} is {_iface(value)}, not string")


def _collection(value: Any) -> list[Any] | tuple[Any, ...] | bytes:
    """What expr's loops iterate: arrays (a panic for anything else)."""
    if isinstance(value, (list, tuple, bytes)):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict):
        if not value:
            return []
        raise Panic("reflect: call of reflect.Value.Index on map Value")
    if value is None:
        raise Panic("reflect: call of reflect.Value.Len on zero Value")
    raise Panic(f"reflect: call of reflect.Value.Len on {go_type(value)} Value")


_PARAM_GO = {
    "string": "string", "int": "int", "float64": "float64", "bool": "bool",
    "[]any": "[]interface {}", "[]string": "[]string", "map": "map[string]interface {}",
    "time": "time.Time", "duration": "time.Duration", "location": "*time.Location",
}  # fmt: skip


def _fits(value: Any, param: str) -> bool:
    if param == "any":
        return True
    if value is None:
        return param in ("[]any", "[]string", "map", "location")
    if param == "string":
        return isinstance(value, str)
    if param == "int":
        return isinstance(value, int) and not isinstance(
            value, (bool, GoDuration, GoMonth, GoWeekday)
        )
    if param == "float64":
        return isinstance(value, float)
    if param == "bool":
        return isinstance(value, bool)
    if param == "[]any":
        return isinstance(value, (list, tuple))
    if param == "[]string":
        return False  # a []interface{} is never assignable to []string
    if param == "map":
        return isinstance(value, dict) and not isinstance(value, AnyKeyMap)
    if param == "time":
        return isinstance(value, GoTime)
    if param == "duration":
        return isinstance(value, GoDuration)
    if param == "location":
        return isinstance(value, GoLocation)
    return True


def call_value(fn: Any, args: list[Any]) -> Any:
    """Call a function value as ``reflect.Value.Call`` would."""
    if isinstance(fn, GoFunc):
        count = len(fn.params)
        if fn.variadic:
            if len(args) < count - 1:
                raise Panic("reflect: Call with too few input arguments")
        elif len(args) < count:
            raise Panic("reflect: Call with too few input arguments")
        elif len(args) > count:
            raise Panic("reflect: Call with too many input arguments")
        for index, arg in enumerate(args):
            param = fn.params[-1] if fn.variadic and index >= count - 1 else fn.params[index]
            if not _fits(arg, param):
                shown = "interface {}" if arg is None else go_type(arg)
                raise Panic(f"reflect: Call using {shown} as type {_PARAM_GO.get(param, param)}")
        return fn.impl(*args)
    if callable(fn):
        return fn(*args)
    if fn is None:
        raise Panic("reflect: call of reflect.Value.Call on zero Value")
    raise Panic(f"reflect: call of reflect.Value.Call on {go_type(fn)} Value")


def _slice(value: Any, start: Any, stop: Any) -> Any:
    if isinstance(value, (list, tuple, str, bytes, bytearray)):
        is_text = isinstance(value, str) and not value.isascii()
        data: Any = value.encode("utf-8") if isinstance(value, str) and is_text else value
        length = len(data)
        a, b = to_int(start), to_int(stop)
        if a < 0:
            a = max(length + a, 0)
        if b < 0:
            b = max(length + b, 0)
        b = min(b, length)
        a = min(a, b)
        result = data[a:b]
        if is_text:
            return result.decode("utf-8", errors="replace")
        return list(result) if isinstance(result, tuple) else result
    raise Panic(f"cannot slice {go_type(value)}" if value is not None else "cannot slice <nil>")


class _Builder:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lets: list[str] = []  # let names in scope; the index is the variable's slot
        self.max_slots = 0

    def located(self, panic: Panic, node: ast.Node) -> ExprError:
        return ExprError(panic.message, kind=panic.kind, source=self.source, offset=node.pos)

    def build(self, node: ast.Node) -> Closure:
        method: Callable[[Any], Closure] = getattr(self, "b_" + type(node).__name__)
        return method(node)

    # ------------------------------------------------------------------ leaves

    def b_Nil(self, node: ast.Nil) -> Closure:
        return lambda s: None

    def _const(self, value: Any) -> Closure:
        return lambda s: value

    def b_Bool(self, node: ast.Bool) -> Closure:
        return self._const(node.value)

    def b_Integer(self, node: ast.Integer) -> Closure:
        return self._const(node.value)

    def b_Float(self, node: ast.Float) -> Closure:
        return self._const(node.value)

    def b_String(self, node: ast.String) -> Closure:
        return self._const(node.value)

    def b_Identifier(self, node: ast.Identifier) -> Closure:
        name = node.name
        slot = self.scope_slot(name)
        if slot is not None:
            return lambda s: s.vars[slot]
        if name == "$env":
            return lambda s: s.env
        builtin = BUILTINS.get(name)
        if builtin is not None:
            value = _builtin_value(name)
            return lambda s: s.env[name] if name in s.env else value
        return lambda s: s.env[name]

    def scope_slot(self, name: str) -> int | None:
        for index in range(len(self.lets) - 1, -1, -1):
            if self.lets[index] == name:
                return index
        return None

    def b_Pointer(self, node: ast.Pointer) -> Closure:
        slot = {"": 0, "index": 1, "acc": 2}[node.name]
        return lambda s: s.scopes[-1][slot]

    # --------------------------------------------------------------- operators

    def b_Unary(self, node: ast.Unary) -> Closure:
        operand = self.build(node.node)
        located = self.located
        if node.op in ("!", "not"):

            def not_(s: State) -> Any:
                value = operand(s)
                if value is True:
                    return False
                if value is False:
                    return True
                try:
                    return not _as_bool(value)
                except Panic as exc:
                    raise located(exc, node) from None

            return not_
        if node.op == "-":

            def neg(s: State) -> Any:
                try:
                    return negate(operand(s))
                except Panic as exc:
                    raise located(exc, node) from None

            return neg
        return operand  # unary plus

    def b_Binary(self, node: ast.Binary) -> Closure:
        op = node.op
        left = self.build(node.left)
        right = self.build(node.right)
        located = self.located

        if op in ("&&", "and"):

            def and_(s: State) -> Any:
                value = left(s)
                if value is False:
                    return False
                if value is not True:
                    try:
                        _as_bool(value)
                    except Panic as exc:
                        raise located(exc, node) from None
                return right(s)

            return and_
        if op in ("||", "or"):

            def or_(s: State) -> Any:
                value = left(s)
                if value is True:
                    return True
                if value is not False:
                    try:
                        _as_bool(value)
                    except Panic as exc:
                        raise located(exc, node) from None
                return right(s)

            return or_
        if op == "??":

            def coalesce(s: State) -> Any:
                value = left(s)
                return right(s) if value is None else value

            return coalesce
        if op in ("==", "!="):
            negated = op == "!="

            def eq(s: State) -> bool:
                a = left(s)
                b = right(s)
                ta = type(a)
                if ta is type(b) and (ta is int or ta is str):
                    return bool(a != b) if negated else bool(a == b)
                result = equal(a, b)
                return not result if negated else result

            return eq
        if op in ("<", ">", "<=", ">="):
            return self._compare(node, op, left, right)
        if op == "+":

            def plus(s: State) -> Any:
                a = left(s)
                b = right(s)
                ta = type(a)
                if ta is type(b):
                    if ta is int:
                        r = a + b
                        return r if -9223372036854775808 <= r <= 9223372036854775807 else wrap(r)
                    if ta is str:
                        size = len(a) + len(b)
                        if size > s.limits.max_string_length:
                            raise located(Panic("memory budget exceeded", kind="limit"), node)
                        try:
                            s.charge(size)
                        except Panic as exc:
                            raise located(exc, node) from None
                        return a + b
                try:
                    result = add(a, b)
                    if type(result) is str:
                        s.charge(len(result))
                    return result
                except Panic as exc:
                    raise located(exc, node) from None

            return plus
        arithmetic = {
            "-": subtract, "*": multiply, "/": divide, "%": modulo, "**": exponent, "^": exponent,
        }  # fmt: skip
        if op in arithmetic:
            fn = arithmetic[op]

            def arith(s: State) -> Any:
                a = left(s)
                b = right(s)
                try:
                    return fn(a, b)
                except Panic as exc:
                    raise located(exc, node) from None

            return arith
        if op == "in":

            def in_(s: State) -> bool:
                needle = left(s)
                haystack = right(s)
                try:
                    return _in(needle, haystack)
                except Panic as exc:
                    raise located(exc, node) from None

            return in_
        if op == "matches":

            def matches(s: State) -> bool:
                a = left(s)
                b = right(s)
                if a is None or b is None:
                    return False
                try:
                    text, pattern = _as_str(a), _as_str(b)
                    regexp = compile_regexp(pattern)
                    s.check_regex(regexp.programsize, text)
                    found = regexp.search(text) is not None
                    s.check_deadline()
                    return found
                except Panic as exc:
                    raise located(exc, node) from None

            return matches
        if op in ("contains", "startsWith", "endsWith"):
            kind = op

            def text_op(s: State) -> bool:
                a = left(s)
                b = right(s)
                if a is None or b is None:
                    return False
                try:
                    x, y = _as_str(a), _as_str(b)
                except Panic as exc:
                    raise located(exc, node) from None
                if kind == "contains":
                    return y in x
                if kind == "startsWith":
                    return x.startswith(y)
                return x.endswith(y)

            return text_op
        if op == "..":

            def range_(s: State) -> list[int]:
                a = left(s)
                b = right(s)
                try:
                    low, high = to_int(a), to_int(b)
                    size = high - low + 1
                    if size <= 0:
                        return []
                    s.grow(size)
                except Panic as exc:
                    raise located(exc, node) from None
                return list(range(low, high + 1))

            return range_
        raise ExprError(
            f"unknown operator ({op})", kind="syntax", source=self.source, offset=node.pos
        )

    def _compare(self, node: ast.Binary, op: str, left: Closure, right: Closure) -> Closure:
        located = self.located

        def compare(s: State) -> bool:
            a = left(s)
            b = right(s)
            ta = type(a)
            if ta is type(b) and (ta is int or ta is float or ta is str):
                if op == "<":
                    return bool(a < b)
                if op == ">":
                    return bool(a > b)
                if op == "<=":
                    return bool(a <= b)
                return bool(a >= b)
            try:
                return less(a, b, op)
            except Panic as exc:
                raise located(exc, node) from None

        return compare

    # ------------------------------------------------------------------ members

    def b_Chain(self, node: ast.Chain) -> Closure:
        inner = self.build(node.node)

        def chain(s: State) -> Any:
            try:
                return inner(s)
            except _ChainNil:
                return None

        return chain

    def b_Member(self, node: ast.Member) -> Closure:
        base = self.build(node.node)
        located = self.located
        optional = node.optional
        if isinstance(node.prop, ast.String):
            key = node.prop.value

            def member(s: State) -> Any:
                value = base(s)
                if type(value) is dict:
                    return value.get(key)
                if value is None and optional:
                    raise _ChainNil
                try:
                    return fetch(value, key)
                except Panic as exc:
                    raise located(exc, node) from None

            return member
        prop = self.build(node.prop)
        if _is_filter_first_or_last(node):
            # expr's optimizer turns filter(...)[0] / [-1] into a find that throws this.
            def first_of_filter(s: State) -> Any:
                value = base(s)
                key = prop(s)
                try:
                    return fetch(value, key)
                except Panic:
                    raise located(Panic("reflect: slice index out of range"), node) from None

            return first_of_filter

        def index(s: State) -> Any:
            value = base(s)
            if value is None and optional:
                raise _ChainNil
            key = prop(s)
            try:
                return fetch(value, key)
            except Panic as exc:
                raise located(exc, node) from None

        return index

    def b_Slice(self, node: ast.Slice) -> Closure:
        base = self.build(node.node)
        start = self.build(node.from_) if node.from_ is not None else None
        stop = self.build(node.to) if node.to is not None else None
        located = self.located

        def slice_(s: State) -> Any:
            value = base(s)
            try:
                high = stop(s) if stop is not None else _length(value)
                low = start(s) if start is not None else 0
                result = _slice(value, low, high)
                if type(result) is str:
                    s.charge(len(result))
                return result
            except Panic as exc:
                raise located(exc, node) from None

        return slice_

    # -------------------------------------------------------------------- calls

    def b_Call(self, node: ast.Call) -> Closure:
        callee = self.build(node.callee)
        args = [self.build(arg) for arg in node.args]
        located = self.located

        def call(s: State) -> Any:
            fn = callee(s)
            values = [arg(s) for arg in args]
            try:
                result = call_value(fn, values)
                if type(result) is list or type(result) is dict:
                    s.grow(len(result))  # function results count toward the memory budget
                elif type(result) is str:
                    s.charge(len(result))
                s.check_deadline()
                return result
            except Panic as exc:
                raise located(exc, node) from None

        return call

    def b_Builtin(self, node: ast.Builtin) -> Closure:
        special = getattr(self, "p_" + node.name, None)
        if special is not None:
            result: Closure = special(node)
            return result
        builtin = BUILTINS[node.name]
        run = builtin.run
        args = [self.build(arg) for arg in node.args]
        located = self.located
        if len(args) == 1:
            only = args[0]

            def call1(s: State) -> Any:
                values = [only(s)]
                try:
                    result = run(s, values)
                    if type(result) is str:
                        s.charge(len(result))
                    s.check_deadline()
                    return result
                except Panic as exc:
                    raise located(exc, node) from None

            return call1

        def call(s: State) -> Any:
            values = [arg(s) for arg in args]
            try:
                result = run(s, values)
                if type(result) is str:
                    s.charge(len(result))
                s.check_deadline()
                return result
            except Panic as exc:
                raise located(exc, node) from None

        return call

    # ------------------------------------------------------- predicate builtins

    def _predicate_parts(self, node: ast.Builtin) -> tuple[Closure, Closure | None, list[Closure]]:
        collection = self.build(node.args[0])
        body = self.build(node.args[1]) if len(node.args) > 1 else None
        extra = [self.build(arg) for arg in node.args[2:]]
        return collection, body, extra

    def p_all(self, node: ast.Builtin) -> Closure:
        return self._quantifier(node, stop_on=False, result_on_stop=False, default=True)

    def p_none(self, node: ast.Builtin) -> Closure:
        return self._quantifier(node, stop_on=True, result_on_stop=False, default=True)

    def p_any(self, node: ast.Builtin) -> Closure:
        return self._quantifier(node, stop_on=True, result_on_stop=True, default=False)

    def _quantifier(
        self, node: ast.Builtin, *, stop_on: bool, result_on_stop: bool, default: bool
    ) -> Closure:
        collection, body, _ = self._predicate_parts(node)
        assert body is not None
        located = self.located

        def quantifier(s: State) -> bool:
            try:
                items = _collection(collection(s))
            except Panic as exc:
                raise located(exc, node) from None
            frame: list[Any] = [None, 0, None]
            s.scopes.append(frame)
            try:
                for index, item in enumerate(items):
                    s.tick()
                    frame[0] = item
                    frame[1] = index
                    value = body(s)
                    if value is not True and value is not False:
                        _as_bool(value)
                    if value is stop_on:
                        return result_on_stop
                return default
            except Panic as exc:
                raise located(exc, node) from None
            finally:
                s.scopes.pop()

        return quantifier

    def p_one(self, node: ast.Builtin) -> Closure:
        counter = self._counter(node)
        return lambda s: counter(s) == 1

    def p_count(self, node: ast.Builtin) -> Closure:
        return self._counter(node)

    def _counter(self, node: ast.Builtin) -> Closure:
        collection, body, _ = self._predicate_parts(node)
        located = self.located

        def count(s: State) -> int:
            try:
                items = _collection(collection(s))
            except Panic as exc:
                raise located(exc, node) from None
            frame: list[Any] = [None, 0, None]
            s.scopes.append(frame)
            total = 0
            try:
                for index, item in enumerate(items):
                    s.tick()
                    frame[0] = item
                    frame[1] = index
                    value = body(s) if body is not None else item
                    if value is True:
                        total += 1
                    elif value is not False:
                        _as_bool(value)
                return total
            except Panic as exc:
                raise located(exc, node) from None
            finally:
                s.scopes.pop()

        return count

    def p_filter(self, node: ast.Builtin) -> Closure:
        collection, body, _ = self._predicate_parts(node)
        assert body is not None
        located = self.located

        def filter_(s: State) -> list[Any]:
            try:
                items = _collection(collection(s))
            except Panic as exc:
                raise located(exc, node) from None
            frame: list[Any] = [None, 0, None]
            s.scopes.append(frame)
            out: list[Any] = []
            try:
                for index, item in enumerate(items):
                    s.tick()
                    frame[0] = item
                    frame[1] = index
                    value = body(s)
                    if value is True:
                        out.append(item)
                    elif value is not False:
                        _as_bool(value)
                s.grow(len(out))
                return out
            except Panic as exc:
                raise located(exc, node) from None
            finally:
                s.scopes.pop()

        return filter_

    def p_map(self, node: ast.Builtin) -> Closure:
        collection, body, _ = self._predicate_parts(node)
        assert body is not None
        located = self.located

        def map_(s: State) -> list[Any]:
            try:
                items = _collection(collection(s))
            except Panic as exc:
                raise located(exc, node) from None
            frame: list[Any] = [None, 0, None]
            s.scopes.append(frame)
            out: list[Any] = []
            try:
                for index, item in enumerate(items):
                    s.tick()
                    frame[0] = item
                    frame[1] = index
                    out.append(body(s))
                s.grow(len(out))
                return out
            except Panic as exc:
                raise located(exc, node) from None
            finally:
                s.scopes.pop()

        return map_

    def p_sum(self, node: ast.Builtin) -> Closure:
        collection, body, _ = self._predicate_parts(node)
        located = self.located

        def sum_(s: State) -> Any:
            try:
                items = _collection(collection(s))
            except Panic as exc:
                raise located(exc, node) from None
            frame: list[Any] = [None, 0, None]
            s.scopes.append(frame)
            acc: Any = 0
            try:
                for index, item in enumerate(items):
                    s.tick()
                    frame[0] = item
                    frame[1] = index
                    acc = add(body(s) if body is not None else item, acc)
                return acc
            except Panic as exc:
                raise located(exc, node) from None
            finally:
                s.scopes.pop()

        return sum_

    def _finder(self, node: ast.Builtin, *, backwards: bool, want_index: bool) -> Closure:
        collection, body, _ = self._predicate_parts(node)
        assert body is not None
        located = self.located

        def find(s: State) -> Any:
            try:
                items = _collection(collection(s))
            except Panic as exc:
                raise located(exc, node) from None
            frame: list[Any] = [None, 0, None]
            s.scopes.append(frame)
            order = range(len(items) - 1, -1, -1) if backwards else range(len(items))
            try:
                for index in order:
                    s.tick()
                    item = items[index]
                    frame[0] = item
                    frame[1] = index
                    value = body(s)
                    if value is True:
                        return index if want_index else item
                    if value is not False:
                        _as_bool(value)
                return None  # expr pushes nil when nothing matches
            except Panic as exc:
                raise located(exc, node) from None
            finally:
                s.scopes.pop()

        return find

    def p_find(self, node: ast.Builtin) -> Closure:
        return self._finder(node, backwards=False, want_index=False)

    def p_findLast(self, node: ast.Builtin) -> Closure:
        return self._finder(node, backwards=True, want_index=False)

    def p_findIndex(self, node: ast.Builtin) -> Closure:
        return self._finder(node, backwards=False, want_index=True)

    def p_findLastIndex(self, node: ast.Builtin) -> Closure:
        return self._finder(node, backwards=True, want_index=True)

    def p_groupBy(self, node: ast.Builtin) -> Closure:
        collection, body, _ = self._predicate_parts(node)
        assert body is not None
        located = self.located

        def group(s: State) -> AnyKeyMap:
            try:
                items = _collection(collection(s))
            except Panic as exc:
                raise located(exc, node) from None
            frame: list[Any] = [None, 0, None]
            s.scopes.append(frame)
            groups = AnyKeyMap()
            try:
                for index, item in enumerate(items):
                    s.tick()
                    frame[0] = item
                    frame[1] = index
                    key = body(s)
                    try:
                        groups.setdefault(key, []).append(item)
                    except TypeError:
                        raise Panic(
                            f"runtime error: hash of unhashable type {go_type(key)}"
                        ) from None
                return groups
            except Panic as exc:
                raise located(exc, node) from None
            finally:
                s.scopes.pop()

        return group

    def p_sortBy(self, node: ast.Builtin) -> Closure:
        collection, body, extra = self._predicate_parts(node)
        assert body is not None
        order = extra[0] if extra else None
        located = self.located

        def sort_by(s: State) -> list[Any]:
            try:
                items = list(_collection(collection(s)))
                direction = order(s) if order is not None else "asc"
                if direction not in ("asc", "desc"):
                    raise Panic("unknown order, use asc or desc")
            except Panic as exc:
                raise located(exc, node) from None
            frame: list[Any] = [None, 0, None]
            s.scopes.append(frame)
            keys: list[Any] = []
            try:
                for index, item in enumerate(items):
                    s.tick()
                    frame[0] = item
                    frame[1] = index
                    keys.append(body(s))
                result = sort_values(items, desc=direction == "desc", keys=keys)
                s.grow(len(result))
                return result
            except Panic as exc:
                raise located(exc, node) from None
            finally:
                s.scopes.pop()

        return sort_by

    def p_reduce(self, node: ast.Builtin) -> Closure:
        collection, body, extra = self._predicate_parts(node)
        assert body is not None
        initial = extra[0] if extra else None
        located = self.located

        def reduce_(s: State) -> Any:
            try:
                items = _collection(collection(s))
            except Panic as exc:
                raise located(exc, node) from None
            start = 0
            if initial is not None:
                acc = initial(s)
            else:
                if not items:
                    raise located(Panic("reduce of empty array with no initial value"), node)
                acc = items[0]
                start = 1
            frame: list[Any] = [None, 0, acc]
            s.scopes.append(frame)
            try:
                for index in range(start, len(items)):
                    s.tick()
                    frame[0] = items[index]
                    frame[1] = index
                    frame[2] = body(s)
                return frame[2]
            except Panic as exc:
                raise located(exc, node) from None
            finally:
                s.scopes.pop()

        return reduce_

    def b_Predicate(self, node: ast.Predicate) -> Closure:
        return self.build(node.node)

    # -------------------------------------------------------------- statements

    def b_Let(self, node: ast.Let) -> Closure:
        value = self.build(node.value)
        slot = len(self.lets)
        self.lets.append(node.name)
        self.max_slots = max(self.max_slots, len(self.lets))
        try:
            body = self.build(node.expr)
        finally:
            self.lets.pop()

        def let(s: State) -> Any:
            s.vars[slot] = value(s)
            return body(s)

        return let

    def b_Sequence(self, node: ast.Sequence) -> Closure:
        parts = [self.build(item) for item in node.nodes]

        def sequence(s: State) -> Any:
            result = None
            for part in parts:
                result = part(s)
            return result

        return sequence

    def b_Conditional(self, node: ast.Conditional) -> Closure:
        cond = self.build(node.cond)
        first = self.build(node.exp1)
        second = self.build(node.exp2)
        located = self.located

        def conditional(s: State) -> Any:
            value = cond(s)
            if value is True:
                return first(s)
            if value is False:
                return second(s)
            try:
                _as_bool(value)
            except Panic as exc:
                raise located(exc, node.cond) from None
            return None  # pragma: no cover

        return conditional

    def b_Array(self, node: ast.Array) -> Closure:
        items = [self.build(item) for item in node.nodes]
        located = self.located

        def array(s: State) -> list[Any]:
            out = [item(s) for item in items]
            try:
                s.grow(len(out))
            except Panic as exc:
                raise located(exc, node) from None
            return out

        return array

    def b_Map(self, node: ast.Map) -> Closure:
        pairs = [(self.build(pair.key), self.build(pair.value), pair) for pair in node.pairs]
        located = self.located

        def mapping(s: State) -> dict[Any, Any]:
            out: dict[Any, Any] = {}
            for key, value, pair in pairs:
                k = key(s)
                if not isinstance(k, str):
                    # map literals are map[string]any: a non-string key cannot be stored
                    raise located(
                        Panic(f"interface conversion: interface {{}} is {_iface(k)}, not string"),
                        pair,
                    )
                out[k] = value(s)
            try:
                s.grow(len(out))
            except Panic as exc:
                raise located(exc, node) from None
            return out

        return mapping


def _builtin_value(name: str) -> GoFunc:
    """A builtin used as a value (``len`` without a call)."""
    run = BUILTINS[name].run

    def call(*args: Any) -> Any:
        return run(State({}, DEFAULT_LIMITS), list(args))

    return GoFunc(name, ("any",), "any", call, variadic=True)


def _is_filter_first_or_last(node: ast.Member) -> bool:
    return (
        isinstance(node.node, ast.Builtin)
        and node.node.name == "filter"
        and not node.optional
        and (
            (isinstance(node.prop, ast.Integer) and node.prop.value == 0)
            or (
                isinstance(node.prop, ast.Unary)
                and node.prop.op == "-"
                and isinstance(node.prop.node, ast.Integer)
                and node.prop.node.value == 1
            )
        )
    )


def _length(value: Any) -> int:
    if isinstance(value, (list, tuple, bytes, bytearray)):
        return len(value)
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8"))
    if value is None:
        return 0
    raise Panic(f"invalid argument for len (type {go_type(value)})")


def _in(needle: Any, haystack: Any) -> bool:
    if haystack is None:
        return False
    if isinstance(haystack, (list, tuple)):
        return any(equal(item, needle) for item in haystack)
    if isinstance(haystack, dict):
        if isinstance(haystack, AnyKeyMap):
            try:
                return needle in haystack
            except TypeError:
                return False
        if needle is None:
            return "" in haystack
        if not isinstance(needle, str):
            raise Panic(
                f"reflect.Value.MapIndex: value of type {go_type(needle)}"
                " is not assignable to type string"
            )
        return needle in haystack
    raise Panic(f'operator "in" not defined on {go_type(haystack)}')


def build(tree: ast.Node, source: str) -> tuple[Closure, int]:
    """Turn a checked tree into a closure; also returns the number of ``let`` slots."""
    builder = _Builder(source)
    closure = builder.build(tree)
    return closure, builder.max_slots
