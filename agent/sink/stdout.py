"""The local sink: results collected in memory, printed once as the filled manifest.

The cluster's sink (:mod:`agent.sink.status`) sends each result to the API server as it
finishes; the local runner has one reader, a person or a script, who wants the whole
answer at the end in the shape Argo's agent writes it. So :class:`StdoutSink` only
collects: :meth:`StdoutSink.submit` keeps the latest result per node,
:meth:`StdoutSink.discard` forgets results the engine withdraws (a node that left
``spec.tasks``), and :meth:`StdoutSink.filled` writes them into a copy of the manifest's
``status.nodes`` with :func:`~agent.core.model.dump` (camelCase, Go's ``omitempty``), the
exact bytes Argo's agent would patch.

``status.nodes`` of the copy lists the nodes of ``spec.tasks``, in spec order: each with
its new result, or, when the engine did not run it (its entry was already fulfilled),
with the entry the manifest already had, unchanged. An entry whose node is not in
``spec.tasks`` is left out: the controller knows no such node. ``overwrite`` needs no
special care here: a new result always replaces the node's entry as a whole.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Literal

import yaml

from agent.core.model import NodeResult, dump
from agent.core.refs import TaskRef, TaskSetKey

__all__ = ["OutputFormat", "StdoutSink", "render"]

OutputFormat = Literal["yaml", "json"]


class StdoutSink:
    """A :class:`~agent.core.ports.ResultSink` that keeps results for printing."""

    def __init__(self) -> None:
        self._results: dict[TaskSetKey, dict[str, NodeResult]] = {}

    def submit(self, ref: TaskRef, result: NodeResult, *, overwrite: bool = False) -> None:
        self._results.setdefault(ref.key, {})[ref.node_id] = result

    def discard(self, key: TaskSetKey, node_ids: frozenset[str] | None = None) -> None:
        if node_ids is None:
            self._results.pop(key, None)
            return
        results = self._results.get(key)
        if results is not None:
            for node_id in node_ids:
                results.pop(node_id, None)

    def results(self, key: TaskSetKey) -> dict[str, NodeResult]:
        """The results collected for one taskset, by node ID (a copy)."""
        return dict(self._results.get(key, {}))

    def filled(self, manifest: Mapping[str, Any], *, key: TaskSetKey) -> dict[str, Any]:
        """A deep copy of ``manifest`` with ``status.nodes`` as described in the module.

        ``key`` is the taskset the results were submitted under (the source's snapshot
        key, which may hold defaults the manifest lacks).
        """
        out = copy.deepcopy(dict(manifest))
        spec = out.get("spec")
        tasks = spec.get("tasks") if isinstance(spec, Mapping) else None
        status = out.get("status")
        if not isinstance(status, dict):
            status = {}
        previous = status.get("nodes")
        before = (
            {str(node_id): entry for node_id, entry in previous.items()}
            if isinstance(previous, Mapping)
            else {}
        )
        results = self._results.get(key, {})
        nodes: dict[str, Any] = {}
        for node_id in (str(n) for n in tasks or ()):
            result = results.get(node_id)
            if result is not None:
                nodes[node_id] = dump(result)
            elif node_id in before:
                nodes[node_id] = before[node_id]
        status["nodes"] = nodes
        out["status"] = status
        return out


def render(document: Mapping[str, Any], *, output: OutputFormat) -> str:
    """The text printed for a manifest: block YAML in key order, or indented JSON."""
    if output == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    text: str = yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True)
    return text
