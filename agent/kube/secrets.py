"""Secret values for ``valueFrom.secretKeyRef`` headers, read through the API.

Argo's agent reads the Secret in the taskset's namespace on every request. Here a Secret
is read once and cached for a few seconds (``ARGO_AGENT_SECRET_CACHE_SECONDS``), so a
thousand tasks using one token cost one GET. Concurrent misses for the same Secret share
one read, which runs as a task of its own: no reader owns it, so a reader that gives up
(its node's timeout fires, or the node leaves ``spec.tasks``) cancels only its own wait,
never the read the others are waiting for. Values never reach a log line or an error
message: errors name the Secret and the key, and say which permission is missing when
the API answers 403.

**Retries, as Argo's ``GetSecrets`` (util/util.go).** A read that fails with a transient
error (429, 503, 504, ServerTimeout, a connection error: util/errors/errors.go
``IsTransientErr``) is tried again, 5 attempts with 10, 20, 40, 80 ms between them
(util/retry/retry.go ``DefaultRetry``); other errors (403, 404 ...) fail at once. The
retries run inside the shared read, so one reader giving up cancels none of them.

**Raw bytes.** Argo sends the Secret's bytes as the header value (``string(secret)``),
whatever they are. The value is returned as the bytes decoded with UTF-8 and
``surrogateescape`` (:data:`agent.core.secrets.SECRET_TEXT_ERRORS`): valid UTF-8 reads as
itself, and encoding the text back the same way gives exactly the Secret's bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from agent.core import metrics
from agent.core.secrets import (
    SECRET_TEXT_ERRORS,
    SecretError,
    decode_secret_data,
    missing_key_message,
    not_found_message,
)
from agent.kube.client import api_error_text

__all__ = ["KubeSecretResolver", "is_transient"]

_MAX_CACHED = 4096
# util/retry/retry.go DefaultRetry: RETRY_BACKOFF_STEPS 5, _DURATION 10ms, _FACTOR 2.
_READ_ATTEMPTS = 5
_READ_BACKOFF_SECONDS = 0.010
# apimachinery IsTooManyRequests / IsServiceUnavailable / IsTimeout / IsServerTimeout.
_TRANSIENT_STATUS = frozenset({429, 503, 504})
_TRANSIENT_REASONS = ("ServerTimeout", "etcdserver: leader changed",
                      "etcdserver: request timed out", "etcdserver: too many requests")  # fmt: skip


class KubeSecretResolver:
    """An :class:`agent.core.secrets.SecretResolver` backed by the API server."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        ttl: float = 10.0,
        request_timeout: float = 30.0,
        backoff_seconds: float = _READ_BACKOFF_SECONDS,
    ) -> None:
        self._api = client.CoreV1Api(api)
        self._backoff = backoff_seconds
        self._ttl = ttl
        self._request_timeout = request_timeout
        self._cache: dict[tuple[str, str], tuple[float, Mapping[str, bytes]]] = {}
        self._reads: dict[tuple[str, str], asyncio.Task[Mapping[str, bytes]]] = {}

    async def get_secret_value(self, *, namespace: str, name: str, key: str) -> str:
        data = await self._secret_data(namespace, name)
        if key not in data:
            raise SecretError(missing_key_message(name, key))
        return data[key].decode("utf-8", SECRET_TEXT_ERRORS)

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
        delay = self._backoff
        for attempt in range(1, _READ_ATTEMPTS + 1):
            try:
                secret = await self._api.read_namespaced_secret(
                    name, namespace, _request_timeout=self._request_timeout
                )
                break
            except ApiException as exc:
                if attempt == _READ_ATTEMPTS or not is_transient(exc):
                    raise _read_error(exc, namespace, name) from None
            except (OSError, TimeoutError, aiohttp.ClientError) as exc:
                if attempt == _READ_ATTEMPTS:
                    text = str(exc) or type(exc).__name__
                    raise SecretError(f"cannot read secret '{name}': {text}") from None
            metrics.SECRET_READ_RETRIES.inc()
            await asyncio.sleep(delay)
            delay *= 2
        data = decode_secret_data(name, secret.data)
        if self._ttl > 0:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[(namespace, name)] = (time.monotonic() + self._ttl, data)
        return data


def is_transient(exc: ApiException) -> bool:
    """Whether Argo's ``IsTransientErr`` would try the failed API call again."""
    if exc.status in _TRANSIENT_STATUS:
        return True
    text = api_error_text(exc)
    return any(reason in text for reason in _TRANSIENT_REASONS) or (
        exc.status == 403 and "exceeded quota" in text
    )


def _read_error(exc: ApiException, namespace: str, name: str) -> SecretError:
    if exc.status == 404:
        return SecretError(not_found_message(name))
    if exc.status == 403:
        return SecretError(
            f"cannot read secret '{name}' in namespace '{namespace}': forbidden; the "
            "agent's service account needs the 'get secrets' permission there"
        )
    return SecretError(f"cannot read secret '{name}': {api_error_text(exc)}")
