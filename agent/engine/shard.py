"""Shards: the worker processes of one pod (``--processes N``), numbered.

One Python process runs on one core. With ``--processes N`` the agent runs N workers, each a
complete agent (engine, executor, patcher). A :class:`Shard` is a worker's number. In shared
mode shard 0 is the pod's *primary* and the others its *helpers*: the primary lends them
tasksets when it is busy (:mod:`agent.membership.lending`). Per workflow the workers are a
static member set (``worker-0`` .. ``worker-N-1``, rendezvous hashing over them, the one
ownership concept of :mod:`agent.engine.ownership`): each watches the taskset and runs it if
it owns it, and a restarted worker owns exactly what its predecessor owned and finds its
claims and results where it left them.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.engine.ownership import Ownership, owner_of, static_members

__all__ = ["Shard"]


@dataclass(frozen=True, slots=True)
class Shard:
    """Worker ``index`` of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} out of range for {self.count} shard(s)")

    def static_ownership(self) -> Ownership:
        """This worker's ownership among the pod's workers alone (per workflow)."""
        return Ownership.static(self.index, self.count)

    def owns(self, unit: str) -> bool:
        """Whether this worker owns ``unit`` (a taskset's ``namespace/name``) in the static
        member set of the pod."""
        members = static_members(self.count)
        return owner_of(members, unit) == members[self.index]

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"
