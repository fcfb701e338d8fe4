"""Readable, stable texts for transport failures.

Argo reports a failed request with Go's ``*url.Error`` text, e.g.
``Get "http://x/": dial tcp 10.0.0.1:80: connect: connection refused``. We keep that shape
(``<Op> "<url>": <cause>``, password in the URL masked as Go does) and word the cause from
the *innermost* meaningful exception, whichever transport raised it, so users read the
same message on both transports and never a Python ``repr``.
"""

from __future__ import annotations

import errno
import functools
import re
import socket
import ssl
from collections.abc import Iterator

import aiohttp
import h2.events
import httpx

from agent import http1
from agent.executor.policy import PolicyDenied

__all__ = [
    "DialError",
    "DialTimeout",
    "TLSHandshakeTimeout",
    "describe_transport_error",
    "dns_error_text",
    "format_url_error",
    "go_quote",
    "join_host_port",
    "url_error_op",
    "x509_text",
]

_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by peer",
    errno.ECONNABORTED: "connection aborted",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network is unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EPIPE: "broken pipe",
}


class DialTimeout(Exception):
    """The cause the transports attach when Go's dial timeout ran out for ``address``.

    Go's ``net.Dialer.Timeout`` ends the dial with ``mapErr(context.DeadlineExceeded)`` =
    ``errTimeout``, whose text is ``i/o timeout`` (net/net.go), in the dial's ``*OpError``
    naming the IP dialled: ``dial tcp 10.0.0.1:80: i/o timeout``.
    """

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.address = address


class TLSHandshakeTimeout(Exception):
    """The cause the transports attach when Go's TLS handshake timeout ran out.

    net/http/transport.go ``(*persistConn).addTLS``: ``tlsHandshakeTimeoutError``, returned
    bare by ``dialConn``: ``Get "https://...": net/http: TLS handshake timeout``.
    """


def url_error_op(method: str) -> str:
    """Go's ``urlErrorOp``: ``GET`` -> ``Get``."""
    return method[:1].upper() + method[1:].lower() if method else "Get"


def format_url_error(method: str, url: httpx.URL | str, cause: str) -> str:
    return f'{url_error_op(method)} "{_mask_password(url)}": {cause}'


def describe_transport_error(
    exc: BaseException, *, url: httpx.URL, reading_body: bool = False
) -> str:
    """The cause of a failed request, in the words Go's net/http client uses.

    ``reading_body`` says the failure came after the status line, where Go's ``io.ReadAll``
    reports ``unexpected EOF`` (``net/http/transfer.go``, ``body.readLocked``) or the
    socket's ``*net.OpError``.
    """
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    target = join_host_port(host, port)
    chain = list(_chain(exc))
    for item in chain:
        if isinstance(item, PolicyDenied):
            return str(item)
        if isinstance(item, DialTimeout):
            return f"dial tcp {item.address}: i/o timeout"
        if isinstance(item, TLSHandshakeTimeout):
            return "net/http: TLS handshake timeout"
    # aiohttp's wrappers subclass the ssl errors; only the ssl module's own carry details.
    ssl_errors = [e for e in chain if isinstance(e, ssl.SSLError) and _from_ssl_module(e)]
    for item in ssl_errors:
        if isinstance(item, ssl.SSLCertVerificationError):
            return f"tls: failed to verify certificate: {x509_text(item, host)}"
    for item in ssl_errors:
        return _tls_error_text(item)
    for item in chain:
        if isinstance(item, socket.gaierror):
            return dns_error_text(host, item)
    protocol = _protocol_error_text(chain)
    if protocol:
        return protocol
    connecting = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    for item in chain:
        if isinstance(item, OSError) and (item.errno is not None or item.strerror):
            text = _oserror_text(item)
            if connecting:
                # net/net.go (*OpError).Error over os.NewSyscallError("connect", errno), with
                # the resolved address asyncio names in its error.
                return f"dial tcp {_dialed(chain) or target}: connect: {text}"
            # A failure on an established connection: Go's OpError from the socket read (or
            # write). Go also names the local address (``read tcp A->B``), which neither
            # pool exposes once the connection failed; the Op and the cause are Go's.
            op = "write" if isinstance(exc, httpx.WriteError) else "read"
            return f"{op} tcp {target}: {op}: {text}"
    lost = _lost_connection_errno(chain)
    if lost is not None and not connecting:
        op = "write" if isinstance(exc, httpx.WriteError) else "read"
        return f"{op} tcp {target}: {op}: {_ERRNO_TEXT[lost]}"
    if reading_body:
        return "unexpected EOF"  # io.ErrUnexpectedEOF: the body ended early
    if isinstance(exc, httpx.RemoteProtocolError) and "disconnected" in _plain(exc).lower():
        return "EOF"  # transport.go persistConn.readLoop: closed before any response
    text = _plain(exc)
    if text:
        return f"dial tcp {target}: {text}" if connecting else text
    return f"{type(exc).__name__} talking to {target}"


# aiohttp reports a connection lost mid-body as a ClientPayloadError whose text ends with
# the socket error's repr, e.g. ``... ConnectionResetError(104, 'Connection reset by peer')``.
_LOST_REPR = re.compile(
    r"\b(?:ConnectionResetError|BrokenPipeError|ConnectionAbortedError)\((\d+),"
)


def _lost_connection_errno(chain: list[BaseException]) -> int | None:
    for item in chain:
        match = _LOST_REPR.search(str(item))
        if match and int(match.group(1)) in _ERRNO_TEXT:
            return int(match.group(1))
    return None


def join_host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class DialError(OSError):
    """A failed connect and the address it dialled, which the OS error (uvloop's) does not
    name: Go's ``dial tcp ADDRESS: connect: ...`` names it."""

    def __init__(self, error: OSError, address: str) -> None:
        super().__init__(error.errno, error.strerror)
        self.address = address


_CONNECT_FAILED = re.compile(r"Connect call failed \('([^']*)', (\d+)")


def _dialed(chain: list[BaseException]) -> str:
    """The address a failed connect dialled: a :class:`DialError`'s, or the one asyncio
    names (``Connect call failed ('ip', port)``)."""
    for item in chain:
        if isinstance(item, DialError):
            return item.address
        match = _CONNECT_FAILED.search(str(item))
        if match:
            return join_host_port(match.group(1), int(match.group(2)))
    return ""


def dns_error_text(host: str, error: socket.gaierror, *, nameserver: str | None = None) -> str:
    """A failed lookup as Go's pure resolver words it (``*net.DNSError`` in ``*net.OpError``).

    Argo's agent is built without cgo, so Go reads /etc/resolv.conf itself and names the
    server that answered: ``dial tcp: lookup HOST on 10.96.0.10:53: no such host``
    (``net/dnsclient_unix.go`` ``tryOneName`` -> ``newDNSError(errNoSuchHost, name,
    server)``). A name that is not a domain name fails before any query, so without a
    server (``goLookupIPCNAMEOrder``: ``!isDomainName``). getaddrinfo reports which kind of
    failure, not which server: the server named is resolv.conf's first, the one Go asks
    first. A lookup that got no answer is Go's read timeout on the UDP socket (``i/o
    timeout``; Go also names the socket's two addresses, which getaddrinfo hides).
    """
    if not _is_domain_name(host):
        return f"dial tcp: lookup {host}: no such host"
    server = _first_nameserver() if nameserver is None else nameserver
    where = f" on {server}" if server else ""
    if error.errno == socket.EAI_AGAIN:
        return f"dial tcp: lookup {host}{where}: i/o timeout"
    return f"dial tcp: lookup {host}{where}: no such host"


def _is_domain_name(name: str) -> bool:
    """Go's ``net.isDomainName`` (``net/dnsclient.go``)."""
    if name == ".":
        return True
    if not name or len(name) > 254 or (len(name) == 254 and not name.endswith(".")):
        return False
    for label in name.removesuffix(".").split("."):
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return False
        if any(not (c.isascii() and (c.isalnum() or c in "-_")) for c in label):
            return False
    return True


_RESOLV_CONF = "/etc/resolv.conf"


@functools.lru_cache(maxsize=1)
def _first_nameserver() -> str:
    # Go's dnsReadConfig: the first "nameserver" line, port 53; 127.0.0.1 and ::1 when
    # the file names none.
    try:
        with open(_RESOLV_CONF, encoding="utf-8", errors="replace") as conf:
            for line in conf:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    return join_host_port(fields[1], 53)
    except OSError:
        pass
    return "127.0.0.1:53"


# OpenSSL verify codes (X509_V_ERR_*) -> Go's crypto/x509/verify.go texts.
_UNKNOWN_AUTHORITY = {2, 18, 19, 20, 21, 27}  # issuer missing, self-signed, untrusted
_EXPIRED, _NOT_YET_VALID = 10, 9
_HOSTNAME_MISMATCH, _IP_MISMATCH = 62, 64


def x509_text(error: ssl.SSLCertVerificationError, host: str) -> str:
    """Go's x509 text for a failed verification (``crypto/x509/verify.go``).

    OpenSSL says which check failed but not with Go's details (the certificate's names and
    validity dates), so the texts are Go's where they carry no certificate data, and the
    details are Go's format with what the handshake exposes.
    """
    code = error.verify_code
    if code in _UNKNOWN_AUTHORITY:
        return "x509: certificate signed by unknown authority"  # UnknownAuthorityError
    if code == _EXPIRED:
        return "x509: certificate has expired or is not yet valid: certificate has expired"
    if code == _NOT_YET_VALID:
        return "x509: certificate has expired or is not yet valid: certificate is not yet valid"
    if code in (_HOSTNAME_MISMATCH, _IP_MISMATCH):
        return f"x509: certificate is not valid for {host}"
    reason = error.verify_message or error.reason or "verification failed"
    return f"x509: {reason}"


def _tls_error_text(item: ssl.SSLError) -> str:
    """A TLS failure other than verification, in Go's words where Go has one."""
    if isinstance(item, ssl.SSLEOFError) or item.reason == "UNEXPECTED_EOF_WHILE_READING":
        return "EOF"  # the server closed the connection during the handshake
    if item.reason == "WRONG_VERSION_NUMBER":
        # crypto/tls/conn.go readRecordOrCCS: the first bytes were not a TLS record.
        return "tls: first record does not look like a TLS handshake"
    if item.reason and item.reason.startswith(("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")):
        alert = item.reason.split("_ALERT_", 1)[1].replace("_", " ").lower()
        return f"remote error: tls: {alert}"  # crypto/tls/alert.go, as a remote alert
    reason = (item.reason or _plain(item)).replace("_", " ").lower()
    return f"tls: {reason}"


_STATUS_LINE = re.compile(r"(?:b|bytearray\(b)(['\"])(?P<line>.*?)\1")


def _protocol_error_text(chain: list[BaseException]) -> str:
    """A malformed answer, in Go's words, on one line and without Python reprs."""
    for item in chain:
        if isinstance(item, http1.MalformedResponse):
            return _malformed_text(item)
        goaway = next((a for a in item.args if isinstance(a, h2.events.ConnectionTerminated)), None)
        if goaway is not None:
            return _goaway_text(goaway)
        text = _plain(item)
        lowered = text.lower()
        if "bad status line" in lowered or "illegal status line" in lowered:
            match = _STATUS_LINE.search(text)
            line = match.group("line") if match else ""
            return (
                "net/http: HTTP/1.x transport connection broken: "
                f'malformed HTTP response "{line[:100]}"'
            )
        if "chunk size" in lowered or "chunk length" in lowered:
            return "invalid byte in chunk length"
        message = getattr(item, "message", None)
        if isinstance(item, aiohttp.ClientResponseError) and isinstance(message, str) and message:
            first = message.strip().splitlines()[0].rstrip(":")
            return f"net/http: HTTP/1.x transport connection broken: {first}"
    return ""


_BROKEN = "net/http: HTTP/1.x transport connection broken: "


def _malformed_text(error: http1.MalformedResponse) -> str:
    """What Go's HTTP/1 client says of the same bytes: errors reading the head come from
    ``http.ReadResponse`` wrapped by ``(*persistConn).readLoop`` (net/http/transport.go);
    a broken chunked body comes from net/http/internal/chunked.go, bare."""

    def shown(data: bytes | list[bytes]) -> str:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else ""
        return text[:100]

    kind, data = error.kind, error.data
    if kind == "status-line":  # net/http/response.go ReadResponse: badStringError
        return f"{_BROKEN}malformed HTTP response {go_quote(shown(data))}"
    if kind == "header-line":  # net/textproto/reader.go readMIMEHeader
        return f"{_BROKEN}malformed MIME header line: {shown(data)}"
    if kind == "content-length":  # net/http/transfer.go parseContentLength
        return f"{_BROKEN}bad Content-Length {go_quote(shown(data))}"
    if kind == "content-lengths" and isinstance(data, list):  # transfer.go fixLength
        got = " ".join(go_quote(value.decode("utf-8", "replace")[:100]) for value in data)
        return f"{_BROKEN}http: message cannot contain multiple Content-Length headers; got [{got}]"
    if kind == "chunk-size":  # chunked.go (*chunkedReader).beginChunk -> parseHexUint
        return "invalid byte in chunk length"
    if kind == "chunk-data":  # chunked.go (*chunkedReader).Read: no CRLF after the data
        return "malformed chunked encoding"
    if kind == "1xx":  # transport.go (*persistConn).readResponse
        return "net/http: too many 1xx informational responses"
    if kind == "head-size":  # transport.go (*persistConn).readResponse, its own limit
        return f"net/http: server response headers exceeded {http1.MAX_HEAD_BYTES} bytes; aborted"
    return f"{_BROKEN}{error}"


def _goaway_text(event: h2.events.ConnectionTerminated) -> str:
    """golang.org/x/net/http2 transport.go ``GoAwayError.Error``: the server's GOAWAY."""
    code = event.error_code
    name = getattr(code, "name", None) or f"unknown error code 0x{int(code or 0):x}"
    debug = (event.additional_data or b"").decode("utf-8", "replace")
    return (
        "http2: server sent GOAWAY and closed the connection; "
        f"LastStreamID={event.last_stream_id or 0}, ErrCode={name}, debug={go_quote(debug)}"
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 32:
        item = todo.pop(0)
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        # aiohttp keeps the underlying error in attributes as well as in __cause__.
        for attr in ("os_error", "certificate_error"):
            inner = getattr(item, attr, None)
            if isinstance(inner, BaseException):
                todo.append(inner)
        for inner in (item.__cause__, item.__context__):
            if inner is not None:
                todo.append(inner)


def _from_ssl_module(item: BaseException) -> bool:
    return type(item).__module__ in ("ssl", "_ssl")


def _oserror_text(item: OSError) -> str:
    if item.errno in _ERRNO_TEXT:
        return _ERRNO_TEXT[item.errno]
    if item.strerror:
        return item.strerror[:1].lower() + item.strerror[1:]
    return _plain(item) or type(item).__name__


def _plain(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.rstrip(".")


def _mask_password(url: httpx.URL | str) -> str:
    if isinstance(url, str):
        if "@" not in url:
            return url  # nothing to mask; Go shows a URL it could not use as written
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            return url
    else:
        parsed = url
    if parsed.password:
        return str(parsed.copy_with(username=parsed.username, password="***"))
    return str(parsed)


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (``%q``): printable characters kept, the rest escaped."""
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
