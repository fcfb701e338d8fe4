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
runs. Node IDs are strings on the wire; a YAML key such as ``1`` is read as a number, so
the snapshot names every node by ``str(key)``, the ID it is printed under.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from agent.core.refs import TaskSetSnapshot
from agent.executor.secrets import StaticSecretResolver

__all__ = [
    "DEFAULT_NAME",
    "DEFAULT_NAMESPACE",
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
    try:
        if many:
            return list(yaml.safe_load_all(text))
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise LocalInputError(f"{path}: not valid YAML or JSON{where}: {problem}") from None
