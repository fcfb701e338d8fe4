"""Sprig's word helpers, rune for rune: xstrings v1.5.0's case conversions, goutils v1.1.1's wrap.

Sprig v3.3.0 does not implement ``snakecase``, ``kebabcase``, ``camelcase``, ``swapcase``,
``wrap`` or ``wrapWith`` itself: it maps them to github.com/huandu/xstrings v1.5.0
(``ToSnakeCase``, ``ToKebabCase``, ``ToPascalCase``) and github.com/Masterminds/goutils
v1.1.1 (``SwapCase``, ``Wrap``, ``WrapCustom``), the versions its go.mod pins. Their rules
are intricate (``"HTTPServer"`` is ``http_server``, ``"Bld4Floor3rd"`` is ``bld4_floor_3rd``,
``"_complex__case_"`` is ``_Complex_Case_``), so this module follows their algorithms step
by step rather than approximating them with regular expressions:

* the case conversions split text into typed words exactly as xstrings' ``nextWord`` does
  (connectors, punctuation, upper-case runs, letters, numbers, other) and join them with
  the same decisions about where a connector goes;
* character classes are Go's ``unicode`` package ones (``IsUpper`` is category Lu,
  ``IsSpace`` is Go's white-space set, a CJK ideograph is not an "alphabet" letter), and
  a rune is lower- or upper-cased only when Go would map it to a single rune;
* ``wrap`` counts UTF-8 *bytes* like goutils (which indexes the Go string), so it breaks
  at the same places; a break inside a multi-byte rune (only when long words are cut)
  leaves U+FFFD where Go's output would hold the broken bytes.
"""

from __future__ import annotations

import unicodedata

from .errors import Panic
from .values import MAX_TEXT

__all__ = ["pascal_case", "snake_case", "swap_case", "wrap_custom"]

_LATIN1_SPACE = frozenset("\t\n\v\f\r \x85\xa0")
_REPLACEMENT = "\ufffd"  # utf8.RuneError

# nextWord's word types (xstrings convert.go).
_INVALID, _NUMBER, _UPPER, _ALPHABET, _CONNECTOR, _PUNCT, _OTHER = range(7)


def _is_space(r: str) -> bool:
    if r <= "\xff":
        return r in _LATIN1_SPACE
    return unicodedata.category(r) in ("Zs", "Zl", "Zp")


def _is_upper(r: str) -> bool:
    return unicodedata.category(r) == "Lu"


def _is_lower(r: str) -> bool:
    return unicodedata.category(r) == "Ll"


def _is_title(r: str) -> bool:
    return unicodedata.category(r) == "Lt"


def _is_letter(r: str) -> bool:
    return unicodedata.category(r).startswith("L")


def _is_number(r: str) -> bool:
    return unicodedata.category(r).startswith("N")


def _is_punct(r: str) -> bool:
    return unicodedata.category(r).startswith("P")


def _to_lower(r: str) -> str:
    low = r.lower()
    return low if len(low) == 1 else r


def _to_upper(r: str) -> str:
    up = r.upper()
    return up if len(up) == 1 else r


def _to_title(r: str) -> str:
    title = r.title()
    return title if len(title) == 1 else _to_upper(r)


def _is_alphabet(r: str) -> bool:
    # xstrings isAlphabet: a letter that is not a CJK ideograph.
    if not _is_letter(r):
        return False
    if r < "\u3400":
        return True
    return not (
        "\u4e00" <= r <= "\u9fcc" or "\u3400" <= r <= "\u4d85" or "\U00020000" <= r <= "\U0002b81d"
    )


def _is_connector(r: str) -> bool:
    return r in ("-", "_") or _is_space(r)


def _next_valid(text: str, prev: str) -> tuple[str, int]:
    """nextValidRune: the first rune that is not U+FFFD and how many runes that took."""
    size = 0
    for r in text:
        size += 1
        if r != _REPLACEMENT:
            return r, size
    return prev, size


def _next_word(text: str) -> tuple[int, str, str]:
    """xstrings nextWord: the type of the first word, the word, the rest."""
    if not text:
        return _INVALID, "", ""
    r, size = _next_valid(text, _REPLACEMENT)
    offset = size
    remaining = text
    if r == _REPLACEMENT:
        return _INVALID, text[:offset], text[offset:]

    if _is_connector(r):
        wt = _CONNECTOR
        remaining = remaining[size:]
        while remaining:
            r, size = _next_valid(remaining, r)
            if not _is_connector(r):
                break
            offset += size
            remaining = remaining[size:]
    elif _is_punct(r):
        wt = _PUNCT
        remaining = remaining[size:]
        while remaining:
            r, size = _next_valid(remaining, r)
            if not _is_punct(r):
                break
            offset += size
            remaining = remaining[size:]
    elif _is_upper(r):
        wt = _UPPER
        remaining = remaining[size:]
        if remaining:
            r, size = _next_valid(remaining, r)
            if _is_upper(r):
                prev_size = size
                offset += size
                remaining = remaining[size:]
                while remaining:
                    r, size = _next_valid(remaining, r)
                    if not _is_upper(r):
                        break
                    prev_size = size
                    offset += size
                    remaining = remaining[size:]
                # "HTTPStatus" splits into "HTTP" and "Status": the last capital stays.
                if remaining and _is_alphabet(r):
                    offset -= prev_size
                    remaining = text[offset:]
            elif _is_alphabet(r):
                offset += size
                remaining = remaining[size:]
                while remaining:
                    r, size = _next_valid(remaining, r)
                    if not _is_alphabet(r) or _is_upper(r):
                        break
                    offset += size
                    remaining = remaining[size:]
    elif _is_alphabet(r):
        wt = _ALPHABET
        remaining = remaining[size:]
        while remaining:
            r, size = _next_valid(remaining, r)
            if not _is_alphabet(r) or _is_upper(r):
                break
            offset += size
            remaining = remaining[size:]
    elif _is_number(r):
        wt = _NUMBER
        remaining = remaining[size:]
        while remaining:
            r, size = _next_valid(remaining, r)
            if not _is_number(r):
                break
            offset += size
            remaining = remaining[size:]
    else:
        wt = _OTHER
        remaining = remaining[size:]
        while remaining:
            r, size = _next_valid(remaining, r)
            if size == 0 or _is_connector(r) or _is_alphabet(r) or _is_number(r) or _is_punct(r):
                break
            offset += size
            remaining = remaining[size:]
    return wt, text[:offset], remaining


def _lower_word(out: list[str], wt: int, word: str, connector: str) -> None:
    """xstrings toLower: upper-case and connector words are rewritten, others kept."""
    if wt not in (_UPPER, _CONNECTOR):
        out.append(word)
        return
    for r in word:
        if _is_connector(r):
            out.append(connector)
        elif _is_upper(r):
            out.append(_to_lower(r))
        else:
            out.append(r)


def snake_case(text: str, connector: str = "_") -> str:
    """xstrings camelCaseToLowerCase (``ToSnakeCase`` with ``_``, ``ToKebabCase`` with ``-``)."""
    if not text:
        return ""
    out: list[str] = []
    wt, word, remaining = _next_word(text)
    while remaining:
        if wt != _CONNECTOR:
            _lower_word(out, wt, word, connector)
        prev, last = wt, word
        wt, word, remaining = _next_word(remaining)
        if prev == _NUMBER:
            while wt in (_ALPHABET, _NUMBER):
                _lower_word(out, wt, word, connector)
                wt, word, remaining = _next_word(remaining)
            if wt not in (_INVALID, _PUNCT, _CONNECTOR):
                out.append(connector)
        elif prev == _CONNECTOR:
            _lower_word(out, prev, last, connector)
        elif prev == _PUNCT:
            pass
        elif wt != _NUMBER:
            if wt not in (_CONNECTOR, _PUNCT):
                out.append(connector)
        elif remaining:
            number = word
            wt, word, remaining = _next_word(remaining)
            if wt != _ALPHABET:
                # A number ends the previous word: "Bld4Floor" is "bld4_floor".
                _lower_word(out, _NUMBER, number, connector)
                if wt not in (_CONNECTOR, _PUNCT):
                    out.append(connector)
            else:
                # Letters after the number start a new word: "HTTP2xx" is "http_2xx".
                out.append(connector)
                _lower_word(out, _NUMBER, number, connector)
                while wt in (_ALPHABET, _NUMBER):
                    _lower_word(out, wt, word, connector)
                    wt, word, remaining = _next_word(remaining)
                if wt not in (_INVALID, _CONNECTOR, _PUNCT):
                    out.append(connector)
    _lower_word(out, wt, word, connector)
    return "".join(out)


def pascal_case(text: str) -> str:
    """xstrings ``ToPascalCase`` (Sprig's ``camelcase``): ``toCamelCase(str, isBig=true)``."""
    if not text:
        return ""
    out: list[str] = []
    first_upper = False
    chars = iter(text)
    r0 = ""
    for r0 in chars:  # leading connectors are kept
        if not _is_connector(r0):
            first_upper = _is_upper(r0)
            r0 = _to_upper(r0)
            break
        out.append(r0)
    rest = list(chars)
    if not rest:
        # Go writes the last rune read once more, so "_" becomes "__" and "a" becomes "A".
        out.append(r0)
        return "".join(out)
    for r in rest:
        r1, r0 = r0, r
        if _is_connector(r0) and _is_connector(r1):
            out.append(r1)
            continue
        if _is_connector(r1):
            first_upper = _is_upper(r0)
            r0 = _to_upper(r0)
        else:
            if first_upper:
                if _is_upper(r0):
                    r0 = _to_lower(r0)
                else:
                    first_upper = False
            out.append(r1)
    out.append(r0)
    return "".join(out)


def swap_case(text: str) -> str:
    """goutils ``SwapCase``: a lower-case rune after white space becomes title case."""
    out: list[str] = []
    whitespace = True
    for r in text:
        if _is_upper(r) or _is_title(r):
            out.append(_to_lower(r))
            whitespace = False
        elif _is_lower(r):
            out.append(_to_title(r) if whitespace else _to_upper(r))
            whitespace = False
        else:
            out.append(r)
            whitespace = _is_space(r)
    return "".join(out)


def wrap_custom(text: str, width: int, newline: str, *, long_words: bool) -> str:
    """goutils ``WrapCustom`` (``Wrap`` is ``newline=""``, ``long_words=False``), on bytes."""
    if not text:
        return ""
    sep = (newline or "\n").encode()
    width = max(width, 1)
    data = text.encode()
    total = len(data)
    offset = 0
    out = bytearray()

    def emit(chunk: bytes, *, line_end: bool) -> None:
        out.extend(chunk)
        if line_end:
            out.extend(sep)
        if len(out) > MAX_TEXT:
            raise Panic("memory budget exceeded", kind="limit")

    while total - offset > width:
        if data[offset] == 0x20:
            offset += 1
            continue
        end = width + offset + 1
        space = data.rfind(b" ", offset, end)
        if space >= offset:
            emit(data[offset:space], line_end=True)
            offset = space + 1
        elif long_words:
            emit(data[offset : offset + width], line_end=True)
            offset += width
        else:
            index = data.find(b" ", offset + width)
            if index < 0:
                emit(data[offset:], line_end=False)
                offset = total
            else:
                emit(data[offset:index], line_end=True)
                offset = index + 1
    emit(data[offset:], line_end=False)
    return out.decode("utf-8", errors="replace")
