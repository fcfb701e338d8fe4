"""Contract tests of the simulator's watch: start points, resume, 410, bookmarks, timeouts.

Driven through ``kubernetes_asyncio.watch.Watch`` (what the agent uses) and, where the
client hides the wire (the ERROR event, stream end), through raw aiohttp requests. Each
test cites the Kubernetes documentation section it pins. ``asyncio.timeout`` guards only
keep a broken build from hanging; no test asserts on durations.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from agent_sim import ApiSimulator
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflowtasksets"
TOKEN = "admin-token"
BASE = f"/apis/{GROUP}/{VERSION}"
GUARD = 20  # seconds: only a hang guard


@pytest.fixture
async def sim() -> AsyncIterator[ApiSimulator]:
    async with ApiSimulator(bookmark_interval=0.05) as simulator:
        simulator.add_token(TOKEN)
        yield simulator


@pytest.fixture
async def crd(sim: ApiSimulator, tmp_path: Path) -> AsyncIterator[client.CustomObjectsApi]:
    kubeconfig = sim.kubeconfig(tmp_path / "kubeconfig", token=TOKEN)
    api_client = await config.new_client_from_config(config_file=str(kubeconfig))
    yield client.CustomObjectsApi(api_client)
    await api_client.close()


def taskset(name: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowTaskSet",
        "metadata": {"name": name, **meta},
        "spec": {"tasks": {"n1": {"http": {"url": "http://a"}}}},
    }


def summary(event: dict[str, Any]) -> tuple[str, str]:
    obj = event["raw_object"] if "raw_object" in event else event["object"]
    return event["type"], obj["metadata"].get("name", "")


async def collect(
    crd: client.CustomObjectsApi, count: int, *, namespace: str | None = "default", **kwargs: Any
) -> list[dict[str, Any]]:
    """The first ``count`` non-bookmark events of a watch."""
    events: list[dict[str, Any]] = []
    stream = watch.Watch()
    func = crd.list_namespaced_custom_object if namespace else crd.list_cluster_custom_object
    args = (GROUP, VERSION, namespace, PLURAL) if namespace else (GROUP, VERSION, PLURAL)
    async with asyncio.timeout(GUARD), stream:
        async for event in stream.stream(func, *args, **kwargs):
            if event["type"] != "BOOKMARK":
                events.append(event)
            if len(events) == count:
                break
    return events


async def raw_watch(sim: ApiSimulator, query: str) -> tuple[int, list[dict[str, Any]]]:
    """Status code and every event of a watch read until the server ends it."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{sim.url}{BASE}/namespaces/default/{PLURAL}?watch=1&{query}"
    async with (
        asyncio.timeout(GUARD),
        aiohttp.ClientSession(headers=headers) as http,
        http.get(url) as resp,
    ):
        assert resp.headers["Content-Type"] == "application/json"
        body = await resp.read()
        return resp.status, [json.loads(line) for line in body.splitlines() if line]


async def test_watch_without_version_starts_with_synthetic_added(
    sim: ApiSimulator, crd: client.CustomObjectsApi
) -> None:
    """API Concepts: Semantics for watch ("resourceVersion unset: Get State and Start at
    Most Recent ... begins with synthetic 'Added' events of all resource instances"),
    then live events follow."""
    sim.create_object(PLURAL, taskset("a"))
    sim.create_object(PLURAL, taskset("b"))

    async def change_later() -> None:
        await sim.wait_for_watches(1)
        sim.patch_object(PLURAL, "a", {"metadata": {"labels": {"x": "y"}}})

    changer = asyncio.create_task(change_later())
    events = await collect(crd, 3)
    await changer
    assert [summary(e) for e in events] == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a")]
    assert events[2]["raw_object"]["metadata"]["labels"] == {"x": "y"}


async def test_watch_from_version_replays_what_came_after(
    sim: ApiSimulator, crd: client.CustomObjectsApi
) -> None:
    """API Concepts: Efficient detection of changes ("clients ... watch starting from the
    resourceVersion returned by the list"); Semantics for watch ("resourceVersion set to
    a value other than 0: Start at Exact")."""
    sim.create_object(PLURAL, taskset("a"))
    listed = await crd.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    start = listed["metadata"]["resourceVersion"]
    sim.patch_object(
        PLURAL, "a", {"status": {"nodes": {"n1": {"phase": "Succeeded"}}}}, subresource="status"
    )
    sim.create_object(PLURAL, taskset("b"))
    sim.delete_object(PLURAL, "b")
    events = await collect(crd, 3, resource_version=start)
    assert [summary(e) for e in events] == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "b")]
    versions = [int(e["raw_object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(start)
    assert events[0]["raw_object"]["status"]["nodes"]["n1"]["phase"] == "Succeeded"
    assert events[0]["raw_object"]["spec"] == taskset("a")["spec"]


async def test_compacted_version_gets_410_expired(
    sim: ApiSimulator, crd: client.CustomObjectsApi
) -> None:
    """API Concepts: Resource versions / 410 Gone responses ("the server ... returns an
    ERROR event with a Status of 410 Gone / Expired when the requested version has been
    compacted"): the watch answers 200 then one ERROR event; the client raises 410."""
    created = sim.create_object(PLURAL, taskset("a"))
    old = created["metadata"]["resourceVersion"]
    sim.patch_object(PLURAL, "a", {"metadata": {"labels": {"v": "2"}}})
    floor = sim.compact()
    status, events = await raw_watch(sim, f"resourceVersion={old}")
    assert status == 200
    assert events == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {old} ({floor})",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]
    with pytest.raises(ApiException) as caught:
        await collect(crd, 1, resource_version=old, timeout_seconds=5)
    assert caught.value.status == 410
    # Watching from the compaction point itself is still possible.
    sim.patch_object(PLURAL, "a", {"metadata": {"labels": {"v": "3"}}})
    events_after = await collect(crd, 1, resource_version=floor)
    assert summary(events_after[0]) == ("MODIFIED", "a")


async def test_history_window_is_bounded(crd: client.CustomObjectsApi) -> None:
    """API Concepts: Resource versions ("the API server retains history for a limited
    window"): beyond ``history_limit`` events an old version is 410 Expired."""
    async with ApiSimulator(history_limit=3) as small:
        small.add_token(TOKEN)
        first = small.create_object(PLURAL, taskset("a"))["metadata"]["resourceVersion"]
        for i in range(5):
            small.patch_object(PLURAL, "a", {"metadata": {"labels": {"i": str(i)}}})
        status, events = await raw_watch(small, f"resourceVersion={first}")
        assert status == 200
        assert [(e["type"], e["object"]["code"]) for e in events] == [("ERROR", 410)]


async def test_bookmarks_carry_the_current_version(
    sim: ApiSimulator, crd: client.CustomObjectsApi
) -> None:
    """API Concepts: Watch bookmarks ("allowWatchBookmarks=true ... BOOKMARK event ...
    only the metadata.resourceVersion is set"): a client can resume from it."""
    sim.create_object(PLURAL, taskset("a"))
    current = sim.resource_version
    stream = watch.Watch()
    bookmark: dict[str, Any] = {}
    async with asyncio.timeout(GUARD), stream:
        async for event in stream.stream(
            crd.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "default",
            PLURAL,
            resource_version=current,
            allow_watch_bookmarks=True,
        ):
            assert event["type"] == "BOOKMARK"
            bookmark = event["raw_object"]
            break
    assert bookmark == {
        "kind": "WorkflowTaskSet",
        "apiVersion": f"{GROUP}/{VERSION}",
        "metadata": {"resourceVersion": current},
    }
    assert stream.resource_version == current


async def test_timeout_seconds_ends_the_stream(sim: ApiSimulator) -> None:
    """API Concepts: Semantics for watch / ``timeoutSeconds``: the server ends the stream
    after that time; without ``allowWatchBookmarks`` no BOOKMARK is sent, with it a final
    bookmark precedes the end."""
    sim.create_object(PLURAL, taskset("a"))
    current = sim.resource_version
    status, plain = await raw_watch(sim, f"resourceVersion={current}&timeoutSeconds=1")
    assert (status, plain) == (200, [])
    status, with_bookmarks = await raw_watch(
        sim, f"resourceVersion={current}&timeoutSeconds=1&allowWatchBookmarks=true"
    )
    assert status == 200
    assert with_bookmarks
    assert {e["type"] for e in with_bookmarks} == {"BOOKMARK"}
    assert with_bookmarks[-1]["object"]["metadata"]["resourceVersion"] == current


async def test_client_with_timeout_seconds_does_not_reconnect(
    sim: ApiSimulator, crd: client.CustomObjectsApi
) -> None:
    """API Concepts: Semantics for watch (``timeoutSeconds``): kubernetes_asyncio's Watch
    stops iterating when the server ends a timed watch (the agent must re-watch)."""
    stream = watch.Watch()
    seen = []
    async with asyncio.timeout(GUARD), stream:
        async for event in stream.stream(
            crd.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "default",
            PLURAL,
            resource_version=sim.resource_version,
            timeout_seconds=1,
        ):
            seen.append(event)
    assert seen == []
    assert len(sim.requests(verb="watch")) == 1


async def test_dropped_watch_resumes_from_last_version(
    sim: ApiSimulator, crd: client.CustomObjectsApi
) -> None:
    """API Concepts: Efficient detection of changes ("when a watch is ended, clients
    can restart it from the last returned resourceVersion"): a clean drop lets the
    client resume and every change arrives exactly once."""
    sim.create_object(PLURAL, taskset("a"))
    start = sim.resource_version

    async def drive() -> None:
        await sim.wait_for_watches(1)
        sim.patch_object(PLURAL, "a", {"metadata": {"labels": {"step": "1"}}})
        assert sim.drop_watches() == 1
        sim.patch_object(PLURAL, "a", {"metadata": {"labels": {"step": "2"}}})

    driver = asyncio.create_task(drive())
    events = await collect(crd, 2, resource_version=start)
    await driver
    assert [e["raw_object"]["metadata"]["labels"]["step"] for e in events] == ["1", "2"]
    watches = sim.requests(verb="watch")
    assert len(watches) == 2
    assert watches[0].query["resourceVersion"] == start
    assert (
        watches[1].query["resourceVersion"]
        == events[0]["raw_object"]["metadata"]["resourceVersion"]
    )


async def test_abrupt_drop_breaks_the_connection(
    sim: ApiSimulator, crd: client.CustomObjectsApi
) -> None:
    """API Concepts: Efficient detection of changes (a watch can end at any time): an
    abrupt drop cuts the TCP connection mid-stream, which kubernetes_asyncio surfaces as
    a client error rather than a clean end (the agent must catch it and resume)."""
    sim.create_object(PLURAL, taskset("a"))
    stream = watch.Watch()
    seen = []
    with pytest.raises((aiohttp.ClientError, ConnectionError)):
        async with asyncio.timeout(GUARD), stream:
            async for event in stream.stream(
                crd.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL
            ):
                seen.append(summary(event))
                assert sim.drop_watches(abrupt=True) == 1  # mid-stream: headers were read
    assert seen == [("ADDED", "a")]


async def test_selectors_apply_to_watches(sim: ApiSimulator, crd: client.CustomObjectsApi) -> None:
    """Labels and Selectors / API Concepts: Semantics for watch: an object that stops
    matching a label selector arrives as DELETED, one that starts matching as ADDED."""
    sim.create_object(PLURAL, taskset("a"))
    sim.create_object(PLURAL, taskset("b"))
    start = sim.resource_version

    async def drive() -> None:
        await sim.wait_for_watches(1)
        sim.patch_object(PLURAL, "b", {"metadata": {"labels": {"other": "x"}}})
        sim.patch_object(PLURAL, "a", {"metadata": {"labels": {"done": "true"}}})
        sim.patch_object(PLURAL, "a", {"metadata": {"labels": {"done": None}}})

    driver = asyncio.create_task(drive())
    events = await collect(crd, 3, resource_version=start, label_selector="done!=true")
    await driver
    assert [summary(e) for e in events] == [("MODIFIED", "b"), ("DELETED", "a"), ("ADDED", "a")]
    deleted = events[1]["raw_object"]
    assert "labels" not in deleted["metadata"]  # the content before it stopped matching
    assert int(deleted["metadata"]["resourceVersion"]) > int(start)


async def test_field_selector_watch_sees_one_object_across_namespaces(
    sim: ApiSimulator, crd: client.CustomObjectsApi
) -> None:
    """Field Selectors (``metadata.name``) on the all-namespaces watch path
    ``/apis/argoproj.io/v1alpha1/workflowtasksets``."""
    sim.create_object(PLURAL, taskset("wf"), namespace="one")
    sim.create_object(PLURAL, taskset("other"), namespace="one")
    sim.create_object(PLURAL, taskset("wf"), namespace="two")
    events = await collect(crd, 2, namespace=None, field_selector="metadata.name=wf")
    assert [(e["type"], e["raw_object"]["metadata"]["namespace"]) for e in events] == [
        ("ADDED", "one"),
        ("ADDED", "two"),
    ]


async def test_too_slow_watcher_is_closed_and_can_resume() -> None:
    """API Concepts: Efficient detection of changes: the server may end a watch at any
    time (the watch cache closes a watcher that cannot keep up); the client resumes from
    its last version and loses nothing."""
    async with ApiSimulator(watch_queue_limit=3) as small:
        small.add_token(TOKEN)
        start = small.resource_version
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = f"{small.url}{BASE}/namespaces/default/{PLURAL}?watch=1&resourceVersion={start}"
        async with aiohttp.ClientSession(headers=headers) as http, asyncio.timeout(GUARD):
            async with http.get(url) as resp:
                await small.wait_for_watches(1)
                for i in range(5):  # no await: the watcher cannot drain in between
                    small.create_object(PLURAL, taskset(f"wf{i}"))
                assert await resp.read() == b""
            async with http.get(url + "&timeoutSeconds=1") as resp:
                lines = (await resp.read()).splitlines()
        assert [json.loads(line)["object"]["metadata"]["name"] for line in lines] == [
            f"wf{i}" for i in range(5)
        ]


async def test_version_from_the_future_is_504(sim: ApiSimulator) -> None:
    """API Concepts: Resource versions ("Too large resource version" when the requested
    version is newer than the server has seen): 504 Timeout with retryAfterSeconds."""
    future = int(sim.resource_version) + 100
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{sim.url}{BASE}/namespaces/default/{PLURAL}?watch=1&resourceVersion={future}"
    async with aiohttp.ClientSession(headers=headers) as http, http.get(url) as resp:
        assert resp.status == 504
        status = await resp.json()
    assert status["reason"] == "Timeout"
    assert status["message"].startswith(f"Timeout: Too large resource version: {future}")


async def test_secret_watch_through_core_v1(sim: ApiSimulator, tmp_path: Path) -> None:
    """API Concepts: Efficient detection of changes, for a built-in type: the client
    decodes events into V1Secret objects."""
    sim.create_object("secrets", {"metadata": {"name": "creds"}, "stringData": {"k": "v"}})
    api_client = await config.new_client_from_config(
        config_file=str(sim.kubeconfig(tmp_path / "kc", token=TOKEN))
    )
    try:
        stream = watch.Watch()
        async with asyncio.timeout(GUARD), stream:
            async for event in stream.stream(
                client.CoreV1Api(api_client).list_namespaced_secret, "default"
            ):
                assert event["type"] == "ADDED"
                secret = event["object"]
                break
    finally:
        await api_client.close()
    assert isinstance(secret, client.V1Secret)
    assert (secret.metadata.name, secret.data, secret.type) == ("creds", {"k": "dg=="}, "Opaque")
