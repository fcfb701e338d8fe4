"""At-most-once claims (agent/engine/claims.py): the policy's decisions and texts, and the
engine with a real status patcher against the API simulator (the claim is in the API
before the request is sent; a drain settles every claim it leaves behind)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Mapping
from typing import Any

import pytest
from agent_sim import ApiSimulator
from agent_sim.samples import http_task, workflow_taskset
from kubernetes_asyncio import client

from agent.core.model import NodePhase, NodeResult, Outputs
from agent.core.refs import TaskRef, TaskSetKey, TaskSetSnapshot
from agent.engine.claims import ClaimPolicy, Redelivery, new_instance_id
from agent.engine.scheduler import Engine
from agent.sink.status import StatusPatcher

NS = "argo"
TS = "workflowtasksets"
WAIT = 30.0  # bound on every wait: a hang fails the test instead of blocking the suite
REF = TaskRef(namespace=NS, taskset="wf", node_id="n1")
IDEMPOTENT = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]
NOT_IDEMPOTENT = ["POST", "PATCH", "CONNECT", "PROPFIND"]


class RecordingSink:
    """A DurableSink that records what it was asked and completes at once."""

    def __init__(self) -> None:
        self.durable: list[tuple[TaskRef, NodeResult]] = []

    def submit(self, ref: TaskRef, result: NodeResult, *, overwrite: bool = False) -> None:
        raise AssertionError("claims are only written with submit_and_wait")

    def discard(self, key: TaskSetKey, node_ids: frozenset[str] | None = None) -> None:
        raise AssertionError("claims never discard")

    def submit_and_wait(self, ref: TaskRef, result: NodeResult) -> Awaitable[None]:
        self.durable.append((ref, result))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def policy(redelivery: Redelivery, instance_id: str = "agent-me") -> ClaimPolicy:
    return ClaimPolicy(sink=RecordingSink(), redelivery=redelivery, instance_id=instance_id)


def http(method: str | None) -> dict[str, Any]:
    fields = {"method": method} if method is not None else {}
    return http_task("http://127.0.0.1:9/", **fields)


PLUGIN = {"name": "p", "plugin": {"hello": {"name": "x"}}}


def claim_status(instance: str = "agent-gone") -> dict[str, str]:
    return {"phase": "Running", "message": f"argo-http-agent {instance}: request in flight"}


# -- needs_claim ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", [*IDEMPOTENT, *(m.lower() for m in IDEMPOTENT)])
def test_idempotent_policy_does_not_claim_rfc9110_idempotent_methods(method: str) -> None:
    """RFC 9110 section 9.2.2 idempotent methods, in any case, are sent without a claim."""
    assert policy("idempotent").needs_claim(http(method)) is False


def test_idempotent_policy_treats_a_missing_method_as_get() -> None:
    """No method is Argo's default, GET: no claim."""
    assert policy("idempotent").needs_claim(http(None)) is False


@pytest.mark.parametrize("method", [*NOT_IDEMPOTENT, "post"])
def test_idempotent_policy_claims_other_methods(method: str) -> None:
    """POST, PATCH and anything not known to be idempotent is claimed."""
    assert policy("idempotent").needs_claim(http(method)) is True


@pytest.mark.parametrize(
    "template",
    [PLUGIN, {"name": "odd"}, {"http": "not an object"}, {"http": {"method": 7}}],
    ids=["plugin", "no-http", "http-not-object", "method-not-text"],
)
def test_idempotent_policy_claims_plugins_and_unknown_templates(template: Any) -> None:
    """Plugins (and anything that is not a readable HTTP template) may have side effects."""
    assert policy("idempotent").needs_claim(template) is True


@pytest.mark.parametrize(
    "template", [http("GET"), http("POST"), PLUGIN], ids=["GET", "POST", "plugin"]
)
def test_always_claims_nothing_and_never_claims_everything(template: Any) -> None:
    """'always' (re-send freely) never claims; 'never' (never re-send) always claims."""
    assert policy("always").needs_claim(template) is False
    assert policy("never").needs_claim(template) is True


# -- adopt ----------------------------------------------------------------------------------


def failed_text(what: str, redelivery: str) -> str:
    return (
        f"{what} while this request was in flight; it was not sent again to avoid a "
        f"duplicate side effect (redelivery policy '{redelivery}')"
    )


@pytest.mark.parametrize(
    ("redelivery", "template", "resent"),
    [
        ("idempotent", http("GET"), True),
        ("idempotent", http("PUT"), True),
        ("idempotent", http("POST"), False),
        ("idempotent", PLUGIN, False),
        ("always", http("POST"), True),
        ("always", PLUGIN, True),
        ("never", http("GET"), False),
        ("never", http("POST"), False),
    ],
)
def test_adopting_a_claim_left_by_a_stopped_instance(
    redelivery: Redelivery, template: Any, resent: bool
) -> None:
    """A claim of a gone instance: the node runs again (None) when the policy allows a
    re-send of that template, else it is Failed with a text naming that instance."""
    verdict = policy(redelivery).adopt(REF, template, claim_status("agent-gone-1234"))
    if resent:
        assert verdict is None
    else:
        assert verdict == NodeResult(
            phase=NodePhase.FAILED,
            message=failed_text("the agent (agent-gone-1234) stopped", redelivery),
        )


@pytest.mark.parametrize("redelivery", ["idempotent", "always", "never"])
@pytest.mark.parametrize(
    "status",
    [
        {"phase": "Running", "message": "plugin: 3 of 10 done", "progress": "3/10"},
        {"phase": "Running"},
        {"phase": "Running", "message": "argo-http-agent x: request in flight, and more"},
        {"phase": "Running", "message": "note: argo-http-agent x: request in flight"},
        {"phase": "Running", "message": None},
    ],
    ids=["plugin-progress", "no-message", "suffix-added", "prefix-added", "null-message"],
)
def test_a_running_node_that_is_not_our_claim_is_run(
    redelivery: Redelivery, status: Mapping[str, Any]
) -> None:
    """A plugin's own Running message (or anything not exactly a claim) is not a claim:
    the node is run, whatever the policy and the template."""
    assert policy(redelivery).adopt(REF, http("POST"), status) is None


async def test_a_claim_written_by_the_policy_is_recognised_by_adopt() -> None:
    """claim() writes Running with the claim text through submit_and_wait, once; another
    instance adopting that status reads the writer's instance ID back."""
    sink = RecordingSink()
    writer = ClaimPolicy(sink=sink, redelivery="never", instance_id="pod-a-w0-deadbeef")
    await writer.claim(REF)
    assert sink.durable == [
        (
            REF,
            NodeResult(
                phase=NodePhase.RUNNING,
                message="argo-http-agent pod-a-w0-deadbeef: request in flight",
            ),
        )
    ]
    status = json.loads(json.dumps({"phase": "Running", "message": sink.durable[0][1].message}))
    verdict = policy("never", instance_id="pod-b").adopt(REF, http("GET"), status)
    assert verdict is not None
    assert verdict.message == failed_text("the agent (pod-a-w0-deadbeef) stopped", "never")


@pytest.mark.parametrize("redelivery", ["idempotent", "always", "never"])
def test_abandoned_names_this_instance_and_the_policy(redelivery: Redelivery) -> None:
    """The result of a claimed request cut short by this instance's shutdown."""
    assert policy(redelivery, instance_id="agent-1a2b").abandoned(REF) == NodeResult(
        phase=NodePhase.FAILED,
        message=failed_text("the agent (agent-1a2b) shut down", redelivery),
    )


# -- instance IDs ---------------------------------------------------------------------------


def test_instance_ids_name_the_pod_and_worker_and_are_unique() -> None:
    """base-<8 hex>, base-w<worker>-<8 hex>, or agent-<8 hex>; never the same twice."""
    assert re.fullmatch(r"agent-[0-9a-f]{8}", new_instance_id())
    assert re.fullmatch(r"pod-7-[0-9a-f]{8}", new_instance_id("pod-7"))
    assert re.fullmatch(r"pod-7-w2-[0-9a-f]{8}", new_instance_id("pod-7", worker=2))
    assert len({new_instance_id("pod") for _ in range(100)}) == 100


def test_instance_ids_fit_the_claim_text() -> None:
    """Every kind of instance ID survives the round trip through a claim's message."""
    for instance in (new_instance_id(), new_instance_id("p", worker=0)):
        verdict = policy("never").adopt(REF, http("GET"), claim_status(instance))
        assert verdict is not None and f"({instance})" in verdict.message


# -- the engine with a real patcher and the simulator ---------------------------------------


class StatusReadingRunner:
    """Records, when called, what the API had stored for the node; then waits or answers."""

    def __init__(self, sim: ApiSimulator, *, block: bool = False) -> None:
        self.sim = sim
        self.block = block
        self.seen: dict[str, Any] = {}
        self.called = asyncio.Event()

    async def run(self, template: Mapping[str, Any], *, ref: TaskRef) -> NodeResult:
        obj = self.sim.get_object(TS, ref.taskset, namespace=NS)
        self.seen[ref.node_id] = ((obj.get("status") or {}).get("nodes") or {}).get(ref.node_id)
        self.called.set()
        if self.block:
            await asyncio.Event().wait()  # a request that does not finish before the drain
        return NodeResult(phase=NodePhase.SUCCEEDED, outputs=Outputs(result=ref.node_id))


class Agent:
    """Engine + ClaimPolicy + StatusPatcher wired as the cluster agent wires them."""

    def __init__(self, api: client.ApiClient, runner: Any, redelivery: Redelivery) -> None:
        self.engine: Engine
        self.patcher = StatusPatcher(
            api=api,
            is_current=lambda key, node: self.engine.is_current(key, node),
            retry_base=0.01,
            retry_cap=0.05,
        )
        self.claims = ClaimPolicy(
            sink=self.patcher, redelivery=redelivery, instance_id="agent-test-0001"
        )
        self.engine = Engine(runner=runner, sink=self.patcher, max_in_flight=8, claims=self.claims)
        self.loop: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Agent:
        self.loop = asyncio.create_task(self.engine.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.loop is not None
        self.loop.cancel()
        await asyncio.gather(self.loop, return_exceptions=True)
        await self.patcher.aclose()

    def observe(self, sim: ApiSimulator, name: str) -> None:
        obj = sim.get_object(TS, name, namespace=NS)
        self.engine.observe(TaskSetSnapshot.from_object(obj))


def stored(sim: ApiSimulator, name: str) -> dict[str, Any]:
    nodes: dict[str, Any] = (sim.get_object(TS, name, namespace=NS).get("status") or {}).get(
        "nodes"
    ) or {}
    return nodes


def patched_nodes(sim: ApiSimulator, name: str) -> list[dict[str, Any]]:
    return [
        json.loads(r.body)["status"]["nodes"]
        for r in sim.requests(verb="patch", subresource="status", name=name)
    ]


CLAIM_TEXT = "argo-http-agent agent-test-0001: request in flight"


async def test_the_claim_is_in_the_api_before_the_runner_is_called(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """A POST is claimed (Running, naming this instance) and the API has the claim when the
    runner starts; its result then replaces the claim entirely. A GET is not claimed."""
    sim.create_object(
        TS,
        workflow_taskset("wf", {"post": http("POST"), "get": http("GET")}, namespace=NS),
    )
    runner = StatusReadingRunner(sim)
    async with Agent(api, runner, "idempotent") as agent:
        agent.observe(sim, "wf")
        await asyncio.wait_for(agent.engine.wait_idle(), WAIT)
        assert await agent.patcher.flush(timeout=WAIT)
    assert runner.seen == {"post": {"phase": "Running", "message": CLAIM_TEXT}, "get": None}
    assert stored(sim, "wf") == {
        "post": {"phase": "Succeeded", "outputs": {"result": "post"}},
        "get": {"phase": "Succeeded", "outputs": {"result": "get"}},
    }
    claims = [
        n
        for nodes in patched_nodes(sim, "wf")
        for n, v in nodes.items()
        if v.get("phase") == "Running"
    ]
    assert claims == ["post"]


async def test_a_claim_found_at_start_is_settled_by_the_policy(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """A restarted agent finds a gone instance's claims: the POST is Failed without being
    run (the text replaces the claim), the GET is run again and its result clears the
    claim's message."""
    sim.create_object(
        TS, workflow_taskset("wf", {"post": http("POST"), "get": http("GET")}, namespace=NS)
    )
    claimed = {"post": claim_status("agent-old"), "get": claim_status("agent-old")}
    sim.patch_object(TS, "wf", {"status": {"nodes": claimed}}, namespace=NS, subresource="status")
    runner = StatusReadingRunner(sim)
    async with Agent(api, runner, "idempotent") as agent:
        agent.observe(sim, "wf")
        await asyncio.wait_for(agent.engine.wait_idle(), WAIT)
        assert await agent.patcher.flush(timeout=WAIT)
    assert list(runner.seen) == ["get"]
    assert stored(sim, "wf") == {
        "post": {
            "phase": "Failed",
            "message": failed_text("the agent (agent-old) stopped", "idempotent"),
        },
        "get": {"phase": "Succeeded", "outputs": {"result": "get"}},
    }


async def test_drain_hands_back_a_claimed_node_whose_request_was_not_sent(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """Shutdown while the claim is still on its way (the simulator holds it): the runner is
    never called and the node is handed back Pending, the claim's message cleared."""
    sim.create_object(TS, workflow_taskset("wf", {"post": http("POST")}, namespace=NS))
    sim.delay(1.5, count=1, verb="patch", resource="workflowtasksets/status")
    runner = StatusReadingRunner(sim)
    async with Agent(api, runner, "idempotent") as agent:
        agent.observe(sim, "wf")
        async with asyncio.timeout(WAIT):
            held = await sim.wait_for_request(verb="patch", subresource="status", completed=False)
        await agent.engine.drain(grace=0)
        assert held.status is None, "precondition: drained while the claim was in flight"
        assert await agent.patcher.flush(timeout=WAIT)
    assert not runner.called.is_set()
    assert patched_nodes(sim, "wf") == [
        {"post": {"phase": "Running", "message": CLAIM_TEXT}},
        {"post": {"phase": "Pending", "message": None, "outputs": None, "progress": None}},
    ]
    assert stored(sim, "wf") == {"post": {"phase": "Pending"}}


async def test_drain_fails_a_claimed_node_whose_request_was_sent(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """Shutdown past the grace while a claimed request runs: the node is Failed with the
    abandoned text naming this instance, so no claim outlives a clean stop."""
    sim.create_object(TS, workflow_taskset("wf", {"post": http("POST")}, namespace=NS))
    runner = StatusReadingRunner(sim, block=True)
    async with Agent(api, runner, "never") as agent:
        agent.observe(sim, "wf")
        await asyncio.wait_for(runner.called.wait(), WAIT)
        await agent.engine.drain(grace=0)
        assert await agent.patcher.flush(timeout=WAIT)
    assert runner.seen == {"post": {"phase": "Running", "message": CLAIM_TEXT}}
    assert stored(sim, "wf") == {
        "post": {
            "phase": "Failed",
            "message": failed_text("the agent (agent-test-0001) shut down", "never"),
        }
    }


async def test_drain_leaves_an_unclaimed_running_request_unreported(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """A GET (not claimed) cut short by the drain reports nothing: it may simply be sent
    again by the next instance."""
    sim.create_object(TS, workflow_taskset("wf", {"get": http("GET")}, namespace=NS))
    runner = StatusReadingRunner(sim, block=True)
    async with Agent(api, runner, "idempotent") as agent:
        agent.observe(sim, "wf")
        await asyncio.wait_for(runner.called.wait(), WAIT)
        await agent.engine.drain(grace=0)
        assert await agent.patcher.flush(timeout=WAIT)
    assert runner.seen == {"get": None}
    assert patched_nodes(sim, "wf") == []
