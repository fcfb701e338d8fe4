"""Argo's layer over expr: environment, functions, sprig, templates and EvalBool's texts.

Sources cited in ``src``:
  VARS   = Argo docs/variables.md
  ENVT   = Argo util/expr/env/env_test.go
  TMPL   = Argo util/template/template_test.go: Test_Template_Replace
  EXPAND = Argo util/expand/expand_test.go: TestExpand
  EVAL   = Argo util/expr/argoexpr/eval.go (EvalBool's error texts)
  AGENT  = Argo workflow/executor/agent.go (successCondition)
  SPRIG  = Sprig's function docs, which Argo docs/variables.md links for ``sprig.*``
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.expr import (
    ExprError,
    Limits,
    compile,
    eval_bool,
    evaluate,
    render,
    success_condition_false_message,
    success_condition_message,
)
from agent.expr.argo import expand
from tests.test_expr_helpers import Err, Ok, case_id, same

VARS = "argo docs/variables.md"
ENVT = "argo util/expr/env/env_test.go"
TMPL = "argo util/template/template_test.go: Test_Template_Replace"
EXPAND = "argo util/expand/expand_test.go: TestExpand"
EVAL = "argo util/expr/argoexpr/eval.go"
AGENT = "argo workflow/executor/agent.go (executeHTTPTemplate)"
SPRIG = "argo docs/variables.md -> sprig docs"

PARAMS: dict[str, Any] = {
    "inputs.parameters.message": "hello world",
    "inputs.parameters.count": "42",
    "inputs.parameters.ratio": "3.14",
    "inputs.parameters.name": "test-user",
    "inputs.parameters.empty": "",
    "inputs.parameters.status": "ready",
    "inputs.parameters.force": "true",
    "inputs.parameters.text": "foo bar baz",
    "inputs.parameters.items": ["a", "b", "c"],
    "inputs.parameters.numbers": [1, 2, 3, 4, 5],
    "inputs.parameters.a": "15",
    "inputs.parameters.b": "25",
    "inputs.parameters.my-int-param": "7",
    "inputs.parameters.my-float-param": "2.5",
    "inputs.parameters.my-string-param": "  padded  ",
    "inputs.parameters.json": '{"some": {"path": "found"}}',
    "workflow.creationTimestamp": "2023-01-01T15:30:45Z",
}
STORE = json.dumps(
    {
        "store": {
            "book": [
                {"category": "reference", "author": "Nigel Rees", "price": 8.95},
                {"category": "fiction", "author": "Evelyn Waugh", "price": 12.99},
            ],
            "bicycle": {"color": "red", "price": 19.95},
        },
        "expensive": 10,
    }
)
EMPLOYEES = (
    '{"employees": [{"name": "Baris", "age":43, "friends": ["Mo", "Jai"]},'
    ' {"name": "Mo", "age": 42, "friends": ["Baris", "Jai"]},'
    ' {"name": "Jai", "age" :44, "friends": ["Baris", "Mo"]}]}'
)
RETRY = {
    "retries": "1",
    "lastRetry.exitCode": "2",
    "lastRetry.status": "Failed",
    "lastRetry.duration": "1.5",
    "lastRetry.message": "boom",
}

ARGO_ENV = [
    Ok("inputs.parameters.message", "hello world", f"{VARS}#all-templates", PARAMS, argo=True),
    Ok(
        "inputs.parameters['my-int-param']",
        "7",
        f"{VARS}#expression (hyphenated names)",
        PARAMS,
        argo=True,
    ),
    Ok(
        "workflow.name",
        "test-workflow",
        f"{ENVT}: TestGetFuncMap",
        {"workflow": {"name": "test-workflow"}},
        argo=True,
    ),
    Ok("value", 123, f"{ENVT}: TestGetFuncMap", {"value": 123}, argo=True),
    Ok("a", {"b": 1, "c": {"d": 2}}, EXPAND, {"a.b": 1, "a.c.d": 2, "a": 3, "ab": 4}, argo=True),
    Ok("ab", 4, EXPAND, {"a.b": 1, "a": 3, "ab": 4, "abb": 5}, argo=True),
    Ok("[1, 2]", [1, 2], f"{VARS}#examples (plain list)", argo=True),
    Ok("filter([1, 2], { # > 1})", [2], f"{VARS}#examples (filter)", argo=True),
    Ok("map([1, 2], { # * 2 })", [2, 4], f"{VARS}#examples (map)", argo=True),
    Ok(
        "asInt(inputs.parameters['my-int-param'])", 7, f"{VARS}#examples (asInt)", PARAMS, argo=True
    ),
    Ok(
        "asFloat(inputs.parameters['my-float-param'])",
        2.5,
        f"{VARS}#examples (asFloat)",
        PARAMS,
        argo=True,
    ),
    Ok("string(1)", "1", f"{VARS}#examples (string)", argo=True),
    Ok("toJson([1, 2])", "[1,2]", f"{VARS}#examples (toJson)", argo=True),
    Ok(
        "jsonpath(inputs.parameters.json, '$.some.path')",
        "found",
        f"{VARS}#examples (jsonpath)",
        PARAMS,
        argo=True,
    ),
    Ok(
        "sprig.trim(inputs.parameters['my-string-param'])",
        "padded",
        f"{VARS}#examples (sprig.trim)",
        PARAMS,
        argo=True,
    ),
    Ok(
        "sprig.int('not a number')",
        0,
        f"{VARS} (Sprig error handling: int of invalid value is 0)",
        argo=True,
    ),
    Ok(
        "1 + 2",
        3,
        "argo util/template/expression_evaluate_test.go: ResolvedPreservesType",
        argo=True,
    ),
    Ok(
        "sprig.upper(workflow.parameters.message)",
        "HELLO",
        "argo util/template/expression_evaluate_test.go: ResolvedUsesArgoEnvironment",
        {"workflow": {"parameters": {"message": "hello"}}},
        argo=True,
    ),
    Ok("asInt(lastRetry.exitCode) >= 2", True, f"{VARS}#retrystrategy", RETRY, argo=True),
    Ok("lastRetry.exitCode != '2'", False, f"{VARS}#retrystrategy", RETRY, argo=True),
    Ok("asInt(retries) + 1", 2, f"{VARS}#retrystrategy (strings: cast them)", RETRY, argo=True),
    Ok(
        "asFloat(lastRetry.duration) > 1",
        True,
        f"{VARS}#retrystrategy (duration in seconds)",
        RETRY,
        argo=True,
    ),
    Ok(
        "lastRetry.status == 'Failed' && lastRetry.message == 'boom'",
        True,
        f"{VARS}#retrystrategy",
        RETRY,
        argo=True,
    ),
    Err(
        "lastRetry.exitCode > 1",
        "invalid operation: string > int",
        "run",
        f"{VARS}#retrystrategy (they are strings)",
        RETRY,
        argo=True,
    ),
    Err(
        "retries + 1",
        "invalid operation: + (mismatched types string and int)",
        "compile",
        f"{VARS}#retrystrategy",
        RETRY,
        argo=True,
    ),
    Err(
        "inputs.parameters.my-int-param",
        "invalid operation: -",
        "compile",
        f"{VARS}#expression (hyphens cause a parsing error)",
        PARAMS,
        argo=True,
    ),
    Err(
        "asInt('1.5')",
        "invalid operation: int(1.5)",
        "run",
        f"{VARS}#examples (asInt is strict)",
        argo=True,
    ),
    Err(
        "asFloat('x')",
        "invalid operation: float(x)",
        "run",
        f"{VARS}#examples (asFloat is strict)",
        argo=True,
    ),
    Err(
        "asInt()",
        "not enough arguments to call asInt",
        "compile",
        f"{ENVT}: TestGetFuncMap (asInt is a function value)",
        argo=True,
    ),
    Err(
        "asInt(1, 2)",
        "too many arguments to call asInt",
        "compile",
        f"{ENVT}: TestGetFuncMap (asInt is a function value)",
        argo=True,
    ),
    Err(
        "jsonpath(1, '$')",
        "cannot use int as argument (type string) to call jsonpath ",
        "compile",
        f"{ENVT}: TestJsonPath",
        argo=True,
    ),
    Err(
        "asInt('1')",
        "unknown name asInt",
        "compile",
        f"{AGENT} (successCondition has no Argo functions)",
    ),
]

MIGRATION = [  # env_test.go: TestExprMigrationAlternatives / TestAllDocumentedMigrationExamples
    Ok(
        "string(inputs.parameters.count)",
        "42",
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        "lower(inputs.parameters.message)",
        "hello world",
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        "upper(inputs.parameters.message)",
        "HELLO WORLD",
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        "repeat(inputs.parameters.message, 2)",
        "hello worldhello world",
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        'split(inputs.parameters.text, " ")',
        ["foo", "bar", "baz"],
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        'join(inputs.parameters.items, "-")',
        "a-b-c",
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        'hasPrefix(inputs.parameters.message, "hello")',
        True,
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        'hasSuffix(inputs.parameters.message, "world")',
        True,
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        'replace(inputs.parameters.text, "bar", "BAR")',
        "foo BAR baz",
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok('trim("__hello__", "_")', "hello", f"{ENVT}: TestExprMigrationAlternatives", argo=True),
    Ok(
        'indexOf(inputs.parameters.message, "world") >= 0',
        True,
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        'indexOf(inputs.parameters.message, "xyz") == -1',
        True,
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        "int(inputs.parameters.a) + int(inputs.parameters.b)",
        40,
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        "float(inputs.parameters.ratio)",
        3.14,
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        "max(int(inputs.parameters.a), int(inputs.parameters.b))",
        25,
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        "min(int(inputs.parameters.a), int(inputs.parameters.b))",
        15,
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok("abs(-5)", 5, f"{ENVT}: TestExprMigrationAlternatives", argo=True),
    Ok("ceil(3.2)", 4.0, f"{ENVT}: TestExprMigrationAlternatives", argo=True),
    Ok("floor(3.8)", 3.0, f"{ENVT}: TestExprMigrationAlternatives", argo=True),
    Ok("round(3.6)", 4.0, f"{ENVT}: TestExprMigrationAlternatives", argo=True),
    Ok(
        "inputs.parameters.items[0]",
        "a",
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        "inputs.parameters.numbers[1:3]",
        [2, 3],
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        "len(inputs.parameters.items)",
        3,
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        "reverse(inputs.parameters.items)",
        ["c", "b", "a"],
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        'inputs.parameters.status == "ready" && int(inputs.parameters.count) > 0',
        True,
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        'inputs.parameters.empty == "" || inputs.parameters.force == "true"',
        True,
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        'inputs.parameters.empty == "" ? "default" : inputs.parameters.empty',
        "default",
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok('type("hello")', "string", f"{ENVT}: TestExprMigrationAlternatives", argo=True),
    Ok(
        'fromJSON("{\\"name\\": \\"John\\"}")',
        {"name": "John"},
        f"{ENVT}: TestExprMigrationAlternatives",
        argo=True,
    ),
    Ok(
        "get(inputs.parameters.items, 1)",
        "b",
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        'get(inputs.parameters, "count")',
        "42",
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        "workflow.creationTimestamp",
        "2023-01-01T15:30:45Z",
        f"{ENVT}: TestExprMigrationAlternatives",
        PARAMS,
        argo=True,
    ),
    Ok(
        'string(now().Unix()) matches "^[0-9]+$"',
        True,
        f"{ENVT}: TestDeprecatedSprigFunctionExamples",
        argo=True,
    ),
]

JSON_FUNCTIONS = [
    Ok("toJson({test: 1})", '{"test":1}', f"{TMPL} ExprObjectAsJson", argo=True),
    Ok("toJson('test')", '"test"', f"{TMPL} ExprStringAsJson", argo=True),
    Ok(
        "toJson([1, '2', {an: 'object'}])",
        '[1,"2",{"an":"object"}]',
        f"{TMPL} ExprArrayAsJson",
        argo=True,
    ),
    Ok(
        'toJson({"key": "value", "number": 123})',
        '{"key":"value","number":123}',
        f"{ENVT}: TestToJson",
        argo=True,
    ),
    Ok('toJson([1, "two", 3.0])', '[1,"two",3]', f"{ENVT}: TestToJson", argo=True),
    Ok('toJson("hello")', '"hello"', f"{ENVT}: TestToJson", argo=True),
    Ok(
        "toJson({b: 1, a: '<&>'})",
        '{"a":"\\u003c\\u0026\\u003e","b":1}',
        f"{ENVT}: TestToJson (Go json.Marshal)",
        argo=True,
    ),
    Ok(
        "jsonpath(doc, '$.store.bicycle.color')",
        "red",
        f"{ENVT}: TestJsonPath",
        {"doc": STORE},
        argo=True,
    ),
    Ok(
        "jsonpath(doc, '$.store.book[1].price')",
        12.99,
        f"{ENVT}: TestJsonPath",
        {"doc": STORE},
        argo=True,
    ),
    Ok(
        "jsonpath(doc, '$.store.book[0]')",
        {"category": "reference", "author": "Nigel Rees", "price": 8.95},
        f"{ENVT}: TestJsonPath",
        {"doc": STORE},
        argo=True,
    ),
    Ok(
        "jsonpath(doc, '$.employees[*].name')",
        ["Baris", "Mo", "Jai"],
        f"{TMPL} ExprNumArrayOutput",
        {"doc": EMPLOYEES},
        argo=True,
    ),
    Ok(
        "jsonpath(doc, '$.employees[0].friends')",
        ["Mo", "Jai"],
        f"{TMPL} ExprStringArrayOutput",
        {"doc": EMPLOYEES},
        argo=True,
    ),
    Ok(
        "jsonpath(doc, \"$['expensive']\")",
        10.0,
        f"{ENVT}: TestJsonPath (bracket notation)",
        {"doc": STORE},
        argo=True,
    ),
    Ok(
        "jsonpath(doc, '$.store.book[?(@.price < 10)].author')",
        ["Nigel Rees"],
        f"{ENVT}: TestJsonPath (filters give lists)",
        {"doc": STORE},
        argo=True,
    ),
    Err(
        "jsonpath(doc, '$.invalid.path')",
        "key 'invalid' not found",
        "run",
        f"{ENVT}: TestJsonPath (missing key panics)",
        {"doc": STORE},
        argo=True,
    ),
    Err(
        "jsonpath('{\"key\": invalid}', '$.key')",
        "invalid character",
        "run",
        f"{ENVT}: TestJsonPath (invalid JSON panics)",
        argo=True,
    ),
    Err(
        "jsonpath(doc, '$.store.book[5]')",
        "out of range",
        "run",
        f"{ENVT}: TestJsonPath (missing index)",
        {"doc": STORE},
        argo=True,
    ),
]


def _s(expr: str, want: Any, anchor: str) -> Ok:
    return Ok(expr, want, f"{SPRIG} {anchor}", argo=True)


SPRIG_CASES = [
    _s('sprig.trunc(5, "hello world")', "hello", "strings.md#trunc"),
    _s('sprig.trunc(-5, "hello world")', "world", "strings.md#trunc"),
    _s('sprig.upper("hello")', "HELLO", "strings.md#upper"),
    _s('sprig.lower("HELLO")', "hello", "strings.md#lower"),
    _s('sprig.title("hello world")', "Hello World", "strings.md#title"),
    _s('sprig.untitle("Hello World")', "hello world", "strings.md#untitle"),
    _s('sprig.substr(0, 5, "hello world")', "hello", "strings.md#substr"),
    _s('sprig.repeat(3, "hello")', "hellohellohello", "strings.md#repeat"),
    _s('sprig.nospace("hello w o r l d")', "helloworld", "strings.md#nospace"),
    _s('sprig.abbrev(5, "hello world")', "he...", "strings.md#abbrev"),
    _s('sprig.abbrevboth(5, 10, "1234 5678 9123")', "...5678...", "strings.md#abbrevboth"),
    _s('sprig.initials("First Try")', "FT", "strings.md#initials"),
    _s('sprig.contains("cat", "catch")', True, "strings.md#contains"),
    _s('sprig.hasPrefix("cat", "catch")', True, "strings.md#hasprefix-and-hassuffix"),
    _s('sprig.hasSuffix("ch", "catch")', True, "strings.md#hasprefix-and-hassuffix"),
    _s('sprig.quote("hello", 1)', '"hello" "1"', "strings.md#quote-and-squote"),
    _s('sprig.squote("hello")', "'hello'", "strings.md#quote-and-squote"),
    _s('sprig.cat("hello", "beautiful", "world")', "hello beautiful world", "strings.md#cat"),
    _s('sprig.indent(4, "a\\nb")', "    a\n    b", "strings.md#indent"),
    _s('sprig.nindent(2, "a")', "\n  a", "strings.md#nindent"),
    _s('sprig.replace(" ", "-", "I Am Henry VIII")', "I-Am-Henry-VIII", "strings.md#replace"),
    _s('sprig.plural("one anchovy", "many anchovies", 2)', "many anchovies", "strings.md#plural"),
    _s('sprig.trimAll("$", "$5.00")', "5.00", "strings.md#trimall"),
    _s('sprig.trimSuffix("-", "hello-")', "hello", "strings.md#trimsuffix"),
    _s('sprig.trimPrefix("-", "-hello")', "hello", "strings.md#trimprefix"),
    _s('sprig.atoi("12")', 12, "conversion.md (atoi)"),
    _s('sprig.atoi("x")', 0, "conversion.md (atoi ignores errors)"),
    _s('sprig.int64("0x10")', 16, "conversion.md (int64, base prefixes)"),
    _s('sprig.int("10.00")', 10, "conversion.md (int)"),
    _s('sprig.float64("1.5")', 1.5, "conversion.md (float64)"),
    _s('sprig.float64("x")', 0.0, "conversion.md (float64 of invalid is 0)"),
    _s("sprig.toString(1)", "1", "conversion.md (toString)"),
    _s("sprig.toStrings([1, 2])", ["1", "2"], "conversion.md (toStrings)"),
    _s("sprig.add(1, 2, 3)", 6, "math.md#add"),
    _s("sprig.add1(1)", 2, "math.md#add1"),
    _s("sprig.sub(3, 2)", 1, "math.md#sub"),
    _s("sprig.div(7, 2)", 3, "math.md#div"),
    _s("sprig.mod(7, 2)", 1, "math.md#mod"),
    _s("sprig.mul(2, 3, 4)", 24, "math.md#mul"),
    _s("sprig.max(1, 2, 3)", 3, "math.md#max"),
    _s("sprig.min(1, 2, 3)", 1, "math.md#min"),
    _s('sprig.add("1", 2)', 3, "math.md (lenient conversions)"),
    _s("sprig.addf(1.5, 2, 2)", 5.5, "mathf.md#addf"),
    _s("sprig.subf(1.5, 0.5)", 1.0, "mathf.md#subf"),
    _s("sprig.mulf(1.5, 2)", 3.0, "mathf.md#mulf"),
    _s("sprig.divf(1, 4)", 0.25, "mathf.md#divf"),
    _s("sprig.addf(0.1, 0.2)", 0.3, "mathf.md (decimal arithmetic)"),
    _s("sprig.floor(123.9999)", 123.0, "math.md#floor"),
    _s("sprig.ceil(123.001)", 124.0, "math.md#ceil"),
    _s("sprig.round(123.555555, 3)", 123.556, "math.md#round"),
    _s("sprig.until(5)", [0, 1, 2, 3, 4], "integer_slice.md#until"),
    _s("sprig.untilStep(3, 6, 2)", [3, 5], "integer_slice.md#untilstep"),
    _s("sprig.seq(5)", "1 2 3 4 5", "integer_slice.md#seq"),
    _s("sprig.seq(2, -2)", "2 1 0 -1 -2", "integer_slice.md#seq"),
    _s("sprig.list(1, 2, 3)", [1, 2, 3], "lists.md#list"),
    _s("sprig.first([1, 2, 3])", 1, "lists.md#first-mustfirst"),
    _s("sprig.rest([1, 2, 3])", [2, 3], "lists.md#rest-mustrest"),
    _s("sprig.last([1, 2, 3])", 3, "lists.md#last-mustlast"),
    _s("sprig.initial([1, 2, 3])", [1, 2], "lists.md#initial-mustinitial"),
    _s("sprig.append([1, 2], 3)", [1, 2, 3], "lists.md#append-mustappend"),
    _s("sprig.prepend([1, 2], 0)", [0, 1, 2], "lists.md#prepend-mustprepend"),
    _s("sprig.concat([1, 2], [3, 4], [5])", [1, 2, 3, 4, 5], "lists.md#concat"),
    _s("sprig.reverse([1, 2, 3])", [3, 2, 1], "lists.md#reverse-mustreverse"),
    _s("sprig.uniq([1, 1, 1, 2])", [1, 2], "lists.md#uniq-mustuniq"),
    _s("sprig.without([1, 2, 3, 4], 1, 3)", [2, 4], "lists.md#without-mustwithout"),
    _s("sprig.has(4, [1, 2, 3])", False, "lists.md#has-musthas"),
    _s('sprig.compact([1, "", nil, 2])', [1, 2], "lists.md#compact-mustcompact"),
    _s("sprig.slice([1, 2, 3, 4, 5], 1, 3)", [2, 3], "lists.md#slice-mustslice"),
    _s('sprig.join("-", ["a", "b", "c"])', "a-b-c", "string_slice.md#join"),
    _s(
        'sprig.splitList("$", "foo$bar$baz")',
        ["foo", "bar", "baz"],
        "string_slice.md#splitlist-and-split",
    ),
    _s(
        'sprig.split("$", "foo$bar$baz")',
        {"_0": "foo", "_1": "bar", "_2": "baz"},
        "string_slice.md#splitlist-and-split",
    ),
    _s(
        'sprig.splitn("$", 2, "foo$bar$baz")',
        {"_0": "foo", "_1": "bar$baz"},
        "string_slice.md#splitn",
    ),
    _s('sprig.sortAlpha(["c", "a", "b"])', ["a", "b", "c"], "string_slice.md#sortalpha"),
    _s(
        'sprig.dict("name1", "value1", "name2", "value2")',
        {"name1": "value1", "name2": "value2"},
        "dicts.md#dict",
    ),
    _s('sprig.get({"a": 1}, "a")', 1, "dicts.md#get"),
    _s('sprig.get({"a": 1}, "b")', "", "dicts.md#get (missing key is empty string)"),
    _s('sprig.hasKey({"a": 1}, "a")', True, "dicts.md#haskey"),
    _s('sprig.pluck("name1", {"name1": 1}, {"name1": 2}, {"x": 3})', [1, 2], "dicts.md#pluck"),
    _s('sprig.pick({"a": 1, "b": 2}, "a")', {"a": 1}, "dicts.md#pick"),
    _s('sprig.omit({"a": 1, "b": 2}, "a")', {"b": 2}, "dicts.md#omit"),
    _s('sprig.dig("user", "role", "guest", {"user": {"role": "admin"}})', "admin", "dicts.md#dig"),
    _s('sprig.dig("user", "name", "guest", {"user": {}})', "guest", "dicts.md#dig (default)"),
    _s('sprig.default("foo", "")', "foo", "defaults.md#default"),
    _s('sprig.default("foo", "bar")', "bar", "defaults.md#default"),
    _s('sprig.empty("")', True, "defaults.md#empty"),
    _s("sprig.empty(0)", True, "defaults.md#empty"),
    _s('sprig.coalesce(nil, "", "x")', "x", "defaults.md#coalesce"),
    _s('sprig.ternary("foo", "bar", true)', "foo", "defaults.md#ternary"),
    _s("sprig.fromJson('{\"a\": 1}')", {"a": 1.0}, "defaults.md#fromjson-mustfromjson"),
    _s("sprig.fromJson('not json')", None, "defaults.md#fromjson-mustfromjson (errors give nil)"),
    _s('sprig.toJson({"a": "<"})', '{"a":"\\u003c"}', "defaults.md#tojson-musttojson"),
    _s('sprig.toRawJson({"a": "<"})', '{"a":"<"}', "defaults.md#torawjson-musttorawjson"),
    _s(
        'sprig.toPrettyJson({"a": 1})',
        '{\n  "a": 1\n}',
        "defaults.md#toprettyjson-musttoprettyjson",
    ),
    _s('sprig.b64enc("hello")', "aGVsbG8=", "encoding.md"),
    _s('sprig.b64dec("aGVsbG8=")', "hello", "encoding.md"),
    _s(
        'sprig.b64dec("!")',
        "illegal base64 data at input byte 0",
        "encoding.md (errors are returned as text)",
    ),
    _s('sprig.b32enc("hi")', "NBUQ====", "encoding.md"),
    _s(
        'sprig.sha256sum("Hello world!")',
        "c0535e4be2b79ffd93291305436bf889314e4a3faec05ecffcbb7df31ad9e51a",
        "crypto.md#sha256sum",
    ),
    _s('sprig.adler32sum("Wikipedia")', "300286872", "crypto.md#adler32sum (hash/adler32)"),
    _s('sprig.regexMatch("^[a-z]+$", "abc")', True, "strings.md#regexmatch-mustregexmatch"),
    _s('sprig.regexFind("[a-zA-Z][1-9]", "abcd1234")', "d1", "strings.md#regexfind-mustregexfind"),
    _s(
        'sprig.regexFindAll("[2,4,6,8]", "123456789", -1)',
        ["2", "4", "6", "8"],
        "strings.md#regexfindall-mustregexfindall",
    ),
    _s(
        'sprig.regexReplaceAll("a(x*)b", "-ab-axxb-", "${1}W")',
        "-W-xxW-",
        "strings.md#regexreplaceall-mustregexreplaceall",
    ),
    _s(
        'sprig.regexReplaceAllLiteral("a(x*)b", "-ab-axxb-", "${1}")',
        "-${1}-${1}-",
        "strings.md#regexreplaceallliteral",
    ),
    _s('sprig.regexSplit("z+", "pizza", -1)', ["pi", "a"], "strings.md#regexsplit-mustregexsplit"),
    _s('sprig.regexQuoteMeta("1.2.3")', "1\\.2\\.3", "strings.md#regexquotemeta"),
    _s('sprig.base("foo/bar/baz")', "baz", "paths.md#base"),
    _s('sprig.dir("foo/bar/baz")', "foo/bar", "paths.md#dir"),
    _s('sprig.clean("foo/bar/../baz")', "foo/baz", "paths.md#clean"),
    _s('sprig.ext("foo.bar")', ".bar", "paths.md#ext"),
    _s('sprig.isAbs("/foo")', True, "paths.md#isabs"),
    _s("sprig.typeOf(1)", "int", "reflection.md"),
    _s('sprig.kindOf("hello")', "string", "reflection.md"),
    _s('sprig.typeIs("string", "x")', True, "reflection.md"),
    _s("sprig.deepEqual([1, 2], [1, 2])", True, "reflection.md#deepequal"),
]

SPRIG_ERRORS = [
    Err('sprig.fail("boom")', "boom", "run", f"{SPRIG} flow_control.md#fail", argo=True),
    Err(
        "sprig.div(1, 0)",
        "integer divide by zero",
        "run",
        f"{SPRIG} math.md#div (Go division)",
        argo=True,
    ),
    Err(
        'sprig.trunc("5", "x")',
        "reflect: Call using string as type int",
        "run",
        f"{SPRIG} strings.md#trunc (Go signature)",
        argo=True,
    ),
    Err(
        "sprig.trunc(5)",
        "reflect: Call with too few input arguments",
        "run",
        f"{SPRIG} strings.md#trunc (Go signature)",
        argo=True,
    ),
    Err(
        'sprig.env("HOME")',
        "reflect: call of reflect.Value.Call on zero Value",
        "run",
        "argo util/expr/env/env.go (env and expandenv removed)",
        argo=True,
    ),
    Err(
        'sprig.regexFindAll("(", "x", 1)',
        "error parsing regexp",
        "run",
        f"{SPRIG} strings.md#regexfindall-mustregexfindall (panics on bad regex)",
        argo=True,
    ),
]

ALL = ARGO_ENV + MIGRATION + JSON_FUNCTIONS + SPRIG_CASES + SPRIG_ERRORS


@pytest.mark.parametrize("case", [c for c in ALL if isinstance(c, Ok)], ids=case_id)
def test_value(case: Ok) -> None:
    got = evaluate(case.expr, case.env, argo=case.argo)
    assert same(got, case.want), f"{case.expr!r} -> {got!r}, want {case.want!r} [{case.src}]"


@pytest.mark.parametrize("case", [c for c in ALL if isinstance(c, Err)], ids=case_id)
def test_error(case: Err) -> None:
    with pytest.raises(ExprError) as info:
        evaluate(case.expr, case.env, argo=case.argo)
    assert case.message in str(info.value), f"{case.expr!r}: {info.value} [{case.src}]"
    assert info.value.phase == case.phase, f"{case.expr!r}: {info.value.phase} [{case.src}]"


def test_expand_drops_less_specific_keys() -> None:
    """src: argo util/expand/expand_test.go: TestExpand."""
    before = {"a.b": 1, "a.c.d": 2, "a": 3, "ab": 4, "abb": 5}
    assert expand(before) == {"a": {"b": 1, "c": {"d": 2}}, "ab": 4, "abb": 5}
    assert len(before) == 5  # the input is left alone


# ------------------------------------------------------------------- templates

RENDER_OK = [
    ("{{='test'}}", {}, "test", f"{TMPL} ExprSingleQuotes"),
    ('{{="test"}}', {}, "test", f"{TMPL} ExprDoubleQuotes"),
    (
        "{{='some\\\\path\\\\with\\\\backslashes'}}",
        {},
        "some\\path\\with\\backslashes",
        f"{TMPL} ExprEscapedBackslashInString",
    ),
    (
        "{{='some\\nstring\\nwith\\nescaped\\nnewlines'}}",
        {},
        "some\nstring\nwith\nescaped\nnewlines",
        f"{TMPL} ExprEscapedNewlineInString",
    ),
    ("{{=1 + \n1}}", {}, "2", f"{TMPL} ExprNewline"),
    ("{{=toJson('test')}}", {}, '"test"', f"{TMPL} ExprStringAsJson"),
    ("{{=toJson({test: 1})}}", {}, '{"test":1}', f"{TMPL} ExprObjectAsJson"),
    (
        "{{=toJson([1, '2', {an: 'object'}])}}",
        {},
        '[1,"2",{"an":"object"}]',
        f"{TMPL} ExprArrayAsJson",
    ),
    ('{{="\'"}}', {}, "'", f"{TMPL} ExprSingleQuoteAsString"),
    ("{{='\"'}}", {}, '"', f"{TMPL} ExprDoubleQuoteAsString"),
    ("{{=true == false}}", {}, "false", f"{TMPL} ExprBoolean"),
    (
        "{{customParam}}",
        {"customParam": "This is ' John"},
        "This is ' John",
        f"{TMPL} SimpleSingleQuoteAsString",
    ),
    (
        "{{customParam}}",
        {"customParam": 'This is " John'},
        'This is " John',
        f"{TMPL} SimpleDoubleQuoteAsString",
    ),
    (
        "{{=jsonpath(doc, '$.employees[*].name')}}",
        {"doc": EMPLOYEES},
        '["Baris","Mo","Jai"]',
        f"{TMPL} ExprNumArrayOutput",
    ),
    (
        "{{=jsonpath(doc, '$.employees[0].friends')}}",
        {"doc": EMPLOYEES},
        '["Mo","Jai"]',
        f"{TMPL} ExprStringArrayOutput",
    ),
    (
        "{{=jsonpath(doc, '$.employees[0]')}}",
        {"doc": EMPLOYEES},
        '{"age":43,"friends":["Mo","Jai"],"name":"Baris"}',
        f"{TMPL} ExprArrayInObjectOutput",
    ),
    (
        "{{outer-{{inner}}}}",
        {"inner": "suffix"},
        "{{outer-suffix}}",
        "argo util/template/template_test.go: NestedVariableResolution",
    ),
    (
        "{{outer-suffix}}",
        {"outer-suffix": "final-value"},
        "final-value",
        "argo util/template/template_test.go: NestedVariableResolution",
    ),
    ("{{workflow.name}}", {"workflow.name": "wf-1"}, "wf-1", f"{VARS}#simple"),
    (
        "{{ inputs.parameters.message }}",
        {"inputs.parameters.message": "hi"},
        "hi",
        f"{VARS}#simple (white-space)",
    ),
    ("{{=workflow.name}}", {"workflow.name": "wf-1"}, "wf-1", f"{VARS}#expression"),
    ("{{=[1, 2]}}", {}, "[1,2]", f"{VARS}#examples (plain list)"),
    ("{{=filter([1, 2], { # > 1})}}", {}, "[2]", f"{VARS}#examples (filter)"),
    ("{{=map([1, 2], { # * 2 })}}", {}, "[2,4]", f"{VARS}#examples (map)"),
    ("{{=4/2}}", {}, "2", "argo-http-agent shared/docs/expr-language.md ({{=4/2}} -> 2)"),
    (
        "n={{=asInt(inputs.parameters.count) + 1}}!",
        {"inputs.parameters.count": "41"},
        "n=42!",
        f"{VARS}#examples (asInt)",
    ),
    (
        "{{=sprig.dict('b', 1, 'a', [true])}}",
        {},
        '{"a":[true],"b":1}',
        f"{VARS}#expression (maps as compact JSON, sorted keys)",
    ),
    ("no tags here", {}, "no tags here", "argo util/template/template.go (fasttemplate)"),
]

RENDER_ERR = [
    ("{{missing}}", {}, "failed to resolve {{missing}}", "argo util/template/simple_template.go"),
    (
        "{{n}}",
        {"n": 1},
        "failed to resolve {{n}} to string",
        "argo util/template/simple_template.go",
    ),
    (
        "{{=nil}}",
        {},
        'failed to evaluate expression "nil"',
        "argo util/template/expression_template.go (nil result)",
    ),
    (
        "{{=1 +}}",
        {},
        "failed to evaluate expression: unexpected token EOF",
        "argo util/template/expression_template.go",
    ),
    (
        "{{=missingVar}}",
        {},
        "failed to evaluate expression: unknown name missingVar",
        "argo util/template/expression_template.go",
    ),
    (
        "{{={a: 1}}}",
        {},
        "failed to evaluate expression",
        f"{VARS}#expression (a tag ends at the first }}}})",
    ),
    (
        "{{=1/0.0 * 0}}",
        {},
        "failed to marshal evaluated expression: json: unsupported value: NaN",
        "argo util/template/expression_template.go (json.Marshal)",
    ),
    (
        "open {{ without end",
        {},
        'Cannot find end tag="}}"',
        "argo util/template/template.go (fasttemplate)",
    ),
]


@pytest.mark.parametrize(
    ("text", "env", "want", "src"), RENDER_OK, ids=[r[0][:40] for r in RENDER_OK]
)
def test_render(text: str, env: dict[str, Any], want: str, src: str) -> None:
    assert render(text, env) == want, src


@pytest.mark.parametrize(
    ("text", "env", "message", "src"), RENDER_ERR, ids=[r[0][:40] for r in RENDER_ERR]
)
def test_render_error(text: str, env: dict[str, Any], message: str, src: str) -> None:
    with pytest.raises(ExprError) as info:
        render(text, env)
    assert message in str(info.value), f"{info.value} [{src}]"


# ------------------------------------------------------- EvalBool and successCondition

HTTP = {
    "request": {"method": "GET", "url": "http://x/", "body": "", "bodyBytes": None, "headers": {}},
    "response": {
        "statusCode": 201,
        "body": "hello google",
        "headers": {"Server": ["cloudflare"], "Content-Type": ["text/plain"]},
    },
}

CONDITIONS = [  # (condition, message; "" means success), all with AGENT + EVAL
    ("response.statusCode == 201", ""),
    ('response.body contains "google"', ""),
    ('response.headers["Server"][0] == "cloudflare"', ""),
    ('request.method == "GET" && request.url startsWith "http"', ""),
    ('response.headers["X-Missing"] == nil', ""),
    ("response.statusCode == 200", "successCondition 'response.statusCode == 200' evaluated false"),
    ("response.body", "unable to cast expression result 'hello google' to bool"),
    ("response.statusCode", "unable to cast expression result '%!s(int=201)' to bool"),
    ("nil", "unable to cast expression result '%!s(<nil>)' to bool"),
    ("[1, 'a']", "unable to cast expression result '[%!s(int=1) a]' to bool"),
    ("1.5", "unable to cast expression result '%!s(float64=1.5)' to bool"),
    ("foo == 1", "unknown name foo (1:1)\n | foo == 1\n | ^"),
    (
        "response.x.y == 1",
        "unable to evaluate expression 'response.x.y == 1': cannot fetch y from <nil> (1:12)\n"
        " | response.x.y == 1\n | ...........^",
    ),
    ("asInt(response.body) > 1", "unknown name asInt (1:1)"),
    ("response.statusCode ==", "unexpected token EOF (1:23)"),
]


@pytest.mark.parametrize(("condition", "message"), CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_success_condition_message(condition: str, message: str) -> None:
    """src: argo workflow/executor/agent.go + util/expr/argoexpr/eval.go."""
    got = success_condition_message(condition, HTTP)
    if message == "":
        assert got == ""
        assert eval_bool(condition, HTTP) is True
    else:
        assert got.startswith(message), got


def test_eval_bool_raises_argo_text() -> None:
    """src: argo util/expr/argoexpr/eval.go (EvalBool)."""
    with pytest.raises(ExprError) as info:
        eval_bool("response.body", HTTP)
    assert str(info.value) == "unable to cast expression result 'hello google' to bool"
    assert eval_bool("response.statusCode == 201", HTTP) is True
    assert eval_bool("asInt(lastRetry.exitCode) > 1", RETRY, argo=True) is True
    assert success_condition_false_message("x") == "successCondition 'x' evaluated false"


def test_compile_is_cached_and_reused() -> None:
    """src: argo workflow/executor/agent.go (one successCondition, many responses)."""
    program = compile("response.statusCode == 201", argo=False)
    assert compile("response.statusCode == 201", argo=False) is program
    assert program.run(HTTP) is True
    other = {**HTTP, "response": {**HTTP["response"], "statusCode": 500}}
    assert program.run(other) is False


def test_type_check_follows_the_environment_shape() -> None:
    """src: argo docs/variables.md#retrystrategy (string variables need casts)."""
    program = compile("retries + 1", argo=False)
    assert program.run({"retries": 1}) == 2
    with pytest.raises(ExprError) as info:
        program.run({"retries": "1"})
    assert info.value.phase == "compile"


def test_limits_bound_time_memory_and_strings() -> None:
    """src: argo-http-agent shared/docs/expr-language.md#safety."""
    with pytest.raises(ExprError) as info:
        evaluate("reduce(0..999998, #acc + len(string(#)), 0)", {}, limits=Limits(timeout=0.02))
    assert info.value.kind == "limit" and "time limit" in info.value.message
    with pytest.raises(ExprError) as info:
        evaluate('repeat(repeat("x", 900000), 2)', {})
    assert info.value.kind == "limit"
    with pytest.raises(ExprError) as info:
        evaluate('repeat("x", 600) + repeat("y", 600)', {}, limits=Limits(max_string_length=1000))
    assert info.value.kind == "limit"


def test_case_count() -> None:
    assert len(ALL) + len(RENDER_OK) + len(RENDER_ERR) + len(CONDITIONS) >= 150
