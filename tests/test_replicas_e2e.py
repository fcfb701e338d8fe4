"""Replicas end to end: real agent processes sharing the work on the simulator's Leases.

Each test runs several ``argo-http-agent run`` processes (members of one group) against the
simulator and a :class:`~tests.faultkit.CountingTarget` that records every request arriving
for a node, which is the ground truth: no request sent twice (beyond what the redelivery
policy documents across a crash), no result lost (docs/replicas.md). Lease durations are
short (2-3 s) so membership changes happen within a test.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import datetime
import random
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from agent_sim import ApiSimulator

from agent.engine.ownership import owner_of, unit_of
from agent.membership.lease import GROUP_LABEL
from tests.agentproc import AgentProcess, taskset, wait_for_nodes
from tests.faultkit import CountingTarget, Restart, TaskPlan, judge, plan_tasks

NS = "argo"
TS = "workflowtasksets"
SELECTOR = f"{GROUP_LABEL}=argo-http-agent"
#: A wave of tasks is spread over this many tasksets: the taskset is the unit of ownership,
#: so every member owns some of them (with 3 members, none owns nothing but with
#: probability (2/3)^16, 0.15%).
WAVE_TASKSETS = 16
#: A member's "member view changed" log line (text format): who it sees live, its fence.
VIEW_LINE = r"member view changed \[.*?live=(?P<live>\[[^]]*\]).*?fenced=(?P<fenced>\w+)"


@pytest.fixture
def counting() -> Iterator[CountingTarget]:
    with CountingTarget() as server:
        yield server


@contextlib.asynccontextmanager
async def members(sim: ApiSimulator) -> AsyncIterator[list[AgentProcess]]:
    """A list to start members into; whatever is still running at the end is killed."""
    started: list[AgentProcess] = []
    try:
        yield started
    finally:
        for agent in started:
            if agent.proc is not None and agent.proc.returncode is None:
                await agent.kill()


async def start_member(
    sim: ApiSimulator,
    started: list[AgentProcess],
    name: str,
    *extra: str,
    lease: str = "2s",
    token: str | None = None,
) -> AgentProcess:
    args = ["--namespace", NS, "--agent-id", name, "--lease-duration", lease]
    args += ["--task-workers", "8", "--shutdown-grace", "10", *extra]
    agent = AgentProcess(sim, *args, **({"token": token} if token else {}))
    started.append(agent)
    await agent.start()
    await agent.wait_ready()
    return agent


def leases(sim: ApiSimulator) -> list[dict[str, Any]]:
    return sim.list_objects("leases", namespace=NS, label_selector=SELECTOR)


def holders(sim: ApiSimulator) -> set[str]:
    return {str(lease["spec"].get("holderIdentity") or "") for lease in leases(sim)}


async def wait_members(sim: ApiSimulator, count: int, timeout: float = 20.0) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = holders(sim) - {""}
        if len(found) == count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} member lease(s), found {leases(sim)}")


def split_wave(name: str, plans: list[TaskPlan]) -> dict[str, list[TaskPlan]]:
    """The wave's tasksets (``name-00`` ..), the plans dealt round-robin over them."""
    parts: dict[str, list[TaskPlan]] = {}
    for index, plan in enumerate(plans):
        parts.setdefault(f"{name}-{index % WAVE_TASKSETS:02d}", []).append(plan)
    return parts


def create_wave(
    sim: ApiSimulator, counting: CountingTarget, name: str, plans: list[TaskPlan]
) -> None:
    for part, part_plans in split_wave(name, plans).items():
        sim.create_object(TS, taskset(part, {p.node: p.template(counting) for p in part_plans}))


async def wait_all(
    sim: ApiSimulator, waves: dict[str, list[TaskPlan]], timeout: float = 60.0
) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    for name, plans in waves.items():
        for part, part_plans in split_wave(name, plans).items():
            nodes.update(
                await wait_for_nodes(
                    sim, part, [p.node for p in part_plans], namespace=NS, timeout=timeout
                )
            )
    return nodes


def started_total(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith("argo_agent_tasks_started_total "):
            return float(line.split()[1])
    return 0.0


def metric(metrics_text: str, name: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_one_then_two_then_three_members_under_load(
    sim: ApiSimulator, counting: CountingTarget
) -> None:
    """(a) Members join while tasks run: every node runs once, none is lost, all share."""
    rng = random.Random(13)
    waves: dict[str, list[TaskPlan]] = {}
    async with members(sim) as started:
        first = await start_member(sim, started, "m1")
        for index, joiner in enumerate(("m2", "m3", None)):
            plans = plan_tasks(rng, 40, prefix=f"w{index}-", slow=0.5, max_sleep=1.0)
            waves[f"wave{index}"] = plans
            create_wave(sim, counting, f"wave{index}", plans)
            if joiner is not None:
                await start_member(sim, started, joiner)  # joins with requests in flight
        assert len(await wait_members(sim, 3)) == 3
        nodes = await wait_all(sim, waves)
        scraped = [(await agent.get("/metrics")).text for agent in started]
        logs = first.logs()
    plans = [p for wave in waves.values() for p in wave]
    verdict = judge(plans, nodes, counting.all_arrivals(), [], target=counting)
    assert verdict.ok, (verdict, logs[-3000:])
    assert not verdict.duplicates and not verdict.lost and verdict.resent_after_restart == 0
    assert all(started_total(text) > 0 for text in scraped), "every member ran some nodes"
    assert "member view changed" in logs


async def test_sigterm_one_of_three_hands_over_and_deletes_its_lease(
    sim: ApiSimulator, counting: CountingTarget
) -> None:
    """(b) A clean stop: the leaver finishes what it runs, the others take the rest, its
    Lease is deleted; no request twice, no result lost."""
    rng = random.Random(17)
    plans = plan_tasks(rng, 60, slow=0.7, max_sleep=1.2)
    async with members(sim) as started:
        for name in ("m1", "m2", "m3"):
            await start_member(sim, started, name)
        identities = await wait_members(sim, 3)
        leaver = started[1]
        (leaver_id,) = [i for i in identities if i.startswith("m2-")]
        create_wave(sim, counting, "wave", plans)
        # Wait until the leaver has requests in flight: a claim of its own in the status.
        await wait_for_claim(sim, "wave", leaver_id)
        assert await leaver.stop(signal.SIGTERM) == 0
        assert leaver_id not in holders(sim)  # deleted on the way out
        nodes = await wait_all(sim, {"wave": plans})
        assert holders(sim) == identities - {leaver_id}
    verdict = judge(plans, nodes, counting.all_arrivals(), [], target=counting)
    assert verdict.ok, (verdict, leaver.logs()[-3000:])
    assert verdict.abandoned == 0 and verdict.resent_after_restart == 0


async def wait_for_claim(sim: ApiSimulator, name: str, member: str, timeout: float = 20) -> str:
    """A node of wave ``name`` (any of its tasksets) that ``member`` claimed."""
    deadline = time.monotonic() + timeout
    wanted = f"argo-http-agent {member}: request in flight"
    while time.monotonic() < deadline:
        for index in range(WAVE_TASKSETS):
            obj = sim.find_object(TS, f"{name}-{index:02d}", namespace=NS) or {}
            for node, entry in ((obj.get("status") or {}).get("nodes") or {}).items():
                if entry.get("message") == wanted:
                    return str(node)
        await asyncio.sleep(0.02)
    raise AssertionError(f"no claim by {member} in {name}")


async def test_sigkill_one_of_three_survivors_take_over_after_lease_expiry(
    sim: ApiSimulator, counting: CountingTarget
) -> None:
    """(c) A crash: after the dead member's Lease expires the survivors take its nodes; its
    claimed POSTs end Failed with the claim message (or were finished by it), idempotent
    requests may be re-sent, nothing is sent twice otherwise, nothing is lost."""
    rng = random.Random(23)
    plans = plan_tasks(rng, 45, methods={"GET": 1, "POST": 2}, slow=1.0, max_sleep=1.5)
    async with members(sim) as started:
        for name in ("m1", "m2", "m3"):
            await start_member(sim, started, name)
        identities = await wait_members(sim, 3)
        (victim_id,) = [i for i in identities if i.startswith("m2-")]
        create_wave(sim, counting, "wave", plans)
        claimed = await wait_for_claim(sim, "wave", victim_id)
        await started[1].kill()
        killed = Restart("SIGKILL", time.monotonic())
        nodes = await wait_all(sim, {"wave": plans})
        survivors = [(await agent.get("/metrics")).text for agent in (started[0], started[2])]
        # The dead member's Lease is collected once expired for another duration.
        await wait_members(sim, 2)
    verdict = judge(plans, nodes, counting.all_arrivals(), [killed], target=counting)
    assert verdict.ok, verdict
    entry = nodes[claimed]
    finished_by_victim = entry.get("phase") == "Succeeded"
    assert finished_by_victim or entry["message"].startswith(f"the agent ({victim_id}) stopped")
    assert verdict.abandoned + verdict.resent_after_restart >= 1 or finished_by_victim
    assert sum(metric(text, "argo_agent_takeovers_total") for text in survivors) >= 1


async def test_a_member_cut_off_from_the_api_fences_itself_before_its_lease_expires(
    sim: ApiSimulator, counting: CountingTarget
) -> None:
    """(d) The API refuses a member's token: it stops starting requests (and /readyz says
    so) before its Lease can expire for the others, who then take its queued work."""
    sim.add_token("m1-token")
    sim.add_token("m2-token")
    plans = [TaskPlan(node=f"g{i:02d}", sleep=0.5) for i in range(24)]  # GET: unclaimed
    async with members(sim) as started:
        await start_member(sim, started, "m1", "--task-workers", "1", lease="3s", token="m1-token")
        cut = await start_member(
            sim, started, "m2", "--task-workers", "1", lease="3s", token="m2-token"
        )
        identities = await wait_members(sim, 2)
        (cut_id,) = [i for i in identities if i.startswith("m2-")]
        theirs = {
            p.node
            for part, part_plans in split_wave("wave", plans).items()
            for p in part_plans
            if owner_of(identities, unit_of(NS, part)) == cut_id
        }
        create_wave(sim, counting, "wave", plans)
        await wait_arrival(counting, theirs)
        sim.remove_token("m2-token")
        fenced_at, reason = await wait_fenced(cut)
        (lease,) = [item for item in leases(sim) if item["spec"]["holderIdentity"] == cut_id]
        renewed = datetime.datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))
        expires_wall = renewed.timestamp() + lease["spec"]["leaseDurationSeconds"]
        expires_at = time.monotonic() + (expires_wall - time.time())
        nodes = await wait_all(sim, {"wave": plans})  # the other member took the rest
    assert "not starting requests" in reason
    assert fenced_at < expires_at, "fenced only after its Lease could expire for the others"
    late = [
        (node, arrival.at)
        for node in theirs
        for arrival in counting.arrivals(node)
        if fenced_at <= arrival.at < expires_at
    ]
    assert late == [], "requests started while fenced"
    assert all(nodes[p.node]["phase"] == "Succeeded" for p in plans)


async def wait_arrival(counting: CountingTarget, nodes: set[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(counting.arrivals(n) for n in nodes):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no request of the member arrived")


async def wait_fenced(agent: AgentProcess, timeout: float = 20) -> tuple[float, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await agent.get("/readyz")
        if response.status_code == 503 and "not renewed" in response.text:
            return time.monotonic(), str(response.json().get("reason", ""))
        await asyncio.sleep(0.02)
    raise AssertionError(f"never fenced:\n{agent.logs()[-3000:]}")


async def test_lease_api_faults_are_survived(sim: ApiSimulator, counting: CountingTarget) -> None:
    """409 conflicts, 5xx, 429, a failed list, dropped watches and a deleted Lease: each is
    retried (the Lease is written again, or created again), never a crash; work goes on."""
    async with members(sim) as started:
        agent = await start_member(sim, started, "m1")
        (identity,) = await wait_members(sim, 1)
        sim.fail_next(1, code=409, verb="update", resource="leases")
        sim.fail_next(2, code=500, verb="update", resource="leases")
        sim.fail_next(1, code=429, verb="update", resource="leases", retry_after=1)
        sim.fail_next(1, code=503, verb="list", resource="leases")
        sim.drop_watches(abrupt=True)
        await wait_metric(agent, 'argo_agent_lease_renew_failures_total{reason="429"}')
        (lease,) = leases(sim)
        sim.delete_object("leases", lease["metadata"]["name"], namespace=NS)
        scraped = await wait_metric(agent, 'argo_agent_lease_renew_failures_total{reason="gone"}')
        assert await wait_members(sim, 1) == {identity}  # created again, same member
        plans = [TaskPlan(node=f"n{i}", method="POST") for i in range(5)]
        create_wave(sim, counting, "after", plans)
        nodes = await wait_all(sim, {"after": plans})
        await agent.wait_ready()
        assert agent.proc is not None and agent.proc.returncode is None
    for reason in ("conflict", "500", "429", "gone"):
        assert f'argo_agent_lease_renew_failures_total{{reason="{reason}"}}' in scraped, reason
    verdict = judge(plans, nodes, counting.all_arrivals(), [], target=counting)
    assert verdict.ok, verdict


async def test_a_member_cut_off_from_the_api_judges_nobody_gone(sim: ApiSimulator) -> None:
    """A member cut off the API server (its requests held, its watches silent: a network
    partition) for three lease durations sees no renewal of anybody. It must not judge the
    others gone for that silence: the moment its own Lease is renewed again it would own
    every taskset, theirs too, and send what they send (the full-size replicas-cut-off
    scenario sent POSTs twice that way). An expiry counts once a list started after it
    confirms it (agent/membership/observe.py), so its view keeps the other member live
    from before the cut to after it, while its own fence shows in the view."""
    sim.add_token("m1-token", user="member-1")
    sim.add_token("m2-token", user="member-2")
    async with members(sim) as started:
        await start_member(sim, started, "m1", token="m1-token")
        cut = await start_member(sim, started, "m2", token="m2-token")
        identities = await wait_members(sim, 2)
        (other,) = [i for i in identities if i.startswith("m1-")]
        sim.blackhole("member-2")
        try:
            await wait_fenced(cut)
            await asyncio.sleep(3 * 2.0)  # three lease durations of silence
        finally:
            sim.lift("member-2")
        await cut.wait_ready()  # renewed: its fence is down
        assert await wait_members(sim, 2) == identities
        logs = cut.logs()
    views = [
        (ast.literal_eval(m["live"]), m["fenced"] == "True") for m in re.finditer(VIEW_LINE, logs)
    ]
    since = next((i for i, (live, _) in enumerate(views) if other in live), None)
    assert since is not None, logs[-3000:]
    assert any(fenced for _, fenced in views[since:]), logs[-3000:]  # the cut showed
    gone = [live for live, _ in views[since:] if other not in live]
    assert gone == [], "the cut-off member judged the other gone"


async def wait_metric(agent: AgentProcess, sample: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = (await agent.get("/metrics")).text
        if any(line.startswith(sample + " ") for line in text.splitlines()):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{sample} never reported:\n{agent.logs()[-3000:]}")


async def test_a_pod_with_two_processes_is_one_member_next_to_another_replica(
    sim: ApiSimulator, counting: CountingTarget
) -> None:
    """``--processes 2`` with Leases: the pod's primary worker holds its one Lease (its
    helper runs only what the primary lends it, under the primary's name), next to another
    replica's; the two members share one ownership, every node runs once."""
    rng = random.Random(29)
    plans = plan_tasks(rng, 40, slow=0.3, max_sleep=0.5)
    async with members(sim) as started:
        # One slot per worker: the primary is busy, and lends, as soon as it runs a task.
        pod_a = await start_member(sim, started, "pod-a", "--processes", "2", "--task-workers", "2")
        await start_member(sim, started, "pod-b")
        identities = await wait_members(sim, 2)
        create_wave(sim, counting, "wave", plans)
        nodes = await wait_all(sim, {"wave": plans})
        lent = metric((await pod_a.get("/metrics")).text, "argo_agent_tasksets_lent_total")
    assert sorted(i.rsplit("-", 1)[0] for i in identities) == ["pod-a-w0", "pod-b"]
    assert lent is not None and lent >= 1, "the busy primary lent nothing to its helper"
    verdict = judge(plans, nodes, counting.all_arrivals(), [], target=counting)
    assert verdict.ok, verdict


async def test_a_taskset_skipped_as_another_members_is_read_and_run_when_it_becomes_ours(
    sim: ApiSimulator, counting: CountingTarget
) -> None:
    """The taskset is the unit of ownership: a member skips, unread, the events of tasksets
    another member owns. When that member stops renewing (here: paused before it could
    start anything), its tasksets become ours on the change of view: each is read afresh
    and run, once, although no event of it reaches the watch any more."""
    async with members(sim) as started:
        survivor = await start_member(sim, started, "m1")
        paused = await start_member(sim, started, "m2")
        identities = await wait_members(sim, 2)
        (survivor_id,) = [i for i in identities if i.startswith("m1-")]
        (paused_id,) = [i for i in identities if i.startswith("m2-")]
        names = [f"late-{i}" for i in range(40)]
        theirs = [n for n in names if owner_of(identities, unit_of(NS, n)) == paused_id][:2]
        mine = [n for n in names if owner_of(identities, unit_of(NS, n)) == survivor_id][:1]
        assert len(theirs) == 2 and mine, "test precondition"
        assert paused.proc is not None
        paused.proc.send_signal(signal.SIGSTOP)  # alive for the others until its Lease expires
        plans = {n: [TaskPlan(node=f"{n}-{j}") for j in range(2)] for n in theirs + mine}
        for name, name_plans in plans.items():
            sim.create_object(TS, taskset(name, {p.node: p.template(counting) for p in name_plans}))
        ours = await wait_for_nodes(sim, mine[0], [p.node for p in plans[mine[0]]], namespace=NS)
        text = (await survivor.get("/metrics")).text
        assert metric(text, "argo_agent_watch_events_not_owned_total") >= len(theirs)
        assert all(not counting.arrivals(p.node) for n in theirs for p in plans[n])
        # m2's Lease expires (2 s): the survivor's view changes and it reads their tasksets.
        nodes = dict(ours)
        for name in theirs:
            nodes.update(
                await wait_for_nodes(sim, name, [p.node for p in plans[name]], namespace=NS)
            )
        logs = survivor.logs()
    all_plans = [p for name_plans in plans.values() for p in name_plans]
    verdict = judge(all_plans, nodes, counting.all_arrivals(), [], target=counting)
    assert verdict.ok, (verdict, logs[-3000:])
    assert not verdict.duplicates and not verdict.lost
    assert "member view changed" in logs
