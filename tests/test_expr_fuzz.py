"""Fuzzing: any input gives a value or an ExprError -- never another exception or a hang.

Three generators: arbitrary text, token soup built from the language's own vocabulary,
and syntactically well-formed expressions built from a grammar (so the checker and the
interpreter get exercised, not just the lexer). Every evaluation runs under tight
:class:`~agent.expr.Limits`, so a generated program cannot run away. Example counts are
bounded to keep the whole file to a few seconds.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.expr import ExprError, Limits, compile, evaluate, render
from agent.expr.parser import parse
from agent.expr.values import json_marshal

LIMITS = Limits(memory_budget=200_000, max_string_length=100_000, timeout=0.5)
ENV: dict[str, Any] = {
    "n": 7,
    "f": 2.5,
    "s": "hello world",
    "b": True,
    "z": None,
    "arr": [1, 2.5, "x", None, [1, 2], {"k": 1}],
    "nums": [3, 1, 2],
    "m": {"k": "v", "n": 1, "nested": {"a": [1, 2]}, "z": None},
    "lastRetry.exitCode": "2",
    "retries": "1",
}
FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TOKENS = [
    *"0 1 42 0x1F 0b1 0o7 1_0 .5 1e3 1.5 -1".split(),
    *"n f s b z arr nums m $env lastRetry.exitCode retries # #index #acc .k".split(),
    *"true false nil 'a' \"b\" `c` '\\n' \"\\u00e9\"".split(),
    *"+ - * / % ** ^ == != < > <= >= && || ! ?? ?. ? : .. | , ; . [ ] ( ) { }".split(),
    *"and or not in matches contains startsWith endsWith let if else =".split(),
    *"len filter map all any none one count sum find findIndex groupBy sortBy reduce".split(),
    *"upper split join repeat int float string toJSON fromJSON date duration now".split(),
    *"asInt asFloat toJson jsonpath sprig.trunc sprig.int max min abs round".split(),
    "/* c */",
    "// c\n",
]


def _check(source: str, *, argo: bool) -> None:
    try:
        value = evaluate(source, ENV, argo=argo, limits=LIMITS)
    except ExprError as exc:
        assert isinstance(str(exc), str) and exc.phase in ("compile", "run")
        return
    try:
        json_marshal(value)
    except Exception as exc:  # a Go-unsupported value is fine, a crash is not
        assert type(exc).__name__ == "Panic", exc


@FUZZ
@given(st.text(max_size=60), st.booleans())
def test_arbitrary_text(source: str, argo: bool) -> None:
    _check(source, argo=argo)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join), st.booleans())
def test_token_soup(source: str, argo: bool) -> None:
    _check(source, argo=argo)


LEAVES = st.sampled_from(
    [
        "0", "1", "-3", "42", "2.5", "0.1", "1e3", "'x'", '"hello"', "''", "true", "false",
        "nil", "n", "f", "s", "b", "z", "arr", "nums", "m", "m.k", "m.n", "m.z",
        "m.nested.a", "[]", "[1, 2, 3]", "{}", "{a: 1, b: 'c'}", "1..4", "$env",
    ]
)  # fmt: skip
BINARY = [
    "+", "-", "*", "/", "%", "**", "==", "!=", "<", ">", "<=", ">=", "&&", "||",
    "??", "in", "not in", "contains", "startsWith", "endsWith", "matches", "..",
]  # fmt: skip
FUNCS1 = [
    "len", "upper", "lower", "trim", "string", "int", "float", "abs", "ceil", "round",
    "first", "last", "reverse", "sort", "uniq", "flatten", "keys", "values", "toJSON",
    "fromJSON", "type", "toBase64", "fromBase64", "max", "min", "mean", "median",
]  # fmt: skip
PREDICATES = [
    "filter",
    "map",
    "all",
    "any",
    "none",
    "one",
    "count",
    "find",
    "findIndex",
    "groupBy",
    "sortBy",
]


def _grammar(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(BINARY), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from(["!", "-", "not "]), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(FUNCS1), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(PREDICATES), children, children).map(
            lambda t: f"{t[0]}({t[1]}, {{{t[2]}}})"
        ),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(children, children).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(children, children).map(lambda t: f"{t[0]}?.[{t[1]}]"),
        st.tuples(children, children, children).map(lambda t: f"{t[0]}[{t[1]}:{t[2]}]"),
        st.tuples(children, children).map(lambda t: f"let v = {t[0]}; {t[1]}"),
        st.tuples(children, children).map(lambda t: f"[{t[0]}, {t[1]}]"),
        st.tuples(children, children).map(lambda t: f"{{k: {t[0]}, (string({t[1]})): 1}}"),
        st.tuples(children, children).map(lambda t: f"reduce([{t[0]}, {t[1]}], #acc ?? #)"),
        children.map(lambda c: f"{c} | string()"),
        children.map(lambda c: f"#.{c}" if c.isidentifier() else f"(# ?? {c})").map(
            lambda c: f"map(arr, {c})"
        ),
    )


EXPRESSIONS = st.recursive(LEAVES, _grammar, max_leaves=12)


@FUZZ
@given(EXPRESSIONS)
def test_grammar_expressions(source: str) -> None:
    _check(source, argo=False)


@FUZZ
@given(EXPRESSIONS)
def test_grammar_expressions_with_argo_functions(source: str) -> None:
    _check(f"toJson({source})", argo=True)


@settings(max_examples=100, deadline=None)
@given(EXPRESSIONS)
def test_parsing_is_deterministic_and_cached(source: str) -> None:
    try:
        first = repr(parse(source))
    except ExprError:
        return
    assert repr(parse(source)) == first
    try:
        program = compile(source, argo=False)
    except ExprError:
        return
    assert compile(source, argo=False) is program


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("{}=ab .'\"1+x")), max_size=40))
def test_templates(text: str) -> None:
    try:
        out = render(text, {"a": "A", "b": "B", "x": "1"}, limits=LIMITS)
    except ExprError:
        return
    assert isinstance(out, str)


def test_deep_nesting_is_a_clean_error() -> None:
    for source in (
        "(" * 5000 + "1" + ")" * 5000,
        "-" * 5000 + "1",
        "!" * 3000 + "true",
        "1" + " + 1" * 3000,
    ):
        try:
            evaluate(source, {})
        except ExprError as exc:
            assert exc.kind == "limit", exc
