"""The hot-path JSON codec decodes and encodes exactly as the standard library does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core import jsoncodec

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_loads_equals_the_standard_library(value: object) -> None:
    data = json.dumps(value).encode()
    decoded = jsoncodec.loads(data)
    assert decoded == json.loads(data)
    assert repr(decoded) == repr(json.loads(data))  # same types: an int stays an int


@pytest.mark.parametrize(
    "data",
    [
        b'{"id": 123456789012345678901234567890}',  # beyond 64 bits: exact, not a float
        b'{"n": 18446744073709551616}',
        b'{"n": -9223372036854775809}',
        b'{"n": 1e400}',  # orjson refuses infinity; json gives inf
        b'{"s": "\\ud800"}',  # a lone surrogate: orjson refuses, json accepts
    ],
)
def test_loads_keeps_what_orjson_would_change_or_refuse(data: bytes) -> None:
    assert repr(jsoncodec.loads(data)) == repr(json.loads(data))


def test_loads_rejects_what_json_rejects() -> None:
    with pytest.raises(ValueError):
        jsoncodec.loads(b'{"a": ')


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_dumps_is_compact_json_of_the_same_document(value: object) -> None:
    assert json.loads(jsoncodec.dumps(value)) == value


def test_dumps_writes_compact_utf8_like_go() -> None:
    assert jsoncodec.dumps({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'.encode()
    assert jsoncodec.dumps({"n": 10**30}) == b'{"n":1000000000000000000000000000000}'
