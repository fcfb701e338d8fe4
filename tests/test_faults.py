"""Fault injection end to end: the agent as a real process, under crashes and a hostile world.

Each scenario of :data:`tests.faultkit.SCENARIOS` runs at a reduced size here (the full
size is ``python loadtest/faults.py``): the API simulator's fault hooks, a counting target
that records every request arriving for each node, the agent killed and restarted. After
each one the verdict (:func:`tests.faultkit.judge`) must be clean: every node fulfilled, no
claimed (non-idempotent) request arrived twice, idempotent ones re-sent only by a new
instance after an interruption, every reported result equal to what the target answered.

The random choices are seeded; the seed is printed and named in every failure message
(``FAULTS_SEED=<n> pytest tests/test_faults.py`` replays the same plan and schedule; the
interleaving with real processes may still differ).

Then focused tests that pin single behaviours found by the scenarios, and tests of the
verdict itself, so the scenarios cannot pass by checking nothing.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from agent_sim import ApiSimulator

from tests.agentproc import TOKEN, AgentProcess, taskset, wait_for_nodes
from tests.faultkit import (
    REDUCED,
    REPLICA_SCENARIOS,
    SCENARIOS,
    Arrival,
    CountingTarget,
    Restart,
    TaskPlan,
    answer_body,
    judge,
    members_judged_gone,
    run_scenario,
)

NS = "argo"
TS = "workflowtasksets"
SEED = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(2**32))


@pytest.fixture
async def sim() -> AsyncIterator[ApiSimulator]:
    async with ApiSimulator(bookmark_interval=0.5) as server:
        server.add_token(TOKEN)
        yield server


@pytest.fixture
def counting() -> Iterator[CountingTarget]:
    with CountingTarget() as server:
        yield server


# -- the scenarios ----------------------------------------------------------------------


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_scenario(name: str) -> None:
    print(f"FAULTS_SEED={SEED}")
    report = await run_scenario(name, seed=SEED, size=REDUCED)
    print(report.describe())
    assert report.ok, report.describe()
    verdict = report.verdict
    if name in REPLICA_SCENARIOS:
        _check_replica_scenario(name, report.injected, report.measured, report.usage)
        assert verdict.tasks == REDUCED.replica_tasks
        return
    assert verdict.tasks == REDUCED.tasks
    # The faults really happened (a scenario that injects nothing proves nothing).
    if name.startswith("kill"):
        kills = report.injected.get("SIGKILL", 0) + report.injected.get("SIGTERM", 0)
        assert kills == REDUCED.interruptions
    elif name == "workers-kill":
        kills = report.injected.get("SIGKILL helper", 0) + report.injected.get("SIGKILL primary", 0)
        assert kills == REDUCED.interruptions and report.injected["SIGKILL primary"] >= 1
        assert report.measured["tasksets_lent"] > 0, report.describe()  # the helper had work
    elif name == "api-storm":
        assert report.api_errors_served > 0, report.describe()
    elif name == "watch-drops":
        assert report.injected["watch_drops"] > 0
    elif name == "gone":
        assert report.injected["gone_relists"] >= 1
    if name == "kill-never":
        # Every request is claimed under "never": none may reach the target twice.
        assert verdict.arrivals <= verdict.tasks


def _check_replica_scenario(
    name: str, injected: dict[str, int], measured: dict[str, Any], usage: dict[str, Any]
) -> None:
    """The replica scenario did what it says (the verdict alone could pass idle)."""
    members = {
        "replicas-scale-up": 3,
        "replicas-scale-down": 3,
        "replicas-rolling": 6,
        "replicas-kill": 4,
        "replicas-cut-off": 3,
        "replicas-lease-storm": 3,
    }
    assert usage["members"] == members[name], usage  # each member was a client of its own
    assert usage["requests_per_member"] > 0 and usage["watch_bytes_per_member"] > 0
    if name == "replicas-scale-up":
        assert injected["joins"] == 2
    elif name == "replicas-scale-down":
        assert injected["SIGTERM"] == 2 + 1  # two under load, the last at the end
    elif name == "replicas-rolling":
        assert injected["SIGTERM"] == 3 + 3
    elif name == "replicas-kill":
        assert injected["SIGKILL"] == measured["kills"] == 1
        # Timing is measured (reported), not asserted: every orphaned node was final.
        assert measured["orphaned"] == 0 or len(measured["takeover_seconds"]) == 1
        assert measured["resent_after_kill"] <= measured["in_flight_at_death"]
    elif name == "replicas-cut-off":
        assert injected["cuts"] == len(measured["fence_seconds"]) == 1
    elif name == "replicas-lease-storm":
        assert measured["lease_errors_served"] > 0


# -- behaviours the scenarios found, pinned one by one ----------------------------------


async def test_abrupt_watch_drop_never_resends_a_post(
    sim: ApiSimulator, counting: CountingTarget
) -> None:
    """A watch cut mid-stream must resume from the last version seen, not an older one.

    Resuming from the version the broken watch *started* at replays old snapshots of the
    taskset: one without node ``b`` (so ``b`` looks removed), then one with it again
    (so ``b`` looks new and, its status not yet in that old snapshot, is sent again).
    """
    first, second = TaskPlan("a", method="POST"), TaskPlan("b", method="POST")
    async with AgentProcess(sim, "--namespace", NS) as agent:
        sim.create_object(TS, taskset("wf", {"a": first.template(counting)}))
        await wait_for_nodes(sim, "wf", ["a"])
        sim.patch_object(
            TS, "wf", {"spec": {"tasks": {"b": second.template(counting)}}}, namespace=NS
        )
        await wait_for_nodes(sim, "wf", ["b"])
        sim.drop_watches(abrupt=True)
        await asyncio.wait_for(sim.wait_for_watches(1), 30)
        # One more change after the resume: once it is reported, any replay is over.
        third = TaskPlan("c", method="POST")
        sim.patch_object(
            TS, "wf", {"spec": {"tasks": {"c": third.template(counting)}}}, namespace=NS
        )
        nodes = await wait_for_nodes(sim, "wf", ["a", "b", "c"])
        logs = agent.logs()
    counts = {node: len(counting.arrivals(node)) for node in ("a", "b", "c")}
    assert counts == {"a": 1, "b": 1, "c": 1}, logs
    assert nodes["b"] == {"phase": "Succeeded", "outputs": {"result": answer_body("b", "POST")}}


async def test_reset_on_a_reused_connection_is_not_resent(
    sim: ApiSimulator, counting: CountingTarget
) -> None:
    """The agent's own transport must not re-send a request the target cut off.

    A request on a kept-alive connection that the target resets (or closes) arrives
    once: the node fails with the reset, and nothing but an agent restart may send it
    again (the documented guarantee). aiohttp re-sends idempotent methods on a reused
    connection unless told not to; httpcore never does.
    """
    warm = TaskPlan("warm")
    async with AgentProcess(sim, "--namespace", NS):
        sim.create_object(TS, taskset("wf", {"warm": warm.template(counting)}))
        await wait_for_nodes(sim, "wf", ["warm"])  # leaves a kept-alive connection
        for method in ("GET", "PUT", "DELETE", "OPTIONS"):
            for mode in ("reset", "close"):
                cut = TaskPlan(f"{mode}-{method.lower()}", method=method, mode=mode)
                rewarm = TaskPlan(f"warm-{cut.node}")
                # Alone, so it takes the idle connection; then leave a fresh one behind.
                for plan in (cut, rewarm):
                    tasks = {plan.node: plan.template(counting)}
                    sim.patch_object(TS, "wf", {"spec": {"tasks": tasks}}, namespace=NS)
                    nodes = await wait_for_nodes(sim, "wf", [plan.node])
                assert nodes[cut.node] == cut.expected(counting, max_result_bytes=1 << 20)
                assert len(counting.arrivals(cut.node)) == 1, cut


async def test_malformed_responses_fail_with_one_clean_line(
    sim: ApiSimulator, counting: CountingTarget
) -> None:
    """A garbage status line or a broken chunked body: Go's words, on one line.

    ``<Op> "<url>": <cause>`` with the URL once for the status line (Client.Do's error);
    the chunked body's error bare (io.ReadAll's, read after Client.Do returned); no line
    breaks and no Python ``repr`` (``b'...'``, ``bytearray(...)``): the message is read in
    the Argo UI.
    """
    plans = [TaskPlan(mode, method="POST", mode=mode) for mode in ("garbage", "badchunk")]
    async with AgentProcess(sim, "--namespace", NS):
        sim.create_object(TS, taskset("wf", {p.node: p.template(counting) for p in plans}))
        nodes = await wait_for_nodes(sim, "wf", [p.node for p in plans])
    for plan in plans:
        assert nodes[plan.node] == plan.expected(counting, max_result_bytes=1 << 20)
        message = nodes[plan.node]["message"]
        assert "\n" not in message
        assert message.count(plan.url(counting)) == (plan.mode == "garbage")
        assert not re.search(r"\bb'|bytearray\(", message), message


async def test_watch_retry_delay_resets_after_a_healthy_watch(sim: ApiSimulator) -> None:
    """Each failure of a watch that had been working is retried after the base delay.

    Otherwise every drop doubles the delay (up to 10 s) for the life of the process, and
    an agent whose watch is cut every few minutes ends up blind for 10 s each time.
    """
    # Without a member Lease: its watch would be dropped (and counted) too.
    async with AgentProcess(sim, "--namespace", NS, "--membership", "none") as agent:
        await asyncio.wait_for(sim.wait_for_watches(1), 30)
        for _ in range(4):
            since = sim.requests()[-1].seq
            sim.drop_watches(abrupt=True)
            # The next watch request comes after the retry delay, when the cut one is gone.
            await asyncio.wait_for(
                sim.wait_for_request(verb="watch", since=since, completed=False), 30
            )
            await asyncio.wait_for(sim.wait_for_watches(1), 30)
        logs = agent.logs()
    delays = re.findall(r"watch failed, retrying in ([\d.]+)s", logs)
    assert len(delays) == 4, logs
    assert set(delays) == {"0.5"}, logs


# -- the verdict catches what it must ---------------------------------------------------


def _arrivals(node: str, method: str, *times: float) -> list[Arrival]:
    return [Arrival(node, method, at) for at in times]


def test_judge_accepts_a_clean_run_and_documented_resends() -> None:
    target = CountingTarget()  # never started: only its URLs are needed
    get, post = TaskPlan("g"), TaskPlan("p", method="POST")
    nodes = {
        "g": {"phase": "Succeeded", "outputs": {"result": answer_body("g", "GET")}},
        "p": {
            "phase": "Failed",
            "message": "the agent (agent-1) stopped while this request was in flight; it was "
            "not sent again to avoid a duplicate side effect (redelivery policy 'idempotent')",
        },
    }
    arrivals = {"g": _arrivals("g", "GET", 1.0, 3.0), "p": _arrivals("p", "POST", 1.5)}
    verdict = judge([get, post], nodes, arrivals, [Restart("SIGKILL", 2.0)], target=target)
    assert verdict.ok, verdict
    assert (verdict.resent_after_restart, verdict.abandoned) == (1, 1)


def test_judge_flags_duplicates_resends_losses_and_wrong_results() -> None:
    target = CountingTarget()
    plans = [
        TaskPlan("dup", method="POST"),
        TaskPlan("again", method="PUT"),
        TaskPlan("lost"),
        TaskPlan("wrong", method="PATCH"),
        TaskPlan("ghost"),
        TaskPlan("claimed-get"),
    ]
    nodes = {
        "dup": {"phase": "Succeeded", "outputs": {"result": answer_body("dup", "POST")}},
        "again": {"phase": "Succeeded", "outputs": {"result": answer_body("again", "PUT")}},
        "lost": {"phase": "Running", "message": "argo-http-agent a-1: request in flight"},
        "wrong": {"phase": "Succeeded", "outputs": {"result": answer_body("wrong", "GET")}},
        "ghost": {"phase": "Succeeded", "outputs": {"result": answer_body("ghost", "GET")}},
        "claimed-get": {
            "phase": "Failed",
            "message": "the agent (a-1) stopped while this request was in flight; it was not "
            "sent again to avoid a duplicate side effect (redelivery policy 'idempotent')",
        },
    }
    arrivals = {
        "dup": _arrivals("dup", "POST", 1.0, 3.0),
        "again": _arrivals("again", "PUT", 1.0, 1.1),
        "lost": _arrivals("lost", "GET", 1.0),
        "wrong": _arrivals("wrong", "PATCH", 1.0),
        "claimed-get": _arrivals("claimed-get", "GET", 1.0),
    }
    verdict = judge(plans, nodes, arrivals, [Restart("SIGKILL", 2.0)], target=target)
    assert not verdict.ok
    assert [d.split()[0] for d in verdict.duplicates] == ["dup"]
    assert [d.split()[0] for d in verdict.resent_without_restart] == ["again"]
    assert [d.split()[0] for d in verdict.lost] == ["lost"]
    assert sorted(d.split()[0] for d in verdict.mismatched) == ["claimed-get", "ghost", "wrong"]


def test_judge_requires_the_interruption_a_claim_message_names() -> None:
    target = CountingTarget()
    post = TaskPlan("p", method="POST")
    graceful = {
        "p": {
            "phase": "Failed",
            "message": "the agent (a-1) shut down while this request was in flight; it was not "
            "sent again to avoid a duplicate side effect (redelivery policy 'idempotent')",
        }
    }
    arrivals = {"p": _arrivals("p", "POST", 1.0)}
    only_kill = judge([post], graceful, arrivals, [Restart("SIGKILL", 2.0)], target=target)
    assert len(only_kill.mismatched) == 1
    after_term = judge([post], graceful, arrivals, [Restart("SIGTERM", 2.0)], target=target)
    assert after_term.ok and after_term.abandoned == 1
    too_late = judge([post], graceful, arrivals, [Restart("SIGTERM", 0.5)], target=target)
    assert len(too_late.mismatched) == 1


def test_judge_accepts_a_claim_settled_by_its_expired_member_only_for_a_claimed_method() -> None:
    """A member whose Lease may have expired while it claimed settles the node itself
    (docs/replicas.md): Failed, never sent by it. Accepted for a claimed method sent at
    most once (by the member that took over); not for an unclaimed one."""
    target = CountingTarget()
    message = (
        "the agent (m-1) could not renew its member Lease while claiming this request; it did "
        "not send it, and the member that took the node over may have (a duplicate side "
        "effect is avoided; redelivery policy 'idempotent')"
    )
    post, sent, get = TaskPlan("p", method="POST"), TaskPlan("s", method="POST"), TaskPlan("g")
    nodes = {n: {"phase": "Failed", "message": message} for n in ("p", "s", "g")}
    arrivals = {"s": _arrivals("s", "POST", 1.0), "g": _arrivals("g", "GET", 1.0)}
    verdict = judge([post, sent, get], nodes, arrivals, [], target=target)
    assert verdict.superseded == 2
    assert [m.split()[0] for m in verdict.mismatched] == ["g"]


def test_a_member_judged_gone_is_read_from_the_members_view_logs() -> None:
    """The kit learns when a member left another's live view (its Lease expired: starved,
    cut off or killed) from the members' own logs; idempotent re-sends across that moment
    are the documented at-least-once, so the verdict must know it."""
    log = (
        "2026-12-03 02:25:27,171 INFO    member view changed [owners=['a', 'b'] live=['a', "
        "'b'] joined=['a', 'b'] left=[] fenced=False leaving=False]\n"
        "2026-12-03 02:25:29,119 INFO    ownership changed [gained=7]\n"
        "2026-12-03 02:25:29,250 INFO    member view changed [owners=['b'] live=['b'] "
        "joined=[] left=['a'] fenced=False leaving=False]\n"
    )
    offset = time.mktime(time.strptime("2026-12-03 02:25:00", "%Y-%m-%d %H:%M:%S"))
    assert members_judged_gone([log, log], clock_offset=offset) == [pytest.approx(29.25)]
