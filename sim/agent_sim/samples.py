"""WorkflowTaskSets shaped as Argo's controller creates them, for tests, the demo and load tests.

The controller names a taskset after its Workflow, puts it in the Workflow's namespace and
makes the Workflow its owner (so it is garbage-collected with it); ``spec.tasks`` maps node
IDs to resolved templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["configmap", "http_task", "secret", "workflow", "workflow_taskset"]


def workflow_taskset(
    name: str,
    tasks: Mapping[str, Any],
    *,
    namespace: str = "argo",
    labels: Mapping[str, str] | None = None,
    owned: bool = True,
    owner_uid: str = "",
) -> dict[str, Any]:
    """A WorkflowTaskSet; ``owned=False`` leaves out the Workflow ownerReference (a real
    cluster would garbage-collect a taskset whose owner does not exist). ``owner_uid``:
    the owner Workflow's ``metadata.uid`` (default ``uid-<name>``)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if owned:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Workflow",
                "name": name,
                "uid": owner_uid or f"uid-{name}",
                "controller": True,
            }
        ]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTaskSet",
        "metadata": metadata,
        "spec": {"tasks": dict(tasks)},
    }


def workflow(
    name: str,
    *,
    namespace: str = "argo",
    service_account: str | None = None,
    template_ref: str | None = None,
    stored_service_account: str | None = None,
    phase: str = "Running",
) -> dict[str, Any]:
    """A Workflow as the controller has persisted it once it runs (``status.phase`` set;
    with ``template_ref``, ``status.storedWorkflowTemplateSpec`` holds the joined spec,
    whose ``serviceAccountName`` is ``stored_service_account``)."""
    spec: dict[str, Any] = {"entrypoint": "main"}
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    status: dict[str, Any] = {"phase": phase} if phase else {}
    if template_ref is not None:
        spec["workflowTemplateRef"] = {"name": template_ref}
        stored: dict[str, Any] = {"entrypoint": "main"}
        if stored_service_account is not None:
            stored["serviceAccountName"] = stored_service_account
        status["storedWorkflowTemplateSpec"] = stored
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
        "status": status,
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


def configmap(
    name: str, data: Mapping[str, Any], *, namespace: str = "argo", **annotations: str
) -> dict[str, Any]:
    """A core/v1 ConfigMap; a value that is not a string is written as YAML (an artifact
    repository, as Argo's ``artifact-repositories`` ConfigMap holds it)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "data": {k: v if isinstance(v, str) else yaml.safe_dump(v) for k, v in data.items()},
    }
