"""expr-lang v1.17 language behaviour, case by case, each traced to expr's docs or tests.

Sources cited in ``src``:
  DOC  = expr-lang docs/language-definition.md (section anchor after ``#``)
  TEST = expr-lang expr_test.go (test function named)
  CHK  = expr-lang checker/checker_test.go: TestCheck_error (expected message)
  ARGO = Argo Workflows docs or tests (file named)
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.expr import ExprError, evaluate
from agent.expr.gotime import GoDuration
from tests.test_expr_helpers import Err, Ok, case_id, same

DOC = "expr docs/language-definition.md"
TEST = "expr expr_test.go"
CHK = "expr checker/checker_test.go: TestCheck_error"
SHARED = "argo-http-agent shared/docs/expr-language.md (quirk list, from expr behaviour)"

ARR = {"array": [1, 2, 3, 4, 5]}
MOCK: dict[str, Any] = {
    "Int": 0,
    "Float64": 0.0,
    "Bool": True,
    "String": "string",
    "One": 1,
    "Two": 2,
    "ArrayOfInt": [1, 2, 3, 4, 5],
    "ArrayOfAny": [1, "2", 3, True],
}
USERS = {
    "users": [
        {"Name": "John", "Age": 30},
        {"Name": "Jane", "Age": 24},
        {"Name": "Bob", "Age": 30},
    ],
    "user": {"Name": "John Doe"},
}
TWEETS = {"tweets": [{"Size": 100, "Content": "a" * 250}, {"Size": 300, "Content": "short"}]}
H = 3_600_000_000_000  # one hour in nanoseconds

LITERALS = [
    Ok("42", 42, f"{DOC}#literals"),
    Ok("0x2A", 42, f"{DOC}#literals"),
    Ok("0o52", 42, f"{DOC}#literals"),
    Ok("0b101010", 42, f"{DOC}#literals"),
    Ok("1_000_000", 1_000_000, f"{SHARED} (1_000 literal)"),
    Ok("0.5", 0.5, f"{DOC}#literals"),
    Ok(".5", 0.5, f"{DOC}#literals"),
    Ok("-.5", -0.5, f"{TEST}: TestExpr"),
    Ok("1e3", 1000.0, f"{SHARED} (1e3 literal)"),
    Ok('"foo"', "foo", f"{DOC}#literals"),
    Ok("'bar'", "bar", f"{DOC}#literals"),
    Ok('"Hello\\nWorld"', "Hello\nWorld", f"{DOC}#strings"),
    Ok("`Hello\nWorld`", "Hello\nWorld", f"{DOC}#strings"),
    Ok("`raw \\n stays`", "raw \\n stays", f"{DOC}#strings (raw strings have no escapes)"),
    Ok('"\\u00e9t\\u00e9"', "été", f"{DOC}#strings (\\uXXXX)"),
    Ok('"\\x41\\t"', "A\t", f"{SHARED} (Go escapes)"),
    Ok("true", True, f"{DOC}#literals"),
    Ok("false", False, f"{DOC}#literals"),
    Ok("nil", None, f"{DOC}#literals"),
    Ok("[1, 2, 3]", [1, 2, 3], f"{DOC}#literals"),
    Ok("{a: 1, b: 2, c: 3}", {"a": 1, "b": 2, "c": 3}, f"{DOC}#literals"),
    Ok('{"b": 2, 3: "x"}', {"b": 2, "3": "x"}, f"{SHARED} (map keys: strings, numbers)"),
    Ok('{("a" + "b"): 1}', {"ab": 1}, f"{SHARED} ((expr) map keys)"),
    Ok("[1, 2,]", [1, 2], f"{SHARED} (trailing comma)"),
    Ok("1 /* one */ + 2 // two", 3, f"{TEST}: TestExpr"),
    Ok("/* c */ 1", 1, f"{DOC}#literals (comments)"),
    Err("null", "unknown name null", "compile", "argo util/expr/argoexpr/eval_test.go: null"),
]

ARITHMETIC = [
    Ok("2 + 2 == 4", True, f"{TEST}: TestExpr"),
    Ok("8 % 3", 2, f"{TEST}: TestExpr"),
    Ok("2 ** 8", 256.0, f"{TEST}: TestExpr"),
    Ok("2 ^ 8", 256.0, f"{TEST}: TestExpr"),
    Ok("-(2-5)**3-2/(+4-3)+-2", 23.0, f"{TEST}: TestExpr"),
    Ok('"hello" + " " + "world"', "hello world", f"{TEST}: TestExpr"),
    Ok("(One * Two) * 3 == One * (Two * 3)", True, f"{TEST}: TestExpr", MOCK),
    Ok("Int + 0", 0, f"{TEST}: TestExpr", MOCK),
    Ok("Float64 + 0", 0.0, f"{TEST}: TestExpr", MOCK),
    Ok("4/2", 2.0, f"{TEST}: TestExpr (4/2 == 2)"),
    Ok("7 / 2", 3.5, f"{SHARED} (/ is float)"),
    Ok("2^3 == 8", True, f"{TEST}: TestExpr"),
    Ok("1 + 2 * 3", 7, f"{DOC}#operators"),
    Ok("10 - 2 - 3", 5, f"{DOC}#operators (left assoc)"),
    Ok("2 ** 3 ** 2", 512.0, f"{SHARED} (** is right-assoc)"),
    Ok("-2**2", -4.0, f"{SHARED} (-2**2 is -4.0)"),
    Ok("2 ** -1", 0.5, f"{SHARED} (** is float)"),
    Ok("1.5 + 1", 2.5, f"{SHARED} (int/float mix)"),
    Ok("0.1 + 0.2", 0.30000000000000004, f"{SHARED} (float64)"),
    Ok("-7 % 3", -1, f"{SHARED} (% ints, Go truncation)"),
    Ok("7 % -3", 1, f"{SHARED} (% ints, Go truncation)"),
    Ok("9223372036854775807 + 1", -9223372036854775808, f"{SHARED} (64-bit wrap)"),
    Ok("-9223372036854775807 - 2", 9223372036854775807, f"{SHARED} (64-bit wrap)"),
    Ok("3037000500 * 3037000500", -9223372036709301616, f"{SHARED} (64-bit wrap)"),
    Ok("(a - b + c) / d", 0.5, f"{TEST}: TestIssue401", {"a": 1, "b": 2, "c": 3, "d": 4}),
    Ok("x / y", float("inf"), f"{SHARED} (/ on ints is float: 1/0 is +Inf)", {"x": 1, "y": 0}),
    Err("1 / (1 - 1)", "runtime error: integer divide by zero", "compile", f"{TEST}: TestIssue138"),
    Err("1 % 0", "runtime error: integer divide by zero", "compile", f"{TEST}: TestIssue138"),
    Err(
        "x % y",
        "runtime error: integer divide by zero",
        "run",
        f"{TEST}: TestIssue138",
        {"x": 1, "y": 0},
    ),
    Err(
        "1.5 % 2",
        "invalid operation: % (mismatched types float64 and int)",
        "compile",
        f"{SHARED} (% ints only)",
    ),
    Err("1 + ''", "invalid operation: + (mismatched types int and string) (1:3)", "compile", CHK),
    Err("Int + Bool", "invalid operation: + (mismatched types int and bool)", "compile", CHK, MOCK),
    Err(
        "Int ** Bool", "invalid operation: ** (mismatched types int and bool)", "compile", CHK, MOCK
    ),
    Err(
        "Int .. Bool", "invalid operation: .. (mismatched types int and bool)", "compile", CHK, MOCK
    ),
    Err("-'a'", "invalid operation: - (mismatched type string)", "compile", CHK),
    Err(
        "m.s + 1",
        "invalid operation: string + int",
        "run",
        f"{SHARED} (run-time type errors)",
        {"m": {"s": "x"}},
    ),
    Err(
        "m.s - 1",
        "invalid operation: string - int",
        "run",
        f"{SHARED} (run-time type errors)",
        {"m": {"s": "x"}},
    ),
    Err(
        "-m.s",
        "invalid operation: - string",
        "run",
        f"{SHARED} (run-time type errors)",
        {"m": {"s": "x"}},
    ),
]

COMPARISON = [
    Ok("1 < 2", True, f"{DOC}#operators"),
    Ok("Float64 < 1", True, f"{TEST}: TestExpr", MOCK),
    Ok("0 <= Float64", True, f"{TEST}: TestExpr", MOCK),
    Ok('"a" < "b"', True, f"{TEST}: TestExpr"),
    Ok('"a" != "b" || 1 == 2', True, f"{TEST}: TestExpr"),
    Ok("1 == 1.0", True, f"{SHARED} (int/float equal by value)"),
    Ok("m.one == 1", False, f"{SHARED} ('1' == 1 is false)", {"m": {"one": "1"}}),
    Ok("nil == nil", True, f"{TEST}: TestExpr"),
    Ok('0 == nil || "str" == nil || true == nil', False, f"{TEST}: TestExpr"),
    Ok("[1, 2] == [1, 2]", True, f"{SHARED} (deep equality)"),
    Ok("[1] == [1.0]", False, f"{SHARED} (deep equality keeps types)"),
    Ok("{a: [1]} == {a: [1]}", True, f"{SHARED} (deep equality)"),
    Ok(
        "foo == ['A', 1, 1.1, true]",
        True,
        f"{TEST}: TestArrayComparison",
        {"foo": ["A", 1, 1.1, True]},
    ),
    Ok("1 < 2 < 3", True, f"{TEST}: TestExpr"),
    Ok("1 > 2 < 3", False, f"{TEST}: TestExpr"),
    Ok("1 < 2 < 3 > 4", False, f"{TEST}: TestExpr"),
    Ok("1 < 2 < 3 > 2", True, f"{TEST}: TestExpr"),
    Ok("1 < 2 < 3 == true", True, f"{TEST}: TestExpr"),
    Err(
        '"1" == 1',
        "invalid operation: == (mismatched types string and int)",
        "compile",
        f"{CHK} (typed operands)",
    ),
    Err(
        "Int <= Bool", "invalid operation: <= (mismatched types int and bool)", "compile", CHK, MOCK
    ),
    Err(
        "m.a < m.b",
        "invalid operation: string < int",
        "run",
        f"{SHARED} (ordering)",
        {"m": {"a": "x", "b": 1}},
    ),
]

LOGIC = [
    Ok("true && false || false", False, f"{TEST}: TestExpr"),
    Ok("true and true", True, f"{DOC}#operators"),
    Ok("false or true", True, f"{DOC}#operators"),
    Ok("not true", False, f"{DOC}#operators"),
    Ok("!false", True, f"{DOC}#operators"),
    Ok("!true == false", True, f"{SHARED} (!a == b is (!a) == b)"),
    Ok("not (1 == 2)", True, f"{DOC}#operators"),
    Ok("false && m.a.b", False, f"{SHARED} (short-circuit)", {"m": {}}),
    Ok("true || m.a.b", True, f"{SHARED} (short-circuit)", {"m": {}}),
    Ok("true && m.s", "x", f"{SHARED} (&& yields its right operand)", {"m": {"s": "x"}}),
    Ok("all(1..3, {# > 0}) && all(1..3, {# < 4})", True, f"{TEST}: TestPredicateCombination"),
    Ok("none(1..3, {# > 1}) && none(1..3, {# < 4})", False, f"{TEST}: TestPredicateCombination"),
    Ok("any(1..3, {# > 1}) || any(1..3, {# < 2})", True, f"{TEST}: TestPredicateCombination"),
    Err(
        "1 && true",
        "invalid operation: && (mismatched types int and bool)",
        "compile",
        f"{SHARED} (no truthiness)",
    ),
    Err("!1", "invalid operation: ! (mismatched type int)", "compile", f"{SHARED} (no truthiness)"),
    Err(
        "m.n && true",
        "interface conversion: interface {} is int, not bool",
        "run",
        f"{SHARED} (no truthiness)",
        {"m": {"n": 1}},
    ),
    Err(
        "!m.n",
        "interface conversion: interface {} is int, not bool",
        "run",
        f"{SHARED} (no truthiness)",
        {"m": {"n": 1}},
    ),
    Err(
        "m.n ? 1 : 2",
        "interface conversion: interface {} is nil, not bool",
        "run",
        f"{SHARED} (no truthiness)",
        {"m": {}},
    ),
]

CONDITIONAL = [
    Ok("true ? 1 : 2", 1, f"{DOC}#operators (ternary)"),
    Ok("(true ? 0+1 : 2+3) + (false ? -1 : -2)", -1, f"{TEST}: TestExpr"),
    Ok("false ? 1 : true ? 2 : 3", 2, f"{SHARED} (?: right-assoc)"),
    Ok(
        'user.Name != "" ? user.Name : "unknown"',
        "John Doe",
        "argo util/expr/env/env_test.go: TestDeprecatedSprigFunctionExamples",
        USERS,
    ),
    Ok("if 1 > 2 { 333 * 2 + 1 } else { 444 }", 444, f"{TEST}: TestExpr"),
    Ok('if "a" < "b" {let x = "a"; x} else {"abc"}', "a", f"{TEST}: TestExpr"),
    Ok("if false { 1 } else if true { 2 } else { 3 }", 2, f"{SHARED} (if / else if)"),
    Ok(
        'foo.bar ?? "default"',
        "value",
        f"{TEST}: TestRun_NilCoalescingOperator",
        {"foo": {"bar": "value"}},
    ),
    Ok(
        'foo.baz ?? "default"',
        "default",
        f"{TEST}: TestRun_NilCoalescingOperator",
        {"foo": {"bar": "value"}},
    ),
    Ok(
        'foo.x?.bar ?? "default"',
        "default",
        f"{TEST}: TestRun_NilCoalescingOperator (with chain)",
        {"foo": {}},
    ),
    Ok("nil ?? 5", 5, f"{DOC}#nil-coalescing"),
    Ok("(m.a ?? 1) + 1", 2, f"{DOC}#nil-coalescing", {"m": {}}),
    Ok(
        'author.User?.Name ?? "Anonymous"',
        "Anonymous",
        f"{DOC}#nil-coalescing",
        {"author": {"User": None}},
    ),
    Ok("author.User?.Name", None, f"{DOC}#optional-chaining", {"author": {"User": None}}),
    Ok(
        "author.User?.Name",
        "Ann",
        f"{DOC}#optional-chaining",
        {"author": {"User": {"Name": "Ann"}}},
    ),
    Ok("foo.bar?.baz", None, f"{TEST}: TestExpr_optional_chaining_property", {"foo": {}}),
    Ok(
        "foo?.bar[foo?.id]?.baz",
        "baz",
        f"{TEST}: TestExpr_optional_chaining_nested_chains",
        {"foo": {"id": 1, "bar": [None, {"baz": "baz"}]}},
    ),
    Ok("[1, 2, 3]?.[0]", 1, f"{TEST}: TestExpr"),
    Ok("[[1, 2], 3, 4]?.[0]?.[1]", 2, f"{TEST}: TestExpr"),
    Ok("[nil, 3, 4]?.[0]?.[1]", None, f"{TEST}: TestExpr"),
    Err(
        "a ?? b + c",
        "Operator (+) and coalesce expressions (??) cannot be mixed",
        "compile",
        f"{SHARED} (a ?? b + c)",
        {"a": 1, "b": 2, "c": 3},
    ),
    Err(
        "1 ? 2 : 3",
        "non-bool expression (type int) used as condition",
        "compile",
        f"{SHARED} (no truthiness)",
    ),
    Err(
        "foo.x.bar", "cannot fetch bar from <nil>", "run", f"{SHARED} (member of nil)", {"foo": {}}
    ),
]

MEMBERSHIP = [
    Ok("user.Name", "John Doe", f"{DOC}#membership-operator", USERS),
    Ok('user["Name"]', "John Doe", f"{DOC}#membership-operator", USERS),
    Ok("array[0]", 1, f"{DOC}#membership-operator", ARR),
    Ok("array[-1]", 5, f"{DOC}#membership-operator", ARR),
    Ok("ArrayOfInt[1]", 2, f"{TEST}: TestExpr", MOCK),
    Ok("ArrayOfInt[0] < ArrayOfInt[1]", True, f"{TEST}: TestExpr", MOCK),
    Ok("(0..10)[5]", 5, f"{TEST}: TestExpr"),
    Ok('"John" in ["John", "Jane"]', True, f"{DOC}#membership-operator"),
    Ok('"name" in {"name": "John", "age": 30}', True, f"{DOC}#membership-operator"),
    Ok('1 in [1, 2, 3] && "foo" in {foo: 0, bar: 1}', True, f"{TEST}: TestExpr"),
    Ok("1 in [1.5] || 1 not in [1]", False, f"{TEST}: TestExpr"),
    Ok("0 in -1..1 and 1 in 1..1", True, f"{TEST}: TestExpr"),
    Ok("One in 0..1 && Two not in 0..1", True, f"{TEST}: TestExpr", MOCK),
    Ok("Two not    in 0..1", True, f"{TEST}: TestExpr", MOCK),
    Ok("-1 not in [1]", True, f"{TEST}: TestExpr"),
    Ok("4 in 5..1", False, f"{TEST}: TestExpr"),
    Ok(".5 in 0..1", False, f"{TEST}: TestExpr"),
    Ok("m.missing", None, f"{SHARED} (missing map key is nil)", {"m": {}}),
    Ok(
        '{"value": "ok"}[vars.key]',
        "ok",
        f"{TEST}: TestCompile_allow_to_use_interface_to_get_an_element_from_map",
        {"vars": {"key": "value"}},
    ),
    Err(
        "'str' in String",
        "invalid operation: in (mismatched types string and string) (1:7)",
        "compile",
        CHK,
        MOCK,
    ),
    Err(
        "1 in m",
        "cannot use int as type string in map key",
        "compile",
        f"{SHARED} (in on map keys)",
        {"m": {"a": 1}},
    ),
    Err(
        "MapOfAny[0]",
        "cannot use int to get an element from map[string]interface {}",
        "compile",
        CHK,
        {"MapOfAny": {}},
    ),
    Err(
        '[1, 2]["a"]',
        "array elements can only be selected using an integer (got string)",
        "compile",
        CHK,
    ),
    Err(
        "[1, 2, 3][5]",
        "index out of range: 5 (array length is 3)",
        "run",
        f"{SHARED} (out-of-range index)",
    ),
    Err(
        "ArrayOfAny[-7]",
        "index out of range: -3 (array length is 4) (1:11)",
        "run",
        f"{TEST}: TestExpr_error",
        MOCK,
    ),
    Err(
        "filter(1..9, # > 9)[0]",
        "reflect: slice index out of range (1:20)",
        "run",
        f"{TEST}: TestExpr_error",
    ),
    Err(
        'm.s in "abc"',
        'operator "in" not defined on string',
        "run",
        f"{SHARED} ('a' in \"abc\" is an error)",
        {"m": {"s": "a"}},
    ),
]

STRING_OPERATORS = [
    Ok('"foobar" contains "bar"', True, f"{TEST}: TestExpr"),
    Ok('"foobar" startsWith "foo"', True, f"{TEST}: TestExpr"),
    Ok('"foobar" endsWith "bar"', True, f"{TEST}: TestExpr"),
    Ok('"foobar" not contains "x"', True, f"{DOC}#operators (not + string operator)"),
    Ok('"foobar" not startsWith "bar"', True, f"{DOC}#operators (not + string operator)"),
    Ok('String matches "s.+"', True, f"{TEST}: TestExpr", MOCK),
    Ok('String matches ("^" + String + "$")', True, f"{TEST}: TestExpr", MOCK),
    Ok("'foo' + 'bar' not matches 'foobar'", False, f"{TEST}: TestExpr"),
    Ok('"xabcx" matches "abc"', True, f"{SHARED} (matches is unanchored)"),
    Ok(
        '"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!" matches "(a+)+$"',
        False,
        f"{SHARED} (RE2: no backtracking blow-up)",
    ),
    Ok('m.n contains "str"', False, f"{TEST}: TestExpr_nil_op_str", {"m": {}}),
    Ok('"str" endsWith m.n', False, f"{TEST}: TestExpr_nil_op_str", {"m": {}}),
    Ok('m.n matches "str"', False, f"{TEST}: TestExpr_nil_op_str", {"m": {}}),
    Err('"a" matches "("', "error parsing regexp", "compile", f"{SHARED} (RE2 regexps)"),
    Err(
        '"ab" matches "a(?=b)"',
        "error parsing regexp",
        "compile",
        f"{SHARED} (RE2: no look-arounds)",
    ),
    Err(
        '"a" matches m.p',
        "error parsing regexp",
        "run",
        f"{SHARED} (RE2 regexps)",
        {"m": {"p": "("}},
    ),
    Err(
        'm.n contains "a"',
        "interface conversion: interface {} is int, not string",
        "run",
        f"{SHARED} (string operators need strings)",
        {"m": {"n": 1}},
    ),
]

SLICES = [
    Ok("array[1:4] == [2, 3, 4]", True, f"{DOC}#slice-operator", ARR),
    Ok("array[1:-1] == [2, 3, 4]", True, f"{DOC}#slice-operator", ARR),
    Ok("array[:3] == [1, 2, 3]", True, f"{DOC}#slice-operator", ARR),
    Ok("array[3:] == [4, 5]", True, f"{DOC}#slice-operator", ARR),
    Ok("array[:] == array", True, f"{DOC}#slice-operator", ARR),
    Ok("ArrayOfInt[-4:-1]", [2, 3, 4], f"{TEST}: TestExpr", MOCK),
    Ok("ArrayOfInt[1:2]", [2], f"{TEST}: TestExpr", MOCK),
    Ok('"hello"[1:3]', "el", f"{TEST}: TestExpr"),
    Ok("String[:]", "string", f"{TEST}: TestExpr", MOCK),
    Ok("String[:9]", "string", f"{TEST}: TestExpr", MOCK),
    Ok("String[3:9]", "ing", f"{TEST}: TestExpr", MOCK),
    Ok("String[7:9]", "", f"{TEST}: TestExpr", MOCK),
    Ok("[1, 2, 3][:99]", [1, 2, 3], f"{TEST}: TestEval_slices_out_of_bound"),
    Ok("[1, 2, 3][99:]", [], f"{TEST}: TestEval_slices_out_of_bound"),
    Ok("[1, 2, 3][:-99]", [], f"{TEST}: TestEval_slices_out_of_bound"),
    Ok("[1, 2, 3][-99:]", [1, 2, 3], f"{TEST}: TestEval_slices_out_of_bound"),
    Err("Bool[:]", "cannot slice bool (1:5)", "compile", CHK, MOCK),
    Err("ArrayOfInt[Bool:]", "non-integer slice index bool (1:12)", "compile", CHK, MOCK),
]

RANGES_AND_PIPES = [
    Ok("1..3 == [1, 2, 3]", True, f"{DOC}#range-operator"),
    Ok("4..0", [], f"{TEST}: TestExpr"),
    Ok("1..1", [1], f"{DOC}#range-operator"),
    Ok("len(0..999998)", 999_999, f"{SHARED} (range length bound)"),
    Err("0..999999", "memory budget exceeded", "run", f"{SHARED} (range length bound)"),
    Err(
        "1.5..2",
        "invalid operation: .. (mismatched types float64 and int)",
        "compile",
        f"{DOC}#range-operator (integers)",
    ),
    Ok('user.Name | lower() | split(" ")', ["john", "doe"], f"{DOC}#pipe-operator", USERS),
    Ok('split(lower(user.Name), " ")', ["john", "doe"], f"{DOC}#pipe-operator", USERS),
    Ok("[1, 2, 3] | map(# * 2)", [2, 4, 6], f"{DOC}#pipe-operator"),
    Ok(
        "0..5 | filter(# % 2 == 0) | map(#index)",
        [0, 1, 2],
        f"{TEST}: TestIssue758_filter_map_index",
    ),
    Ok('({} | get("a") | get("b"))', None, f"{TEST}: TestIssue785_get_nil"),
]

VARIABLES = [
    Ok("let x = 42; x * 2", 84, f"{DOC}#variables"),
    Ok("let x = 42; \nlet y = 2; \nx * y", 84, f"{DOC}#variables"),
    Ok(
        'let name = user.Name | lower() | split(" "); \n"Hello, " + name[0] + "!"',
        "Hello, john!",
        f"{DOC}#variables",
        USERS,
    ),
    Ok("let x = 1; x + 2", 3, f"{TEST}: TestExpr"),
    Ok("map(1..3, let x = #; let y = x * x; y * y)", [1, 16, 81], f"{TEST}: TestExpr"),
    Ok("map(1..2, let x = #; map(2..3, let y = #; x + y))", [[3, 4], [4, 5]], f"{TEST}: TestExpr"),
    Ok("1; 2; 3", 3, f"{TEST}: TestExpr"),
    Ok("let a = 1; 2 + 2; let b = 2; a + b", 3, f"{TEST}: TestExpr"),
    Ok("let x = 1; let y = x + 1; y * 10", 20, f"{DOC}#variables"),
    Err("let x = 1; let x = 2; x", "cannot redeclare variable x", "compile", f"{DOC}#variables"),
    Err("let len = 1; len", "cannot redeclare builtin len", "compile", f"{DOC}#variables"),
    Err(
        "let foo = 1; foo",
        "cannot redeclare foo",
        "compile",
        f"{DOC}#variables (env names)",
        {"foo": 2},
    ),
]

ENV = {
    "space test": "ok",
    "Section 1-2a": "ok",
    "num": 10,
    "red": "n",
    "irect": "um",
    "String Map": {"one": "two"},
    "mylist": [1, 2, 3, 4, 5],
    "OtherMap": {"a": "b"},
}
DOLLAR_ENV = [
    Ok("$env['space test']", "ok", f"{TEST}: TestEnv_keyword", ENV),
    Ok("$env['Section 1-2a']", "ok", f"{TEST}: TestEnv_keyword", ENV),
    Ok("$env['String Map'].one", "two", f"{TEST}: TestEnv_keyword", ENV),
    Ok("1 + $env['num'] + $env['num']", 21, f"{TEST}: TestEnv_keyword", ENV),
    Ok("$env['nu' + 'm']", 10, f"{TEST}: TestEnv_keyword", ENV),
    Ok("$env[red + irect]", 10, f"{TEST}: TestEnv_keyword", ENV),
    Ok("$env.red", "n", f"{TEST}: TestEnv_keyword", ENV),
    Ok("$env?.unknown", None, f"{TEST}: TestEnv_keyword", ENV),
    Ok("$env.mylist[1]", 2, f"{TEST}: TestEnv_keyword", ENV),
    Ok("$env?.OtherMap?.a", "b", f"{TEST}: TestEnv_keyword", ENV),
    Ok("'num' in $env", True, f"{TEST}: TestEnv_keyword", ENV),
    Ok("get($env, 'num')", 10, f"{TEST}: TestEnv_keyword", ENV),
    Ok('foo.Name == $env["foo"].Name', True, f"{DOC}#env", {"foo": {"Name": "x"}}),
    Ok("'bar' in $env", False, f"{DOC}#env", {"foo": 1}),
    Err("$env.unknown", "unknown name unknown", "compile", f"{DOC}#env", ENV),
]

PREDICATES = [
    Ok("filter(0..9, {# % 2 == 0})", [0, 2, 4, 6, 8], f"{DOC}#predicate"),
    Ok("filter(tweets, {len(.Content) > 240})", [TWEETS["tweets"][0]], f"{DOC}#predicate", TWEETS),
    Ok(
        "filter(tweets, len(.Content) > 240)",
        [TWEETS["tweets"][0]],
        f"{DOC}#predicate (braces omitted)",
        TWEETS,
    ),
    Ok(
        "filter(posts, {\n    let post = #; \n    any(.Comments, .Author == post.Author)\n})",
        [{"Author": "a", "Comments": [{"Author": "a"}]}],
        f"{DOC}#predicate (nested predicates)",
        {
            "posts": [
                {"Author": "a", "Comments": [{"Author": "a"}]},
                {"Author": "b", "Comments": []},
            ]
        },
    ),
    Ok("filter(1..9, {# > 7})", [8, 9], f"{TEST}: TestExpr"),
    Ok("map(1..3, {# * #})", [1, 4, 9], f"{TEST}: TestExpr"),
    Ok("all(1..3, {# > 0})", True, f"{TEST}: TestExpr"),
    Ok("all([], {# > 0})", True, f"{DOC}#all (empty array)"),
    Ok("all(tweets, {.Size < 280})", False, f"{DOC}#all", TWEETS),
    Ok("any(tweets, {.Size > 280})", True, f"{DOC}#any", TWEETS),
    Ok("any([], {# > 0})", False, f"{DOC}#any (empty array)"),
    Ok("one(users, {.Name == 'Bob'})", True, f"{DOC}#one", USERS),
    Ok("one([], {# > 0})", False, f"{DOC}#one (empty array)"),
    Ok("none(tweets, {.Size > 280})", False, f"{DOC}#none", TWEETS),
    Ok("none([], {# > 0})", True, f"{DOC}#none (empty array)"),
    Ok("map(tweets, {.Size})", [100, 300], f"{DOC}#map", TWEETS),
    Ok("find([1, 2, 3, 4], # > 2) == 3", True, f"{DOC}#find"),
    Ok("findIndex([1, 2, 3, 4], # > 2) == 2", True, f"{DOC}#findIndex"),
    Ok("findLast([1, 2, 3, 4], # > 2) == 4", True, f"{DOC}#findLast"),
    Ok("findLastIndex([1, 2, 3, 4], # > 2) == 3", True, f"{DOC}#findLastIndex"),
    Ok("findLast(1..9, # % 2 == 0)", 8, f"{TEST}: TestExpr"),
    Ok("findLastIndex(1..9, # % 2 == 0)", 7, f"{TEST}: TestExpr"),
    Ok("find([1, 2], # > 5)", None, f"{DOC}#find (no match)"),
    Ok("count(users, .Age > 25)", 2, f"{DOC}#count", USERS),
    Ok("count(1..30, {# % 3 == 0})", 10, f"{TEST}: TestExpr"),
    Ok("count([true, true, false])", 2, f"{TEST}: TestExpr"),
    Ok("len(filter(1..99, # % 7 == 0))", 14, f"{TEST}: TestExpr"),
    Ok("filter(1..9, # % 2 == 0)[-1]", 8, f"{TEST}: TestExpr"),
    Ok("map(filter(1..9, # % 2 == 0), # * 2)", [4, 8, 12, 16], f"{TEST}: TestExpr"),
    Ok("first(map(filter(1..9, # % 2 == 0), # * 2))", 4, f"{TEST}: TestExpr"),
    Ok("len(filter(map(1..9, # * 2), # % 2 == 0))", 9, f"{TEST}: TestExpr"),
    Ok("first(filter(1..9, # > 9))", None, f"{TEST}: TestExpr (first of empty filter)"),
    Ok(
        "groupBy(users, .Age)",
        {30: [USERS["users"][0], USERS["users"][2]], 24: [USERS["users"][1]]},
        f"{DOC}#groupBy",
        USERS,
    ),
    Ok("reduce(1..9, #acc + #)", 45, f"{DOC}#reduce"),
    Ok("reduce(1..9, #acc + #, 0)", 45, f"{DOC}#reduce"),
    Ok("reduce(1..3, #acc + #index, 100)", 103, f"{DOC}#reduce (#index)"),
    Ok("sum([1, 2, 3]) == 6", True, f"{DOC}#sum"),
    Ok(
        "sum(accounts, .Balance)",
        7.5,
        f"{DOC}#sum",
        {"accounts": [{"Balance": 5}, {"Balance": 2.5}]},
    ),
    Ok(
        "reduce(accounts, #acc + .Balance, 0)",
        7.5,
        f"{DOC}#sum (equivalent)",
        {"accounts": [{"Balance": 5}, {"Balance": 2.5}]},
    ),
    Ok("sum([])", 0, f"{DOC}#sum"),
    Ok("sortBy(users, .Age)[0].Name", "Jane", f"{DOC}#sortBy", USERS),
    Ok("sortBy(users, .Age, 'desc')[-1].Name", "Jane", f"{DOC}#sortBy", USERS),
    Ok("all(1..3, { all(1..3, { # > 0 }) and # > 0 })", True, f"{TEST}: TestIssue_nested_closures"),
    Ok(
        '[true && true, one(Tags, .Name in ["one"]), one(Tags, .Name in ["two"])]',
        [True, True, True],
        f"{TEST}: TestIssue624",
        {"Tags": [{"Name": "one"}, {"Name": "two"}]},
    ),
    Err(
        "reduce([], #acc + #)",
        "reduce of empty array with no initial value",
        "run",
        f"{DOC}#reduce",
    ),
    Err("sortBy([2, 1], #, 'up')", "unknown order, use asc or desc", "run", f"{DOC}#sortBy"),
    Err("count(1, {#})", "builtin count takes only array (got int) (1:7)", "compile", CHK),
    Err("map(1, {2})", "builtin map takes only array (got int) (1:5)", "compile", CHK),
    Err("filter(42, {#})", "builtin filter takes only array (got int) (1:8)", "compile", CHK),
    Err("any(42, {#})", "builtin any takes only array (got int) (1:5)", "compile", CHK),
    Err("count([1, 2], {#})", "predicate should return boolean (got int)", "compile", CHK),
    Err("all([1, 2], {# + 1})", "predicate should return boolean (got int)", "compile", CHK),
    Err(
        "# > 1",
        "pointer accessor outside",
        "compile",
        "expr checker/checker_test.go: TestCheck_PointerNode",
    ),
    Err(
        "filter(m.list, #)",
        "interface conversion: interface {} is int, not bool",
        "run",
        f"{SHARED} (predicates need bools)",
        {"m": {"list": [1]}},
    ),
    Err(
        "map(m.s, #)",
        "reflect: call of reflect.Value.Len on int Value",
        "run",
        f"{SHARED} (predicates need arrays)",
        {"m": {"s": 1}},
    ),
]

STRING_FUNCTIONS = [
    Ok('trim("  Hello  ") == "Hello"', True, f"{DOC}#trim"),
    Ok('trim("__Hello__", "_") == "Hello"', True, f"{DOC}#trim"),
    Ok('trimPrefix("HelloWorld", "Hello") == "World"', True, f"{DOC}#trimPrefix"),
    Ok('trimSuffix("HelloWorld", "World") == "Hello"', True, f"{DOC}#trimSuffix"),
    Ok('upper("hello") == "HELLO"', True, f"{DOC}#upper"),
    Ok('lower("HELLO") == "hello"', True, f"{DOC}#lower"),
    Ok('split("apple,orange,grape", ",") == ["apple", "orange", "grape"]', True, f"{DOC}#split"),
    Ok('split("apple,orange,grape", ",", 2) == ["apple", "orange,grape"]', True, f"{DOC}#split"),
    Ok(
        'split("abc", "")', ["a", "b", "c"], f"{DOC}#split (Go strings.Split on an empty separator)"
    ),
    Ok('split("", ",")', [""], f"{DOC}#split (Go strings.Split)"),
    Ok(
        'splitAfter("apple,orange,grape", ",") == ["apple,", "orange,", "grape"]',
        True,
        f"{DOC}#splitAfter",
    ),
    Ok(
        'splitAfter("apple,orange,grape", ",", 2) == ["apple,", "orange,grape"]',
        True,
        f"{DOC}#splitAfter",
    ),
    Ok('replace("Hello World", "World", "Universe") == "Hello Universe"', True, f"{DOC}#replace"),
    Ok('replace("aaa", "a", "b", 2)', "bba", f"{DOC}#replace (Go strings.Replace with n)"),
    Ok('repeat("Hi", 3) == "HiHiHi"', True, f"{DOC}#repeat"),
    Ok('indexOf("apple pie", "pie") == 6', True, f"{DOC}#indexOf"),
    Ok('indexOf("日本語", "語")', 6, f"{DOC}#indexOf (Go byte index)"),
    Ok('indexOf("abc", "x")', -1, f"{DOC}#indexOf (not found)"),
    Ok('lastIndexOf("apple pie apple", "apple") == 10', True, f"{DOC}#lastIndexOf"),
    Ok('hasPrefix("HelloWorld", "Hello") == true', True, f"{DOC}#hasPrefix"),
    Ok('hasSuffix("HelloWorld", "World") == true', True, f"{DOC}#hasSuffix"),
    Err(
        'repeat("x", -1)',
        "invalid argument for repeat (expected positive integer, got -1)",
        "run",
        f"{DOC}#repeat",
    ),
    Err('repeat("x", 2000000)', "memory budget exceeded", "run", f"{SHARED} (repeat size bound)"),
    Err(
        "upper(1)",
        "cannot use int as argument (type string) to call upper ",
        "compile",
        f"{CHK} (argument types)",
    ),
    Err("trim()", "not enough arguments to call trim", "compile", f"{CHK} (argument count)"),
]

DATES = [
    Ok('date("2023-08-14").Year() == 2023', True, f"{DOC}#date"),
    Ok('duration("1h").Seconds() == 3600', True, f"{DOC}#duration"),
    Ok('date("2023-08-14T00:00:00Z").Unix()', 1691971200, f"{DOC}#date"),
    Ok(
        'date("2023-08-14 00:00:00", "2006-01-02 15:04:05", "Europe/Zurich").Hour()',
        0,
        f"{DOC}#date",
    ),
    Ok(
        'date("2023-08-14 00:00:00", "2006-01-02 15:04:05", "Europe/Zurich").Unix()',
        1691964000,
        f"{DOC}#date (timezone)",
    ),
    Ok('date("2023-08-14 00:00:00").In(timezone("Europe/Zurich")).Hour()', 2, f"{DOC}#timezone"),
    Ok('date("2023-08-14").Month() == 8', True, f"{DOC}#date (Month starts from 1)"),
    Ok('string(date("2023-08-14").Month())', "August", f"{DOC}#date (Month)"),
    Ok('date("2023-08-14").Weekday().String()', "Monday", f"{DOC}#date (Weekday)"),
    Ok('date("2023-08-14").YearDay()', 226, f"{DOC}#date (YearDay)"),
    Ok('date("Mon, 14 Aug 2023 10:00:00 UTC").Hour()', 10, f"{DOC}#date (RFC1123)"),
    Ok('date("14 Aug 23 10:00 UTC").Minute()', 0, f"{DOC}#date (RFC822)"),
    Ok('date("2023-08-14T10:00:00+02:00").UTC().Hour()', 8, f"{DOC}#date (RFC3339)"),
    Ok('date("2023-08-14").Format("02 Jan 2006")', "14 Aug 2023", f"{DOC}#date (Go layouts)"),
    Ok('timezone("Europe/Zurich").String()', "Europe/Zurich", f"{DOC}#timezone"),
    Ok("type(now())", "time.Time", f"{DOC}#type"),
    Ok('now() > date("2023-08-14")', True, f"{DOC}#date-functions (compare dates)"),
    Ok(
        'date("2023-08-14") + duration("24h") > date("2023-08-14")',
        True,
        f"{DOC}#date-functions (add a duration)",
    ),
    Ok(
        '(date("2023-08-15") - date("2023-08-14")).Hours()',
        24.0,
        f"{DOC}#date-functions (subtract dates)",
    ),
    Ok(
        'date("2023-08-14").Sub(date("2023-08-14")).String() == "0s"',
        True,
        f"{TEST}: TestExpr (Time.Sub(Time).String())",
    ),
    Ok('duration("1h") == duration("1h")', True, f"{TEST}: TestExpr"),
    Ok('duration("1h") > duration("1m")', True, f"{TEST}: TestExpr"),
    Ok('duration("1h") <= duration("1m")', False, f"{TEST}: TestExpr"),
    Ok('duration("1h") + duration("1m")', GoDuration(H + H // 60), f"{TEST}: TestExpr"),
    Ok('duration("1h") - duration("1m")', GoDuration(H - H // 60), f"{TEST}: TestExpr"),
    Ok('7 * duration("1h")', GoDuration(7 * H), f"{TEST}: TestExpr"),
    Ok('duration("1h") * 7', GoDuration(7 * H), f"{TEST}: TestExpr"),
    Ok('duration("1s") * .5', 5e8, f"{TEST}: TestExpr"),
    Ok('string(duration("90m"))', "1h30m0s", f"{DOC}#duration (Go Duration.String)"),
    Ok('duration("1.5s").Milliseconds()', 1500, f"{DOC}#duration (units ns us ms s m h)"),
    Err(
        'duration("1d")',
        'time: unknown unit "d" in duration "1d"',
        "run",
        f"{DOC}#duration (valid units)",
    ),
    Err('date("not a date")', "invalid date not a date", "run", f"{DOC}#date (accepted formats)"),
    Err('timezone("Nope/Nowhere")', "unknown time zone Nope/Nowhere", "run", f"{DOC}#timezone"),
]

NUMBERS = [
    Ok("max(5, 7) == 7", True, f"{DOC}#max"),
    Ok("min(5, 7) == 5", True, f"{DOC}#min"),
    Ok("abs(-5) == 5", True, f"{DOC}#abs"),
    Ok("abs(-1.5)", 1.5, f"{DOC}#abs"),
    Ok("ceil(1.5) == 2.0", True, f"{DOC}#ceil"),
    Ok("ceil(1)", 1.0, f"{DOC}#ceil (returns a float)"),
    Ok("floor(1.5) == 1.0", True, f"{DOC}#floor"),
    Ok("round(1.5) == 2.0", True, f"{DOC}#round"),
    Ok("round(2.5)", 3.0, f"{DOC}#round (half away from zero)"),
    Ok("round(-1.5)", -2.0, f"{DOC}#round (half away from zero)"),
    Ok("max([1, 2, 3])", 3, f"{TEST}: TestExpr"),
    Ok("max(1, 2, 3)", 3, f"{TEST}: TestExpr"),
    Ok("min([1, 2, 3])", 1, f"{TEST}: TestExpr"),
    Ok("min(1, 2, 3)", 1, f"{TEST}: TestExpr"),
    Ok("max(1, 2.5)", 2.5, f"{DOC}#max (numbers)"),
    Ok("mean([1, 2, 3]) == 2.0", True, f"{DOC}#mean"),
    Ok("mean([])", 0.0, f"{DOC}#mean"),
    Ok("median([1, 2, 3]) == 2.0", True, f"{DOC}#median"),
    Ok("median([4, 1, 3, 2])", 2.5, f"{DOC}#median"),
    Err("abs('x')", "invalid argument for abs (type string)", "compile", f"{DOC}#abs"),
    Err("max()", "not enough arguments to call max", "compile", f"{DOC}#max"),
    Err("max('a', 1)", "invalid argument for max (type string)", "compile", f"{DOC}#max"),
]

ARRAYS = [
    Ok("first([1, 2, 3]) == 1", True, f"{DOC}#first"),
    Ok("first([])", None, f"{DOC}#first (empty array)"),
    Ok("last([1, 2, 3]) == 3", True, f"{DOC}#last"),
    Ok("last([])", None, f"{DOC}#last (empty array)"),
    Ok("take([1, 2, 3, 4], 2) == [1, 2]", True, f"{DOC}#take"),
    Ok("take([1, 2], 5)", [1, 2], f"{DOC}#take (fewer elements)"),
    Ok("reverse([3, 1, 4]) == [4, 1, 3]", True, f"{DOC}#reverse"),
    Ok("reverse(reverse([3, 1, 4])) == [3, 1, 4]", True, f"{DOC}#reverse"),
    Ok("sort([3, 1, 4]) == [1, 3, 4]", True, f"{DOC}#sort"),
    Ok('sort([3, 1, 4], "desc") == [4, 3, 1]', True, f"{DOC}#sort"),
    Ok('sort(["b", "c", "a"])', ["a", "b", "c"], f"{DOC}#sort"),
    Ok('join(["apple", "orange", "grape"], ",") == "apple,orange,grape"', True, f"{DOC}#join"),
    Ok('join(["apple", "orange", "grape"]) == "appleorangegrape"', True, f"{DOC}#join"),
    Ok("concat([1, 2], [3, 4]) == [1, 2, 3, 4]", True, f"{DOC}#concat"),
    Ok("flatten([1, 2, [3, 4]]) == [1, 2, 3, 4]", True, f"{DOC}#flatten"),
    Ok("flatten([[1, [2]], 3])", [1, 2, 3], f"{DOC}#flatten"),
    Ok("uniq([1, 2, 2, 3, 1])", [1, 2, 3], f"{SHARED} (uniq)"),
    Ok("get([1, 2, 3], 1) == 2", True, f"{DOC}#get"),
    Ok('get({"name": "John", "age": 30}, "name") == "John"', True, f"{DOC}#get"),
    Ok("get([1], 5)", None, f"{DOC}#get (out of range)"),
    Ok('get(nil, "a")', None, f"{TEST}: TestIssue785_get_nil"),
    Ok('get({}, "a")', None, f"{TEST}: TestIssue785_get_nil"),
    Ok("len([1, 2, 3]) == 3", True, f"{DOC}#len"),
    Ok('len({"name": "John", "age": 30}) == 2', True, f"{DOC}#len"),
    Ok('len("Hello") == 5', True, f"{DOC}#len"),
    Ok("len('北京')", 2, f"{TEST}: TestExpr (runes)"),
    Ok("len('👍🏻')", 2, f"{TEST}: TestExpr (runes)"),
    Ok("len('👍')", 1, f"{TEST}: TestExpr (runes)"),
    Ok("len([1, Two, 3])", 3, f"{TEST}: TestExpr", MOCK),
    Ok("len({a: 1, b: 2, c: 2})", 3, f"{TEST}: TestExpr"),
    Ok("len(ArrayOfInt)", 5, f"{TEST}: TestExpr", MOCK),
    Ok('sort(keys({"name": "John", "age": 30}))', ["age", "name"], f"{DOC}#keys"),
    Ok('sort(values({"a": 2, "b": 1}))', [1, 2], f"{DOC}#values"),
    Ok('toPairs({"name": "John"}) == [["name", "John"]]', True, f"{DOC}#toPairs"),
    Ok(
        'fromPairs([["name", "John"], ["age", 30]])',
        {"name": "John", "age": 30},
        f"{DOC}#fromPairs",
    ),
    Err("len(42)", "invalid argument for len (type int) (1:1)", "compile", CHK),
    Err("sort([1, 'a'])", "invalid operation", "run", f"{DOC}#sort (comparable elements)"),
    Err(
        "join([1, 2])",
        "interface conversion: interface {} is int, not string",
        "run",
        f"{DOC}#join (array of strings)",
    ),
    Err("first(1)", "cannot get first element from int", "compile", f"{DOC}#first"),
    Err("keys([1])", "cannot get keys from []interface {}", "compile", f"{DOC}#keys"),
]

CONVERSIONS = [
    Ok('type(42) == "int"', True, f"{DOC}#type"),
    Ok('type("hello") == "string"', True, f"{DOC}#type"),
    Ok("type(nil)", "nil", f"{DOC}#type"),
    Ok("type(1.5)", "float", f"{DOC}#type"),
    Ok("type(true)", "bool", f"{DOC}#type"),
    Ok("type([])", "array", f"{DOC}#type"),
    Ok("type({})", "map", f"{DOC}#type"),
    Ok('int("123") == 123', True, f"{DOC}#int"),
    Ok("int(1.9)", 1, f"{DOC}#int (truncates)"),
    Ok("int(-1.9)", -1, f"{DOC}#int (truncates)"),
    Ok('float("123.45") == 123.45', True, f"{DOC}#float"),
    Ok('float("1e3")', 1000.0, f"{DOC}#float"),
    Ok("float(2)", 2.0, f"{DOC}#float"),
    Ok('string(123) == "123"', True, f"{DOC}#string"),
    Ok("string(1e6)", "1e+06", f"{SHARED} (string is Go %v)"),
    Ok("string(1.5)", "1.5", f"{SHARED} (string is Go %v)"),
    Ok("string(nil)", "<nil>", f"{SHARED} (string is Go %v)"),
    Ok('string([1, "a"])', "[1 a]", f"{SHARED} (string is Go %v)"),
    Ok("string({a: 1, b: [true]})", "map[a:1 b:[true]]", f"{SHARED} (string is Go %v)"),
    Ok(
        'toJSON({"name": "John", "age": 30})',
        '{\n  "age": 30,\n  "name": "John"\n}',
        f"{DOC}#toJSON (indent 2, sorted keys)",
    ),
    Ok(
        'toJSON({"name": "John"})',
        '{\n  "name": "John"\n}',
        "argo util/expr/env/env_test.go: TestExprMigrationAlternatives",
    ),
    Ok("toJSON([1, 1.5, nil, true])", "[\n  1,\n  1.5,\n  null,\n  true\n]", f"{DOC}#toJSON"),
    Ok('toJSON("<a&b>")', '"\\u003ca\\u0026b\\u003e"', f"{DOC}#toJSON (Go escapes <>&)"),
    Ok(
        'fromJSON(\'{"name": "John", "age": 30}\')',
        {"name": "John", "age": 30.0},
        f"{DOC}#fromJSON (numbers are floats)",
    ),
    Ok('fromJSON("[1, 2]")', [1.0, 2.0], f"{DOC}#fromJSON"),
    Ok('toBase64("Hello World") == "SGVsbG8gV29ybGQ="', True, f"{DOC}#toBase64"),
    Ok('fromBase64("SGVsbG8gV29ybGQ=") == "Hello World"', True, f"{DOC}#fromBase64"),
    Err('int("1.5")', "invalid operation: int(1.5)", "run", f'{SHARED} (int("1.5") is an error)'),
    Err('float("abc")', "invalid operation: float(abc)", "run", f"{DOC}#float"),
    Err('fromJSON("{")', "unexpected end of JSON input", "run", f"{DOC}#fromJSON"),
    Err('fromBase64("!!")', "illegal base64 data at input byte 0", "run", f"{DOC}#fromBase64"),
    Err("int(true)", "invalid argument for int (type bool)", "compile", f"{DOC}#int"),
]

BITS = [
    Ok("bitand(0b1010, 0b1100) == 0b1000", True, f"{DOC}#bitand"),
    Ok("bitor(0b1010, 0b1100) == 0b1110", True, f"{DOC}#bitor"),
    Ok("bitxor(0b1010, 0b1100) == 0b110", True, f"{DOC}#bitxor"),
    Ok("bitnand(0b1010, 0b1100) == 0b10", True, f"{DOC}#bitnand"),
    Ok("bitnot(0b1010) == -0b1011", True, f"{DOC}#bitnot"),
    Ok("bitshl(0b101101, 2) == 0b10110100", True, f"{DOC}#bitshl"),
    Ok("bitshr(0b101101, 2) == 0b1011", True, f"{DOC}#bitshr"),
    Ok("bitushr(-0b101, 2) == 4611686018427387902", True, f"{DOC}#bitushr"),
    Ok("bitnot(10)", -11, f"{TEST}: TestExpr"),
    Ok("bitxor(15, 32)", 47, f"{TEST}: TestExpr"),
    Ok("bitand(90, 34)", 2, f"{TEST}: TestExpr"),
    Ok("bitnand(35, 9)", 34, f"{TEST}: TestExpr"),
    Ok("bitor(10, 5)", 15, f"{TEST}: TestExpr"),
    Ok("bitshr(7, 2)", 1, f"{TEST}: TestExpr"),
    Ok("bitshl(7, 2)", 28, f"{TEST}: TestExpr"),
    Ok("bitushr(-100, 5)", 576460752303423484, f"{TEST}: TestExpr"),
    Err(
        "bitshl(1, -1)",
        "invalid operation: negative shift count -1 (type int)",
        "run",
        f"{DOC}#bitshl",
    ),
    Err(
        "bitand(1.5, 1)",
        "cannot use float64 as argument (type int) to call bitand",
        "compile",
        f"{DOC}#bitand (ints)",
    ),
]

SYNTAX = [
    Err("1 +", "unexpected token EOF (1:4)", "compile", f"{SHARED} (errors give the position)"),
    Err("(1 + 2", "unexpected token EOF", "compile", f"{SHARED} (errors give the position)"),
    Err(
        "1 2",
        'unexpected token Number("2") (1:3)',
        "compile",
        f"{SHARED} (errors give the position)",
    ),
    Err('"abc', "literal not terminated", "compile", f"{SHARED} (errors give the position)"),
    Err(
        "1 @ 2",
        "unrecognized character: U+0040 '@' (1:3)",
        "compile",
        f"{SHARED} (errors give the position)",
    ),
    Err("/* open", "unclosed comment", "compile", f"{DOC}#literals (comments)"),
    Err("0x", "invalid hex literal", "compile", f"{DOC}#literals (hex)"),
    Err("123abc", 'bad number syntax: "123a"', "compile", f"{DOC}#literals"),
    Err("9223372036854775808", "invalid integer literal", "compile", f"{SHARED} (64-bit ints)"),
    Err(
        "foo.", "unexpected end of expression", "compile", f"{DOC}#membership-operator", {"foo": {}}
    ),
    Err(
        "invalid expression",
        'unexpected token Identifier("expression")',
        "compile",
        "argo util/expr/argoexpr/eval_test.go: parse error",
    ),
    Err("A(A)", "unknown name A", "compile", f"{TEST}: TestExpr_wierd_cases"),
    Err("filter(1..3; 1)", "unexpected token", "compile", f"{DOC}#predicate"),
    Err(
        "filter(1..3, # > 1; true)",
        "wrap predicate with brackets { and }",
        "compile",
        f"{DOC}#predicate",
    ),
    Err("1; " * 10_001, "exceeds maximum allowed nodes", "compile", f"{TEST}: TestMaxNodes"),
]

ENV_QUIRKS = [
    Ok("FOO == 1", False, "argo util/expr/argoexpr/eval_test.go: eval false", {"FOO": 2}),
    Ok(" FOO == 1 ", True, "argo util/expr/argoexpr/eval_test.go: eval true", {"FOO": 1}),
    Ok("split == 1", True, "argo util/expr/argoexpr/eval_test.go: override builtins", {"split": 1}),
    Ok("join == 1", True, "argo util/expr/argoexpr/eval_test.go: override builtins", {"join": 1}),
    Ok("日本 + 1", 2, f"{SHARED} (unicode identifiers)", {"日本": 1}),
    Ok(
        "m.ok == true", True, f"{SHARED} (members of untyped maps are unknown)", {"m": {"ok": True}}
    ),
    Err(
        "retries + 1",
        "invalid operation: + (mismatched types string and int)",
        "compile",
        "argo docs/variables.md#retrystrategy (variables are strings)",
        {"retries": "1"},
    ),
    Err(
        "undefined_name",
        "unknown name undefined_name (1:1)",
        "compile",
        f"{SHARED} (strict environment)",
    ),
    Err(
        "m.x.y.z", "cannot fetch y from <nil>", "run", f"{SHARED} (member access on nil)", {"m": {}}
    ),
    Err(
        "m.f(1)",
        "reflect: call of reflect.Value.Call on zero Value",
        "run",
        f"{SHARED} (calling nil)",
        {"m": {}},
    ),
    Err("m(1)", "is not callable", "compile", f"{SHARED} (calling a non-function)", {"m": {}}),
]

SAFE = f"{SHARED}#safety (bounded work per evaluation)"
BIG = 'let s = repeat("ab", 400000); '
SAFETY = [
    Err(
        'replace(repeat("x", 999999), "", repeat("y", 999))', "memory budget exceeded", "run", SAFE
    ),
    Err(BIG + "join(map(0..999, s))", "memory budget exceeded", "run", SAFE),
    Err(BIG + "string(map(0..99, s))", "memory budget exceeded", "run", SAFE),
    Err(BIG + 'split(s + s + s, "")', "memory budget exceeded", "run", SAFE),
    Err(
        "let l = 0..99999; concat(l, l, l, l, l, l, l, l, l, l, l)",
        "memory budget exceeded",
        "run",
        SAFE,
    ),
    Err(BIG + "s" + " + s" * 21, "memory budget exceeded", "run", SAFE),
    Err("map(0..999, 0..999)", "memory budget exceeded", "run", SAFE),
    Err("(" * 2000 + "1" + ")" * 2000, "nesting exceeds", "compile", SAFE),
    Err("1" + " + 1" * 2000, "nesting exceeds", "compile", SAFE),
]

ALL = (
    SAFETY
    + LITERALS
    + ARITHMETIC
    + COMPARISON
    + LOGIC
    + CONDITIONAL
    + MEMBERSHIP
    + STRING_OPERATORS
    + SLICES
    + RANGES_AND_PIPES
    + VARIABLES
    + DOLLAR_ENV
    + PREDICATES
    + STRING_FUNCTIONS
    + DATES
    + NUMBERS
    + ARRAYS
    + CONVERSIONS
    + BITS
    + SYNTAX
    + ENV_QUIRKS
)
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
    assert len(ALL) >= 300
