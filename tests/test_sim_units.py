"""Unit tests of the simulator's pure parts: merge patch, JSON patch and selectors.

The patch cases are the RFCs' own examples (RFC 7386 Appendix A, RFC 6902 Appendix A),
so the API server's patch semantics are pinned to their specifications.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from agent_sim.patching import (
    JsonPatchError,
    PatchDecodeError,
    apply_json_patch,
    decode_json_patch,
    merge_patch,
)
from agent_sim.selectors import FieldSelector, LabelSelector, SelectorError
from hypothesis import given
from hypothesis import strategies as st

RFC7386_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_EXAMPLES)
def test_merge_patch_rfc7386_appendix_a(target: Any, patch: Any, expected: Any) -> None:
    """RFC 7386 Appendix A: every example test case."""
    assert merge_patch(target, patch) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=2), children, max_size=3)
    ),
    max_leaves=12,
)


@given(json_values, json_values)
def test_merge_patch_never_mutates_its_inputs(target: Any, patch: Any) -> None:
    """Copy-on-write: stored objects are shared with every watcher and the history, so
    a merge patch must leave both the target and the patch untouched."""
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    merge_patch(target, patch)
    assert (target, patch) == (target_before, patch_before)


def test_merge_patch_shares_untouched_subtrees() -> None:
    """Copy-on-write: a status patch must not copy ``spec`` (O(patch), not O(object))."""
    stored = {"spec": {"tasks": {"n1": {}}}, "status": {"nodes": {"a": {}}}}
    patched = merge_patch(stored, {"status": {"nodes": {"b": {"phase": "Succeeded"}}}})
    assert patched["spec"] is stored["spec"]
    assert patched["status"]["nodes"]["a"] is stored["status"]["nodes"]["a"]
    assert stored["status"]["nodes"] == {"a": {}}


RFC6902_EXAMPLES = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    (
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    (
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ({"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"b": 1}, "c": {"b": 1}}),
]


@pytest.mark.parametrize(("document", "operations", "expected"), RFC6902_EXAMPLES)
def test_json_patch_rfc6902_appendix_a(
    document: Any, operations: list[dict[str, Any]], expected: Any
) -> None:
    """RFC 6902 Appendix A: the examples that succeed; the input is never mutated."""
    before = json.dumps(document, sort_keys=True)
    assert apply_json_patch(document, decode_json_patch(operations)) == expected
    assert json.dumps(document, sort_keys=True) == before


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "test", "path": "/baz", "value": "bar"}],  # A.9 test fails
        [{"op": "add", "path": "/baz/bat", "value": "qux"}],  # A.12 missing parent
        [{"op": "test", "path": "/foo/0", "value": True}],  # true is not the number 1
        [{"op": "remove", "path": "/nope"}],
        [{"op": "add", "path": "/foo/01", "value": 1}],  # leading zero index
        [{"op": "frob", "path": "/foo"}],
        [{"op": "move", "from": "/foo", "path": "/foo/child"}],
        [{"op": "add", "path": "/x"}],  # missing value
    ],
)
def test_json_patch_errors(operations: list[dict[str, Any]]) -> None:
    """RFC 6902 section 5 (Error Handling): an operation that cannot apply fails the
    whole patch."""
    with pytest.raises(JsonPatchError):
        apply_json_patch({"baz": "qux", "foo": [1]}, decode_json_patch(operations))


def test_json_patch_must_be_a_list_of_objects() -> None:
    """RFC 6902 section 3: the patch document is a JSON array of operation objects; the
    API server answers 400 with Go's decoding error otherwise."""
    with pytest.raises(PatchDecodeError, match="cannot unmarshal object into Go value"):
        decode_json_patch({"status": {}})
    with pytest.raises(PatchDecodeError, match="cannot unmarshal string"):
        decode_json_patch(["op"])


def test_label_selector_parsing_and_matching() -> None:
    """Labels and Selectors: label keys may carry a DNS prefix; values may be empty."""
    selector = LabelSelector.parse(
        "workflows.argoproj.io/controller-instanceid=main, workflows.argoproj.io/completed!=true"
    )
    assert selector.matches({"workflows.argoproj.io/controller-instanceid": "main"})
    assert not selector.matches(
        {
            "workflows.argoproj.io/controller-instanceid": "main",
            "workflows.argoproj.io/completed": "true",
        }
    )
    assert LabelSelector.parse("a=").matches({"a": ""})
    assert LabelSelector.parse("").matches(None)


@pytest.mark.parametrize("text", ["a=b c", "-a=b", "a in ()", "a,,b", "a=(b)"])
def test_bad_label_selectors(text: str) -> None:
    """Labels and Selectors: syntax and character set of keys and values."""
    with pytest.raises(SelectorError, match="labelSelector"):
        LabelSelector.parse(text)


def test_field_selector_errors_per_resource_kind() -> None:
    """Field Selectors: unsupported fields are rejected, worded per resource family."""
    allowed = ("metadata.name", "metadata.namespace")
    with pytest.raises(SelectorError, match=re.escape('"spec.a" is not a known field selector')):
        FieldSelector.parse("spec.a=b", allowed=allowed, custom=True)
    with pytest.raises(SelectorError, match=re.escape("field label not supported: spec.a")):
        FieldSelector.parse("spec.a=b", allowed=allowed, custom=False)
    with pytest.raises(SelectorError, match="not of the form"):
        FieldSelector.parse("metadata.name", allowed=allowed, custom=True)
    pinned = FieldSelector.parse(
        "metadata.name=wf,metadata.namespace!=x", allowed=allowed, custom=True
    )
    assert pinned.exact("metadata.name") == "wf"
    assert pinned.exact("metadata.namespace") is None
    assert pinned.matches({"metadata.name": "wf", "metadata.namespace": "y"})
    assert not pinned.matches({"metadata.name": "wf", "metadata.namespace": "x"})
