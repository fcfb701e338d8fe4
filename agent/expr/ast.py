"""Syntax tree of an expression: the node types of expr-lang's ``ast`` package.

Each node records ``pos``, the rune offset expr attaches to it (used for error
snippets), and ``depth`` (the height of its subtree), which the parser bounds so that
the recursive checker and compiler can never exhaust Python's stack.
"""

from __future__ import annotations

__all__ = [
    "Array",
    "Binary",
    "Bool",
    "Builtin",
    "Call",
    "Chain",
    "Conditional",
    "Float",
    "Identifier",
    "Integer",
    "Let",
    "Map",
    "Member",
    "Nil",
    "Node",
    "Pair",
    "Pointer",
    "Predicate",
    "Sequence",
    "Slice",
    "String",
    "Unary",
]


class Node:
    __slots__ = ("depth", "pos")

    def __init__(self, pos: int) -> None:
        self.pos = pos
        self.depth = 1

    def children(self) -> tuple[Node, ...]:
        return ()

    def seal(self) -> Node:
        kids = self.children()
        if kids:
            self.depth = 1 + max(kid.depth for kid in kids)
        return self

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields())
        return f"{type(self).__name__}({fields})"

    def _fields(self) -> tuple[str, ...]:
        return ()


class Nil(Node):
    __slots__ = ()


class Bool(Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: bool) -> None:
        super().__init__(pos)
        self.value = value

    def _fields(self) -> tuple[str, ...]:
        return ("value",)


class Integer(Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: int) -> None:
        super().__init__(pos)
        self.value = value

    def _fields(self) -> tuple[str, ...]:
        return ("value",)


class Float(Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: float) -> None:
        super().__init__(pos)
        self.value = value

    def _fields(self) -> tuple[str, ...]:
        return ("value",)


class String(Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: str) -> None:
        super().__init__(pos)
        self.value = value

    def _fields(self) -> tuple[str, ...]:
        return ("value",)


class Identifier(Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        super().__init__(pos)
        self.name = name

    def _fields(self) -> tuple[str, ...]:
        return ("name",)


class Unary(Node):
    __slots__ = ("node", "op")

    def __init__(self, pos: int, op: str, node: Node) -> None:
        super().__init__(pos)
        self.op = op
        self.node = node

    def children(self) -> tuple[Node, ...]:
        return (self.node,)

    def _fields(self) -> tuple[str, ...]:
        return ("op", "node")


class Binary(Node):
    __slots__ = ("left", "op", "right")

    def __init__(self, pos: int, op: str, left: Node, right: Node) -> None:
        super().__init__(pos)
        self.op = op
        self.left = left
        self.right = right

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)

    def _fields(self) -> tuple[str, ...]:
        return ("op", "left", "right")


class Chain(Node):
    """Marks an optional chain (``a?.b.c``): a nil anywhere short-circuits to nil."""

    __slots__ = ("node",)

    def __init__(self, pos: int, node: Node) -> None:
        super().__init__(pos)
        self.node = node

    def children(self) -> tuple[Node, ...]:
        return (self.node,)

    def _fields(self) -> tuple[str, ...]:
        return ("node",)


class Member(Node):
    __slots__ = ("method", "node", "optional", "prop")

    def __init__(self, pos: int, node: Node, prop: Node, *, optional: bool = False) -> None:
        super().__init__(pos)
        self.node = node
        self.prop = prop
        self.optional = optional
        self.method = False

    def children(self) -> tuple[Node, ...]:
        return (self.node, self.prop)

    def _fields(self) -> tuple[str, ...]:
        return ("node", "prop", "optional")


class Slice(Node):
    __slots__ = ("from_", "node", "to")

    def __init__(self, pos: int, node: Node, from_: Node | None, to: Node | None) -> None:
        super().__init__(pos)
        self.node = node
        self.from_ = from_
        self.to = to

    def children(self) -> tuple[Node, ...]:
        return tuple(n for n in (self.node, self.from_, self.to) if n is not None)

    def _fields(self) -> tuple[str, ...]:
        return ("node", "from_", "to")


class Call(Node):
    __slots__ = ("args", "callee")

    def __init__(self, pos: int, callee: Node, args: list[Node]) -> None:
        super().__init__(pos)
        self.callee = callee
        self.args = args

    def children(self) -> tuple[Node, ...]:
        return (self.callee, *self.args)

    def _fields(self) -> tuple[str, ...]:
        return ("callee", "args")


class Builtin(Node):
    __slots__ = ("args", "name")

    def __init__(self, pos: int, name: str, args: list[Node]) -> None:
        super().__init__(pos)
        self.name = name
        self.args = args

    def children(self) -> tuple[Node, ...]:
        return tuple(self.args)

    def _fields(self) -> tuple[str, ...]:
        return ("name", "args")


class Predicate(Node):
    __slots__ = ("node",)

    def __init__(self, pos: int, node: Node) -> None:
        super().__init__(pos)
        self.node = node

    def children(self) -> tuple[Node, ...]:
        return (self.node,)

    def _fields(self) -> tuple[str, ...]:
        return ("node",)


class Pointer(Node):
    """``#`` (name ""), ``#index`` or ``#acc`` inside a predicate."""

    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        super().__init__(pos)
        self.name = name

    def _fields(self) -> tuple[str, ...]:
        return ("name",)


class Let(Node):
    __slots__ = ("expr", "name", "value")

    def __init__(self, pos: int, name: str, value: Node, expr: Node) -> None:
        super().__init__(pos)
        self.name = name
        self.value = value
        self.expr = expr

    def children(self) -> tuple[Node, ...]:
        return (self.value, self.expr)

    def _fields(self) -> tuple[str, ...]:
        return ("name", "value", "expr")


class Sequence(Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int, nodes: list[Node]) -> None:
        super().__init__(pos)
        self.nodes = nodes

    def children(self) -> tuple[Node, ...]:
        return tuple(self.nodes)

    def _fields(self) -> tuple[str, ...]:
        return ("nodes",)


class Conditional(Node):
    __slots__ = ("cond", "exp1", "exp2")

    def __init__(self, pos: int, cond: Node, exp1: Node, exp2: Node) -> None:
        super().__init__(pos)
        self.cond = cond
        self.exp1 = exp1
        self.exp2 = exp2

    def children(self) -> tuple[Node, ...]:
        return (self.cond, self.exp1, self.exp2)

    def _fields(self) -> tuple[str, ...]:
        return ("cond", "exp1", "exp2")


class Array(Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int, nodes: list[Node]) -> None:
        super().__init__(pos)
        self.nodes = nodes

    def children(self) -> tuple[Node, ...]:
        return tuple(self.nodes)

    def _fields(self) -> tuple[str, ...]:
        return ("nodes",)


class Pair(Node):
    __slots__ = ("key", "value")

    def __init__(self, pos: int, key: Node, value: Node) -> None:
        super().__init__(pos)
        self.key = key
        self.value = value

    def children(self) -> tuple[Node, ...]:
        return (self.key, self.value)

    def _fields(self) -> tuple[str, ...]:
        return ("key", "value")


class Map(Node):
    __slots__ = ("pairs",)

    def __init__(self, pos: int, pairs: list[Pair]) -> None:
        super().__init__(pos)
        self.pairs = pairs

    def children(self) -> tuple[Node, ...]:
        return tuple(self.pairs)

    def _fields(self) -> tuple[str, ...]:
        return ("pairs",)
