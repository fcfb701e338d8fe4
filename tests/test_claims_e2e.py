"""At-most-once delivery across agent crashes (agent/claims.py), end to end: the agent is
SIGKILLed while requests are in flight, then restarted against the same simulator."""

from __future__ import annotations

import asyncio
import json
import signal

from agent_sim import ApiSimulator

from tests.agentproc import AgentProcess, http_task, taskset, wait_for_nodes
from tests.servers import TargetServer

NS = "argo"
TS = "workflowtasksets"


def claim_patches(sim: ApiSimulator, name: str) -> list[tuple[str, dict[str, object]]]:
    out = []
    for record in sim.requests(verb="patch", subresource="status", name=name):
        for node, body in json.loads(record.body)["status"]["nodes"].items():
            out.append((node, body))
    return out


async def wait_claimed(sim: ApiSimulator, name: str, node: str) -> None:
    await wait_for_nodes(sim, name, [node], namespace=NS, fulfilled=False, timeout=15)


async def crash_and_restart(
    sim: ApiSimulator, target: TargetServer, *, method: str, redelivery: str
) -> dict[str, object]:
    sim.create_object(
        TS,
        taskset(
            "crash",
            {
                "slow": http_task(target.url("/delay/1.5"), method=method),
                "marker": http_task(target.url("/delay/1.5"), method="POST"),  # always claimed
            },
        ),
    )
    first = AgentProcess(sim, "--namespace", NS, "--redelivery", redelivery)
    await first.start()
    await first.wait_ready()
    await wait_claimed(sim, "crash", "marker")  # requests are now on their way
    await asyncio.sleep(0.3)
    await first.kill()  # SIGKILL: no chance to settle anything
    async with AgentProcess(sim, "--namespace", NS, "--redelivery", redelivery):
        nodes = await wait_for_nodes(sim, "crash", ["slow", "marker"], namespace=NS, timeout=20)
    return nodes


async def test_post_in_flight_at_a_crash_is_not_sent_again(
    sim: ApiSimulator, target: TargetServer
) -> None:
    nodes = await crash_and_restart(sim, target, method="POST", redelivery="idempotent")
    for node in ("slow", "marker"):
        assert nodes[node]["phase"] == "Failed"
        message = str(nodes[node]["message"])
        assert "stopped while this request was in flight" in message
        assert "not sent again" in message
    # The claim went out before the request: phase Running naming the instance.
    claims = [body for node, body in claim_patches(sim, "crash") if body.get("phase") == "Running"]
    assert claims and all("request in flight" in str(c["message"]) for c in claims)


async def test_idempotent_get_in_flight_at_a_crash_is_sent_again(
    sim: ApiSimulator, target: TargetServer
) -> None:
    nodes = await crash_and_restart(sim, target, method="GET", redelivery="idempotent")
    assert nodes["slow"] == {"phase": "Succeeded", "outputs": {"result": "slept"}}
    assert nodes["marker"]["phase"] == "Failed"
    assert not any(
        node == "slow" and body.get("phase") == "Running"
        for node, body in claim_patches(sim, "crash")
    ), "a GET must not be claimed"


async def test_never_policy_claims_and_never_resends_a_get(
    sim: ApiSimulator, target: TargetServer
) -> None:
    nodes = await crash_and_restart(sim, target, method="GET", redelivery="never")
    assert nodes["slow"]["phase"] == "Failed"
    assert "redelivery policy 'never'" in str(nodes["slow"]["message"])


async def test_always_policy_resends_a_post(sim: ApiSimulator, target: TargetServer) -> None:
    sim.create_object(TS, taskset("again", {"p": http_task(target.url("/delay/1"), method="POST")}))
    first = AgentProcess(sim, "--namespace", NS, "--redelivery", "always")
    await first.start()
    await first.wait_ready()
    await asyncio.sleep(0.6)
    await first.kill()
    async with AgentProcess(sim, "--namespace", NS, "--redelivery", "always"):
        nodes = await wait_for_nodes(sim, "again", ["p"], namespace=NS, timeout=20)
    assert nodes["p"] == {"phase": "Succeeded", "outputs": {"result": "slept"}}
    assert not any(body.get("phase") == "Running" for _, body in claim_patches(sim, "again"))


async def test_final_result_overwrites_the_claim_field_by_field(
    sim: ApiSimulator, target: TargetServer
) -> None:
    """The claim's message must not survive in the final status (merge patch keeps absent
    keys, so the final patch clears them with explicit nulls)."""
    async with AgentProcess(sim, "--namespace", NS):
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
    agent = AgentProcess(sim, "--namespace", NS, "--shutdown-grace", "0.5")
    await agent.start()
    await agent.wait_ready()
    await wait_claimed(sim, "grace", "p")
    assert await agent.stop(signal.SIGTERM) == 0
    node = sim.get_object(TS, "grace", namespace=NS)["status"]["nodes"]["p"]
    assert node["phase"] == "Failed"
    assert "shut down while this request was in flight" in node["message"]
