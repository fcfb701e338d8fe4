"""Lending: the workers of one pod share its tasksets without splitting a load one can carry.

Measured (docs/performance.md): the same work costs a process more CPU per task when it is
less busy, so N workers that each take 1/N of every load cost more per task than one worker
that carries the load alone. So with ``--processes N`` in shared mode the pod is **one
member** (worker 1/N, the *primary*: its Lease, its watch, its engine), and the other
workers are *helpers* that run only the tasksets the primary lends them:

* **At first sight, by the primary alone.** When the primary first sees a taskset of which
  nothing has started (no status entry), in a settled view, it runs it -- unless it is busy
  (its tasks fill its slots, or it used nearly all of a core over the last second); then it
  lends it to the helper with the smallest backlog, if that is smaller than its own. No node
  ever changes hands inside the pod, so no settle time and no handover claim is needed.
* **Relayed, not watched.** A helper does not watch the API: the primary, whose watch reads
  every event's metadata anyway, passes on the events of the tasksets it lent over a Unix
  socket (except MODIFIED events that change nothing the engine reads). An idle helper
  costs nothing, and a busy one decodes only its own tasksets' events.
* **The pod's identity.** A helper's claims name the primary, the pod's member, so every
  member honours them while the primary's Lease holds; the primary passes on its renew
  deadline and a helper starts nothing past it (the fence, as for the primary). When the
  group gives a lent taskset to another member, the primary revokes it and the helper
  claims and finishes what runs there, as any member that loses a taskset does.
* **Ends.** A helper's connection ends only once it has exited, or drained and reported
  what it ran (a stopping helper first says it leaves, and is lent nothing more); then the
  primary takes its tasksets back: a moment later it reads each afresh (a consistent read,
  never a watch event that may be older than the helper's last claim) and runs it, a claim
  the helper left counting as a gone instance's (the redelivery policy decides). The
  primary's socket, likewise, ends only once the primary has drained or died; a helper
  whose primary is gone stops (it drains: what runs finishes and is reported), and the
  supervisor starts a new primary only once every such helper has exited, so a new primary
  never meets a live helper's work.

The wire, both ways: frames of a 4-byte length (big-endian, of what follows), a 1-byte kind
and a payload. Watch events travel as the lines the API server wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from agent.core import jsoncodec, metrics
from agent.core.ports import StatusReader
from agent.core.refs import TaskSetKey, TaskSetSnapshot
from agent.engine.claims import ClaimPolicy
from agent.engine.ownership import Ownership, unit_of
from agent.engine.scheduler import Engine

__all__ = ["Borrower", "Lender"]

log = logging.getLogger(__name__)

# Frame kinds. Helper to primary: HELLO (its worker number), BACKLOG (queued + running
# tasks), LEAVING (it stops: lend it nothing more). Primary to helper: HELLO (identity,
# deadline), GRANT (a taskset and its first event), EVENT (a watch event), REVOKE (a taskset
# the group moved away), FENCE (deadline).
HELLO, BACKLOG, LEAVING, GRANT, EVENT, REVOKE, FENCE = b"h", b"b", b"l", b"g", b"e", b"r", b"f"
_HEADER = struct.Struct(">IB")
_MAX_FRAME = 64 << 20

#: How often a helper with work reports its backlog (an idle one reports nothing: no timer
#: runs in an idle helper, and none in the primary).
_REPORT_SECONDS = 0.1
#: The window of the primary's CPU use that says "busy": a second, so that one large
#: taskset's decoding does not count as being busy. Measured when a taskset is first seen,
#: not by a timer.
_CPU_WINDOW_SECONDS = 1.0
#: The share of a core over that window from which the primary is busy: nearly all of it.
_BUSY_CPU = 0.9
#: A helper's connection ended: its last status patch may still be in the API server's
#: hands; the tasksets are read afresh after this, not at once.
_TAKE_BACK_DELAY = 1.0
_CONNECT_RETRY_SECONDS = 0.1


def _frame(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload) + 1, kind[0]) + payload


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """The next frame (kind, payload); None at the end of the stream."""
    try:
        head = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError:
        return None
    length, kind = _HEADER.unpack(head)
    if not 1 <= length <= _MAX_FRAME:
        raise ValueError(f"lending frame of {length} bytes")
    try:
        payload = await reader.readexactly(length - 1)
    except asyncio.IncompleteReadError:
        return None
    return bytes((kind,)), payload


def _key_bytes(key: TaskSetKey) -> bytes:
    return f"{key.namespace}\x00{key.name}".encode()


def _key_of(data: bytes) -> TaskSetKey:
    namespace, _, name = data.decode().partition("\x00")
    return TaskSetKey(namespace, name)


def _deadline(ownership: Ownership) -> bytes:
    until = ownership.valid_until
    return orjson.dumps(
        {
            "identity": ownership.me,
            "valid_until": until if math.isfinite(until) else None,
            "margin": ownership.expiry_margin,
        }
    )


# -- the primary ------------------------------------------------------------------------


@dataclass(eq=False)
class _Helper:
    """A connected helper, as the primary sees it."""

    worker: int
    writer: asyncio.StreamWriter
    keys: set[TaskSetKey] = field(default_factory=set)
    backlog: int = 0  # as reported, plus the tasks lent since
    leaving: bool = False  # stopping: it finishes what it has, and gets nothing more

    def send(self, kind: bytes, payload: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(_frame(kind, payload))


class Lender:
    """The primary's side: the socket helpers connect to, what is lent to whom, the choice.

    Also the watch's :class:`agent.source.watch.Relay` for the tasksets it lent.
    """

    def __init__(
        self,
        *,
        path: str,
        engine: Engine,
        ownership: Ownership,
        reader: StatusReader,
        on_returned: Callable[[TaskSetSnapshot], None],
        retry_seconds: float = 1.0,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.path = path
        self._engine = engine
        self._ownership = ownership
        self._reader = reader
        self._on_returned = on_returned
        self._retry_seconds = retry_seconds
        self._cpu_clock = cpu_clock
        self._helpers: list[_Helper] = []
        self._lent: dict[TaskSetKey, _Helper] = {}
        # The CPU window: where the current one began (wall, CPU), the last full one's rate.
        self._window = (time.monotonic(), cpu_clock())
        self._rate = 0.0
        self._stopping = False
        ownership.subscribe(self._on_view)
        ownership.subscribe_deadline(self._on_deadline)

    # -- the relay the watch uses --------------------------------------------------------

    def lends(self, key: TaskSetKey) -> bool:
        return key in self._lent

    def send(self, key: TaskSetKey, line: bytes) -> None:
        helper = self._lent.get(key)
        if helper is not None:
            helper.send(EVENT, line)

    # -- what the agent asks --------------------------------------------------------------

    def lend(self, snapshot: TaskSetSnapshot, obj: Mapping[str, Any]) -> bool:
        """At a taskset's first sight: lend it to a helper (True) or run it here (False)."""
        # Asked on every event of every taskset: the cheap checks first.
        if not self._helpers or self._engine.holds(snapshot.key):
            return False
        if snapshot.nodes or snapshot.completed or not snapshot.tasks:
            return False  # something started (or nothing to run): it stays where it is
        ownership = self._ownership
        unit = unit_of(snapshot.key.namespace, snapshot.key.name)
        if not ownership.owns(unit) or ownership.settled_in() > 0:
            return False  # not ours, or a young view: the engine's rules apply
        own = self._engine.queued + self._engine.in_flight
        if own < self._engine.max_in_flight and self._cpu_rate() < _BUSY_CPU:
            return False  # a free slot for each task it has, and CPU to spare: not busy
        helpers = [h for h in self._helpers if not h.leaving]
        if not helpers:
            return False
        helper = min(helpers, key=lambda h: h.backlog)
        if helper.backlog >= own:
            return False
        ownership.lend(unit)
        self._lent[snapshot.key] = helper
        helper.keys.add(snapshot.key)
        helper.backlog += len(snapshot.tasks)
        line = jsoncodec.dumps({"type": "ADDED", "object": obj})
        helper.send(GRANT, _key_bytes(snapshot.key) + b"\x00" + line)
        metrics.TASKSETS_LENT.inc()
        return True

    def forget(self, key: TaskSetKey) -> None:
        """The taskset is gone (its DELETED event was passed on)."""
        helper = self._lent.pop(key, None)
        if helper is not None:
            helper.keys.discard(key)
            self._ownership.take_back(unit_of(key.namespace, key.name))

    def listed(self, keys: frozenset[TaskSetKey], *, namespace: str | None) -> None:
        """A list of the tasksets in a scope: a lent one missing from it was deleted."""
        for key in [k for k in self._lent if namespace is None or k.namespace == namespace]:
            if key not in keys:
                self.send(key, _deleted_line(key))
                self.forget(key)

    def stop(self) -> None:
        """The pod stops: a helper's end is no longer a reason to take its tasksets back."""
        self._stopping = True

    # -- the run --------------------------------------------------------------------------

    def _cpu_rate(self) -> float:
        """The share of a core this process used over the last full window (a second); the
        window is closed when asked, so an idle primary runs no timer for it."""
        wall, cpu = time.monotonic(), self._cpu_clock()
        start_wall, start_cpu = self._window
        if wall - start_wall >= _CPU_WINDOW_SECONDS:
            # A window asked about long after it ended is averaged over its whole length:
            # an idle gap lowers it, as it should.
            self._rate = (cpu - start_cpu) / (wall - start_wall)
            self._window = (wall, cpu)
        return self._rate

    async def run(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        server = await asyncio.start_unix_server(self._serve, path=self.path)
        try:
            await asyncio.Event().wait()  # serve until cancelled
        finally:
            self._stopping = True  # the connections end now: nothing comes back
            server.close()
            for helper in self._helpers:
                helper.writer.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def _on_deadline(self) -> None:
        """The primary renewed its Lease: every helper follows its new deadline."""
        deadline = _deadline(self._ownership)
        for helper in self._helpers:
            helper.send(FENCE, deadline)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        helper: _Helper | None = None
        try:
            hello = await _read_frame(reader)
            if hello is None or hello[0] != HELLO:
                return
            helper = _Helper(worker=int(orjson.loads(hello[1])["worker"]), writer=writer)
            helper.send(HELLO, _deadline(self._ownership))
            self._helpers.append(helper)
            log.info("helper worker connected", extra={"helper": helper.worker})
            while (frame := await _read_frame(reader)) is not None:
                kind, payload = frame
                if kind == BACKLOG:
                    helper.backlog = int(payload)
                elif kind == LEAVING:
                    helper.leaving = True
        except (OSError, ValueError) as exc:
            log.warning("helper worker connection failed: %s", exc)
        finally:
            writer.close()
            if helper is not None:
                self._helpers.remove(helper)
                await self._take_back(helper)

    async def _take_back(self, helper: _Helper) -> None:
        """The helper is gone: each of its tasksets runs here, from a fresh read.

        Not from the next watch event: an event may be older than the helper's last claim
        (a request it sent), and the engine decides a node at its first sight. Until the
        read, the taskset stays lent (its events are skipped here)."""
        keys = [k for k in helper.keys if self._lent.get(k) is helper]
        if not keys or self._stopping:
            return  # nothing lent, or the pod stops (its helpers finished theirs)
        log.warning(
            "helper worker gone: its tasksets come back to the primary",
            extra={"helper": helper.worker, "tasksets": len(keys)},
        )
        await asyncio.sleep(_TAKE_BACK_DELAY)
        while keys and not self._stopping:
            waiting = []
            for key in keys:
                if self._lent.get(key) is not helper:
                    continue  # deleted, or revoked meanwhile
                try:
                    snapshot = await self._reader.read(key)
                except Exception as exc:  # retried: never run it without a fresh read
                    log.warning(
                        "cannot read a taskset a helper gave back: %s", exc, extra=key.log_context()
                    )
                    waiting.append(key)
                    continue
                if self._lent.get(key) is not helper:
                    continue
                self.forget(key)
                metrics.TASKSETS_RETURNED.inc()
                if snapshot is not None:
                    self._on_returned(snapshot)
            keys = waiting
            if keys:
                await asyncio.sleep(self._retry_seconds)

    def _on_view(self) -> None:
        """The group's view changed: revoke what the pod no longer owns."""
        for key, helper in list(self._lent.items()):
            unit = unit_of(key.namespace, key.name)
            if not self._ownership.assigned(unit):
                helper.send(REVOKE, _key_bytes(key))
                self.forget(key)


def _deleted_line(key: TaskSetKey) -> bytes:
    meta = {"namespace": key.namespace, "name": key.name}
    return jsoncodec.dumps({"type": "DELETED", "object": {"metadata": meta}})


# -- a helper -------------------------------------------------------------------------------


class Borrower:
    """A helper's side: connects to its primary and runs what it is lent."""

    def __init__(
        self,
        *,
        path: str,
        worker: int,
        engine: Engine,
        ownership: Ownership,
        claims: ClaimPolicy,
        on_line: Callable[[bytes], None],
        on_primary_gone: Callable[[], None],
    ) -> None:
        self.path = path
        self._worker = worker
        self._engine = engine
        self._ownership = ownership
        self._claims = claims
        self._on_line = on_line
        self._on_primary_gone = on_primary_gone
        self.connected = False
        self._work = asyncio.Event()  # set by whatever the primary sends
        self._writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        reader, writer = await self._connect()
        self._writer = writer
        try:
            writer.write(_frame(HELLO, orjson.dumps({"worker": self._worker})))
            hello = await _read_frame(reader)
            if hello is None or hello[0] != HELLO:
                raise ConnectionError("the primary worker did not answer")
            self._follow(orjson.loads(hello[1]))
            self.connected = True
            reporter = asyncio.create_task(self._report(writer), name="backlog")
            try:
                await self._receive(reader)
            finally:
                reporter.cancel()
        except (OSError, ValueError, ConnectionError) as exc:
            log.warning("the connection to the primary worker failed: %s", exc)
        finally:
            self.connected = False
            writer.close()
        self._on_primary_gone()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            try:
                return await asyncio.open_unix_connection(self.path)
            except (FileNotFoundError, ConnectionRefusedError):
                await asyncio.sleep(_CONNECT_RETRY_SECONDS)  # the primary is starting

    def _follow(self, deadline: Mapping[str, Any]) -> None:
        """The primary's identity (claims name it) and renew deadline (the fence)."""
        identity = str(deadline["identity"])
        ownership = self._ownership
        if ownership.me != identity:
            ownership.me = identity
            self._claims.instance_id = identity
        ownership.expiry_margin = float(deadline.get("margin") or 0.0)
        until = deadline.get("valid_until")
        until = math.inf if until is None else float(until)
        if until != ownership.valid_until:
            ownership.valid_until = until

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        ownership = self._ownership
        while (frame := await _read_frame(reader)) is not None:
            kind, payload = frame
            self._work.set()
            if kind == EVENT:
                self._show(payload)
            elif kind == GRANT:
                namespace, name, line = payload.split(b"\x00", 2)
                ownership.grant(unit_of(namespace.decode(), name.decode()))
                self._show(line)
            elif kind == FENCE:
                self._follow(orjson.loads(payload))
            elif kind == REVOKE:
                key = _key_of(payload)
                ownership.revoke(unit_of(key.namespace, key.name))

    def leave(self) -> None:
        """This helper stops: the primary lends it nothing more (what it has, it finishes,
        and its connection ends only once that is reported)."""
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(_frame(LEAVING, b""))

    def forget(self, key: TaskSetKey) -> None:
        """A lent taskset was deleted."""
        if self._ownership.granted is not None:
            self._ownership.granted.discard(unit_of(key.namespace, key.name))

    def _show(self, line: bytes) -> None:
        try:
            self._on_line(line)
        except Exception:  # one taskset's event, never the helper
            log.exception("cannot handle an event the primary worker passed on")

    async def _report(self, writer: asyncio.StreamWriter) -> None:
        """The backlog, every tenth of a second while there is one (and once when it ends);
        idle, it waits for the next taskset or event from the primary."""
        last = 0
        while True:
            backlog = self._engine.queued + self._engine.in_flight
            if backlog != last:
                writer.write(_frame(BACKLOG, str(backlog).encode()))
                last = backlog
            if backlog:
                await asyncio.sleep(_REPORT_SECONDS)
            else:
                self._work.clear()
                await self._work.wait()
                await asyncio.sleep(0)  # let the engine take it in first
