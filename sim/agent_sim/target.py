"""The target of HTTP templates: a real aiohttp application for the demo, tests and benchmarks.

One application, so what the demo shows is what the tests exercise. Endpoints (any method):

===============================  ========================================================
``/echo``                        200 JSON: ``method``, ``path``, ``query``, ``host``,
                                 ``headers`` (``[[name, value], ...]`` as received, in
                                 order; ``redact`` names show ``<redacted>``), ``body``
                                 (text) and ``body_base64``
``/status/{code}``               that status, body ``status {code}``
``/respond?status=&body=``       any status/body; repeat ``header=Name:Value`` to add
                                 response headers (repeats and case preserved)
``/delay/{seconds}``             waits, then 200 ``slept``
``/redirect/{n}``                ``n`` redirects (``status=`` 301/302/303/307/308, default
                                 302) ending at 200 ``redirected`` or at ``final=PATH``
``/redirect-to?url=&status=``    one redirect to any URL
``/bytes/{n}``                   ``n`` bytes ``x`` with ``Content-Length``
``/stream/{n}``                  ``n`` bytes ``x``, chunked (no ``Content-Length``)
``/pattern/{n}?seed=``           ``n`` reproducible, non-repeating bytes (:func:`pattern`),
                                 generated while sent, chunked; ``length=1`` adds
                                 ``Content-Length`` (for artifacts: a misplaced part shows)
``/gzip?body=``                  the body gzip-compressed, ``Content-Encoding: gzip``
``/reset``                       resets the TCP connection (RST) instead of answering
``/close``                       closes the connection without an answer (EOF)
``/hang``                        never answers
``/flaky/{key}/{n}``             500 for the first ``n`` calls with this ``key``, then 200
                                 ``ok after n failures`` (for retries)
===============================  ========================================================
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import socket
import struct
from collections.abc import Iterable, Iterator

from aiohttp import web

__all__ = ["abort_connection", "pattern", "pattern_chunks", "target_app"]

_REDACT = web.AppKey("redact", frozenset[str])
_FLAKY = web.AppKey("flaky", dict[str, int])


def target_app(*, redact: Iterable[str] = ()) -> web.Application:
    """The target application; ``redact``: header names whose values ``/echo`` hides."""
    app = web.Application()
    app[_REDACT] = frozenset(name.lower() for name in redact)
    app[_FLAKY] = {}
    app.router.add_route("*", "/echo", _echo)
    app.router.add_route("*", "/status/{code}", _status)
    app.router.add_route("*", "/respond", _respond)
    app.router.add_route("*", "/delay/{seconds}", _delay)
    app.router.add_route("*", "/redirect/{n}", _redirect)
    app.router.add_route("*", "/redirect-to", _redirect_to)
    app.router.add_route("*", "/bytes/{n}", _bytes)
    app.router.add_route("*", "/stream/{n}", _stream)
    app.router.add_route("*", "/pattern/{n}", _pattern)
    app.router.add_route("*", "/gzip", _gzip)
    app.router.add_route("*", "/reset", _reset)
    app.router.add_route("*", "/close", _close)
    app.router.add_route("*", "/hang", _hang)
    app.router.add_route("*", "/flaky/{key}/{n}", _flaky)
    return app


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    redact = request.app[_REDACT]
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "host": request.host,
            "headers": [
                [
                    name.decode("latin-1"),
                    "<redacted>"
                    if name.decode("latin-1").lower() in redact
                    else value.decode("latin-1"),
                ]
                for name, value in request.raw_headers
            ],
            "body": body.decode("utf-8", "replace"),
            "body_base64": base64.b64encode(body).decode("ascii"),
        }
    )


async def _status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    await request.read()
    return web.Response(status=code, text=f"status {code}")


async def _respond(request: web.Request) -> web.Response:
    await request.read()
    response = web.Response(
        status=int(request.query.get("status", "200")), text=request.query.get("body", "")
    )
    for item in request.query.getall("header", []):
        name, _, value = item.partition(":")
        response.headers.add(name, value)
    return response


async def _delay(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.match_info["seconds"]))
    return web.Response(text="slept")


async def _redirect(request: web.Request) -> web.Response:
    remaining = int(request.match_info["n"])
    status = int(request.query.get("status", "302"))
    if remaining <= 0:
        return web.Response(text="redirected")
    final = request.query.get("final")
    if remaining == 1 and final:
        location = final
    else:
        query = f"?{request.query_string}" if request.query_string else ""
        location = f"/redirect/{remaining - 1}{query}"
    return web.Response(status=status, headers={"Location": location}, text="redirecting")


async def _redirect_to(request: web.Request) -> web.Response:
    status = int(request.query.get("status", "302"))
    return web.Response(status=status, headers={"Location": request.query["url"]})


async def _bytes(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * int(request.match_info["n"]))


async def _stream(request: web.Request) -> web.StreamResponse:
    remaining = int(request.match_info["n"])
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    while remaining > 0:
        size = min(remaining, 64 * 1024)
        await response.write(b"x" * size)
        remaining -= size
    await response.write_eof()
    return response


_PATTERN_BLOCK = 2048  # one SHA-256 digest repeated 64 times


def pattern_chunks(size: int, *, seed: int = 0, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """The bytes of :func:`pattern`, ``chunk`` at a time (never held whole)."""
    blocks_per_chunk = max(1, chunk // _PATTERN_BLOCK)
    block = 0
    remaining = size
    while remaining > 0:
        data = b"".join(
            hashlib.sha256(f"{seed}:{block + i}".encode()).digest() * 64
            for i in range(blocks_per_chunk)
        )[:remaining]
        block += blocks_per_chunk
        remaining -= len(data)
        yield data


def pattern(size: int, *, seed: int = 0) -> bytes:
    """``size`` reproducible bytes in which no 2 KiB block repeats another (for ``seed``)."""
    return b"".join(pattern_chunks(size, seed=seed))


async def _pattern(request: web.Request) -> web.StreamResponse:
    size = int(request.match_info["n"])
    response = web.StreamResponse()
    if request.query.get("length") == "1":
        response.content_length = size
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    for data in pattern_chunks(size, seed=int(request.query.get("seed", "0"))):
        await response.write(data)
    await response.write_eof()
    return response


async def _gzip(request: web.Request) -> web.Response:
    data = gzip.compress(request.query.get("body", "").encode("utf-8"))
    return web.Response(body=data, headers={"Content-Encoding": "gzip"})


def abort_connection(request: web.Request, *, reset: bool) -> None:
    """Cut the client's connection: a TCP reset (``reset``) or a plain close (EOF)."""
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


async def _reset(request: web.Request) -> web.Response:
    abort_connection(request, reset=True)
    await asyncio.sleep(3600)  # the handler is cancelled with the connection
    raise AssertionError("unreachable")  # pragma: no cover


async def _close(request: web.Request) -> web.Response:
    abort_connection(request, reset=False)
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")  # pragma: no cover


async def _hang(request: web.Request) -> web.Response:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")  # pragma: no cover


async def _flaky(request: web.Request) -> web.Response:
    calls = request.app[_FLAKY]
    key, failures = request.match_info["key"], int(request.match_info["n"])
    seen = calls.get(key, 0)
    calls[key] = seen + 1
    if seen < failures:
        return web.Response(status=500, text=f"failure {seen + 1} of {failures}")
    return web.Response(text=f"ok after {failures} failures")
