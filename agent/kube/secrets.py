"""Secret values for ``valueFrom.secretKeyRef`` headers, read through the API.

Argo's agent reads the Secret in the taskset's namespace on every request. Here a Secret
is read once and cached for a few seconds (``ARGO_AGENT_SECRET_CACHE_SECONDS``), so a
thousand tasks using one token cost one GET. Concurrent misses for the same Secret share
one read, which runs as a task of its own: no reader owns it, so a reader that gives up
(its node's timeout fires, or the node leaves ``spec.tasks``) cancels only its own wait,
never the read the others are waiting for. Values never reach a log line or an error
message: errors name the Secret and the key, and say which permission is missing when
the API answers 403.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from agent.core import metrics
from agent.core.secrets import (
    SecretError,
    decode_secret_data,
    missing_key_message,
    not_found_message,
)
from agent.kube.client import api_error_text

__all__ = ["KubeSecretResolver"]

_MAX_CACHED = 4096


class KubeSecretResolver:
    """An :class:`agent.core.secrets.SecretResolver` backed by the API server."""

    def __init__(
        self, *, api: client.ApiClient, ttl: float = 10.0, request_timeout: float = 30.0
    ) -> None:
        self._api = client.CoreV1Api(api)
        self._ttl = ttl
        self._request_timeout = request_timeout
        self._cache: dict[tuple[str, str], tuple[float, Mapping[str, bytes]]] = {}
        self._reads: dict[tuple[str, str], asyncio.Task[Mapping[str, bytes]]] = {}

    async def get_secret_value(self, *, namespace: str, name: str, key: str) -> str:
        data = await self._secret_data(namespace, name)
        if key not in data:
            raise SecretError(missing_key_message(name, key))
        return data[key].decode("utf-8", "replace")

    async def _secret_data(self, namespace: str, name: str) -> Mapping[str, bytes]:
        cache_key = (namespace, name)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] > time.monotonic():
            metrics.SECRET_CACHE.labels(result="hit").inc()
            return cached[1]
        metrics.SECRET_CACHE.labels(result="miss").inc()
        read = self._reads.get(cache_key)
        if read is None:
            read = asyncio.create_task(self._read(namespace, name), name=f"read secret {name}")
            self._reads[cache_key] = read
            read.add_done_callback(lambda done: self._read_done(cache_key, done))
        # shield: cancelling this caller leaves the shared read running for the others.
        return await asyncio.shield(read)

    def _read_done(self, cache_key: tuple[str, str], read: asyncio.Task[object]) -> None:
        self._reads.pop(cache_key, None)
        if not read.cancelled():
            read.exception()  # retrieved: the waiters re-raise it; none may be left

    async def _read(self, namespace: str, name: str) -> Mapping[str, bytes]:
        try:
            secret = await self._api.read_namespaced_secret(
                name, namespace, _request_timeout=self._request_timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                raise SecretError(not_found_message(name)) from None
            if exc.status == 403:
                raise SecretError(
                    f"cannot read secret '{name}' in namespace '{namespace}': forbidden; the "
                    "agent's service account needs the 'get secrets' permission there"
                ) from None
            raise SecretError(f"cannot read secret '{name}': {api_error_text(exc)}") from None
        except (OSError, TimeoutError) as exc:
            raise SecretError(f"cannot read secret '{name}': {exc or type(exc).__name__}") from None
        data = decode_secret_data(name, secret.data)
        if self._ttl > 0:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[(namespace, name)] = (time.monotonic() + self._ttl, data)
        return data
