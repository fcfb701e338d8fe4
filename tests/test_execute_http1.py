"""What only the default transport (``Http1Transport``) adds to the shared executor tests:
its connection limits and its keep-alive pool. Behaviour and error texts are covered by the
executor suites, which run every case on all three transports."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agent.core.model import dump
from agent.core.refs import TaskRef
from agent.executor.executor import Executor
from tests.executors import executor_factory
from tests.servers import read_request

REF = TaskRef(namespace="argo", taskset="wf", node_id="wf-1", workflow_uid="uid-1")


class Gauge:
    """How many requests a server is answering at once, and the most it ever was."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.answered = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1
            self.answered += 1


def slow_answers(gauge: Gauge, *, hold: float) -> Callable[[socket.socket], None]:
    """Hold each request ``hold`` seconds, counted by ``gauge`` until just before the answer
    is sent: counted after sending, a request whose answer had already freed the client's
    slot could still be counted when the next one arrived elsewhere (seen once as 3 of 2)."""

    def handler(conn: socket.socket) -> None:
        while read_request(conn):
            with gauge:
                time.sleep(hold)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    return handler


@pytest.fixture
async def make_executor() -> AsyncIterator[Callable[..., Executor]]:
    async with executor_factory(transport="http1", ca_dir=None) as make:
        yield make


async def run(executor: Executor, url: str) -> dict[str, Any]:
    return dump(await executor.run({"name": "t", "http": {"url": url}}, ref=REF))


async def test_the_per_host_limit_bounds_concurrent_requests(raw_server, make_executor) -> None:
    gauge = Gauge()
    server = raw_server(slow_answers(gauge, hold=0.05))
    executor = make_executor(max_connections_per_host=2)
    url = f"http://127.0.0.1:{server.port}/x"
    results = await asyncio.gather(*(run(executor, url) for _ in range(10)))
    assert [r["phase"] for r in results] == ["Succeeded"] * 10
    assert gauge.most == 2
    assert server.accepted == 2  # the two connections were kept and reused


async def test_the_global_limit_bounds_concurrent_requests(raw_server, make_executor) -> None:
    gauge = Gauge()
    servers = [raw_server(slow_answers(gauge, hold=0.05)) for _ in range(3)]
    executor = make_executor(max_connections=2, max_connections_per_host=2)
    urls = [f"http://127.0.0.1:{s.port}/x" for s in servers for _ in range(3)]
    results = await asyncio.gather(*(run(executor, url) for url in urls))
    assert [r["phase"] for r in results] == ["Succeeded"] * 9
    assert gauge.most == 2


async def test_cancelled_waiters_give_no_slot_away(raw_server, make_executor) -> None:
    """Requests cancelled while waiting for a slot (a node removed, a shutdown) neither
    keep one nor lose one: the limit still admits exactly one request at a time after."""
    gauge = Gauge()
    server = raw_server(slow_answers(gauge, hold=0.1))
    executor = make_executor(max_connections_per_host=1)
    url = f"http://127.0.0.1:{server.port}/x"
    first = asyncio.create_task(run(executor, url))
    waiting = [asyncio.create_task(run(executor, url)) for _ in range(3)]
    await asyncio.sleep(0.02)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert (await first)["phase"] == "Succeeded"
    results = await asyncio.gather(*(run(executor, url) for _ in range(3)))
    assert [r["phase"] for r in results] == ["Succeeded"] * 3
    assert gauge.most == 1
    assert gauge.answered == 4


async def test_a_connection_is_kept_alive_across_requests(raw_server, make_executor) -> None:
    gauge = Gauge()
    server = raw_server(slow_answers(gauge, hold=0.0))
    executor = make_executor()
    for _ in range(5):
        assert (await run(executor, f"http://127.0.0.1:{server.port}/x"))["phase"] == "Succeeded"
    assert server.accepted == 1


BROKEN = "net/http: HTTP/1.x transport connection broken: "


@pytest.mark.parametrize(
    ("answer", "cause", "bare"),
    [
        # net/http/response.go ReadResponse: badStringError("malformed HTTP response", line)
        (b"THIS IS NOT HTTP\r\n\r\n", BROKEN + 'malformed HTTP response "THIS IS NOT HTTP"', False),
        # net/textproto/reader.go readMIMEHeader: "malformed MIME header line: " + line
        (
            b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n",
            BROKEN + "malformed MIME header line: broken",
            False,
        ),
        # net/http/transfer.go parseContentLength: badStringError("bad Content-Length", cl)
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", BROKEN + 'bad Content-Length "x"', False),
        # net/http/transfer.go fixLength: several differing Content-Length values
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            BROKEN + 'http: message cannot contain multiple Content-Length headers; got ["1" "2"]',
            False,
        ),
        # net/http/internal/chunked.go: read with the body, which Argo's agent reads itself
        # (io.ReadAll in agent.go executeHTTPTemplate) and reports bare
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
            "invalid byte in chunk length",
            True,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
            "malformed chunked encoding",
            True,
        ),
    ],
    ids=["status-line", "header-line", "content-length", "content-lengths", "chunk-size", "chunk"],
)
async def test_malformed_answers_in_go_words(
    raw_server, make_executor, answer, cause, bare
) -> None:
    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(answer)
        read_request(conn)  # hold the connection: the client must not wait for a close

    server = raw_server(handler)
    url = f"http://127.0.0.1:{server.port}/x"
    result = await run(make_executor(), url)
    assert result == {"phase": "Failed", "message": cause if bare else f'Get "{url}": {cause}'}
