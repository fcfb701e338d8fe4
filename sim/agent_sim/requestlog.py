"""A bounded log of the API requests the simulator received.

Tests assert on what the agent actually sent (method, path, query, Content-Type and the
exact body bytes), so each request is recorded before it is interpreted. The log keeps
the newest ``limit`` records whose bodies total at most ``max_bytes``; sequence numbers
keep growing so a reader in another process can poll ``since=<seq>`` without missing or
repeating records. The ``Authorization`` header is never recorded.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RequestLog", "RequestRecord"]


@dataclass(slots=True)
class RequestRecord:
    """One request as received, plus how it was answered."""

    seq: int
    time: float
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: bytes
    verb: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    user: str = ""
    status: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` when it is not JSON)."""
        return json.loads(self.body)

    def to_json(self) -> dict[str, Any]:
        """The JSON form served by the admin endpoint (body as UTF-8 text)."""
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "contentType": self.content_type,
            "body": self.body.decode("utf-8", "replace"),
            "verb": self.verb,
            "resource": self.resource,
            "subresource": self.subresource,
            "namespace": self.namespace,
            "name": self.name,
            "user": self.user,
            "status": self.status,
        }


class RequestLog:
    """The newest request records within the count and byte budgets, oldest first."""

    def __init__(self, *, limit: int, max_bytes: int) -> None:
        if limit < 1:
            raise ValueError(f"request log limit must be >= 1, got {limit}")
        if max_bytes < 0:
            raise ValueError(f"request log max_bytes must be >= 0, got {max_bytes}")
        self._records: deque[RequestRecord] = deque()
        self._limit = limit
        self._max_bytes = max_bytes
        self._bytes = 0
        self._next_seq = 1
        # Set whenever a request arrives or completes (waiters re-check the log).
        self.changed = asyncio.Event()

    def record(
        self,
        *,
        time: float,
        method: str,
        path: str,
        query: dict[str, str],
        content_type: str,
        body: bytes,
    ) -> RequestRecord:
        """Append a record for a request just received and return it (to complete later)."""
        rec = RequestRecord(
            seq=self._next_seq,
            time=time,
            method=method,
            path=path,
            query=query,
            content_type=content_type,
            body=body,
        )
        self._next_seq += 1
        self._records.append(rec)
        self._bytes += len(body)
        while len(self._records) > self._limit or (
            self._bytes > self._max_bytes and len(self._records) > 1
        ):
            self._bytes -= len(self._records.popleft().body)
        self.changed.set()
        return rec

    def complete(self, rec: RequestRecord, status: int) -> None:
        """Record how a request was answered (0: the connection was cut)."""
        if rec.status is None:
            rec.status = status
            self.changed.set()

    @property
    def next_seq(self) -> int:
        """The sequence number the next record will get."""
        return self._next_seq

    def since(self, seq: int = 0) -> list[RequestRecord]:
        """Records with a sequence number greater than ``seq``."""
        return [r for r in self._records if r.seq > seq]

    def select(
        self,
        *,
        since: int = 0,
        verb: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
    ) -> list[RequestRecord]:
        """Records after ``since`` matching every filter given."""
        wanted = {
            "verb": verb,
            "resource": resource,
            "subresource": subresource,
            "namespace": namespace,
            "name": name,
        }
        filters = [(k, v) for k, v in wanted.items() if v is not None]
        return [r for r in self.since(since) if all(getattr(r, k) == v for k, v in filters)]

    async def wait_for(self, *, completed: bool = True, **filters: Any) -> RequestRecord:
        """The first record matching ``filters`` (see :meth:`select`), waiting for it;
        with ``completed`` only once it has been answered. Bound it with asyncio.timeout."""
        while True:
            self.changed.clear()
            for rec in self.select(**filters):
                if not completed or rec.status is not None:
                    return rec
            await self.changed.wait()

    def clear(self) -> None:
        """Drop every record (sequence numbers keep growing)."""
        self._records.clear()
        self._bytes = 0

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)
