"""``argo-http-agent run --processes N``: the supervisor, its primary worker and helpers.

End to end, the supervisor runs as a real process (``python -m agent run``) against the API
simulator and a real target server that counts every request it receives (and holds the
ones sent to its gates); its workers are real spawned processes. In shared mode the primary
lends tasksets to its helper only when busy: the tests make it busy with ``--task-workers
2`` (one slot per worker) and a held request. Unit tests cover the pieces the supervisor is
built from: the shard hash (per-workflow mode), the engine's ``owns`` predicate and the
process-count settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from agent_sim import ApiSimulator
from aiohttp import web

from agent.core.model import NodePhase, NodeResult
from agent.core.refs import TaskRef, TaskSetKey, TaskSetSnapshot
from agent.engine.ownership import unit_of
from agent.engine.scheduler import Engine
from agent.engine.shard import Shard
from agent.service import process, run
from agent.service.settings import load_settings
from tests.agentproc import AgentProcess, http_task, taskset, wait_for_nodes
from tests.servers import TargetServer

NS = "argo"
TS = "workflowtasksets"
SHARDS = (Shard(0, 2), Shard(1, 2))
COMPLETED = {"metadata": {"labels": {"workflows.argoproj.io/completed": "true"}}}


# -- a target that counts requests and can hold them ---------------------------------------


class CountingTarget(TargetServer):
    """The test target, plus a count of every request (by path and query) and ``/gate/{key}``:
    answers 200 ``opened`` once the test calls :meth:`open_gate` (until then it holds)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._hits: Counter[str] = Counter()
        self._gates: dict[str, asyncio.Event] = {}

    def make_app(self) -> web.Application:
        app = super().make_app()

        @web.middleware
        async def count(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            with self._lock:
                self._hits[request.path_qs] += 1
            return await handler(request)

        app.middlewares.append(count)
        app.router.add_route("*", "/gate/{key}", self._gate)
        return app

    def hits(self, marker: str) -> Counter[str]:
        """Requests received whose path or query contains ``marker``."""
        with self._lock:
            return Counter({k: v for k, v in self._hits.items() if marker in k})

    def _event(self, key: str) -> asyncio.Event:
        return self._gates.setdefault(key, asyncio.Event())

    async def _gate(self, request: web.Request) -> web.Response:
        await self._event(request.match_info["key"]).wait()
        return web.Response(text="opened")

    def open_gate(self, key: str) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(lambda: self._event(key).set())


@pytest.fixture(scope="module")
def counting() -> Iterator[CountingTarget]:
    with CountingTarget() as server:
        yield server


# -- agents that never outlive their test ---------------------------------------------------

Spawn = Callable[..., AgentProcess]


@pytest.fixture
async def spawn(sim: ApiSimulator) -> AsyncIterator[Spawn]:
    """``AgentProcess(sim, ...)``; whatever a failed test left running is killed afterwards,
    the supervisor and its workers alike."""
    agents: list[AgentProcess] = []

    def make(*args: str, **kwargs: Any) -> AgentProcess:
        # Without Leases: the pod alone. With Leases its primary is a member like any
        # other (tests/test_replicas_e2e.py).
        agent = AgentProcess(sim, "--membership", "none", *args, **kwargs)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        if agent.proc is not None and agent.proc.returncode is None:
            workers = descendants(agent.proc.pid)
            await agent.kill()
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


# -- helpers ---------------------------------------------------------------------------------


def metric(text: str, name: str, labels: str = "") -> float | None:
    prefix = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[-1])
    return None


def worker_cpu(text: str) -> dict[str, float]:
    """``argo_agent_worker_cpu_seconds_total`` by worker, from an exposition."""
    pattern = r'^argo_agent_worker_cpu_seconds_total\{worker="([^"]+)"\} (\S+)$'
    return {worker: float(value) for worker, value in re.findall(pattern, text, re.M)}


async def wait_metric(
    agent: AgentProcess, name: str, labels: str, expected: float, timeout: float = 20.0
) -> str:
    """Scrape until the metric has the expected value; return the last exposition."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = (await agent.get("/metrics")).text
        if metric(text, name, labels) == expected:
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}{{{labels}}} never became {expected}:\n{text}\n{agent.logs()}")


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, agent: AgentProcess, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}:\n{agent.logs()}")


def started_workers(logs: str) -> list[tuple[str, int]]:
    """``(worker, pid)`` of every "worker started" line of the supervisor, in order."""
    return [
        (m.group(1), int(m.group(2)))
        for m in re.finditer(r"worker started \[worker=(\d+/\d+) pid=(\d+)\]", logs)
    ]


def instances(logs: str) -> dict[str, list[str]]:
    """The claims instance IDs each worker announced ("agent started"), in order."""
    out: dict[str, list[str]] = {}
    for line in logs.splitlines():
        if "agent started [" in line:
            instance = re.search(r"\binstance=(\S+)", line)
            worker = re.search(r"\bworker=(\d+/\d+)", line)
            assert instance and worker, line
            out.setdefault(worker.group(1), []).append(instance.group(1))
    return out


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (workers are children of the supervisor's fork server)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            parents[int(stat.parent.name)] = int(fields[1])  # fields: state, ppid, ...
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def claims(sim: ApiSimulator, name: str) -> dict[str, list[str]]:
    """For every node of a taskset: the instances that claimed it, from the status patches."""
    out: dict[str, list[str]] = {}
    for record in sim.requests(verb="patch", subresource="status", name=name):
        if record.status != 200:
            continue
        for node, body in json.loads(record.body)["status"]["nodes"].items():
            match = re.fullmatch(
                r"argo-http-agent (\S+): request in flight", str(body.get("message") or "")
            )
            if body.get("phase") == "Running" and match:
                out.setdefault(node, []).append(match.group(1))
    return out


def final_reports(sim: ApiSimulator, name: str) -> Counter[str]:
    """How often each node's final (fulfilled) result was patched."""
    reported: Counter[str] = Counter()
    for record in sim.requests(verb="patch", subresource="status", name=name):
        if record.status != 200:
            continue
        for node, body in json.loads(record.body)["status"]["nodes"].items():
            if body.get("phase") not in ("Running", "Pending", None):
                reported[node] += 1
    return reported


def post_tasks(target: CountingTarget, prefix: str, count: int) -> dict[str, Any]:
    """POST tasks (so each is claimed, naming the worker that ran it) at distinct URLs."""
    return {
        f"{prefix}-{i:02d}": http_task(target.url(f"/echo?id={prefix}-{i:02d}"), method="POST")
        for i in range(count)
    }


def assert_each_requested_once(target: CountingTarget, prefix: str, node_ids: list[str]) -> None:
    assert target.hits(f"id={prefix}-") == Counter({f"/echo?id={n}": 1 for n in node_ids}), (
        "every target path must be requested exactly once"
    )


# -- end to end ------------------------------------------------------------------------------


async def lend_one(
    agent: AgentProcess,
    sim: ApiSimulator,
    counting: CountingTarget,
    *,
    held: str,
    lent: str,
    lent_tasks: Mapping[str, Any],
) -> None:
    """Make the primary busy and have it lend a taskset (``--task-workers 2``: one slot per
    worker). ``held`` gets two tasks held at the target's gate ``held``: one runs on the
    primary's only slot, one waits for it, so the primary is busy when ``lent`` appears."""
    sim.create_object(
        TS,
        taskset(
            held,
            {
                f"{held}-{i}": http_task(counting.url(f"/gate/{held}?id={held}-{i}"))
                for i in range(2)
            },
        ),
    )

    async def one_held() -> bool:
        return sum(counting.hits(f"id={held}-").values()) == 1

    await wait_until(one_held, "the primary's one slot to be taken", agent)
    sim.create_object(TS, taskset(lent, dict(lent_tasks)))
    await wait_metric(agent, "argo_agent_tasksets_lent_total", "", 1)


async def lend_posts_until_one_is_sent(
    agent: AgentProcess, sim: ApiSimulator, counting: CountingTarget, *, held: str, lent: str
) -> tuple[dict[str, Any], str]:
    """Lend a taskset of two POSTs held at the gate ``lent`` (the helper's one slot: one
    sent, one waiting); its tasks and the node sent, once it reached the target."""
    tasks = {
        f"{lent}-{i}": http_task(counting.url(f"/gate/{lent}?id={lent}-{i}"), method="POST")
        for i in range(2)
    }
    await lend_one(agent, sim, counting, held=held, lent=lent, lent_tasks=tasks)

    async def one_sent() -> bool:
        return sum(counting.hits(f"id={lent}-").values()) == 1

    await wait_until(one_sent, "the helper's first POST to arrive", agent)
    (sent,) = [k.partition("id=")[2] for k in counting.hits(f"id={lent}-")]
    return tasks, sent


async def test_a_load_one_worker_carries_is_not_split(
    spawn: Spawn, sim: ApiSimulator, counting: CountingTarget
) -> None:
    """The primary (worker 1/2) runs what it can carry: nothing is lent to the helper, whose
    process does no work (a split load costs more CPU per task: docs/performance.md)."""
    big, small = post_tasks(counting, "big", 40), post_tasks(counting, "small", 6)
    agent = spawn("--namespace", NS, "--processes", "2", "--task-workers", "200")
    async with agent:
        assert (await agent.get("/readyz")).status_code == 200
        assert (await agent.get("/healthz")).status_code == 200
        sim.create_object(TS, taskset("big", big))
        sim.create_object(TS, taskset("small", small))
        nodes = {
            "big": await wait_for_nodes(sim, "big", big, timeout=30),
            "small": await wait_for_nodes(sim, "small", small, timeout=30),
        }
        total = len(big) + len(small)
        # A worker counts a result before it is patched, and a scrape asks every worker for
        # a fresh snapshot first: the first scrape after the results are in has them all.
        text = (await agent.get("/metrics")).text
        assert metric(text, "argo_agent_tasks_finished_total", 'phase="Succeeded"') == total
        assert metric(text, "argo_agent_tasks_received_total") == total
        assert metric(text, "argo_agent_tasksets_lent_total") == 0
        assert metric(text, "argo_agent_worker_restarts_total") == 0
        assert re.search(r'^argo_agent_build_info\{[^}]*processes="2"', text, re.M), text
        # Each worker's CPU under its own name: whether the load needs two processes.
        cpu = worker_cpu(text)
        assert sorted(cpu) == ["1/2", "2/2"], text
        assert all(seconds > 0 for seconds in cpu.values()), cpu
        assert (await agent.get("/readyz")).status_code == 200
        assert await agent.stop() == 0
    logs = agent.logs()

    for name, tasks in (("big", big), ("small", small)):
        for node_id in tasks:
            result = nodes[name][node_id]
            assert result["phase"] == "Succeeded", (node_id, result)
            assert json.loads(result["outputs"]["result"])["query"] == f"id={node_id}"
        assert final_reports(sim, name) == Counter(dict.fromkeys(tasks, 1))
        assert_each_requested_once(counting, name, list(tasks))

    assert "worker=1/2" in logs and "worker=2/2" in logs
    assert re.search(r"helper worker connected \[helper=1 ", logs), logs
    # The claim before each POST names the instance that sent it: the primary's.
    announced = instances(logs)
    assert sorted(announced) == ["1/2", "2/2"], logs
    (primary,) = announced["1/2"]
    assert "w0-" in primary
    for name, tasks in (("big", big), ("small", small)):
        claimed = claims(sim, name)
        assert claimed == {node_id: [primary] for node_id in tasks}


async def test_a_busy_primary_lends_a_whole_taskset_to_a_helper(
    spawn: Spawn, sim: ApiSimulator, counting: CountingTarget
) -> None:
    """A taskset that appears while the primary's slots are taken is lent, whole, to the
    helper: it runs there although the primary's one slot stays held; its claims name the
    primary, the pod's member (which every other member judges alive)."""
    lent = post_tasks(counting, "lent", 3)
    agent = spawn("--namespace", NS, "--processes", "2", "--task-workers", "2")
    try:
        async with agent:
            await lend_one(agent, sim, counting, held="held", lent="lent", lent_tasks=lent)
            nodes = await wait_for_nodes(sim, "lent", lent)
            # The primary's only slot is still held at the gate: the helper ran these.
            assert sum(counting.hits("id=held-").values()) == 1
            counting.open_gate("held")
            held = await wait_for_nodes(sim, "held", ["held-0", "held-1"])
            text = (await agent.get("/metrics")).text
            assert metric(text, "argo_agent_tasksets_lent_total") == 1
            assert metric(text, "argo_agent_tasksets_returned_total") == 0
    finally:
        counting.open_gate("held")
    logs = agent.logs()
    assert all(v["phase"] == "Succeeded" for v in {**nodes, **held}.values())
    assert_each_requested_once(counting, "lent", list(lent))
    assert final_reports(sim, "lent") == Counter(dict.fromkeys(lent, 1))
    (primary,) = instances(logs)["1/2"]
    assert claims(sim, "lent") == {node_id: [primary] for node_id in lent}


async def test_a_helper_that_dies_gives_its_tasksets_back_without_sending_twice(
    spawn: Spawn, sim: ApiSimulator, counting: CountingTarget
) -> None:
    """SIGKILL of the helper while a POST it claimed is in flight: the primary takes the
    taskset back, reads it afresh, and settles that POST as a gone instance's (redelivery
    policy 'idempotent': Failed, not sent again); the node the helper never started runs."""
    agent = spawn("--namespace", NS, "--processes", "2", "--task-workers", "2")
    try:
        async with agent:
            lent, sent = await lend_posts_until_one_is_sent(
                agent, sim, counting, held="keep", lent="back"
            )
            helper = dict(started_workers(agent.logs()))["2/2"]
            os.kill(helper, signal.SIGKILL)
            await wait_metric(agent, "argo_agent_tasksets_returned_total", "", 1)
            counting.open_gate("keep")
            counting.open_gate("back")
            nodes = await wait_for_nodes(sim, "back", lent)
            await wait_for_nodes(sim, "keep", ["keep-0", "keep-1"])
    finally:
        counting.open_gate("keep")
        counting.open_gate("back")
    (unsent,) = set(lent) - {sent}
    assert nodes[sent]["phase"] == "Failed", nodes
    assert "was not sent again" in nodes[sent]["message"], nodes
    assert nodes[unsent]["phase"] == "Succeeded", nodes
    assert counting.hits("id=back-") == Counter({f"/gate/back?id={n}": 1 for n in lent}), (
        "a request sent twice"
    )
    assert "helper worker gone: its tasksets come back to the primary" in agent.logs()


async def test_a_helper_stopped_alone_reports_what_it_ran_before_its_tasksets_go_back(
    spawn: Spawn, sim: ApiSimulator, counting: CountingTarget
) -> None:
    """SIGTERM to the helper alone: it drains (its POST in flight completes and is
    reported) while the primary lends it nothing more, and only once it has exited does the
    primary take its taskset back and run the node it never started; nothing is sent twice."""
    agent = spawn("--namespace", NS, "--processes", "2", "--task-workers", "2")
    try:
        async with agent:
            lent, _ = await lend_posts_until_one_is_sent(
                agent, sim, counting, held="stay", lent="leave"
            )
            helper = dict(started_workers(agent.logs()))["2/2"]
            os.kill(helper, signal.SIGTERM)

            async def draining() -> bool:
                return bool(re.search(r"stopping: signal SIGTERM \[.*worker=2/2\]", agent.logs()))

            await wait_until(draining, "the helper to drain", agent)
            await asyncio.sleep(1.5)  # longer than the primary waits before taking back
            assert "helper worker gone" not in agent.logs()
            counting.open_gate("leave")  # the helper's POST completes while it drains
            counting.open_gate("stay")
            nodes = await wait_for_nodes(sim, "leave", lent)
            await wait_for_nodes(sim, "stay", ["stay-0", "stay-1"])
            await wait_metric(agent, "argo_agent_tasksets_returned_total", "", 1)
    finally:
        counting.open_gate("leave")
        counting.open_gate("stay")
    assert all(v["phase"] == "Succeeded" for v in nodes.values()), nodes
    assert counting.hits("id=leave-") == Counter({f"/gate/leave?id={n}": 1 for n in lent}), (
        "a request sent twice"
    )


async def test_a_new_primary_starts_only_after_its_helpers_drained(
    spawn: Spawn, sim: ApiSimulator, counting: CountingTarget
) -> None:
    """SIGKILL of the primary: the helper stops (its requests finish and are reported) and
    only then does a new primary start, which settles the dead primary's claim and runs the
    rest; no request is sent twice."""
    lent = {"drained-0": http_task(counting.url("/gate/drained?id=drained-0"), method="POST")}
    agent = spawn("--namespace", NS, "--processes", "2", "--task-workers", "2")
    try:
        async with agent:
            await lend_one(agent, sim, counting, held="orphan", lent="drained", lent_tasks=lent)

            async def lent_sent() -> bool:
                return sum(counting.hits("id=drained-").values()) == 1

            await wait_until(lent_sent, "the helper's POST to arrive", agent)
            primary = dict(started_workers(agent.logs()))["1/2"]
            os.kill(primary, signal.SIGKILL)

            async def helper_draining() -> bool:
                return "stopping: the primary worker is gone [" in agent.logs()

            await wait_until(helper_draining, "the helper to start draining", agent)
            await asyncio.sleep(1.0)  # a new primary would have started by now (backoff 0.5 s)
            assert [w for w, _ in started_workers(agent.logs())] == ["1/2", "2/2"]
            counting.open_gate("drained")  # the helper's request completes while it drains
            nodes = await wait_for_nodes(sim, "drained", lent)
            counting.open_gate("orphan")
            orphan = await wait_for_nodes(sim, "orphan", ["orphan-0", "orphan-1"])
            await wait_metric(agent, "argo_agent_worker_restarts_total", "", 2)
    finally:
        counting.open_gate("drained")
        counting.open_gate("orphan")
    logs = agent.logs()
    assert nodes["drained-0"]["phase"] == "Succeeded", nodes
    assert counting.hits("id=drained-") == Counter({"/gate/drained?id=drained-0": 1})
    # The dead primary's GET in flight is idempotent: sent again by the new primary.
    assert all(v["phase"] == "Succeeded" for v in orphan.values()), orphan
    started = [w for w, _ in started_workers(logs)]
    assert sorted(started) == ["1/2", "1/2", "2/2", "2/2"]
    second_primary = [m.start() for m in re.finditer(r"worker started \[worker=1/2", logs)][1]
    helper_stopped = logs.index("agent stopped [reason=the primary worker is gone")
    assert helper_stopped < second_primary, logs


async def test_sigterm_drains_in_flight_requests_of_every_worker(
    spawn: Spawn, sim: ApiSimulator, counting: CountingTarget
) -> None:
    # The primary holds one request and has lent a taskset whose request the helper holds.
    agent = spawn("--namespace", NS, "--processes", "2", "--task-workers", "2")
    lent = {"drain-lent-0": http_task(counting.url("/gate/drain-held?id=drain-lent-0"))}
    await agent.start()
    try:
        await agent.wait_ready()
        await lend_one(agent, sim, counting, held="drain-held", lent="drain-lent", lent_tasks=lent)

        async def both_held() -> bool:
            hits = counting.hits("/gate/drain-held")
            return sum(hits.values()) == 2

        await wait_until(both_held, "a request held in each worker", agent)
        for name in ("drain-held", "drain-lent"):
            status = sim.get_object(TS, name, namespace=NS).get("status") or {}
            assert not status.get("nodes")
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGTERM)

        async def both_stopping() -> bool:
            logs = agent.logs()
            return all(
                re.search(rf"stopping: signal SIGTERM \[.*worker={w}\]", logs)
                for w in ("1/2", "2/2")
            )

        await wait_until(both_stopping, "both workers to start draining", agent)
        counting.open_gate("drain-held")  # the held requests complete only now, while draining
        assert await agent.stop(sig=0) == 0, agent.logs()
    finally:
        counting.open_gate("drain-held")
    lent_nodes = sim.get_object(TS, "drain-lent", namespace=NS)["status"]["nodes"]
    assert lent_nodes == {"drain-lent-0": {"phase": "Succeeded", "outputs": {"result": "opened"}}}
    held_nodes = sim.get_object(TS, "drain-held", namespace=NS)["status"]["nodes"]
    # The primary's running request finished in the drain; the one queued behind it never
    # started (a draining engine starts nothing).
    assert held_nodes["drain-held-0"] == {"phase": "Succeeded", "outputs": {"result": "opened"}}
    assert counting.hits("/gate/drain-held") == Counter(
        {"/gate/drain-held?id=drain-held-0": 1, "/gate/drain-held?id=drain-lent-0": 1}
    ), "a request sent twice, or started while draining"
    logs = agent.logs()
    assert "worker exited [worker=1/2 code=0]" in logs
    assert "worker exited [worker=2/2 code=0]" in logs


async def test_task_workers_are_split_between_the_processes(
    spawn: Spawn, sim: ApiSimulator, counting: CountingTarget
) -> None:
    """ARGO_AGENT_TASK_WORKERS bounds the whole agent: 2 over 2 processes is 1 each."""
    lent = {f"split-{j}": http_task(counting.url(f"/gate/split?id=split-{j}")) for j in range(2)}
    agent = spawn("--namespace", NS, "--processes", "2", "--task-workers", "2")
    try:
        async with agent:
            await lend_one(agent, sim, counting, held="split-held", lent="split", lent_tasks=lent)

            async def one_running_one_queued_each() -> bool:
                text = (await agent.get("/metrics")).text
                return (
                    metric(text, "argo_agent_tasks_in_flight") == 2
                    and metric(text, "argo_agent_tasks_queued") == 2
                    and sum(counting.hits("id=split-").values()) == 2
                )

            await wait_until(one_running_one_queued_each, "one task in flight per worker", agent)
            counting.open_gate("split")
            counting.open_gate("split-held")
            nodes = await wait_for_nodes(sim, "split", lent)
            nodes.update(await wait_for_nodes(sim, "split-held", ["split-held-0", "split-held-1"]))
    finally:
        counting.open_gate("split")
        counting.open_gate("split-held")
    assert all(v == {"phase": "Succeeded", "outputs": {"result": "opened"}} for v in nodes.values())
    assert counting.hits("id=split-") == Counter(
        {f"/gate/split?id={n}": 1 for n in lent}
        | {f"/gate/split-held?id=split-held-{i}": 1 for i in range(2)}
    )


async def test_killed_worker_is_restarted_and_counts_are_kept(
    spawn: Spawn, sim: ApiSimulator, counting: CountingTarget
) -> None:
    # The victim is the primary (worker 1/2), which ran the first taskset: its counts are
    # carried over; its helper stops with it, and both are started again.
    before, after = post_tasks(counting, "before", 8), post_tasks(counting, "after", 8)
    agent = spawn("--namespace", NS, "--processes", "2")
    async with agent:
        sim.create_object(TS, taskset("before", before))
        await wait_for_nodes(sim, "before", before)
        await wait_metric(agent, "argo_agent_tasks_finished_total", 'phase="Succeeded"', 8)

        assert agent.proc is not None
        workers = dict(started_workers(agent.logs()))
        assert sorted(workers) == ["1/2", "2/2"]
        assert set(workers.values()) <= descendants(agent.proc.pid)
        victim = workers["1/2"]
        cpu_before = worker_cpu((await agent.get("/metrics")).text)["1/2"]
        os.kill(victim, signal.SIGKILL)

        await wait_metric(agent, "argo_agent_worker_restarts_total", "", 2)

        async def ready() -> bool:
            return (await agent.get("/readyz")).status_code == 200

        await wait_until(ready, "readiness after the restart", agent)
        assert (await agent.get("/healthz")).status_code == 200
        # What the dead worker had counted is carried: the total did not go backwards.
        text = (await agent.get("/metrics")).text
        assert metric(text, "argo_agent_tasks_finished_total", 'phase="Succeeded"') == 8
        assert metric(text, "argo_agent_worker_restarts_total") == 2
        assert worker_cpu(text)["1/2"] >= cpu_before  # the dead worker's CPU is carried
        started = started_workers(agent.logs())
        assert sorted(w for w, _ in started) == ["1/2", "1/2", "2/2", "2/2"]
        replacement = [pid for w, pid in started if w == "1/2"][-1]
        assert replacement != victim
        assert replacement in descendants(agent.proc.pid)
        assert victim not in descendants(agent.proc.pid)
        assert "worker died; restarting it" in agent.logs()

        sim.create_object(TS, taskset("after", after))
        nodes = await wait_for_nodes(sim, "after", after)
        await wait_metric(agent, "argo_agent_tasks_finished_total", 'phase="Succeeded"', 16)
        assert (await agent.get("/readyz")).status_code == 200
    logs = agent.logs()

    assert all(v["phase"] == "Succeeded" for v in nodes.values()), nodes
    assert_each_requested_once(counting, "before", list(before))
    assert_each_requested_once(counting, "after", list(after))
    # The replacement (a new instance of worker 1/2) ran the new taskset.
    announced = instances(logs)
    assert len(announced["1/2"]) == 2 and len(announced["2/2"]) == 2, logs
    first, second = announced["1/2"]
    assert first != second and "w0-" in second
    claimed = claims(sim, "after")
    for node_id in after:
        assert claimed[node_id] == [second], node_id
    claimed = claims(sim, "before")
    for node_id in before:
        assert len(claimed[node_id]) == 1, "a finished node was claimed (run) again"


async def test_a_worker_that_exits_cleanly_in_shared_mode_is_restarted(
    spawn: Spawn, sim: ApiSimulator, counting: CountingTarget
) -> None:
    """Shared mode has no "finished": a worker that exits 0 (here: the primary, SIGTERMed by
    someone else, and its helper after it) is replaced, or nothing would run while /healthz
    stays green."""
    tasks = post_tasks(counting, "clean-exit", 8)
    agent = spawn("--namespace", NS, "--processes", "2")
    async with agent:
        victim = dict(started_workers(agent.logs()))["1/2"]
        os.kill(victim, signal.SIGTERM)  # drains and exits 0
        await wait_metric(agent, "argo_agent_worker_restarts_total", "", 2)

        async def ready() -> bool:
            return (await agent.get("/readyz")).status_code == 200

        await wait_until(ready, "readiness after the restart", agent)
        sim.create_object(TS, taskset("clean-exit", tasks))
        nodes = await wait_for_nodes(sim, "clean-exit", tasks)
    assert all(v["phase"] == "Succeeded" for v in nodes.values()), nodes
    assert_each_requested_once(counting, "clean-exit", list(tasks))
    assert sorted(w for w, _ in started_workers(agent.logs())) == ["1/2", "1/2", "2/2", "2/2"]


async def test_sigterm_while_the_workers_start_exits_0(spawn: Spawn, sim: ApiSimulator) -> None:
    """A pod deleted right after it started: workers that had no handler yet die by the
    relayed SIGTERM, which is a clean stop (they held no work)."""
    agent = spawn("--namespace", NS, "--processes", "2")
    await agent.start()

    async def both_started() -> bool:
        return len(started_workers(agent.logs())) == 2

    await wait_until(both_started, "both workers to be started", agent)
    assert await agent.stop() == 0, agent.logs()
    assert "supervisor stopped [code=0]" in agent.logs()


async def test_an_unusable_configuration_exits_2_instead_of_restarting(
    spawn: Spawn, tmp_path: Path
) -> None:
    """Restarting cannot fix a missing kubeconfig: exit 2 at once, as one process would."""
    agent = spawn("--namespace", NS, "--processes", "2")
    agent.args[agent.args.index("--kubeconfig") + 1] = str(tmp_path / "missing")
    await agent.start()
    assert await agent.wait_exit(timeout=30) == 2, agent.logs()
    logs = agent.logs()
    assert "cannot configure the Kubernetes client" in logs
    assert "worker died" not in logs


def test_carried_counts_keep_their_type_while_no_worker_reports() -> None:
    """Counts of dead workers keep their metric type and help even before a live worker
    has reported again (a scrape in the restart window)."""
    from prometheus_client import generate_latest

    from agent.service.supervisor import Supervisor

    supervisor = Supervisor(settings=load_settings(namespaces=[NS]), processes=2)
    worker = supervisor.workers[0]
    worker.metrics = [
        (
            "argo_agent_tasks_finished",
            "counter",
            "Tasks finished, by resulting node phase",
            [("argo_agent_tasks_finished_total", (("phase", "Succeeded"),), 6.0)],
        )
    ]
    supervisor._carry(worker)
    text = generate_latest(supervisor.registry).decode()
    assert "# TYPE argo_agent_tasks_finished_total counter" in text
    assert "# HELP argo_agent_tasks_finished_total Tasks finished" in text
    assert 'argo_agent_tasks_finished_total{phase="Succeeded"} 6.0' in text


async def test_a_killed_supervisor_leaves_no_processes_behind(
    spawn: Spawn, sim: ApiSimulator
) -> None:
    """SIGKILL of the supervisor: the fork server and the workers all go away by themselves
    (the workers see their pipe close and drain)."""
    agent = spawn("--namespace", NS, "--processes", "2")
    async with agent:
        assert agent.proc is not None
        below = descendants(agent.proc.pid)
        workers = {pid for _, pid in started_workers(agent.logs())}
        assert workers <= below and len(below) >= 3  # the fork server and two workers
        agent.proc.kill()
        await agent.proc.wait()

        async def all_gone() -> bool:
            return not any(Path(f"/proc/{pid}").exists() for pid in below)

        await wait_until(all_gone, "the fork server and the workers to exit", agent)
    assert "the supervisor is gone: stopping" in agent.logs()


async def test_not_ready_while_the_workers_are_not(spawn: Spawn, sim: ApiSimulator) -> None:
    """/readyz of the supervisor is the workers' readiness, with each one's reason relayed."""
    sim.add_token("revocable")
    agent = spawn("--namespace", NS, "--processes", "2", token="revocable")
    async with agent:
        sim.remove_token("revocable")
        sim.drop_watches()
        response = await agent.get("/readyz")

        async def not_ready() -> bool:
            nonlocal response
            response = await agent.get("/readyz")
            reason = response.json()["reason"]
            return response.status_code == 503 and "1/2" in reason

        # The primary's watch fails; the helper does not watch (its primary relays).
        await wait_until(not_ready, "/readyz to fail for the primary", agent)
        body = response.json()
        assert body["status"] == "not ready"
        assert "401" in body["reason"] or "Unauthorized" in body["reason"], body
        assert (await agent.get("/healthz")).status_code == 200  # alive, just not ready
        assert agent.proc is not None and agent.proc.returncode is None


@pytest.mark.parametrize("ending", ["completed", "deleted"])
async def test_per_workflow_mode_with_two_processes_exits_when_done(
    spawn: Spawn, sim: ApiSimulator, counting: CountingTarget, ending: str
) -> None:
    # One taskset: one worker runs it, both watch it and both exit once it is done.
    tasks = post_tasks(counting, f"pwf-{ending}", 6)
    sim.create_object(TS, taskset("mine", tasks))
    sim.create_object(TS, taskset("other", {"n": http_task(counting.url("/status/200"))}))
    agent = spawn("--namespace", NS, "--processes", "2", "--workflow", "mine")
    await agent.start()
    await agent.wait_ready()
    await wait_for_nodes(sim, "mine", tasks)
    if ending == "completed":
        sim.patch_object(TS, "mine", COMPLETED, namespace=NS)
    else:
        sim.delete_object(TS, "mine", namespace=NS)
    assert await agent.stop(sig=0, timeout=20) == 0  # no signal: it must exit by itself
    logs = agent.logs()
    assert "worker exited [worker=1/2 code=0]" in logs
    assert "worker exited [worker=2/2 code=0]" in logs
    assert "supervisor stopped [code=0]" in logs
    assert sorted(instances(logs)) == ["1/2", "2/2"]
    assert_each_requested_once(counting, f"pwf-{ending}", list(tasks))
    other = sim.get_object(TS, "other", namespace=NS)
    assert not (other.get("status") or {}).get("nodes"), "served a taskset not its own"


async def test_zero_processes_means_one_per_cpu(spawn: Spawn, sim: ApiSimulator) -> None:
    cpus = process.available_cpus()
    if cpus < 2:
        pytest.skip("one CPU available: the agent runs as a single process")
    agent = spawn("--namespace", NS, env={"ARGO_AGENT_PROCESSES": "0"})
    async with agent:
        text = (await agent.get("/metrics")).text
    assert re.search(rf'^argo_agent_build_info\{{[^}}]*processes="{cpus}"', text, re.M), text
    assert sorted(w for w, _ in started_workers(agent.logs())) == sorted(
        str(Shard(i, cpus)) for i in range(cpus)
    )


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ((), {"ARGO_AGENT_PROCESSES": "abc"}, "ARGO_AGENT_PROCESSES"),
        ((), {"ARGO_AGENT_PROCESSES": "-1"}, "ARGO_AGENT_PROCESSES"),
        (("--processes", "-1"), {}, "--processes"),
    ],
)
async def test_invalid_process_count_fails_at_start(
    spawn: Spawn, sim: ApiSimulator, args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    agent = spawn("--namespace", NS, *args, env=env)
    await agent.start()
    code = await agent.wait_exit(15)
    await agent.kill()  # closes its log
    assert code == 2
    assert named in agent.logs()
    assert "supervisor started" not in agent.logs()


# -- settings: how many processes --------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ARGO_AGENT_PROCESSES", "ARGO_WORKFLOW_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_env")
def test_process_count() -> None:
    assert run.process_count(load_settings()) == 1  # today's single process by default
    assert run.process_count(load_settings(processes=3)) == 3
    assert run.process_count(load_settings(processes=2, workflow="wf")) == 2
    assert run.process_count(load_settings(processes=0)) == process.available_cpus()
    assert run.process_count(load_settings(processes=0, workflow="wf")) == 1


@pytest.mark.usefixtures("clean_env")
def test_process_count_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGO_AGENT_PROCESSES", "4")
    assert run.process_count(load_settings()) == 4
    assert run.process_count(load_settings(processes=2)) == 2  # the flag wins


def test_available_cpus_is_within_the_affinity() -> None:
    cpus = process.available_cpus()
    assert 1 <= cpus <= len(os.sched_getaffinity(0))
    quota = process._cgroup_cpu_quota()
    if quota is not None:
        assert cpus <= max(1, -(-quota // 1))


@pytest.mark.parametrize(
    ("affinity", "quota", "expected"),
    [(4, None, 4), (4, 1.5, 2), (4, 0.2, 1), (2, 8.0, 2), (1, None, 1)],
)
def test_available_cpus_is_capped_by_the_cgroup_quota(
    monkeypatch: pytest.MonkeyPatch, affinity: int, quota: float | None, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)))
    monkeypatch.setattr(process, "_cgroup_cpu_quota", lambda: quota)
    assert process.available_cpus() == expected


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", None), ("150000 100000\n", 1.5), ("200000 100000", 2.0), ("max", None)],
)
def test_cgroup_v2_quota(tmp_path: Path, cpu_max: str, expected: float | None) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert process._cgroup_cpu_quota(tmp_path) == expected


@pytest.mark.parametrize(
    ("quota_us", "period_us", "expected"),
    [("150000\n", "100000\n", 1.5), ("-1\n", "100000\n", None), ("50000", "100000", 0.5)],
)
def test_cgroup_v1_quota(
    tmp_path: Path, quota_us: str, period_us: str, expected: float | None
) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(quota_us)
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(period_us)
    assert process._cgroup_cpu_quota(tmp_path) == expected


def test_cgroup_quota_without_any_files(tmp_path: Path) -> None:
    assert process._cgroup_cpu_quota(tmp_path) is None


# -- the shard hash ----------------------------------------------------------------------------

IDS = [f"wf-{i}-{j}" for i in range(50) for j in range(4)] + ["", "ünïcode-ñode", "a" * 300]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_every_node_is_owned_by_exactly_one_shard(count: int) -> None:
    shards = [Shard(i, count) for i in range(count)]
    for node_id in IDS:
        assert sum(s.owns(node_id) for s in shards) == 1, node_id
    if count > 1:  # and the hash spreads the work: every shard gets some of 200 IDs
        assert all(any(s.owns(n) for n in IDS) for s in shards)


def test_shard_ownership_is_stable() -> None:
    first = {n: [s.owns(n) for s in SHARDS] for n in IDS}
    again = {n: [Shard(s.index, s.count).owns(n) for s in SHARDS] for n in IDS}
    assert first == again
    # Rendezvous hashing with BLAKE2b over the static members worker-0 .. worker-N-1, not
    # Python's per-process salted hash(): fixed values any process agrees on.
    assert Shard(0, 2).owns("a") and not Shard(1, 2).owns("a")
    assert Shard(1, 2).owns("d") and not Shard(0, 2).owns("d")
    assert Shard(2, 3).owns("c") and Shard(0, 3).owns("b")


def test_shard_ownership_is_the_same_in_another_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from agent.engine.shard import Shard\n"
        "ids = json.load(sys.stdin)\n"
        "print(json.dumps([[Shard(i, 3).owns(n) for i in range(3)] for n in ids]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(IDS),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "random"},
        timeout=30,
    ).stdout
    assert json.loads(out) == [[Shard(i, 3).owns(n) for i in range(3)] for n in IDS]


@pytest.mark.parametrize(("index", "count"), [(-1, 2), (2, 2), (5, 2), (0, 0)])
def test_shard_index_out_of_range(index: int, count: int) -> None:
    with pytest.raises(ValueError):
        Shard(index, count)


def test_shard_name() -> None:
    assert str(Shard(0, 2)) == "1/2" and str(Shard(1, 2)) == "2/2"


# -- the engine runs only what it owns -------------------------------------------------------

KEY = TaskSetKey("ns", "wf")


class Runner:
    def __init__(self) -> None:
        self.started: list[str] = []

    async def run(self, template: Mapping[str, Any], *, ref: TaskRef) -> NodeResult:
        self.started.append(ref.node_id)
        await asyncio.sleep(0)
        return NodeResult(phase=NodePhase.SUCCEEDED, message=ref.node_id)


class Sink:
    def __init__(self) -> None:
        self.results: list[tuple[str, NodeResult]] = []

    def submit(self, ref: TaskRef, result: NodeResult, *, overwrite: bool = False) -> None:
        self.results.append((ref.node_id, result))

    def discard(self, key: TaskSetKey, node_ids: frozenset[str] | None = None) -> None:
        pass


class RecordingClaims:
    """Claims that never claim; records which nodes it was asked to adopt."""

    def __init__(self) -> None:
        self.adopted: list[str] = []

    def adopt(
        self, ref: TaskRef, template: Mapping[str, Any], status: Mapping[str, Any]
    ) -> NodeResult | None:
        self.adopted.append(ref.node_id)
        return None

    def needs_claim(self, template: Mapping[str, Any]) -> bool:
        return False

    async def claim(self, ref: TaskRef, template: Mapping[str, Any]) -> None:
        raise AssertionError("never claimed")

    def abandoned(self, ref: TaskRef) -> NodeResult | None:
        return None

    def superseded(self, ref: TaskRef) -> NodeResult:
        raise AssertionError("a static member set has no fence")

    def release(self, ref: TaskRef) -> None:
        pass

    def claim_now(self, ref: TaskRef) -> None:
        raise AssertionError("a static member set never hands over")

    def claimant(self, status: Mapping[str, Any]) -> str | None:
        return None


def snap(tasks: Mapping[str, Any], nodes: Mapping[str, Any] | None = None) -> TaskSetSnapshot:
    return TaskSetSnapshot(key=KEY, tasks=tasks, nodes=nodes or {}, completed=False)


def templates(node_ids: list[str]) -> dict[str, Any]:
    return {n: {"say": n} for n in node_ids}


async def run_engine(engine: Engine, *snapshots: TaskSetSnapshot) -> None:
    loop = asyncio.create_task(engine.run())
    try:
        await asyncio.sleep(0)
        for snapshot in snapshots:
            engine.observe(snapshot)
            await asyncio.sleep(0)
            await asyncio.wait_for(engine.wait_idle(), 10)
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop


KEYS = [TaskSetKey("ns", f"wf{i}") for i in range(10)]


def nodes_of(key: TaskSetKey, count: int) -> list[str]:
    return [f"{key.name}-node-{j}" for j in range(count)]


async def test_engine_runs_and_reports_only_owned_nodes() -> None:
    outcomes = []
    for shard in SHARDS:
        runner, sink = Runner(), Sink()
        engine = Engine(
            runner=runner, sink=sink, max_in_flight=4, ownership=shard.static_ownership()
        )
        snapshots = []
        for key in KEYS:
            first, every = nodes_of(key, 2), nodes_of(key, 3)
            snapshots += [
                TaskSetSnapshot(key=key, tasks=templates(first), nodes={}),
                # a repeated event runs nothing again
                TaskSetSnapshot(key=key, tasks=templates(first), nodes={}),
                # new nodes: again only those of owned tasksets
                TaskSetSnapshot(key=key, tasks=templates(every), nodes={}),
            ]
        await run_engine(engine, *snapshots)
        mine = [k for k in KEYS if shard.owns(unit_of(k.namespace, k.name))]
        assert mine and len(mine) < len(KEYS)
        owned = [n for k in mine for n in nodes_of(k, 3)]
        assert sorted(runner.started) == sorted(owned)
        assert sorted(n for n, _ in sink.results) == sorted(owned)
        assert all(r.message == n for n, r in sink.results)
        # Nodes of other tasksets are known (they may be reported by their owner) but never
        # queued; the source was not told to skip them, since the engine holds them.
        others = [k for k in KEYS if k not in mine]
        assert all(engine.is_current(k, n) for k in others for n in nodes_of(k, 3))
        assert not any(engine.skips(k) for k in KEYS)
        assert engine.queued == 0 and engine.in_flight == 0
        outcomes.append(set(runner.started))
    assert outcomes[0].isdisjoint(outcomes[1])
    assert outcomes[0] | outcomes[1] == {n for k in KEYS for n in nodes_of(k, 3)}


def test_the_engine_skips_only_tasksets_another_member_owns_and_it_holds_nothing_of() -> None:
    unknown = [TaskSetKey("ns", f"unseen{i}") for i in range(20)]
    for shard in SHARDS:
        engine = Engine(
            runner=Runner(), sink=Sink(), max_in_flight=1, ownership=shard.static_ownership()
        )
        skipped = {k for k in unknown if engine.skips(k)}
        assert skipped == {k for k in unknown if not shard.owns(unit_of(k.namespace, k.name))}
        assert skipped and len(skipped) < len(unknown)
    alone = Engine(runner=Runner(), sink=Sink(), max_in_flight=1)
    assert not any(alone.skips(k) for k in unknown)  # no ownership: everything is ours


async def test_engine_leaves_claims_of_unowned_nodes_alone() -> None:
    """A node another worker claimed (Running) is that worker's: never adopted nor re-run."""
    shard = SHARDS[0]

    def owner_of_key(key: TaskSetKey) -> int:
        return 0 if SHARDS[0].owns(unit_of(key.namespace, key.name)) else 1

    assert {owner_of_key(k) for k in KEYS} == {0, 1}
    snapshots = []
    for key in KEYS:
        node_ids = nodes_of(key, 2)
        running = {
            n: {
                "phase": "Running",
                "message": f"argo-http-agent gone-w{owner_of_key(key)}-1: request in flight",
            }
            for n in node_ids
        }
        snapshots.append(TaskSetSnapshot(key=key, tasks=templates(node_ids), nodes=running))
    runner, sink, policy = Runner(), Sink(), RecordingClaims()
    engine = Engine(
        runner=runner, sink=sink, max_in_flight=2, claims=policy, ownership=shard.static_ownership()
    )
    await run_engine(engine, *snapshots)
    owned = sorted(n for k in KEYS if owner_of_key(k) == 0 for n in nodes_of(k, 2))
    assert sorted(policy.adopted) == owned
    assert sorted(runner.started) == owned
    assert sorted(n for n, _ in sink.results) == owned


async def test_engine_without_owns_runs_everything() -> None:
    runner, sink = Runner(), Sink()
    engine = Engine(runner=runner, sink=sink, max_in_flight=4)
    node_ids = [f"node-{i}" for i in range(10)]
    await run_engine(engine, snap(templates(node_ids)))
    assert sorted(runner.started) == sorted(node_ids)
