"""Transport failures give the node message Go's net/http client gives, text for text.

``retryPolicy: OnTransientError`` is decided by the controller from the node's message
alone (Argo util/errors/errors.go ``isTransientNetworkErr``, a substring search), so the
texts are behaviour: ``dial tcp H:P: connect: connection refused`` is retried and
``dial tcp H:P: connection refused`` is not. Each row cites the Go 1.26 source producing
the text (paths under ``GOROOT/src``); Argo's agent (workflow/executor/agent.go
``executeHTTPTemplate``) returns ``Client.Do``'s ``*url.Error`` (``<Op> "<url>": <cause>``,
net/url/url.go ``(*Error).Error``) and the body read's error bare.

Every server is a raw socket on 127.0.0.1 that misbehaves in one way; every test runs on
both transports. DNS failures are not provoked here: this machine's resolver is not on
loopback, so a lookup would leave the machine; their texts are unit-tested on the error
objects getaddrinfo raises instead.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import trustme

from agent.core.model import dump
from agent.core.refs import TaskRef
from agent.executor.errors import dns_error_text
from agent.executor.executor import Executor
from tests.executors import executor_factory
from tests.servers import RawServer, TestCA

REF = TaskRef(namespace="argo", taskset="wf", node_id="wf-1", workflow_uid="uid-1")
MakeExecutor = Callable[..., Executor]
Handler = Callable[[socket.socket], None]


@pytest.fixture(params=["http1", "aiohttp", "httpcore"])
async def make_executor(request: pytest.FixtureRequest) -> AsyncIterator[MakeExecutor]:
    defaults = {"transport": request.param, "ca_dir": None, "default_timeout_seconds": 10.0}
    async with executor_factory(**defaults) as make:
        yield make


async def run(executor: Executor, **http: Any) -> dict[str, Any]:
    return dump(await executor.run({"name": "t", "http": http}, ref=REF))


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk


def _reset(conn: socket.socket) -> None:
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def close_after_request(conn: socket.socket) -> None:
    _read_request(conn)


def reset_after_request(conn: socket.socket) -> None:
    _read_request(conn)
    _reset(conn)


def short_body(conn: socket.socket) -> None:
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")


def short_body_then_reset(conn: socket.socket) -> None:
    short_body(conn)
    _reset(conn)


def truncated_chunked_body(conn: socket.socket) -> None:
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123")


def silent(conn: socket.socket) -> None:
    conn.settimeout(5)
    try:
        conn.recv(65536)
        conn.recv(65536)
    except TimeoutError:
        pass


def headers_then_silent(conn: socket.socket) -> None:
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
    silent(conn)


def _refused_port() -> int:
    with socket.socket() as sock:  # bound, never listening: the kernel refuses
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# (id, handler, Go source, the message with {url} and {hostport} placeholders)
SERVER_CASES = [
    (
        "closed before any response",
        close_after_request,
        "net/http/transport.go (*persistConn).readLoop: io.EOF before a response -> url.Error",
        'Get "{url}": EOF',
    ),
    (
        "reset before any response",
        reset_after_request,
        "net/net.go (*OpError).Error; internal/poll read -> syscall.ECONNRESET",
        'Get "{url}": read tcp {hostport}: read: connection reset by peer',
    ),
    (
        "body shorter than Content-Length",
        short_body,
        "net/http/transfer.go (*body).readLocked: io.ErrUnexpectedEOF; agent.go io.ReadAll, bare",
        "unexpected EOF",
    ),
    (
        "truncated chunked body",
        truncated_chunked_body,
        "net/http/internal/chunked.go (*chunkedReader).Read: io.ErrUnexpectedEOF, bare",
        "unexpected EOF",
    ),
    (
        "reset mid-body",
        short_body_then_reset,
        "net/net.go (*OpError).Error from the body read; agent.go io.ReadAll, bare",
        "read tcp {hostport}: read: connection reset by peer",
    ),
]


@pytest.mark.parametrize(
    ("handler", "src", "message"),
    [case[1:] for case in SERVER_CASES],
    ids=[case[0] for case in SERVER_CASES],
)
async def test_server_failures(
    make_executor: MakeExecutor,
    raw_server: Callable[[Handler], RawServer],
    handler: Handler,
    src: str,
    message: str,
) -> None:
    server = raw_server(handler)
    url = server.url()
    result = await run(make_executor(), url=url)
    want = message.format(url=url, hostport=f"127.0.0.1:{server.port}")
    assert result == {"phase": "Failed", "message": want}, src


async def test_refused(make_executor: MakeExecutor) -> None:
    """src: net/net.go (*OpError).Error over os.NewSyscallError("connect", ECONNREFUSED)
    (net/fd_unix.go (*netFD).connect); transient for OnTransientError."""
    port = _refused_port()
    url = f"http://127.0.0.1:{port}/x"
    result = await run(make_executor(), url=url)
    want = f'Get "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'
    assert result == {"phase": "Failed", "message": want}


async def test_refused_names_the_resolved_address(make_executor: MakeExecutor) -> None:
    """src: net/dial.go (*sysDialer).dialSerial: the OpError's Addr is the IP dialled."""
    port = _refused_port()
    url = f"http://localhost:{port}/x"
    result = await run(make_executor(), url=url, method="POST")
    assert result["message"] in (
        f'Post "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused',
        f'Post "{url}": dial tcp [::1]:{port}: connect: connection refused',
    )


async def test_deadline_before_the_response(
    make_executor: MakeExecutor, raw_server: Callable[[Handler], RawServer]
) -> None:
    """src: net/http/transport.go (*Transport).roundTrip returns context.Cause(ctx) ->
    context.DeadlineExceeded.Error() = "context deadline exceeded", in a url.Error."""
    url = raw_server(silent).url()
    result = await run(make_executor(default_timeout_seconds=0.3), url=url)
    assert result == {"phase": "Failed", "message": f'Get "{url}": context deadline exceeded'}


async def test_deadline_while_reading_the_body(
    make_executor: MakeExecutor, raw_server: Callable[[Handler], RawServer]
) -> None:
    """src: net/http/transport.go (*bodyEOFSignal).Read after cancellation; agent.go
    io.ReadAll returns context.DeadlineExceeded bare."""
    url = raw_server(headers_then_silent).url()
    result = await run(make_executor(default_timeout_seconds=0.3), url=url)
    assert result == {"phase": "Failed", "message": "context deadline exceeded"}


# -- DNS: the text of getaddrinfo's errors, no lookup made --------------------------------

DNS_CASES = [
    (
        "nxdomain names the server",
        "nonexistent.invalid",
        socket.EAI_NONAME,
        "10.96.0.10:53",
        "dial tcp: lookup nonexistent.invalid on 10.96.0.10:53: no such host",
        "net/dnsclient_unix.go tryOneName: newDNSError(errNoSuchHost, name, server)",
    ),
    (
        "not a domain name: no query, no server",
        "bad_name!x",
        socket.EAI_NONAME,
        "10.96.0.10:53",
        "dial tcp: lookup bad_name!x: no such host",
        "net/dnsclient_unix.go goLookupIPCNAMEOrder: !isDomainName",
    ),
    (
        "no answer is a read timeout",
        "slow.example",
        socket.EAI_AGAIN,
        "10.96.0.10:53",
        "dial tcp: lookup slow.example on 10.96.0.10:53: i/o timeout",
        "net/dnsclient_unix.go exchange: the UDP read's deadline (net/net.go errTimeout)",
    ),
    (
        "IPv6 nameserver",
        "x.invalid",
        socket.EAI_NONAME,
        "[fd00::a]:53",
        "dial tcp: lookup x.invalid on [fd00::a]:53: no such host",
        "net/dnsconfig_unix.go dnsReadConfig: JoinHostPort(ns, 53)",
    ),
]


@pytest.mark.parametrize(
    ("host", "code", "server", "message", "src"),
    [case[1:] for case in DNS_CASES],
    ids=[case[0] for case in DNS_CASES],
)
def test_dns_error_texts(host: str, code: int, server: str, message: str, src: str) -> None:
    error = socket.gaierror(code, "lookup failed")
    assert dns_error_text(host, error, nameserver=server) == message, src


async def test_dns_failure_reaches_the_message(
    make_executor: MakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both transports resolve with socket.getaddrinfo (in a thread); failing it here keeps
    the lookup on this machine."""
    real = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    monkeypatch.setattr("agent.executor.errors._first_nameserver", lambda: "10.96.0.10:53")
    result = await run(make_executor(), url="http://no-such-host.invalid/x", method="POST")
    assert result == {
        "phase": "Failed",
        "message": 'Post "http://no-such-host.invalid/x": dial tcp: lookup no-such-host.invalid '
        "on 10.96.0.10:53: no such host",
    }


# -- Go's default-transport limits: dial timeout and TLS handshake timeout ----------------
#
# This machine runs a real Linux kernel (a Firecracker VM, not gVisor): a listener created
# with listen(0) queues one connection; further SYNs are dropped while nobody accepts, so a
# connect to it stays pending, as one to a host that never answers.


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A 127.0.0.1 port whose accept queue is full: connecting to it never completes."""
    listener = socket.socket()
    filler: socket.socket | None = None
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        filler = socket.create_connection(("127.0.0.1", port), timeout=5)
        yield port
    finally:
        if filler is not None:
            filler.close()
        listener.close()


def never_speaks(conn: socket.socket) -> None:
    """Accepts TCP and never answers: the client's TLS handshake waits for a ServerHello."""
    conn.settimeout(10)
    while conn.recv(65536):
        pass


async def test_connect_timeout_is_gos_dial_timeout(
    make_executor: MakeExecutor, full_backlog: int
) -> None:
    """src: net/http/transport.go DefaultTransport (net.Dialer{Timeout: 30 * time.Second});
    net/dial.go (*Dialer).DialContext: the deadline ends the dial with
    mapErr(context.DeadlineExceeded) = errTimeout, "i/o timeout" (net/net.go), in the dial's
    *OpError naming the IP dialled. Transient for OnTransientError ("i/o timeout")."""
    url = f"http://127.0.0.1:{full_backlog}/x"
    result = await run(make_executor(connect_timeout_seconds=0.3), url=url)
    want = f'Get "{url}": dial tcp 127.0.0.1:{full_backlog}: i/o timeout'
    assert result == {"phase": "Failed", "message": want}


@pytest.mark.parametrize("http2", [True, False], ids=["http2-on", "http2-off"])
async def test_tls_handshake_timeout_is_gos(
    make_executor: MakeExecutor, raw_server: Callable[[Handler], RawServer], http2: bool
) -> None:
    """src: net/http/transport.go DefaultTransport (TLSHandshakeTimeout: 10 * time.Second);
    (*persistConn).addTLS returns tlsHandshakeTimeoutError{} ("net/http: TLS handshake
    timeout"), bare from dialConn, in Client.Do's *url.Error. Transient for
    OnTransientError. ``http2-off`` makes the aiohttp transport do the handshake itself."""
    url = raw_server(never_speaks).url(scheme="https")
    executor = make_executor(tls_handshake_timeout_seconds=0.3, http2=http2)
    result = await run(executor, url=url)
    assert result == {"phase": "Failed", "message": f'Get "{url}": net/http: TLS handshake timeout'}


async def test_insecure_skip_verify_has_no_dial_timeout(
    make_executor: MakeExecutor, full_backlog: int
) -> None:
    """Argo's insecure client (workflow/executor/agent.go ``httpClientSkip``) is a bare
    http.Transport: no dial timeout (Transport.dial falls back to a zero net.Dialer), so the
    template's deadline ends the wait: transport.go getConn returns context.Cause(ctx)."""
    url = f"http://127.0.0.1:{full_backlog}/x"
    executor = make_executor(connect_timeout_seconds=0.1, default_timeout_seconds=0.6)
    result = await run(executor, url=url, insecureSkipVerify=True)
    assert result == {"phase": "Failed", "message": f'Get "{url}": context deadline exceeded'}


async def test_insecure_skip_verify_has_no_tls_handshake_timeout(
    make_executor: MakeExecutor, raw_server: Callable[[Handler], RawServer]
) -> None:
    """Argo's insecure client sets no TLSHandshakeTimeout: the template's deadline ends the
    handshake (the Go run in the research notes gave the same text)."""
    url = raw_server(never_speaks).url(scheme="https")
    executor = make_executor(tls_handshake_timeout_seconds=0.1, default_timeout_seconds=0.6)
    result = await run(executor, url=url, insecureSkipVerify=True)
    assert result == {"phase": "Failed", "message": f'Get "{url}": context deadline exceeded'}


# -- TLS verification: Go's x509 texts where Python can produce them ----------------------
#
# All come as ``Get "https://...": tls: failed to verify certificate: <x509 text>``
# (crypto/tls/common.go (*CertificateVerificationError).Error). OpenSSL reports which check
# failed, not the certificate's names or dates, so where Go prints those the agent's text is
# pinned as it is and README.md ("Differences from Argo's agent") lists the difference.

_TRUSTED = TestCA()
_STRANGER = TestCA()  # a CA the client does not trust
_PAST = (
    datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
    datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC),
)


def _tls_handler(leaf: trustme.LeafCert) -> Handler:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)

    def handle(conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                _read_request(tls)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (ssl.SSLError, OSError):
            pass  # the client refused the certificate

    return handle


TLS_CASES = [
    (
        "unknown authority",
        lambda: _STRANGER.ca.issue_cert("127.0.0.1"),
        "127.0.0.1",
        "x509: certificate signed by unknown authority",
        "crypto/x509/verify.go UnknownAuthorityError.Error: exact",
    ),
    (
        "name mismatch",
        lambda: _TRUSTED.ca.issue_cert("example.com"),
        "localhost",
        "x509: certificate is not valid for localhost",
        "Go (HostnameError.Error): x509: certificate is valid for example.com, not localhost",
    ),
    (
        "IP without IP SANs",
        lambda: _TRUSTED.ca.issue_cert("example.com"),
        "127.0.0.1",
        "x509: certificate is not valid for 127.0.0.1",
        "Go (HostnameError.Error): x509: cannot validate certificate for 127.0.0.1 because it "
        "doesn't contain any IP SANs",
    ),
    (
        "expired",
        lambda: _TRUSTED.ca.issue_cert("127.0.0.1", not_before=_PAST[0], not_after=_PAST[1]),
        "127.0.0.1",
        "x509: certificate has expired or is not yet valid: certificate has expired",
        "Go (CertificateInvalidError.Error): x509: certificate has expired or is not yet "
        "valid: current time <now, RFC 3339> is after 2021-01-01T00:00:00Z",
    ),
    (
        "expired and untrusted",
        lambda: _STRANGER.ca.issue_cert("127.0.0.1", not_before=_PAST[0], not_after=_PAST[1]),
        "127.0.0.1",
        "x509: certificate signed by unknown authority",
        "Go checks the leaf's dates first ((*Certificate).Verify): it reports the expiry",
    ),
]


@pytest.mark.parametrize("http2", [True, False], ids=["http2-on", "http2-off"])
@pytest.mark.parametrize(
    ("leaf", "host", "x509", "src"),
    [case[1:] for case in TLS_CASES],
    ids=[case[0] for case in TLS_CASES],
)
async def test_tls_verification_texts(
    make_executor: MakeExecutor,
    raw_server: Callable[[Handler], RawServer],
    leaf: Callable[[], trustme.LeafCert],
    host: str,
    x509: str,
    src: str,
    http2: bool,
) -> None:
    server = raw_server(_tls_handler(leaf()))
    url = f"https://{host}:{server.port}/x"
    executor = make_executor(ca_bundle=_TRUSTED.pem_path, http2=http2)
    result = await run(executor, url=url)
    want = f'Get "{url}": tls: failed to verify certificate: {x509}'
    assert result == {"phase": "Failed", "message": want}, src
