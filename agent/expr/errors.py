"""The one error type of the expression language, worded the way expr-lang words it.

expr-lang reports every compile or run-time problem as a ``file.Error``: a message, a
1-based line, a 0-based rune column and a snippet of the offending line with a caret::

    unknown name foo (1:1)
     | foo
     | ^

Argo copies these texts verbatim into node messages, so :class:`ExprError` renders exactly
that shape (``str(err)``) while keeping the parts apart (``message``, ``line``,
``column``) for callers that want them. Internally, value operations raise
:class:`Panic` (a message with no position, like a Go panic); the node that ran the
operation turns it into a located :class:`ExprError`, as expr's VM does with the
location of the failing opcode.
"""

from __future__ import annotations

__all__ = ["ExprError", "Panic"]


class ExprError(ValueError):
    """A compile-time or run-time error of an expression.

    ``kind`` is ``"syntax"``, ``"type"``, ``"runtime"``, ``"limit"`` (a safety bound
    was hit) or ``"cast"`` (a condition that is not a bool); ``phase`` says whether it
    happened while compiling or while running. ``str(err)`` is expr-lang's text:
    message, position and snippet.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "runtime",
        source: str = "",
        offset: int | None = None,
        phase: str | None = None,
    ) -> None:
        self.message = message
        self.kind = kind
        self.phase = phase or ("compile" if kind in ("syntax", "type") else "run")
        self.source = source
        self.offset = offset
        self.line = 0
        self.column = 0
        self.snippet = ""
        if offset is not None:
            self._bind(source, offset)
        super().__init__(self._format())

    def _bind(self, source: str, offset: int) -> None:
        # Same walk as expr's file.Error.Bind: count lines and runes up to the offset.
        line, column, line_start = 1, 0, 0
        for index, char in enumerate(source):
            if index == offset:
                break
            if char == "\n":
                line += 1
                column = 0
                line_start = index + 1
            else:
                column += 1
        self.line, self.column = line, column
        line_end = source.find("\n", line_start)
        if line_end < 0:
            line_end = len(source)
        if line_start == line_end:
            return
        text = source[line_start:line_end].replace("\t", " ")
        self.snippet = f"\n | {text}\n | {'.' * column}^"

    def _format(self) -> str:
        if not self.snippet:
            return self.message
        return f"{self.message} ({self.line}:{self.column + 1}){self.snippet}"


class Panic(Exception):
    """A failed value operation, not yet tied to a position in the source."""

    def __init__(self, message: str, *, kind: str = "runtime") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
