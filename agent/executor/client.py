"""The process-wide HTTP client for templates: which transport, built how.

:mod:`agent.executor.transport` holds the client class and the aiohttp and httpcore
transports, :mod:`agent.executor.http1_transport` the default one; this picks one from the
settings and builds the client once (``transport``: ``http1``, ``aiohttp`` or
``httpcore``; behaviour is the same on all three, their speed is not).
"""

from __future__ import annotations

import http.cookiejar
from typing import Any

import httpx

from agent import shims
from agent.executor.http1_transport import Http1Transport
from agent.executor.policy import OutboundPolicy
from agent.executor.settings import ExecutorSettings
from agent.executor.transport import (
    AgentClient,
    AiohttpTransport,
    HttpcoreTransport,
    TLSContexts,
    build_tls_contexts,
)

__all__ = ["build_client"]


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
    pool_options: dict[str, Any] = {
        "policy": policy,
        "max_connections": settings.max_connections,
        "keepalive_seconds": settings.keepalive_seconds,
        "connect_timeout": settings.connect_timeout_seconds,
        "tls_handshake_timeout": settings.tls_handshake_timeout_seconds,
    }
    if settings.transport == "httpcore":
        transport = HttpcoreTransport(
            tls=_own_contexts(settings) if settings.http2 else tls,
            http2=settings.http2,
            **pool_options,
        )
    else:
        http2: HttpcoreTransport | None = None
        if settings.http2:
            http2 = HttpcoreTransport(tls=_own_contexts(settings), http2=True, **pool_options)
        # Same rules, same options: Http1Transport only runs HTTP/1.1 exchanges itself.
        kind = Http1Transport if settings.transport == "http1" else AiohttpTransport
        transport = kind(
            tls=tls,
            policy=policy,
            max_connections=settings.max_connections,
            max_connections_per_host=settings.max_connections_per_host,
            keepalive_seconds=settings.keepalive_seconds,
            dns_cache_seconds=settings.dns_cache_seconds,
            connect_timeout=settings.connect_timeout_seconds,
            tls_handshake_timeout=settings.tls_handshake_timeout_seconds,
            http2=http2,
            fallback=lambda: HttpcoreTransport(tls=_own_contexts(settings), **pool_options),
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
