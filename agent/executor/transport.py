"""The HTTP client: one long-lived ``httpx.AsyncClient`` over a fast connection pool.

httpx gives the request/response API, redirects and URL handling; its default pool
(httpcore) scans every connection per request and collapses at high concurrency (see the
toolchain notes), so by default the client runs on :class:`AiohttpTransport`, an
``httpx.AsyncBaseTransport`` backed by aiohttp's connector: keep-alive reuse, a global and a
per-host connection limit, DNS caching, and the TLS choice made **per request** (verify with
the system store plus extra CAs, or skip verification) through a request extension, so one
client serves every template. :class:`HttpcoreTransport` runs the same client on httpx's own
pool (one pool per TLS choice) for comparison; behaviour is identical on both.

Both transports apply the :class:`~agent.executor.policy.OutboundPolicy` at connect time on
the resolved addresses (a resolver for aiohttp, a network backend for httpcore), and to
literal IP hosts, on every hop of a redirect chain.

Argo's agent has two Go clients (workflow/executor/agent.go ``httpClients``), and so does
this transport, chosen per request by :data:`INSECURE_EXTENSION`:

* verified requests get ``http.DefaultTransport``'s limits: a connect timeout (Go's dial
  timeout, 30 s: ``dial tcp IP:PORT: i/o timeout``) and a separate TLS handshake timeout
  (10 s: ``net/http: TLS handshake timeout``), and HTTP/2 by ALPN;
* ``insecureSkipVerify`` requests get what Argo's ``httpClientSkip`` (a bare
  ``http.Transport`` with only a ``TLSClientConfig``) has: HTTP/1.1 only (transport.go
  ``protocols``: no automatic HTTP/2 with a custom TLS config), no dial or handshake
  timeout (the template's ``timeoutSeconds`` or the agent's default bounds them).

Neither reads proxy variables: Argo's insecure client has no ``Proxy``; its default
client does (``ProxyFromEnvironment``), a difference README.md lists.

Header bytes are sent as given (the executor encodes Go's bytes): aiohttp writes header
text as UTF-8, so a request whose header bytes are not UTF-8 (a Secret holding binary)
goes to httpx's own HTTP/1.1 pool, which writes bytes as they are.

Deliberate client settings: no cookie jar (one agent serves many workflows and must not
carry one author's cookies into another's requests; Go's default client has none either),
no proxy from the environment, redirects handled like Go's ``net/http`` (301/302/303 turn
any method but HEAD into GET; at most ``max_redirects`` requests in a chain).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import httpcore
import httpx
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from multidict import CIMultiDict

from agent import shims
from agent.executor.errors import DialTimeout, TLSHandshakeTimeout, go_quote, join_host_port
from agent.executor.policy import OutboundPolicy, PolicyDenied, is_ip_literal

__all__ = [
    "INSECURE_EXTENSION",
    "SECRET_HEADERS_EXTENSION",
    "AgentClient",
    "AiohttpTransport",
    "BadLocation",
    "HttpcoreTransport",
    "TLSContexts",
    "build_tls_contexts",
]

log = logging.getLogger(__name__)

#: Request extension selecting ``insecureSkipVerify`` for one request (and its redirects).
INSECURE_EXTENSION = "argo_http_agent.insecure_skip_verify"
#: Request extension: the lower-case names of headers whose values came from a Secret (never
#: quoted in an error text).
SECRET_HEADERS_EXTENSION = "argo_http_agent.secret_headers"
_ALPN_TTL = 600.0  # seconds an HTTP/1.1-only origin stays on aiohttp before it is asked again
_ALPN_ORIGINS = 4096
# asyncio applies a 60 s handshake limit when given none; Argo's insecure client has none.
_NO_HANDSHAKE_LIMIT = 365 * 24 * 3600.0
_TLS_HANDSHAKE_TIMEOUT_TEXT = "net/http: TLS handshake timeout"


@dataclass(frozen=True, slots=True)
class TLSContexts:
    """The two TLS configurations a template can ask for; built once, shared by all."""

    verify: ssl.SSLContext
    insecure: ssl.SSLContext

    def for_request(self, request: httpx.Request) -> ssl.SSLContext:
        return self.insecure if request.extensions.get(INSECURE_EXTENSION) else self.verify


def build_tls_contexts(*, ca_dir: str | None, ca_bundle: str | None) -> TLSContexts:
    """System trust store + every PEM file in ``ca_dir`` + ``ca_bundle``.

    ``ca_dir`` mirrors Argo's mount of the Secret ``argo-workflows-agent-ca-certificates``;
    files that are not certificates (and the ``..data`` entries of a Secret volume) are
    skipped. A ``ca_bundle`` that cannot be read is a configuration error.
    """
    verify = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if verify.cert_store_stats().get("x509_ca", 0) == 0:
        # No system bundle (a distroless image): fall back to certifi, httpx's own store.
        try:
            import certifi

            verify.load_verify_locations(cafile=certifi.where())
        except (ImportError, OSError, ssl.SSLError):  # pragma: no cover - image-specific
            log.warning("no system CA store found and certifi unavailable")
    loaded = 0
    if ca_dir and os.path.isdir(ca_dir):
        for entry in sorted(os.listdir(ca_dir)):
            path = os.path.join(ca_dir, entry)
            if entry.startswith(".") or not os.path.isfile(path):
                continue
            try:
                verify.load_verify_locations(cafile=path)
                loaded += 1
            except (ssl.SSLError, OSError, ValueError):
                log.warning("skipping %s: not a PEM certificate file", path)
    if ca_bundle:
        try:
            verify.load_verify_locations(cafile=ca_bundle)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"ca_bundle {ca_bundle!r}: cannot load CA certificates: {exc}"
            ) from None
    if loaded:
        log.info("trusting %d extra CA file(s) from %s", loaded, ca_dir)
    insecure = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    return TLSContexts(verify=verify, insecure=insecure)


# ---------------------------------------------------------------------------------------
# aiohttp


class _PolicyResolver(AbstractResolver):
    """Resolves with aiohttp's default resolver, then refuses a denied address."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.DefaultResolver()
        #: host -> the first address it resolved to: the one a dial timeout names
        self.first_address: dict[str, str] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            self._policy.check(result["host"], host=host)
        if results:
            if len(self.first_address) >= _ALPN_ORIGINS:
                self.first_address.clear()
            self.first_address[host] = results[0]["host"]
        return results

    async def close(self) -> None:
        await self._inner.close()


class _TLSHandshakeTimeoutError(aiohttp.ClientConnectionError):
    """Go's TLS handshake timeout on aiohttp's pool (not a ``ClientConnectorError``, so
    aiohttp does not go on to the host's next address: Go's dial was already done)."""


class _AgentConnector(aiohttp.TCPConnector):
    """aiohttp's connector with Go's TLS handshake timeout on verified connections.

    aiohttp runs the TCP connect and the TLS handshake under one ``sock_connect`` timeout
    (Go's dial timeout here) and has no public handshake limit; asyncio's
    ``create_connection`` has one (``ssl_handshake_timeout``). This override of aiohttp's
    private ``_wrap_create_connection`` (checked by :func:`agent.shims.check`) passes it:
    the handshake gets Go's limit, inside the connect timeout (so it is Go's 10 s unless
    the TCP connect itself took more than 20 of Go's 30 s, where the connect timeout
    speaks first). ``insecure`` connections get no limit, as Argo's insecure client.
    """

    def __init__(
        self, *, tls_handshake_timeout: float, insecure: ssl.SSLContext, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._tls_handshake_timeout = tls_handshake_timeout
        self._insecure_context = insecure

    async def _wrap_create_connection(
        self, *args: Any, **kwargs: Any
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        context = kwargs.get("ssl")
        limited = isinstance(context, ssl.SSLContext) and context is not self._insecure_context
        if isinstance(context, ssl.SSLContext):
            kwargs["ssl_handshake_timeout"] = (
                self._tls_handshake_timeout if limited else _NO_HANDSHAKE_LIMIT
            )
        try:
            return await super()._wrap_create_connection(*args, **kwargs)
        except aiohttp.ClientConnectorError as exc:
            # asyncio's sslproto ends a handshake that ran out of time with a
            # ConnectionAbortedError of its own (no errno: no socket said so).
            error = exc.os_error
            if limited and isinstance(error, ConnectionAbortedError) and error.errno is None:
                raise _TLSHandshakeTimeoutError(_TLS_HANDSHAKE_TIMEOUT_TEXT) from (
                    TLSHandshakeTimeout()
                )
            raise


class _AiohttpStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise _map_aiohttp_error(exc, self._request) from exc

    async def aclose(self) -> None:
        # Returns a fully read connection to the pool; closes a half-read one.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx`` requests over one aiohttp connector (created lazily on the running loop)."""

    #: aiohttp must not add headers Go would not send; the executor sets its own.
    _SKIP_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})

    def __init__(
        self,
        *,
        tls: TLSContexts,
        policy: OutboundPolicy,
        max_connections: int,
        max_connections_per_host: int,
        keepalive_seconds: float,
        dns_cache_seconds: int,
        connect_timeout: float,
        tls_handshake_timeout: float,
        http2: httpx.AsyncBaseTransport | None = None,
        fallback: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self._tls = tls
        self._policy = policy
        self._http2 = http2
        self._connect_timeout = connect_timeout
        self._tls_handshake_timeout = tls_handshake_timeout
        # Built on first use: the pool for requests whose header bytes aiohttp cannot write.
        self._make_fallback = fallback
        self._fallback: httpx.AsyncBaseTransport | None = None
        self._resolver: _PolicyResolver | None = None
        # HTTPS origin -> (speaks HTTP/2, when learned). Unknown and HTTP/2 origins go to
        # the HTTP/2 pool; HTTP/1.1 ones to aiohttp's, re-asked every _ALPN_TTL seconds.
        self._alpn: dict[tuple[str, int | None, bool], tuple[bool, float]] = {}
        self._limits = (max_connections, max_connections_per_host)
        self._keepalive = keepalive_seconds
        self._dns_cache = dns_cache_seconds
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._resolver = _PolicyResolver(self._policy)
            connector = _AgentConnector(
                tls_handshake_timeout=self._tls_handshake_timeout,
                insecure=self._tls.insecure,
                limit=self._limits[0],
                limit_per_host=self._limits[1],
                keepalive_timeout=self._keepalive,
                ttl_dns_cache=self._dns_cache or None,
                use_dns_cache=self._dns_cache > 0,
                resolver=self._resolver,
                ssl=self._tls.verify,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=self._SKIP_AUTO_HEADERS,
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None),
            )
            # aiohttp silently sends an idempotent request (GET, PUT, DELETE ...) a second
            # time when a reused keep-alive connection fails; the agent promises that no
            # request is sent twice within one run, so that retry is switched off.
            # tests/test_faults.py pins the behaviour.
            shims.disable_retry_connection(self._session)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        insecure = bool(request.extensions.get(INSECURE_EXTENSION))
        if self._http2 is not None and request.url.scheme == "https" and not insecure:
            negotiated = await self._via_http2(request)
            if negotiated is not None:
                return negotiated
        host = request.url.host
        if is_ip_literal(host):
            # The resolver is not consulted for literal addresses.
            try:
                self._policy.check(host, host=host)
            except PolicyDenied as exc:
                raise httpx.ConnectError(str(exc), request=request) from exc
        return await self._send_http11(request, insecure=insecure)

    async def _send_http11(self, request: httpx.Request, *, insecure: bool) -> httpx.Response:
        """The request on aiohttp's HTTP/1.1 pool."""
        host = request.url.host
        try:
            headers = _multidict(request.headers.raw)
        except UnicodeDecodeError:
            return await self._fallback_transport().handle_async_request(request)
        session = self._get_session()
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        connect = timeouts.get("connect")
        if not insecure:
            connect = _smaller(connect, self._connect_timeout)
        body = await request.aread()
        ssl_choice: ssl.SSLContext | bool = (
            self._tls.for_request(request) if request.url.scheme == "https" else True
        )
        try:
            response = await session.request(
                request.method,
                # httpx already turned URL credentials into an Authorization header.
                yarl.URL(
                    str(
                        request.url.copy_with(userinfo=b"") if request.url.userinfo else request.url
                    ),
                    encoded=True,
                ),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                ssl=ssl_choice,
                timeout=_client_timeout(connect, timeouts.get("read")),
            )
        except aiohttp.ConnectionTimeoutError as exc:
            if connect != self._connect_timeout:
                raise _map_aiohttp_error(exc, request) from exc
            # Go's dial timeout, naming the address dialled (the first one a name resolved
            # to: Go's dialSerial reports the first address's error).
            port = request.url.port or (443 if request.url.scheme == "https" else 80)
            address = host if is_ip_literal(host) else self._first_address(host)
            dialed = DialTimeout(join_host_port(address.strip("[]"), port))
            raise httpx.ConnectTimeout(f"dial timeout: {dialed.address}", request=request) from (
                dialed
            )
        except aiohttp.ClientError as exc:
            raise _map_aiohttp_error(exc, request) from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_AiohttpStream(response, request),
            request=request,
            extensions={
                "http_version": f"HTTP/{response.version.major}.{response.version.minor}".encode()
                if response.version
                else b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    def _first_address(self, host: str) -> str:
        resolver = self._resolver
        return (resolver.first_address.get(host) if resolver else None) or host

    def _fallback_transport(self) -> httpx.AsyncBaseTransport:
        if self._fallback is None:
            if self._make_fallback is None:
                raise httpx.LocalProtocolError("header bytes are not UTF-8 text")
            self._fallback = self._make_fallback()
        return self._fallback

    async def _via_http2(self, request: httpx.Request) -> httpx.Response | None:
        """The request on the HTTP/2 pool, unless its origin is known to speak HTTP/1.1.

        aiohttp speaks HTTP/1.1 only. Go's client negotiates HTTP/2 by ALPN with every TLS
        target; so does this, on httpx's own HTTP/2 pool (httpcore + h2): the first request
        to an HTTPS origin goes there, and the version the server chose decides where that
        origin's next requests go. An HTTP/1.1 origin thus costs one request on the slower
        pool, then runs on aiohttp's.
        """
        url = request.url
        origin = (url.host, url.port, bool(request.extensions.get(INSECURE_EXTENSION)))
        now = time.monotonic()
        known = self._alpn.get(origin)
        if known is not None and not known[0] and now - known[1] < _ALPN_TTL:
            return None
        assert self._http2 is not None
        response = await self._http2.handle_async_request(request)  # applies the h2 rules
        if len(self._alpn) >= _ALPN_ORIGINS:
            self._alpn.clear()
        self._alpn[origin] = (response.extensions.get("http_version") == b"HTTP/2", now)
        return response

    async def aclose(self) -> None:
        try:
            if self._session is not None:
                await self._session.close()
                self._session = None
        finally:
            try:
                if self._http2 is not None:
                    await self._http2.aclose()
            finally:
                if self._fallback is not None:
                    await self._fallback.aclose()


@functools.lru_cache(maxsize=256)
def _client_timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    # Immutable and shared: templates use a handful of distinct timeouts.
    return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)


def _multidict(raw: Iterable[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    """The request's header bytes as the text aiohttp writes back as the same bytes.

    aiohttp encodes header text as UTF-8, so the bytes are decoded as UTF-8 (raising
    ``UnicodeDecodeError`` for bytes it could not write; the caller sends those elsewhere).
    """
    # aiohttp replaces (instead of repeating) a header whose name differs only in case
    # from an earlier one; spell every repeat like its first occurrence.
    spelling: dict[str, str] = {}
    out: CIMultiDict[str] = CIMultiDict()
    for raw_name, raw_value in raw:
        name = raw_name.decode("utf-8")
        name = spelling.setdefault(name.lower(), name)
        out.add(name, raw_value.decode("utf-8"))
    return out


def _map_aiohttp_error(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    text = str(exc) or type(exc).__name__
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientSSLError):
        kind = httpx.ConnectError
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientOSError):
        kind = httpx.ReadError
    elif isinstance(exc, aiohttp.InvalidURL):
        kind = httpx.UnsupportedProtocol
    else:
        kind = httpx.NetworkError
    return kind(text, request=request)


# ---------------------------------------------------------------------------------------
# httpcore


class _PolicyNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves first, checks every address, then dials the allowed ones in order.

    With ``connect_timeout`` it dials as Go's ``net.Dialer`` with a ``Timeout`` does
    (net/dial.go ``dialSerial`` + ``partialDeadline``): the addresses are tried one after
    the other, each with its share of the time left (at least 2 s while there is that
    much), and the first address's error is the one reported; a timeout is Go's
    ``i/o timeout``. With ``tls_handshake_timeout`` the stream's TLS handshake gets that
    limit of its own (Go's ``TLSHandshakeTimeout``).
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        connect_timeout: float | None = None,
        tls_handshake_timeout: float | None = None,
    ) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()
        self._connect_timeout = connect_timeout
        self._tls_handshake_timeout = tls_handshake_timeout

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            if is_ip_literal(host):
                addresses = [host.strip("[]")]
            else:
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            if self._policy:
                for address in addresses:
                    self._policy.check(address, host=host)
        except (OSError, PolicyDenied) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        limit = _smaller(timeout, self._connect_timeout)
        deadline = None if limit is None else time.monotonic() + limit
        first: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for index, address in enumerate(addresses):
            budget = _partial_timeout(deadline, len(addresses) - index)
            try:
                if budget is not None and budget <= 0:
                    raise httpcore.ConnectTimeout("dial deadline passed")
                stream = await self._inner.connect_tcp(
                    address, port, budget, local_address, socket_options
                )
            except httpcore.ConnectTimeout as exc:
                if limit != self._connect_timeout:
                    first = first or exc  # the caller's own timeout, not Go's dial timeout
                    continue
                first = first or _HttpcoreDialTimeout(join_host_port(address, port))
            except httpcore.ConnectError as exc:
                first = first or exc
            else:
                if self._tls_handshake_timeout is None:
                    return stream
                return _HandshakeLimitedStream(stream, self._tls_handshake_timeout)
        assert first is not None
        raise first

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - never used for templates
        raise httpcore.ConnectError("unix sockets are not supported")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# httpcore's pool re-raises a connection's error ``from None``, so the Go cause travels in
# the exception's class (httpx then keeps it as the ``__cause__`` of its own exception).
class _HttpcoreDialTimeout(httpcore.ConnectTimeout, DialTimeout):
    pass


class _HttpcoreTLSHandshakeTimeout(httpcore.ConnectTimeout, TLSHandshakeTimeout):
    pass


def _smaller(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _partial_timeout(deadline: float | None, remaining: int) -> float | None:
    """Go's ``partialDeadline`` (net/dial.go): this address's share of the time left."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        return 0.0
    share = left / remaining
    sane_minimum = 2.0
    if share < sane_minimum:
        share = min(left, sane_minimum)
    return share


class _HandshakeLimitedStream(httpcore.AsyncNetworkStream):
    """A plain TCP stream whose TLS handshake has a time limit of its own."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, limit: float) -> None:
        self._inner = inner
        self._limit = limit

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        limit = _smaller(timeout, self._limit)
        try:
            # The TLS stream replaces this one: nothing is left in between once it is up.
            return await self._inner.start_tls(ssl_context, server_hostname, limit)
        except httpcore.ConnectTimeout:
            if limit != self._limit:
                raise  # the caller's own, shorter timeout
            raise _HttpcoreTLSHandshakeTimeout(_TLS_HANDSHAKE_TIMEOUT_TEXT) from None

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


# Connection-specific header fields (RFC 9113 8.2.2), lower case; TE is allowed on HTTP/2
# only as "trailers".
_CONNECTION_HEADERS = frozenset(
    {b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te"}
)


def _has_connection_headers(raw: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(name.lower() in _CONNECTION_HEADERS for name, _ in raw)


async def _http2_header_rules(event: str, info: dict[str, Any]) -> None:
    """httpcore's trace hook: Go's HTTP/2 request-header rules, before h2 encodes them.

    Go (net/http/internal/httpcommon ``checkConnHeaders``, wrapped as ``http2: %w`` by
    h2_bundle.go) refuses ``Upgrade`` other than ``""``/``chunked``, ``Transfer-Encoding``
    other than one ``chunked`` and ``Connection`` other than one ``close``/``keep-alive``,
    with ``http2: invalid Connection request header: ["foo"]``; it then drops
    ``Connection``, ``Proxy-Connection``, ``Transfer-Encoding``, ``Upgrade`` and
    ``Keep-Alive`` (``EncodeHeaders``: "don't send connection-specific fields"). Go sends a
    ``TE`` other than ``trailers``, which RFC 9113 8.2.2 makes a malformed request that
    servers refuse; h2 refuses to encode it, with the value in its text: it is refused here
    in Go's wording instead. Values from a Secret are shown as ``***``.
    """
    if event != "http2.send_request_headers.started":
        return
    request = info["request"]
    secret: frozenset[str] = request.extensions.get(SECRET_HEADERS_EXTENSION) or frozenset()
    values: dict[bytes, list[bytes]] = {}
    for name, value in request.headers:
        lowered = name.lower()
        if lowered in _CONNECTION_HEADERS:
            values.setdefault(lowered, []).append(value)

    def refuse(name: bytes, canonical: str) -> None:
        shown = [
            "***" if name.decode() in secret else v.decode("utf-8", "replace") for v in values[name]
        ]
        listed = " ".join(go_quote(v) for v in shown)
        raise httpcore.LocalProtocolError(f"http2: invalid {canonical} request header: [{listed}]")

    upgrade = values.get(b"upgrade")
    if upgrade and upgrade[0] not in (b"", b"chunked"):
        refuse(b"upgrade", "Upgrade")
    coding = values.get(b"transfer-encoding")
    if coding and (len(coding) > 1 or coding[0] not in (b"", b"chunked")):
        refuse(b"transfer-encoding", "Transfer-Encoding")
    connection = values.get(b"connection")
    if connection and (
        len(connection) > 1 or connection[0].lower() not in (b"", b"close", b"keep-alive")
    ):
        refuse(b"connection", "Connection")
    te = values.get(b"te")
    if te and any(v.lower() != b"trailers" for v in te):
        refuse(b"te", "TE")
    request.headers[:] = [
        (name, value)
        for name, value in request.headers
        if name.lower() not in _CONNECTION_HEADERS or name.lower() == b"te"
    ]


class HttpcoreTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, one pool per TLS choice, with the policy backend.

    The verified pool has Go's default-transport limits (``connect_timeout``,
    ``tls_handshake_timeout``) and, with ``http2``, offers HTTP/2 by ALPN to TLS targets;
    the ``insecureSkipVerify`` pool is Argo's insecure client: HTTP/1.1 only, no limits.
    httpcore sets the ALPN list on the SSL context it is given, so the contexts must not be
    shared with aiohttp's pool: :func:`build_client` builds separate ones.
    """

    def __init__(
        self,
        *,
        tls: TLSContexts,
        policy: OutboundPolicy,
        max_connections: int,
        keepalive_seconds: float,
        connect_timeout: float | None,
        tls_handshake_timeout: float | None,
        http2: bool = False,
    ) -> None:
        self._verify = self._make(
            tls.verify,
            _PolicyNetworkBackend(
                policy, connect_timeout=connect_timeout, tls_handshake_timeout=tls_handshake_timeout
            ),
            max_connections,
            keepalive_seconds,
            http2,
        )
        self._insecure = self._make(
            tls.insecure, _PolicyNetworkBackend(policy), max_connections, keepalive_seconds, False
        )
        self._tls = tls
        self._http2 = http2

    @staticmethod
    def _make(
        context: ssl.SSLContext,
        backend: _PolicyNetworkBackend,
        max_connections: int,
        keepalive: float,
        http2: bool,
    ) -> httpx.AsyncHTTPTransport:
        transport = httpx.AsyncHTTPTransport(verify=context, trust_env=False)
        # httpx does not expose the network backend; swap in a pool that uses ours.
        pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive,
            http1=True,
            http2=http2,
            network_backend=backend,
        )
        shims.set_pool(transport, pool)
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # Argo picks its client by the flag alone (httpClients[InsecureSkipVerify]), for
        # http:// URLs too: those get the insecure client's (absent) dial timeout.
        if request.extensions.get(INSECURE_EXTENSION):
            return await self._insecure.handle_async_request(request)
        if self._http2 and _has_connection_headers(request.headers.raw):
            # Go's HTTP/2 rules for connection-specific headers, applied once the
            # connection turned out to be HTTP/2 (httpcore's trace hook runs just before
            # the HEADERS frame is encoded).
            request.extensions = {**request.extensions, "trace": _http2_header_rules}
        return await self._verify.handle_async_request(request)

    async def aclose(self) -> None:
        await self._verify.aclose()
        await self._insecure.aclose()


# ---------------------------------------------------------------------------------------
# the client


class BadLocation(Exception):
    """A redirect whose ``Location`` httpx cannot follow; ``url`` is the request answered."""

    def __init__(self, *, location: str, url: httpx.URL, reason: str) -> None:
        super().__init__(reason)
        self.location = location
        self.url = url
        self.reason = reason


class AgentClient(httpx.AsyncClient):
    """The agent's ``httpx.AsyncClient``: Go's redirect rule and a lean send for templates.

    Go's rule: 301/302/303 turn every method but HEAD into GET (an override of httpx's
    private hook, which :func:`agent.shims.check` verifies httpx still has).
    """

    def _redirect_method(self, request: httpx.Request, response: httpx.Response) -> str:
        if response.status_code in (301, 302, 303) and request.method not in ("GET", "HEAD"):
            return "GET"
        return request.method

    async def send_streaming(self, request: httpx.Request) -> httpx.Response:
        """``send(request, stream=True)``, minus the layers no template uses.

        ``AsyncClient.send`` wraps every request in an auth flow, event hooks, a cookie
        store and an elapsed-time stream, four coroutine and generator layers that every
        resumption of the request passes through: about a tenth of the agent's CPU per task.
        Templates use none of them (no client auth, hooks or cookies), so this loop calls
        the transport directly and follows redirects with httpx's own
        ``_build_redirect_request`` (so redirect behaviour is httpx's, with Go's method rule
        above; ``tests/test_execute_http.py`` pins it on both transports). A URL with user
        info needs httpx's basic-auth flow and takes the full ``send``.
        """
        if request.url.userinfo:
            return await self.send(request, stream=True)
        transport = shims.client_transport(self)
        try:
            response = await transport.handle_async_request(request)
        except httpx.RequestError as exc:
            exc.request = request  # what httpx's request_context does
            raise
        response.request = request
        return await self.follow(request, response)

    async def follow(self, request: httpx.Request, response: httpx.Response) -> httpx.Response:
        """Go on from ``response`` (the answer to ``request``) through its redirects."""
        transport = shims.client_transport(self)
        redirects = 0
        while True:
            if not (self.follow_redirects and response.has_redirect_location):
                return response
            try:
                try:
                    next_request = shims.build_redirect_request(self, request, response)
                except (httpx.InvalidURL, httpx.RemoteProtocolError) as exc:
                    location = response.headers.get("location", "")
                    raise BadLocation(location=location, url=request.url, reason=str(exc)) from None
                request = next_request
                redirects += 1
                await response.aread()  # read, so the connection can be reused
            except BaseException:
                await response.aclose()
                raise
            if redirects > self.max_redirects:
                raise httpx.TooManyRedirects("Exceeded maximum allowed redirects.", request=request)
            try:
                response = await transport.handle_async_request(request)
            except httpx.RequestError as exc:
                exc.request = request
                raise
            response.request = request
