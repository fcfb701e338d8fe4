"""One agent process: ``argo-http-agent run`` wires source, engine, executor and sink together.

::

    TaskSetWatcher(s) --snapshots--> Engine --templates--> Executor
      (source/watch)                   |                  (executor/)
                                       +--results--> StatusPatcher (sink/status)

plus the read-only HTTP API (health, readiness, metrics) on the same event loop, and the
process's signals. Two modes:

* **shared** (no workflow name): serve every taskset in the given namespaces (or all), for
  a controller running with ``disableAgentPodCreation: true``;
* **per-workflow** (``--workflow`` / ``ARGO_WORKFLOW_NAME``): Argo's contract -- watch one
  taskset and exit 0 once it is deleted or labelled ``workflows.argoproj.io/completed``.

In shared mode with ``--membership lease`` (the default) the agent is one member of a group
of replicas (:mod:`agent.membership.lease`, docs/replicas.md): it holds a Lease, watches the
group's, and its engine runs only the nodes the live members' view gives it. Per-workflow
mode needs only Argo's agent RBAC, so it never uses Leases.

Shutdown (SIGTERM/SIGINT, or the end of a per-workflow run): stop taking tasks, let
running requests finish within the grace period, deliver every pending result, exit 0. A
second signal exits at once. The order is the point, so each step is one function below:

1. the member leaves its group (its Lease says "draining": the others take over its queued
   work while its claims on what it runs stay honoured), and the watches stop: no new work
   arrives while the rest drains;
2. the engine drains (``--shutdown-grace``), then the patcher flushes (the same grace);
3. the member's Lease is deleted (it is gone for the others);
4. the HTTP API and the companion (a worker's reporter) stop: until here ``/readyz``
   answers "shutting down" and the companion can still send the final counts;
5. the executor's and the patcher's clients close, then the Kubernetes API client; this
   last step runs to its end even if the process's main task is cancelled meanwhile.

The tasks of a run are named handles in task groups, so what is cancelled when is written
down, not found by position or name.
"""

from __future__ import annotations

import asyncio
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
from agent.artifacts.store import open_store
from agent.core import jsoncodec, metrics
from agent.core.model import NodeResult
from agent.core.refs import TaskRef, TaskSetKey, TaskSetSnapshot
from agent.core.secrets import SecretAuthority
from agent.engine.claims import ClaimPolicy, new_instance_id
from agent.engine.ownership import Ownership
from agent.engine.scheduler import Engine
from agent.engine.shard import Shard
from agent.executor.executor import Executor
from agent.executor.policy import NamespacePolicies
from agent.executor.settings import ExecutorSettings, PluginEndpoint
from agent.kube.artifacts import ClusterRepositoryLookup
from agent.kube.authority import WorkflowSecretAuthority
from agent.kube.client import connect
from agent.kube.secrets import KubeSecretResolver
from agent.membership.lease import LeaseMembership
from agent.membership.lending import Borrower, Lender
from agent.service.api import ApiServer, Health, create_app
from agent.service.process import handle_stop_signals
from agent.service.settings import Settings
from agent.sink.status import StatusPatcher
from agent.source.policies import PolicyWatcher
from agent.source.watch import TaskSetReader, TaskSetWatcher, WatchScope

__all__ = ["Agent", "serve"]

log = logging.getLogger(__name__)

#: What runs beside a worker's agent for as long as it runs (the supervisor's reporter).
Companion = Callable[["Agent"], Coroutine[Any, Any, None]]

_GAUGE_SECONDS = 1.0
_GC_THRESHOLDS = (20_000, 20, 20)
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: The exit code for an unusable configuration (no API client can be built).
_CONFIG_ERROR = 2


class Agent:
    """One running agent: build with settings and an API client, ``await run()``, then
    ``await aclose()``."""

    def __init__(
        self,
        *,
        settings: Settings,
        api: client.ApiClient,
        shard: Shard | None = None,
        link: str | None = None,
    ) -> None:
        self.settings = settings
        # With a link (the pod's lending socket), worker 1/N is the primary and the others
        # are helpers (agent/membership/lending.py); without, workers split by hashing.
        primary = link is not None and shard is not None and shard.index == 0
        helper = link is not None and shard is not None and shard.index > 0
        # ARGO_AGENT_TASK_WORKERS bounds the whole agent: workers split it.
        workers = settings.task_workers
        if shard is not None:
            workers = max(1, math.ceil(workers / shard.count))
        self._stop = asyncio.Event()
        # Namespace outbound policies, when on: read from the agent's own namespace.
        self.policies = NamespacePolicies() if settings.outbound_policies == "on" else None
        self.policy_watcher = (
            None
            if self.policies is None
            else PolicyWatcher(
                api=api,
                namespace=_own_namespace(),
                policies=self.policies,
                watch_timeout=settings.watch_timeout,
                request_timeout=settings.api_request_timeout,
            )
        )
        # One artifact store (its clients and pools) for every node of this process.
        self.store = open_store()
        self._executor = Executor(
            settings=executor_settings(settings, task_workers=workers),
            secrets=KubeSecretResolver(
                api=api,
                ttl=settings.secret_cache_seconds,
                request_timeout=settings.api_request_timeout,
            ),
            authority=secret_authority(settings, api),
            on_progress=self._on_progress,
            namespace_policies=self.policies,
            store=self.store,
            repositories=ClusterRepositoryLookup(
                api=api,
                controller_namespace=settings.controller_namespace,
                controller_configmap=settings.controller_configmap,
                ttl=settings.artifact_repository_cache_seconds,
                request_timeout=settings.api_request_timeout,
            ),
        )
        self.patcher = StatusPatcher(
            api=api,
            is_current=self._is_current,
            mode=settings.patch_mode,
            patch_rate=settings.patch_rate,
            max_in_flight=settings.max_patches_in_flight,
            request_timeout=settings.api_request_timeout,
        )
        identity = new_instance_id(settings.agent_id, worker=shard.index if shard else None)
        self.claims = ClaimPolicy(
            sink=self.patcher, redelivery=settings.redelivery, instance_id=identity
        )
        self.membership: LeaseMembership | None = None
        ownership: Ownership | None = None
        reader: TaskSetReader | None = None
        if helper:
            # Owns what its primary lends it, and names the primary in its claims: the
            # identity and the fence come from the primary once connected.
            ownership = Ownership(me="", owners=())
            ownership.granted = set()
        elif settings.members == "lease":
            # The settle time: long enough for every member to see a change of the group
            # (its watch, else its next re-list a renew interval later) and to write its
            # handover claims (docs/replicas.md).
            ownership = Ownership(me=identity, owners=(), settle=settings.lease_duration / 2)
            self.membership = LeaseMembership(
                api=api,
                namespace=lease_namespace(settings),
                group=settings.group,
                identity=identity,
                duration=settings.lease_duration,
                ownership=ownership,
                request_timeout=min(settings.api_request_timeout, settings.lease_duration / 3),
            )
            reader = TaskSetReader(api=api, request_timeout=settings.api_request_timeout)
        elif primary:
            ownership = Ownership(me=identity)  # the pod alone, without Leases
        elif shard is not None:
            ownership = shard.static_ownership()
        if primary and reader is None:
            # Tasksets a helper gave back are read afresh before they run here.
            reader = TaskSetReader(api=api, request_timeout=settings.api_request_timeout)
        self.ownership = ownership
        self.reader = reader
        self._gained = asyncio.Event()
        if ownership is not None:
            ownership.subscribe(self._gained.set)
        self.engine = Engine(
            runner=self._executor,
            sink=self.patcher,
            max_in_flight=workers,
            claims=self.claims,
            on_result=_count_result,
            ownership=ownership,
            reader=reader,
            recheck=settings.lease_duration / 3,
        )
        self.lender: Lender | None = None
        self.borrower: Borrower | None = None
        if primary and link is not None and ownership is not None and reader is not None:
            self.lender = Lender(
                path=link,
                engine=self.engine,
                ownership=ownership,
                reader=reader,
                on_returned=self._on_returned,
                retry_seconds=settings.lease_duration / 12,
            )
        elif helper and link is not None and shard is not None and ownership is not None:
            self.borrower = Borrower(
                path=link,
                worker=shard.index,
                engine=self.engine,
                ownership=ownership,
                claims=self.claims,
                on_line=self._on_line,
                on_primary_gone=self._primary_gone,
            )
        self.watchers = [
            TaskSetWatcher(
                api=api,
                scope=scope,
                on_object=self._on_object,
                on_deleted=self._on_deleted,
                on_listed=functools.partial(self._on_listed, scope),
                # Shared work: other members' tasksets are skipped unread (the taskset is
                # the unit of ownership), and read afresh if the view gives them to us. Not
                # per workflow: every worker must see its one taskset complete, to exit.
                skip=self.engine.skips
                if ownership is not None and not settings.per_workflow
                else None,
                relay=self.lender,
                watch_timeout=settings.watch_timeout,
                request_timeout=settings.api_request_timeout,
            )
            for scope in scopes(settings)
            if not helper  # a helper is told the events of what it is lent
        ]
        self.exit_reason = ""

    # -- probes ----------------------------------------------------------------------

    def liveness(self) -> Health:
        return Health(ok=True)

    def readiness(self) -> Health:
        if self._stop.is_set():
            return Health(ok=False, reason="shutting down")
        if self.membership is not None:
            fenced = self.membership.readiness()  # first: it says no request starts here
            if fenced:
                return Health(ok=False, reason=fenced)
        if self.borrower is not None and not self.borrower.connected:
            return Health(ok=False, reason="not connected to the primary worker")
        closed = [w for w in self.watchers if not w.established]
        if closed:
            detail = "; ".join(w.last_error for w in closed if w.last_error)
            return Health(ok=False, reason=f"{len(closed)} watch(es) not established: {detail}")
        if self.policies is not None and not self.policies.loaded:
            error = self.policy_watcher.last_error if self.policy_watcher else ""
            return Health(ok=False, reason=f"outbound policies not loaded yet {error}".strip())
        refused = self.patcher.refused
        if refused:
            return Health(ok=False, reason=refused)
        return Health(ok=True)

    def stop(self) -> None:
        self._stop.set()

    # -- the run ---------------------------------------------------------------------

    async def run(self) -> None:
        """Watch and execute until stopped; then drain the engine and flush the patcher.

        The clients stay open: :meth:`aclose` them once nothing reports any more.
        """
        membership = self.membership
        async with asyncio.TaskGroup() as group:
            member = (
                group.create_task(membership.run(), name="membership")
                if membership is not None
                else None
            )
            engine = group.create_task(self.engine.run(), name="engine")
            gauges = group.create_task(self._sample_gauges(), name="gauges")
            watches = [
                group.create_task(w.run(), name=f"watch {i}") for i, w in enumerate(self.watchers)
            ]
            if self.reader is not None:
                watches.append(group.create_task(self._show_gained(), name="gained tasksets"))
            # The primary's socket outlives its drain: a helper that loses it stops.
            lender = (
                group.create_task(self.lender.run(), name="lender")
                if self.lender is not None
                else None
            )
            # A helper's connection outlives its drain too: the primary takes its tasksets
            # back when it ends, which must not be before what runs here is reported.
            borrower = (
                group.create_task(self.borrower.run(), name="borrower")
                if self.borrower is not None
                else None
            )
            if self.policy_watcher is not None:
                watches.append(group.create_task(self.policy_watcher.run(), name="policies"))
            try:
                await self._stop.wait()
                self._log_stopping()
                if membership is not None:
                    membership.leave()  # others take the queued work; our claims stand
                if self.lender is not None:
                    self.lender.stop()  # helpers stop too: nothing comes back now
                if self.borrower is not None:
                    self.borrower.leave()  # the primary lends it nothing more
                # No new work arrives while the engine drains; the gauges keep the values
                # they had when the stop began.
                for task in (*watches, gauges):
                    task.cancel()
                await self._settle()
                if member is not None and membership is not None:
                    # Renewing stops once every result is delivered; then the Lease goes.
                    member.cancel()
                    await asyncio.wait([member])
                    await membership.release(timeout=self.settings.shutdown_grace)
            finally:
                for task in (*watches, gauges, engine, *([member] if member else [])):
                    task.cancel()  # the engine ends by itself once drained
                for link in (lender, borrower):
                    if link is not None:
                        link.cancel()

    def _log_stopping(self) -> None:
        log.info(
            "stopping: %s",
            self.exit_reason or "signal",
            extra={"in_flight": self.engine.in_flight, "queued": self.engine.queued},
        )

    async def _settle(self) -> None:
        """Let running tasks finish, then deliver their results, each within the grace."""
        await self.engine.drain(grace=self.settings.shutdown_grace)
        delivered = await self.patcher.flush(timeout=self.settings.shutdown_grace)
        if not delivered:
            log.error("shutdown: %d result(s) could not be delivered in time", self.patcher.pending)

    async def aclose(self) -> None:
        """Close the patcher's, the executor's and the artifact store's clients (the API
        client is the caller's)."""
        try:
            await self.patcher.aclose()
            await self._executor.aclose()
        finally:
            await self.store.aclose()

    async def _sample_gauges(self) -> None:
        # Sampled, not set on every task: setting them per task would cost CPU on the hot
        # path, and a scrape every few seconds needs no finer grain than this.
        while True:
            metrics.TASKS_IN_FLIGHT.set(self.engine.in_flight)
            metrics.TASKS_QUEUED.set(self.engine.queued)
            metrics.TASKSETS_WATCHED.set(self.engine.tasksets)
            if self.ownership is not None:
                metrics.NODES_OWNED.set(self.engine.owned)
                metrics.MEMBERS.set(len(self.ownership.owners))
            if self.membership is not None:
                metrics.LEASE_RENEW_AGE.set(self.membership.renew_age())
            await asyncio.sleep(_GAUGE_SECONDS)

    async def _show_gained(self) -> None:
        """After each change of the view, read afresh the skipped tasksets it gave us.

        They were skipped unread while another member owned them; the engine takes each
        read as a first sight in a young view (its nodes settle, then are read again before
        anything starts: docs/replicas.md). A failed read is tried again a moment later.
        """
        assert self.reader is not None
        while True:
            await self._gained.wait()
            self._gained.clear()
            for watcher in self.watchers:
                for key in watcher.skipped():
                    try:
                        snapshot = await self.reader.read(key)
                    except Exception as exc:  # retried: the taskset stays a skipped one
                        log.warning(
                            "cannot read a taskset this member now owns: %s",
                            exc,
                            extra=key.log_context(),
                        )
                        self._gained.set()
                        await asyncio.sleep(self.settings.lease_duration / 12)
                        continue
                    if self.engine.skips(key):
                        continue  # the view moved it away again meanwhile
                    watcher.shown(key)
                    if snapshot is not None:
                        self.engine.observe(snapshot)

    # -- source callbacks --------------------------------------------------------------

    def _on_object(self, obj: Mapping[str, Any]) -> None:
        snapshot = TaskSetSnapshot.from_object(obj)
        if self.settings.per_workflow and snapshot.completed:
            self.exit_reason = "taskset completed"
            self._stop.set()
        if self.lender is not None and self.lender.lend(snapshot, obj):
            return  # a helper runs it: its events go there from now on
        self.engine.observe(snapshot)

    def _on_deleted(self, key: TaskSetKey) -> None:
        self.engine.forget(key)
        if self.lender is not None:
            self.lender.forget(key)
        if self.borrower is not None:
            self.borrower.forget(key)
        if self.settings.per_workflow:
            self.exit_reason = "taskset deleted"
            self._stop.set()

    def _on_line(self, line: bytes) -> None:
        """(Helper) one watch event of a lent taskset, as the primary's watch received it."""
        event = jsoncodec.loads(line)
        obj = event.get("object") or {}
        if event.get("type") == "DELETED":
            meta = obj.get("metadata") or {}
            self._on_deleted(TaskSetKey(str(meta.get("namespace", "")), str(meta.get("name", ""))))
        elif event.get("type") in ("ADDED", "MODIFIED"):
            self._on_object(obj)

    def _on_returned(self, snapshot: TaskSetSnapshot) -> None:
        """(Primary) a taskset its dead helper ran, read afresh: it runs here now."""
        for watcher in self.watchers:
            watcher.shown(snapshot.key)
        self.engine.observe(snapshot, inherited=True)

    def _primary_gone(self) -> None:
        """(Helper) the primary's socket ended: it stopped or died, and so does this helper."""
        if self._stop.is_set():
            return  # stopping already (the pod stops)
        log.error("the primary worker is gone: stopping")
        self.exit_reason = "the primary worker is gone"
        self._stop.set()

    def _on_listed(self, scope: WatchScope, keys: frozenset[TaskSetKey]) -> None:
        if self.lender is not None:
            self.lender.listed(keys, namespace=scope.namespace)
        for key in self.engine.known():
            if key not in keys and (scope.namespace is None or key.namespace == scope.namespace):
                self._on_deleted(key)

    def _on_progress(self, ref: TaskRef, result: NodeResult) -> None:
        self.engine.progress(ref, result)

    def _is_current(self, key: TaskSetKey, node_id: str) -> bool:
        return self.engine.is_current(key, node_id)


def _count_result(ref: TaskRef, result: NodeResult) -> None:
    metrics.child(metrics.TASKS_FINISHED, str(result.phase) or "unknown").inc()


def secret_authority(settings: Settings, api: client.ApiClient) -> SecretAuthority | None:
    """Whose authority a Secret is used with (``--secret-authority``). None: the agent's
    own, which is also the workflow's in per-workflow mode, where the agent runs with the
    workflow's service account, as Argo's agent pod does (no Workflow read, no review)."""
    if settings.secret_authority == "agent" or settings.per_workflow:
        return None
    return WorkflowSecretAuthority(
        api=api, ttl=settings.secret_cache_seconds, request_timeout=settings.api_request_timeout
    )


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
        expr_timeout_seconds=settings.expr_max_seconds,
        expr_max_bytes=settings.expr_max_bytes,
        expr_workers=settings.expr_workers,
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


def lease_namespace(settings: Settings) -> str:
    """Where the member Leases live: ``--lease-namespace``, else the pod's own namespace
    (POD_NAMESPACE, then the service account's), else the first namespace served."""
    if settings.lease_namespace:
        return settings.lease_namespace
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        own = _SA_NAMESPACE.read_text().strip()
    except OSError:
        own = ""
    if own:
        return own
    return settings.namespaces[0] if settings.namespaces else "default"


def _own_namespace() -> str:
    for env in ("ARGO_AGENT_NAMESPACE", "POD_NAMESPACE"):
        if os.environ.get(env):
            return os.environ[env]
    try:
        return _SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


# -- the process around one agent ------------------------------------------------------------


async def serve(
    settings: Settings,
    *,
    shard: Shard | None = None,
    companion: Companion | None = None,
    link: str | None = None,
) -> int:
    """Run the agent until a signal or the end of a per-workflow run; the exit code.

    Alone (``shard`` None) the process serves the HTTP API and owns SIGTERM/SIGINT. As a
    worker of :mod:`agent.service.supervisor` it serves no API, stops on SIGTERM only (the
    supervisor relays a terminal's Ctrl-C), and runs ``companion`` beside the agent; with
    ``link`` (the pod's lending socket) it is the primary or a helper.
    """
    metrics.BUILD.info({"version": __version__})
    metrics.initialise()
    api = await _connect(settings)
    if api is None:
        return _CONFIG_ERROR
    agent = Agent(settings=settings, api=api, shard=shard, link=link)
    metrics.READY.set_function(lambda: 1.0 if agent.readiness().ok else 0.0)
    server = _api_server(agent, settings=settings) if shard is None else None
    remove_signal_handlers = _install_signals(agent, worker=shard is not None)
    try:
        _tune_gc()
        _log_start(agent, settings=settings, shard=shard)
        await _run(agent, server=server, companion=companion)
    finally:
        try:
            await _to_the_end(_close(agent, api=api))
        finally:
            remove_signal_handlers()  # only now: a second signal still aborts a stuck teardown
    log.info("agent stopped", extra={"reason": agent.exit_reason})
    return 0


async def _connect(settings: Settings) -> client.ApiClient | None:
    """The Kubernetes API client, or None (logged) if the configuration is unusable."""
    try:
        # The patches in flight, plus room for the watches and the Secret reads.
        pool_size = settings.max_patches_in_flight + 8
        return await connect(kubeconfig=settings.kubeconfig, pool_size=pool_size)
    except Exception as exc:
        log.error("cannot configure the Kubernetes client: %s", exc)
        return None


def _api_server(agent: Agent, *, settings: Settings) -> ApiServer:
    """The HTTP API of a process that runs one agent alone (a supervisor serves its own)."""
    return ApiServer.for_app(
        create_app(liveness=agent.liveness, readiness=agent.readiness),
        host=settings.metrics_host,
        port=settings.metrics_port,
    )


def _install_signals(agent: Agent, *, worker: bool) -> Callable[[], None]:
    """The first stop signal stops the agent, a second exits at once; returns the remover.

    A worker stops on SIGTERM only: a terminal's Ctrl-C reaches the whole process group,
    and the supervisor relays it to each worker as SIGTERM.
    """

    def on_stop(signum: signal.Signals) -> None:
        agent.exit_reason = f"signal {signum.name}"
        agent.stop()

    if worker:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    signums = (signal.SIGTERM,) if worker else (signal.SIGTERM, signal.SIGINT)
    return handle_stop_signals(signums, stop=on_stop)


def _tune_gc() -> None:
    """Fewer cyclic-collector passes over objects that live long or die young."""
    # Everything allocated so far lives for the whole run: frozen, the cyclic collector
    # does not scan it again and again under load.
    gc.freeze()
    # Every task allocates a few hundred short-lived containers (requests, responses,
    # coroutines, decoded events) that reference counting frees; a young-generation pass
    # every 700 allocations (CPython's default) would mostly scan objects about to be freed.
    # 20,000 still bounds the young generation to a few MB; cycles are still collected, a
    # little later.
    gc.set_threshold(*_GC_THRESHOLDS)


def _log_start(agent: Agent, *, settings: Settings, shard: Shard | None) -> None:
    where = (
        {"worker": str(shard)}
        if shard is not None
        else {"metrics": f"{settings.metrics_host}:{settings.metrics_port}"}
    )
    log.info(
        "agent started",
        extra={
            "version": __version__,
            "mode": "per-workflow" if settings.per_workflow else "shared",
            "instance": agent.claims.instance_id,
            "redelivery": settings.redelivery,
            "membership": settings.members,
            **(
                {
                    "lease": f"{agent.membership.namespace}/{agent.membership.name}",
                    "group": settings.group,
                }
                if agent.membership is not None
                else {}
            ),
            "scopes": [str(s) for s in scopes(settings)],
            **where,
        },
    )


async def _run(agent: Agent, *, server: ApiServer | None, companion: Companion | None) -> None:
    """The agent, with the HTTP API and the companion beside it until it has settled.

    Both outlive the drain and the flush: ``/readyz`` answers "shutting down" meanwhile,
    and the companion sends the final counts as it ends.
    """
    async with asyncio.TaskGroup() as group:
        if server is not None:
            group.create_task(server.serve(), name="http api")
        reporter = (
            group.create_task(companion(agent), name="companion") if companion is not None else None
        )
        try:
            await agent.run()
        finally:
            if server is not None:
                server.should_exit = True  # it finishes the requests it is answering
            if reporter is not None:
                reporter.cancel()


async def _close(agent: Agent, *, api: client.ApiClient) -> None:
    """Close the clients, the API client last: the patcher and the executor use it."""
    await agent.aclose()
    await api.close()


async def _to_the_end(closing: Coroutine[Any, Any, None]) -> None:
    """Await ``closing`` to its end even if we are cancelled meanwhile (any number of
    times); then let our cancellation through. Its own cancellation or error propagates."""
    task = asyncio.ensure_future(closing)
    interrupted = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # not ours: the closing itself was cancelled
                raise
            interrupted = True  # ours: finish closing first
    if interrupted:
        raise asyncio.CancelledError
    task.result()
