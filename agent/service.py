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

import argparse
import asyncio
import contextlib
import functools
import gc
import logging
import math
import os
import signal
import sys
import types
from collections.abc import Callable, Coroutine, Generator, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import uvicorn
from kubernetes_asyncio import client

from agent import __version__, metrics
from agent.api import Health, create_app
from agent.claims import ClaimPolicy, new_instance_id
from agent.engine import Engine, TaskSetKey, TaskSetSnapshot
from agent.execute import Executor, ExecutorSettings, PluginEndpoint, TaskRef
from agent.kube import KubeSecretResolver, StatusPatcher, TaskSetWatcher, WatchScope, connect
from agent.logs import configure_logging
from agent.model import NodeResult
from agent.settings import Settings, SettingsError, load_settings
from agent.shard import Shard

__all__ = ["Agent", "main"]

log = logging.getLogger(__name__)

_GAUGE_SECONDS = 0.25
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


# -- the command line -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """One flag per setting, generated from :class:`Settings` so none can be forgotten."""
    parser = argparse.ArgumentParser(
        prog="argo-http-agent run",
        description="Watch WorkflowTaskSets and execute their HTTP and plugin tasks. "
        "Every flag also has an environment variable (shown in brackets).",
    )
    for name, info in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        alias = info.validation_alias
        envs = ", ".join(str(c) for c in getattr(alias, "choices", ()))
        help_text = (
            f"[{envs}] default: {_default_text(info.get_default(call_default_factory=True))}"
        )
        annotation = _unwrap(info.annotation)
        if name == "namespaces":
            parser.add_argument("--namespace", "-n", dest=name, action="append", help=help_text)
        elif annotation is bool:
            parser.add_argument(flag, dest=name, action="store_const", const=True, help=help_text)
        elif get_origin(annotation) is list:
            parser.add_argument(flag, dest=name, action="append", help=help_text)
        elif get_origin(annotation) is Literal:
            choices = [str(c) for c in get_args(annotation)]
            parser.add_argument(flag, dest=name, choices=choices, help=help_text)
        else:
            parser.add_argument(flag, dest=name, help=help_text)
    return parser


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    if get_origin(annotation) is not None and hasattr(annotation, "__metadata__"):
        return get_args(annotation)[0]
    return annotation


def _default_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value) or "(none)"
    return "(none)" if value in (None, "") else str(value)


def main(argv: list[str]) -> int:
    args = vars(build_parser().parse_args(argv))
    try:
        settings = load_settings(**args)
    except SettingsError as exc:
        print(f"argo-http-agent run: {exc}", file=sys.stderr)
        return 2
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    processes = process_count(settings)
    if processes > 1:
        from agent.supervisor import supervise

        return run_event_loop(supervise(settings, processes=processes), loop=settings.event_loop)
    return run_event_loop(serve(settings), loop=settings.event_loop)


def process_count(settings: Settings) -> int:
    """``--processes``, with 0 meaning one per CPU this process may use (1 per workflow)."""
    if settings.processes:
        return settings.processes
    if settings.per_workflow:
        return 1  # Argo's per-workflow agent serves one taskset: one process is plenty
    return available_cpus()


def available_cpus() -> int:
    """CPUs this process may run on, capped by a cgroup CPU quota (a container's limit)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU limit in cores from cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_*``; None if unlimited."""
    try:
        quota, _, period = (root / "cpu.max").read_text().strip().partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def run_event_loop(main: Coroutine[Any, Any, int], *, loop: str) -> int:
    """Run on uvloop (libuv: measurably less CPU per request) unless told otherwise."""
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:  # not installable on this platform: the standard loop works too
            log.warning("uvloop is not available; using the standard asyncio loop")
        else:
            return uvloop.run(main)
    return asyncio.run(main)


async def serve(
    settings: Settings,
    *,
    shard: Shard | None = None,
    companion: Callable[[Agent], Coroutine[Any, Any, None]] | None = None,
) -> int:
    """Run the agent until a signal or the end of a per-workflow run.

    Alone (``shard`` None) the process serves the HTTP API and owns SIGTERM/SIGINT. As a
    worker of :mod:`agent.supervisor` it serves no API, stops on SIGTERM only (the
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
        server = ApiServer(
            uvicorn.Config(
                create_app(liveness=agent.liveness, readiness=agent.readiness),
                host=settings.metrics_host,
                port=settings.metrics_port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("second signal: exiting at once")
            os._exit(1)
        agent.exit_reason = f"signal {signal.Signals(signum).name}"
        agent.stop()

    handled = (signal.SIGTERM, signal.SIGINT) if shard is None else (signal.SIGTERM,)
    if shard is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    side_tasks = []
    if server is not None:
        side_tasks.append(asyncio.create_task(server.serve(), name="http api"))
    if companion is not None:
        side_tasks.append(asyncio.create_task(companion(agent), name="companion"))
    # Everything allocated so far lives for the whole run: keep the cyclic collector from
    # scanning it again and again under load.
    gc.freeze()
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
        for signum in handled:
            loop.remove_signal_handler(signum)
    log.info("agent stopped", extra={"reason": agent.exit_reason})
    return 0


class ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the agent owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
