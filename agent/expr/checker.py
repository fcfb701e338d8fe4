"""The static type check expr runs before an expression may run (``checker/checker.go``).

It decides what is a *compile* error (returned by Argo's ``EvalBool`` unwrapped) versus a
*run-time* error (wrapped as ``unable to evaluate expression ...``), so it follows expr's
rules closely: unknown names are errors (the environment is strict), operands of known
types must fit the operator (``1 + ''``, ``retries + 1`` with a string ``retries``),
predicates must return booleans, builtins check their arguments. Anything whose type is
not known statically (members of untyped maps, ``fromJSON`` results) passes and is
checked when it runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import ast
from .builtins import BUILTINS, CheckError, check_arguments, method_nature
from .errors import ExprError
from .parser import PREDICATES
from .types import (
    ARRAY,
    BOOL,
    DURATION,
    FLOAT,
    INT,
    MAP,
    NIL,
    STRING,
    TIME,
    UNKNOWN,
    Nature,
    Signature,
    array_of,
    assignable,
    func_nature,
    is_comparable,
)
from .values import wrap

__all__ = ["check"]


def _either(left: Nature, right: Nature, *tests: str) -> bool:
    """expr's ``or(l, r, fns...)``: unknown on one side and a fitting type on the other."""

    def fits(nature: Nature) -> bool:
        return any(getattr(nature, test) for test in tests)

    if left.unknown and right.unknown:
        return True
    if left.unknown and fits(right):
        return True
    return right.unknown and fits(left)


def _const_int(node: ast.Node) -> int | None:
    """The value of an integer constant expression (what expr's folder computes)."""
    if isinstance(node, ast.Integer):
        return node.value
    if isinstance(node, ast.Unary) and node.op in ("-", "+"):
        value = _const_int(node.node)
        if value is None:
            return None
        return wrap(-value) if node.op == "-" else value
    if isinstance(node, ast.Binary) and node.op in ("+", "-", "*"):
        left, right = _const_int(node.left), _const_int(node.right)
        if left is None or right is None:
            return None
        if node.op == "+":
            return wrap(left + right)
        if node.op == "-":
            return wrap(left - right)
        return wrap(left * right)
    return None


def _combined(left: Nature, right: Nature) -> Nature:
    if left.unknown or right.unknown:
        return UNKNOWN
    if left.is_float or right.is_float:
        return FLOAT
    return INT


class _Checker:
    def __init__(self, source: str, env: Mapping[str, Nature]) -> None:
        self.source = source
        self.env = env
        self.vars: list[tuple[str, Nature]] = []
        self.scopes: list[tuple[Nature, dict[str, Nature]]] = []

    def error(self, node: ast.Node, message: str) -> ExprError:
        return ExprError(message, kind="type", source=self.source, offset=node.pos)

    def visit(self, node: ast.Node) -> Nature:
        method = getattr(self, "visit_" + type(node).__name__)
        result: Nature = method(node)
        return result

    # ------------------------------------------------------------------ leaves

    def visit_Nil(self, node: ast.Nil) -> Nature:
        return NIL

    def visit_Bool(self, node: ast.Bool) -> Nature:
        return BOOL

    def visit_Integer(self, node: ast.Integer) -> Nature:
        return INT

    def visit_Float(self, node: ast.Float) -> Nature:
        return FLOAT

    def visit_String(self, node: ast.String) -> Nature:
        return STRING

    def visit_Identifier(self, node: ast.Identifier) -> Nature:
        for name, nature in reversed(self.vars):
            if name == node.name:
                return nature
        if node.name == "$env":
            return UNKNOWN
        known = self.env.get(node.name)
        if known is not None:
            return known
        if node.name in BUILTINS:
            # A builtin named without a call is a function value (config.Builtins).
            return Nature("func", "func(...interface {}) interface {}")
        raise self.error(node, f"unknown name {node.name}")

    def visit_Pointer(self, node: ast.Pointer) -> Nature:
        if not self.scopes:
            raise self.error(node, "cannot use pointer accessor outside predicate")
        collection, variables = self.scopes[-1]
        if node.name == "":
            if collection.unknown:
                return UNKNOWN
            if collection.is_array:
                return collection.element()
            raise self.error(node, f"cannot use {collection} as array")
        if node.name in variables:
            return variables[node.name]
        raise self.error(node, f"unknown pointer #{node.name}")

    # --------------------------------------------------------------- operators

    def visit_Unary(self, node: ast.Unary) -> Nature:
        nature = self.visit(node.node)
        if node.op in ("!", "not"):
            if nature.is_bool or nature.unknown:
                return BOOL
        elif nature.is_number:
            return nature
        elif nature.unknown:
            return UNKNOWN
        raise self.error(node, f"invalid operation: {node.op} (mismatched type {nature})")

    def visit_Binary(self, node: ast.Binary) -> Nature:
        left = self.visit(node.left)
        right = self.visit(node.right)
        op = node.op
        if op in ("/", "%") and _const_int(node.left) is not None and _const_int(node.right) == 0:
            # expr folds constants at compile time and reports this then.
            raise self.error(node, "runtime error: integer divide by zero")
        result = self._binary(node, op, left, right)
        if result is not None:
            return result
        raise self.error(node, f"invalid operation: {op} (mismatched types {left} and {right})")

    def _binary(self, node: ast.Binary, op: str, left: Nature, right: Nature) -> Nature | None:
        if op in ("==", "!="):
            return BOOL if is_comparable(left, right) else None
        if op in ("or", "||", "and", "&&"):
            if (left.is_bool and right.is_bool) or _either(left, right, "is_bool"):
                return BOOL
            return None
        if op in ("<", ">", ">=", "<="):
            for test in ("is_number", "is_string", "is_time", "is_duration"):
                if getattr(left, test) and getattr(right, test):
                    return BOOL
            if _either(left, right, "is_number", "is_string", "is_time", "is_duration"):
                return BOOL
            return None
        if op == "-":
            if left.is_number and right.is_number:
                return _combined(left, right)
            if left.is_time and right.is_time:
                return DURATION
            if left.is_time and right.is_duration:
                return TIME
            if _either(left, right, "is_number", "is_time", "is_duration"):
                return UNKNOWN
            return None
        if op == "*":
            if left.is_number and right.is_number:
                return _combined(left, right)
            if _either(left, right, "is_number", "is_duration"):
                return UNKNOWN
            return None
        if op in ("/", "**", "^"):
            if (left.is_number and right.is_number) or _either(left, right, "is_number"):
                return FLOAT
            return None
        if op == "%":
            if (left.is_integer and right.is_integer) or _either(left, right, "is_integer"):
                return INT
            return None
        if op == "+":
            if left.is_number and right.is_number:
                return _combined(left, right)
            if left.is_string and right.is_string:
                return STRING
            if (left.is_time and right.is_duration) or (left.is_duration and right.is_time):
                return TIME
            if _either(left, right, "is_number", "is_string", "is_time", "is_duration"):
                return UNKNOWN
            return None
        if op == "in":
            if right.is_map:
                if not left.unknown and not assignable(
                    left, STRING if right.name == MAP.name else UNKNOWN
                ):
                    raise self.error(node, f"cannot use {left} as type string in map key")
                return BOOL
            if right.is_array:
                if not is_comparable(left, right.element()):
                    raise self.error(node, f"cannot use {left} as type {right.element()} in array")
                return BOOL
            if left.unknown and (right.is_string or right.is_array or right.is_map):
                return BOOL
            if right.unknown:
                return BOOL
            return None
        if op == "matches":
            if isinstance(node.right, ast.String):
                from .interp import compile_regexp

                try:
                    compile_regexp(node.right.value)
                except Exception as exc:
                    raise self.error(node, str(exc)) from None
            if (left.is_string and right.is_string) or _either(left, right, "is_string"):
                return BOOL
            return None
        if op in ("contains", "startsWith", "endsWith"):
            if (left.is_string and right.is_string) or _either(left, right, "is_string"):
                return BOOL
            return None
        if op == "..":
            if (left.is_integer and right.is_integer) or _either(left, right, "is_integer"):
                return array_of(INT)
            return None
        if op == "??":
            if left.nil and not right.nil:
                return right
            if not left.nil and right.nil:
                return left
            if left.nil and right.nil:
                return NIL
            return left if assignable(right, left) else UNKNOWN
        raise self.error(node, f"unknown operator ({op})")  # pragma: no cover

    # ------------------------------------------------------------------ members

    def visit_Chain(self, node: ast.Chain) -> Nature:
        return self.visit(node.node)

    def visit_Member(self, node: ast.Member) -> Nature:
        if isinstance(node.node, ast.Identifier) and node.node.name == "$env":
            if isinstance(node.prop, ast.String):
                nature = self.env.get(node.prop.value)
                if nature is not None:
                    return nature
                if node.optional:
                    return UNKNOWN
                raise self.error(node, f"unknown name {node.prop.value}")
            self.visit(node.prop)
            return UNKNOWN
        base = self.visit(node.node)
        prop = self.visit(node.prop)
        if base.unknown:
            return UNKNOWN
        name = node.prop.value if isinstance(node.prop, ast.String) else None
        if name is not None:
            if base.nil:
                raise self.error(node, f"type nil has no field {name}")
            sig = method_nature(base, name)
            if sig is not None:
                return func_nature(sig)
        if base.is_map:
            if not prop.unknown and not assignable(prop, STRING) and base.name == MAP.name:
                raise self.error(node.prop, f"cannot use {prop} to get an element from {base}")
            return base.element()
        if base.is_array:
            if not prop.is_integer and not prop.unknown:
                raise self.error(
                    node.prop, f"array elements can only be selected using an integer (got {prop})"
                )
            return base.element()
        if name is not None:
            if node.method:
                raise self.error(node, f"type {base} has no method {name}")
            raise self.error(node, f"type {base} has no field {name}")
        raise self.error(node, f"type {base}[{prop}] is undefined")

    def visit_Slice(self, node: ast.Slice) -> Nature:
        nature = self.visit(node.node)
        if nature.unknown:
            for part in (node.from_, node.to):
                if part is not None:
                    self.visit(part)
            return UNKNOWN
        if not (nature.is_string or nature.is_array):
            raise self.error(node, f"cannot slice {nature}")
        for part in (node.from_, node.to):
            if part is not None:
                index = self.visit(part)
                if not index.is_integer and not index.unknown:
                    raise self.error(part, f"non-integer slice index {index}")
        return nature

    # -------------------------------------------------------------------- calls

    def visit_Call(self, node: ast.Call) -> Nature:
        callee = self.visit(node.callee)
        name = "function"
        if isinstance(node.callee, ast.Identifier):
            name = node.callee.name
        elif isinstance(node.callee, ast.Member) and isinstance(node.callee.prop, ast.String):
            name = node.callee.prop.value
        if callee.unknown:
            for arg in node.args:
                self.visit(arg)
            return UNKNOWN
        if callee.nil:
            raise self.error(node, f"{name} is nil; cannot call nil as function")
        if callee.is_func and callee.sig is not None:
            return self._check_signature(node, name, callee.sig, node.args)
        raise self.error(node, f"{callee} is not callable")

    def _check_signature(
        self, node: ast.Node, name: str, sig: Signature, args: list[ast.Node]
    ) -> Nature:
        natures = [self.visit(arg) for arg in args]
        try:
            return check_arguments(name, sig, natures)
        except CheckError as exc:
            at = args[exc.arg] if exc.arg is not None else node
            raise self.error(at, exc.message) from None

    def visit_Builtin(self, node: ast.Builtin) -> Nature:
        if node.name in PREDICATES:
            return self._predicate_builtin(node)
        if node.name == "get":
            return self._get(node)
        builtin = BUILTINS.get(node.name)
        if builtin is None:  # pragma: no cover - the parser only emits known builtins
            raise self.error(node, f"unknown builtin {node.name}")
        natures = [self.visit(arg) for arg in node.args]
        try:
            return builtin.check(node.name, natures)
        except CheckError as exc:
            at = node.args[exc.arg] if exc.arg is not None else node
            raise self.error(at, exc.message) from None

    def _get(self, node: ast.Builtin) -> Nature:
        if len(node.args) != 2:
            raise self.error(
                node, f"invalid number of arguments (expected 2, got {len(node.args)})"
            )
        base = self.visit(node.args[0])
        prop = self.visit(node.args[1])
        first = node.args[0]
        if isinstance(first, ast.Identifier) and first.name == "$env":
            if isinstance(node.args[1], ast.String):
                return self.env.get(node.args[1].value, UNKNOWN)
            return UNKNOWN
        if base.unknown or base.nil:
            return UNKNOWN  # get(nil, k) is nil (expr TestIssue785_get_nil)
        if base.is_array:
            if not prop.is_integer and not prop.unknown:
                raise self.error(node.args[1], f"non-integer slice index {prop}")
            return base.element()
        if base.is_map:
            if not prop.unknown and not assignable(prop, STRING) and base.name == MAP.name:
                raise self.error(node.args[1], f"cannot use {prop} to get an element from {base}")
            return base.element()
        raise self.error(node.args[0], f"type {base} does not support indexing")

    def _predicate_builtin(self, node: ast.Builtin) -> Nature:
        name = node.name
        collection = self.visit(node.args[0])
        if not collection.is_array and not collection.unknown:
            raise self.error(node.args[0], f"builtin {name} takes only array (got {collection})")
        if name == "count" and len(node.args) == 1:
            return INT
        if name == "sum" and len(node.args) == 1:
            return UNKNOWN if collection.unknown else collection.element()
        variables: dict[str, Nature] = {}
        if name in ("map", "reduce"):
            variables["index"] = INT
        if name == "reduce":
            variables["acc"] = UNKNOWN
        self.scopes.append((collection, variables))
        try:
            out = self.visit(node.args[1])
        finally:
            self.scopes.pop()
        for extra in node.args[2:]:
            self.visit(extra)
        if name in (
            "all",
            "none",
            "any",
            "one",
            "filter",
            "count",
            "find",
            "findLast",
            "findIndex",
            "findLastIndex",
        ):
            if not out.is_bool and not out.unknown:
                raise self.error(node.args[1], f"predicate should return boolean (got {out})")
        if name in ("all", "none", "any", "one"):
            return BOOL
        if name == "filter":
            return ARRAY if collection.unknown else array_of(collection.element())
        if name == "map":
            return array_of(out)
        if name in ("count", "findIndex", "findLastIndex"):
            return INT
        if name == "sum":
            return out
        if name in ("find", "findLast"):
            return UNKNOWN if collection.unknown else collection.element()
        if name == "groupBy":
            return Nature(
                "map", "map[interface {}][]interface {}", elem=array_of(collection.element())
            )
        if name == "sortBy":
            return collection
        return out  # reduce

    def visit_Predicate(self, node: ast.Predicate) -> Nature:
        return self.visit(node.node)

    # -------------------------------------------------------------- statements

    def visit_Let(self, node: ast.Let) -> Nature:
        if node.name in self.env:
            raise self.error(node, f"cannot redeclare {node.name}")
        if node.name in BUILTINS or node.name in PREDICATES:
            raise self.error(node, f"cannot redeclare builtin {node.name}")
        if any(name == node.name for name, _ in self.vars):
            raise self.error(node, f"cannot redeclare variable {node.name}")
        value = self.visit(node.value)
        self.vars.append((node.name, value))
        try:
            return self.visit(node.expr)
        finally:
            self.vars.pop()

    def visit_Sequence(self, node: ast.Sequence) -> Nature:
        last = UNKNOWN
        for item in node.nodes:
            last = self.visit(item)
        return last

    def visit_Conditional(self, node: ast.Conditional) -> Nature:
        cond = self.visit(node.cond)
        if not cond.is_bool and not cond.unknown:
            raise self.error(node.cond, f"non-bool expression (type {cond}) used as condition")
        first = self.visit(node.exp1)
        second = self.visit(node.exp2)
        if first.nil and not second.nil:
            return second
        if second.nil and not first.nil:
            return first
        if first.nil and second.nil:
            return NIL
        if not assignable(first, second):
            return UNKNOWN
        if first.is_array and second.is_array:
            # conditionalNode: arrays whose element types differ type as a plain []any.
            e1, e2 = first.element(), second.element()
            if not (assignable(e1, e2) and assignable(e2, e1)):
                return ARRAY
        return first

    def visit_Array(self, node: ast.Array) -> Nature:
        natures = [self.visit(item) for item in node.nodes]
        if not natures:
            return array_of(UNKNOWN)
        if all(n.kind == natures[0].kind for n in natures):
            return array_of(natures[-1])
        return ARRAY

    def visit_Map(self, node: ast.Map) -> Nature:
        for pair in node.pairs:
            self.visit(pair.key)
            self.visit(pair.value)
        return MAP

    def visit_Pair(self, node: ast.Pair) -> Nature:  # pragma: no cover - visited via Map
        self.visit(node.key)
        self.visit(node.value)
        return NIL


def check(tree: ast.Node, source: str, env: Mapping[str, Nature]) -> Nature:
    """Type-check ``tree`` against environment natures; :class:`ExprError` if it fails."""
    return _Checker(source, env).visit(tree)
