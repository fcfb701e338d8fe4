"""Real HTTP servers on 127.0.0.1 for tests, end-to-end suites and the examples.

Each server runs an aiohttp application **in its own thread with its own event loop**, so
it serves sync tests, async tests (whatever their loop scope) and subprocesses alike::

    from tests.servers import TargetServer, TestCA

    with TargetServer() as target:                    # plain HTTP
        target.url("/status/201")                     # -> "http://127.0.0.1:PORT/status/201"
    ca = TestCA()                                     # a throw-away CA (trustme)
    with TargetServer(tls=ca) as target:              # HTTPS, cert for localhost/127.0.0.1
        ca.pem_path                                   # the CA bundle a client should trust

:class:`TargetServer` serves :func:`agent_sim.target.target_app` (its endpoints are listed
there: ``/echo``, ``/status/{code}``, ``/redirect/{n}``, ``/reset``, ``/hang``, ...).

:class:`PluginServer` is an Argo executor-plugin sidecar answering
``POST /api/v1/template.execute`` from a script of replies, recording every call.

``python -m tests.servers [--port 8765] [--tls DIR]`` runs a target in the foreground (the
examples use it); with ``--tls`` it writes ``ca.pem`` into DIR and serves HTTPS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import trustme
from agent_sim import SimulatorTls
from agent_sim.target import target_app
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

    def make_app(self) -> web.Application:
        return target_app()


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


def simulator_tls(trusted: trustme.CA, *, signer: trustme.CA | None = None) -> SimulatorTls:
    """The simulator's HTTPS settings: a 127.0.0.1 certificate from ``signer`` (default
    ``trusted``), and ``trusted`` as the CA its kubeconfigs name."""
    cert = (signer or trusted).issue_cert("127.0.0.1")
    return SimulatorTls(
        cert_chain_pem=b"".join(blob.bytes() for blob in cert.cert_chain_pems),
        private_key_pem=cert.private_key_pem.bytes(),
        ca_pem=trusted.cert_pem.bytes(),
    )


# -- a raw loopback listener --------------------------------------------------------------

RawHandler = Callable[[socket.socket], None]


class RawServer:
    """A 127.0.0.1 listener that hands each accepted socket to ``handler`` on a thread: for
    answers no HTTP server library would send (exact bytes, resets, silence)."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        #: connections accepted so far
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str = "/x", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.handler(conn)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._listener.close()


def read_request(conn: socket.socket) -> bytes:
    """One request's head (its Content-Length body read and dropped); b"" at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            while len(rest) < int(value):
                more = conn.recv(65536)
                if not more:
                    break
                rest += more
    return head


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
