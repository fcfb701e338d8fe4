"""One configured API client for the process, and readable API errors.

The kubeconfig comes from ``--kubeconfig``, else ``KUBECONFIG``, else the in-cluster
service account. A single ``ApiClient`` (one aiohttp connection pool) serves the watches,
the patches and the secret reads.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from agent import http1, shims

__all__ = [
    "GROUP",
    "PLURAL",
    "VERSION",
    "ApiConnectionError",
    "ApiReply",
    "ApiWire",
    "api_error_text",
    "api_status_text",
    "connect",
    "send_json",
]

GROUP = "argoproj.io"
VERSION = "v1alpha1"
PLURAL = "workflowtasksets"


async def connect(*, kubeconfig: str | None, pool_size: int = 64) -> client.ApiClient:
    """Load the configuration and return a long-lived ``ApiClient``."""
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        await config.load_kube_config(
            config_file=path, client_configuration=configuration, persist_config=False
        )
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = pool_size
    api = client.ApiClient(configuration=configuration)
    session = getattr(getattr(api, "rest_client", None), "pool_manager", None)
    if session is not None and not _proxy_or_netrc():
        # With trust_env, aiohttp reads ~/.netrc and the proxy variables in a worker thread
        # on EVERY request (two thread hops per status patch; measured at ~15% of the
        # agent's CPU under load). With neither configured the answer is always "none".
        shims.disable_trust_env(session)
    return api


async def send_json(
    api: client.ApiClient,
    method: str,
    path: str,
    body: bytes,
    *,
    content_type: str,
    timeout: float,
) -> aiohttp.ClientResponse:
    """Send an already encoded JSON body over the client's own session, auth and TLS.

    The generated API methods walk a dict body to "sanitize" it and encode it again with
    ``json.dumps``; for status patches (every result the agent reports) that was most of
    the patch's CPU. This sends bytes encoded once (compact, as Go writes them), with what
    those methods would add: the default headers, the bearer token (refreshed by the
    configuration's hook), the proxy and the TLS server name. The caller releases the
    response.
    """
    headers: dict[str, str] = dict(api.default_headers)
    headers["Accept"] = "application/json"
    headers["Content-Type"] = content_type
    await api.update_params_for_auth(headers, [], ["BearerToken"])
    rest = api.rest_client
    options: dict[str, Any] = {}
    if rest.proxy:
        options["proxy"] = rest.proxy
    if rest.proxy_headers:
        options["proxy_headers"] = rest.proxy_headers
    if rest.server_hostname:
        options["server_hostname"] = rest.server_hostname
    response: aiohttp.ClientResponse = await rest.pool_manager.request(
        method,
        f"{api.configuration.host}{path}",
        data=body,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=timeout),
        **options,
    )
    return response


class ApiConnectionError(Exception):
    """The API server could not be reached, or the exchange broke before its answer."""


@dataclass(frozen=True, slots=True)
class ApiReply:
    """An answer of the API server, read whole."""

    status: int
    reason: str
    body: bytes
    retry_after: str | None


class ApiWire:
    """Small JSON exchanges with the API server over :mod:`agent.http1`.

    The status patch is sent once per result in the one-task-per-taskset shape, and through
    aiohttp's ``ClientSession.request`` its request and response objects were a fifth of the
    agent's CPU per task. This sends the same bytes :func:`send_json` sends (the client's
    default headers, its bearer token refreshed by the configuration's hook, the TLS
    configuration kubernetes_asyncio builds from the same fields) on persistent connections
    of its own, one request head and body in one write. A proxy is not spoken here: with
    one configured, every exchange goes through :func:`send_json` instead.

    An idle connection the server closed may fail before any byte of the answer arrives;
    such an exchange is sent once more on a new connection, which is safe for what this
    carries (merge patches of the same document give the same object).
    """

    def __init__(self, api: client.ApiClient, *, max_idle: int = 16) -> None:
        self._api = api
        configuration = api.configuration
        url = urllib.parse.urlsplit(str(configuration.host))
        self._direct = not configuration.proxy and url.scheme in ("http", "https")
        self._pool: http1.Pool | None = None
        if not self._direct:
            return
        tls = _api_tls_context(configuration) if url.scheme == "https" else None
        host = url.hostname or "localhost"
        port = url.port or (443 if url.scheme == "https" else 80)
        server_name = (configuration.tls_server_name or host) if tls is not None else None
        shown = f"[{host}]" if ":" in host else host
        default_port = port == (443 if url.scheme == "https" else 80)
        self._host_header = shown if default_port else f"{shown}:{port}"
        self._prefix = url.path.rstrip("/")

        async def connect() -> http1.StreamProtocol:
            loop = asyncio.get_running_loop()
            _, protocol = await loop.create_connection(
                lambda: http1.StreamProtocol(loop),
                host,
                port,
                ssl=tls,
                server_hostname=server_name,
            )
            return protocol

        self._pool = http1.Pool(connect=connect, keepalive_seconds=60.0, max_idle=max_idle)

    async def request(
        self, method: str, path: str, body: bytes, *, content_type: str, timeout: float
    ) -> ApiReply:
        """``method path`` with ``body``; the answer read whole within ``timeout`` seconds."""
        if self._pool is None:
            return await _via_session(self._api, method, path, body, content_type, timeout)
        headers: dict[str, str] = dict(self._api.default_headers)
        headers["Accept"] = "application/json"
        headers["Content-Type"] = content_type
        await self._api.update_params_for_auth(headers, [], ["BearerToken"])
        lines = [f"{method} {self._prefix}{path} HTTP/1.1\r\nHost: {self._host_header}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        data = "".join(lines).encode("latin-1") + body
        async with asyncio.timeout(timeout):
            try:
                return await self._exchange(data, method=method)
            except http1.ConnectionClosed as exc:
                if not exc.reused or exc.received:
                    raise ApiConnectionError(str(exc)) from exc
            try:  # a keep-alive connection the server had closed: once more, on a new one
                return await self._exchange(data, method=method)
            except http1.HTTP1Error as exc:
                raise ApiConnectionError(str(exc)) from exc

    async def _exchange(self, data: bytes, *, method: str) -> ApiReply:
        assert self._pool is not None
        try:
            response = await self._pool.exchange(data, no_body=method == "HEAD")
            try:
                body = await response.read()
            finally:
                response.release()
        except http1.MalformedResponse as exc:
            raise ApiConnectionError(str(exc)) from exc
        except (OSError, ssl.SSLError) as exc:
            raise ApiConnectionError(str(exc) or type(exc).__name__) from exc
        retry_after = response.header(b"retry-after")
        return ApiReply(
            status=response.status,
            reason=response.reason.decode("latin-1"),
            body=body,
            retry_after=retry_after.decode("latin-1") if retry_after is not None else None,
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


async def _via_session(
    api: client.ApiClient, method: str, path: str, body: bytes, content_type: str, timeout: float
) -> ApiReply:
    try:
        response = await send_json(
            api, method, path, body, content_type=content_type, timeout=timeout
        )
        try:
            payload = await response.read()
        finally:
            response.release()
    except (aiohttp.ClientError, OSError) as exc:
        raise ApiConnectionError(str(exc) or type(exc).__name__) from exc
    return ApiReply(
        status=response.status,
        reason=response.reason or "",
        body=payload,
        retry_after=response.headers.get("Retry-After"),
    )


def _api_tls_context(configuration: client.Configuration) -> ssl.SSLContext:
    """The TLS settings kubernetes_asyncio's REST client builds from the same fields."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.disable_strict_ssl_verification:
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def _proxy_or_netrc() -> bool:
    names = {name.lower() for name in os.environ}
    if names & {"http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy", "netrc"}:
        return True
    return os.path.exists(os.path.expanduser("~/.netrc"))


def api_error_text(exc: BaseException) -> str:
    """A one-line description of an API failure (the Status message when there is one)."""
    if isinstance(exc, ApiException):
        reason = api_status_text(exc.body, exc.reason) or "unknown error"
        return f"{exc.status} {reason}".strip()
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def api_status_text(body: Any, fallback: str | None = None) -> str:
    """The message of a Kubernetes ``Status`` body; its first line (500 characters at most)
    when the body is not JSON; else ``fallback``."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body.strip():
        return fallback or ""
    try:
        decoded = json.loads(body)
    except ValueError:
        return body.strip().splitlines()[0][:500]
    if isinstance(decoded, dict):
        return str(decoded.get("message") or decoded.get("reason") or fallback or "")
    return fallback or ""
