"""Parser for expr-lang v1.17: precedence climbing exactly as ``parser/parser.go`` does it.

The shape of the tree matters for compatibility, so the algorithm is expr's own rather
than a grammar of ours: operators and precedences from ``parser/operator``, comparison
chains (``1 < 2 < 3`` is ``1 < 2 && 2 < 3``), ``not`` before a binary keyword, the ``??``
mixing rule, ternary/elvis at precedence 0, ``let``/``if``/``;`` statements, predicates
(closures) for the collection builtins, pipes and optional chains.

Two bounds make hostile input harmless: the node count (expr's default 10,000) and the
nesting depth of the tree (ours), both reported as ordinary :class:`ExprError`. expr caps
only the node count, and its own tests nest deeply within it (vm_test.go TestVM_Limits: a
100-deep parenthesised sum and map; parser_test.go TestNodeBudgetDisabled: a 1,000-term
sum), so the depth bound sits above those, at :data:`MAX_DEPTH` levels. Parsing, checking,
compiling and running are recursive, a few Python frames per level; importing this module
therefore makes sure the interpreter's recursion limit covers :data:`MAX_DEPTH` levels
(:data:`RECURSION_FLOOR`). Python 3.11+ runs Python-to-Python calls without growing the C
stack, so the higher limit costs no native stack; a tree that still exhausts it (a deeper
caller) is reported as a clean "too deeply nested" error, never a crash.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from . import ast
from .errors import ExprError
from .lexer import BRACKET, EOF, IDENT, NUMBER, OPERATOR, STRING, Token, tokenize

__all__ = ["MAX_DEPTH", "MAX_NODES", "PREDICATES", "RECURSION_FLOOR", "parse"]

MAX_NODES = 10_000
MAX_DEPTH = 1_100
# Measured worst case: a level of nested calls or predicates costs ~7 frames across the
# parser, checker, compiler and closures; 10 per level plus room for the caller's stack.
RECURSION_FLOOR = 10 * MAX_DEPTH + 3_000
if sys.getrecursionlimit() < RECURSION_FLOOR:
    sys.setrecursionlimit(RECURSION_FLOOR)

_LEFT, _RIGHT = 1, 2
_UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
_BINARY: dict[str, tuple[int, int]] = {
    "|": (0, _LEFT), "or": (10, _LEFT), "||": (10, _LEFT), "and": (15, _LEFT),
    "&&": (15, _LEFT), "==": (20, _LEFT), "!=": (20, _LEFT), "<": (20, _LEFT),
    ">": (20, _LEFT), ">=": (20, _LEFT), "<=": (20, _LEFT), "in": (20, _LEFT),
    "matches": (20, _LEFT), "contains": (20, _LEFT), "startsWith": (20, _LEFT),
    "endsWith": (20, _LEFT), "..": (25, _LEFT), "+": (30, _LEFT), "-": (30, _LEFT),
    "*": (60, _LEFT), "/": (60, _LEFT), "%": (60, _LEFT), "**": (100, _RIGHT),
    "^": (100, _RIGHT), "??": (500, _LEFT),
}  # fmt: skip
_NEGATABLE = frozenset({"contains", "matches", "startsWith", "endsWith", "in"})

_E, _P, _OPT = 1, 2, 128  # argument kinds: expression, predicate, optional
PREDICATES: dict[str, tuple[int, ...]] = {
    "all": (_E, _P), "none": (_E, _P), "any": (_E, _P), "one": (_E, _P),
    "filter": (_E, _P), "map": (_E, _P), "count": (_E, _P | _OPT), "sum": (_E, _P | _OPT),
    "find": (_E, _P), "findIndex": (_E, _P), "findLast": (_E, _P),
    "findLastIndex": (_E, _P), "groupBy": (_E, _P), "sortBy": (_E, _P, _E | _OPT),
    "reduce": (_E, _P, _E | _OPT),
}  # fmt: skip


def _is_comparison(op: str) -> bool:
    # Only ordering operators chain: 1 < 2 < 3 is 1 < 2 && 2 < 3 (operator.IsComparison).
    return op in ("<", ">", "<=", ">=")


def _valid_identifier(word: str) -> bool:
    return (
        bool(word)
        and (word[0] == "_" or word[0] == "$" or word[0].isalpha())
        and all(c == "_" or c == "$" or c.isalnum() for c in word)
    )


class _Parser:
    def __init__(
        self,
        source: str,
        builtins: frozenset[str],
        overridden: frozenset[str],
        max_nodes: int,
        max_depth: int,
    ) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.index = 0
        self.current = self.tokens[0]
        self.builtins = builtins
        self.overridden = overridden
        self.depth = 0  # predicate depth
        self.nesting = 0
        self.nodes = 0
        self.max_nodes = max_nodes
        self.max_depth = max_depth

    # -------------------------------------------------------------- infrastructure

    def error(self, message: str, token: Token | None = None) -> ExprError:
        at = (token or self.current).pos
        return ExprError(message, kind="syntax", source=self.source, offset=at)

    def node(self, node: ast.Node) -> ast.Node:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise ExprError(
                "compilation failed: expression exceeds maximum allowed nodes",
                kind="limit",
                phase="compile",
            )
        node.seal()
        if node.depth > self.max_depth:
            raise ExprError(
                f"compilation failed: expression nesting exceeds {self.max_depth} levels",
                kind="limit",
                phase="compile",
            )
        return node

    def next(self) -> None:
        self.index += 1
        if self.index >= len(self.tokens):
            raise self.error("unexpected end of expression")
        self.current = self.tokens[self.index]

    def expect(self, kind: str, *values: str) -> None:
        if self.current.is_(kind, *values):
            self.next()
            return
        raise self.error(f"unexpected token {self.current}")

    def enter(self) -> None:
        self.nesting += 1
        if self.nesting > self.max_depth:
            raise ExprError(
                f"compilation failed: expression nesting exceeds {self.max_depth} levels",
                kind="limit",
                phase="compile",
            )

    # ------------------------------------------------------------------ grammar

    def parse(self) -> ast.Node:
        node = self.sequence()
        if not self.current.is_(EOF):
            raise self.error(f"unexpected token {self.current}")
        return node

    def sequence(self) -> ast.Node:
        nodes = [self.expression(0)]
        while self.current.is_(OPERATOR, ";"):
            self.next()
            if self.current.is_(EOF):
                break
            nodes.append(self.expression(0))
        if len(nodes) == 1:
            return nodes[0]
        return self.node(ast.Sequence(nodes[0].pos, nodes))

    def expression(self, precedence: int) -> ast.Node:
        self.enter()
        try:
            return self._expression(precedence)
        finally:
            self.nesting -= 1

    def _expression(self, precedence: int) -> ast.Node:
        if precedence == 0 and self.current.is_(OPERATOR, "let"):
            return self.let()
        if precedence == 0 and self.current.is_(OPERATOR, "if"):
            return self.conditional_if()

        left = self.primary()
        prev_op = ""
        op_token = self.current
        while op_token.is_(OPERATOR):
            negate = op_token.is_(OPERATOR, "not")
            not_token: Token | None = None
            if negate:
                saved_index, saved_current = self.index, self.current
                self.next()
                if self.current.value in _NEGATABLE:
                    entry = _BINARY.get(self.current.value)
                    if entry is not None and entry[0] >= precedence:
                        not_token = self.current
                        op_token = self.current
                    else:
                        self.index, self.current = saved_index, saved_current
                        break
                else:
                    raise self.error(f"unexpected token {self.current}")

            entry = _BINARY.get(op_token.value)
            if entry is None or entry[0] < precedence:
                break
            op_precedence, associativity = entry
            self.next()

            if op_token.value == "|":
                ident = self.current
                self.expect(IDENT)
                left = self.call(ident, [left], check_overrides=True)
            elif prev_op == "??" and op_token.value != "??":
                raise self.error(
                    f"Operator ({op_token.value}) and coalesce expressions (??) cannot be"
                    " mixed. Wrap either by parentheses.",
                    op_token,
                )
            elif _is_comparison(op_token.value):
                left = self.comparison(left, op_token, op_precedence)
            else:
                right = self.expression(
                    op_precedence + 1 if associativity == _LEFT else op_precedence
                )
                left = self.node(ast.Binary(op_token.pos, op_token.value, left, right))
                if negate and not_token is not None:
                    left = self.node(ast.Unary(not_token.pos, "not", left))
            prev_op = op_token.value
            op_token = self.current

        if precedence == 0:
            left = self.ternary(left)
        return left

    def comparison(self, left: ast.Node, token: Token, precedence: int) -> ast.Node:
        root: ast.Node | None = None
        while True:
            right = self.expression(precedence + 1)
            cmp: ast.Node = self.node(ast.Binary(token.pos, token.value, left, right))
            root = cmp if root is None else self.node(ast.Binary(token.pos, "&&", root, cmp))
            left = right
            token = self.current
            if not (token.is_(OPERATOR) and _is_comparison(token.value)):
                break
            self.next()
        return root

    def let(self) -> ast.Node:
        self.expect(OPERATOR, "let")
        name = self.current
        self.expect(IDENT)
        self.expect(OPERATOR, "=")
        value = self.expression(0)
        self.expect(OPERATOR, ";")
        body = self.sequence()
        return self.node(ast.Let(name.pos, name.value, value, body))

    def conditional_if(self) -> ast.Node:
        start = self.current
        self.next()
        cond = self.expression(0)
        self.expect(BRACKET, "{")
        then = self.sequence()
        self.expect(BRACKET, "}")
        self.expect(OPERATOR, "else")
        if self.current.is_(OPERATOR, "if"):
            self.enter()
            try:
                otherwise = self.conditional_if()
            finally:
                self.nesting -= 1
        else:
            self.expect(BRACKET, "{")
            otherwise = self.sequence()
            self.expect(BRACKET, "}")
        return self.node(ast.Conditional(start.pos, cond, then, otherwise))

    def ternary(self, node: ast.Node) -> ast.Node:
        while self.current.is_(OPERATOR, "?"):
            self.next()
            if not self.current.is_(OPERATOR, ":"):
                exp1 = self.expression(0)
                self.expect(OPERATOR, ":")
                exp2 = self.expression(0)
            else:
                self.next()
                exp1 = node
                exp2 = self.expression(0)
            node = self.node(ast.Conditional(self.current.pos, node, exp1, exp2))
        return node

    def primary(self) -> ast.Node:
        token = self.current
        if token.is_(OPERATOR) and token.value in _UNARY:
            self.next()
            operand = self.expression(_UNARY[token.value])
            node = self.node(ast.Unary(token.pos, token.value, operand))
            return self.postfix(node)
        if token.is_(BRACKET, "("):
            self.next()
            inner = self.sequence()
            self.expect(BRACKET, ")")
            return self.postfix(inner)
        if token.is_(OPERATOR, "#") or token.is_(OPERATOR, "."):
            if self.depth == 0:
                raise self.error("cannot use pointer accessor outside predicate")
            name = ""
            if token.is_(OPERATOR, "#"):
                self.next()
                if self.current.is_(IDENT):
                    name = self.current.value
                    self.next()
            return self.postfix(self.node(ast.Pointer(token.pos, name)))
        if token.is_(OPERATOR, "::"):
            self.next()
            ident = self.current
            self.expect(IDENT)
            return self.postfix(self.call(ident, [], check_overrides=False))
        return self.secondary()

    def secondary(self) -> ast.Node:
        token = self.current
        node: ast.Node
        if token.kind == IDENT:
            self.next()
            if token.value == "true":
                return self.node(ast.Bool(token.pos, True))
            if token.value == "false":
                return self.node(ast.Bool(token.pos, False))
            if token.value == "nil":
                return self.node(ast.Nil(token.pos))
            if self.current.is_(BRACKET, "("):
                node = self.call(token, [], check_overrides=True)
            else:
                node = self.node(ast.Identifier(token.pos, token.value))
        elif token.kind == NUMBER:
            self.next()
            return self.number(token)
        elif token.kind == STRING:
            self.next()
            node = self.node(ast.String(token.pos, token.value))
        elif token.is_(BRACKET, "["):
            node = self.array(token)
        elif token.is_(BRACKET, "{"):
            node = self.mapping(token)
        else:
            raise self.error(f"unexpected token {token}")
        return self.postfix(node)

    def number(self, token: Token) -> ast.Node:
        text = token.value.replace("_", "")
        lower = text.lower()
        try:
            if lower.startswith("0x"):
                value = _parse_int(text[2:], 16, "hex")
            elif "." in lower or "e" in lower:
                return self.node(ast.Float(token.pos, _parse_float(text)))
            elif lower.startswith("0b"):
                value = _parse_int(text[2:], 2, "binary")
            elif lower.startswith("0o"):
                value = _parse_int(text[2:], 8, "octal")
            else:
                value = _parse_int(text, 10, "integer")
        except ValueError as exc:
            raise self.error(str(exc), token) from None
        return self.node(ast.Integer(token.pos, value))

    def call(self, token: Token, arguments: list[ast.Node], *, check_overrides: bool) -> ast.Node:
        name = token.value
        overridden = check_overrides and name in self.overridden
        kinds = PREDICATES.get(name)
        if kinds is not None and not overridden:
            self.expect(BRACKET, "(")
            remaining = kinds[len(arguments) :]
            for i, kind in enumerate(remaining):
                if kind & _OPT:
                    if self.current.is_(BRACKET, ")"):
                        break
                elif self.current.is_(BRACKET, ")"):
                    raise self.error(f"expected at least {len(remaining)} arguments")
                if i > 0:
                    self.expect(OPERATOR, ",")
                arguments.append(self.predicate() if kind & _P else self.expression(0))
            if self.current.is_(OPERATOR, ","):
                self.next()
            self.expect(BRACKET, ")")
            return self.node(ast.Builtin(token.pos, name, arguments))
        if name in self.builtins and not overridden:
            return self.node(ast.Builtin(token.pos, name, self.arguments(arguments)))
        callee = self.node(ast.Identifier(token.pos, name))
        return self.node(ast.Call(token.pos, callee, self.arguments(arguments)))

    def arguments(self, arguments: list[ast.Node]) -> list[ast.Node]:
        offset = len(arguments)
        self.expect(BRACKET, "(")
        while not self.current.is_(BRACKET, ")"):
            if len(arguments) > offset:
                self.expect(OPERATOR, ",")
            if self.current.is_(BRACKET, ")"):
                break
            arguments.append(self.expression(0))
        self.expect(BRACKET, ")")
        return arguments

    def predicate(self) -> ast.Node:
        start = self.current
        braces = self.current.is_(BRACKET, "{")
        if braces:
            self.next()
        self.depth += 1
        try:
            if braces:
                body = self.sequence()
            else:
                body = self.expression(0)
                if self.current.is_(OPERATOR, ";"):
                    raise self.error("wrap predicate with brackets { and }")
        finally:
            self.depth -= 1
        if braces:
            self.expect(BRACKET, "}")
        return self.node(ast.Predicate(start.pos, body))

    def array(self, token: Token) -> ast.Node:
        nodes: list[ast.Node] = []
        self.expect(BRACKET, "[")
        while not self.current.is_(BRACKET, "]"):
            if nodes:
                self.expect(OPERATOR, ",")
                if self.current.is_(BRACKET, "]"):
                    break
            nodes.append(self.expression(0))
        self.expect(BRACKET, "]")
        return self.node(ast.Array(token.pos, nodes))

    def mapping(self, token: Token) -> ast.Node:
        self.expect(BRACKET, "{")
        pairs: list[ast.Pair] = []
        while not self.current.is_(BRACKET, "}"):
            if pairs:
                self.expect(OPERATOR, ",")
                if self.current.is_(BRACKET, "}"):
                    break
                if self.current.is_(OPERATOR, ","):
                    raise self.error(f"unexpected token {self.current}")
            key: ast.Node
            if self.current.kind in (NUMBER, STRING, IDENT):
                key = self.node(ast.String(self.current.pos, self.current.value))
                self.next()
            elif self.current.is_(BRACKET, "("):
                key = self.expression(0)
            else:
                raise self.error(
                    "a map key must be a quoted string, a number, a identifier, or an"
                    f" expression enclosed in parentheses (unexpected token {self.current})"
                )
            self.expect(OPERATOR, ":")
            value = self.expression(0)
            pair = self.node(ast.Pair(token.pos, key, value))
            assert isinstance(pair, ast.Pair)
            pairs.append(pair)
        self.expect(BRACKET, "}")
        return self.node(ast.Map(token.pos, pairs))

    def postfix(self, node: ast.Node) -> ast.Node:
        token = self.current
        while token.kind in (OPERATOR, BRACKET):
            optional = token.value == "?."
            if token.value in (".", "?."):
                self.next()
                prop_token = self.current
                if optional and prop_token.is_(BRACKET, "["):
                    node = self.index_or_slice(node, prop_token, optional=True)
                    token = self.current
                    continue
                self.next()
                if prop_token.kind != IDENT and not (
                    prop_token.kind == OPERATOR and _valid_identifier(prop_token.value)
                ):
                    raise self.error("expected name", prop_token)
                prop = self.node(ast.String(prop_token.pos, prop_token.value))
                is_chain = isinstance(node, ast.Chain)
                base = node.node if isinstance(node, ast.Chain) else node
                member = ast.Member(prop_token.pos, base, prop, optional=optional)
                self.node(member)
                if self.current.is_(BRACKET, "("):
                    member.method = True
                    node = self.node(ast.Call(prop_token.pos, member, self.arguments([])))
                else:
                    node = member
                if is_chain or optional:
                    node = self.node(ast.Chain(prop_token.pos, node))
            elif token.value == "[":
                node = self.index_or_slice(node, token, optional=False)
            else:
                break
            token = self.current
        return node

    def index_or_slice(self, node: ast.Node, token: Token, *, optional: bool) -> ast.Node:
        self.next()  # past "["
        if self.current.is_(OPERATOR, ":"):
            self.next()
            to = None if self.current.is_(BRACKET, "]") else self.expression(0)
            sliced = self.node(ast.Slice(token.pos, node, None, to))
            self.expect(BRACKET, "]")
            return sliced
        from_ = self.expression(0)
        if self.current.is_(OPERATOR, ":"):
            self.next()
            to = None if self.current.is_(BRACKET, "]") else self.expression(0)
            sliced = self.node(ast.Slice(token.pos, node, from_, to))
            self.expect(BRACKET, "]")
            return sliced
        member: ast.Node = self.node(ast.Member(token.pos, node, from_, optional=optional))
        if optional:
            member = self.node(ast.Chain(token.pos, member))
        self.expect(BRACKET, "]")
        return member


def _parse_int(digits: str, base: int, label: str) -> int:
    text = "0" + {16: "x", 2: "b", 8: "o", 10: ""}[base] + digits if base != 10 else digits
    try:
        value = int(digits, base) if digits else None
    except ValueError:
        value = None
    if value is None:
        raise ValueError(
            f'invalid {label} literal: strconv.ParseInt: parsing "{text}": invalid syntax'
        )
    if value > 2**63 - 1:
        raise ValueError(
            f'invalid {label} literal: strconv.ParseInt: parsing "{text}": value out of range'
        )
    return value


def _parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f'invalid float literal: strconv.ParseFloat: parsing "{text}": invalid syntax'
        ) from None
    if value == float("inf"):
        raise ValueError(
            f'invalid float literal: strconv.ParseFloat: parsing "{text}": value out of range'
        )
    return value


def parse(
    source: str,
    *,
    builtins: Iterable[str] = (),
    overridden: Iterable[str] = (),
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
) -> ast.Node:
    """Parse ``source`` into a tree; :class:`ExprError` (kind ``syntax``/``limit``) if invalid.

    ``builtins`` are the non-predicate builtin names; ``overridden`` the names the
    environment defines, which shadow builtins of the same name (as in expr).
    """
    parser = _Parser(source, frozenset(builtins), frozenset(overridden), max_nodes, max_depth)
    return parser.parse()
