"""Watch events, the retained event history and the watchers that consume them.

Every write produces exactly one event and one new ``resourceVersion`` (a global counter),
so the history is a deque ordered by version: replaying "everything after version N" is
a binary search and a slice, and "N is older than what is retained" is one comparison
(answered with 410 Expired, as the watch cache does). Each event is serialised at most
once per form and the same bytes go to every watcher; a watcher that falls too far
behind is closed, as the API server closes an unresponsive watcher, and the client
resumes from its last version.

Selectors apply to watches the way the watch cache applies them: an object that starts
matching arrives as ADDED, one that stops matching as DELETED (carrying its previous
content at the event's version), so a client's view always equals a fresh filtered list.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from agent.core import jsoncodec

from .resources import ResourceKind
from .selectors import FieldSelector, LabelSelector

__all__ = ["Event", "EventHistory", "Stored", "Watcher", "WatcherIndex", "encode", "selectable"]


def encode(value: Any) -> bytes:
    """Compact JSON, UTF-8 (what the API server writes)."""
    return jsoncodec.dumps(value)


@dataclass(slots=True)
class Stored:
    """One version of an object. ``obj`` is never mutated once stored."""

    obj: dict[str, Any]
    rv: int
    _raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        """The object's JSON, computed once and cached while this version is current."""
        if self._raw is None:
            self._raw = encode(self.obj)
        return self._raw

    def forget_raw(self) -> None:
        """Drop the cached JSON once the version is superseded (bounds memory)."""
        self._raw = None

    @property
    def namespace(self) -> str:
        """``metadata.namespace``."""
        return str(self.obj["metadata"].get("namespace", ""))

    @property
    def name(self) -> str:
        """``metadata.name``."""
        return str(self.obj["metadata"]["name"])


def selectable(kind: ResourceKind, obj: dict[str, Any]) -> dict[str, str]:
    """The fields a field selector sees on ``obj``."""
    meta = obj["metadata"]
    fields = {"metadata.name": meta["name"], "metadata.namespace": meta.get("namespace", "")}
    if "type" in kind.extra_field_selectors:
        fields["type"] = str(obj.get("type", ""))
    return fields


@dataclass(slots=True)
class Event:
    """One change: ``new`` is the object after it (for DELETED, the deleted object at
    the deletion's version); ``prev`` the object before it."""

    rv: int
    type: str
    kind: ResourceKind
    new: Stored
    prev: Stored | None
    _lines: dict[str, bytes] = field(default_factory=dict)

    def line(self, event_type: str) -> bytes:
        """The newline-terminated watch line of this event as ``event_type``."""
        cached = self._lines.get(event_type)
        if cached is None:
            if event_type == "DELETED" and self.type == "MODIFIED" and self.prev is not None:
                # Stopped matching a selector: the previous content at this version.
                meta = {**self.prev.obj["metadata"], "resourceVersion": str(self.rv)}
                raw = encode({**self.prev.obj, "metadata": meta})
            else:
                raw = self.new.raw
            cached = b'{"type":"' + event_type.encode() + b'","object":' + raw + b"}\n"
            self._lines[event_type] = cached
        return cached

    def release(self) -> None:
        """Drop cached lines once dispatched (history keeps only the objects)."""
        self._lines.clear()


class EventHistory:
    """The newest ``limit`` events; every event after :attr:`floor` is retained."""

    def __init__(self, *, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"history limit must be >= 1, got {limit}")
        self._events: deque[Event] = deque()
        self._limit = limit
        self.floor = 0

    def append(self, event: Event) -> None:
        """Retain an event, evicting the oldest beyond the limit."""
        self._events.append(event)
        while len(self._events) > self._limit:
            self.floor = self._events.popleft().rv

    def compact(self, current: int) -> None:
        """Forget every event up to ``current`` (a watch from older versions gets 410)."""
        self._events.clear()
        self.floor = current

    def after(self, rv: int) -> list[Event]:
        """Events with a version greater than ``rv`` (``rv >= floor`` is assumed)."""
        start = bisect_right(self._events, rv, key=lambda event: event.rv)
        return list(islice(self._events, start, None))

    def __len__(self) -> int:
        return len(self._events)


class Watcher:
    """One open watch: a filter and the lines waiting to be written to its stream."""

    def __init__(
        self,
        kind: ResourceKind,
        *,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        max_pending: int,
        max_pending_bytes: int,
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.pinned_name = fields.exact("metadata.name")
        self._unfiltered = not labels.requirements and not fields.requirements
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        # The start of a watch (synthetic ADDED, replay) may exceed the limits: only a
        # backlog of live events means the client cannot keep up.
        self._initial_lines = 0
        self._initial_bytes = 0
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self.wakeup = asyncio.Event()
        self.closed: str | None = None  # why the stream must end
        self.abrupt = False

    def selects(self, stored: Stored | None) -> bool:
        """Whether the object passes this watch's namespace and selectors."""
        if stored is None:
            return False
        if self.namespace is not None and stored.namespace != self.namespace:
            return False
        if self._unfiltered:
            return True
        obj = stored.obj
        return self.labels.matches(obj["metadata"].get("labels")) and self.fields.matches(
            selectable(self.kind, obj)
        )

    def offer(self, event: Event, *, initial: bool = False) -> None:
        """Queue the event as this watch should see it (or not at all)."""
        if self.closed is not None:
            return
        now = self.selects(event.new)
        if event.type == "ADDED":
            event_type = "ADDED" if now else None
        elif event.type == "DELETED":
            event_type = "DELETED" if now else None
        else:
            before = self.selects(event.prev)
            if now:
                event_type = "MODIFIED" if before else "ADDED"
            else:
                event_type = "DELETED" if before else None
        if event_type is not None:
            self.push(event.line(event_type), initial=initial)

    def push(self, line: bytes, *, initial: bool = False) -> None:
        """Queue a raw line; close the watch when live events fall too far behind."""
        if self.closed is not None:
            return
        self._pending.append(line)
        self._pending_bytes += len(line)
        if initial:
            self._initial_lines += 1
            self._initial_bytes += len(line)
            return
        if (
            len(self._pending) - self._initial_lines > self._max_pending
            or self._pending_bytes - self._initial_bytes > self._max_pending_bytes
        ):
            # The API server's answer to an unresponsive watcher: end its stream.
            self._pending.clear()
            self._pending_bytes = self._initial_lines = self._initial_bytes = 0
            self.close("too slow")
        self.wakeup.set()

    def drain(self) -> bytes:
        """Everything queued, as one chunk (empty when nothing is waiting)."""
        if not self._pending:
            self.wakeup.clear()
            return b""
        chunk = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = self._initial_lines = self._initial_bytes = 0
        self.wakeup.clear()
        return chunk

    @property
    def idle(self) -> bool:
        """No line is waiting to be written."""
        return not self._pending

    def close(self, reason: str, *, abrupt: bool = False) -> None:
        """End the stream after writing what is queued (or cut it when ``abrupt``)."""
        if self.closed is None:
            self.closed = reason
            self.abrupt = abrupt
        self.wakeup.set()


class WatcherIndex:
    """The open watches of one resource, indexed by pinned name for cheap dispatch."""

    def __init__(self) -> None:
        self._general: set[Watcher] = set()
        self._by_name: dict[str, set[Watcher]] = {}

    def add(self, watcher: Watcher) -> None:
        """Register a watch."""
        if watcher.pinned_name is None:
            self._general.add(watcher)
        else:
            self._by_name.setdefault(watcher.pinned_name, set()).add(watcher)

    def discard(self, watcher: Watcher) -> None:
        """Unregister a watch (idempotent)."""
        if watcher.pinned_name is None:
            self._general.discard(watcher)
            return
        bucket = self._by_name.get(watcher.pinned_name)
        if bucket is not None:
            bucket.discard(watcher)
            if not bucket:
                del self._by_name[watcher.pinned_name]

    def dispatch(self, event: Event) -> None:
        """Offer an event to every watch that may want it."""
        for watcher in tuple(self._general):
            watcher.offer(event)
        bucket = self._by_name.get(event.new.name)
        if bucket:
            for watcher in tuple(bucket):
                watcher.offer(event)

    def all(self) -> list[Watcher]:
        """Every registered watch."""
        return [*self._general, *(w for b in self._by_name.values() for w in b)]

    def __len__(self) -> int:
        return len(self._general) + sum(len(b) for b in self._by_name.values())
