"""The engine's ports: what it asks of a runner, a sink, a claim policy and a reader.

The engine (:mod:`agent.engine.scheduler`) is written against these protocols only, so the
same scheduling rules drive the cluster agent (executor + status patcher + claims in the
status, a fresh read of a taskset when work changes hands between members) and the local
runner (executor + stdout sink, no claims), and tests can plug in plain objects. Each port
states what the engine may rely on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

from agent.core.model import NodeResult
from agent.core.refs import TaskRef, TaskSetKey, TaskSetSnapshot

__all__ = ["Claims", "DurableSink", "ResultSink", "StatusReader", "TaskRunner"]


class TaskRunner(Protocol):
    """Turns one template into one result; never raises but for cancellation."""

    async def run(self, template: Mapping[str, Any], *, ref: TaskRef) -> NodeResult: ...


class ResultSink(Protocol):
    """Receives results; delivery (batching, retries) is the sink's business."""

    def submit(self, ref: TaskRef, result: NodeResult, *, overwrite: bool = False) -> None:
        """Deliver a result; ``overwrite``: the node already has a status entry (a claim,
        leftovers) that this result replaces field by field."""
        ...

    def discard(self, key: TaskSetKey, node_ids: frozenset[str] | None = None) -> None:
        """Forget pending results of these nodes (all of the taskset's when ``None``)."""
        ...


class DurableSink(ResultSink, Protocol):
    """A sink that can tell when a result is in the API (claims need that)."""

    def submit_and_wait(self, ref: TaskRef, result: NodeResult) -> Awaitable[None]:
        """Queue a result; the awaitable completes once the API has it (fails if dropped)."""
        ...


class Claims(Protocol):
    """Decides, before a request is sent, whether it may be sent (at-most-once).

    A claim policy holds no per-node state: the engine knows where each node stands
    (claiming, sent, finished) and asks the policy only for decisions and texts.
    """

    def needs_claim(self, template: Mapping[str, Any]) -> bool:
        """Whether :meth:`claim` must run before this template is sent."""
        ...

    def adopt(
        self, ref: TaskRef, template: Mapping[str, Any], status: Mapping[str, Any]
    ) -> NodeResult | None:
        """A node found ``Running`` in status: ``None`` to run it (again), or its result."""
        ...

    async def claim(self, ref: TaskRef) -> None:
        """Record that this node is about to be sent; returns once the claim is durable."""
        ...

    def claim_now(self, ref: TaskRef) -> None:
        """Record that this node is in flight here (a handover: another member owns it
        now); delivered like a result, promptly, without waiting."""
        ...

    def claimant(self, status: Mapping[str, Any]) -> str | None:
        """The instance named by the claim in this status entry, or None if none."""
        ...

    def abandoned(self, ref: TaskRef) -> NodeResult:
        """The result that settles a claimed request cut short by a shutdown."""
        ...

    def superseded(self, ref: TaskRef) -> NodeResult:
        """The result that settles a claim of ours that may have landed over another
        member's (written across a lapse of our fence); the request was not sent here."""
        ...


class StatusReader(Protocol):
    """Reads a taskset afresh from its store (a consistent read, not a cached copy)."""

    async def read(self, key: TaskSetKey) -> TaskSetSnapshot | None:
        """The taskset now, or None if it does not exist; raises if it cannot be read."""
        ...
