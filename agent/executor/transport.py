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

Deliberate client settings: no cookie jar (one agent serves many workflows and must not
carry one author's cookies into another's requests; Go's default client has none either),
no proxy from the environment, redirects handled like Go's ``net/http`` (301/302/303 turn
any method but HEAD into GET; at most ``max_redirects`` requests in a chain).
"""

from __future__ import annotations

import functools
import http.cookiejar
import logging
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import httpcore
import httpx
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict

from agent import shims
from agent.executor.policy import OutboundPolicy, PolicyDenied, is_ip_literal
from agent.executor.settings import ExecutorSettings

__all__ = [
    "INSECURE_EXTENSION",
    "AgentClient",
    "AiohttpTransport",
    "HttpcoreTransport",
    "TLSContexts",
    "build_client",
    "build_tls_contexts",
]

log = logging.getLogger(__name__)

#: Request extension selecting ``insecureSkipVerify`` for one request (and its redirects).
INSECURE_EXTENSION = "argo_http_agent.insecure_skip_verify"
_ALPN_TTL = 600.0  # seconds an HTTP/1.1-only origin stays on aiohttp before it is asked again
_ALPN_ORIGINS = 4096


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

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            self._policy.check(result["host"], host=host)
        return results

    async def close(self) -> None:
        await self._inner.close()


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
        http2: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._tls = tls
        self._policy = policy
        self._http2 = http2
        # HTTPS origin -> (speaks HTTP/2, when learned). Unknown and HTTP/2 origins go to
        # the HTTP/2 pool; HTTP/1.1 ones to aiohttp's, re-asked every _ALPN_TTL seconds.
        self._alpn: dict[tuple[str, int | None, bool], tuple[bool, float]] = {}
        self._limits = (max_connections, max_connections_per_host)
        self._keepalive = keepalive_seconds
        self._dns_cache = dns_cache_seconds
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limits[0],
                limit_per_host=self._limits[1],
                keepalive_timeout=self._keepalive,
                ttl_dns_cache=self._dns_cache or None,
                use_dns_cache=self._dns_cache > 0,
                resolver=_PolicyResolver(self._policy),
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
        if self._http2 is not None and request.url.scheme == "https":
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
        session = self._get_session()
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        body = await request.aread()
        headers = _multidict(request.headers.raw)
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
                timeout=_client_timeout(timeouts.get("connect"), timeouts.get("read")),
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
        response = await self._http2.handle_async_request(request)
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
            if self._http2 is not None:
                await self._http2.aclose()


@functools.lru_cache(maxsize=256)
def _client_timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    # Immutable and shared: templates use a handful of distinct timeouts.
    return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)


def _multidict(raw: Iterable[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    # aiohttp replaces (instead of repeating) a header whose name differs only in case
    # from an earlier one; spell every repeat like its first occurrence.
    spelling: dict[str, str] = {}
    out: CIMultiDict[str] = CIMultiDict()
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1")
        name = spelling.setdefault(name.lower(), name)
        out.add(name, raw_value.decode("latin-1"))
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
    """Resolves first, checks every address, then connects to the allowed ones in order."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if not self._policy:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            if is_ip_literal(host):
                addresses = [host.strip("[]")]
            else:
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            for address in addresses:
                self._policy.check(address, host=host)
        except (OSError, PolicyDenied) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        last: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - never used for templates
        raise httpcore.ConnectError("unix sockets are not supported")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class HttpcoreTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, one pool per TLS choice, with the policy backend.

    With ``http2`` it offers HTTP/2 by ALPN to TLS targets. httpcore sets the ALPN list on
    the SSL context it is given, so the contexts must not be shared with aiohttp's pool
    (which speaks HTTP/1.1 only): :func:`build_client` builds separate ones.
    """

    def __init__(
        self,
        *,
        tls: TLSContexts,
        policy: OutboundPolicy,
        max_connections: int,
        keepalive_seconds: float,
        http2: bool = False,
    ) -> None:
        limits = (max_connections, keepalive_seconds, http2)
        self._verify = self._make(tls.verify, policy, *limits)
        self._insecure = self._make(tls.insecure, policy, *limits)
        self._tls = tls

    @staticmethod
    def _make(
        context: ssl.SSLContext,
        policy: OutboundPolicy,
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
            network_backend=_PolicyNetworkBackend(policy),
        )
        shims.set_pool(transport, pool)
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        insecure = request.extensions.get(INSECURE_EXTENSION) and request.url.scheme == "https"
        transport = self._insecure if insecure else self._verify
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._verify.aclose()
        await self._insecure.aclose()


# ---------------------------------------------------------------------------------------
# the client


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
        redirects = 0
        while True:
            if redirects > self.max_redirects:
                raise httpx.TooManyRedirects("Exceeded maximum allowed redirects.", request=request)
            try:
                response = await transport.handle_async_request(request)
            except httpx.RequestError as exc:
                exc.request = request  # what httpx's request_context does
                raise
            response.request = request
            if not (self.follow_redirects and response.has_redirect_location):
                return response
            try:
                request = shims.build_redirect_request(self, request, response)
                redirects += 1
                await response.aread()  # read, so the connection can be reused
            except BaseException:
                await response.aclose()
                raise


def _no_cookies() -> http.cookiejar.CookieJar:
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class _NoCookies(httpx.Cookies):
    """Argo's client keeps no cookie jar; skipping the extraction saves ~5% CPU per request."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def _own_contexts(settings: ExecutorSettings) -> TLSContexts:
    return build_tls_contexts(ca_dir=settings.ca_dir, ca_bundle=settings.ca_bundle)


def build_client(
    settings: ExecutorSettings,
    *,
    policy: OutboundPolicy,
    tls: TLSContexts,
    follow_redirects: bool = True,
) -> AgentClient:
    """The process-wide client for the configured transport.

    An HTTP/2 pool gets SSL contexts of its own, built from ``settings`` like ``tls``:
    httpcore writes its ALPN list into the contexts it is given, and ``tls`` is shared with
    pools that must offer HTTP/1.1 only (aiohttp's, the plugins' client).
    """
    transport: httpx.AsyncBaseTransport
    if settings.transport == "httpcore":
        transport = HttpcoreTransport(
            tls=_own_contexts(settings) if settings.http2 else tls,
            policy=policy,
            max_connections=settings.max_connections,
            keepalive_seconds=settings.keepalive_seconds,
            http2=settings.http2,
        )
    else:
        http2: HttpcoreTransport | None = None
        if settings.http2:
            http2 = HttpcoreTransport(
                tls=_own_contexts(settings),
                policy=policy,
                max_connections=settings.max_connections,
                keepalive_seconds=settings.keepalive_seconds,
                http2=True,
            )
        transport = AiohttpTransport(
            tls=tls,
            policy=policy,
            max_connections=settings.max_connections,
            max_connections_per_host=settings.max_connections_per_host,
            keepalive_seconds=settings.keepalive_seconds,
            dns_cache_seconds=settings.dns_cache_seconds,
            http2=http2,
        )
    client = AgentClient(
        transport=transport,
        follow_redirects=follow_redirects,
        # httpx counts redirects followed; Go counts requests made (see settings).
        max_redirects=max(settings.max_redirects - 1, 0),
        trust_env=False,
        cookies=_no_cookies(),
        timeout=None,
    )
    shims.replace_cookie_store(client, _NoCookies(_no_cookies()))
    return client
