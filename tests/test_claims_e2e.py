"""At-most-once delivery across agent crashes (agent/claims.py), end to end: the agent is
SIGKILLed while requests are in flight, then restarted against the same simulator."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator

import pytest
from agent_sim import ApiSimulator

from tests.agentproc import AgentProcess, http_task, taskset, wait_for_nodes
from tests.faultkit import CountingTarget, answer_body
from tests.servers import TargetServer

NS = "argo"
#: Short leases: a restarted agent takes over its SIGKILLed predecessor's claims once the
#: old member's Lease expired (docs/replicas.md), so these tests keep that wait short.
LEASE = "2s"
TS = "workflowtasksets"


def claim_patches(sim: ApiSimulator, name: str) -> list[tuple[str, dict[str, object]]]:
    out = []
    for record in sim.requests(verb="patch", subresource="status", name=name):
        for node, body in json.loads(record.body)["status"]["nodes"].items():
            out.append((node, body))
    return out


@pytest.fixture
def counting() -> Iterator[CountingTarget]:
    """A target that records each request's arrival (before answering it)."""
    with CountingTarget() as server:
        yield server


async def wait_claimed(sim: ApiSimulator, name: str, node: str) -> None:
    await wait_for_nodes(sim, name, [node], namespace=NS, fulfilled=False, timeout=15)


async def wait_arrived(target: CountingTarget, *nodes: str, timeout: float = 15.0) -> None:
    """Wait until a request of each node reached the target (it is in flight)."""
    deadline = time.monotonic() + timeout
    while not all(target.arrivals(node) for node in nodes):
        if time.monotonic() > deadline:
            raise AssertionError(f"requests of {nodes} never arrived: {target.all_arrivals()}")
        await asyncio.sleep(0.02)


async def crash_and_restart(
    sim: ApiSimulator, target: CountingTarget, *, method: str, redelivery: str
) -> dict[str, object]:
    sim.create_object(
        TS,
        taskset(
            "crash",
            {
                "slow": http_task(target.node_url("slow", sleep=1.5), method=method),
                # always claimed
                "marker": http_task(target.node_url("marker", sleep=1.5), method="POST"),
            },
        ),
    )
    first = AgentProcess(
        sim, "--namespace", NS, "--lease-duration", LEASE, "--redelivery", redelivery
    )
    await first.start()
    await first.wait_ready()
    await wait_claimed(sim, "crash", "marker")
    await wait_arrived(target, "slow", "marker")  # both requests are now in flight
    await first.kill()  # SIGKILL: no chance to settle anything
    async with AgentProcess(
        sim, "--namespace", NS, "--lease-duration", LEASE, "--redelivery", redelivery
    ):
        nodes = await wait_for_nodes(sim, "crash", ["slow", "marker"], namespace=NS, timeout=20)
    return nodes


async def test_post_in_flight_at_a_crash_is_not_sent_again(
    sim: ApiSimulator, counting: CountingTarget
) -> None:
    nodes = await crash_and_restart(sim, counting, method="POST", redelivery="idempotent")
    for node in ("slow", "marker"):
        assert nodes[node]["phase"] == "Failed"
        message = str(nodes[node]["message"])
        assert "stopped while this request was in flight" in message
        assert "not sent again" in message
    # The claim went out before the request: phase Running naming the instance.
    claims = [body for node, body in claim_patches(sim, "crash") if body.get("phase") == "Running"]
    assert claims and all("request in flight" in str(c["message"]) for c in claims)


async def test_idempotent_get_in_flight_at_a_crash_is_sent_again(
    sim: ApiSimulator, counting: CountingTarget
) -> None:
    nodes = await crash_and_restart(sim, counting, method="GET", redelivery="idempotent")
    assert nodes["slow"] == {
        "phase": "Succeeded",
        "outputs": {"result": answer_body("slow", "GET")},
    }
    assert nodes["marker"]["phase"] == "Failed"
    assert not any(
        node == "slow" and body.get("phase") == "Running"
        for node, body in claim_patches(sim, "crash")
    ), "a GET must not be claimed"


async def test_never_policy_claims_and_never_resends_a_get(
    sim: ApiSimulator, counting: CountingTarget
) -> None:
    nodes = await crash_and_restart(sim, counting, method="GET", redelivery="never")
    assert nodes["slow"]["phase"] == "Failed"
    assert "redelivery policy 'never'" in str(nodes["slow"]["message"])


async def test_always_policy_resends_a_post(sim: ApiSimulator, counting: CountingTarget) -> None:
    task = http_task(counting.node_url("p", sleep=1), method="POST")
    sim.create_object(TS, taskset("again", {"p": task}))
    first = AgentProcess(
        sim, "--namespace", NS, "--lease-duration", LEASE, "--redelivery", "always"
    )
    await first.start()
    await first.wait_ready()
    await wait_arrived(counting, "p")  # the POST is in flight
    await first.kill()
    async with AgentProcess(
        sim, "--namespace", NS, "--lease-duration", LEASE, "--redelivery", "always"
    ):
        nodes = await wait_for_nodes(sim, "again", ["p"], namespace=NS, timeout=20)
    assert nodes["p"] == {"phase": "Succeeded", "outputs": {"result": answer_body("p", "POST")}}
    assert not any(body.get("phase") == "Running" for _, body in claim_patches(sim, "again"))


async def test_final_result_overwrites_the_claim_field_by_field(
    sim: ApiSimulator, target: TargetServer
) -> None:
    """The claim's message must not survive in the final status (merge patch keeps absent
    keys, so the final patch clears them with explicit nulls)."""
    async with AgentProcess(sim, "--namespace", NS, "--lease-duration", LEASE):
        sim.create_object(
            TS, taskset("clean", {"p": http_task(target.url("/echo"), method="POST")})
        )
        nodes = await wait_for_nodes(sim, "clean", ["p"], namespace=NS)
    assert set(nodes["p"]) == {"phase", "outputs"}
    assert nodes["p"]["phase"] == "Succeeded"
    final = [b for n, b in claim_patches(sim, "clean") if b.get("phase") == "Succeeded"]
    assert final and final[0]["message"] is None and final[0]["progress"] is None


async def test_graceful_shutdown_settles_claims_past_the_grace(
    sim: ApiSimulator, target: TargetServer
) -> None:
    sim.create_object(TS, taskset("grace", {"p": http_task(target.url("/delay/5"), method="POST")}))
    agent = AgentProcess(
        sim, "--namespace", NS, "--lease-duration", LEASE, "--shutdown-grace", "0.5"
    )
    await agent.start()
    await agent.wait_ready()
    await wait_claimed(sim, "grace", "p")
    assert await agent.stop(signal.SIGTERM) == 0
    node = sim.get_object(TS, "grace", namespace=NS)["status"]["nodes"]["p"]
    assert node["phase"] == "Failed"
    assert "shut down while this request was in flight" in node["message"]
