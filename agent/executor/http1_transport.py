"""The default transport: :class:`AiohttpTransport`'s rules with HTTP/1.1 on :mod:`agent.http1`.

Everything a template can observe is the aiohttp transport's (it is a subclass): the same
HTTP/2 routing by ALPN, TLS choice per request, outbound policy, Go's dial and TLS handshake
timeouts with Go's texts, no cookie jar, no retries. What changes is the HTTP/1.1 exchange
itself: instead of aiohttp's ``ClientSession.request`` (a request object, a payload, a
writer that writes head and body apart, a response object, a stream reader and timers:
about half of the executor's CPU per request in the one-task-per-taskset profile), the
request's head and body go out in one write on a kept-alive connection and the response is
read by one protocol object (docs/performance.md).

Connections are made here, as aiohttp's connector made them: the name resolved (cached for
``dns_cache_seconds``) and every address checked against the policy, the addresses dialled
in order (a failure goes on to the next; a dial timeout names the first address, as Go's
``dialSerial`` reports the first error), the TLS handshake under Go's separate limit on
verified connections and none on ``insecureSkipVerify`` ones. Errors are raised as the httpx
exceptions the aiohttp transport raises, with the same causes attached, so
:func:`agent.executor.errors.describe_transport_error` words them the same way.

Limits: at most ``max_connections`` exchanges at a time in all, and
``max_connections_per_host`` per origin (0: no limit), as aiohttp's connector counts them;
idle connections are kept ``keepalive_seconds``.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from agent import http1
from agent.executor.errors import DialError, DialTimeout, TLSHandshakeTimeout, join_host_port
from agent.executor.policy import PolicyDenied, is_ip_literal
from agent.executor.transport import (
    _ALPN_TTL,
    _NO_HANDSHAKE_LIMIT,
    _TLS_HANDSHAKE_TIMEOUT_TEXT,
    AiohttpTransport,
    _partial_timeout,
    _smaller,
)

__all__ = ["Http1Transport"]

_MAX_ORIGINS = 4096
_Origin = tuple[str, str, int, bool]  # scheme, host, port, insecure


class _Slots:
    """A counting limit whose waiters are served first come, first served, in O(1).

    ``asyncio.Semaphore.acquire`` scans its waiters on every call (Python 3.11), which with
    a hundred requests queued for one host's connections cost more than the request. A
    released slot is handed straight to the oldest live waiter.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot while being cancelled: pass it on
            raise

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class _OriginPool:
    """One origin's kept-alive connections and its share of the connection limit."""

    __slots__ = ("pool", "slots")

    def __init__(self, pool: http1.Pool, slots: _Slots | None) -> None:
        self.pool = pool
        self.slots = slots


class _Http1Stream(httpx.AsyncByteStream):
    """The body of a response read from an :mod:`agent.http1` connection."""

    def __init__(
        self, response: http1.Response, request: httpx.Request | None, release: Any
    ) -> None:
        self._response = response
        self._request = request
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        response = self._response
        try:
            while chunk := await response.next_chunk():
                yield chunk
        except http1.HTTP1Error as exc:
            raise _body_error(exc, self._request) from exc

    async def aclose(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            self._response.release()  # kept alive only when read to the end
            release()


class Http1Transport(AiohttpTransport):
    """:class:`AiohttpTransport` with its HTTP/1.1 exchanges on :mod:`agent.http1`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._origins: dict[_Origin, _OriginPool] = {}
        limit, per_host = self._limits
        self._slots = _Slots(limit) if limit else None
        self._per_host = per_host
        # host -> (addresses, when they expire)
        self._addresses: dict[str, tuple[list[str], float]] = {}

    def sends_directly(self, *, scheme: str, host: str, port: int, insecure: bool) -> bool:
        """Whether a request to this origin runs on the HTTP/1.1 pool (not HTTP/2), so that
        :meth:`send_direct` may carry it."""
        if scheme == "http" or insecure or self._http2 is None:
            return True
        known = self._alpn.get((host, None if port == 443 else port, insecure))
        return known is not None and not known[0] and time.monotonic() - known[1] < _ALPN_TTL

    async def send_direct(
        self, *, method: str, scheme: str, host: str, port: int, data: bytes, insecure: bool
    ) -> httpx.Response:
        """``data`` (a request's bytes, built by the caller as httpx would build them) on
        the HTTP/1.1 pool, without an ``httpx.Request``: the executor's path for the common
        request (:meth:`sends_directly` said yes). The response has no ``request``; errors
        are this transport's, without one either."""
        if is_ip_literal(host):
            try:
                self._policy.check(host, host=host)
            except PolicyDenied as exc:
                raise httpx.ConnectError(str(exc)) from exc
        connect = None if insecure else self._connect_timeout
        return await self._roundtrip(
            (scheme, host, port, insecure), data, method=method, connect=connect, read=None
        )

    async def _send_http11(self, request: httpx.Request, *, insecure: bool) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        port = url.port or (443 if scheme == "https" else 80)
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        connect = timeouts.get("connect")
        if not insecure:
            connect = _smaller(connect, self._connect_timeout)
        data = _encode(request, await request.aread())
        response = await self._roundtrip(
            (scheme, url.host, port, insecure),
            data,
            method=request.method,
            connect=connect,
            read=timeouts.get("read"),
            request=request,
        )
        response.request = request
        return response

    async def _roundtrip(
        self,
        origin: _Origin,
        data: bytes,
        *,
        method: str,
        connect: float | None,
        read: float | None,
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        entry = self._origins.get(origin) or self._new_origin(origin)
        acquired = await _acquire(self._slots, entry.slots)
        try:
            try:
                if read is None:
                    response = await self._exchange(entry, origin, data, method, connect, request)
                else:
                    async with asyncio.timeout(read):
                        response = await self._exchange(
                            entry, origin, data, method, connect, request
                        )
            except TimeoutError as exc:
                if read is None:
                    raise
                raise httpx.ReadTimeout("timed out reading the response", request=request) from exc
        except BaseException:
            _release(acquired)
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Http1Stream(response, request, lambda: _release(acquired)),
            extensions={"http_version": response.version, "reason_phrase": response.reason},
        )

    async def _exchange(
        self,
        entry: _OriginPool,
        origin: _Origin,
        data: bytes,
        method: str,
        connect: float | None,
        request: httpx.Request | None,
    ) -> http1.Response:
        pool = entry.pool
        conn = pool.take() or await self._connect(origin, request, connect)
        try:
            return await pool.exchange_on(conn, data, no_body=method == "HEAD")
        except http1.HTTP1Error as exc:
            raise _head_error(exc, request) from exc

    def _new_origin(self, origin: _Origin) -> _OriginPool:
        if len(self._origins) >= _MAX_ORIGINS:
            for stale in list(self._origins.values()):
                stale.pool.close()
            self._origins.clear()
        # As many idle connections as may be in use at once: a burst's connections are
        # all kept for the next one (fewer would be closed and opened again).
        pool = http1.Pool(
            connect=None,
            keepalive_seconds=self._keepalive,
            max_idle=self._per_host or self._limits[0] or 1024,
        )
        slots = _Slots(self._per_host) if self._per_host else None
        entry = self._origins[origin] = _OriginPool(pool, slots)
        return entry

    # -- connecting --------------------------------------------------------------------

    async def _connect(
        self, origin: _Origin, request: httpx.Request | None, connect: float | None
    ) -> http1.StreamProtocol:
        scheme, host, port, insecure = origin
        addresses = await self._resolve(host, port, request)
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = self._tls.insecure if insecure else self._tls.verify
        handshake = None
        if context is not None:
            handshake = _NO_HANDSHAKE_LIMIT if insecure else self._tls_handshake_timeout
        loop = asyncio.get_running_loop()
        deadline = None if connect is None else time.monotonic() + connect
        first: BaseException | None = None
        for index, address in enumerate(addresses):
            try:
                # Go's dialSerial: each address gets its share of the time left
                async with asyncio.timeout(_partial_timeout(deadline, len(addresses) - index)):
                    _, protocol = await loop.create_connection(
                        lambda: http1.StreamProtocol(loop),
                        address,
                        port,
                        ssl=context,
                        server_hostname=host.strip("[]") if context is not None else None,
                        ssl_handshake_timeout=handshake,
                    )
                return protocol
            except TimeoutError:
                if deadline is None:
                    raise
                first = first or DialTimeout(join_host_port(address, port))
            except ssl.SSLError as exc:
                raise httpx.ConnectError(str(exc), request=request) from exc
            except ConnectionAbortedError as exc:
                if context is not None and not insecure and exc.errno is None:
                    # asyncio's sslproto ends a handshake that ran out of time so
                    raise httpx.ConnectError(_TLS_HANDSHAKE_TIMEOUT_TEXT, request=request) from (
                        TLSHandshakeTimeout()
                    )
                first = first or _dial_error(exc, address, port)
            except OSError as exc:
                first = first or _dial_error(exc, address, port)
        if isinstance(first, DialTimeout):
            raise httpx.ConnectTimeout(f"dial timeout: {first.address}", request=request) from first
        assert first is not None
        raise httpx.ConnectError(str(first), request=request) from first

    async def _resolve(self, host: str, port: int, request: httpx.Request | None) -> list[str]:
        if is_ip_literal(host):
            return [host.strip("[]")]  # checked against the policy by the caller
        now = time.monotonic()
        cached = self._addresses.get(host)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
            )
        except socket.gaierror as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        try:
            for address in addresses:
                self._policy.check(address, host=host)
        except PolicyDenied as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        if self._dns_cache and addresses:
            if len(self._addresses) >= _MAX_ORIGINS:
                self._addresses.clear()
            self._addresses[host] = (addresses, now + self._dns_cache)
        return addresses

    async def aclose(self) -> None:
        for entry in self._origins.values():
            entry.pool.close()
        self._origins.clear()
        await super().aclose()


async def _acquire(*semaphores: _Slots | None) -> list[_Slots]:
    acquired: list[_Slots] = []
    try:
        for semaphore in semaphores:
            if semaphore is not None:
                await semaphore.acquire()
                acquired.append(semaphore)
    except BaseException:
        _release(acquired)
        raise
    return acquired


def _release(acquired: list[_Slots]) -> None:
    while acquired:
        acquired.pop().release()


def _encode(request: httpx.Request, body: bytes) -> bytes:
    """The request line, the header bytes as they are, and the body: one buffer."""
    url = request.url
    parts = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    if body:
        parts.append(body)
    return b"".join(parts)


def _dial_error(exc: OSError, address: str, port: int) -> OSError:
    """``exc`` with the address it dialled, which the error text names (Go's does)."""
    if exc.errno is None:
        return exc
    failed = DialError(exc, join_host_port(address, port))
    failed.__cause__ = exc
    return failed


def _head_error(exc: http1.HTTP1Error, request: httpx.Request | None) -> httpx.TransportError:
    """An exchange that ended before the response head, as the aiohttp transport raises it."""
    if isinstance(exc, http1.MalformedResponse):
        return httpx.RemoteProtocolError(str(exc), request=request)
    assert isinstance(exc, http1.ConnectionClosed)
    if exc.cause is not None:
        return httpx.ReadError(str(exc.cause) or str(exc), request=request)
    if exc.received:
        return httpx.RemoteProtocolError(
            "Response payload is not completed: unexpected EOF", request=request
        )
    return httpx.RemoteProtocolError("Server disconnected", request=request)


def _body_error(exc: http1.HTTP1Error, request: httpx.Request | None) -> httpx.TransportError:
    if isinstance(exc, http1.MalformedResponse):
        return httpx.RemoteProtocolError(str(exc), request=request)
    assert isinstance(exc, http1.ConnectionClosed)
    if exc.cause is not None:
        return httpx.ReadError(str(exc.cause) or str(exc), request=request)
    return httpx.ReadError("Response payload is not completed", request=request)
