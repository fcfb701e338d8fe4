"""Process lifecycle: the order in which an agent stops, and the supervisor's worker states.

The end-to-end behaviour (signals, restarts, exit codes) is in ``test_processes_e2e.py`` and
``test_service_e2e.py``; here are the pieces they rest on, one by one: the shutdown order
of one agent (with its watches, engine and patcher replaced by recorders), a teardown that
outlives repeated cancels, and the supervisor's worker state machine (its table, its exit
decisions, its back-off, and one run with real worker processes).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from agent.service import agent as agent_module
from agent.service.api import Health
from agent.service.settings import load_settings
from agent.service.supervisor import (
    TRANSITIONS,
    Supervisor,
    WorkerState,
    backoff,
    final_code,
    read_when_ready,
)

NS = "argo"
S = WorkerState
CONFIG_ERROR = 2

# -- one agent: the order of its shutdown --------------------------------------------------


class _RecordingWatch:
    """Stands in for a TaskSetWatcher: runs until cancelled, and says when it was."""

    established = True
    last_error = ""

    def __init__(self, events: list[str]) -> None:
        self._events = events
        self.task: asyncio.Task[Any] | None = None

    @property
    def stopped(self) -> bool:
        """Cancelled (it can take no new event from here on), or ended already."""
        return self.task is not None and (self.task.cancelling() > 0 or self.task.done())

    async def run(self) -> None:
        self.task = asyncio.current_task()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self._events.append("watch cancelled")
            raise


async def test_an_agent_stops_watching_then_drains_flushes_reports_and_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []
    api = client.ApiClient()
    # No member Lease: nothing answers this client (the Lease lifecycle: test_replicas_e2e.py).
    settings = load_settings(namespaces=[NS], membership="none")
    agent = agent_module.Agent(settings=settings, api=api)
    watches = [_RecordingWatch(events), _RecordingWatch(events)]
    agent.watchers = watches  # type: ignore[assignment]

    async def drain(*, grace: float) -> None:
        assert all(w.stopped for w in watches), "drained while a watch could bring new work"
        events.append("drain")

    async def flush(*, timeout: float | None = None) -> bool:
        events.append("flush")
        return True

    async def aclose() -> None:
        events.append("aclose")

    async def companion(running: agent_module.Agent) -> None:
        assert running is agent
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events.append("companion cancelled")
            raise

    monkeypatch.setattr(agent.engine, "drain", drain)
    monkeypatch.setattr(agent.patcher, "flush", flush)
    monkeypatch.setattr(agent, "aclose", aclose)
    run = asyncio.create_task(agent_module._run(agent, server=None, companion=companion))
    await asyncio.sleep(0.05)
    assert agent.readiness().ok
    agent.stop()
    await asyncio.wait_for(run, 5)
    await agent_module._close(agent, api=api)
    assert events.count("watch cancelled") == 2
    assert [e for e in events if e != "watch cancelled"] == [
        "drain",
        "flush",
        "companion cancelled",
        "aclose",
    ]
    assert agent.readiness() == Health(ok=False, reason="shutting down")


async def test_teardown_runs_to_its_end_through_repeated_cancels() -> None:
    release, closed = asyncio.Event(), asyncio.Event()

    async def closing() -> None:
        await release.wait()
        closed.set()

    task = asyncio.create_task(agent_module._to_the_end(closing()))
    for _ in range(3):
        await asyncio.sleep(0)
        task.cancel()
    await asyncio.sleep(0.01)
    assert not task.done(), "a cancel cut the teardown short"
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task  # the cancellation is let through once the teardown is done
    assert closed.is_set()


async def test_teardown_without_a_cancel_returns_and_propagates_errors() -> None:
    async def fine() -> None:
        pass

    async def broken() -> None:
        raise OSError("close failed")

    await agent_module._to_the_end(fine())
    with pytest.raises(OSError, match="close failed"):
        await agent_module._to_the_end(broken())


# -- the supervisor: worker states ---------------------------------------------------------


def test_the_transition_table() -> None:
    assert TRANSITIONS == {
        S.BACKOFF: {S.STARTING, S.FINISHED},
        S.STARTING: {S.RUNNING, S.BACKOFF, S.FINISHED},
        S.RUNNING: {S.BACKOFF, S.FINISHED},
        S.FINISHED: set(),
    }


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (S.FINISHED, S.STARTING),
        (S.FINISHED, S.BACKOFF),
        (S.RUNNING, S.STARTING),
        (S.BACKOFF, S.RUNNING),
        (S.BACKOFF, S.BACKOFF),
    ],
)
def test_a_change_not_in_the_table_is_refused(start: WorkerState, target: WorkerState) -> None:
    supervisor = Supervisor(settings=load_settings(namespaces=[NS]), processes=2)
    worker = supervisor.workers[0]
    worker.state = start
    with pytest.raises(RuntimeError, match=f"{start.name} -> {target.name}"):
        supervisor._enter(worker, target)
    assert worker.state is start


@pytest.mark.parametrize(
    ("code", "stopping", "per_workflow", "expected"),
    [
        (-signal.SIGTERM, True, False, 0),  # stopped before its handler was installed
        (0, True, False, 0),
        (1, True, False, 1),
        (CONFIG_ERROR, True, False, 2),
        (0, False, True, 0),  # per-workflow: its taskset is done
        (0, False, False, None),  # shared: a clean exit still leaves its shard unserved
        (CONFIG_ERROR, False, False, 2),  # restarting cannot fix the configuration
        (CONFIG_ERROR, False, True, 2),
        (1, False, True, None),
        (-signal.SIGKILL, False, False, None),
        (-signal.SIGTERM, False, False, None),
    ],
)
def test_what_an_exit_leads_to(
    code: int, stopping: bool, per_workflow: bool, expected: int | None
) -> None:
    assert final_code(code, stopping=stopping, per_workflow=per_workflow) == expected


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


async def test_a_stop_during_a_backoff_finishes_the_worker_and_drops_its_restart() -> None:
    supervisor = Supervisor(settings=load_settings(namespaces=[NS]), processes=2)
    worker = supervisor.workers[0]
    worker.state = S.RUNNING  # as if it had been spawned and had reported
    supervisor._died(worker, code=1)
    assert worker.state is S.BACKOFF and worker.crashes == 1
    assert worker.restart is not None
    timer = worker.restart
    health = supervisor.readiness()
    assert not health.ok and "worker 1/2: restarting" in health.reason
    supervisor.stop()
    assert timer.cancelled() and worker.restart is None
    assert [w.state for w in supervisor.workers] == [S.FINISHED, S.FINISHED]
    assert supervisor._all_finished.is_set()


async def test_workers_with_an_unusable_configuration_finish_the_run_with_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Real worker processes: their exits are noticed through their sentinels."""
    settings = load_settings(namespaces=[NS], kubeconfig=str(tmp_path / "missing"))
    supervisor = Supervisor(settings=settings, processes=2)
    seen: list[tuple[str, WorkerState, WorkerState]] = []
    enter = supervisor._enter

    def recording(worker: Any, state: WorkerState, *, code: int = 0) -> None:
        seen.append((str(worker.shard), worker.state, state))
        enter(worker, state, code=code)

    monkeypatch.setattr(supervisor, "_enter", recording)
    assert await asyncio.wait_for(supervisor.run(), 60) == 2
    assert all(w.state is S.FINISHED and w.process is None for w in supervisor.workers)
    assert 2 in {w.code for w in supervisor.workers}
    for shard in ("1/2", "2/2"):
        moves = [(a, b) for w, a, b in seen if w == shard]
        assert moves[0] == (S.BACKOFF, S.STARTING)
        assert moves[-1][1] is S.FINISHED
        assert all(b in TRANSITIONS[a] for a, b in moves)
    assert supervisor.registry.get_sample_value("argo_agent_worker_restarts_total") == 0


def test_a_status_pipe_polled_by_uvloop_still_carries_a_message_larger_than_its_buffer() -> None:
    """uvloop makes a descriptor it polls non-blocking; a status pipe read so would raise
    EAGAIN in the middle of a message larger than the socket buffer, and the supervisor took
    the worker for gone (seen with a busy primary's snapshots). ``read_when_ready`` keeps the
    pipe blocking: the poll says a message has begun, the rest arrives while it is read."""
    uvloop = pytest.importorskip("uvloop")
    receiver, sender = multiprocessing.Pipe(duplex=True)
    message = ("metrics", "x" * (8 << 20))  # far beyond a socket buffer

    async def main() -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        received: asyncio.Future[tuple[str, str]] = loop.create_future()

        def on_data() -> None:
            if not received.done():
                received.set_result(receiver.recv())

        read_when_ready(receiver, on_data)
        assert os.get_blocking(receiver.fileno())
        writer = threading.Thread(target=sender.send, args=(message,))
        writer.start()
        try:
            return await asyncio.wait_for(received, 30)
        finally:
            loop.remove_reader(receiver.fileno())
            writer.join()

    try:
        assert uvloop.run(main()) == message
    finally:
        receiver.close()
        sender.close()
