"""Names of the things that flow along the data path: tasksets, their snapshots, node refs.

Every stage speaks these plain, frozen values, so none needs to import another stage to
name a taskset or a node: a source builds :class:`TaskSetSnapshot`s, the engine hands
:class:`TaskRef`s to the runner and the sink, the sink groups results by
:class:`TaskSetKey`. Nothing here validates a template: a snapshot carries the raw
``spec.tasks`` and ``status.nodes`` mappings, and each template is parsed once, when its
node runs, so one bad template fails its own node and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COMPLETED_LABEL",
    "TaskRef",
    "TaskSetKey",
    "TaskSetSnapshot",
    "workflow_uid",
]

#: Set to "true" by the controller once the workflow is fulfilled.
COMPLETED_LABEL = "workflows.argoproj.io/completed"


@dataclass(frozen=True, slots=True)
class TaskSetKey:
    """A WorkflowTaskSet by namespace and name (its name is the Workflow's name)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    def log_context(self) -> dict[str, str]:
        """The ``extra`` of a log record about this taskset."""
        return {"namespace": self.namespace, "taskset": self.name}


@dataclass(frozen=True, slots=True)
class TaskRef:
    """Which node of which taskset a template belongs to."""

    namespace: str
    taskset: str  # the WorkflowTaskSet's name = the Workflow's name
    node_id: str
    workflow_uid: str = ""  # for plugin requests' workflow.metadata.uid

    @property
    def key(self) -> TaskSetKey:
        return TaskSetKey(self.namespace, self.taskset)

    def log_context(self) -> dict[str, str]:
        return {"namespace": self.namespace, "taskset": self.taskset, "node": self.node_id}


def workflow_uid(metadata: Mapping[str, Any]) -> str:
    """The UID of the Workflow that owns a taskset (its ownerReference), or ``""``."""
    for owner in metadata.get("ownerReferences") or ():
        if isinstance(owner, Mapping) and owner.get("kind") == "Workflow":
            return str(owner.get("uid") or "")
    return ""


@dataclass(frozen=True, slots=True)
class TaskSetSnapshot:
    """What a source saw of one WorkflowTaskSet: raw mappings, never parsed as a whole."""

    key: TaskSetKey
    tasks: Mapping[str, Any]
    nodes: Mapping[str, Any]
    workflow_uid: str = ""
    completed: bool = False
    uid: str = ""
    generation: int = 0
    problem: str = ""  # a malformed spec, described for a log line

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> TaskSetSnapshot:
        """Build from a WorkflowTaskSet as the API returns it (a plain dict)."""
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        labels = meta.get("labels") or {}
        tasks = spec.get("tasks") if isinstance(spec, Mapping) else None
        nodes = status.get("nodes") if isinstance(status, Mapping) else None
        problem = ""
        if not isinstance(spec, Mapping):
            problem = f"spec: expected an object, got {_json_type(spec)}"
        elif tasks is not None and not isinstance(tasks, Mapping):
            problem = (
                f"spec.tasks: expected an object (node ID -> template), got {_json_type(tasks)}"
            )
        generation = meta.get("generation")
        return cls(
            key=TaskSetKey(str(meta.get("namespace", "")), str(meta.get("name", ""))),
            tasks=tasks if isinstance(tasks, Mapping) else {},
            nodes=nodes if isinstance(nodes, Mapping) else {},
            workflow_uid=workflow_uid(meta),
            completed=labels.get(COMPLETED_LABEL) == "true",
            uid=str(meta.get("uid", "")),
            generation=generation if isinstance(generation, int) else 0,
            problem=problem if obj.get("spec") is not None else "",
        )


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages about malformed input."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    return "null" if value is None else type(value).__name__
