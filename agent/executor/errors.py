"""Readable, stable texts for transport failures.

Argo reports a failed request with Go's ``*url.Error`` text, e.g.
``Get "http://x/": dial tcp 10.0.0.1:80: connect: connection refused``. We keep that shape
(``<Op> "<url>": <cause>``, password in the URL masked as Go does) and word the cause from
the *innermost* meaningful exception, whichever transport raised it, so users read the
same message on both transports and never a Python ``repr``.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Iterator

import aiohttp
import httpx

from agent.executor.policy import PolicyDenied

__all__ = ["describe_transport_error", "format_url_error", "url_error_op"]

_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by peer",
    errno.ECONNABORTED: "connection aborted",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network is unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EPIPE: "broken pipe",
}


def url_error_op(method: str) -> str:
    """Go's ``urlErrorOp``: ``GET`` -> ``Get``."""
    return method[:1].upper() + method[1:].lower() if method else "Get"


def format_url_error(method: str, url: httpx.URL | str, cause: str) -> str:
    return f'{url_error_op(method)} "{_mask_password(url)}": {cause}'


def describe_transport_error(
    exc: BaseException, *, url: httpx.URL, reading_body: bool = False
) -> str:
    """The cause of a failed request, worded like Go's net/http where it can be.

    ``reading_body`` says the failure came after the status line (Go: ``unexpected EOF``).
    """
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    chain = list(_chain(exc))
    for item in chain:
        if isinstance(item, PolicyDenied):
            return str(item)
    # aiohttp's wrappers subclass the ssl errors; only the ssl module's own carry details.
    ssl_errors = [e for e in chain if isinstance(e, ssl.SSLError) and _from_ssl_module(e)]
    for item in ssl_errors:
        if isinstance(item, ssl.SSLCertVerificationError):
            reason = item.verify_message or item.reason or "verification failed"
            return f"tls: failed to verify certificate: {reason}"
    for item in ssl_errors:
        reason = (item.reason or _plain(item)).replace("_", " ").lower()
        return f"tls: {reason} ({target})"
    for item in chain:
        if isinstance(item, socket.gaierror):
            return f"dial tcp: lookup {host}: no such host ({_oserror_text(item)})"
    protocol = _protocol_error_text(chain)
    if protocol:
        return protocol
    connecting = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    for item in chain:
        if isinstance(item, OSError) and (item.errno is not None or item.strerror):
            text = _oserror_text(item)
            return f"dial tcp {target}: {text}" if connecting else f"{text} ({target})"
    if reading_body:
        return f"unexpected EOF: the connection to {target} closed before the body was complete"
    if isinstance(exc, httpx.RemoteProtocolError) and "disconnected" in _plain(exc).lower():
        return f"EOF: the server at {target} closed the connection without a response"
    text = _plain(exc)
    if text:
        return f"dial tcp {target}: {text}" if connecting else text
    return f"{type(exc).__name__} talking to {target}"


_STATUS_LINE = re.compile(r"(?:b|bytearray\(b)(['\"])(?P<line>.*?)\1")


def _protocol_error_text(chain: list[BaseException]) -> str:
    """A malformed answer, in Go's words, on one line and without Python reprs."""
    for item in chain:
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
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            return url
    else:
        parsed = url
    if parsed.password:
        return str(parsed.copy_with(username=parsed.username, password="***"))
    return str(parsed)
