"""The request head on the wire is the one Go's client writes for Argo's agent.

Argo's agent adds each template header with ``request.Header.Add(name, value)``
(workflow/executor/agent.go ``executeHTTPTemplateRequest``), which stores the name as
``textproto.CanonicalMIMEHeaderKey`` makes it; Go's HTTP/1 writer then trims each value
(net/http/header.go ``(Header).writeSubset``: ``textproto.TrimString``) and sends its bytes
as they are; the transport adds ``Accept-Encoding: gzip`` only when it can decode the answer
(net/http/transport.go ``(*persistConn).roundTrip``). The expected heads below were
checked against Go 1.26.5 sending the same headers to a loopback socket. Go writes the
header names sorted; the agent keeps the template's order (no server may depend on either).

A raw socket on 127.0.0.1 records the bytes; every test runs on both transports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agent.core.model import dump
from agent.core.refs import TaskRef
from agent.executor.executor import Executor
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import ExecutorSettings

REF = TaskRef(namespace="argo", taskset="wf", node_id="wf-1", workflow_uid="uid-1")
Send = Callable[..., Any]


@pytest.fixture(params=["http1", "aiohttp", "httpcore"])
async def send(request: pytest.FixtureRequest) -> AsyncIterator[Send]:
    """``await send(method=..., headers=[...])`` -> the header lines the server received."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = ExecutorSettings(ca_dir=None, transport=request.param)
    executor = Executor(settings=settings, secrets=StaticSecretResolver({}))

    async def do(**http: Any) -> list[bytes]:
        result = dump(
            await executor.run(
                {"name": "t", "http": {"url": f"http://127.0.0.1:{port}/", **http}}, ref=REF
            )
        )
        assert result["phase"] == "Succeeded", result
        head = received.pop()
        return head.split(b"\r\n")[2:-2]  # the header lines after the request line and Host

    try:
        yield do
    finally:
        await executor.aclose()
        server.close()
        await server.wait_closed()


async def test_names_are_canonicalised_as_header_add_stores_them(send: Send) -> None:
    """src: net/textproto/reader.go CanonicalMIMEHeaderKey: the first letter and every
    letter after '-' upper case, the rest lower case (``_`` and ``.`` are no separators);
    names differing only in case become one name with the values in order."""
    lines = await send(
        headers=[
            {"name": "x-api-key", "value": "k"},
            {"name": "X-MY-HEADER", "value": "1"},
            {"name": "x_y.z", "value": "2"},
            {"name": "x-my-header", "value": "3"},
            {"name": "ETAG", "value": "e"},
        ]
    )
    assert lines[:5] == [
        b"X-Api-Key: k",
        b"X-My-Header: 1",
        b"X_y.z: 2",
        b"X-My-Header: 3",
        b"Etag: e",
    ]


async def test_values_are_trimmed_as_gos_http1_writer_trims_them(send: Send) -> None:
    """src: net/http/header.go (Header).writeSubset: textproto.TrimString drops leading and
    trailing spaces and tabs (httpguts.ValidHeaderFieldValue accepted the tab); a tab inside
    the value stays."""
    lines = await send(
        headers=[
            {"name": "X-Tabs", "value": "\tv\t"},
            {"name": "X-Spaces", "value": "  v "},
            {"name": "X-Inner", "value": "a\tb"},
            {"name": "X-Blank", "value": " \t"},
        ]
    )
    assert lines[:4] == [b"X-Tabs: v", b"X-Spaces: v", b"X-Inner: a\tb", b"X-Blank: "]


@pytest.mark.parametrize(
    ("method", "headers", "gzip"),
    [
        ("GET", [], True),
        ("POST", [], True),
        ("HEAD", [], False),
        ("GET", [{"name": "Range", "value": "bytes=0-1"}], False),
        ("GET", [{"name": "Accept-Encoding", "value": "br"}], False),
    ],
    ids=["GET", "POST", "HEAD", "Range", "own Accept-Encoding"],
)
async def test_accept_encoding_gzip_only_when_go_could_decode(
    send: Send, method: str, headers: list[dict[str, str]], gzip: bool
) -> None:
    """src: net/http/transport.go (*persistConn).roundTrip: requestedGzip when
    !DisableCompression, no Accept-Encoding and no Range header, and the method is not HEAD
    (a HEAD answer has no body to decode)."""
    lines = await send(method=method, headers=headers)
    assert (b"Accept-Encoding: gzip" in lines) is gzip
