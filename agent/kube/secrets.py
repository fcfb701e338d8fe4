"""Secret values for ``valueFrom.secretKeyRef`` headers, read through the API.

Argo's agent reads the Secret in the taskset's namespace on every request. Here a Secret
is read once and cached for a few seconds (``ARGO_AGENT_SECRET_CACHE_SECONDS``), so a
thousand tasks using one token cost one GET; concurrent misses for the same Secret share
one request. Values never reach a log line or an error message: errors name the Secret
and the key, and say which permission is missing when the API answers 403.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Mapping

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from agent import metrics
from agent.execute import SecretError
from agent.execute.secrets import missing_key_message
from agent.kube.client import api_error_text

__all__ = ["KubeSecretResolver"]

_MAX_CACHED = 4096


class KubeSecretResolver:
    """An :class:`agent.execute.SecretResolver` backed by the API server."""

    def __init__(
        self, *, api: client.ApiClient, ttl: float = 10.0, request_timeout: float = 30.0
    ) -> None:
        self._api = client.CoreV1Api(api)
        self._ttl = ttl
        self._request_timeout = request_timeout
        self._cache: dict[tuple[str, str], tuple[float, Mapping[str, bytes]]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[Mapping[str, bytes]]] = {}

    async def get_secret_value(self, *, namespace: str, name: str, key: str) -> str:
        data = await self._secret_data(namespace, name)
        if key not in data:
            raise SecretError(missing_key_message(name, key))
        return data[key].decode("utf-8", "replace")

    async def _secret_data(self, namespace: str, name: str) -> Mapping[str, bytes]:
        cache_key = (namespace, name)
        now = time.monotonic()
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] > now:
            metrics.SECRET_CACHE.labels(result="hit").inc()
            return cached[1]
        metrics.SECRET_CACHE.labels(result="miss").inc()
        waiting = self._inflight.get(cache_key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[Mapping[str, bytes]] = asyncio.get_running_loop().create_future()
        self._inflight[cache_key] = future
        try:
            data = await self._read(namespace, name)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(data)
            if self._ttl > 0:
                if len(self._cache) >= _MAX_CACHED:
                    self._cache.clear()
                self._cache[cache_key] = (time.monotonic() + self._ttl, data)
            return data
        finally:
            del self._inflight[cache_key]

    async def _read(self, namespace: str, name: str) -> Mapping[str, bytes]:
        try:
            secret = await self._api.read_namespaced_secret(
                name, namespace, _request_timeout=self._request_timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                raise SecretError(f"secret '{name}' not found in namespace '{namespace}'") from None
            if exc.status == 403:
                raise SecretError(
                    f"cannot read secret '{name}' in namespace '{namespace}': forbidden; the "
                    "agent's service account needs the 'get secrets' permission there"
                ) from None
            raise SecretError(f"cannot read secret '{name}': {api_error_text(exc)}") from None
        except (OSError, TimeoutError) as exc:
            raise SecretError(f"cannot read secret '{name}': {exc or type(exc).__name__}") from None
        decoded: dict[str, bytes] = {}
        for key, value in (secret.data or {}).items():
            try:
                decoded[key] = base64.b64decode(value or "")
            except (binascii.Error, ValueError):
                raise SecretError(f"secret '{name}' key '{key}' is not valid base64") from None
        return decoded
