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

from collections.abc import Mapping

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
from agent.kube.reads import DEFAULT_BACKOFF_SECONDS, SharedCache, retry_transient

__all__ = ["KubeSecretResolver"]


class KubeSecretResolver:
    """An :class:`agent.core.secrets.SecretResolver` backed by the API server."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        ttl: float = 10.0,
        request_timeout: float = 30.0,
        backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    ) -> None:
        self._api = client.CoreV1Api(api)
        self._backoff = backoff_seconds
        self._request_timeout = request_timeout
        self._cache: SharedCache[tuple[str, str], Mapping[str, bytes]] = SharedCache(
            ttl=ttl, what="read secret"
        )

    async def get_secret_value(self, *, namespace: str, name: str, key: str) -> str:
        data = await self._secret_data(namespace, name)
        if key not in data:
            raise SecretError(missing_key_message(name, key))
        return data[key].decode("utf-8", SECRET_TEXT_ERRORS)

    async def _secret_data(self, namespace: str, name: str) -> Mapping[str, bytes]:
        cache_key = (namespace, name)
        cached = self._cache.cached(cache_key)
        if cached is not None:
            metrics.SECRET_CACHE.labels(result="hit").inc()
            return cached
        metrics.SECRET_CACHE.labels(result="miss").inc()
        return await self._cache.get(cache_key, lambda: self._read(namespace, name))

    async def _read(self, namespace: str, name: str) -> Mapping[str, bytes]:
        secret = await retry_transient(
            lambda: self._api.read_namespaced_secret(
                name, namespace, _request_timeout=self._request_timeout
            ),
            api_error=lambda exc: _read_error(exc, namespace, name),
            connection_error=lambda text: SecretError(f"cannot read secret '{name}': {text}"),
            backoff=self._backoff,
            retried=metrics.SECRET_READ_RETRIES.inc,
        )
        return decode_secret_data(name, secret.data)


def _read_error(exc: ApiException, namespace: str, name: str) -> SecretError:
    if exc.status == 404:
        return SecretError(not_found_message(name))
    if exc.status == 403:
        return SecretError(
            f"cannot read secret '{name}' in namespace '{namespace}': forbidden; the "
            "agent's service account needs the 'get secrets' permission there"
        )
    return SecretError(f"cannot read secret '{name}': {api_error_text(exc)}")
