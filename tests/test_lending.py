"""Lending inside one pod (agent/membership/lending.py): a primary and a helper, each with
its real engine and ownership, connected over a real Unix socket in one event loop.

The end-to-end behaviour with real worker processes (kills, drains, the supervisor's order
of restarts) is in ``test_processes_e2e.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.core import jsoncodec
from agent.core.model import NodePhase
from agent.core.refs import TaskSetKey, TaskSetSnapshot
from agent.engine.claims import ClaimPolicy
from agent.engine.ownership import Ownership, owner_of, unit_of
from agent.engine.scheduler import Engine
from agent.membership import lending
from agent.membership.lending import Borrower, Lender
from tests.test_engine import RecordingRunner
from tests.test_replicas_units import DurableListSink, until

PRIMARY = "pod-a-w0-1234"


def obj(
    name: str,
    tasks: Mapping[str, Any],
    nodes: Mapping[str, Any] | None = None,
    *,
    generation: int = 1,
) -> dict[str, Any]:
    """A WorkflowTaskSet as the API server sends it."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTaskSet",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "generation": generation,
            "resourceVersion": "1",
        },
        "spec": {"tasks": dict(tasks)},
        "status": {"nodes": dict(nodes or {})},
    }


def modified(name: str, tasks: Mapping[str, Any], *, generation: int) -> bytes:
    """A MODIFIED watch event of a taskset whose spec changed (the controller added nodes)."""
    return jsoncodec.dumps({"type": "MODIFIED", "object": obj(name, tasks, generation=generation)})


def post(say: str) -> dict[str, Any]:
    return {"http": {"url": "http://127.0.0.1:1/", "method": "POST"}, "say": say}


def get(say: str) -> dict[str, Any]:
    return {"http": {"url": "http://127.0.0.1:1/"}, "say": say}


class Store:
    """The API's copy of each taskset: what a fresh read returns."""

    def __init__(self) -> None:
        self.objects: dict[TaskSetKey, dict[str, Any]] = {}
        self.reads: list[TaskSetKey] = []

    def put(self, o: dict[str, Any]) -> TaskSetSnapshot:
        key = TaskSetKey("ns", o["metadata"]["name"])
        self.objects[key] = o
        return TaskSetSnapshot.from_object(o)

    async def read(self, key: TaskSetKey) -> TaskSetSnapshot | None:
        self.reads.append(key)
        o = self.objects.get(key)
        return None if o is None else TaskSetSnapshot.from_object(o)


@dataclass
class Worker:
    engine: Engine
    ownership: Ownership
    runner: RecordingRunner
    sink: DurableListSink
    task: asyncio.Task[None]


def engine_for(
    ownership: Ownership, *, slots: int, claims_as: str
) -> tuple[Engine, RecordingRunner, DurableListSink, ClaimPolicy]:
    runner, sink = RecordingRunner(), DurableListSink()
    runner.auto = False  # every node waits at its gate
    claims = ClaimPolicy(sink=sink, redelivery="idempotent", instance_id=claims_as)
    engine = Engine(
        runner=runner,
        sink=sink,
        max_in_flight=slots,
        claims=claims,
        ownership=ownership,
        recheck=0.02,
    )
    return engine, runner, sink, claims


class CpuClock:
    """The primary's CPU seconds as the test decides: still, or one core's worth per second."""

    def __init__(self) -> None:
        self._used = 0.0
        self._since: float | None = None

    def __call__(self) -> float:
        running = 0.0 if self._since is None else time.monotonic() - self._since
        return self._used + running

    def busy(self) -> None:
        self._since = time.monotonic()


@dataclass
class Pod:
    primary: Worker
    helper: Worker
    lender: Lender
    borrower: Borrower
    store: Store
    returned: list[TaskSetKey]
    borrowing: asyncio.Task[None]
    cpu: CpuClock

    def create(self, name: str, tasks: Mapping[str, Any]) -> bool:
        """A taskset appears: the primary's first sight. True if it was lent."""
        o = obj(name, tasks)
        snapshot = self.store.put(o)
        if self.lender.lend(snapshot, o):
            return True
        self.primary.engine.observe(snapshot)
        return False


@pytest.fixture
async def pod(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Pod]:
    """A primary (one slot, unless the test asks for more) and a helper (one slot)."""
    slots = getattr(request, "param", 1)
    store = Store()
    primary_view = Ownership(me=PRIMARY)
    primary_engine, primary_runner, primary_sink, _ = engine_for(
        primary_view, slots=slots, claims_as=PRIMARY
    )
    returned: list[TaskSetKey] = []
    cpu = CpuClock()

    def on_returned(snapshot: TaskSetSnapshot) -> None:
        returned.append(snapshot.key)
        primary_engine.observe(snapshot, inherited=True)

    lender = Lender(
        path=str(tmp_path / "lending"),
        engine=primary_engine,
        ownership=primary_view,
        reader=store,
        on_returned=on_returned,
        retry_seconds=0.05,
        cpu_clock=cpu,
    )
    helper_view = Ownership(me="", owners=())
    helper_view.granted = set()
    helper_engine, helper_runner, helper_sink, helper_claims = engine_for(
        helper_view, slots=1, claims_as="pod-a-w1-5678"
    )

    def on_line(line: bytes) -> None:
        event = jsoncodec.loads(line)
        if event["type"] == "DELETED":
            meta = event["object"]["metadata"]
            key = TaskSetKey(meta["namespace"], meta["name"])
            helper_engine.forget(key)
            borrower.forget(key)
        else:
            helper_engine.observe(TaskSetSnapshot.from_object(event["object"]))

    gone = asyncio.Event()
    borrower = Borrower(
        path=lender.path,
        worker=1,
        engine=helper_engine,
        ownership=helper_view,
        claims=helper_claims,
        on_line=on_line,
        on_primary_gone=gone.set,
    )
    lending_task = asyncio.create_task(lender.run())
    primary = Worker(
        primary_engine,
        primary_view,
        primary_runner,
        primary_sink,
        asyncio.create_task(primary_engine.run()),
    )
    helper = Worker(
        helper_engine,
        helper_view,
        helper_runner,
        helper_sink,
        asyncio.create_task(helper_engine.run()),
    )
    borrowing = asyncio.create_task(borrower.run())
    await until(lambda: borrower.connected and lender._helpers, "the helper to connect")
    yield Pod(primary, helper, lender, borrower, store, returned, borrowing, cpu)
    for task in (lending_task, primary.task, helper.task, borrowing):
        task.cancel()
    await asyncio.gather(lending_task, primary.task, helper.task, borrowing, return_exceptions=True)


def results(sink: DurableListSink, name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ref, result in sink.results:
        if ref.taskset == name:
            out.setdefault(ref.node_id, []).append(str(result.phase))
    return out


async def busy(pod: Pod) -> None:
    """The primary's one slot taken and one task waiting: busy."""
    assert not pod.create("held", {"h0": get("h0"), "h1": get("h1")})
    await until(lambda: pod.primary.runner.started == [("held", "h0")], "the primary to be busy")


async def test_a_primary_with_a_free_slot_for_each_task_keeps_a_new_taskset(pod: Pod) -> None:
    assert not pod.create("small", {"s0": get("s0")})
    await until(lambda: pod.primary.runner.started == [("small", "s0")], "the primary to run it")
    assert pod.helper.runner.started == []
    assert pod.primary.ownership.owns(unit_of("ns", "small"))


async def test_a_busy_primary_lends_a_new_taskset_whole_and_passes_on_its_events(pod: Pod) -> None:
    await busy(pod)
    assert pod.create("lent", {"p0": post("p0")})
    unit = unit_of("ns", "lent")
    assert not pod.primary.ownership.owns(unit) and pod.primary.ownership.elsewhere(unit)
    assert pod.lender.lends(TaskSetKey("ns", "lent"))
    await until(lambda: pod.helper.runner.started == [("lent", "p0")], "the helper to run it")
    # Its POST was claimed first, in the name of the pod's member, the primary.
    assert [r.message for ref, r in pod.helper.sink.results if ref.node_id == "p0"] == [
        f"argo-http-agent {PRIMARY}: request in flight"
    ]
    # A later event (the controller adds a node) reaches the helper, not the primary.
    key = TaskSetKey("ns", "lent")
    pod.lender.send(key, modified("lent", {"p0": post("p0"), "p1": get("p1")}, generation=2))
    pod.helper.runner.gate("p0").set()
    await until(
        lambda: ("lent", "p1") in pod.helper.runner.started, "the helper to run the new node"
    )
    assert not pod.primary.engine.holds(key)
    # Deleted: the helper forgets it, and the primary no longer lends it.
    pod.lender.send(
        key,
        jsoncodec.dumps(
            {"type": "DELETED", "object": {"metadata": {"namespace": "ns", "name": "lent"}}}
        ),
    )
    pod.lender.forget(key)
    await until(lambda: not pod.helper.engine.holds(key), "the helper to forget it")
    assert not pod.lender.lends(key) and unit not in pod.primary.ownership.lent
    assert pod.helper.ownership.granted == set()


@pytest.mark.parametrize("pod", [4], indirect=True)
async def test_a_primary_that_used_nearly_a_whole_core_lends_despite_free_slots(
    pod: Pod,
) -> None:
    await asyncio.sleep(1.1)
    assert not pod.create("calm", {"c0": get("c0")})  # one task, four slots, a calm second
    await until(lambda: pod.primary.runner.started == [("calm", "c0")], "c0 to run")
    pod.cpu.busy()  # from now on the primary's CPU grows as fast as the clock
    await asyncio.sleep(1.1)  # a whole window (a second) at that rate
    assert pod.create("hot", {"h0": get("h0")})  # one task in four slots, but a full core
    await until(lambda: pod.helper.runner.started == [("hot", "h0")], "the helper to run it")


async def test_lending_follows_the_backlogs(pod: Pod) -> None:
    await busy(pod)  # the primary's backlog: 2 tasks
    assert pod.create("first", {"f0": get("f0"), "f1": get("f1")})  # the helper's: 0 -> 2
    assert not pod.create("second", {"s0": get("s0")})  # 2 is not less than 2: kept here
    assert pod.create("third", {"t0": get("t0")})  # the helper's 2 is less than 3: lent
    # The helper reports its own backlog (one running, two waiting), which lending follows.
    await until(lambda: pod.lender._helpers[0].backlog == 3, "the helper's report")
    await until(lambda: pod.helper.runner.started == [("first", "f0")], "the helper to run f0")


async def test_a_taskset_with_a_status_or_seen_in_a_young_view_is_never_lent(pod: Pod) -> None:
    await busy(pod)
    started = obj("started", {"n0": get("n0")}, {"n0": {"phase": "Running", "message": "x"}})
    assert not pod.lender.lend(pod.store.put(started), started)
    # pod-b joined, then left: what it owned is the primary's again, in a young view.
    pod.primary.ownership.settle = 60.0
    pod.primary.ownership.update(owners=[PRIMARY, "pod-b"], live=[PRIMARY, "pod-b"])
    pod.primary.ownership.update(owners=[PRIMARY], live=[PRIMARY])
    assert pod.primary.ownership.settled_in() > 0
    young = obj("young", {"n0": get("n0")})
    assert not pod.lender.lend(pod.store.put(young), young)


async def test_a_lent_taskset_the_group_moves_away_is_revoked_and_its_running_node_claimed(
    pod: Pod,
) -> None:
    await busy(pod)
    members = [PRIMARY, "pod-b"]
    names = [f"moving-{i}" for i in range(50)]
    name = next(n for n in names if owner_of(members, unit_of("ns", n)) == "pod-b")
    assert pod.create(name, {"g0": get("g0"), "g1": get("g1")})
    await until(lambda: pod.helper.runner.started == [(name, "g0")], "the helper to run g0")
    pod.primary.ownership.update(owners=members, live=members)  # pod-b joined: it owns it
    # The helper claims what runs (another member will honour it), finishes it, and starts
    # nothing more of that taskset.
    claim = f"argo-http-agent {PRIMARY}: request in flight"
    await until(
        lambda: any(
            r.message == claim and ref.node_id == "g0" for ref, r in pod.helper.sink.results
        ),
        "the handover claim",
    )
    pod.helper.runner.gate("g0").set()
    await until(
        lambda: results(pod.helper.sink, name).get("g0", [])[-1:] == [NodePhase.SUCCEEDED.value],
        "g0's result",
    )
    await asyncio.sleep(0.1)
    assert pod.helper.runner.started == [(name, "g0")]
    assert not pod.lender.lends(TaskSetKey("ns", name))


async def test_the_helper_starts_nothing_past_the_primarys_renew_deadline(pod: Pod) -> None:
    await busy(pod)
    pod.primary.ownership.valid_until = time.monotonic() + 0.3  # a Lease renewed, once
    await until(
        lambda: pod.helper.ownership.valid_until == pod.primary.ownership.valid_until,
        "the helper to follow the deadline",
    )
    assert pod.create("fenced", {"n0": get("n0")})
    await until(lambda: pod.helper.runner.started == [("fenced", "n0")], "the helper to run n0")
    await asyncio.sleep(0.4)  # past the deadline, never renewed
    key = TaskSetKey("ns", "fenced")
    pod.lender.send(key, modified("fenced", {"n0": get("n0"), "n1": get("n1")}, generation=2))
    await asyncio.sleep(0.2)
    assert pod.helper.runner.started == [("fenced", "n0")], "started a node past the fence"


async def test_a_dead_helpers_tasksets_come_back_read_afresh_with_its_claims_inherited(
    pod: Pod, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lending, "_TAKE_BACK_DELAY", 0.05)
    await busy(pod)
    assert pod.create("back", {"post": post("post"), "get": get("get"), "later": get("later")})
    await until(
        lambda: pod.helper.runner.started == [("back", "post")], "the helper to send the POST"
    )
    # What the API has when the helper dies: its claim on the POST, nothing else.
    claim = {"phase": "Running", "message": f"argo-http-agent {PRIMARY}: request in flight"}
    pod.store.put(
        obj(
            "back",
            {"post": post("post"), "get": get("get"), "later": get("later")},
            {"post": claim},
        )
    )
    pod.borrowing.cancel()  # the helper is gone: its connection ends
    await until(lambda: pod.returned == [TaskSetKey("ns", "back")], "the taskset to come back")
    assert pod.store.reads == [TaskSetKey("ns", "back")]
    assert not pod.lender.lends(TaskSetKey("ns", "back"))
    # The helper's claim names the primary, yet counts as a gone instance's: the POST is
    # settled by the redelivery policy (Failed, not sent again); the rest runs here.
    phases = results(pod.primary.sink, "back")
    assert phases["post"] == [NodePhase.FAILED.value]
    pod.primary.runner.auto = True
    for gate in ("h0", "h1"):
        pod.primary.runner.gate(gate).set()
    await until(
        lambda: {"get", "later"} <= set(pod.primary.runner.finished), "the rest to run here"
    )
    assert ("back", "post") not in pod.primary.runner.started
