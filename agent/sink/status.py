"""The sink: node results coalesced into JSON merge patches on the status subresource.

The wire format is Argo's agent's: the same document, compact JSON as Go writes it (Go
also escapes ``<>&`` inside strings and sorts the node IDs)::

    PATCH .../workflowtasksets/<name>/status
    Content-Type: application/merge-patch+json
    {"status":{"nodes":{"<node id>":{"phase":"Succeeded","outputs":{"result":"..."}}}}}

What differs is *when* and *how hard*:

* **Eager, coalesced.** Argo waits for a 10 s tick. Here each taskset has at most one
  patch in flight; a result is sent at once when none is, and results that finish while
  one is in flight ride together in the next. Light load gets one round trip of latency,
  heavy load gets large batches. ``mode="tick"`` reproduces Argo's timing for comparison.
* **Never lost.** Transient failures (429 honouring ``Retry-After``, 5xx, connection
  errors, and 401/403, which an RBAC fix cures) are retried with capped exponential backoff
  until the patch lands or its nodes leave ``spec.tasks``.
* **Never silent.** Argo's agent turns a non-transient patch error (403 among them) into
  ``Error`` for the whole batch (agent.go ``patchWorker``); here a 401/403 keeps the
  results and retries, and says so: :attr:`StatusPatcher.refused` names the refusal (so
  ``/readyz`` fails with it until a patch of that taskset lands), it is logged at error
  level at most once per :data:`REFUSED_LOG_SECONDS`, and counted in
  ``argo_agent_patch_forbidden_total{code}``. A 403 for an exceeded quota is not an RBAC
  refusal (Argo counts it transient) and is retried like a 429.
* **Isolated.** A 413/422/400 (a result too large, a value the API rejects) splits the
  batch in halves until the offending node is alone; only it becomes ``Error`` with
  Argo's message, its neighbours are delivered (Argo errors the whole batch).
* **Never stale.** Nodes that left ``spec.tasks`` are filtered out before every attempt.
* 404 means the taskset is gone (the workflow was deleted): its results are dropped,
  counted in ``argo_agent_results_dropped_total`` and logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from kubernetes_asyncio import client

from agent.core import jsoncodec, metrics
from agent.core.model import NodePhase, NodeResult, dump
from agent.core.refs import TaskRef, TaskSetKey
from agent.kube.client import (
    GROUP,
    PLURAL,
    VERSION,
    ApiConnectionError,
    ApiWire,
    api_status_text,
)

__all__ = ["StatusPatcher"]

log = logging.getLogger(__name__)

PATCH_ERROR_PREFIX = (
    "HTTP request completed successfully but an error occurred when patching its result: "
)
_SPLITTABLE = frozenset({400, 413, 422})
_REFUSED = frozenset({401, 403})
REFUSED_LOG_SECONDS = 60.0
_NODE_FIELDS = ("phase", "message", "outputs", "progress")


class _TasksetGone(Exception):
    pass


class _Rejected(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


@dataclass(slots=True)
class _Pending:
    result: NodeResult
    # A node we already wrote (a claim): fields absent from the final result must be
    # cleared with explicit nulls, or the merge patch would keep the claim's message.
    overwrite: bool = False
    delivered: list[asyncio.Future[None]] = field(default_factory=list)
    # When the result was handed to the sink (the loop's clock): the start of its
    # argo_agent_result_latency_seconds, which ends when a patch carrying it lands.
    ready_at: float = 0.0


class StatusPatcher:
    """A :class:`agent.core.ports.ResultSink` that patches ``status.nodes``."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        is_current: Callable[[TaskSetKey, str], bool],
        mode: Literal["eager", "tick"] = "eager",
        patch_rate: float = 10.0,
        max_in_flight: int = 16,
        request_timeout: float = 30.0,
        retry_base: float = 1.0,
        retry_cap: float = 30.0,
    ) -> None:
        self._wire = ApiWire(api)
        self._is_current = is_current
        self._mode = mode
        self._patch_rate = patch_rate
        self._slots = asyncio.Semaphore(max_in_flight)
        self._request_timeout = request_timeout
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._pending: dict[TaskSetKey, dict[str, _Pending]] = {}
        self._flushers: dict[TaskSetKey, asyncio.Task[None]] = {}
        self._drained = asyncio.Event()
        self._drained.set()
        self._flush_now = asyncio.Event()
        # Tasksets whose last patch was refused (401/403): code and the API's text.
        self._refused: dict[TaskSetKey, tuple[int, str]] = {}
        self._refused_logged_at: float | None = None

    @property
    def refused(self) -> str:
        """Why patches are being refused (401/403), or ``""``: a readiness reason."""
        if not self._refused:
            return ""
        key, (code, text) = next(iter(self._refused.items()))
        what = "unauthorised" if code == 401 else "forbidden"
        return (
            f"status patches {what} ({code}) for {len(self._refused)} taskset(s), e.g. "
            f"{key.namespace}/{key.name}: {text}; results are kept and retried"
        )

    # -- ResultSink ------------------------------------------------------------------

    def submit(self, ref: TaskRef, result: NodeResult, *, overwrite: bool = False) -> None:
        self._enqueue(ref, result, overwrite=overwrite, future=None)

    def submit_and_wait(self, ref: TaskRef, result: NodeResult) -> asyncio.Future[None]:
        """Queue a result; the future completes once it is in the API (fails if dropped)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(ref, result, overwrite=False, future=future)
        return future

    def discard(self, key: TaskSetKey, node_ids: frozenset[str] | None = None) -> None:
        if node_ids is None:
            self._refused.pop(key, None)  # nothing of it left to deliver
        batch = self._pending.get(key)
        if not batch:
            return
        doomed = list(batch) if node_ids is None else [n for n in node_ids if n in batch]
        for node_id in doomed:
            pending = batch.pop(node_id)
            _settle(pending, dropped=True)
        if doomed:
            metrics.RESULTS_DROPPED.labels(reason="node_removed").inc(len(doomed))

    # -- lifecycle -------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return sum(len(b) for b in self._pending.values())

    async def flush(self, *, timeout: float | None = None) -> bool:
        """Wait until every queued result is delivered (or dropped); False on timeout."""
        self._mode = "eager"
        self._flush_now.set()  # cut a waiting tick short
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        tasks = list(self._flushers.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._wire.close()

    # -- internals -------------------------------------------------------------------

    def _enqueue(
        self,
        ref: TaskRef,
        result: NodeResult,
        *,
        overwrite: bool,
        future: asyncio.Future[None] | None,
    ) -> None:
        key = ref.key
        batch = self._pending.setdefault(key, {})
        previous = batch.get(ref.node_id)
        pending = _Pending(result, overwrite=overwrite, ready_at=asyncio.get_running_loop().time())
        if previous is not None:  # superseded before it was sent: the newer result wins
            pending.overwrite |= previous.overwrite
            pending.delivered.extend(previous.delivered)
        if future is not None:
            pending.delivered.append(future)
        batch[ref.node_id] = pending
        self._drained.clear()
        self._ensure_flusher(key)

    def _ensure_flusher(self, key: TaskSetKey) -> None:
        if key not in self._flushers:
            self._flushers[key] = asyncio.create_task(self._flush_loop(key), name=f"patch {key}")

    async def _flush_loop(self, key: TaskSetKey) -> None:
        try:
            if self._mode == "tick":  # Argo's timing, for comparisons: wait a whole tick
                try:
                    await asyncio.wait_for(self._flush_now.wait(), self._patch_rate)
                except TimeoutError:
                    pass
            while True:
                batch = self._pending.get(key)
                if not batch:
                    break
                self._pending[key] = {}
                try:
                    async with self._slots:
                        await self._deliver(key, batch)
                except asyncio.CancelledError:
                    # Not delivered: put back what is not superseded, for a later flush.
                    newer = self._pending.setdefault(key, {})
                    for node_id, pending in batch.items():
                        newer.setdefault(node_id, pending)
                    raise
        finally:
            if self._flushers.get(key) is asyncio.current_task():
                del self._flushers[key]
            if not self._pending.get(key):
                self._pending.pop(key, None)
            if not self._flushers and not any(self._pending.values()):
                self._drained.set()

    async def _deliver(self, key: TaskSetKey, batch: dict[str, _Pending]) -> None:
        try:
            await self._patch_with_retry(key, batch)
        except _TasksetGone:
            self._refused.pop(key, None)
            log.warning(
                "taskset deleted; dropping %d result(s)", len(batch), extra=key.log_context()
            )
            metrics.RESULTS_DROPPED.labels(reason="taskset_deleted").inc(len(batch))
            for pending in batch.values():
                _settle(pending, dropped=True)
            return
        except _Rejected as exc:
            live = {n: p for n, p in batch.items() if self._is_current(key, n)}
            if len(live) > 1:
                items = list(live.items())
                half = len(items) // 2
                await self._deliver(key, dict(items[:half]))
                await self._deliver(key, dict(items[half:]))
                return
            for node_id, pending in live.items():
                if pending.result.phase == NodePhase.ERROR and pending.result.message.startswith(
                    PATCH_ERROR_PREFIX
                ):
                    log.error(
                        "the API rejects even the error result; dropping it: %s",
                        exc,
                        extra={**key.log_context(), "node": node_id},
                    )
                    metrics.RESULTS_DROPPED.labels(reason="rejected").inc()
                    _settle(pending, dropped=True)
                    continue
                log.warning(
                    "the API rejected a result; reporting Error instead: %s",
                    exc,
                    extra={**key.log_context(), "node": node_id},
                )
                error = NodeResult(phase=NodePhase.ERROR, message=PATCH_ERROR_PREFIX + str(exc))
                replacement = _Pending(
                    error, overwrite=True, delivered=pending.delivered, ready_at=pending.ready_at
                )
                await self._deliver(key, {node_id: replacement})
            return
        for pending in batch.values():
            _settle(pending, dropped=False)

    async def _patch_with_retry(self, key: TaskSetKey, batch: dict[str, _Pending]) -> None:
        # A plain loop, not a retry library: this runs once per patch (once per result in
        # the one-task-per-taskset shape), and building a retrying object per call cost
        # about a tenth of the patch's CPU.
        attempt = 0
        while True:
            attempt += 1
            for node_id in [n for n in batch if not self._is_current(key, n)]:
                _settle(batch.pop(node_id), dropped=True)
                metrics.RESULTS_DROPPED.labels(reason="node_removed").inc()
            if not batch:
                self._refused.pop(key, None)  # nothing of it left to deliver
                return
            try:
                await self._patch_once(key, batch)
                return
            except _Transient as exc:
                await asyncio.sleep(self._wait(exc, attempt))

    def _wait(self, exc: _Transient, attempt: int) -> float:
        backoff = min(self._retry_cap, self._retry_base * 2 ** (attempt - 1))
        delay = exc.retry_after if exc.retry_after is not None else backoff
        if exc.refused:
            return delay  # logged by _note_refused, rate-limited
        log.warning("status patch failed (attempt %d), retrying in %.2fs: %s", attempt, delay, exc)
        return delay

    def _note_refused(self, key: TaskSetKey, status: int, text: str) -> None:
        self._refused[key] = (status, text)
        metrics.PATCH_FORBIDDEN.labels(code=str(status)).inc()
        now = asyncio.get_running_loop().time()
        last = self._refused_logged_at
        if last is None or now - last >= REFUSED_LOG_SECONDS:
            self._refused_logged_at = now
            log.error(
                "status patch refused (%d): %s; the results are kept and retried until the "
                "agent's service account may patch workflowtasksets/status (logged at most "
                "once a minute; see argo_agent_patch_forbidden_total and /readyz)",
                status,
                text,
                extra=key.log_context(),
            )
        raise _Transient(status, text, refused=True)

    async def _patch_once(self, key: TaskSetKey, batch: dict[str, _Pending]) -> None:
        nodes: dict[str, Any] = {}
        for node_id, pending in batch.items():
            body = dump(pending.result)
            if pending.overwrite:
                for name in _NODE_FIELDS:
                    body.setdefault(name, None)
            nodes[node_id] = body
        started = asyncio.get_running_loop().time()
        path = (
            f"/apis/{GROUP}/{VERSION}/namespaces/{quote(key.namespace, safe='')}"
            f"/{PLURAL}/{quote(key.name, safe='')}/status"
        )
        try:
            reply = await self._wire.request(
                "PATCH",
                path,
                jsoncodec.dumps({"status": {"nodes": nodes}}),
                content_type="application/merge-patch+json",
                timeout=self._request_timeout,
            )  # the echoed taskset is read and dropped, never decoded
        except (ApiConnectionError, TimeoutError) as exc:
            metrics.PATCH_ERRORS.labels(code="connection").inc()
            raise _Transient(0, f"connection error: {exc or type(exc).__name__}") from exc
        status = reply.status
        if status >= 300:
            text = api_status_text(reply.body, reply.reason)
            metrics.PATCH_ERRORS.labels(code=str(status)).inc()
            if status == 404:
                raise _TasksetGone(text)
            if status in _SPLITTABLE:
                raise _Rejected(status, text)
            if status in _REFUSED and "exceeded quota" not in text:
                self._note_refused(key, status, text)
            raise _Transient(status, text, retry_after=reply.retry_after)
        self._refused.pop(key, None)
        now = asyncio.get_running_loop().time()
        metrics.PATCH_SECONDS.observe(now - started)
        metrics.PATCH_BATCHES.inc()
        metrics.PATCH_NODES.inc(len(nodes))
        for pending in batch.values():
            if pending.result.fulfilled:  # results only: a claim is no result
                metrics.RESULT_LATENCY_SECONDS.observe(now - pending.ready_at)


class _Transient(Exception):
    """Worth retrying: the same patch may land later."""

    def __init__(
        self, status: int, text: str, *, retry_after: str | None = None, refused: bool = False
    ) -> None:
        super().__init__(f"{status} {text}" if status else text)
        self.status = status
        self.retry_after = _seconds(retry_after)
        self.refused = refused


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _settle(pending: _Pending, *, dropped: bool) -> None:
    for future in pending.delivered:
        if not future.done():
            if dropped:
                future.set_exception(LookupError("result dropped: node or taskset gone"))
            else:
                future.set_result(None)
