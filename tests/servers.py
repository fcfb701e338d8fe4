"""Real HTTP servers on 127.0.0.1 for tests, end-to-end suites and the examples.

Each server runs an aiohttp application **in its own thread with its own event loop**, so
it serves sync tests, async tests (whatever their loop scope) and subprocesses alike::

    from tests.servers import TargetServer, TestCA

    with TargetServer() as target:                    # plain HTTP
        target.url("/status/201")                     # -> "http://127.0.0.1:PORT/status/201"
    ca = TestCA()                                     # a throw-away CA (trustme)
    with TargetServer(tls=ca) as target:              # HTTPS, cert for localhost/127.0.0.1
        ca.pem_path                                   # the CA bundle a client should trust

:class:`TargetServer` endpoints (any method unless noted):

===============================  ========================================================
``/echo``                        200 JSON: ``method``, ``path``, ``query``, ``host``,
                                 ``headers`` (``[[name, value], ...]`` as received, in
                                 order), ``body`` (text) and ``body_base64``
``/status/{code}``               that status, body ``status {code}``
``/respond?status=&body=``       any status/body; repeat ``header=Name:Value`` to add
                                 response headers (repeats and case preserved)
``/delay/{seconds}``             waits, then 200 ``slept``
``/redirect/{n}``                ``n`` redirects (``status=`` 301/302/303/307/308, default
                                 302) ending at 200 ``redirected`` or at ``final=PATH``
``/redirect-to?url=&status=``    one redirect to any URL
``/bytes/{n}``                   ``n`` bytes ``x`` with ``Content-Length``
``/stream/{n}``                  ``n`` bytes ``x``, chunked (no ``Content-Length``)
``/gzip?body=``                  the body gzip-compressed, ``Content-Encoding: gzip``
``/reset``                       resets the TCP connection (RST) instead of answering
``/close``                       closes the connection without an answer (EOF)
``/hang``                        never answers
``/flaky/{key}/{n}``             500 for the first ``n`` calls with this ``key``, then 200
                                 ``ok after n failures`` (for retries)
===============================  ========================================================

:class:`PluginServer` is an Argo executor-plugin sidecar answering
``POST /api/v1/template.execute`` from a script of replies, recording every call.

``python -m tests.servers [--port 8765] [--tls DIR]`` runs a target in the foreground (the
examples use it); with ``--tls`` it writes ``ca.pem`` into DIR and serves HTTPS.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import json
import os
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import trustme
from aiohttp import web

__all__ = ["PluginReply", "PluginServer", "TargetServer", "TestCA"]


class TestCA:
    """A throw-away certificate authority and a server certificate it issued."""

    __test__ = False  # not a pytest test class

    def __init__(self, *identities: str) -> None:
        self.ca = trustme.CA()
        self.server_cert = self.ca.issue_cert(*(identities or ("localhost", "127.0.0.1")))
        self._dir = tempfile.TemporaryDirectory(prefix="test-ca-")
        #: A PEM file with the CA certificate (what a client adds to its trust store).
        self.pem_path = os.path.join(self._dir.name, "ca.pem")
        self.ca.cert_pem.write_to_path(self.pem_path)

    @property
    def pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context

    def server_files(self) -> tuple[str, str]:
        """The server certificate chain and its key as PEM files (for servers that want paths)."""
        cert = os.path.join(self._dir.name, "server.pem")
        key = os.path.join(self._dir.name, "server.key")
        if not os.path.exists(cert):
            self.server_cert.private_key_pem.write_to_path(key)
            with open(cert, "wb") as out:
                for blob in self.server_cert.cert_chain_pems:
                    out.write(blob.bytes())
        return cert, key

    def write_pem(self, directory: str, name: str = "ca.pem") -> str:
        path = os.path.join(directory, name)
        self.ca.cert_pem.write_to_path(path)
        return path

    def cleanup(self) -> None:
        self._dir.cleanup()


class _ThreadedServer:
    """Runs an aiohttp application on 127.0.0.1 in a background thread."""

    def __init__(self, *, tls: TestCA | None = None, port: int = 0) -> None:
        self.tls = tls
        self._requested_port = port
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def url(self, path: str = "/", *, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def make_app(self) -> web.Application:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise RuntimeError(f"{type(self).__name__} failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.make_app(), shutdown_timeout=0.5, handle_signals=False)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._requested_port))
        self.port = sock.getsockname()[1]
        site = web.SockSite(
            runner, sock, ssl_context=self.tls.server_context() if self.tls else None
        )
        try:
            await site.start()
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()


class TargetServer(_ThreadedServer):
    """The target of HTTP templates: echo, status codes, redirects, failures (see module)."""

    def __init__(self, *, tls: TestCA | None = None, port: int = 0) -> None:
        super().__init__(tls=tls, port=port)
        self._flaky_calls: dict[str, int] = {}

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/echo", _echo)
        app.router.add_route("*", "/status/{code}", _status)
        app.router.add_route("*", "/respond", _respond)
        app.router.add_route("*", "/delay/{seconds}", _delay)
        app.router.add_route("*", "/redirect/{n}", _redirect)
        app.router.add_route("*", "/redirect-to", _redirect_to)
        app.router.add_route("*", "/bytes/{n}", _bytes)
        app.router.add_route("*", "/stream/{n}", _stream)
        app.router.add_route("*", "/gzip", _gzip)
        app.router.add_route("*", "/reset", _reset)
        app.router.add_route("*", "/close", _close)
        app.router.add_route("*", "/hang", _hang)
        app.router.add_route("*", "/flaky/{key}/{n}", self._flaky)
        return app

    async def _flaky(self, request: web.Request) -> web.Response:
        key, failures = request.match_info["key"], int(request.match_info["n"])
        seen = self._flaky_calls.get(key, 0)
        self._flaky_calls[key] = seen + 1
        if seen < failures:
            return web.Response(status=500, text=f"failure {seen + 1} of {failures}")
        return web.Response(text=f"ok after {failures} failures")


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "host": request.host,
            "headers": [
                [name.decode("latin-1"), value.decode("latin-1")]
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


@dataclass(frozen=True)
class PluginReply:
    """One scripted answer of a :class:`PluginServer`: a JSON document or a raw text."""

    status: int = 200
    json: Any = None
    text: str | None = None


@dataclass
class PluginCall:
    headers: dict[str, str]
    body: Any


@dataclass
class _Script:
    replies: list[PluginReply] = field(default_factory=list)
    calls: list[PluginCall] = field(default_factory=list)


class PluginServer(_ThreadedServer):
    """An executor-plugin sidecar: ``POST /api/v1/template.execute`` answers from a script.

    ``replies`` are used in order; the last one repeats. ``reply`` may instead be a function
    of the request body returning a :class:`PluginReply`. ``calls`` records every request.
    """

    def __init__(
        self,
        replies: list[PluginReply] | None = None,
        *,
        reply: Callable[[Any], PluginReply] | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self._script = _Script(list(replies or [PluginReply(json={"node": None})]))
        self._reply = reply
        self._lock = threading.Lock()

    @property
    def calls(self) -> list[PluginCall]:
        with self._lock:
            return list(self._script.calls)

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/template.execute", self._execute)
        return app

    async def _execute(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self._script.calls.append(PluginCall(dict(request.headers), body))
            if self._reply is not None:
                answer = self._reply(body)
            else:
                index = min(len(self._script.calls), len(self._script.replies)) - 1
                answer = self._script.replies[index]
        if answer.text is not None:
            return web.Response(status=answer.status, text=answer.text)
        return web.json_response(answer.json, status=answer.status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.servers", description="Run the test target (echo) server."
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--tls", metavar="DIR", help="serve HTTPS with a throw-away CA written to DIR/ca.pem"
    )
    args = parser.parse_args(argv)
    ca = None
    if args.tls:
        os.makedirs(args.tls, exist_ok=True)
        ca = TestCA()
        ca.write_pem(args.tls)
    server = TargetServer(tls=ca, port=args.port)
    with server:
        print(f"serving {server.base_url} (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
