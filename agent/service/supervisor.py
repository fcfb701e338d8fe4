"""The supervisor: ``--processes N`` runs N shared-nothing agent workers in one pod.

One Python process executes on one core; an agent on a 4-core node would leave three idle.
So, like gunicorn's workers, the supervisor starts N complete agents (engine, executor,
patcher), numbered by their :class:`~agent.engine.shard.Shard`. In shared mode worker 1/N is
the pod's primary and lends whole tasksets to the others when it is busy
(:mod:`agent.membership.lending`); per workflow they split by hashing. Nothing crosses between
them per task: no queue, no pickling, no hand-over of results, so N workers do N times the
work of one (cores permitting) when the load needs them, and one worker's cost when it does
not.

What the supervisor itself does, and nothing more:

* starts the workers with ``multiprocessing``'s *forkserver* method: a server process that
  imported the agent once (``agent/service/_forkserver.py``) forks each worker, so the
  workers share that memory copy-on-write, and none inherits an event loop, a socket or a
  lock;
* serves the read-only HTTP API for all of them: ``/healthz`` (no worker crash-looping),
  ``/readyz`` (every worker alive and ready; their reasons relayed), ``/metrics`` (the
  workers' metrics combined: counters and histograms summed, including what workers that
  died had counted, so totals never go backwards; gauges summed, taskset gauges maxed;
  and each worker's own CPU, ``argo_agent_worker_cpu_seconds_total{worker}``);
* in shared mode, gives the workers the pod's lending socket (a path in a private temporary
  directory): worker 1/N is the *primary*, the pod's one member, and lends tasksets to the
  others, its *helpers*, when it is busy (:mod:`agent.membership.lending`), so a load one
  worker carries is not split; per workflow, the workers split by hashing instead;
* restarts a worker that exits, with backoff; a restarted worker, like a restarted agent,
  skips what is fulfilled and honours its predecessor's claims. A primary is started again
  only once its helpers have exited (they stop when it is gone, after draining), so a new
  primary never meets a live helper's work; a helper still running after twice the
  shutdown grace is killed.
  Exit code 2 (an unusable configuration, as for a single process) is not retried: the
  supervisor stops the others and exits 2;
* relays SIGTERM/SIGINT to every worker as SIGTERM, waits while they drain and flush, and
  exits 0 when all did; a second signal kills them at once. In per-workflow mode a worker
  that exits 0 has finished (its taskset completed) and is not restarted; the supervisor
  exits once every worker has.

Each worker is in one :class:`WorkerState` (starting, running, back-off, finished), and
:meth:`Supervisor._enter` is the one place a worker changes state, with what that change
does (spawn, schedule a restart, record the exit code). Nothing polls: the loop reads a
worker's pipe when it has something to say, notices its exit when its process sentinel
becomes readable, and restarts it from a timer.

Workers report readiness and snapshots of their metrics over a pipe; a scrape asks every
worker for a fresh snapshot first (waiting at most ``_SCRAPE_TIMEOUT``). Their metrics
stay plain in-process values: prometheus_client's multiprocess mode writes every increment
to a shared file, a cost on every task's path. Workers stop by themselves (draining) if
the supervisor vanishes (their end of the pipe reads EOF; they also check its PID), so a
SIGKILLed supervisor leaves no orphans.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Info, Metric
from prometheus_client.registry import Collector

from agent import __version__
from agent.engine.shard import Shard
from agent.service.api import ApiServer, Health, create_app
from agent.service.logs import configure_logging
from agent.service.process import handle_stop_signals, run_event_loop
from agent.service.settings import Settings

if TYPE_CHECKING:
    from agent.service.agent import Agent

__all__ = ["Supervisor", "WorkerState", "supervise"]

log = logging.getLogger(__name__)

#: How often a worker looks at its readiness: often until it is ready (the pod's readiness
#: waits for it), then once a second, with its metrics (an idle helper wakes for nothing else).
_REPORT_SECONDS = 0.2
_READY_REPORT_SECONDS = 1.0
_METRICS_SECONDS = 1.0
_SCRAPE_TIMEOUT = 0.5
#: Gauges combined by their maximum (every worker sees every taskset); others are summed.
_MAX_GAUGES = frozenset(
    {
        "argo_agent_tasksets_listed",
        "argo_agent_tasksets_watched",
        "argo_agent_members",
        "argo_agent_lease_renew_age_seconds",
    }
)
#: Each worker's CPU seconds, labelled with the worker: the summed process_cpu_seconds_total
#: cannot tell a pod whose workers are all busy from one whose load one worker would carry
#: (at a lower CPU cost per task: docs/performance.md). Carried over restarts like any counter.
_WORKER_CPU = "argo_agent_worker_cpu_seconds"
_WORKER_CPU_HELP = "CPU seconds (user and system) each worker process used, its restarts included"
# Families the supervisor reports for the pod as a whole, never from its workers.
_OWN_FAMILIES = frozenset({"argo_agent_build", "argo_agent_ready"})

#: One metric family as a worker sends it: name, type, help, samples.
_Family = tuple[str, str, str, list[tuple[str, tuple[tuple[str, str], ...], float]]]
_BACKOFF_CAP = 30.0
#: How often a primary waiting to start again looks whether its helpers have exited.
_PRIMARY_WAIT_SECONDS = 0.2
#: A worker that ran this long before dying starts its backoff afresh.
_STABLE_SECONDS = 60.0
#: Consecutive quick deaths after which /healthz fails (the pod should be restarted).
_CRASH_LOOP = 5
#: The exit code of ``run`` for an unusable configuration; a worker exiting with it is not
#: restarted, and the supervisor exits with it too.
_CONFIG_ERROR = 2


class WorkerState(enum.Enum):
    """Where one worker stands. The values are what ``/readyz`` says of a worker in it."""

    #: Not running: to be started, at first or once the back-off after a death ends.
    BACKOFF = "restarting"
    #: Its process runs; it has not reported its readiness yet.
    STARTING = "starting"
    #: Its process runs and has reported: its readiness is what it said last.
    RUNNING = "running"
    #: Exited for good (stopped, or its work is done): its exit code is final.
    FINISHED = "finished"


#: The changes of state there are; any other is a bug in the supervisor.
TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.BACKOFF: frozenset({WorkerState.STARTING, WorkerState.FINISHED}),
    WorkerState.STARTING: frozenset(
        {WorkerState.RUNNING, WorkerState.BACKOFF, WorkerState.FINISHED}
    ),
    WorkerState.RUNNING: frozenset({WorkerState.BACKOFF, WorkerState.FINISHED}),
    WorkerState.FINISHED: frozenset(),
}


def final_code(code: int, *, stopping: bool, per_workflow: bool) -> int | None:
    """The final exit code of a worker whose process exited with ``code``; None to restart it."""
    if stopping:
        # Killed by the relayed SIGTERM before it installed its handler (still starting):
        # it held no work, so that is a clean stop too.
        return 0 if code == -signal.SIGTERM else code
    if code == 0 and per_workflow:
        return 0  # its taskset is done: Argo's per-workflow contract
    if code == _CONFIG_ERROR:
        return code  # restarting cannot fix the configuration (the kubeconfig, say)
    return None  # shared mode has no "done": even a clean exit leaves its shard unserved


def backoff(crashes: int) -> float:
    """Seconds before the restart after ``crashes`` consecutive quick deaths (1 or more)."""
    return min(_BACKOFF_CAP, 0.5 * 2.0 ** (crashes - 1))


class _Worker:
    """One worker: its state, its current process and pipe, what it reported last."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        self.state = WorkerState.BACKOFF
        self.process: BaseProcess | None = None  # while STARTING or RUNNING
        self.status: Connection | None = None  # its pipe, while open
        self.restart: asyncio.TimerHandle | None = None  # while BACKOFF after a death
        self.code = 0  # once FINISHED
        self.health = Health(ok=False, reason="starting")  # as last reported, once RUNNING
        self.started = 0.0
        self.crashes = 0  # consecutive quick deaths
        self.metrics: list[_Family] = []
        self.metrics_fresh = asyncio.Event()

    @property
    def alive(self) -> bool:
        """Its process runs (a poll, not a wait: exact even before the loop heard of an exit)."""
        running = self.state in (WorkerState.STARTING, WorkerState.RUNNING)
        return running and self.process is not None and self.process.exitcode is None


class Supervisor:
    """Starts, watches, restarts and stops the workers; answers the probes for them."""

    def __init__(self, *, settings: Settings, processes: int) -> None:
        self.settings = settings
        self.workers = [_Worker(Shard(index, processes)) for index in range(processes)]
        # Workers fork from a server that imported the agent once (agent/service/_forkserver.py):
        # they share its memory copy-on-write, and it never held an event loop or socket.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["agent.service._forkserver"])
        self._stopping = False
        self._all_finished = asyncio.Event()
        # Counter and histogram samples of workers that exited: kept, so totals only grow.
        self._carried: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        self._carried_kinds: dict[str, tuple[str, str]] = {}
        self.registry = CollectorRegistry()
        self.registry.register(_WorkerMetrics(self))
        Info("argo_agent_build", "Version of the running agent", registry=self.registry).info(
            {"version": __version__, "processes": str(processes)}
        )
        # The pod's readiness is the supervisor's (every worker ready), not a sum of workers'.
        Gauge(
            "argo_agent_ready",
            "1 while /readyz answers ready (every worker running and ready), else 0",
            registry=self.registry,
        ).set_function(lambda: 1.0 if self.readiness().ok else 0.0)
        self._restarts = Counter(
            "argo_agent_worker_restarts_total",
            "Worker processes restarted after dying",
            registry=self.registry,
        )
        # The pod's lending socket (agent/membership/lending.py), in shared mode: made when
        # the run starts, removed when it ends.
        self._lending = not settings.per_workflow and processes > 1
        self.link: str | None = None
        self._primary_died = 0.0
        self._helpers_of_dead_primary: list[BaseProcess] = []

    # -- probes -----------------------------------------------------------------------

    def liveness(self) -> Health:
        looping = [w for w in self.workers if w.crashes >= _CRASH_LOOP]
        if looping:
            names = ", ".join(str(w.shard) for w in looping)
            return Health(ok=False, reason=f"worker(s) {names} crash-looping")
        return Health(ok=True)

    def readiness(self) -> Health:
        if self._stopping:
            return Health(ok=False, reason="shutting down")
        reasons = []
        for worker in self.workers:
            if worker.state is not WorkerState.RUNNING:
                reasons.append(f"worker {worker.shard}: {worker.state.value}")
            elif not worker.health.ok:
                reasons.append(f"worker {worker.shard}: {worker.health.reason}")
        return Health(ok=not reasons, reason="; ".join(reasons))

    # -- the run ----------------------------------------------------------------------

    async def run(self) -> int:
        """Supervise until every worker finished; the exit code for the process."""
        directory = tempfile.mkdtemp(prefix="argo-http-agent-") if self._lending else None
        if directory is not None:
            self.link = os.path.join(directory, "lending")
        try:
            for worker in self.workers:
                self._enter(worker, WorkerState.STARTING)
            await self._all_finished.wait()
        finally:
            for worker in self.workers:
                self._abandon(worker)
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
        codes = {w.code for w in self.workers if w.code}
        if _CONFIG_ERROR in codes:
            return _CONFIG_ERROR
        return 1 if codes else 0

    def stop(self) -> None:
        """Relay a stop to every worker (each drains and flushes, then exits)."""
        self._stopping = True
        for worker in self.workers:
            if worker.state is WorkerState.BACKOFF:
                self._enter(worker, WorkerState.FINISHED)  # dead already: nothing to stop
            elif worker.alive and worker.process is not None and worker.process.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, signal.SIGTERM)

    def kill(self) -> None:
        for worker in self.workers:
            if worker.alive and worker.process is not None:
                worker.process.kill()

    # -- the workers' states ------------------------------------------------------------

    def _enter(self, worker: _Worker, state: WorkerState, *, code: int = 0) -> None:
        """The one place a worker changes state, with what entering the new state does."""
        if state not in TRANSITIONS[worker.state]:
            raise RuntimeError(f"worker {worker.shard}: {worker.state.name} -> {state.name}")
        if worker.restart is not None:  # leaving BACKOFF early (a stop) or on time
            worker.restart.cancel()
            worker.restart = None
        worker.state = state
        if state is WorkerState.STARTING:
            self._spawn(worker)
        elif state is WorkerState.BACKOFF:
            delay = backoff(worker.crashes)
            loop = asyncio.get_running_loop()
            worker.restart = loop.call_later(delay, self._restart, worker)
        elif state is WorkerState.FINISHED:
            worker.code = code
            if all(w.state is WorkerState.FINISHED for w in self.workers):
                self._all_finished.set()

    def _spawn(self, worker: _Worker) -> None:
        receiver, sender = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            kwargs={
                "settings": self.settings,
                "shard": worker.shard,
                "status": sender,
                "parent": os.getpid(),
                "link": self.link,
            },
            name=f"argo-http-agent worker {worker.shard}",
        )
        process.start()
        sender.close()  # the child holds its end; EOF on ours means it is gone
        worker.process, worker.status = process, receiver
        worker.started = time.monotonic()
        loop = asyncio.get_running_loop()
        read_when_ready(receiver, functools.partial(self._on_status, worker))
        # The sentinel becomes readable once the process has ended and its code is known.
        loop.add_reader(process.sentinel, self._on_exit, worker)
        log.info("worker started", extra={"worker": str(worker.shard), "pid": process.pid})

    def _restart(self, worker: _Worker) -> None:
        worker.restart = None  # fired: nothing to cancel
        if self.link is not None and worker.shard.index == 0:
            # A new primary must not meet a live helper's work: the helpers that served the
            # dead one drain and exit first (helpers started since connect to the new one).
            self._helpers_of_dead_primary = [
                p for p in self._helpers_of_dead_primary if p.exitcode is None
            ]
            if self._helpers_of_dead_primary:
                if time.monotonic() - self._primary_died > 2 * self.settings.shutdown_grace + 5:
                    for process in self._helpers_of_dead_primary:
                        log.error("helper did not stop: killing it", extra={"pid": process.pid})
                        process.kill()
                loop = asyncio.get_running_loop()
                worker.restart = loop.call_later(_PRIMARY_WAIT_SECONDS, self._restart, worker)
                return
        self._restarts.inc()
        self._enter(worker, WorkerState.STARTING)

    def _on_status(self, worker: _Worker) -> None:
        connection = worker.status
        if connection is None:
            return
        try:
            while connection.poll():
                kind, payload = connection.recv()
                if kind == "health":
                    ok, reason = payload
                    worker.health = Health(ok=bool(ok), reason=str(reason))
                    if worker.state is WorkerState.STARTING:
                        self._enter(worker, WorkerState.RUNNING)
                elif kind == "metrics":
                    worker.metrics = payload
                    worker.metrics_fresh.set()
        except (EOFError, OSError):
            self._close_status(worker)  # its exit is noticed through the sentinel

    def _on_exit(self, worker: _Worker) -> None:
        """The worker's process ended: finish the worker or schedule its restart."""
        process = worker.process
        code = process.exitcode if process is not None else None
        if process is None or code is None:
            return  # not ended after all
        asyncio.get_running_loop().remove_reader(process.sentinel)
        self._on_status(worker)  # the last messages it sent
        self._close_status(worker)
        self._carry(worker)
        worker.process = None
        final = final_code(code, stopping=self._stopping, per_workflow=self.settings.per_workflow)
        if final is None:
            self._died(worker, code=code)
        elif code == _CONFIG_ERROR and not self._stopping:
            log.error(
                "worker cannot start (configuration error): stopping",
                extra={"worker": str(worker.shard)},
            )
            self._enter(worker, WorkerState.FINISHED, code=final)
            self.stop()  # as a single process would: exit 2, with the others stopped
        else:
            log.info("worker exited", extra={"worker": str(worker.shard), "code": code})
            self._enter(worker, WorkerState.FINISHED, code=final)

    def _died(self, worker: _Worker, *, code: int) -> None:
        if worker.shard.index == 0:
            self._primary_died = time.monotonic()
            self._helpers_of_dead_primary = [
                w.process for w in self.workers if w is not worker and w.alive and w.process
            ]
        quick = time.monotonic() - worker.started < _STABLE_SECONDS
        worker.crashes = worker.crashes + 1 if quick else 1
        log.error(
            "worker died; restarting it in %.1fs",
            backoff(worker.crashes),
            extra={"worker": str(worker.shard), "code": code, "crashes": worker.crashes},
        )
        self._enter(worker, WorkerState.BACKOFF)

    def _close_status(self, worker: _Worker) -> None:
        if worker.status is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(worker.status.fileno())
            worker.status.close()
            worker.status = None

    def _abandon(self, worker: _Worker) -> None:
        """Let go of a worker when the run ends early (an error, a cancel): kill its process,
        stop listening to it, drop its pending restart."""
        if worker.restart is not None:
            worker.restart.cancel()
            worker.restart = None
        self._close_status(worker)
        process = worker.process
        if process is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(process.sentinel)
            if process.exitcode is None:
                process.kill()

    # -- metrics ------------------------------------------------------------------------

    def _carry(self, worker: _Worker) -> None:
        for family, kind, help_text, samples in worker.metrics:
            if kind in ("counter", "histogram", "summary"):
                self._carried_kinds[family] = (kind, help_text)
                for name, labels, value in samples:
                    key = (family, name, labels)
                    self._carried[key] = self._carried.get(key, 0.0) + value
        worker.metrics = []

    async def refresh_metrics(self) -> None:
        """Ask every live worker for a snapshot; wait for the answers, briefly."""
        waits = []
        for worker in self.workers:
            if worker.alive and worker.status is not None:
                try:
                    worker.status.send(("scrape", None))
                except OSError:
                    continue
                worker.metrics_fresh.clear()
                waits.append(asyncio.ensure_future(worker.metrics_fresh.wait()))
        if waits:
            _, late = await asyncio.wait(waits, timeout=_SCRAPE_TIMEOUT)
            for wait in late:
                wait.cancel()

    def collect_workers(self) -> list[Metric]:
        """The workers' latest metrics combined, plus what exited workers had counted."""
        kinds: dict[str, tuple[str, str]] = dict(self._carried_kinds)
        values: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        for key, value in self._carried.items():
            values[key] = value
        for worker in self.workers:
            for family, kind, help_text, samples in worker.metrics:
                kinds.setdefault(family, (kind, help_text))
                combine = max if family in _MAX_GAUGES else _add
                for name, labels, value in samples:
                    key = (family, name, labels)
                    values[key] = combine(values[key], value) if key in values else value
        families: dict[str, Metric] = {}
        for (family, name, labels), value in values.items():
            if family not in families:
                kind, help_text = kinds.get(family, ("untyped", ""))
                families[family] = Metric(family, help_text, kind)
            families[family].add_sample(name, dict(labels), value)
        return list(families.values())


async def supervise(settings: Settings, *, processes: int) -> int:
    """``argo-http-agent run --processes N``: the workers, their API, their signals."""
    supervisor = Supervisor(settings=settings, processes=processes)
    remove_signal_handlers = _install_signals(supervisor)
    try:
        log.info(
            "supervisor started",
            extra={
                "version": __version__,
                "processes": processes,
                "metrics": f"{settings.metrics_host}:{settings.metrics_port}",
            },
        )
        code = await _run(supervisor, server=_api_server(supervisor, settings=settings))
    finally:
        remove_signal_handlers()
    log.info("supervisor stopped", extra={"code": code})
    return code


def _api_server(supervisor: Supervisor, *, settings: Settings) -> ApiServer:
    return ApiServer.for_app(
        create_app(
            liveness=supervisor.liveness,
            readiness=supervisor.readiness,
            registry=supervisor.registry,
            refresh_metrics=supervisor.refresh_metrics,
        ),
        host=settings.metrics_host,
        port=settings.metrics_port,
    )


def _install_signals(supervisor: Supervisor) -> Callable[[], None]:
    """The first signal stops the workers (each drains), a second kills them; the remover."""

    def on_stop(signum: signal.Signals) -> None:
        log.info("stopping the workers", extra={"reason": signum.name})
        supervisor.stop()

    return handle_stop_signals(
        (signal.SIGTERM, signal.SIGINT),
        stop=on_stop,
        abort=supervisor.kill,
        abort_message="second signal: killing the workers and exiting at once",
    )


async def _run(supervisor: Supervisor, *, server: ApiServer) -> int:
    """The supervision, with the HTTP API beside it until every worker has finished."""
    async with asyncio.TaskGroup() as group:
        group.create_task(server.serve(), name="http api")
        try:
            return await supervisor.run()
        finally:
            server.should_exit = True  # it finishes the requests it is answering


# -- the worker side ------------------------------------------------------------------------


def _worker_main(
    *, settings: Settings, shard: Shard, status: Connection, parent: int, link: str | None
) -> None:
    """The entry point of a spawned worker: the primary, a helper, or (per workflow) a shard."""
    from agent.service.agent import serve  # only workers load the agent itself

    configure_logging(
        fmt=settings.log_format, level=settings.log_level, context={"worker": str(shard)}
    )
    report = functools.partial(_report, status=status, parent=parent, worker=str(shard))
    sys.exit(
        run_event_loop(
            serve(settings, shard=shard, companion=report, link=link), loop=settings.event_loop
        )
    )


async def _report(agent: Agent, *, status: Connection, parent: int, worker: str) -> None:
    """Readiness changes, metric snapshots (periodic and on request) to the supervisor.

    Stops the agent if the supervisor is gone.
    """
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()

    def on_request() -> None:
        try:
            while status.poll():
                kind, _ = status.recv()
                if kind == "scrape":
                    status.send(("metrics", _snapshot(worker=worker)))
        except (EOFError, OSError):
            gone.set()

    read_when_ready(status, on_request)
    last: tuple[bool, str] | None = None
    next_metrics = 0.0
    try:
        while not gone.is_set():
            if not _alive(parent):  # the pipe's EOF says so too; this catches a hung one
                break
            health = agent.readiness()
            current = (health.ok, health.reason)
            try:
                if current != last:
                    status.send(("health", current))
                    last = current
                if time.monotonic() >= next_metrics:
                    status.send(("metrics", _snapshot(worker=worker)))
                    next_metrics = time.monotonic() + _METRICS_SECONDS
            except OSError:  # the supervisor closed its end: it is going away
                break
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that meets
            # the event being set, and this loop would outlive its cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_READY_REPORT_SECONDS if health.ok else _REPORT_SECONDS):
                    await gone.wait()
        log.error("the supervisor is gone: stopping")
        agent.exit_reason = "supervisor gone"
        agent.stop()
    finally:
        loop.remove_reader(status.fileno())
        with contextlib.suppress(OSError):
            status.send(("metrics", _snapshot(worker=worker)))  # the final counts, for the carry
        status.close()


def read_when_ready(connection: Connection, callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever ``connection`` has data, its socket left blocking.

    uvloop (libuv) makes a descriptor it polls non-blocking. A ``Connection`` reads one
    message in several reads and sends it with one ``sendall``; non-blocking, a read that
    meets a message half-arrived, or a send that meets a full buffer, raises EAGAIN half-way,
    and the side that sees it takes the other for gone (a healthy worker was once stopped
    so). The poll says a message has begun; the rest is already on its way.
    """
    asyncio.get_running_loop().add_reader(connection.fileno(), callback)
    os.set_blocking(connection.fileno(), True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - exists, owned by someone else
        return True
    return True


def _snapshot(*, worker: str) -> list[_Family]:
    """This worker's metrics (the default registry) as plain, picklable tuples, and its own
    CPU under its name (:data:`_WORKER_CPU`)."""
    families: list[_Family] = [
        (
            _WORKER_CPU,
            "counter",
            _WORKER_CPU_HELP,
            [(f"{_WORKER_CPU}_total", (("worker", worker),), time.process_time())],
        )
    ]
    for metric in REGISTRY.collect():
        if metric.type == "info" or metric.name in _OWN_FAMILIES:
            continue  # the supervisor reports these itself
        samples = [
            (sample.name, tuple(sorted(sample.labels.items())), sample.value)
            for sample in metric.samples
            if not sample.name.endswith("_created")  # per-process timestamps: not summable
        ]
        families.append((metric.name, metric.type, metric.documentation, samples))
    return families


def _add(a: float, b: float) -> float:
    return a + b


class _WorkerMetrics(Collector):
    """Collects the combined worker metrics at scrape time."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterable[Metric]:
        return self._supervisor.collect_workers()
