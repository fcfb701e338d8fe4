"""A minimal HTTP/1.1 client: one exchange at a time per connection, idle ones kept alive.

Why it exists: in the one-task-per-taskset shape a task is two HTTP exchanges (the request
to the target and the status patch), and through aiohttp each costs a ``ClientRequest``, a
``ClientResponse``, a payload object, a stream writer that writes the head and the body in
separate calls, a ``StreamReader`` and timers: most of the agent's CPU per task (see
docs/performance.md). Here an exchange is one ``transport.write`` of bytes the caller
built, and one protocol object that collects the answer; the waiting coroutine is woken once
when a small response has arrived whole.

What it does (RFC 9112):

* the response head is read up to its blank line (CRLF or bare LF, section 2.2), at most
  :data:`MAX_HEAD_BYTES`; ``1xx`` informational responses before the final one are skipped
  (section 4 of RFC 9110 15.2), at most :data:`MAX_INFORMATIONAL`;
* the body is framed by section 6.3: none for HEAD, 1xx, 204 and 304; ``chunked`` when it is
  the final transfer coding (trailers read and dropped); else ``Content-Length``; else until
  the server closes (and the connection is not reused);
* a connection goes back to its pool only when its response was read to the end and neither
  side asked to close it (``Connection: close``, HTTP/1.0 without ``keep-alive``);
* reading is paused while more than :data:`HIGH_WATER` bytes wait for the caller, so a large
  body streamed with :meth:`Response.next_chunk` holds a bounded amount of memory.

What it does not do, on purpose: connect (the caller's ``connect`` does: resolution, policy,
TLS, their timeouts and errors stay where they are), send a request twice (a failure is the
caller's to judge: :attr:`ConnectionClosed.reused` says whether the connection had served
before, :attr:`ConnectionClosed.received` whether any byte of the answer came), time
anything (the caller bounds the whole exchange), or decode anything.
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
from collections.abc import Awaitable, Callable
from typing import cast

__all__ = [
    "HIGH_WATER",
    "MAX_HEAD_BYTES",
    "ConnectionClosed",
    "HTTP1Error",
    "MalformedResponse",
    "Pool",
    "Response",
    "StreamProtocol",
]

MAX_HEAD_BYTES = 1 << 20
MAX_INFORMATIONAL = 5  # Go's client gives up after as many 1xx responses
HIGH_WATER = 256 << 10
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class HTTP1Error(Exception):
    """An exchange that did not produce a complete response."""


class ConnectionClosed(HTTP1Error):
    """The connection ended (closed, reset or broken) before the response was complete."""

    def __init__(self, text: str, *, reused: bool, received: bool, cause: BaseException | None):
        super().__init__(text)
        #: the connection had served an earlier exchange (an idle keep-alive connection)
        self.reused = reused
        #: some bytes of this exchange's response had arrived
        self.received = received
        #: the OS or TLS error that ended it, when one did (also the ``__cause__``)
        self.cause = cause


class MalformedResponse(HTTP1Error):
    """Bytes that are not an HTTP/1.x response: ``kind`` says which rule they broke and
    ``data`` holds the offending bytes (callers word it for their readers)."""

    def __init__(self, kind: str, data: bytes | list[bytes] = b"", text: str = "") -> None:
        super().__init__(text or f"{kind}: {data!r}")
        #: ``status-line``, ``header-line``, ``content-length``,
        #: ``content-lengths``, ``chunk-size``, ``chunk-data``, ``head-size``, ``1xx``
        self.kind = kind
        self.data = data


class StreamProtocol(asyncio.Protocol):
    """One connection: the bytes received so far, and one waiter for more."""

    __slots__ = (
        "_loop",
        "_paused",
        "_waiter",
        "buffer",
        "eof",
        "error",
        "idle_since",
        "lost",
        "served",
        "transport",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self._paused = False
        #: exchanges completed on this connection
        self.served = 0
        self.idle_since = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport: nothing more will be written either

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the caller's side ---------------------------------------------------------------

    @property
    def usable(self) -> bool:
        transport = self.transport
        return not (self.eof or self.lost or transport is None or transport.is_closing())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def more(self, *, received: bool) -> None:
        """Wait until more bytes than the buffer holds arrive; ConnectionClosed at the end."""
        if self.eof or self.lost:
            raise self._closed(received=received)
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        waiter = self._loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None
        if not self.buffer and (self.eof or self.lost):
            raise self._closed(received=received)

    def consumed(self) -> None:
        """The caller took bytes: resume reading once the buffer is below the mark."""
        if self._paused and len(self.buffer) <= HIGH_WATER and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def _closed(self, *, received: bool) -> ConnectionClosed:
        cause = self.error
        text = f"connection lost: {cause}" if cause is not None else "connection closed by peer"
        closed = ConnectionClosed(text, reused=self.served > 0, received=received, cause=cause)
        closed.__cause__ = cause
        return closed


class Response:
    """A response whose head has been read; its body is read with :meth:`read` or
    :meth:`next_chunk`, and :meth:`release` returns the connection (or closes it)."""

    __slots__ = (
        "_chunk_left",
        "_chunked",
        "_conn",
        "_done",
        "_keep",
        "_left",
        "_pool",
        "_released",
        "_to_close",
        "headers",
        "reason",
        "status",
        "version",
    )

    def __init__(
        self,
        *,
        status: int,
        reason: bytes,
        version: bytes,
        headers: list[tuple[bytes, bytes]],
        conn: StreamProtocol,
        pool: Pool | None,
        no_body: bool,
    ) -> None:
        self.status = status
        self.reason = reason
        #: ``b"HTTP/1.1"`` or ``b"HTTP/1.0"``
        self.version = version
        #: (name, value) as received, value without surrounding spaces and tabs
        self.headers = headers
        self._conn = conn
        self._pool = pool
        self._left = 0
        self._chunked = False
        self._chunk_left = -1  # -1: a chunk-size line comes next
        self._to_close = False
        self._released = False
        self._done = no_body or status in (204, 304) or 100 <= status < 200
        self._keep, coding, length = _framing(version, headers)
        if self._done:
            return
        if coding is not None:
            if coding != b"chunked":
                self._to_close = True  # RFC 9112 6.3 item 4: read until the server closes
            else:
                self._chunked = True
        elif length is None:
            self._to_close = True
        elif length == 0:
            self._done = True
        else:
            self._left = length

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    async def read(self) -> bytes:
        """The whole body (for responses the caller knows to be small)."""
        conn = self._conn
        if not self._done and not self._chunked and not self._to_close:
            buffer = conn.buffer
            while len(buffer) < self._left:
                await conn.more(received=True)
            body = bytes(buffer[: self._left])
            del buffer[: self._left]
            self._left = 0
            self._done = True
            conn.consumed()
            return body
        parts = []
        while chunk := await self.next_chunk():
            parts.append(chunk)
        return b"".join(parts)

    async def next_chunk(self) -> bytes:
        """The next piece of the body as it arrives; ``b""`` once it is complete."""
        if self._done:
            return b""
        conn = self._conn
        buffer = conn.buffer
        if self._to_close:
            if not buffer:
                if conn.eof or conn.lost:
                    self._done = True
                    self._keep = False
                    return b""
                try:
                    await conn.more(received=True)
                except ConnectionClosed as exc:
                    if exc.cause is not None:
                        raise
                    self._done = True  # the close is the end of this body
                    self._keep = False
                    return b""
            return self._take(len(buffer))
        if self._chunked:
            return await self._next_chunk_of_chunked()
        if not buffer:
            await conn.more(received=True)
        piece = self._take(min(len(buffer), self._left))
        self._left -= len(piece)
        if self._left == 0:
            self._done = True
        return piece

    async def _next_chunk_of_chunked(self) -> bytes:
        conn = self._conn
        buffer = conn.buffer
        while True:
            if self._chunk_left == -1:
                line = await self._line()
                size = line.split(b";", 1)[0].strip(b" \t")
                if _CHUNK_SIZE.fullmatch(size) is None:
                    raise MalformedResponse(
                        "chunk-size", line[:64], f"invalid chunk size line {line[:64]!r}"
                    )
                self._chunk_left = int(size, 16)
                if self._chunk_left == 0:
                    while await self._line():  # trailer fields, dropped
                        pass
                    self._done = True
                    return b""
            if self._chunk_left > 0:
                if not buffer:
                    await conn.more(received=True)
                piece = self._take(min(len(buffer), self._chunk_left))
                self._chunk_left -= len(piece)
                return piece
            # the CRLF after a chunk's data
            if await self._line():
                raise MalformedResponse("chunk-data", text="chunk data longer than its size")
            self._chunk_left = -1

    async def _line(self) -> bytes:
        conn = self._conn
        buffer = conn.buffer
        while (end := buffer.find(b"\n")) < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise MalformedResponse("chunk-size", text="chunked framing line too long")
            await conn.more(received=True)
        line = bytes(buffer[:end]).rstrip(b"\r")
        del buffer[: end + 1]
        return line

    def _take(self, size: int) -> bytes:
        buffer = self._conn.buffer
        piece = bytes(buffer[:size])
        del buffer[:size]
        self._conn.consumed()
        return piece

    def release(self) -> None:
        """Back to the pool when read to the end and kept alive; else closed. Only the
        first call acts: the connection may serve another exchange after it."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        if self._done and self._keep and self._pool is not None and not conn.buffer:
            self._pool.put(conn)
        elif self._done:
            conn.close()
        else:
            conn.abort()
        self._pool = None


Connect = Callable[[], Awaitable[StreamProtocol]]


class Pool:
    """Connections to one origin: idle ones reused most recent first, at most ``max_idle``
    kept, none older than ``keepalive_seconds`` since its last exchange.

    With ``connect``, :meth:`exchange` makes a connection when none is idle; without, the
    caller makes them and uses :meth:`take` and :meth:`exchange_on`.
    """

    def __init__(self, *, connect: Connect | None, keepalive_seconds: float, max_idle: int) -> None:
        self._connect = connect
        self._keepalive = keepalive_seconds
        self._idle: collections.deque[StreamProtocol] = collections.deque()
        self._max_idle = max_idle

    async def exchange(self, data: bytes, *, no_body: bool = False) -> Response:
        """Send ``data`` (a whole request: head and body) and read the response's head."""
        conn = self.take()
        if conn is None:
            assert self._connect is not None
            conn = await self._connect()
        return await self.exchange_on(conn, data, no_body=no_body)

    async def exchange_on(self, conn: StreamProtocol, data: bytes, *, no_body: bool) -> Response:
        """:meth:`exchange` on ``conn`` (idle from :meth:`take` or new): closed on failure."""
        try:
            assert conn.transport is not None
            conn.transport.write(data)
            return await read_head(conn, pool=self, no_body=no_body)
        except BaseException:
            conn.abort()
            raise

    def take(self) -> StreamProtocol | None:
        """An idle connection still open and within its keep-alive time, or None."""
        idle = self._idle
        deadline = time.monotonic() - self._keepalive
        while idle:
            conn = idle.pop()
            # bytes that arrived while idle answer nothing this client asked: unusable
            if conn.usable and conn.idle_since >= deadline and not conn.buffer:
                return conn
            conn.close()
        return None

    def put(self, conn: StreamProtocol) -> None:
        conn.served += 1
        if not conn.usable:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        while len(self._idle) > self._max_idle:
            self._idle.popleft().close()

    @property
    def idle(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


async def read_head(conn: StreamProtocol, *, pool: Pool | None, no_body: bool) -> Response:
    """The next final response's head on ``conn`` (1xx ones skipped)."""
    buffer = conn.buffer
    for _ in range(MAX_INFORMATIONAL + 1):
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                stop = end + 4
                break
            match = _HEAD_END.search(buffer)
            if match is not None:
                end, stop = match.start(), match.end()
                break
            if len(buffer) > MAX_HEAD_BYTES:
                raise MalformedResponse(
                    "head-size", text=f"response head larger than {MAX_HEAD_BYTES} bytes"
                )
            await conn.more(received=bool(buffer))
        head = bytes(buffer[:end])
        del buffer[:stop]
        status, reason, version, headers = _parse_head(head)
        if 100 <= status < 200 and status != 101:
            continue
        return Response(
            status=status,
            reason=reason,
            version=version,
            headers=headers,
            conn=conn,
            pool=pool,
            no_body=no_body,
        )
    raise MalformedResponse(
        "1xx", text=f"too many 1xx informational responses (more than {MAX_INFORMATIONAL})"
    )


def _parse_head(head: bytes) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\n")
    status_line = lines[0].rstrip(b"\r")
    version, _, rest = status_line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise MalformedResponse(
            "status-line", status_line, f"malformed HTTP response {status_line[:128]!r}"
        )
    headers: list[tuple[bytes, bytes]] = []
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip(b" \t"):
            raise MalformedResponse(
                "header-line", line, f"malformed MIME header line: {line[:128]!r}"
            )
        headers.append((name, value.strip(b" \t")))
    return int(code), reason, version, headers


def _framing(
    version: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[bool, bytes | None, int | None]:
    """Keep-alive, the final transfer coding and the Content-Length, in one pass."""
    close = False
    keep_alive = False
    coding: bytes | None = None
    length: bytes | None = None
    for name, value in headers:
        key = name.lower()
        if key == b"content-length":
            if length is not None and length != value:
                raise MalformedResponse(
                    "content-lengths",
                    [length, value],
                    f"message with several Content-Length values {length!r}, {value!r}",
                )
            length = value
        elif key == b"transfer-encoding":
            for token in value.split(b","):
                if token.strip():
                    coding = token.strip().lower()
        elif key == b"connection":
            tokens = {token.strip().lower() for token in value.split(b",")}
            close = close or b"close" in tokens
            keep_alive = keep_alive or b"keep-alive" in tokens
    keep = not close and (version == b"HTTP/1.1" or keep_alive)
    if length is None:
        return keep, coding, None
    if not length.isdigit() or len(length) > 18:
        raise MalformedResponse("content-length", length, f"bad Content-Length {length[:32]!r}")
    return keep, coding, int(length)
