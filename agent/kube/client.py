"""One configured API client for the process, and readable API errors.

The kubeconfig comes from ``--kubeconfig``, else ``KUBECONFIG``, else the in-cluster
service account. A single ``ApiClient`` (one aiohttp connection pool) serves the watches,
the patches and the secret reads.
"""

from __future__ import annotations

import json
import os
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from agent import shims

__all__ = [
    "GROUP",
    "PLURAL",
    "VERSION",
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
