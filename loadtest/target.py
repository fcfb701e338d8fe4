"""A fast local HTTP target for load tests: fixed (or per-request) delay and body size.

``python loadtest/target.py --delay 0 --size 100`` binds 127.0.0.1 (port 0 = a free one),
prints one JSON line ``{"url", "pid", "server"}`` once it serves, and serves until
SIGTERM/SIGINT. Every request (any method, any path) is answered ``200`` with a JSON body
of exactly ``--size`` bytes after ``--delay`` seconds; ``?delay=S&size=N`` in the URL
overrides both for one request, so one target can serve several scenarios.

The target must cost as little CPU as possible: on a 2-core machine it shares the cores
with the agent, the API simulator and the load generator, and whatever it burns is
counted against the agent. Two implementations are kept so the choice stays measurable
(``--server``):

* ``protocol`` (default): a raw :class:`asyncio.Protocol` speaking HTTP/1.1 keep-alive,
  answering straight from ``data_received`` with pre-built responses (no parsing beyond
  the request line and ``Content-Length``). Chunked request bodies are refused (501).
* ``aiohttp``: an aiohttp web application with the access log off.

Measured here (20,000 GETs, concurrency 200, plain aiohttp client, 2 cores), the protocol
server answers about twice as many requests per second as aiohttp's server; see
``loadtest/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from urllib.parse import parse_qs

__all__ = ["TargetProtocol", "body_of_size", "main"]

_MAX_HEAD = 64 * 1024
_MAX_DELAY = 3600.0
_MAX_SIZE = 64 << 20


def body_of_size(size: int) -> bytes:
    """A JSON document of exactly ``size`` bytes (plain padding below the JSON minimum)."""
    frame = b'{"pad":""}'
    if size < len(frame):
        return b"x" * size
    return b'{"pad":"' + b"a" * (size - len(frame)) + b'"}'


class _Responses:
    """Pre-built response bytes per body size (the hot path only concatenates)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, bool], bytes] = {}

    def get(self, size: int, *, close: bool) -> bytes:
        key = (size, close)
        response = self._cache.get(key)
        if response is None:
            connection = "close" if close else "keep-alive"
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Connection: {connection}\r\nContent-Length: {size}\r\n\r\n"
            )
            response = head.encode() + body_of_size(size)
            if len(self._cache) < 64:
                self._cache[key] = response
        return response


def _overrides(target: bytes, delay: float, size: int) -> tuple[float, int]:
    """``?delay=&size=`` from the request target, validated and bounded."""
    _, _, query = target.partition(b"?")
    if not query:
        return delay, size
    params = parse_qs(query.decode("latin-1"))
    if "delay" in params:
        delay = min(max(float(params["delay"][-1]), 0.0), _MAX_DELAY)
    if "size" in params:
        size = min(max(int(params["size"][-1]), 0), _MAX_SIZE)
    return delay, size


class TargetProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: parse heads as they arrive, answer in request order."""

    def __init__(self, *, delay: float, size: int, responses: _Responses) -> None:
        self._delay = delay
        self._size = size
        self._responses = responses
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        # Delayed answers wait here so pipelined requests are answered in order.
        self._queue: list[list[bytes | None]] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer = self._buffer + data if self._buffer else data
        while self._buffer and not self._closing:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    self._fail(b"431 Request Header Fields Too Large")
                return
            head = self._buffer[:end]
            first, _, rest = head.partition(b"\r\n")
            parts = first.split(b" ")
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
                self._fail(b"400 Bad Request")
                return
            headers = rest.lower()
            length = 0
            if b"content-length:" in headers or b"transfer-encoding:" in headers:
                for line in headers.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip() == b"transfer-encoding":
                        self._fail(b"501 Not Implemented")
                        return
                    if name.strip() == b"content-length":
                        try:
                            length = int(value.strip())
                        except ValueError:
                            self._fail(b"400 Bad Request")
                            return
            if len(self._buffer) < end + 4 + length:
                return  # the body is still arriving
            self._buffer = self._buffer[end + 4 + length :]
            close = (
                b"connection: close" in headers
                if parts[2] == b"HTTP/1.1"
                else b"connection: keep-alive" not in headers
            )
            try:
                delay, size = _overrides(parts[1], self._delay, self._size)
            except ValueError:
                self._fail(b"400 Bad Request")
                return
            self._answer(self._responses.get(size, close=close), delay=delay, close=close)

    def _answer(self, response: bytes, *, delay: float, close: bool) -> None:
        if close:
            self._closing = True
        if delay <= 0 and not self._queue:
            self._write(response, close=close)
            return
        slot: list[bytes | None] = [None]
        self._queue.append(slot)

        def ready() -> None:
            slot[0] = response
            self._flush()

        self._timers.append(asyncio.get_running_loop().call_later(delay, ready))
        if close:
            slot.append(b"")  # marks the last response of the connection

    def _flush(self) -> None:
        while self._queue and self._queue[0][0] is not None:
            slot = self._queue.pop(0)
            data = slot[0]
            assert data is not None
            self._write(data, close=len(slot) > 1)
        self._timers = [t for t in self._timers if not t.cancelled()]

    def _write(self, data: bytes, *, close: bool) -> None:
        if self._transport is None:
            return
        self._transport.write(data)
        if close:
            self._transport.close()

    def _fail(self, status: bytes) -> None:
        self._closing = True
        self._buffer = b""
        self._write(
            b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            close=True,
        )


async def _serve_protocol(
    *, port: int, delay: float, size: int, ready: Callable[[int], None], stop: asyncio.Event
) -> None:
    responses = _Responses()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: TargetProtocol(delay=delay, size=size, responses=responses),
        host="127.0.0.1",
        port=port,
        backlog=4096,
        reuse_address=True,
    )
    async with server:
        ready(int(server.sockets[0].getsockname()[1]))
        await stop.wait()


async def _serve_aiohttp(
    *, port: int, delay: float, size: int, ready: Callable[[int], None], stop: asyncio.Event
) -> None:
    from aiohttp import web

    bodies: dict[int, bytes] = {}

    async def handle(request: web.Request) -> web.Response:
        try:
            this_delay, this_size = _overrides(request.raw_path.encode("latin-1"), delay, size)
        except ValueError:
            return web.Response(status=400)
        await request.read()
        if this_delay > 0:
            await asyncio.sleep(this_delay)
        body = bodies.get(this_size)
        if body is None:
            body = body_of_size(this_size)
            if len(bodies) < 64:
                bodies[this_size] = body
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None and hasattr(server, "sockets")
        ready(int(server.sockets[0].getsockname()[1]))
        await stop.wait()
    finally:
        await runner.cleanup()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python loadtest/target.py",
        description="Local HTTP target for load tests (binds 127.0.0.1).",
    )
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--size", type=int, default=100, help="response body bytes")
    parser.add_argument(
        "--server",
        choices=("protocol", "aiohttp"),
        default="protocol",
        help="implementation (default %(default)s, the faster one here)",
    )
    return parser


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def ready(port: int) -> None:
        line = {"url": f"http://127.0.0.1:{port}", "pid": os.getpid(), "server": args.server}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    serve = _serve_protocol if args.server == "protocol" else _serve_aiohttp
    await serve(port=args.port, delay=args.delay, size=args.size, ready=ready, stop=stop)


def main(argv: list[str] | None = None) -> int:
    """Entry point: validate the options, serve until a signal."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not 0 <= args.delay <= _MAX_DELAY:
        parser.error(f"--delay: must be between 0 and {_MAX_DELAY:g} seconds, got {args.delay}")
    if not 0 <= args.size <= _MAX_SIZE:
        parser.error(f"--size: must be between 0 and {_MAX_SIZE} bytes, got {args.size}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port: must be between 0 and 65535, got {args.port}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
