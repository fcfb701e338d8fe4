"""The engine's rules: never twice, fulfilled nodes skipped, removed nodes cancelled and not
reported, fairness across tasksets, the in-flight bound, and a graceful drain."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from agent.core.model import NodePhase, NodeResult
from agent.core.refs import TaskRef, TaskSetKey, TaskSetSnapshot
from agent.engine.scheduler import Engine

KEY = TaskSetKey("ns", "wf")


class RecordingRunner:
    """Runs a 'template' by waiting on a gate; records starts, ends and concurrency."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.auto = True
        self.running = 0
        self.peak = 0

    def gate(self, node_id: str) -> asyncio.Event:
        return self.gates.setdefault(node_id, asyncio.Event())

    async def run(self, template: Mapping[str, Any], *, ref: TaskRef) -> NodeResult:
        self.started.append((ref.taskset, ref.node_id))
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if not self.auto:
                await self.gate(ref.node_id).wait()
            else:
                await asyncio.sleep(0)
            self.finished.append(ref.node_id)
            return NodeResult(phase=NodePhase.SUCCEEDED, message=str(template.get("say", "")))
        except asyncio.CancelledError:
            self.cancelled.append(ref.node_id)
            raise
        finally:
            self.running -= 1


class ListSink:
    def __init__(self) -> None:
        self.results: list[tuple[TaskRef, NodeResult]] = []
        self.discarded: list[tuple[TaskSetKey, frozenset[str] | None]] = []
        self.overwritten: list[str] = []

    def submit(self, ref: TaskRef, result: NodeResult, *, overwrite: bool = False) -> None:
        self.results.append((ref, result))
        if overwrite:
            self.overwritten.append(ref.node_id)

    def discard(self, key: TaskSetKey, node_ids: frozenset[str] | None = None) -> None:
        self.discarded.append((key, node_ids))


def snap(
    tasks: Mapping[str, Any],
    nodes: Mapping[str, Any] | None = None,
    *,
    key: TaskSetKey = KEY,
    completed: bool = False,
) -> TaskSetSnapshot:
    return TaskSetSnapshot(key=key, tasks=tasks, nodes=nodes or {}, completed=completed)


async def start(engine: Engine) -> asyncio.Task[None]:
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_each_node_runs_once_across_repeated_events() -> None:
    runner, sink = RecordingRunner(), ListSink()
    engine = Engine(runner=runner, sink=sink, max_in_flight=4)
    loop = await start(engine)
    tasks = {"a": {"say": "A"}, "b": {"say": "B"}}
    for _ in range(5):  # every status patch echoes the whole spec back as an event
        engine.observe(snap(tasks))
    await engine.wait_idle()
    engine.observe(snap({**tasks, "c": {"say": "C"}}))
    await asyncio.sleep(0)
    await engine.wait_idle()
    await stop(loop)
    assert sorted(n for _, n in runner.started) == ["a", "b", "c"]
    assert sorted((r.node_id, res.message) for r, res in sink.results) == [
        ("a", "A"),
        ("b", "B"),
        ("c", "C"),
    ]


async def test_fulfilled_nodes_are_not_run_again() -> None:
    runner, sink = RecordingRunner(), ListSink()
    engine = Engine(runner=runner, sink=sink, max_in_flight=4)
    loop = await start(engine)
    engine.observe(
        snap(
            {"done": {}, "failed": {}, "pending": {}, "fresh": {}},
            {
                "done": {"phase": "Succeeded"},
                "failed": {"phase": "Failed"},
                "pending": {"phase": "Pending"},
            },
        )
    )
    await asyncio.sleep(0)
    await engine.wait_idle()
    await stop(loop)
    assert sorted(n for _, n in runner.started) == ["fresh", "pending"]


async def test_removed_node_is_cancelled_and_never_reported() -> None:
    runner, sink = RecordingRunner(), ListSink()
    runner.auto = False
    engine = Engine(runner=runner, sink=sink, max_in_flight=4)
    loop = await start(engine)
    engine.observe(snap({"slow": {}, "kept": {}}))
    for _ in range(3):
        await asyncio.sleep(0)
    assert sorted(n for _, n in runner.started) == ["kept", "slow"]
    engine.observe(snap({"kept": {}}))  # the controller removed "slow" from spec.tasks
    runner.gate("kept").set()
    await engine.wait_idle()
    await stop(loop)
    assert runner.cancelled == ["slow"]
    assert [r.node_id for r, _ in sink.results] == ["kept"]
    assert (KEY, frozenset({"slow"})) in sink.discarded
    assert not engine.is_current(KEY, "slow")


async def test_in_flight_limit_is_respected() -> None:
    runner, sink = RecordingRunner(), ListSink()
    runner.auto = False
    engine = Engine(runner=runner, sink=sink, max_in_flight=3)
    loop = await start(engine)
    engine.observe(snap({f"n{i}": {} for i in range(10)}))
    for _ in range(5):
        await asyncio.sleep(0)
    assert runner.running == 3
    assert engine.queued == 7
    for i in range(10):
        runner.gate(f"n{i}").set()
    await engine.wait_idle()
    await stop(loop)
    assert runner.peak == 3
    assert len(sink.results) == 10


async def test_round_robin_across_tasksets() -> None:
    """A taskset with many tasks does not starve one that arrives after it."""
    runner, sink = RecordingRunner(), ListSink()
    runner.auto = False
    engine = Engine(runner=runner, sink=sink, max_in_flight=1)
    big, small = TaskSetKey("ns", "big"), TaskSetKey("ns", "small")
    engine.observe(snap({f"b{i}": {} for i in range(50)}, key=big))
    engine.observe(snap({"s0": {}, "s1": {}}, key=small))
    loop = await start(engine)
    order: list[str] = []
    for _ in range(6):
        for _ in range(3):
            await asyncio.sleep(0)
        current = runner.started[-1][1]
        order.append(current)
        runner.gate(current).set()
    await stop(loop)
    assert order[:4] == ["b0", "s0", "b1", "s1"]


async def test_completed_or_deleted_taskset_is_forgotten() -> None:
    runner, sink = RecordingRunner(), ListSink()
    runner.auto = False
    engine = Engine(runner=runner, sink=sink, max_in_flight=2)
    loop = await start(engine)
    engine.observe(snap({"x": {}, "y": {}, "z": {}}))
    for _ in range(3):
        await asyncio.sleep(0)
    engine.observe(snap({"x": {}, "y": {}, "z": {}}, completed=True))
    await asyncio.sleep(0)
    await engine.wait_idle()
    await stop(loop)
    assert sorted(runner.cancelled) == ["x", "y"]
    assert sink.results == []
    assert engine.known() == frozenset()
    assert (KEY, None) in sink.discarded


async def test_drain_lets_running_tasks_finish_and_stops_dispatching() -> None:
    runner, sink = RecordingRunner(), ListSink()
    runner.auto = False
    engine = Engine(runner=runner, sink=sink, max_in_flight=1)
    loop = await start(engine)
    engine.observe(snap({"first": {}, "second": {}}))
    for _ in range(3):
        await asyncio.sleep(0)
    draining = asyncio.create_task(engine.drain(grace=5))
    await asyncio.sleep(0)
    runner.gate("first").set()
    await draining
    await loop  # the dispatcher returns by itself once drained
    assert [n for _, n in runner.started] == ["first"]
    assert [r.node_id for r, _ in sink.results] == ["first"]


async def test_drain_cancels_what_outlives_the_grace() -> None:
    runner, sink = RecordingRunner(), ListSink()
    runner.auto = False
    engine = Engine(runner=runner, sink=sink, max_in_flight=2)
    loop = await start(engine)
    engine.observe(snap({"stuck": {}}))
    for _ in range(3):
        await asyncio.sleep(0)
    await engine.drain(grace=0.05)
    await loop
    assert runner.cancelled == ["stuck"]
    assert sink.results == []


async def test_runner_exception_becomes_an_error_result() -> None:
    class Exploding(RecordingRunner):
        async def run(self, template: Mapping[str, Any], *, ref: TaskRef) -> NodeResult:
            raise RuntimeError("boom")

    sink = ListSink()
    engine = Engine(runner=Exploding(), sink=sink, max_in_flight=2)
    loop = await start(engine)
    engine.observe(snap({"n": {}}))
    await asyncio.sleep(0)
    await engine.wait_idle()
    await stop(loop)
    [(_ref, result)] = sink.results
    assert result.phase == NodePhase.ERROR
    assert result.message == "agent internal error: boom"


def test_snapshot_from_api_object() -> None:
    obj = {
        "metadata": {
            "name": "wf-1",
            "namespace": "argo",
            "labels": {"workflows.argoproj.io/completed": "true"},
            "ownerReferences": [{"kind": "Workflow", "uid": "u-1", "name": "wf-1"}],
        },
        "spec": {"tasks": {"n1": {"http": {"url": "http://x"}}}},
        "status": {"nodes": {"n1": {"phase": "Succeeded"}}},
    }
    snapshot = TaskSetSnapshot.from_object(obj)
    assert snapshot.key == TaskSetKey("argo", "wf-1")
    assert snapshot.workflow_uid == "u-1"
    assert snapshot.completed is True
    assert list(snapshot.tasks) == ["n1"]
    assert snapshot.nodes["n1"]["phase"] == "Succeeded"
    empty = TaskSetSnapshot.from_object({"metadata": {"name": "x", "namespace": "y"}, "spec": None})
    assert empty.tasks == {} and empty.nodes == {}


async def test_replayed_older_generation_is_ignored() -> None:
    """A replayed event with an older spec must not make nodes look removed, then new."""
    runner, sink = RecordingRunner(), ListSink()
    engine = Engine(runner=runner, sink=sink, max_in_flight=4)
    loop = await start(engine)
    old = TaskSetSnapshot(key=KEY, tasks={"a": {}}, nodes={}, uid="u1", generation=1)
    new = TaskSetSnapshot(key=KEY, tasks={"a": {}, "b": {}}, nodes={}, uid="u1", generation=2)
    engine.observe(old)
    engine.observe(new)
    await asyncio.sleep(0)
    await engine.wait_idle()
    engine.observe(old)  # replay
    engine.observe(new)
    await asyncio.sleep(0)
    await engine.wait_idle()
    await stop(loop)
    assert sorted(n for _, n in runner.started) == ["a", "b"]
    assert sink.discarded == []


async def test_recreated_taskset_with_a_new_uid_starts_afresh() -> None:
    runner, sink = RecordingRunner(), ListSink()
    engine = Engine(runner=runner, sink=sink, max_in_flight=4)
    loop = await start(engine)
    engine.observe(TaskSetSnapshot(key=KEY, tasks={"a": {}}, nodes={}, uid="u1", generation=5))
    await asyncio.sleep(0)
    await engine.wait_idle()
    engine.observe(TaskSetSnapshot(key=KEY, tasks={"a": {}}, nodes={}, uid="u2", generation=1))
    await asyncio.sleep(0)
    await engine.wait_idle()
    await stop(loop)
    assert [n for _, n in runner.started] == ["a", "a"]


async def test_a_null_template_still_gets_a_result() -> None:
    runner, sink = RecordingRunner(), ListSink()
    engine = Engine(runner=runner, sink=sink, max_in_flight=2)
    loop = await start(engine)
    engine.observe(snap({"null": None, "ok": {}}))
    await asyncio.sleep(0)
    await engine.wait_idle()
    await stop(loop)
    assert sorted(n for _, n in runner.started) == ["null", "ok"]
    assert engine.queued == 0


async def test_nodes_with_a_leftover_status_entry_are_overwritten() -> None:
    runner, sink = RecordingRunner(), ListSink()
    engine = Engine(runner=runner, sink=sink, max_in_flight=2)
    loop = await start(engine)
    engine.observe(snap({"stale": {}, "fresh": {}}, {"stale": {"phase": "Running", "message": 7}}))
    await asyncio.sleep(0)
    await engine.wait_idle()
    await stop(loop)
    assert sink.overwritten == ["stale"]


def test_malformed_spec_is_described() -> None:
    meta = {"name": "x", "namespace": "ns"}
    listed = TaskSetSnapshot.from_object({"metadata": meta, "spec": {"tasks": [1, 2]}})
    assert listed.tasks == {}
    assert listed.problem == "spec.tasks: expected an object (node ID -> template), got list"
    text = TaskSetSnapshot.from_object({"metadata": meta, "spec": "tasks"})
    assert text.problem == "spec: expected an object, got string"
    assert TaskSetSnapshot.from_object({"metadata": meta}).problem == ""
    assert TaskSetSnapshot.from_object({"metadata": meta, "spec": {}}).problem == ""
