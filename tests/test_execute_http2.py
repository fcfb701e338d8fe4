"""HTTP/2 with HTTPS targets that offer it, as Go's client does (ALPN), on a real server.

The target is hypercorn (an HTTP/2-capable ASGI server) over TLS on 127.0.0.1, answering
with the HTTP version it served and the request's ``:authority``/Host. aiohttp speaks only
HTTP/1.1; the executor's transport asks an HTTPS origin with httpx's HTTP/2 pool first and
keeps HTTP/1.1 origins on aiohttp's pool afterwards.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config

from agent.core.model import dump
from agent.core.refs import TaskRef
from agent.executor.executor import Executor
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import ExecutorSettings
from agent.executor.transport import AiohttpTransport
from tests.executors import executor_factory
from tests.servers import TargetServer, TestCA

REF = TaskRef(namespace="argo", taskset="wf", node_id="wf-1")


async def _app(
    scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the whole request first, as a well-behaved ASGI app does
        message = await receive()
        more = message.get("more_body", False)
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    body = json.dumps(
        {
            "http_version": scope["http_version"],
            "method": scope["method"],
            "path": scope["path"],
            "host": headers.get("host") or headers.get(":authority", ""),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        }
    ).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"json")]}
    )
    await send({"type": "http.response.body", "body": body})


class Http2Target:
    """hypercorn over TLS (ALPN h2, http/1.1) in a thread, on a free 127.0.0.1 port."""

    def __init__(self, ca: TestCA) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._ca = ca
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.certfile, config.keyfile = self._ca.server_files()
        config.accesslog = None
        config.errorlog = None

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._loop.call_later(0.2, self._ready.set)
            await serve(_app, config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]

        asyncio.run(main())

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Http2Target:
        self._thread.start()
        assert self._ready.wait(10), "hypercorn did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="module")
def h2_target(test_ca: TestCA) -> Iterator[Http2Target]:
    with Http2Target(test_ca) as server:
        yield server


@pytest.fixture
async def make_executor(test_ca: TestCA) -> AsyncIterator[Callable[..., Executor]]:
    async with executor_factory(ca_dir=None, ca_bundle=test_ca.pem_path) as make:
        yield make


async def run(executor: Executor, http: dict[str, Any]) -> dict[str, Any]:
    return dump(await executor.run({"name": "t", "http": http}, ref=REF))


def served(result: dict[str, Any]) -> dict[str, Any]:
    assert result["phase"] == "Succeeded", result
    return json.loads(result["outputs"]["result"])  # type: ignore[no-any-return]


@pytest.mark.parametrize("transport", ["http1", "aiohttp", "httpcore"])
async def test_https_target_offering_http2_is_spoken_to_in_http2(
    make_executor: Callable[..., Executor], h2_target: Http2Target, transport: str
) -> None:
    executor = make_executor(transport=transport)
    for _ in range(3):  # the first request and the ones after it
        echo = served(await run(executor, {"url": h2_target.url("/x"), "method": "POST"}))
        assert echo["http_version"] == "2" and echo["method"] == "POST"
        assert echo["path"] == "/x"


async def test_host_header_becomes_the_http2_authority(
    make_executor: Callable[..., Executor], h2_target: Http2Target
) -> None:
    result = await run(
        make_executor(),
        {"url": h2_target.url("/"), "headers": [{"name": "Host", "value": "elsewhere.example"}]},
    )
    assert served(result)["host"] == "elsewhere.example"


@pytest.mark.parametrize("transport", ["http1", "aiohttp", "httpcore"])
async def test_header_names_are_lower_case_on_http2_as_gos(
    make_executor: Callable[..., Executor], h2_target: Http2Target, transport: str
) -> None:
    """HTTP/2 carries names in lower case (RFC 9113 8.2.2): Go's client lowercases them
    (net/http/internal/httpcommon EncodeHeaders: LowerHeader), so Header.Add's canonical
    spelling never reaches an HTTP/2 server. Values are trimmed here as on HTTP/1.1; Go's
    HTTP/2 writer sends the surrounding whitespace, which RFC 9113 8.2.1 makes the request
    malformed for (python-h2 refuses to send it): README.md lists the difference."""
    headers = [{"name": "x-API-key", "value": "k"}, {"name": "X-Tabs", "value": "\tv\t"}]
    result = await run(
        make_executor(transport=transport), {"url": h2_target.url("/"), "headers": headers}
    )
    echo = served(result)
    assert echo["http_version"] == "2"
    assert ["x-api-key", "k"] in echo["headers"] and ["x-tabs", "v"] in echo["headers"]


async def test_http2_off_speaks_http1(
    make_executor: Callable[..., Executor], h2_target: Http2Target
) -> None:
    echo = served(await run(make_executor(http2=False), {"url": h2_target.url("/")}))
    assert echo["http_version"] == "1.1"


@pytest.mark.parametrize("transport", ["http1", "aiohttp", "httpcore"])
async def test_insecure_skip_verify_speaks_http1_as_argos_insecure_client(
    make_executor: Callable[..., Executor], h2_target: Http2Target, transport: str
) -> None:
    """Argo's insecure client (workflow/executor/agent.go ``httpClientSkip``) is a bare
    ``http.Transport`` with a ``TLSClientConfig``: net/http/transport.go
    ``(*Transport).protocols`` enables no HTTP/2 for it ("don't automatically enable http2
    if they've specified a custom TLS config"). The verified client negotiates HTTP/2."""
    executor = make_executor(ca_bundle=None, transport=transport)  # the test CA is untrusted
    url = h2_target.url("/")
    failed = await run(executor, {"url": url})
    assert failed["phase"] == "Failed"
    assert failed["message"].startswith(f'Get "{url}": tls: failed to verify certificate: ')
    for _ in range(2):  # the first request and one on a kept-alive connection
        echo = served(await run(executor, {"url": url, "insecureSkipVerify": True}))
        assert echo["http_version"] == "1.1"
    trusted = make_executor(transport=transport)
    assert served(await run(trusted, {"url": url}))["http_version"] == "2"


async def test_deny_list_applies_on_http2(
    make_executor: Callable[..., Executor], h2_target: Http2Target
) -> None:
    result = await run(make_executor(deny_networks=("127.0.0.0/8",)), {"url": h2_target.url("/")})
    assert result["phase"] == "Failed"
    assert (
        "outbound policy: destination 127.0.0.1 is denied by rule 127.0.0.0/8"
        in (result["message"])
    )


async def test_an_http1_origin_moves_to_the_aiohttp_pool(
    make_executor: Callable[..., Executor], tls_target: TargetServer
) -> None:
    """The first request asks by ALPN; the server's HTTP/1.1 answer sends the origin's next
    requests to aiohttp's pool (which the HTTP/2 pool then never sees)."""
    executor = make_executor(transport="aiohttp")
    transport = executor._client._transport
    assert isinstance(transport, AiohttpTransport) and transport._http2 is not None
    url = tls_target.url("/status/200")
    first = await run(executor, {"url": url})
    assert first == {"phase": "Succeeded", "outputs": {"result": "status 200"}}
    origin = ("127.0.0.1", tls_target.port, False)
    assert transport._alpn[origin][0] is False
    http2_pool = transport._http2
    sent_on_http2: list[str] = []
    original = http2_pool.handle_async_request

    async def spy(request: Any) -> Any:
        sent_on_http2.append(str(request.url))
        return await original(request)

    http2_pool.handle_async_request = spy  # type: ignore[method-assign]
    for _ in range(3):
        again = await run(executor, {"url": url})
        assert again == first
    assert sent_on_http2 == []


class _GoAwayServer:
    """An HTTP/2 server (TLS, ALPN h2) that answers the first request with GOAWAY."""

    def __init__(self, ca: TestCA) -> None:
        self._context = ca.server_context()
        self._context.set_alpn_protocols(["h2"])
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._context)
        return int(self._server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        try:
            while data := await reader.read(65536):
                events = conn.receive_data(data)
                if any(isinstance(e, h2.events.RequestReceived) for e in events):
                    conn.close_connection(
                        error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                        additional_data=b"too many",
                        last_stream_id=0,
                    )
                    writer.write(conn.data_to_send())
                    await writer.drain()
                    break
                writer.write(conn.data_to_send())
                await writer.drain()
        finally:
            writer.close()


async def test_a_goaway_is_reported_in_gos_words(test_ca: TestCA) -> None:
    """golang.org/x/net/http2 transport.go ``GoAwayError.Error``: the server refused the
    request with GOAWAY (here ENHANCE_YOUR_CALM, debug data "too many"); no Python repr."""
    async with _GoAwayServer(test_ca) as port:
        settings = ExecutorSettings(ca_dir=None, ca_bundle=test_ca.pem_path, http2=True)
        async with Executor(settings=settings, secrets=StaticSecretResolver()) as executor:
            url = f"https://localhost:{port}/x"
            result = dump(await executor.run({"http": {"url": url}}, ref=TaskRef("ns", "wf", "n")))
    assert result == {
        "phase": "Failed",
        "message": f'Get "{url}": http2: server sent GOAWAY and closed the connection; '
        'LastStreamID=0, ErrCode=ENHANCE_YOUR_CALM, debug="too many"',
    }
