"""Contract tests of the simulator's authentication, RBAC, fault injection and request log.

RBAC denials must read exactly like the API server's (the agent turns a 403 on a secret
into a node message), and injected faults must look like the server's own answers
(status code, ``Status`` reason, ``Retry-After``), so the agent's retry policy is tested
against what it will meet. Each test cites the documentation section it pins.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from agent_sim import ApiSimulator, Rule
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflowtasksets"
ADMIN = "admin-token"
AGENT = "agent-token"
AGENT_USER = "system:serviceaccount:argo:agent"
MERGE = "application/merge-patch+json"


@pytest.fixture
async def sim() -> AsyncIterator[ApiSimulator]:
    async with ApiSimulator() as simulator:
        simulator.add_token(ADMIN)
        simulator.create_object(PLURAL, taskset("wf"))
        yield simulator


async def open_client(sim: ApiSimulator, tmp_path: Path, token: str) -> client.ApiClient:
    kubeconfig = sim.kubeconfig(tmp_path / f"kc-{token}", token=token)
    return await config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
async def admin(sim: ApiSimulator, tmp_path: Path) -> AsyncIterator[client.CustomObjectsApi]:
    api_client = await open_client(sim, tmp_path, ADMIN)
    yield client.CustomObjectsApi(api_client)
    await api_client.close()


@pytest.fixture
async def agent(sim: ApiSimulator, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    """A client with the Argo agent's RBAC in namespace ``default`` only."""
    sim.add_token(
        AGENT,
        [
            Rule.of("list watch", "workflowtasksets", namespaces="default"),
            Rule.of("patch", "workflowtasksets/status", namespaces="default"),
        ],
        user=AGENT_USER,
    )
    api_client = await open_client(sim, tmp_path, AGENT)
    yield api_client
    await api_client.close()


def taskset(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowTaskSet",
        "metadata": {"name": name},
        "spec": {"tasks": {"n1": {"http": {"url": "http://a"}}}},
    }


def status_of(err: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    return body


async def patch_status(
    crd: client.CustomObjectsApi, patch: dict[str, Any], name: str = "wf"
) -> Any:
    return await crd.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, name, patch, _content_type=MERGE
    )


# ---- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic YTpi"])
async def test_missing_or_unknown_token_is_401(
    sim: ApiSimulator, authorization: str | None
) -> None:
    """Authenticating: Putting a Bearer Token in a Request; an unauthenticated request is
    answered 401 with a Status whose reason is Unauthorized."""
    headers = {"Authorization": authorization} if authorization else {}
    url = f"{sim.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        assert resp.status == 401
        assert await resp.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }


async def test_version_needs_no_token(sim: ApiSimulator) -> None:
    """Controlling Access to the Kubernetes API: ``/version`` and health endpoints are
    readable without credentials (system:public-info-viewer)."""
    async with aiohttp.ClientSession() as http, http.get(f"{sim.url}/version") as resp:
        assert resp.status == 200
        assert (await resp.json())["major"] == "1"


async def test_removed_token_is_401(sim: ApiSimulator, tmp_path: Path) -> None:
    """Authenticating: a token the server no longer accepts gets 401."""
    sim.add_token("temporary")
    api_client = await open_client(sim, tmp_path, "temporary")
    try:
        crd = client.CustomObjectsApi(api_client)
        await crd.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
        sim.remove_token("temporary")
        with pytest.raises(ApiException) as caught:
            await crd.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
        assert caught.value.status == 401
    finally:
        await api_client.close()


# ---- authorization --------------------------------------------------------------------------


async def test_agent_rbac_allows_watch_and_status_patch(agent: client.ApiClient) -> None:
    """Using RBAC Authorization: Referring to resources (``workflowtasksets/status`` is
    a subresource): Argo's agent role (list/watch tasksets, patch their status) works."""
    crd = client.CustomObjectsApi(agent)
    listed = await crd.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["wf"]
    patched = await patch_status(crd, {"status": {"nodes": {"n1": {"phase": "Succeeded"}}}})
    assert patched["status"]["nodes"]["n1"]["phase"] == "Succeeded"


async def test_patch_without_status_permission_is_403(sim: ApiSimulator, tmp_path: Path) -> None:
    """Using RBAC Authorization: Referring to resources ("subresources ... must be
    granted separately"): patching ``workflowtasksets`` does not allow patching
    ``workflowtasksets/status``; the 403 reads exactly like the API server's."""
    sim.add_token("main-only", [Rule.of("patch", "workflowtasksets")], user=AGENT_USER)
    api_client = await open_client(sim, tmp_path, "main-only")
    try:
        with pytest.raises(ApiException) as caught:
            await patch_status(client.CustomObjectsApi(api_client), {"status": {}})
    finally:
        await api_client.close()
    assert caught.value.status == 403
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'workflowtasksets.argoproj.io "wf" is forbidden: User '
        '"system:serviceaccount:argo:agent" cannot patch resource "workflowtasksets/status" '
        'in API group "argoproj.io" in the namespace "default"',
        "reason": "Forbidden",
        "details": {"name": "wf", "group": "argoproj.io", "kind": "workflowtasksets"},
        "code": 403,
    }


async def test_secret_get_denied_names_the_secret(agent: client.ApiClient) -> None:
    """Using RBAC Authorization (core group ``""``): a denied ``get secrets`` names the
    secret, the verb and the namespace."""
    with pytest.raises(ApiException) as caught:
        await client.CoreV1Api(agent).read_namespaced_secret("creds", "default")
    assert caught.value.status == 403
    assert status_of(caught.value)["message"] == (
        'secrets "creds" is forbidden: User "system:serviceaccount:argo:agent" cannot get '
        'resource "secrets" in API group "" in the namespace "default"'
    )
    assert status_of(caught.value)["details"] == {"name": "creds", "kind": "secrets"}


async def test_namespaced_role_cannot_list_all_namespaces(agent: client.ApiClient) -> None:
    """Using RBAC Authorization: RoleBinding grants permissions within a namespace only;
    the all-namespaces list is a cluster-scope request."""
    crd = client.CustomObjectsApi(agent)
    with pytest.raises(ApiException) as caught:
        await crd.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    assert status_of(caught.value)["message"] == (
        'workflowtasksets.argoproj.io is forbidden: User "system:serviceaccount:argo:agent" '
        'cannot list resource "workflowtasksets" in API group "argoproj.io" at the cluster scope'
    )
    with pytest.raises(ApiException) as elsewhere:
        await crd.list_namespaced_custom_object(GROUP, VERSION, "other", PLURAL)
    assert elsewhere.value.status == 403


async def test_resource_names_allow_a_name_pinned_watch(sim: ApiSimulator, tmp_path: Path) -> None:
    """Using RBAC Authorization: Referring to resources (``resourceNames``; list and watch
    are authorized by name when ``fieldSelector=metadata.name=<name>`` pins one)."""
    sim.add_token("one-wf", [Rule.of("list watch", "workflowtasksets", resource_names="wf")])
    api_client = await open_client(sim, tmp_path, "one-wf")
    try:
        crd = client.CustomObjectsApi(api_client)
        stream = watch.Watch()
        async with asyncio.timeout(20), stream:
            async for event in stream.stream(
                crd.list_namespaced_custom_object,
                GROUP,
                VERSION,
                "default",
                PLURAL,
                field_selector="metadata.name=wf",
            ):
                assert (event["type"], event["raw_object"]["metadata"]["name"]) == ("ADDED", "wf")
                break
        with pytest.raises(ApiException) as caught:
            await crd.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
        assert caught.value.status == 403
    finally:
        await api_client.close()


# ---- faults ---------------------------------------------------------------------------------


async def test_fail_next_429_with_retry_after(sim: ApiSimulator) -> None:
    """API Priority and Fairness ("429 Too Many Requests ... with a Retry-After header"):
    the next N matching requests are rejected, others pass untouched."""
    sim.fail_next(2, code=429, retry_after=1, verb="patch", resource="workflowtasksets/status")
    url = f"{sim.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/wf"
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": MERGE}
    body = b'{"status":{"nodes":{"n1":{"phase":"Succeeded"}}}}'
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(url) as resp:
            assert resp.status == 200
        for _ in range(2):
            async with http.patch(url + "/status", data=body) as resp:
                assert resp.status == 429
                assert resp.headers["Retry-After"] == "1"
                status = await resp.json()
                assert status["reason"] == "TooManyRequests"
                assert status["details"] == {"retryAfterSeconds": 1}
        async with http.patch(url + "/status", data=body) as resp:
            assert resp.status == 200
    assert [r.status for r in sim.requests(verb="patch")] == [429, 429, 200]


async def test_fail_next_500_through_the_client(
    sim: ApiSimulator, admin: client.CustomObjectsApi
) -> None:
    """API Concepts: Status responses (5xx InternalError) as a client sees them."""
    sim.fail_next(code=500, path_contains="/workflowtasksets/wf")
    with pytest.raises(ApiException) as caught:
        await admin.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
    assert caught.value.status == 500
    assert status_of(caught.value)["reason"] == "InternalError"
    got = await admin.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
    assert got["metadata"]["name"] == "wf"


async def test_oversized_patch_gets_413_once(
    sim: ApiSimulator, admin: client.CustomObjectsApi
) -> None:
    """API server request limits ("Request entity too large: limit is 3145728", the
    413 Argo meets with large results): only the matching oversized patch fails."""
    sim.fail_next(code=413, resource="workflowtasksets/status", body_larger_than=1000)
    small = {"status": {"nodes": {"a": {"phase": "Succeeded"}}}}
    large = {"status": {"nodes": {"b": {"outputs": {"result": "x" * 2000}}}}}
    await patch_status(admin, small)
    with pytest.raises(ApiException) as caught:
        await patch_status(admin, large)
    assert caught.value.status == 413
    assert status_of(caught.value)["message"] == "Request entity too large: limit is 3145728"
    assert status_of(caught.value)["reason"] == "RequestEntityTooLarge"
    stored = await patch_status(admin, large)
    assert set(stored["status"]["nodes"]) == {"a", "b"}


async def test_max_body_bytes_limit(sim: ApiSimulator, admin: client.CustomObjectsApi) -> None:
    """API server request limits (``--max-request-body-bytes``-style limit on writes)."""
    sim.options.max_body_bytes = 500
    with pytest.raises(ApiException) as caught:
        await patch_status(admin, {"status": {"nodes": {"a": {"message": "y" * 600}}}})
    assert caught.value.status == 413
    assert status_of(caught.value)["message"] == "Request entity too large: limit is 500"
    got = await admin.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
    assert "status" not in got


async def test_delay_holds_only_matching_requests(
    sim: ApiSimulator, admin: client.CustomObjectsApi
) -> None:
    """Fault injection (a slow API server): a delayed patch stays pending while other
    requests are served; the client's own timeout is what ends it."""
    sim.delay(60, verb="patch")
    pending = asyncio.create_task(patch_status(admin, {"status": {"nodes": {"a": {}}}}))
    async with asyncio.timeout(20):
        await sim.wait_for_request(verb="patch", completed=False)
    got = await admin.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
    assert "status" not in got
    assert not pending.done()
    assert sim.requests(verb="patch")[0].status is None  # still being held
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending


async def test_disconnect_fault_breaks_the_connection(
    sim: ApiSimulator, admin: client.CustomObjectsApi
) -> None:
    """Fault injection (connection reset): the client sees a connection error, not an
    HTTP status; nothing was stored and the next request works. (aiohttp silently
    retries an idempotent GET once on a dropped connection, so a PATCH shows it.)"""
    sim.fail_next(verb="patch", disconnect=True)
    with pytest.raises(aiohttp.ClientError):
        await patch_status(admin, {"status": {"nodes": {"a": {}}}})
    got = await admin.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
    assert "status" not in got
    stored = await patch_status(admin, {"status": {"nodes": {"a": {}}}})
    assert stored["status"] == {"nodes": {"a": {}}}


async def test_clear_faults(sim: ApiSimulator, admin: client.CustomObjectsApi) -> None:
    """Fault injection: a rule with ``count=None`` applies until cleared."""
    sim.fail_next(None, code=503, verb="get")
    for _ in range(3):
        with pytest.raises(ApiException) as caught:
            await admin.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
        assert caught.value.status == 503
    sim.clear_faults()
    await admin.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")


# ---- per-client faults and usage (replicas: one user per member) ----------------------------

MEMBER_A, MEMBER_B = "member-a-token", "member-b-token"


def _members(sim: ApiSimulator) -> None:
    sim.add_token(MEMBER_A, user="member-a")
    sim.add_token(MEMBER_B, user="member-b")


async def test_a_blackhole_cuts_one_user_off_and_applies_nothing(sim: ApiSimulator) -> None:
    """Fault injection (a network partition between one client and the API server): the
    cut-off user's writes are held and never applied, its watch goes silent, other users
    are served; when lifted, the held connections are cut (the client sees a connection
    error, as after a partition), and the user is served again."""
    _members(sim)
    url = f"{sim.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/wf"
    body = b'{"status":{"nodes":{"a":{"phase":"Succeeded"}}}}'

    def session(token: str) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}", "Content-Type": MERGE}
        )

    async with session(MEMBER_A) as cut, session(MEMBER_B) as other:
        watch_url = url.rsplit("/", 1)[0] + "?watch=true&resourceVersion=0"
        async with cut.get(watch_url) as stream:
            first = await stream.content.readline()  # ADDED wf
            assert json.loads(first)["type"] == "ADDED"
            sim.blackhole("member-a")
            held = asyncio.create_task(cut.patch(url + "/status", data=body))
            async with asyncio.timeout(20):
                await sim.wait_for_request(verb="patch", completed=False)
            async with other.get(url) as resp:
                assert resp.status == 200
                assert "status" not in await resp.json()  # the held patch did not land
            async with other.patch(url, data=b'{"metadata":{"labels":{"x":"y"}}}') as resp:
                assert resp.status == 200
            silent = asyncio.create_task(stream.content.readline())
            await asyncio.sleep(0.3)
            assert not silent.done() and not held.done()  # nothing reaches member-a
            assert sim.lift("member-a") == 1
            with pytest.raises(aiohttp.ClientError):
                await asyncio.wait_for(held, 20)
            try:
                line = await asyncio.wait_for(silent, 20)
            except aiohttp.ClientError:
                line = b""  # the stream was cut
            assert line == b""  # no event reached member-a: the stream just ended
        async with cut.get(url) as resp:
            assert resp.status == 200
            assert "status" not in await resp.json()


async def test_usage_is_counted_per_user(sim: ApiSimulator) -> None:
    """Per-client cost (``GET /_sim/usage``): requests by verb, bytes received, bytes
    answered, and bytes streamed on watches, counted for the user that sent them."""
    _members(sim)
    url = f"{sim.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {MEMBER_A}"}) as a:
        async with a.get(url + "/wf") as resp:
            got = await resp.read()
        async with a.get(url + "?watch=true&resourceVersion=0&timeoutSeconds=1") as resp:
            streamed = await resp.read()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {MEMBER_B}"}) as b:
        async with b.get(url) as resp:
            assert resp.status == 200
    usage = sim.usage()
    a_usage = usage["member-a"]
    assert a_usage["byVerb"] == {"get": 1, "watch": 1}
    assert (a_usage["requests"], a_usage["watches"]) == (2, 1)
    assert a_usage["responseBytes"] == len(got)
    assert a_usage["watchBytes"] == len(streamed) > 0
    assert usage["member-b"]["byVerb"] == {"list": 1}
    assert usage["member-b"]["watchBytes"] == 0
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.admin_url}/usage") as resp:
            assert (await resp.json())["users"]["member-a"] == a_usage
        async with http.delete(f"{sim.admin_url}/usage") as resp:
            assert resp.status == 200
    assert sim.usage() == {}


# ---- request log ----------------------------------------------------------------------------


async def test_request_log_keeps_exact_body_and_content_type(
    sim: ApiSimulator, agent: client.ApiClient
) -> None:
    """API Concepts: Patch (``Content-Type: application/merge-patch+json``): the log holds
    the exact bytes and media type the API received, the resolved verb and resource, and
    never the bearer token."""
    patch = {"status": {"nodes": {"n1": {"phase": "Succeeded", "outputs": {"result": "ok"}}}}}
    await patch_status(client.CustomObjectsApi(agent), patch)
    [record] = sim.requests(verb="patch", resource=PLURAL, subresource="status")
    assert record.method == "PATCH"
    assert record.path == f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/wf/status"
    assert record.content_type == MERGE
    assert record.json() == patch
    assert record.body == json.dumps(patch).encode()
    assert (record.namespace, record.name, record.user, record.status) == (
        "default",
        "wf",
        AGENT_USER,
        200,
    )
    assert AGENT not in json.dumps([r.to_json() for r in sim.requests()])
