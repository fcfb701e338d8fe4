"""API reads as Argo's controller makes them: retried when transient, shared when concurrent.

The agent reads a few objects on behalf of many nodes: Secrets (header values), the owner
Workflow (its service account, its artifact repository) and ConfigMaps (the artifact
repositories). Every such read follows the same two rules, kept here once:

* :func:`retry_transient` -- Argo's ``util/retry/retry.go`` ``DefaultRetry``, which its
  ``GetSecrets`` (util/util.go) wraps around API calls: 5 attempts, 10 ms doubling (10,
  20, 40, 80 ms between them), retried only on what ``IsTransientErr``
  (util/errors/errors.go) calls transient (:func:`is_transient`: 429, 503, 504,
  ServerTimeout, etcd's leader change and timeouts, a quota 403) and on connection errors;
  any other failure ends the read at once. How a failure is worded is the caller's (each
  names the object and the permission it needs).
* :class:`SharedCache` -- values kept ``ttl`` seconds (errors never); concurrent misses
  share one computation, which runs as a task of its own so that a caller giving up (its
  node's timeout fires, or the node leaves ``spec.tasks``) cancels only its own wait,
  never the read the others are waiting for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from agent.kube.client import api_error_text

__all__ = ["DEFAULT_BACKOFF_SECONDS", "SharedCache", "is_transient", "retry_transient"]

#: util/retry/retry.go DefaultRetry: Steps 5, Duration 10 ms, Factor 2.
DEFAULT_ATTEMPTS = 5
DEFAULT_BACKOFF_SECONDS = 0.010
# apimachinery IsTooManyRequests / IsServiceUnavailable / IsTimeout / IsServerTimeout.
_TRANSIENT_STATUS = frozenset({429, 503, 504})
_TRANSIENT_REASONS = ("ServerTimeout", "etcdserver: leader changed",
                      "etcdserver: request timed out", "etcdserver: too many requests")  # fmt: skip
_MAX_CACHED = 4096

_T = TypeVar("_T")
_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


def is_transient(exc: ApiException) -> bool:
    """Whether Argo's ``IsTransientErr`` would try the failed API call again."""
    if exc.status in _TRANSIENT_STATUS:
        return True
    text = api_error_text(exc)
    return any(reason in text for reason in _TRANSIENT_REASONS) or (
        exc.status == 403 and "exceeded quota" in text
    )


async def retry_transient(
    call: Callable[[], Awaitable[_T]],
    *,
    api_error: Callable[[ApiException], Exception],
    connection_error: Callable[[str], Exception],
    backoff: float = DEFAULT_BACKOFF_SECONDS,
    retried: Callable[[], None] | None = None,
) -> _T:
    """``call()`` under ``DefaultRetry``; a failure that ends it raises ``api_error(exc)``
    or ``connection_error(text)``. ``retried`` is told of every attempt tried again."""
    delay = backoff
    for attempt in range(1, DEFAULT_ATTEMPTS + 1):
        try:
            return await call()
        except ApiException as exc:
            if attempt == DEFAULT_ATTEMPTS or not is_transient(exc):
                raise api_error(exc) from None
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            if attempt == DEFAULT_ATTEMPTS:
                raise connection_error(str(exc) or type(exc).__name__) from None
        if retried is not None:
            retried()
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


class SharedCache(Generic[_K, _V]):
    """Values kept ``ttl`` seconds; concurrent misses share one computation (see the
    module docstring)."""

    def __init__(self, *, ttl: float, what: str) -> None:
        self._ttl = ttl
        self._what = what
        self._values: dict[_K, tuple[float, _V]] = {}
        self._running: dict[_K, asyncio.Task[_V]] = {}

    def cached(self, key: _K) -> _V | None:
        entry = self._values.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return None

    async def get(self, key: _K, compute: Callable[[], Awaitable[_V]]) -> _V:
        value = self.cached(key)
        if value is not None:
            return value
        task = self._running.get(key)
        if task is None:
            task = asyncio.create_task(self._compute(key, compute), name=self._what)
            self._running[key] = task
            task.add_done_callback(lambda done: self._done(key, done))
        # shield: cancelling this caller leaves the shared computation to the others.
        return await asyncio.shield(task)

    async def _compute(self, key: _K, compute: Callable[[], Awaitable[_V]]) -> _V:
        value = await compute()
        if self._ttl > 0:
            if len(self._values) >= _MAX_CACHED:
                self._values.clear()
            self._values[key] = (time.monotonic() + self._ttl, value)
        return value

    def _done(self, key: _K, task: asyncio.Task[_V]) -> None:
        self._running.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: the waiters re-raise it; none may be left
