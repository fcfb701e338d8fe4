"""Shards: how worker processes split the nodes of every taskset between them, shared-nothing.

One Python process runs on one core. With ``--processes N`` the agent runs N workers, each a
complete agent (watch, engine, executor, patcher) that owns the nodes whose ID hashes to its
index. Every worker sees every taskset, but runs and reports only its own nodes, so no work
passes between processes and no result is ever handed over: a worker's status patch is a JSON
merge patch that names only its own node IDs, and merge patches on disjoint keys commute.

The hash is CRC-32 of the node ID (stable across processes, runs and Python versions, unlike
``hash()``), so a restarted worker owns exactly the nodes its predecessor owned and finds
their claims and results where it left them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

__all__ = ["Shard"]


@dataclass(frozen=True, slots=True)
class Shard:
    """Worker ``index`` of ``count``; owns the node IDs whose CRC-32 is ``index`` mod ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} out of range for {self.count} shard(s)")

    def owns(self, node_id: str) -> bool:
        return zlib.crc32(node_id.encode("utf-8", "surrogatepass")) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"
