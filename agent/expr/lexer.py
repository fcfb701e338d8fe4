"""Tokenizer for expr-lang v1.17 source text.

Follows expr's state-machine lexer (``parser/lexer/state.go``) so that the same text
yields the same tokens and the same errors: keywords such as ``in``/``matches``/``let``
are *operators*, ``not`` glues onto a following ``in``/``matches``/... , ``1..3`` is a
range (not the float ``1.``), ``#index`` is a pointer, comments are skipped, and string
literals use Go's escapes. Token positions are rune offsets, which is what expr's error
snippets count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .errors import ExprError
from .values import go_quote

__all__ = ["BRACKET", "EOF", "IDENT", "NUMBER", "OPERATOR", "STRING", "Token", "tokenize"]

IDENT: Final = "Identifier"
NUMBER: Final = "Number"
STRING: Final = "String"
OPERATOR: Final = "Operator"
BRACKET: Final = "Bracket"
EOF: Final = "EOF"

_KEYWORDS = frozenset(
    {"in", "or", "and", "matches", "contains", "startsWith", "endsWith", "let", "if", "else"}
)
_NOT_SUFFIXES = frozenset({"in", "matches", "contains", "startsWith", "endsWith"})


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    value: str
    pos: int

    def __str__(self) -> str:
        if not self.value:
            return self.kind
        return f"{self.kind}({go_quote(self.value)})"

    def is_(self, kind: str, *values: str) -> bool:
        return self.kind == kind and (not values or self.value in values)


def _is_alpha(char: str) -> bool:
    return char == "_" or char == "$" or char.isalpha()


def _is_alnum(char: str) -> bool:
    return _is_alpha(char) or char.isdigit()


def _is_space(char: str) -> bool:
    return char.isspace()


class _Lexer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.tokens: list[Token] = []

    def error(self, message: str, at: int | None = None) -> ExprError:
        return ExprError(
            message, kind="syntax", source=self.src, offset=self.pos if at is None else at
        )

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.src[index] if index < len(self.src) else ""

    def raw_string(self, start: int) -> None:
        # scanRawString: inside backticks a doubled backtick is one literal backtick;
        # a single one closes the string.
        src = self.src
        end = src.find("`", start + 1)
        escaped = False
        while end >= 0 and src.startswith("``", end):
            escaped = True
            end = src.find("`", end + 2)
        if end < 0:
            raise self.error("literal not terminated", len(src))
        text = src[start + 1 : end]
        self.tokens.append(Token(STRING, text.replace("``", "`") if escaped else text, start))
        self.pos = end + 1

    def run(self) -> list[Token]:
        src = self.src
        while self.pos < len(src):
            start = self.pos
            char = src[start]
            if _is_space(char):
                self.pos += 1
            elif char in "'\"":
                self.string(char)
            elif char == "`":
                self.raw_string(start)
            elif char.isdigit() and char.isascii():
                self.number()
            elif char == "?":
                self.pos += 1
                if self.peek() in (".", "?"):
                    self.pos += 1
                self.emit(OPERATOR, start)
            elif char == "/":
                self.slash()
            elif char == "#":
                self.pos += 1
                self.emit(OPERATOR, start)
                word_start = self.pos
                while self.pos < len(src) and _is_alnum(src[self.pos]):
                    self.pos += 1
                if self.pos > word_start:
                    self.emit(IDENT, word_start)
            elif char in "|:":
                self.pos += 1
                if self.peek() == char:
                    self.pos += 1
                self.emit(OPERATOR, start)
            elif char in "([{)]}":
                self.pos += 1
                self.emit(BRACKET, start)
            elif char in ",;%+-^":
                self.pos += 1
                self.emit(OPERATOR, start)
            elif char in "&!=*<>":
                self.pos += 1
                if self.peek() and self.peek() in "&=*":
                    self.pos += 1
                self.emit(OPERATOR, start)
            elif char == ".":
                if self.peek(1).isdigit() and self.peek(1).isascii():
                    self.number()
                else:
                    self.pos += 1
                    if self.peek() == ".":
                        self.pos += 1
                    self.emit(OPERATOR, start)
            elif _is_alpha(char):
                self.identifier()
            else:
                raise self.error(f"unrecognized character: {_unicode_name(char)}")
        self.tokens.append(Token(EOF, "", len(src)))
        return self.tokens

    def emit(self, kind: str, start: int) -> None:
        self.tokens.append(Token(kind, self.src[start : self.pos], start))

    def string(self, quote: str) -> None:
        start = self.pos
        src = self.src
        i = start + 1
        while True:
            if i >= len(src):
                raise self.error("literal not terminated", len(src))
            char = src[i]
            if char == "\\":
                i += 2
                continue
            if char == quote:
                break
            i += 1
        body = src[start + 1 : i]
        self.pos = i + 1
        try:
            value = _unescape(body)
        except ValueError as exc:
            raise self.error(str(exc), start) from None
        self.tokens.append(Token(STRING, value, start))

    def number(self) -> None:
        start = self.pos
        src = self.src
        digits = "0123456789_"
        if self.peek() == "0":
            self.pos += 1
            nxt = self.peek()
            if nxt and nxt in "xX":
                self.pos += 1
                digits = "0123456789abcdefABCDEF_"
            elif nxt and nxt in "oO":
                self.pos += 1
                digits = "01234567_"
            elif nxt and nxt in "bB":
                self.pos += 1
                digits = "01_"
        self._accept_run(digits)
        end_before_dot = self.pos
        if self.peek() == ".":
            self.pos += 1
            if self.peek() == ".":  # "1..3" is a range
                self.pos = end_before_dot
                self.emit(NUMBER, start)
                return
            self._accept_run(digits)
        if self.peek() and self.peek() in "eE":
            self.pos += 1
            if self.peek() and self.peek() in "+-":
                self.pos += 1
            self._accept_run(digits)
        if self.pos < len(src) and _is_alnum(src[self.pos]):
            self.pos += 1
            raise self.error(f"bad number syntax: {go_quote(src[start : self.pos])}")
        self.emit(NUMBER, start)

    def _accept_run(self, chars: str) -> None:
        src = self.src
        while self.pos < len(src) and src[self.pos] in chars:
            self.pos += 1

    def slash(self) -> None:
        start = self.pos
        src = self.src
        self.pos += 1
        if self.peek() == "/":
            end = src.find("\n", self.pos)
            self.pos = len(src) if end < 0 else end + 1
        elif self.peek() == "*":
            end = src.find("*/", self.pos + 1)
            if end < 0:
                self.pos = len(src)
                raise self.error("unclosed comment")
            self.pos = end + 2
        else:
            self.emit(OPERATOR, start)

    def identifier(self) -> None:
        start = self.pos
        src = self.src
        while self.pos < len(src) and _is_alnum(src[self.pos]):
            self.pos += 1
        word = src[start : self.pos]
        if word == "not":
            self.emit(OPERATOR, start)
            # "not in", "not matches", ...: the next word joins as an operator.
            probe = self.pos
            while probe < len(src) and _is_space(src[probe]):
                probe += 1
            word_end = probe
            while word_end < len(src) and _is_alnum(src[word_end]):
                word_end += 1
            if src[probe:word_end] in _NOT_SUFFIXES:
                self.tokens.append(Token(OPERATOR, src[probe:word_end], probe))
                self.pos = word_end
            return
        self.emit(OPERATOR if word in _KEYWORDS else IDENT, start)


def _unicode_name(char: str) -> str:
    code = ord(char)
    return f"U+{code:04X} '{char}'" if char.isprintable() else f"U+{code:04X}"


_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
}  # fmt: skip


def _unescape(body: str) -> str:
    """Go string-literal escapes, as expr's ``unescape`` applies them."""
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("unable to unescape string")
        code = body[i + 1]
        if code in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[code])
            i += 2
        elif code in "'\"":
            out.append(code)
            i += 2
        elif code in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[code]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("unable to unescape string")
            value = int(digits, 16)
            if code == "x":
                out.append(chr(value))
            elif value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise ValueError("unable to unescape string")
            else:
                out.append(chr(value))
            i += 2 + width
        elif code in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or any(c not in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ValueError("unable to unescape string")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ValueError("unable to unescape string")
    return "".join(out)


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens, ending with an EOF token; :class:`ExprError` if invalid."""
    return _Lexer(source).run()
