"""``loadtest/target.py`` as a real process, spoken to over raw sockets.

The load-test target is a hand-written HTTP/1.1 server (the cheapest one measured), so its
protocol handling is pinned here: exact body sizes, per-request overrides, keep-alive,
pipelining in order even when answers are delayed, request bodies skipped, refusals.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TARGET = Path(__file__).resolve().parent.parent / "loadtest" / "target.py"


@contextlib.contextmanager
def _running(server: str) -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, str(TARGET), "--size", "100", "--server", server],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["server"] == server and ready["pid"] == proc.pid
        host, port = ready["url"].removeprefix("http://").split(":")
        assert host == "127.0.0.1"
        yield server, int(port)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


@pytest.fixture(scope="module", params=["protocol", "aiohttp"])
def target(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    with _running(request.param) as running:
        yield running


@pytest.fixture(scope="module")
def protocol_target() -> Iterator[tuple[str, int]]:
    with _running("protocol") as running:
        yield running


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response head")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a body")
        rest += chunk
    buffer[:] = rest[length:]
    return int(status_line.split()[1]), headers, rest[:length]


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_default_answer_is_json_of_the_configured_size(target: tuple[str, int]) -> None:
    with _connect(target[1]) as sock:
        sock.sendall(b"GET /anything HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = _read_response(sock, bytearray())
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert len(body) == 100
    assert set(json.loads(body)["pad"]) == {"a"}


def test_query_overrides_size_and_delay_per_request(target: tuple[str, int]) -> None:
    with _connect(target[1]) as sock:
        buffer = bytearray()
        sock.sendall(b"GET /x?size=5&delay=0.05 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_response(sock, buffer)[2] == b"xxxxx"
        sock.sendall(b"GET /x?size=0 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_response(sock, buffer)[2] == b""


def test_keep_alive_and_a_request_body_is_skipped(target: tuple[str, int]) -> None:
    with _connect(target[1]) as sock:
        buffer = bytearray()
        sock.sendall(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world")
        assert _read_response(sock, buffer)[0] == 200
        sock.sendall(b"GET /x?size=3 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_response(sock, buffer)[2] == b"xxx"


def test_pipelined_requests_are_answered_in_order(target: tuple[str, int]) -> None:
    with _connect(target[1]) as sock:
        buffer = bytearray()
        sock.sendall(
            b"GET /slow?size=7&delay=0.2 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /fast?size=3 HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        assert len(_read_response(sock, buffer)[2]) == 7
        assert len(_read_response(sock, buffer)[2]) == 3


def test_connection_close_is_honoured(target: tuple[str, int]) -> None:
    with _connect(target[1]) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        status, _, body = _read_response(sock, bytearray())
        assert status == 200 and len(body) == 100
        assert _closed(sock)


def test_malformed_requests_are_refused(protocol_target: tuple[str, int]) -> None:
    # The hand-written parser's refusals (aiohttp's server has its own, tested upstream).
    target = protocol_target
    with _connect(target[1]) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert _read_response(sock, bytearray())[0] == 400
        assert _closed(sock)
    with _connect(target[1]) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert _read_response(sock, bytearray())[0] == 501
        assert _closed(sock)
    with _connect(target[1]) as sock:
        sock.sendall(b"GET /?delay=soon HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_response(sock, bytearray())[0] == 400


@pytest.mark.parametrize(
    ("args", "flag"), [(("--size", "-1"), "--size"), (("--delay", "-2"), "--delay")]
)
def test_bad_options_name_the_flag(args: tuple[str, ...], flag: str) -> None:
    done = subprocess.run(
        [sys.executable, str(TARGET), *args], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert flag in done.stderr
