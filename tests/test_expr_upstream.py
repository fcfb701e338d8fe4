"""Cases from the upstream libraries' own tests that Argo pins, each row citing its source.

Argo v4.1.2's go.mod pins expr-lang/expr v1.17.8, Masterminds/sprig v3.3.0 and
evilmonkeyinc/jsonpath v0.8.1 (behind ``jsonpath()``); Sprig v3.3.0 in turn pins
huandu/xstrings v1.5.0 and Masterminds/goutils v1.1.1 for its case and wrap helpers.
``src`` names the upstream file and test (``#n`` is the row's position in a Go table, counted
from 0) or, where no test covers a case, the source function whose algorithm fixes it.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from agent.expr import ExprError, compile, evaluate
from agent.expr.parser import MAX_DEPTH, RECURSION_FLOOR
from tests.test_expr_helpers import Err, Ok, case_id, same

EXPR = "expr v1.17.8"
SPRIG = "sprig v3.3.0"
JP = "evilmonkeyinc/jsonpath v0.8.1"


def _nested_sum(depth: int) -> str:
    # vm_test.go createNestedArithmeticExpr: "(((a + 1) + 2) ... + depth)"
    text = "a"
    for level in range(1, depth + 1):
        text = f"({text} + {level})"
    return text


def _nested_map(depth: int) -> str:
    # vm_test.go createNestedMapExpr
    return '{"nested": ' * depth + '{"value": 1}' + "}" * depth


# 1. Conditionals of differently typed arrays -------------------------------------------
CONDITIONAL = [
    Ok(
        "let a = [1]; let b = type(a[0]) == 'array' ? a : [a]; b[0][0]",
        1,
        f"{EXPR} test/issues/819/issue_test.go: TestIssue819 case 1",
    ),
    Ok(
        "let range = [1,1000]; let arr = false ? range : [range]; map(arr, {len(#)})",
        [2],
        f"{EXPR} test/issues/819/issue_test.go: TestIssue819 case 2",
    ),
    Ok(
        "map(false ? r : [r], {len(#)})",
        [2],
        f"{EXPR} checker/checker.go: conditionalNode (arrays of different element types)",
        env={"r": [1, 2]},
    ),
    Ok(
        "(false ? [1] : [[1]])[0][0] == 1",
        True,
        f"{EXPR} checker/checker_test.go: TestCheck '(true ? [1] : [[1]])[0][0] == 1'",
    ),
    # Compiles (the checker test above), and the first branch then fails when run, as in Go.
    Err(
        "(true ? [1] : [[1]])[0][0] == 1",
        "cannot fetch 0 from int",
        "run",
        f"{EXPR} checker/checker_test.go: TestCheck (typing only; running indexes an int)",
    ),
    Ok(
        "(false ? [1] : ['a'])[0] + 'b'",
        "ab",
        f"{EXPR} checker/checker.go: conditionalNode (unequal element kinds: untyped array)",
    ),
]

# 2. Raw strings: a doubled backtick is a literal backtick ------------------------------
RAW_STRINGS = [
    Ok("`escaped backticks`", "escaped backticks", f"{EXPR} parser/lexer/lexer_test.go: TestLexer"),
    Ok("``", "", f"{EXPR} parser/lexer/lexer_test.go: TestLexer (escaped backticks)"),
    Ok("`a``b`", "a`b", f"{EXPR} parser/lexer/lexer_test.go: TestLexer (escaped backticks)"),
    Ok("````", "`", f"{EXPR} parser/lexer/lexer_test.go: TestLexer (escaped backticks)"),
    Ok("`a```", "a`", f"{EXPR} parser/lexer/lexer_test.go: TestLexer (escaped backticks)"),
    Ok("```b`", "`b", f"{EXPR} parser/lexer/lexer_test.go: TestLexer (escaped backticks)"),
    Ok("```a````b```", "`a``b`", f"{EXPR} parser/lexer/lexer_test.go: TestLexer"),
    Ok("````````", "```", f"{EXPR} parser/lexer/lexer_test.go: TestLexer (escaped backticks)"),
    Ok("```a`````", "`a``", f"{EXPR} parser/lexer/lexer_test.go: TestLexer (escaped backticks)"),
    Ok("`````b```", "``b`", f"{EXPR} parser/lexer/lexer_test.go: TestLexer (escaped backticks)"),
    Ok("`a``b` + 'c'", "a`bc", f"{EXPR} parser/lexer/lexer.go: scanRawString"),
    Err(
        "id `hello``",
        "literal not terminated (1:12)",
        "compile",
        f"{EXPR} parser/lexer/lexer_test.go: TestLexer_error",
    ),
    Err(
        "id ```hello",
        "literal not terminated (1:12)",
        "compile",
        f"{EXPR} parser/lexer/lexer_test.go: TestLexer_error",
    ),
    Err(
        "id `hello`` world",
        "literal not terminated (1:18)",
        "compile",
        f"{EXPR} parser/lexer/lexer_test.go: TestLexer_error",
    ),
]

# 3. Nesting: what upstream's tests accept runs; hostile depth is a clean error ----------
NESTING = [
    Ok(
        _nested_sum(100),
        1 + sum(range(1, 101)),
        f"{EXPR} vm/vm_test.go: TestVM_Limits 'nested arithmetic allowed with max nodes...'",
        env={"a": 1},
    ),
    Ok(
        f"len(toJSON({_nested_map(100)})) > 0",
        True,
        f"{EXPR} vm/vm_test.go: TestVM_Limits createNestedMapExpr(100) (default budget)",
    ),
    Ok(
        "a" + " + a" * 1000,
        1001,
        f"{EXPR} parser/parser_test.go: TestNodeBudgetDisabled (1,000-term sum)",
        env={"a": 1},
    ),
    Ok(
        "1 + (2 + (3 + (4 + (5 + (6 + (7 + 8))))))",
        36,
        f"{EXPR} parser/parser_test.go: TestNodeBudget 'deeply nested expression'",
    ),
    Ok("1; " * 100, 1, f"{EXPR} expr_test.go: TestMaxNodes (100 statements)"),
    Err(
        "1; " * 10_001,
        "exceeds maximum allowed nodes",
        "compile",
        f"{EXPR} expr_test.go: TestMaxNodes (default budget, conf.DefaultMaxNodes)",
    ),
    Err(
        "(" * 5000 + "1" + ")" * 5000,
        "nesting exceeds",
        "compile",
        "agent: depth bound (parser.MAX_DEPTH) keeps hostile input a clean error",
    ),
    Err(
        "-" * 5000 + "1",
        "nesting exceeds",
        "compile",
        "agent: depth bound (parser.MAX_DEPTH) keeps hostile input a clean error",
    ),
]

# 4. Sprig -------------------------------------------------------------------------------
SPRIG_CASES = [
    Ok("sprig.seq(0, 1, 3)", "0 1 2 3", f"{SPRIG} numeric_test.go: TestSeq", argo=True),
    Ok("sprig.seq(0, 3, 10)", "0 3 6 9", f"{SPRIG} numeric_test.go: TestSeq", argo=True),
    Ok("sprig.seq(3, 3, 2)", "", f"{SPRIG} numeric_test.go: TestSeq", argo=True),
    Ok("sprig.seq(3, -3, 2)", "3", f"{SPRIG} numeric_test.go: TestSeq", argo=True),
    Ok("sprig.seq()", "", f"{SPRIG} numeric_test.go: TestSeq", argo=True),
    Ok("sprig.seq(0, 4)", "0 1 2 3 4", f"{SPRIG} numeric_test.go: TestSeq", argo=True),
    Ok("sprig.seq(5)", "1 2 3 4 5", f"{SPRIG} numeric_test.go: TestSeq", argo=True),
    Ok("sprig.seq(-5)", "1 0 -1 -2 -3 -4 -5", f"{SPRIG} numeric_test.go: TestSeq", argo=True),
    Ok("sprig.seq(0)", "1 0", f"{SPRIG} numeric_test.go: TestSeq", argo=True),
    Ok("sprig.seq(0, 1, 2, 3)", "", f"{SPRIG} numeric_test.go: TestSeq", argo=True),
    Ok("sprig.seq(0, -4)", "0 -1 -2 -3 -4", f"{SPRIG} numeric_test.go: TestSeq", argo=True),
    Ok(
        "sprig.seq(3, -1, 3)",
        "",
        f"{SPRIG} numeric.go: seq (direction from end < start)",
        argo=True,
    ),
    Ok("len(sprig.initial([1, 2, 3]))", 2, f"{SPRIG} list_test.go: TestInitial", argo=True),
    Ok("sprig.last(sprig.initial([1, 2, 3]))", 2, f"{SPRIG} list_test.go: TestInitial", argo=True),
    Ok("sprig.first(sprig.initial([1, 2, 3]))", 1, f"{SPRIG} list_test.go: TestInitial", argo=True),
    Ok("sprig.initial([])", [], f"{SPRIG} list_test.go: TestInitial (list | initial)", argo=True),
    Ok("len(sprig.initial([]))", 0, f"{SPRIG} list_test.go: TestInitial", argo=True),
    Ok(
        'sprig.initial(sprig.regexSplit("/", "foo/bar/baz", -1))',
        ["foo", "bar"],
        f"{SPRIG} list_test.go: TestInitial",
        argo=True,
    ),
    Ok("len(sprig.rest([1, 2, 3]))", 2, f"{SPRIG} list_test.go: TestRest", argo=True),
    Ok("sprig.last(sprig.rest([1, 2, 3]))", 3, f"{SPRIG} list_test.go: TestRest", argo=True),
    Ok("sprig.first(sprig.rest([1, 2, 3]))", 2, f"{SPRIG} list_test.go: TestRest", argo=True),
    Ok("len(sprig.rest([]))", 0, f"{SPRIG} list_test.go: TestRest (list | rest)", argo=True),
    Ok(
        'sprig.rest(sprig.regexSplit("/", "foo/bar/baz", -1))',
        ["bar", "baz"],
        f"{SPRIG} list_test.go: TestRest",
        argo=True,
    ),
    Ok(
        'let t = sprig.tuple(1, "a", "foo"); t[2] + string(t[0]) + t[1]',
        "foo1a",
        f"{SPRIG} list_test.go: TestTuple",
        argo=True,
    ),
    Ok(
        "len(sprig.append(sprig.tuple(1, 2, 3), 4))",
        4,
        f"{SPRIG} list_test.go: TestPush",
        argo=True,
    ),
    Ok(
        'sprig.wrap(5, "Hello World")',
        "Hello\nWorld",
        f"{SPRIG} strings_test.go: TestWrap",
        argo=True,
    ),
    Ok(
        'sprig.wrapWith(5, "\\t", "Hello World")',
        "Hello\tWorld",
        f"{SPRIG} strings_test.go: TestWrap (wrapWith)",
        argo=True,
    ),
    Ok(
        'sprig.wrap(20, "Here is one line of text that is going to be wrapped after 20 columns.")',
        "Here is one line of\ntext that is going\nto be wrapped after\n20 columns.",
        "goutils v1.1.1 wordutils_test.go: TestWrapNormalWord2",
        argo=True,
    ),
    Ok(
        'sprig.wrap(20, "Click here, http://commons.apache.org, to jump to the commons website")',
        "Click here,\nhttp://commons.apache.org,\nto jump to the\ncommons website",
        "goutils v1.1.1 wordutils_test.go: TestWrapNormalWord4",
        argo=True,
    ),
    Ok(
        'sprig.wrapWith(11, "\\n", "123456789_123456789_123456789_123456789_1234567890")',
        "123456789_1\n23456789_12\n3456789_123\n456789_1234\n567890",
        "goutils v1.1.1 wordutils_test.go: TestWrapLongWord (wrapWith wraps long words)",
        argo=True,
    ),
    Ok(
        'sprig.wrapWith(10, "<br\\\\>", "BobManuelBob Bob")',
        "BobManuelB<br\\>ob Bob",
        "goutils v1.1.1 wordutils_test.go: TestWrapCustomLongWordTrue",
        argo=True,
    ),
    Ok(
        'sprig.wrap(10, "BobManuelBob Bob")',
        "BobManuelBob\nBob",
        "goutils v1.1.1 wordutils_test.go: TestWrapCustomLongWordFalse (Wrap keeps long words)",
        argo=True,
    ),
    Ok(
        'sprig.snakecase("FirstName")',
        "first_name",
        f"{SPRIG} functions_test.go: TestSnakeCase",
        argo=True,
    ),
    Ok(
        'sprig.snakecase("HTTPServer")',
        "http_server",
        f"{SPRIG} functions_test.go: TestSnakeCase",
        argo=True,
    ),
    Ok(
        'sprig.snakecase("NoHTTPS")',
        "no_https",
        f"{SPRIG} functions_test.go: TestSnakeCase",
        argo=True,
    ),
    Ok(
        'sprig.snakecase("GO_PATH")',
        "go_path",
        f"{SPRIG} functions_test.go: TestSnakeCase",
        argo=True,
    ),
    Ok(
        'sprig.snakecase("GO PATH")',
        "go_path",
        f"{SPRIG} functions_test.go: TestSnakeCase",
        argo=True,
    ),
    Ok(
        'sprig.snakecase("GO-PATH")',
        "go_path",
        f"{SPRIG} functions_test.go: TestSnakeCase",
        argo=True,
    ),
    Ok(
        'sprig.snakecase("http2xx")',
        "http_2xx",
        "xstrings v1.5.0 convert.go: ToSnakeCase doc",
        argo=True,
    ),
    Ok(
        'sprig.snakecase("HTTP20xOK")',
        "http_20x_ok",
        "xstrings v1.5.0 convert.go: ToSnakeCase doc",
        argo=True,
    ),
    Ok(
        'sprig.snakecase("Duration2m3s")',
        "duration_2m3s",
        "xstrings v1.5.0 convert.go: ToSnakeCase doc",
        argo=True,
    ),
    Ok(
        'sprig.snakecase("Bld4Floor3rd")',
        "bld4_floor_3rd",
        "xstrings v1.5.0 convert.go: ToSnakeCase doc",
        argo=True,
    ),
    Ok(
        'sprig.camelcase("http_server")',
        "HttpServer",
        f"{SPRIG} functions_test.go: TestCamelCase",
        argo=True,
    ),
    Ok(
        'sprig.camelcase("_camel_case")',
        "_CamelCase",
        f"{SPRIG} functions_test.go: TestCamelCase",
        argo=True,
    ),
    Ok(
        'sprig.camelcase("no_https")',
        "NoHttps",
        f"{SPRIG} functions_test.go: TestCamelCase",
        argo=True,
    ),
    Ok(
        'sprig.camelcase("_complex__case_")',
        "_Complex_Case_",
        f"{SPRIG} functions_test.go: TestCamelCase",
        argo=True,
    ),
    Ok('sprig.camelcase("all")', "All", f"{SPRIG} functions_test.go: TestCamelCase", argo=True),
    Ok(
        'sprig.camelcase("GOLANG_IS_GREAT")',
        "GolangIsGreat",
        "xstrings v1.5.0 convert.go: ToPascalCase doc",
        argo=True,
    ),
    Ok(
        'sprig.camelcase("some words")',
        "SomeWords",
        "xstrings v1.5.0 convert.go: ToPascalCase doc",
        argo=True,
    ),
    Ok(
        'sprig.kebabcase("FirstName")',
        "first-name",
        f"{SPRIG} functions_test.go: TestKebabCase",
        argo=True,
    ),
    Ok(
        'sprig.kebabcase("HTTPServer")',
        "http-server",
        f"{SPRIG} functions_test.go: TestKebabCase",
        argo=True,
    ),
    Ok(
        'sprig.kebabcase("NoHTTPS")',
        "no-https",
        f"{SPRIG} functions_test.go: TestKebabCase",
        argo=True,
    ),
    Ok(
        'sprig.kebabcase("GO_PATH")',
        "go-path",
        f"{SPRIG} functions_test.go: TestKebabCase",
        argo=True,
    ),
    Ok(
        'sprig.kebabcase("GO PATH")',
        "go-path",
        f"{SPRIG} functions_test.go: TestKebabCase",
        argo=True,
    ),
    Ok(
        'sprig.kebabcase("GO-PATH")',
        "go-path",
        f"{SPRIG} functions_test.go: TestKebabCase",
        argo=True,
    ),
    Ok(
        'sprig.swapcase("Hello World hi")',
        "hELLO wORLD HI",
        "goutils v1.1.1 wordutils.go: SwapCase",
        argo=True,
    ),
    Ok(
        'sprig.typeIsLike("string", "foo")',
        True,
        f"{SPRIG} reflect_test.go: TestTypeIsLike",
        argo=True,
    ),
    Ok('sprig.typeIsLike("int", "foo")', False, f"{SPRIG} reflect.go: typeIsLike", argo=True),
    Err(
        'sprig.wrapWith(1, repeat("x", 100000), repeat("a ", 200000))',
        "memory budget exceeded",
        "run",
        "agent: produced strings stay within the 16 MiB cap",
        argo=True,
    ),
]

# 5. jsonpath(): evilmonkeyinc/jsonpath v0.8.1 ------------------------------------------
STORE = (
    '{"store": {"book": [{"category": "reference", "price": 8.95}, {"category": "fiction",'
    ' "price": 12.99}], "bicycle": {"color": "red", "price": 19.95}}, "expensive": 10}'
)


def _jp(path: str, data: str, want: Any, src: str) -> Ok:
    return Ok("jsonpath(d, p)", want, f"{JP} {src} [{path}]", env={"d": data, "p": path}, argo=True)


def _jp_err(path: str, data: str, message: str, src: str) -> Err:
    return Err(
        "jsonpath(d, p)",
        message,
        "run",
        f"{JP} {src} [{path}]",
        env={"d": data, "p": path},
        argo=True,
    )


JSONPATH = [
    _jp(
        "$.['key']", '{"key": "value"}', "value", "test/bracket_test.go: Test_Bracket (dot bracket)"
    ),
    _jp(
        '$.["key"]', '{"key": "value"}', "value", "test/bracket_test.go: Test_Bracket (dot bracket)"
    ),
    _jp("$['key']", '{"key": "value"}', "value", "test/bracket_test.go: Test_Bracket"),
    _jp_err(
        "$.[key]",
        '{"key": "value"}',
        "invalid JSONPath selector '$.[key]' invalid token."
        " '[key]' does not match any token format",
        "test/bracket_test.go: Test_Bracket",
    ),
    _jp_err(
        "key",
        '{"key": "value"}',
        "unexpected token 'k' at index 0",
        "token/token.go: Tokenize (first rune must be $ or @)",
    ),
    _jp_err(
        "$(key,more)",
        '{"key": 1, "some": 2, "more": 3}',
        "invalid JSONPath selector '$(key,more)' unexpected token '(' at index 1",
        "test/misc_test.go: Test_Misc #2",
    ),
    _jp("$.length", "[4, 5, 6]", 3, "test/dot_test.go: Test_Dot ($.length)"),
    _jp(
        "$.length",
        '{"length": 7, "a": 1}',
        7.0,
        "token/length.go: lengthToken.Apply (map's own member)",
    ),
    _jp("$.length", '{"a": 1, "b": 2}', 2, "token/length.go: lengthToken.Apply (map size)"),
    _jp_err(
        "$[0:2]",
        '{"a": 1, "b": 2}',
        "range: invalid token target. expected [array slice] got [map]",
        "test/array_test.go: Test_Array (slice on object)",
    ),
    _jp_err(
        "$[::0]",
        "[1, 2, 3]",
        "range: invalid token out of range",
        "test/array_test.go: Test_Array (zero step)",
    ),
    _jp(
        "$[1:3]",
        '["first", "second", "third", "forth"]',
        ["second", "third"],
        "test/array_test.go: Test_Array",
    ),
    _jp(
        "$[::-1]", "[1, 2, 3]", [3.0, 2.0, 1.0], "token/range.go: rangeToken.Apply (negative step)"
    ),
    _jp("$[-1:]", "[1, 2, 3]", [3.0], "test/array_test.go: Test_Array (negative start)"),
    _jp("$[0,1]", '["a", "b", "c"]', ["a", "b"], "test/union_test.go: Test_Union"),
    _jp(
        "$[0,5]",
        '["a", "b"]',
        ["a"],
        "token/union.go: getUnionByIndex (out-of-range members skipped)",
    ),
    _jp(
        "$['a','c']",
        '{"a": 1, "b": 2}',
        [1.0],
        "token/union.go: getUnionByKey (missing keys skipped)",
    ),
    _jp(
        "$[?(@.d in [2, 3])]",
        '[{"d": 1}, {"d": 2}, {"d": 1}, {"d": 3}, {"d": 4}]',
        [{"d": 2.0}, {"d": 3.0}],
        "test/filter_test.go: Test_Filter (in)",
    ),
    _jp(
        "$[?(2 in @.d)]",
        '[{"d": [1, 2, 3]}, {"d": [2]}, {"d": [1]}, {"d": [3, 4]}, {"d": [4, 2]}]',
        [{"d": [1.0, 2.0, 3.0]}, {"d": [2.0]}, {"d": [4.0, 2.0]}],
        "test/filter_test.go: Test_Filter (in a member)",
    ),
    _jp(
        "$[?(@.key==-0.123e2)]",
        '[{"key": -12.3}, {"key": -0.123}, {"key": -12}, {"key": 12.3}, {"key": 2},'
        ' {"key": "-0.123e2"}]',
        [{"key": -12.3}],
        "test/filter_test.go: Test_Filter (exponent literal)",
    ),
    _jp(
        "$[?(@.key+50==100)]",
        '[{"key": 60}, {"key": 50}, {"key": 10}, {"key": -50}, {"key+50": 100}]',
        [{"key": 50.0}],
        "test/filter_test.go: Test_Filter",
    ),
    _jp(
        "$[?(@.key)]",
        '{"key": 42, "another": {"key": 1}}',
        [{"key": 1.0}],
        "test/filter_test.go: Test_Filter #0",
    ),
    # Order: map members in sorted key order, recursive descent pre-order (sortMapKeys).
    _jp(
        "$.*",
        '{"b": 2, "a": 1, "c": 3}',
        [1.0, 2.0, 3.0],
        "token/wildcard.go: wildcardToken.Apply (sortMapKeys)",
    ),
    _jp(
        "$..",
        '[{"a": {"b": "c"}}, [0, 1]]',
        [
            [{"a": {"b": "c"}}, [0.0, 1.0]],
            {"a": {"b": "c"}},
            {"b": "c"},
            "c",
            [0.0, 1.0],
            0.0,
            1.0,
        ],
        "test/misc_test.go: Test_Misc #3 (in Go's order)",
    ),
    _jp(
        "$..name",
        '[{"name": "one", "nested": {"name": "four"}}, {"name": "two"}, {"name": "three"}]',
        ["one", "four", "two", "three"],
        "token/recursive_test.go: Test_RecursiveToken_Apply (values; Go's pre-order)",
    ),
    _jp(
        "$..*[?(@.id>2)]",
        '[{"complext": {"one": [{"name": "first", "id": 1}, {"name": "next", "id": 2},'
        ' {"name": "another", "id": 3}, {"name": "more", "id": 4}], "more": {"name":'
        ' "next to last", "id": 5}}}, {"name": "last", "id": 6}]',
        [
            [],
            [],
            [{"id": 5.0, "name": "next to last"}],
            [],
            [{"id": 3.0, "name": "another"}, {"id": 4.0, "name": "more"}],
            [],
            [],
            [],
            [],
        ],
        # The test compares without order; this is token/recursive.go's pre-order.
        "test/filter_test.go: Test_Filter #1 (order: recursiveApply, sortMapKeys)",
    ),
    _jp("$.store.book[1].price", STORE, 12.99, "test/dot_test.go: Test_Dot"),
    _jp(
        "$.store..price",
        STORE,
        [19.95, 8.95, 12.99],
        "test/dot_test.go: Test_Dot ($.store..price, Go's order)",
    ),
    _jp(
        "$.store.book[?(@.price < 10)].category",
        STORE,
        ["reference"],
        "test/filter_test.go: Test_Filter",
    ),
    _jp_err(
        "$.missing",
        STORE,
        "key: invalid token key 'missing' not found",
        "token/key.go: keyToken.Apply",
    ),
    _jp_err(
        "$.store.book[5]",
        STORE,
        "index: invalid token out of range",
        "token/index.go: indexToken.Apply",
    ),
    _jp_err(
        "$.data.sum()",
        '{"data": [1,2,3,4]}',
        "key: invalid token target. expected [map] got [slice]",
        "test/misc_test.go: Test_Misc #1",
    ),
    # The library finds operators by text search, "in" before "@": @.kind reads as @.k in d.
    _jp(
        "$[?(@.kind == 'x')]",
        '[{"kind": "x"}]',
        [],
        "script/standard/engine.go: buildOperators (defaultTokens order)",
    ),
    _jp(
        "$[?(@['kind'] == 'x')]",
        '[{"kind": "x"}]',
        [{"kind": "x"}],
        "script/standard/helper.go: findUnquotedOperators (brackets)",
    ),
]

# 6. fromJSON of a number beyond float64 --------------------------------------------------
FROM_JSON = [
    Err(
        'fromJSON("5e2482")',
        "json: cannot unmarshal number 5e2482 into Go value of type float64",
        "run",
        f"{EXPR} builtin/builtin_test.go: TestBuiltin_errors",
    ),
    Err(
        'fromJSON("[1, -5e2482]")',
        "json: cannot unmarshal number -5e2482 into Go value of type float64",
        "run",
        "Go encoding/json decode.go: convertNumber (UnmarshalTypeError)",
    ),
    Err(
        'fromJSON("[5e2482,")',
        "unexpected end of JSON input",
        "run",
        "Go encoding/json: Unmarshal checks syntax (checkValid) before decoding",
    ),
    Err(
        "jsonpath('{\"a\": 1e999}', '$.a')",
        "json: cannot unmarshal number 1e999 into Go value of type float64",
        "run",
        "argo util/expr/env/env.go: jsonPath (json.Unmarshal first)",
        argo=True,
    ),
    Ok(
        'fromJSON("1.7976931348623157e308")',
        1.7976931348623157e308,
        "Go encoding/json: largest float64",
    ),
]

ALL = CONDITIONAL + RAW_STRINGS + NESTING + SPRIG_CASES + JSONPATH + FROM_JSON
OKS = [c for c in ALL if isinstance(c, Ok)]
ERRS = [c for c in ALL if isinstance(c, Err)]


@pytest.mark.parametrize("case", OKS, ids=case_id)
def test_value(case: Ok) -> None:
    got = evaluate(case.expr, case.env, argo=case.argo)
    assert same(got, case.want), f"{case.expr!r} -> {got!r}, want {case.want!r} [{case.src}]"


@pytest.mark.parametrize("case", ERRS, ids=case_id)
def test_error(case: Err) -> None:
    with pytest.raises(ExprError) as info:
        evaluate(case.expr, case.env, argo=case.argo)
    error = info.value
    assert case.message in str(error), f"{case.expr!r}: {error} [{case.src}]"
    assert error.phase == case.phase, f"{case.expr!r}: phase {error.phase} [{case.src}]"


def test_every_case_cites_a_source() -> None:
    assert all(case.src.strip() for case in ALL)


def test_conditional_of_mixed_arrays_compiles() -> None:
    # checker_test.go TestCheck only type-checks this expression: it must compile.
    compile("(true ? [1] : [[1]])[0][0] == 1", argo=False).check({})


def test_recursion_limit_covers_the_depth_bound() -> None:
    assert MAX_DEPTH >= 1_001  # TestNodeBudgetDisabled's 1,000-term sum is 1,001 levels deep
    assert sys.getrecursionlimit() >= RECURSION_FLOOR


def test_depth_bound_holds_with_a_deep_caller() -> None:
    # Every shape at the bound still compiles and runs when called from 500 frames deep.
    shapes = [
        "(" * (MAX_DEPTH - 2) + "1" + ")" * (MAX_DEPTH - 2),
        "abs(" * (MAX_DEPTH - 2) + "1" + ")" * (MAX_DEPTH - 2),
        "map([1], " * (MAX_DEPTH // 2 - 2) + "1" + ")" * (MAX_DEPTH // 2 - 2),
        "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2),
    ]

    def deep(level: int, source: str) -> Any:
        return evaluate(source, {}, argo=False) if level == 0 else deep(level - 1, source)

    for source in shapes:
        deep(500, source)
