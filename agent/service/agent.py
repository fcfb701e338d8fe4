"""The service: ``argo-http-agent run`` wires source, engine, executor and sink together.

::

    TaskSetWatcher(s) --snapshots--> Engine --templates--> Executor
          (kube/watch)                 |                  (execute/)
                                       +--results--> StatusPatcher (kube/patch)

plus the read-only HTTP API (health, readiness, metrics) on the same event loop, and the
process's signals. Two modes:

* **shared** (no workflow name): serve every taskset in the given namespaces (or all), for
  a controller running with ``disableAgentPodCreation: true``;
* **per-workflow** (``--workflow`` / ``ARGO_WORKFLOW_NAME``): Argo's contract -- watch one
  taskset and exit 0 once it is deleted or labelled ``workflows.argoproj.io/completed``.

Shutdown (SIGTERM/SIGINT, or the end of a per-workflow run): stop taking tasks, let
running requests finish within the grace period, deliver every pending result, exit 0. A
second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import os
import signal
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from agent import __version__
from agent.core import metrics
from agent.core.model import NodeResult
from agent.core.refs import TaskRef, TaskSetKey, TaskSetSnapshot
from agent.engine.claims import ClaimPolicy, new_instance_id
from agent.engine.scheduler import Engine
from agent.engine.shard import Shard
from agent.executor import Executor, ExecutorSettings, PluginEndpoint
from agent.kube.client import connect
from agent.kube.secrets import KubeSecretResolver
from agent.service.api import ApiServer, Health, create_app
from agent.service.process import handle_stop_signals
from agent.service.settings import Settings
from agent.sink.status import StatusPatcher
from agent.source.watch import TaskSetWatcher, WatchScope

__all__ = ["Agent", "serve"]

log = logging.getLogger(__name__)

_GAUGE_SECONDS = 0.25
_GC_THRESHOLDS = (20_000, 20, 20)
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class Agent:
    """One running agent: build with settings and an API client, then ``await run()``."""

    def __init__(
        self, *, settings: Settings, api: client.ApiClient, shard: Shard | None = None
    ) -> None:
        self.settings = settings
        self.shard = shard
        # ARGO_AGENT_TASK_WORKERS bounds the whole agent: workers split it.
        workers = settings.task_workers
        if shard is not None:
            workers = max(1, math.ceil(workers / shard.count))
        self._api = api
        self._stop = asyncio.Event()
        self._executor = Executor(
            settings=executor_settings(settings, task_workers=workers),
            secrets=KubeSecretResolver(
                api=api,
                ttl=settings.secret_cache_seconds,
                request_timeout=settings.api_request_timeout,
            ),
            on_progress=self._on_progress,
        )
        self.patcher = StatusPatcher(
            api=api,
            is_current=self._is_current,
            mode=settings.patch_mode,
            patch_rate=settings.patch_rate,
            max_in_flight=settings.max_patches_in_flight,
            request_timeout=settings.api_request_timeout,
        )
        self.claims = ClaimPolicy(
            sink=self.patcher,
            redelivery=settings.redelivery,
            instance_id=new_instance_id(settings.agent_id, shard=shard),
        )
        self.engine = Engine(
            runner=self._executor,
            sink=self.patcher,
            max_in_flight=workers,
            claims=self.claims,
            on_result=_count_result,
            owns=shard.owns if shard is not None else None,
        )
        self.watchers = [
            TaskSetWatcher(
                api=api,
                scope=scope,
                on_object=self._on_object,
                on_deleted=self._on_deleted,
                on_listed=functools.partial(self._on_listed, scope),
                watch_timeout=settings.watch_timeout,
                request_timeout=settings.api_request_timeout,
            )
            for scope in scopes(settings)
        ]
        self.exit_reason = ""

    # -- probes ----------------------------------------------------------------------

    def liveness(self) -> Health:
        return Health(ok=True)

    def readiness(self) -> Health:
        if self._stop.is_set():
            return Health(ok=False, reason="shutting down")
        closed = [w for w in self.watchers if not w.established]
        if closed:
            detail = "; ".join(w.last_error for w in closed if w.last_error)
            return Health(ok=False, reason=f"{len(closed)} watch(es) not established: {detail}")
        refused = self.patcher.refused
        if refused:
            return Health(ok=False, reason=refused)
        return Health(ok=True)

    def stop(self) -> None:
        self._stop.set()

    # -- the run ---------------------------------------------------------------------

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.engine.run(), name="engine")]
        tasks.append(asyncio.create_task(self._sample_gauges(), name="gauges"))
        tasks += [
            asyncio.create_task(w.run(), name=f"watch {i}") for i, w in enumerate(self.watchers)
        ]
        try:
            await self._stop.wait()
            log.info(
                "stopping: %s",
                self.exit_reason or "signal",
                extra={"in_flight": self.engine.in_flight, "queued": self.engine.queued},
            )
            for task in tasks[1:]:
                task.cancel()  # watches first: no new work arrives while we drain
            await self.engine.drain(grace=self.settings.shutdown_grace)
            delivered = await self.patcher.flush(timeout=self.settings.shutdown_grace)
            if not delivered:
                log.error(
                    "shutdown: %d result(s) could not be delivered in time", self.patcher.pending
                )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.patcher.aclose()
            await self._executor.aclose()

    async def _sample_gauges(self) -> None:
        # Sampled, not set on every task: with --processes each set is a write to a shared
        # file, and a scrape every few seconds needs no finer grain than this.
        while True:
            metrics.TASKS_IN_FLIGHT.set(self.engine.in_flight)
            metrics.TASKS_QUEUED.set(self.engine.queued)
            metrics.TASKSETS_WATCHED.set(self.engine.tasksets)
            await asyncio.sleep(_GAUGE_SECONDS)

    # -- source callbacks --------------------------------------------------------------

    def _on_object(self, obj: Mapping[str, Any]) -> None:
        snapshot = TaskSetSnapshot.from_object(obj)
        if self.settings.per_workflow and snapshot.completed:
            self.exit_reason = "taskset completed"
            self._stop.set()
        self.engine.observe(snapshot)

    def _on_deleted(self, key: TaskSetKey) -> None:
        self.engine.forget(key)
        if self.settings.per_workflow:
            self.exit_reason = "taskset deleted"
            self._stop.set()

    def _on_listed(self, scope: WatchScope, keys: frozenset[TaskSetKey]) -> None:
        for key in self.engine.known():
            if key not in keys and (scope.namespace is None or key.namespace == scope.namespace):
                self._on_deleted(key)

    def _on_progress(self, ref: TaskRef, result: NodeResult) -> None:
        self.engine.progress(ref, result)

    def _is_current(self, key: TaskSetKey, node_id: str) -> bool:
        return self.engine.is_current(key, node_id)


def _count_result(ref: TaskRef, result: NodeResult) -> None:
    metrics.child(metrics.TASKS_FINISHED, str(result.phase) or "unknown").inc()


def executor_settings(settings: Settings, *, task_workers: int | None = None) -> ExecutorSettings:
    plugins = tuple(
        PluginEndpoint(name=name, address=address)
        for name, address in zip(settings.plugin_names, settings.plugin_addresses, strict=True)
    )
    return ExecutorSettings(
        default_timeout_seconds=settings.default_timeout,
        max_result_bytes=settings.max_result_bytes,
        ca_dir=settings.ca_dir,
        deny_networks=tuple(settings.deny_networks),
        plugins=plugins,
        # Go's client has no per-host cap: every task in flight may hit the same host.
        max_connections=task_workers or settings.task_workers,
        max_connections_per_host=task_workers or settings.task_workers,
        transport=settings.transport,
        http2=settings.http2 == "on",
    )


def scopes(settings: Settings) -> list[WatchScope]:
    """The watches this process runs, one per namespace (or one for all namespaces)."""
    if settings.all_namespaces:
        return [WatchScope(namespace=None, instance_id=settings.instance_id)]
    namespaces = settings.namespaces or [_own_namespace()]
    name = settings.workflow if settings.per_workflow else None
    return [
        WatchScope(namespace=ns, name=name, instance_id=settings.instance_id) for ns in namespaces
    ]


def _own_namespace() -> str:
    for env in ("ARGO_AGENT_NAMESPACE", "POD_NAMESPACE"):
        if os.environ.get(env):
            return os.environ[env]
    try:
        return _SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


async def serve(
    settings: Settings,
    *,
    shard: Shard | None = None,
    companion: Callable[[Agent], Coroutine[Any, Any, None]] | None = None,
) -> int:
    """Run the agent until a signal or the end of a per-workflow run.

    Alone (``shard`` None) the process serves the HTTP API and owns SIGTERM/SIGINT. As a
    worker of :mod:`agent.service.supervisor` it serves no API, stops on SIGTERM only (the
    supervisor relays a terminal's Ctrl-C), and runs ``companion`` beside the agent.
    """
    metrics.BUILD.info({"version": __version__})
    try:
        api = await connect(
            kubeconfig=settings.kubeconfig, pool_size=settings.max_patches_in_flight + 8
        )
    except Exception as exc:
        log.error("cannot configure the Kubernetes client: %s", exc)
        return 2
    agent = Agent(settings=settings, api=api, shard=shard)
    server: ApiServer | None = None
    if shard is None:
        server = ApiServer.for_app(
            create_app(liveness=agent.liveness, readiness=agent.readiness),
            host=settings.metrics_host,
            port=settings.metrics_port,
        )

    def on_stop(signum: signal.Signals) -> None:
        agent.exit_reason = f"signal {signum.name}"
        agent.stop()

    if shard is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor relays a Ctrl-C
    remove_signal_handlers = handle_stop_signals(
        (signal.SIGTERM, signal.SIGINT) if shard is None else (signal.SIGTERM,), stop=on_stop
    )
    side_tasks = []
    if server is not None:
        side_tasks.append(asyncio.create_task(server.serve(), name="http api"))
    if companion is not None:
        side_tasks.append(asyncio.create_task(companion(agent), name="companion"))
    # Everything allocated so far lives for the whole run: keep the cyclic collector from
    # scanning it again and again under load.
    gc.freeze()
    # Every task allocates a few hundred short-lived containers (requests, responses,
    # coroutines, decoded events) that reference counting frees; at CPython's default of a
    # young-generation pass every 700 allocations the collector cost ~9% of the CPU at full
    # load (loadtest/bench.py, same run). 20,000 still bounds the young generation to a few
    # MB; cycles are still collected, a little later.
    gc.set_threshold(*_GC_THRESHOLDS)
    log.info(
        "agent started",
        extra={
            "version": __version__,
            "mode": "per-workflow" if settings.per_workflow else "shared",
            "instance": agent.claims.instance_id,
            "redelivery": settings.redelivery,
            "scopes": [str(s) for s in scopes(settings)],
            **(
                {"worker": str(shard)}
                if shard is not None
                else {"metrics": f"{settings.metrics_host}:{settings.metrics_port}"}
            ),
        },
    )
    try:
        await agent.run()
    finally:
        if server is not None:
            server.should_exit = True
        for task in side_tasks:
            if task.get_name() == "companion":
                task.cancel()
        for task in side_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await api.close()
        remove_signal_handlers()
    log.info("agent stopped", extra={"reason": agent.exit_reason})
    return 0
