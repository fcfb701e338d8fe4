"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), as the API server applies them.

Merge patches are the hot path (the agent sends one per batch of results), so
:func:`merge_patch` is copy-on-write: it copies only the mappings along the patched paths
and shares every untouched subtree with the stored object. Stored objects are therefore
treated as immutable everywhere in the simulator. JSON patches are rare (tests and
operators) and work on a private copy.

Both are written here rather than taken from a library because the server's observable
behaviour is what matters: which inputs are a 400 (undecodable patch), which a 422
(an operation that does not apply), and the 10,000-operation limit (413); those come
from ``k8s.io/apiserver`` and ``evanphx/json-patch``, not from RFC text alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = [
    "MAX_JSON_PATCH_OPERATIONS",
    "JsonPatchError",
    "PatchDecodeError",
    "apply_json_patch",
    "decode_json_patch",
    "merge_patch",
]

# k8s.io/apiserver/pkg/endpoints/handlers/patch.go: maxJSONPatchOperations.
MAX_JSON_PATCH_OPERATIONS = 10_000


class PatchDecodeError(ValueError):
    """The patch document itself cannot be decoded (the server answers 400)."""


class JsonPatchError(ValueError):
    """An operation does not apply to the document (the server answers 422)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch; never mutates ``target`` or ``patch``.

    A null removes a key, an object merges recursively, anything else (lists included)
    replaces. Untouched subtrees of ``target`` are shared with the result.
    """
    if not isinstance(patch, Mapping):
        return patch
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            result[key] = merge_patch(result.get(key), value)
        else:
            result[key] = value
    return result


def decode_json_patch(document: Any) -> list[dict[str, Any]]:
    """Check the shape of a parsed JSON patch: a list of operation objects.

    Raises :class:`PatchDecodeError` with the text Go's decoder gives, e.g. for the
    dict body kubernetes_asyncio sends by default as ``application/json-patch+json``.
    """
    if not isinstance(document, list):
        raise PatchDecodeError(
            f"json: cannot unmarshal {_go_type(document)} into Go value of type jsonpatch.Patch"
        )
    for operation in document:
        if not isinstance(operation, dict):
            raise PatchDecodeError(
                f"json: cannot unmarshal {_go_type(operation)} into Go value of type "
                "jsonpatch.Operation"
            )
    return document


def apply_json_patch(document: Any, operations: list[dict[str, Any]]) -> Any:
    """Apply RFC 6902 operations (add, remove, replace, move, copy, test) to a copy."""
    doc = _copy(document)
    for index, operation in enumerate(operations):
        op = operation.get("op")
        try:
            doc = _apply_one(doc, op, operation)
        except JsonPatchError as err:
            raise JsonPatchError(f"operation {index} ({op}): {err}") from None
    return doc


def _apply_one(doc: Any, op: Any, operation: dict[str, Any]) -> Any:
    path = _pointer(operation, "path")
    if op == "add":
        return _add(doc, path, _copy(_value(operation)))
    if op == "remove":
        _, doc = _remove(doc, path)
        return doc
    if op == "replace":
        _get(doc, path)  # must exist
        _, doc = _remove(doc, path)
        return _add(doc, path, _copy(_value(operation)))
    if op == "move":
        source = _pointer(operation, "from")
        if path[: len(source)] == source and len(path) > len(source):
            raise JsonPatchError("cannot move a value into one of its children")
        value, doc = _remove(doc, source)
        return _add(doc, path, value)
    if op == "copy":
        source = _pointer(operation, "from")
        return _add(doc, path, _copy(_get(doc, source)))
    if op == "test":
        if not _json_equal(_get(doc, path), _value(operation)):
            raise JsonPatchError(f"testing value {_render(path)} failed: test failed")
        return doc
    raise JsonPatchError(f"Unexpected kind: {op}")


def _value(operation: dict[str, Any]) -> Any:
    if "value" not in operation:
        raise JsonPatchError("missing value")
    return operation["value"]


def _pointer(operation: dict[str, Any], key: str) -> list[str]:
    raw = operation.get(key)
    if not isinstance(raw, str):
        raise JsonPatchError(f"missing {key}")
    if raw == "":
        return []
    if not raw.startswith("/"):
        raise JsonPatchError(f"invalid JSON pointer {raw!r} in {key}: must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in raw[1:].split("/")]


def _render(path: list[str]) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path)


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise JsonPatchError(f"invalid array index {token!r}")
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise JsonPatchError(f"array index {index} out of bounds")
    return index


def _get(doc: Any, path: list[str]) -> Any:
    node = doc
    for token in path:
        if isinstance(node, dict):
            if token not in node:
                raise JsonPatchError(f"doc is missing path: {_render(path)}: missing value")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, allow_end=False)]
        else:
            raise JsonPatchError(f"doc is missing path: {_render(path)}: missing value")
    return node


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _get(doc, path[:-1])
    token = path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, allow_end=True), value)
    else:
        raise JsonPatchError(f"add operation does not apply: doc is missing path: {_render(path)}")
    return doc


def _remove(doc: Any, path: list[str]) -> tuple[Any, Any]:
    if not path:
        return doc, None
    parent = _get(doc, path[:-1])
    token = path[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise JsonPatchError(f"doc is missing path: {_render(path)}: missing value")
        return parent.pop(token), doc
    if isinstance(parent, list):
        return parent.pop(_index(parent, token, allow_end=False)), doc
    raise JsonPatchError(f"doc is missing path: {_render(path)}: missing value")


def _json_equal(a: Any, b: Any) -> bool:
    # JSON equality: bool is not a number, 1 == 1.0, objects ignore key order.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _copy(value: Any) -> Any:
    # A JSON round trip is the fastest deep copy of JSON data in CPython; orjson refuses
    # integers beyond 64 bits, which the standard library copies exactly.
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:
        return json.loads(json.dumps(value))


def _go_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null"
