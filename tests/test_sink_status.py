"""The status patcher (agent/sink/status.py) against the API simulator over real HTTP.

Each test drives a real :class:`StatusPatcher` through a real ``ApiClient`` (the agent's
own ``connect``) at the simulator, injects the API's failures with the simulator's fault
rules, and judges by what the API stored and by the simulator's request log (what was
actually sent, and how it was answered).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from agent_sim import ApiSimulator
from agent_sim.samples import workflow_taskset
from kubernetes_asyncio import client

from agent.core.model import NodePhase, NodeResult, Outputs
from agent.core.refs import TaskRef, TaskSetKey
from agent.sink.status import PATCH_ERROR_PREFIX, StatusPatcher

NS = "argo"
TS = "workflowtasksets"
STATUS = "workflowtasksets/status"
WAIT = 30.0  # bound on every wait: a hang fails the test instead of blocking the suite


@dataclass
class Current:
    """The engine's ``is_current``: which nodes are still in ``spec.tasks``."""

    nodes: set[tuple[str, str]] = field(default_factory=set)

    def add(self, name: str, *node_ids: str) -> None:
        self.nodes.update((name, n) for n in node_ids)

    def remove(self, name: str, *node_ids: str) -> None:
        self.nodes.difference_update((name, n) for n in node_ids)

    def __call__(self, key: TaskSetKey, node_id: str) -> bool:
        return (key.name, node_id) in self.nodes


@pytest.fixture
def current() -> Current:
    return Current()


@pytest.fixture
async def make_patcher(api: client.ApiClient, current: Current) -> AsyncIterator[Any]:
    made: list[StatusPatcher] = []

    def make(**options: Any) -> StatusPatcher:
        options.setdefault("retry_base", 0.01)
        options.setdefault("retry_cap", 0.05)
        patcher = StatusPatcher(api=api, is_current=current, **options)
        made.append(patcher)
        return patcher

    try:
        yield make
    finally:
        for patcher in made:
            await patcher.aclose()


def create(sim: ApiSimulator, current: Current, name: str, *node_ids: str) -> None:
    """A taskset with these nodes in ``spec.tasks`` (all current)."""
    tasks = {n: {"name": "http", "http": {"url": "http://127.0.0.1:9/"}} for n in node_ids}
    sim.create_object(TS, workflow_taskset(name, tasks, namespace=NS))
    current.add(name, *node_ids)


def ref(name: str, node_id: str) -> TaskRef:
    return TaskRef(namespace=NS, taskset=name, node_id=node_id)


def ok(text: str) -> NodeResult:
    return NodeResult(phase=NodePhase.SUCCEEDED, outputs=Outputs(result=text))


def stored(sim: ApiSimulator, name: str) -> dict[str, Any]:
    obj = sim.get_object(TS, name, namespace=NS)
    nodes: dict[str, Any] = (obj.get("status") or {}).get("nodes") or {}
    return nodes


def patches(sim: ApiSimulator, name: str) -> list[tuple[int | None, dict[str, Any]]]:
    """Every status patch the API received for the taskset: (answer, nodes sent)."""
    return [
        (r.status, json.loads(r.body)["status"]["nodes"])
        for r in sim.requests(verb="patch", subresource="status", name=name)
    ]


def landed(sim: ApiSimulator, name: str) -> list[set[str]]:
    """The node IDs of each status patch the API accepted, in order."""
    return [set(nodes) for status, nodes in patches(sim, name) if status == 200]


async def flushed(patcher: StatusPatcher) -> None:
    assert await patcher.flush(timeout=WAIT), "the patcher did not drain"


def submit_all(
    patcher: StatusPatcher, name: str, results: Iterable[tuple[str, NodeResult]]
) -> None:
    for node_id, result in results:
        patcher.submit(ref(name, node_id), result)


# -- isolation: 413 / 422 split the batch ------------------------------------------------


async def test_413_splits_the_batch_until_the_oversized_node_is_alone(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """The API's own 413 (body over its limit): only the oversized node becomes Error with
    Argo's patch-error text, every neighbour's result is delivered."""
    create(sim, current, "wf", "a", "b", "big", "d")
    sim.options.max_body_bytes = 4096
    patcher = make_patcher()
    submit_all(
        patcher,
        "wf",
        [("a", ok("A")), ("b", ok("B")), ("big", ok("x" * 10_000)), ("d", ok("D"))],
    )
    await flushed(patcher)

    nodes = stored(sim, "wf")
    for node_id in ("a", "b", "d"):
        assert nodes[node_id] == {"phase": "Succeeded", "outputs": {"result": node_id.upper()}}
    assert nodes["big"]["phase"] == "Error"
    assert nodes["big"]["message"] == (
        PATCH_ERROR_PREFIX + "Request entity too large: limit is 4096"
    )
    assert "outputs" not in nodes["big"], "the rejected output must not survive"
    sent = patches(sim, "wf")
    assert sent[0][0] == 413 and set(sent[0][1]) == {"a", "b", "big", "d"}
    # The oversized result was rejected alone before it was replaced by its Error.
    assert (413, {"big"}) in [(s, set(n)) for s, n in sent]
    assert all("big" not in n or n["big"]["phase"] == "Error" for s, n in sent if s == 200)
    assert set().union(*landed(sim, "wf")) == {"a", "b", "big", "d"}


async def test_422_isolates_the_rejected_node_and_delivers_its_neighbours(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """A 422 (a value the API refuses) is split like a 413: the Error names the API's text."""
    create(sim, current, "wf", "n1", "n2", "n3", "bad", "n5")
    sim.fail_next(
        None,
        code=422,
        resource=STATUS,
        body_larger_than=2000,
        message="status.nodes.bad: Invalid value",
    )
    patcher = make_patcher()
    submit_all(
        patcher,
        "wf",
        [
            ("n1", ok("1")),
            ("n2", ok("2")),
            ("n3", ok("3")),
            ("bad", ok("y" * 3000)),
            ("n5", ok("5")),
        ],
    )
    await flushed(patcher)

    nodes = stored(sim, "wf")
    assert {n: v["phase"] for n, v in nodes.items()} == {
        "n1": "Succeeded",
        "n2": "Succeeded",
        "n3": "Succeeded",
        "bad": "Error",
        "n5": "Succeeded",
    }
    assert nodes["bad"]["message"] == PATCH_ERROR_PREFIX + "status.nodes.bad: Invalid value"
    assert [(s, set(n)) for s, n in patches(sim, "wf")].count((422, {"bad"})) == 1


async def test_a_rejected_error_result_is_dropped_and_its_waiter_fails(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """When the API rejects even the Error that replaces a result, that node is dropped
    (its submit_and_wait future fails) and the patcher does not loop; neighbours land."""
    create(sim, current, "wf", "fine", "doomed")
    # Every patch naming 'doomed' is over 120 bytes, even its Error (186); 'fine' alone (76)
    # is not.
    sim.fail_next(None, code=400, resource=STATUS, body_larger_than=120, message="bad value")
    patcher = make_patcher()
    patcher.submit(ref("wf", "fine"), ok("f"))
    doomed = patcher.submit_and_wait(ref("wf", "doomed"), ok("z" * 100))
    await flushed(patcher)

    with pytest.raises(LookupError):
        await doomed
    assert stored(sim, "wf") == {"fine": {"phase": "Succeeded", "outputs": {"result": "f"}}}
    rejected_errors = [
        n for s, n in patches(sim, "wf") if s == 400 and n.get("doomed", {}).get("phase") == "Error"
    ]
    assert len(rejected_errors) == 1, "the rejected Error is not retried"


# -- never lost: transient errors are retried ---------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"code": 500},
        {"code": 503, "message": "etcdserver: leader changed"},
        {"code": 429, "retry_after": 0},
        {"code": 403},  # an RBAC fix cures it: retried, not dropped
        {"code": 500, "disconnect": True},  # the connection is cut, no answer at all
    ],
    ids=["500", "503", "429-retry-after", "403", "connection-cut"],
)
async def test_transient_failures_are_retried_until_the_patch_lands(
    sim: ApiSimulator, current: Current, make_patcher: Any, fault: dict[str, Any]
) -> None:
    """Three failures in a row, then the same patch lands; its waiter completes."""
    create(sim, current, "wf", "a")
    sim.fail_next(3, resource=STATUS, **fault)
    patcher = make_patcher()
    delivered = patcher.submit_and_wait(ref("wf", "a"), ok("A"))
    await asyncio.wait_for(delivered, WAIT)

    assert stored(sim, "wf") == {"a": {"phase": "Succeeded", "outputs": {"result": "A"}}}
    answers = [s for s, _ in patches(sim, "wf")]
    assert answers == [0 if fault.get("disconnect") else fault["code"]] * 3 + [200]
    assert all(set(n) == {"a"} for _, n in patches(sim, "wf"))


async def test_retry_after_is_honoured_over_the_backoff(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """A 429's Retry-After (0 s here) replaces the exponential backoff, which is set to
    an hour: the patch can only land within the bound if the header was used."""
    create(sim, current, "wf", "a")
    sim.fail_next(2, code=429, resource=STATUS, retry_after=0)
    patcher = make_patcher(retry_base=3600.0, retry_cap=3600.0)
    patcher.submit(ref("wf", "a"), ok("A"))
    await flushed(patcher)
    assert [s for s, _ in patches(sim, "wf")] == [429, 429, 200]


async def test_a_server_that_is_down_then_back_gets_the_patch(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """Connection errors until the faults are cleared: the patcher keeps trying, then lands."""
    create(sim, current, "wf", "a")
    sim.fail_next(None, resource=STATUS, disconnect=True)
    patcher = make_patcher()
    delivered = patcher.submit_and_wait(ref("wf", "a"), ok("A"))
    async with asyncio.timeout(WAIT):
        seq = 0
        for _ in range(3):  # three cut attempts observed, then the "server" recovers
            cut = await sim.wait_for_request(verb="patch", subresource="status", since=seq)
            assert cut.status == 0
            seq = cut.seq
        sim.clear_faults()
        await delivered
    assert stored(sim, "wf")["a"]["phase"] == "Succeeded"
    assert not delivered.exception()


# -- eager and coalesced ------------------------------------------------------------------


async def test_results_finished_during_a_patch_ride_in_the_next_one(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """One patch in flight per taskset: results submitted meanwhile are sent together in
    exactly one further patch (counted in the request log)."""
    create(sim, current, "wf", "first", "b", "c", "d")
    sim.delay(1.0, count=1, verb="patch", resource=STATUS)  # hold the first patch
    patcher = make_patcher()
    patcher.submit(ref("wf", "first"), ok("1"))
    async with asyncio.timeout(WAIT):
        held = await sim.wait_for_request(verb="patch", subresource="status", completed=False)
    for node_id in ("b", "c", "d"):  # each after the loop has had a chance to send it
        patcher.submit(ref("wf", node_id), ok(node_id))
        for _ in range(5):
            await asyncio.sleep(0)
    assert held.status is None, "precondition: the first patch was still in flight"
    await flushed(patcher)

    assert landed(sim, "wf") == [{"first"}, {"b", "c", "d"}]
    assert set(stored(sim, "wf")) == {"first", "b", "c", "d"}


async def test_a_newer_result_for_a_queued_node_replaces_the_older(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """Two results for one node before it is sent: only the newer is written, and the
    waiter of the older completes with it."""
    create(sim, current, "wf", "a")
    patcher = make_patcher()
    older = patcher.submit_and_wait(ref("wf", "a"), NodeResult(phase=NodePhase.RUNNING))
    patcher.submit(ref("wf", "a"), ok("final"))
    await flushed(patcher)
    await asyncio.wait_for(older, WAIT)
    assert landed(sim, "wf") == [{"a"}]
    assert stored(sim, "wf") == {"a": {"phase": "Succeeded", "outputs": {"result": "final"}}}


async def test_separate_tasksets_are_patched_separately(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """Each taskset's results go to its own status subresource."""
    create(sim, current, "one", "a")
    create(sim, current, "two", "a")
    patcher = make_patcher()
    patcher.submit(ref("one", "a"), ok("1"))
    patcher.submit(ref("two", "a"), ok("2"))
    await flushed(patcher)
    assert stored(sim, "one")["a"]["outputs"] == {"result": "1"}
    assert stored(sim, "two")["a"]["outputs"] == {"result": "2"}


# -- overwrite: a claim's fields do not survive ---------------------------------------------


async def test_overwrite_writes_nulls_so_a_claims_message_does_not_survive(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """With overwrite=True every node field absent from the result is sent as null, so the
    merge patch clears the claim's message; without it, the message would stay."""
    create(sim, current, "wf", "claimed", "plain")
    claim = NodeResult(phase=NodePhase.RUNNING, message="argo-http-agent x: request in flight")
    patcher = make_patcher()
    await asyncio.wait_for(patcher.submit_and_wait(ref("wf", "claimed"), claim), WAIT)
    await asyncio.wait_for(patcher.submit_and_wait(ref("wf", "plain"), claim), WAIT)

    patcher.submit(ref("wf", "claimed"), ok("done"), overwrite=True)
    patcher.submit(ref("wf", "plain"), ok("done"))
    await flushed(patcher)

    nodes = stored(sim, "wf")
    assert nodes["claimed"] == {"phase": "Succeeded", "outputs": {"result": "done"}}
    # The contrast: a plain merge keeps the claim's message next to the result.
    assert nodes["plain"]["message"] == claim.message
    last = patches(sim, "wf")[-1][1]
    assert last["claimed"] == {
        "phase": "Succeeded",
        "outputs": {"result": "done"},
        "message": None,
        "progress": None,
    }
    assert "message" not in last["plain"]


async def test_overwrite_survives_being_superseded_before_sending(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """An overwrite result replaced by a newer plain one before it is sent still clears the
    old fields (the node's entry is ours either way)."""
    create(sim, current, "wf", "a")
    sim.patch_object(
        TS,
        "wf",
        {"status": {"nodes": {"a": {"phase": "Running", "message": "claimed"}}}},
        namespace=NS,
        subresource="status",
    )
    patcher = make_patcher()
    patcher.submit(ref("wf", "a"), NodeResult(phase=NodePhase.RUNNING), overwrite=True)
    patcher.submit(ref("wf", "a"), ok("done"))
    await flushed(patcher)
    assert stored(sim, "wf") == {"a": {"phase": "Succeeded", "outputs": {"result": "done"}}}


# -- discard and staleness -----------------------------------------------------------------


async def test_discard_drops_pending_results_and_fails_their_waiters(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """Results queued behind an in-flight patch are dropped by discard(node_ids); the
    others of the taskset are still delivered."""
    create(sim, current, "wf", "first", "keep", "drop")
    sim.delay(1.0, count=1, verb="patch", resource=STATUS)
    patcher = make_patcher()
    patcher.submit(ref("wf", "first"), ok("1"))
    async with asyncio.timeout(WAIT):
        await sim.wait_for_request(verb="patch", subresource="status", completed=False)
    patcher.submit(ref("wf", "keep"), ok("k"))
    dropped = patcher.submit_and_wait(ref("wf", "drop"), ok("d"))
    patcher.discard(TaskSetKey(NS, "wf"), frozenset({"drop", "never-queued"}))
    assert patcher.pending == 1
    with pytest.raises(LookupError):
        await asyncio.wait_for(dropped, WAIT)
    await flushed(patcher)

    assert landed(sim, "wf") == [{"first"}, {"keep"}]
    assert set(stored(sim, "wf")) == {"first", "keep"}


async def test_discard_of_a_whole_taskset_drops_all_its_pending_results(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """discard(key) with no node IDs forgets every queued result of that taskset only."""
    create(sim, current, "gone", "a", "b")
    create(sim, current, "other", "a")
    sim.delay(1.0, count=1, verb="patch", resource=STATUS, path_contains="/gone/")
    patcher = make_patcher()
    patcher.submit(ref("gone", "a"), ok("a"))
    async with asyncio.timeout(WAIT):
        await sim.wait_for_request(verb="patch", name="gone", completed=False)
    patcher.submit(ref("gone", "b"), ok("b"))
    patcher.submit(ref("other", "a"), ok("o"))
    patcher.discard(TaskSetKey(NS, "gone"))
    await flushed(patcher)

    assert landed(sim, "gone") == [{"a"}]
    assert set(stored(sim, "other")) == {"a"}


async def test_nodes_no_longer_current_are_not_sent(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """A node that left spec.tasks before its patch is filtered out (its waiter fails)."""
    create(sim, current, "wf", "stays", "left")
    current.remove("wf", "left")
    patcher = make_patcher()
    patcher.submit(ref("wf", "stays"), ok("s"))
    left = patcher.submit_and_wait(ref("wf", "left"), ok("l"))
    await flushed(patcher)
    with pytest.raises(LookupError):
        await left
    assert landed(sim, "wf") == [{"stays"}]
    assert all("left" not in nodes for _, nodes in patches(sim, "wf"))


async def test_a_node_that_leaves_between_retries_is_filtered_from_the_retry(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """Staleness is checked before every attempt, not only the first."""
    create(sim, current, "wf", "stays", "left")
    sim.delay(1.0, count=1, verb="patch", resource=STATUS)
    sim.fail_next(1, code=503, resource=STATUS)
    patcher = make_patcher()
    submit_all(patcher, "wf", [("stays", ok("s")), ("left", ok("l"))])
    async with asyncio.timeout(WAIT):
        held = await sim.wait_for_request(verb="patch", subresource="status", completed=False)
    current.remove("wf", "left")  # while the first attempt is held (it will get 503)
    assert held.status is None, "precondition: the first attempt was still in flight"
    await flushed(patcher)

    assert [(s, set(n)) for s, n in patches(sim, "wf")] == [
        (503, {"stays", "left"}),
        (200, {"stays"}),
    ]
    assert set(stored(sim, "wf")) == {"stays"}


async def test_a_deleted_taskset_drops_results_without_retrying(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """404: the taskset is gone; the results are dropped after one attempt and a
    submit_and_wait future fails."""
    current.add("missing", "a", "b")
    patcher = make_patcher()
    waiter = patcher.submit_and_wait(ref("missing", "a"), ok("a"))
    patcher.submit(ref("missing", "b"), ok("b"))
    await flushed(patcher)
    with pytest.raises(LookupError, match="dropped"):
        await waiter
    assert [s for s, _ in patches(sim, "missing")] == [404]
    assert patcher.pending == 0


async def test_tick_mode_holds_results_until_the_tick_or_a_flush(
    sim: ApiSimulator, current: Current, make_patcher: Any
) -> None:
    """mode='tick' (Argo's timing) holds results for the tick: a result submitted before a
    full round trip of another patcher to the API is still unsent, and flush() sends it
    together with a later one in one patch."""
    create(sim, current, "wf", "a", "b")
    create(sim, current, "barrier", "x")
    patcher = make_patcher(mode="tick", patch_rate=3600.0)
    patcher.submit(ref("wf", "a"), ok("a"))
    eager = make_patcher()
    await asyncio.wait_for(eager.submit_and_wait(ref("barrier", "x"), ok("x")), WAIT)
    patcher.submit(ref("wf", "b"), ok("b"))
    await flushed(patcher)
    assert landed(sim, "wf") == [{"a", "b"}]
