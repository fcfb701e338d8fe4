"""The minimal HTTP/1.1 client (agent/http1.py) against real loopback servers.

Each server is a raw socket on 127.0.0.1 that answers with exact bytes, so every framing
rule of RFC 9112 section 6.3 the client relies on is exercised on the wire: Content-Length,
chunked (with extensions and trailers), read-until-close, no body for HEAD/204/304, 1xx
responses skipped, keep-alive reuse and its refusal (``Connection: close``, HTTP/1.0), and
the failures a caller must tell apart (closed before the answer, on a reused connection
or a new one; malformed heads and chunk sizes).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable

import pytest

from agent import http1
from tests.servers import RawHandler, RawServer, read_request


def answering(*responses: bytes, then_close: bool = False) -> RawHandler:
    """Answer each request on a connection with the next of ``responses``."""

    def handler(conn: socket.socket) -> None:
        for response in responses:
            if not read_request(conn):
                return
            conn.sendall(response)
        if not then_close:
            read_request(conn)  # keep the connection open until the client closes it

    return handler


@pytest.fixture
async def pool_for() -> AsyncIterator[Callable[..., http1.Pool]]:
    pools: list[http1.Pool] = []

    def make(server: RawServer, *, keepalive_seconds: float = 60.0) -> http1.Pool:
        async def connect() -> http1.StreamProtocol:
            loop = asyncio.get_running_loop()
            _, protocol = await loop.create_connection(
                lambda: http1.StreamProtocol(loop), "127.0.0.1", server.port
            )
            return protocol

        pool = http1.Pool(connect=connect, keepalive_seconds=keepalive_seconds, max_idle=4)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


GET = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
HEAD = b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n"


async def exchange(pool: http1.Pool, data: bytes = GET, *, no_body: bool = False) -> bytes:
    response = await pool.exchange(data, no_body=no_body)
    try:
        return await response.read()
    finally:
        response.release()


async def test_content_length_body_and_the_connection_is_reused(raw_server, pool_for) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"
    server = raw_server(answering(ok, ok, ok))
    pool = pool_for(server)
    response = await pool.exchange(GET)
    assert (response.status, response.reason, response.version) == (200, b"OK", b"HTTP/1.1")
    assert response.headers == [(b"Content-Length", b"5"), (b"X-A", b"1")]
    assert response.header(b"x-a") == b"1"
    assert await response.read() == b"hello"
    response.release()
    assert await exchange(pool) == b"hello"
    assert await exchange(pool) == b"hello"
    assert server.accepted == 1
    assert pool.idle == 1


async def test_chunked_body_with_extensions_and_trailers(raw_server, pool_for) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    server = raw_server(answering(chunked, chunked))
    pool = pool_for(server)
    assert await exchange(pool) == b"hello world"
    assert await exchange(pool) == b"hello world"  # framing ended exactly: reused
    assert server.accepted == 1


async def test_a_body_without_length_is_read_until_close_and_not_reused(
    raw_server, pool_for
) -> None:
    server = raw_server(answering(b"HTTP/1.1 200 OK\r\n\r\nall of it", then_close=True))
    pool = pool_for(server)
    assert await exchange(pool) == b"all of it"
    assert pool.idle == 0


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_connections_the_server_ends_are_not_kept(raw_server, pool_for, response) -> None:
    pool = pool_for(raw_server(answering(response, then_close=True)))
    assert await exchange(pool) == b"ok"
    assert pool.idle == 0


async def test_http_1_0_keep_alive_is_kept(raw_server, pool_for) -> None:
    ok = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"
    server = raw_server(answering(ok, ok))
    pool = pool_for(server)
    assert await exchange(pool) == b"ok"
    assert await exchange(pool) == b"ok"
    assert server.accepted == 1


async def test_no_body_for_head_204_and_304(raw_server, pool_for) -> None:
    server = raw_server(
        answering(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",  # HEAD: the length of a GET
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext",
        )
    )
    pool = pool_for(server)
    assert await exchange(pool, HEAD, no_body=True) == b""
    assert await exchange(pool) == b""
    assert await exchange(pool) == b""
    assert await exchange(pool) == b"next"  # nothing was left unread in between
    assert server.accepted == 1


async def test_informational_responses_are_skipped(raw_server, pool_for) -> None:
    pool = pool_for(
        raw_server(
            answering(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
            )
        )
    )
    response = await pool.exchange(GET)
    assert response.status == 201
    assert await response.read() == b"ok"
    response.release()


async def test_bare_lf_line_endings_are_accepted(raw_server, pool_for) -> None:
    pool = pool_for(raw_server(answering(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")))
    assert await exchange(pool) == b"ok"


async def test_a_large_body_streams_with_bounded_buffering(raw_server, pool_for) -> None:
    size = 8 * http1.HIGH_WATER
    body = bytes(range(256)) * (size // 256)
    pool = pool_for(
        raw_server(answering(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + body))
    )
    response = await pool.exchange(GET)
    received = bytearray()
    largest = 0
    while chunk := await response.next_chunk():
        received += chunk
        largest = max(largest, len(chunk))
        await asyncio.sleep(0.001)  # a slow reader: the server must be paused, not buffered
    response.release()
    assert bytes(received) == body
    # reading pauses once more than HIGH_WATER bytes wait, so no piece can be much larger
    assert largest <= http1.HIGH_WATER + 256 * 1024


async def test_closed_before_any_answer_on_a_new_connection(raw_server, pool_for) -> None:
    pool = pool_for(raw_server(lambda conn: read_request(conn) and None))
    with pytest.raises(http1.ConnectionClosed) as caught:
        await exchange(pool)
    assert (caught.value.reused, caught.value.received, caught.value.cause) == (False, False, None)


async def test_an_idle_connection_the_server_closed_is_told_apart(raw_server, pool_for) -> None:
    """A server that closes after one answer: the next exchange finds the connection gone
    (dropped from the pool) or fails it with ``reused`` set, never as a new connection."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = raw_server(answering(ok, then_close=True))
    pool = pool_for(server)
    assert await exchange(pool) == b"ok"
    try:
        assert await exchange(pool) == b"ok"
    except http1.ConnectionClosed as exc:
        assert exc.reused and not exc.received
    else:
        assert server.accepted == 2  # the closed one was seen closed and not used


async def test_closed_mid_head_says_bytes_were_received(raw_server, pool_for) -> None:
    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-")

    pool = pool_for(raw_server(handler))
    with pytest.raises(http1.ConnectionClosed) as caught:
        await exchange(pool)
    assert caught.value.received and not caught.value.reused


async def test_closed_mid_body(raw_server, pool_for) -> None:
    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")

    pool = pool_for(raw_server(handler))
    response = await pool.exchange(GET)
    with pytest.raises(http1.ConnectionClosed) as caught:
        await response.read()
    response.release()
    assert caught.value.received
    assert pool.idle == 0


async def test_a_reset_connection_carries_the_os_error(raw_server, pool_for) -> None:
    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    pool = pool_for(raw_server(handler))
    with pytest.raises(http1.ConnectionClosed) as caught:
        await exchange(pool)
    assert isinstance(caught.value.cause, ConnectionResetError)
    assert caught.value.__cause__ is caught.value.cause


@pytest.mark.parametrize(
    ("response", "text"),
    [
        (b"SMTP ready\r\n\r\n", "malformed HTTP response b'SMTP ready'"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed HTTP response"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed MIME header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", "several"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    ],
    ids=["status-line", "status-code", "header-line", "two-lengths", "bad-length"],
)
async def test_malformed_heads_are_refused_with_what_was_wrong(
    raw_server, pool_for, response, text
) -> None:
    pool = pool_for(raw_server(answering(response)))
    with pytest.raises(http1.MalformedResponse, match=text):
        await exchange(pool)
    assert pool.idle == 0


async def test_a_bad_chunk_size_is_refused(raw_server, pool_for) -> None:
    pool = pool_for(
        raw_server(answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n"))
    )
    with pytest.raises(http1.MalformedResponse, match="invalid chunk size"):
        await exchange(pool)


async def test_too_many_informational_responses(raw_server, pool_for) -> None:
    pool = pool_for(raw_server(answering(b"HTTP/1.1 100 Continue\r\n\r\n" * 6)))
    with pytest.raises(http1.MalformedResponse, match="too many 1xx"):
        await exchange(pool)


async def test_idle_connections_expire_after_the_keepalive_time(raw_server, pool_for) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = raw_server(answering(ok, ok))
    pool = pool_for(server, keepalive_seconds=0.0)
    assert await exchange(pool) == b"ok"
    await asyncio.sleep(0.01)
    assert pool.take() is None  # expired: closed, not handed out
    assert await exchange(pool) == b"ok"
    assert server.accepted == 2


async def test_a_connection_that_received_bytes_while_idle_is_not_reused(
    raw_server, pool_for
) -> None:
    released = threading.Event()

    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        released.wait(5)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")  # unasked
        read_request(conn)

    pool = pool_for(raw_server(handler))
    response = await pool.exchange(GET)
    assert await response.read() == b"ok"
    response.release()
    assert pool.idle == 1
    released.set()
    await asyncio.sleep(0.05)  # the stray answer arrives on the idle connection
    assert pool.take() is None  # dropped, not handed out to answer the next request


async def test_a_second_release_leaves_the_reused_connection_alone(raw_server, pool_for) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = raw_server(answering(ok, ok))
    pool = pool_for(server)
    first = await pool.exchange(GET)
    assert await first.read() == b"ok"
    first.release()
    second = await pool.exchange(GET)  # the same connection, now serving this exchange
    first.release()  # a caller's second release must not close it
    assert await second.read() == b"ok"
    second.release()
    assert server.accepted == 1 and pool.idle == 1
