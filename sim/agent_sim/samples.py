"""WorkflowTaskSets shaped as Argo's controller creates them, for tests, the demo and load tests.

The controller names a taskset after its Workflow, puts it in the Workflow's namespace and
makes the Workflow its owner (so it is garbage-collected with it); ``spec.tasks`` maps node
IDs to resolved templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["http_task", "secret", "workflow_taskset"]


def workflow_taskset(
    name: str,
    tasks: Mapping[str, Any],
    *,
    namespace: str = "argo",
    labels: Mapping[str, str] | None = None,
    owned: bool = True,
) -> dict[str, Any]:
    """A WorkflowTaskSet; ``owned=False`` leaves out the Workflow ownerReference (a real
    cluster would garbage-collect a taskset whose owner does not exist)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if owned:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Workflow",
                "name": name,
                "uid": f"uid-{name}",
                "controller": True,
            }
        ]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTaskSet",
        "metadata": metadata,
        "spec": {"tasks": dict(tasks)},
    }


def http_task(url: str, **fields: Any) -> dict[str, Any]:
    """A resolved HTTP template; ``fields`` are further ``http`` fields (camelCase)."""
    return {"name": "http", "http": {"url": url, **fields}}


def secret(name: str, string_data: Mapping[str, str], *, namespace: str = "argo") -> dict[str, Any]:
    """A core/v1 Secret with ``stringData`` (for ``valueFrom.secretKeyRef`` headers)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": dict(string_data),
    }
