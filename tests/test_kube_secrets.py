"""The cluster's secret resolver (agent/kube/secrets.py) against the API simulator, and the
engine's handling of a cancellation that comes from below.

Regression covered here: when the first reader of a shared Secret read was cancelled (its
node's timeout fired, or the node left ``spec.tasks``), every other reader waiting for the
same Secret received ``CancelledError``, and the engine then lost those nodes. Now the
read is a task no reader owns, and the engine reports a cancellation it did not ask for
as the node's Error instead of dropping the node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_sim import ApiSimulator, Rule
from agent_sim.samples import secret
from aiohttp import web
from kubernetes_asyncio import client

from agent.core.model import NodePhase, NodeResult, Outputs
from agent.core.refs import TaskRef, TaskSetKey, TaskSetSnapshot
from agent.core.secrets import SecretError
from agent.engine.scheduler import Engine
from agent.kube.client import connect
from agent.kube.secrets import KubeSecretResolver

NS = "argo"
WAIT = 30.0  # bound on every wait: a hang fails the test instead of blocking the suite
HOLD = 1.5  # how long the simulator holds a delayed Secret GET


def secret_gets(sim: ApiSimulator, name: str = "token") -> int:
    """How many GETs of this Secret reached the API."""
    return len(sim.requests(verb="get", resource="secrets", name=name))


async def value(resolver: KubeSecretResolver, name: str = "token", key: str = "k") -> str:
    return await resolver.get_secret_value(namespace=NS, name=name, key=key)


# -- caching ---------------------------------------------------------------------------------


async def test_reads_within_the_ttl_cost_one_get(sim: ApiSimulator, api: client.ApiClient) -> None:
    """Many sequential reads of one Secret (any key) within the ttl: one GET."""
    sim.create_object("secrets", secret("token", {"k": "v1", "other": "v2"}))
    resolver = KubeSecretResolver(api=api, ttl=3600)
    assert [await value(resolver) for _ in range(5)] == ["v1"] * 5
    assert await value(resolver, key="other") == "v2"
    assert secret_gets(sim) == 1


async def test_a_cached_secret_is_read_again_after_the_ttl(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """After the ttl the next read goes to the API and sees the Secret's new value."""
    sim.create_object("secrets", secret("token", {"k": "old"}))
    resolver = KubeSecretResolver(api=api, ttl=0.2)
    assert await value(resolver) == "old"
    sim.patch_object("secrets", "token", {"stringData": {"k": "new"}}, namespace=NS)
    await asyncio.sleep(0.4)  # let the ttl pass (the clock is monotonic)
    assert await value(resolver) == "new"
    assert secret_gets(sim) == 2


async def test_ttl_zero_reads_every_time(sim: ApiSimulator, api: client.ApiClient) -> None:
    """ttl=0 disables the cache: each sequential read is a GET."""
    sim.create_object("secrets", secret("token", {"k": "v"}))
    resolver = KubeSecretResolver(api=api, ttl=0)
    for _ in range(3):
        assert await value(resolver) == "v"
    assert secret_gets(sim) == 3


async def test_concurrent_misses_share_one_read(sim: ApiSimulator, api: client.ApiClient) -> None:
    """Twenty readers that miss together: one GET, every reader gets the value."""
    sim.create_object("secrets", secret("token", {"k": "shared"}))
    resolver = KubeSecretResolver(api=api, ttl=3600)
    values = await asyncio.wait_for(asyncio.gather(*(value(resolver) for _ in range(20))), WAIT)
    assert values == ["shared"] * 20
    assert secret_gets(sim) == 1


async def test_different_secrets_and_namespaces_are_cached_apart(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """The cache key is (namespace, name): same-named Secrets elsewhere are not confused."""
    sim.create_object("secrets", secret("token", {"k": "argo"}))
    sim.create_object("secrets", secret("token", {"k": "team"}, namespace="team"))
    resolver = KubeSecretResolver(api=api, ttl=3600)
    assert await value(resolver) == "argo"
    assert await resolver.get_secret_value(namespace="team", name="token", key="k") == "team"
    assert secret_gets(sim) == 2


# -- error texts -----------------------------------------------------------------------------


async def test_missing_secret_and_missing_key_texts(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """404 reads as the API server's text; a missing key as Argo's."""
    resolver = KubeSecretResolver(api=api, ttl=3600)
    with pytest.raises(SecretError) as missing:
        await value(resolver, name="absent")
    assert str(missing.value) == 'secrets "absent" not found'
    sim.create_object("secrets", secret("token", {"k": "v"}))
    with pytest.raises(SecretError) as no_key:
        await value(resolver, key="nope")
    assert str(no_key.value) == "secret 'token' does not have the key 'nope'"


async def test_a_failed_read_is_not_cached(sim: ApiSimulator, api: client.ApiClient) -> None:
    """A 404 is not remembered: once the Secret exists, the next read finds it."""
    resolver = KubeSecretResolver(api=api, ttl=3600)
    with pytest.raises(SecretError):
        await value(resolver)
    sim.create_object("secrets", secret("token", {"k": "now"}))
    assert await value(resolver) == "now"
    assert secret_gets(sim) == 2


async def test_forbidden_names_the_missing_permission(sim: ApiSimulator, tmp_path: Path) -> None:
    """403 (the service account may not get secrets there): the text says which
    permission is missing, in which namespace."""
    sim.create_object("secrets", secret("token", {"k": "v"}))
    sim.add_token("no-secrets", [Rule.of("get list watch", "workflowtasksets")], user="agent")
    api_client = await connect(
        kubeconfig=str(sim.kubeconfig(tmp_path / "kc-limited", token="no-secrets"))
    )
    try:
        resolver = KubeSecretResolver(api=api_client, ttl=3600)
        with pytest.raises(SecretError) as denied:
            await value(resolver)
    finally:
        await api_client.close()
    assert str(denied.value) == (
        "cannot read secret 'token' in namespace 'argo': forbidden; the agent's service "
        "account needs the 'get secrets' permission there"
    )
    assert [r.status for r in sim.requests(verb="get", resource="secrets")] == [403]


async def test_other_api_errors_carry_the_status_message(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """Any other failure names the Secret, the status and the API's message."""
    sim.create_object("secrets", secret("token", {"k": "v"}))
    sim.fail_next(1, code=500, verb="get", resource="secrets", message="etcd is sad")
    resolver = KubeSecretResolver(api=api, ttl=3600)
    with pytest.raises(SecretError) as failed:
        await value(resolver)
    assert str(failed.value) == "cannot read secret 'token': 500 etcd is sad"


async def test_invalid_base64_is_refused_with_a_text_naming_secret_and_key(
    tmp_path: Path,
) -> None:
    """A Secret whose data is not base64 (a broken server: the simulator, like the real
    API server, refuses to store one, so a minimal API on 127.0.0.1 serves it)."""

    async def get_secret(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NS},
            "data": {"good": "dmFsdWU=", "bad": "not base64!"},
        }
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/secrets/{name}", get_secret)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        kubeconfig = tmp_path / "kc-broken"
        kubeconfig.write_text(yaml.safe_dump(_kubeconfig(f"http://127.0.0.1:{port}")))
        api_client = await connect(kubeconfig=str(kubeconfig))
        try:
            resolver = KubeSecretResolver(api=api_client, ttl=3600)
            with pytest.raises(SecretError) as broken:
                await value(resolver, name="mixed", key="good")
        finally:
            await api_client.close()
    finally:
        await runner.cleanup()
    assert str(broken.value) == "secret 'mixed' key 'bad' is not valid base64"
    assert "dmFsdWU" not in str(broken.value) and "not base64!" not in str(broken.value)


def _kubeconfig(server: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }


# -- the regression: a reader that gives up cancels only its own wait ------------------------


async def _two_readers_on_a_held_read(
    sim: ApiSimulator, resolver: KubeSecretResolver, first: Any
) -> tuple[asyncio.Task[str], asyncio.Task[str], Any]:
    """Reader A (``first``) starts the Secret read, which the simulator holds; reader B
    joins it. Returns both tasks and the held request's record."""
    sim.create_object("secrets", secret("token", {"k": "v"}))
    sim.delay(HOLD, count=1, verb="get", resource="secrets")
    a = asyncio.create_task(first())
    async with asyncio.timeout(WAIT):
        held = await sim.wait_for_request(verb="get", resource="secrets", completed=False)
    b = asyncio.create_task(value(resolver))
    await asyncio.sleep(0)  # B's first step runs (FIFO): it is now waiting on the shared read
    return a, b, held


async def test_cancelling_the_first_reader_leaves_the_others_their_value(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """A is cancelled (its node left spec.tasks) while the shared read is held: B still
    gets the value, from the same single GET, and the cache is filled for later readers."""
    resolver = KubeSecretResolver(api=api, ttl=3600)
    a, b, held = await _two_readers_on_a_held_read(sim, resolver, lambda: value(resolver))
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    assert held.status is None, "precondition: A was cancelled while the read was held"
    assert await asyncio.wait_for(b, WAIT) == "v"
    assert await value(resolver) == "v"
    assert secret_gets(sim) == 1


async def test_a_timed_out_first_reader_leaves_the_others_their_value(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """A's own timeout fires while the shared read is held: A times out, B gets the value."""
    resolver = KubeSecretResolver(api=api, ttl=3600)

    async def impatient() -> str:
        async with asyncio.timeout(0.05):
            return await value(resolver)

    a, b, held = await _two_readers_on_a_held_read(sim, resolver, impatient)
    with pytest.raises(TimeoutError):
        await a
    assert held.status is None, "precondition: A timed out while the read was held"
    assert await asyncio.wait_for(b, WAIT) == "v"
    assert secret_gets(sim) == 1


# -- the engine: a cancellation from below is a failure of the node, not a loss --------------


KEY = TaskSetKey(NS, "wf")


class ListSink:
    def __init__(self) -> None:
        self.results: dict[str, NodeResult] = {}

    def submit(self, ref: TaskRef, result: NodeResult, *, overwrite: bool = False) -> None:
        self.results[ref.node_id] = result

    def discard(self, key: TaskSetKey, node_ids: frozenset[str] | None = None) -> None:
        pass


class CancelledFromBelow:
    """A runner whose awaitable is cancelled by someone else (not the engine)."""

    async def run(self, template: Mapping[str, Any], *, ref: TaskRef) -> NodeResult:
        if template.get("cancel"):
            shared: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(shared.cancel)
            await shared  # raises CancelledError although this task was never cancelled
        return NodeResult(phase=NodePhase.SUCCEEDED)


async def _run_until_idle(engine: Engine, *snapshots: TaskSetSnapshot) -> None:
    loop = asyncio.create_task(engine.run())
    try:
        for snapshot in snapshots:
            engine.observe(snapshot)
        await asyncio.wait_for(engine.wait_idle(), WAIT)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_engine_reports_a_cancellation_from_below_as_an_error() -> None:
    """The runner's awaitable raises CancelledError though the engine cancelled nothing:
    the node gets an Error result (it is not lost), and its neighbour is unaffected."""
    sink = ListSink()
    engine = Engine(runner=CancelledFromBelow(), sink=sink, max_in_flight=4)
    tasks = {"victim": {"cancel": True}, "neighbour": {}}
    await _run_until_idle(engine, TaskSetSnapshot(key=KEY, tasks=tasks, nodes={}))
    assert sink.results == {
        "victim": NodeResult(
            phase=NodePhase.ERROR, message="agent internal error: operation cancelled"
        ),
        "neighbour": NodeResult(phase=NodePhase.SUCCEEDED),
    }
    assert engine.in_flight == 0


class SecretRunner:
    """Reads a Secret as an HTTP template's secretKeyRef header would."""

    def __init__(self, resolver: KubeSecretResolver) -> None:
        self.resolver = resolver
        self.readers: list[str] = []
        self.reading = asyncio.Event()

    async def run(self, template: Mapping[str, Any], *, ref: TaskRef) -> NodeResult:
        self.readers.append(ref.node_id)
        if len(self.readers) == 2:
            self.reading.set()
        got = await self.resolver.get_secret_value(namespace=NS, name="token", key="k")
        return NodeResult(phase=NodePhase.SUCCEEDED, outputs=Outputs(result=got))


async def test_a_node_leaving_spec_does_not_lose_the_node_sharing_its_secret_read(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """Two nodes read one Secret; the node that started the read leaves spec.tasks while
    the read is held. The other node still succeeds with the Secret's value; the removed
    node reports nothing."""
    sim.create_object("secrets", secret("token", {"k": "v"}))
    sim.delay(HOLD, count=1, verb="get", resource="secrets")
    runner = SecretRunner(KubeSecretResolver(api=api, ttl=3600))
    sink = ListSink()
    engine = Engine(runner=runner, sink=sink, max_in_flight=4)
    tasks = {"one": {}, "two": {}}
    loop = asyncio.create_task(engine.run())
    try:
        engine.observe(TaskSetSnapshot(key=KEY, tasks=tasks, nodes={}, generation=1))
        async with asyncio.timeout(WAIT):
            await runner.reading.wait()
            held = await sim.wait_for_request(verb="get", resource="secrets", completed=False)
        owner, other = runner.readers  # both wait on the read the owner's call started
        left = {n: t for n, t in tasks.items() if n != owner}
        engine.observe(TaskSetSnapshot(key=KEY, tasks=left, nodes={}, generation=2))
        assert held.status is None, "precondition: the owner left while the read was held"
        await asyncio.wait_for(engine.wait_idle(), WAIT)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert sink.results == {
        other: NodeResult(phase=NodePhase.SUCCEEDED, outputs=Outputs(result="v")),
    }
    assert secret_gets(sim) == 1
