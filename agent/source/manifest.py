"""The local source: a WorkflowTaskSet manifest file, read once, as one snapshot.

``argo-http-agent local`` has no API server to list and watch; its whole world is one
manifest (YAML or JSON, ``-`` for stdin) and, for secret-sourced headers, a file of
Kubernetes ``Secret`` manifests. This module reads both and hands the engine the same
:class:`~agent.core.refs.TaskSetSnapshot` the cluster watch builds from an API object
(:meth:`TaskSetSnapshot.from_object`), so every scheduling rule of the engine applies to a
file exactly as to the cluster.

Unlike the watch, which logs a malformed taskset and carries on, a local run has nobody to
carry on for: an unusable manifest is refused up front with a :class:`LocalInputError`
whose text is one line naming the file and the field (the CLI exits 2 with it). Only the
envelope is checked (``kind``, ``metadata``, ``spec.tasks`` being a mapping); each
template is parsed when its node runs, so one bad template fails its own node.

A manifest need not be complete: a missing namespace is ``default`` (as ``kubectl``
assumes) and a missing name ``local``, so a hand-written file with only ``spec.tasks``
runs. Node IDs are strings on the wire; YAML reads ``1``, ``true`` or ``~`` as a number,
a bool or null, and ``1`` and ``"1"`` would then name the same node, so a non-string key
in ``spec.tasks`` or ``status.nodes`` is refused with a message naming it.

The file may be hostile (a shared CI runner, a manifest from elsewhere), so reading it is
bounded: text that starts with ``{`` or ``[`` is JSON and goes through orjson; YAML goes
through libyaml's ``CSafeLoader`` when PyYAML has it. YAML is composed into its node graph
first and measured before anything is constructed: aliases are counted as the copies they
expand into (a 630-byte "billion laughs" is refused, not built), and both formats are
limited in nesting depth (:data:`MAX_DEPTH`) and size (:data:`MAX_NODES`).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import yaml

from agent.core.refs import TaskSetSnapshot
from agent.executor.secrets import StaticSecretResolver

__all__ = [
    "DEFAULT_NAME",
    "DEFAULT_NAMESPACE",
    "MAX_DEPTH",
    "MAX_NODES",
    "LocalInputError",
    "load_manifest",
    "load_secret_manifests",
    "to_snapshot",
    "validate_manifest",
]

#: Assumed when a manifest's ``metadata.namespace`` is missing or empty (kubectl's default).
DEFAULT_NAMESPACE = "default"
#: Assumed when a manifest's ``metadata.name`` is missing or empty.
DEFAULT_NAME = "local"
#: Deepest nesting of mappings and lists accepted in a file (a manifest needs about 10).
MAX_DEPTH = 100
#: Most values (scalars, mappings, lists) a file may expand into, aliases included.
MAX_NODES = 2_000_000

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LocalInputError(ValueError):
    """Unusable input; ``str()`` is one line naming the file (when known) and the field."""


def load_manifest(path: str) -> dict[str, Any]:
    """Read a WorkflowTaskSet manifest (YAML or JSON; ``-`` reads stdin)."""
    document = _load_yaml(path, many=False)
    if not isinstance(document, dict):
        raise LocalInputError(f"{path}: expected a WorkflowTaskSet manifest (a mapping)")
    try:
        validate_manifest(document)
    except LocalInputError as exc:
        raise LocalInputError(f"{path}: {exc}") from None
    return document


def load_secret_manifests(path: str) -> list[dict[str, Any]]:
    """Read Secret manifests: several YAML documents and/or ``kind: List`` items."""
    documents = _load_yaml(path, many=True)
    manifests: list[dict[str, Any]] = []
    for document in documents:
        if document is None:
            continue
        if isinstance(document, dict) and document.get("kind") == "List":
            items = document.get("items") or []
            if not isinstance(items, list):
                raise LocalInputError(f"{path}: items: expected a list of Secret manifests")
            manifests.extend(items)
        else:
            manifests.append(document)
    try:
        StaticSecretResolver.from_manifests(manifests)  # validate now, name the file
    except ValueError as exc:
        raise LocalInputError(f"{path}: {exc}") from None
    return manifests


def validate_manifest(manifest: Mapping[str, Any]) -> None:
    """Check the envelope of a WorkflowTaskSet; raise :class:`LocalInputError` naming the field."""
    kind = manifest.get("kind")
    if kind is not None and kind != "WorkflowTaskSet":
        raise LocalInputError(f"kind: expected WorkflowTaskSet, got {kind!r}")
    metadata = manifest.get("metadata", {})
    if metadata is not None and not isinstance(metadata, Mapping):
        raise LocalInputError("metadata: expected a mapping")
    for field in ("name", "namespace"):
        value = (metadata or {}).get(field)
        if value is not None and not isinstance(value, str):
            raise LocalInputError(f"metadata.{field}: expected a string")
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        raise LocalInputError("spec: required, a mapping with spec.tasks")
    tasks = spec.get("tasks")
    if tasks is None:
        raise LocalInputError("spec.tasks: required, a mapping of node ID to template")
    if not isinstance(tasks, Mapping):
        raise LocalInputError("spec.tasks: expected a mapping of node ID to template")
    _check_node_ids("spec.tasks", tasks)
    status = manifest.get("status")
    nodes = status.get("nodes") if isinstance(status, Mapping) else None
    if isinstance(nodes, Mapping):
        _check_node_ids("status.nodes", nodes)


def _check_node_ids(field: str, entries: Mapping[Any, Any]) -> None:
    for key in entries:
        if not isinstance(key, str):
            raise LocalInputError(
                f"{field}: node ID {key!r} is a {_yaml_type(key)}, not a string; "
                f"quote it ({field}: {{'{key}': ...}})"
            )


def _yaml_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def to_snapshot(manifest: Mapping[str, Any]) -> TaskSetSnapshot:
    """What the engine sees of a (valid) manifest, as the watch would show it.

    Raises :class:`LocalInputError` for an unusable manifest. The returned mappings are
    fresh: the manifest itself is never modified.
    """
    validate_manifest(manifest)
    metadata = dict(manifest.get("metadata") or {})
    metadata["namespace"] = metadata.get("namespace") or DEFAULT_NAMESPACE
    metadata["name"] = metadata.get("name") or DEFAULT_NAME
    status = manifest.get("status")
    nodes = status.get("nodes") if isinstance(status, Mapping) else None
    snapshot = TaskSetSnapshot.from_object(
        {
            "metadata": metadata,
            "spec": {"tasks": _by_node_id(manifest["spec"]["tasks"])},
            "status": {"nodes": _by_node_id(nodes) if isinstance(nodes, Mapping) else {}},
        }
    )
    # The file is what the user asked to run: a workflow the controller has since marked
    # completed is still executed here (the engine would forget it on sight).
    return dataclasses.replace(snapshot, completed=False)


def _by_node_id(entries: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(node_id): value for node_id, value in entries.items()}


def _load_yaml(path: str, *, many: bool) -> Any:
    """JSON (orjson) or YAML (libyaml), bounded in depth, size and alias expansion."""
    text = _read(path)
    if text.lstrip()[:1] in ("{", "["):
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise LocalInputError(f"{path}: not valid JSON: {exc}") from None
        _check_depth(path, document)
        return [document] if many else document
    try:
        return _load_bounded_yaml(path, text, many=many)
    except RecursionError:
        raise LocalInputError(f"{path}: nested more than {MAX_DEPTH} levels deep") from None


def _load_bounded_yaml(path: str, text: str, *, many: bool) -> Any:
    loader = _Loader(text)
    try:
        if not many:  # as yaml.safe_load: one document at most
            node = loader.get_single_node()
            if node is None:
                return None
            _measure(path, node, MAX_NODES)
            return loader.construct_document(node)
        documents: list[Any] = []
        budget = MAX_NODES
        while loader.check_node():
            node = loader.get_node()
            budget -= _measure(path, node, budget)
            documents.append(loader.construct_document(node))
        return documents
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise LocalInputError(f"{path}: not valid YAML or JSON{where}: {problem}") from None
    finally:
        loader.dispose()


def _measure(path: str, root: yaml.Node, budget: int) -> int:
    """How many values ``root`` expands into (aliases counted as copies); refuse if too many.

    Iterative, and each distinct node is sized once, so a graph of aliases that expands
    into billions of values is measured in time proportional to its text.
    """
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            raise LocalInputError(f"{path}: nested more than {MAX_DEPTH} levels deep")
        if id(node) in sizes:
            continue
        children = list(_children(node))
        if not done and children:
            if id(node) in visiting:
                raise LocalInputError(f"{path}: a YAML alias refers to its own anchor")
            visiting.add(id(node))
            stack.append((node, depth, True))
            stack.extend((child, depth + 1, False) for child in children if id(child) not in sizes)
            continue
        size = 1 + sum(sizes.get(id(child), 1) for child in children)
        if size > budget:
            raise LocalInputError(
                f"{path}: expands into more than {MAX_NODES} values (YAML aliases count as copies)"
            )
        sizes[id(node)] = size
    return sizes[id(root)]


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _check_depth(path: str, document: Any) -> None:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise LocalInputError(f"{path}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def _read(path: str) -> str:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise LocalInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LocalInputError(f"{path}: not UTF-8 text") from None
    return text
