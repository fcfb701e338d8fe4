"""Contract tests of the API simulator's REST semantics, driven through kubernetes_asyncio.

Each test pins one behaviour of the real API server to the Kubernetes documentation
section that states it (cited in the docstring), so the agent's tests against the
simulator mean something for a real cluster. Raw HTTP (aiohttp) is used only where the
client cannot express the request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from agent_sim import ApiError, ApiSimulator
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from tests.servers import simulator_tls

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflowtasksets"
TOKEN = "admin-token"


@pytest.fixture
async def sim() -> AsyncIterator[ApiSimulator]:
    async with ApiSimulator() as simulator:
        simulator.add_token(TOKEN)
        yield simulator


@pytest.fixture
async def api(sim: ApiSimulator, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    kubeconfig = sim.kubeconfig(tmp_path / "kubeconfig", token=TOKEN)
    api_client = await config.new_client_from_config(config_file=str(kubeconfig))
    yield api_client
    await api_client.close()


@pytest.fixture
def crd(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def taskset(name: str, tasks: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowTaskSet",
        "metadata": {"name": name, **meta},
        "spec": {"tasks": tasks if tasks is not None else {"n1": {"http": {"url": "http://a"}}}},
    }


async def create(crd: client.CustomObjectsApi, body: dict[str, Any], ns: str = "default") -> Any:
    return await crd.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)


async def merge_status(crd: client.CustomObjectsApi, name: str, patch: dict[str, Any]) -> Any:
    return await crd.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, name, patch, _content_type="application/merge-patch+json"
    )


def status_of(err: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    return body


# ---- kubeconfig, discovery, TLS ----------------------------------------------------------


async def test_kubeconfig_loads_with_load_kube_config(sim: ApiSimulator, tmp_path: Path) -> None:
    """Configure Access to Multiple Clusters (kubeconfig): ``load_kube_config`` reads the
    file the simulator writes, with the server URL and the bearer token, mode 0600."""
    path = sim.kubeconfig(tmp_path / "kc", token=TOKEN, namespace="team-a")
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == sim.url
    assert configuration.api_key["BearerToken"] == f"Bearer {TOKEN}"
    assert path.stat().st_mode & 0o777 == 0o600
    _, active = config.list_kube_config_contexts(config_file=str(path))
    assert active["context"]["namespace"] == "team-a"


async def test_discovery_endpoints(api: client.ApiClient) -> None:
    """The Kubernetes API: API groups and versioning / discovery (``/api``, ``/apis``,
    ``/apis/<group>/<version>``, ``/version``): the served resources are discoverable,
    with the ``status`` subresource listed."""
    version = await client.VersionApi(api).get_code()
    assert version.major == "1"
    groups = await client.ApisApi(api).get_api_versions()
    names = {g.name for g in groups.groups}
    assert {"argoproj.io", "coordination.k8s.io"} <= names
    resources = await client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION)
    listed = {r.name: r for r in resources.resources}
    assert listed["workflowtasksets"].kind == "WorkflowTaskSet"
    assert listed["workflowtasksets"].namespaced is True
    assert "workflowtasksets/status" in listed
    core = await client.CoreV1Api(api).get_api_resources()
    assert [r.name for r in core.resources] == ["secrets", "configmaps"]


async def test_serves_https_with_the_kubeconfig_ca(tmp_path: Path) -> None:
    """Configure Access to Multiple Clusters: ``certificate-authority-data`` in the
    kubeconfig lets the client verify the server's certificate over HTTPS."""
    async with ApiSimulator(tls=simulator_tls(trustme.CA())) as simulator:
        simulator.add_token(TOKEN)
        assert simulator.url.startswith("https://127.0.0.1:")
        path = simulator.kubeconfig(tmp_path / "kc", token=TOKEN)
        api_client = await config.new_client_from_config(config_file=str(path))
        try:
            crd = client.CustomObjectsApi(api_client)
            created = await create(crd, taskset("tls"))
            assert created["metadata"]["name"] == "tls"
        finally:
            await api_client.close()


# ---- create / get / update / delete --------------------------------------------------------


async def test_create_sets_server_fields_and_drops_status(crd: client.CustomObjectsApi) -> None:
    """API Concepts: Resource versions; Object Names and IDs (UIDs); Custom Resources:
    Status subresource ("PUT/POST/PATCH requests to the custom resource ignore changes
    to the status stanza"): create answers 201 with uid, creationTimestamp,
    resourceVersion and generation 1, and without the status it was sent."""
    body = {**taskset("wf"), "status": {"nodes": {"n1": {"phase": "Succeeded"}}}}
    created, code, _ = await crd.create_namespaced_custom_object_with_http_info(
        GROUP, VERSION, "default", PLURAL, body
    )
    assert code == 201
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert meta["namespace"] == "default"
    assert int(meta["resourceVersion"]) > 0
    assert "status" not in created


async def test_create_existing_name_is_409_already_exists(crd: client.CustomObjectsApi) -> None:
    """API Concepts: Create (POST) "returns 409 Conflict if the object already exists";
    the Status reason is AlreadyExists with the API server's message."""
    await create(crd, taskset("wf"))
    with pytest.raises(ApiException) as caught:
        await create(crd, taskset("wf"))
    assert caught.value.status == 409
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'workflowtasksets.argoproj.io "wf" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "wf", "group": "argoproj.io", "kind": "workflowtasksets"},
        "code": 409,
    }


async def test_create_without_name_is_422_invalid(crd: client.CustomObjectsApi) -> None:
    """Object Names and IDs: a name (or generateName) is required; the API server answers
    422 Invalid naming the field ``metadata.name``."""
    body = taskset("x")
    body["metadata"] = {}
    with pytest.raises(ApiException) as caught:
        await create(crd, body)
    status = status_of(caught.value)
    assert caught.value.status == 422
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        'WorkflowTaskSet.argoproj.io "" is invalid: metadata.name: Required value: '
        "name or generateName is required"
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueRequired",
            "message": "Required value: name or generateName is required",
            "field": "metadata.name",
        }
    ]


async def test_create_with_invalid_name_is_422(crd: client.CustomObjectsApi) -> None:
    """Object Names and IDs: DNS Subdomain Names (lowercase RFC 1123)."""
    with pytest.raises(ApiException) as caught:
        await create(crd, taskset("Not_Valid"))
    assert caught.value.status == 422
    assert 'metadata.name: Invalid value: "Not_Valid"' in status_of(caught.value)["message"]


async def test_generate_name(crd: client.CustomObjectsApi) -> None:
    """Object Names and IDs / API Concepts: ``generateName`` gets a random suffix."""
    body = taskset("")
    body["metadata"] = {"generateName": "wf-"}
    created = await create(crd, body)
    assert created["metadata"]["name"].startswith("wf-")
    assert len(created["metadata"]["name"]) == len("wf-") + 5


async def test_get_missing_is_404_status(crd: client.CustomObjectsApi) -> None:
    """API Concepts: Status responses; a missing object is 404 reason NotFound."""
    with pytest.raises(ApiException) as caught:
        await crd.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "nope")
    assert caught.value.status == 404
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'workflowtasksets.argoproj.io "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": "argoproj.io", "kind": "workflowtasksets"},
        "code": 404,
    }


async def test_put_with_stale_resource_version_is_409_conflict(
    crd: client.CustomObjectsApi,
) -> None:
    """API Concepts: Resource versions / Conflicts ("optimistic concurrency"): an update
    whose metadata.resourceVersion is stale is 409 Conflict; a current one succeeds."""
    created = await create(crd, taskset("wf"))
    updated = dict(created, spec={"tasks": {"n2": {"http": {"url": "http://b"}}}})
    stored = await crd.replace_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "wf", updated
    )
    assert int(stored["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    with pytest.raises(ApiException) as caught:
        await crd.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf", updated)
    status = status_of(caught.value)
    assert caught.value.status == 409
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on workflowtasksets.argoproj.io "wf": the object has '
        "been modified; please apply your changes to the latest version and try again"
    )


async def test_put_without_resource_version_is_422_for_custom_resources(
    crd: client.CustomObjectsApi,
) -> None:
    """Custom resources do not allow unconditional updates (customResourceStrategy
    AllowUnconditionalUpdate=false): a PUT without metadata.resourceVersion is 422."""
    await create(crd, taskset("wf"))
    with pytest.raises(ApiException) as caught:
        await crd.replace_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "wf", taskset("wf")
        )
    assert caught.value.status == 422
    assert (
        "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        in (status_of(caught.value)["message"])
    )


async def test_put_name_mismatch_is_400(crd: client.CustomObjectsApi) -> None:
    """API Concepts (update): the name in the body must equal the name in the URL; the
    API server answers 400 BadRequest (not 422) for a mismatch."""
    created = await create(crd, taskset("wf"))
    renamed = dict(created, metadata={**created["metadata"], "name": "other"})
    with pytest.raises(ApiException) as caught:
        await crd.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf", renamed)
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == (
        "the name of the object (other) does not match the name on the URL (wf)"
    )


async def test_generation_grows_on_spec_change_only(crd: client.CustomObjectsApi) -> None:
    """Custom Resources: Status subresource ("metadata.generation is incremented for all
    changes, except for changes to .metadata or .status")."""
    await create(crd, taskset("wf"))
    labelled = await crd.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "wf",
        {"metadata": {"labels": {"a": "b"}}},
        _content_type="application/merge-patch+json",
    )
    assert labelled["metadata"]["generation"] == 1
    with_status = await merge_status(crd, "wf", {"status": {"nodes": {"n1": {"phase": "Running"}}}})
    assert with_status["metadata"]["generation"] == 1
    respec = await crd.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "wf",
        {"spec": {"tasks": {"n2": {}}}},
        _content_type="application/merge-patch+json",
    )
    assert respec["metadata"]["generation"] == 2


async def test_delete_custom_resource_returns_the_object(crd: client.CustomObjectsApi) -> None:
    """API Concepts: Resource deletion: a custom resource's DELETE answers 200 with the
    deleted object (ReturnDeletedObject); a later GET is 404."""
    created = await create(crd, taskset("wf"))
    deleted = await crd.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
    assert deleted["metadata"]["uid"] == created["metadata"]["uid"]
    assert deleted["kind"] == "WorkflowTaskSet"
    with pytest.raises(ApiException) as caught:
        await crd.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
    assert caught.value.status == 404


async def test_delete_precondition_uid_mismatch_is_409(crd: client.CustomObjectsApi) -> None:
    """API Concepts: Resource deletion with preconditions (DeleteOptions.preconditions)."""
    await create(crd, taskset("wf"))
    with pytest.raises(ApiException) as caught:
        await crd.delete_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "wf",
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-it")),
        )
    assert caught.value.status == 409
    assert "Precondition failed: UID in precondition: not-it" in status_of(caught.value)["message"]


# ---- status subresource ---------------------------------------------------------------------


async def test_status_patch_changes_only_status(crd: client.CustomObjectsApi) -> None:
    """Custom Resources: Status subresource ("PUT/PATCH requests to the /status
    subresource ... ignore changes to anything except the status stanza")."""
    await create(crd, taskset("wf"))
    patched = await merge_status(
        crd,
        "wf",
        {
            "metadata": {"labels": {"ignored": "yes"}},
            "spec": {"tasks": None},
            "status": {"nodes": {"n1": {"phase": "Succeeded", "outputs": {"result": "ok"}}}},
        },
    )
    assert patched["status"] == {
        "nodes": {"n1": {"phase": "Succeeded", "outputs": {"result": "ok"}}}
    }
    assert patched["spec"] == taskset("wf")["spec"]
    assert "labels" not in patched["metadata"]


async def test_main_resource_writes_ignore_status(crd: client.CustomObjectsApi) -> None:
    """Custom Resources: Status subresource ("PUT/POST/PATCH requests to the custom
    resource ignore changes to the status stanza")."""
    await create(crd, taskset("wf"))
    await merge_status(crd, "wf", {"status": {"nodes": {"n1": {"phase": "Succeeded"}}}})
    patched = await crd.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "wf",
        {"status": {"nodes": {"n1": {"phase": "Failed"}}}, "metadata": {"labels": {"x": "y"}}},
        _content_type="application/merge-patch+json",
    )
    assert patched["status"]["nodes"]["n1"]["phase"] == "Succeeded"
    assert patched["metadata"]["labels"] == {"x": "y"}


async def test_put_status_replaces_status(crd: client.CustomObjectsApi) -> None:
    """Custom Resources: Status subresource (PUT on /status takes the whole object and
    keeps only its status; resourceVersion is still a precondition)."""
    created = await create(crd, taskset("wf"))
    body = dict(created, status={"nodes": {"n9": {"phase": "Failed"}}}, spec={"tasks": {}})
    stored = await crd.replace_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "wf", body
    )
    assert stored["status"] == {"nodes": {"n9": {"phase": "Failed"}}}
    assert stored["spec"] == created["spec"]
    with pytest.raises(ApiException) as caught:
        await crd.replace_namespaced_custom_object_status(
            GROUP, VERSION, "default", PLURAL, "wf", body
        )
    assert caught.value.status == 409


async def test_merge_patch_null_removes_a_node(crd: client.CustomObjectsApi) -> None:
    """RFC 7386 JSON Merge Patch via API Concepts: Patch ("application/merge-patch+json"):
    a null deletes a key, which is how Argo's controller garbage-collects fulfilled nodes."""
    await create(crd, taskset("wf"))
    await merge_status(crd, "wf", {"status": {"nodes": {"a": {"phase": "Succeeded"}, "b": {}}}})
    patched = await merge_status(crd, "wf", {"status": {"nodes": {"a": None}}})
    assert patched["status"] == {"nodes": {"b": {}}}


async def test_noop_patch_keeps_the_resource_version(crd: client.CustomObjectsApi) -> None:
    """API Concepts: Resource versions: a write that changes nothing stores nothing, so
    the resourceVersion (and the watch) do not move."""
    await create(crd, taskset("wf"))
    first = await merge_status(crd, "wf", {"status": {"nodes": {"a": {"phase": "Succeeded"}}}})
    again = await merge_status(crd, "wf", {"status": {"nodes": {"a": {"phase": "Succeeded"}}}})
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


async def test_patch_with_stale_resource_version_is_409(crd: client.CustomObjectsApi) -> None:
    """API Concepts: Resource versions / optimistic concurrency also apply to a PATCH
    that carries metadata.resourceVersion."""
    created = await create(crd, taskset("wf"))
    await merge_status(crd, "wf", {"status": {"nodes": {"a": {}}}})
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "status": {}}
    with pytest.raises(ApiException) as caught:
        await merge_status(crd, "wf", stale)
    assert caught.value.status == 409


# ---- patch types ----------------------------------------------------------------------------


async def test_default_dict_patch_is_rejected_as_json_patch(
    sim: ApiSimulator, crd: client.CustomObjectsApi
) -> None:
    """API Concepts: Patch types. kubernetes_asyncio sends a dict body to
    ``patch_namespaced_custom_object_status`` as ``application/json-patch+json``; a JSON
    patch must be a list, so the API server answers 400 BadRequest."""
    await create(crd, taskset("wf"))
    with pytest.raises(ApiException) as caught:
        await crd.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", PLURAL, "wf", {"status": {"nodes": {"a": {}}}}
        )
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == (
        "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
    )
    [record] = sim.requests(verb="patch")
    assert record.content_type == "application/json-patch+json"


async def test_json_patch_operations(crd: client.CustomObjectsApi) -> None:
    """RFC 6902 JSON Patch via API Concepts: Patch ("application/json-patch+json"): add,
    replace, copy, move, remove and test apply in order."""
    await create(crd, taskset("wf", {"a": {"x": 1}}))
    ops = [
        {"op": "add", "path": "/spec/tasks/b", "value": {"x": 2}},
        {"op": "replace", "path": "/spec/tasks/a/x", "value": 10},
        {"op": "copy", "from": "/spec/tasks/b", "path": "/spec/tasks/c"},
        {"op": "move", "from": "/spec/tasks/c", "path": "/spec/tasks/d"},
        {"op": "remove", "path": "/spec/tasks/b"},
        {"op": "test", "path": "/spec/tasks/d/x", "value": 2},
    ]
    patched = await crd.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf", ops)
    assert patched["spec"]["tasks"] == {"a": {"x": 10}, "d": {"x": 2}}


async def test_failed_json_patch_test_is_422(crd: client.CustomObjectsApi) -> None:
    """API Concepts: Patch: an operation that does not apply (a failed ``test``) is 422
    with the API server's generic message; nothing is stored."""
    created = await create(crd, taskset("wf"))
    with pytest.raises(ApiException) as caught:
        await crd.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "wf",
            [{"op": "test", "path": "/spec/tasks/n1/http/url", "value": "http://other"}],
        )
    assert caught.value.status == 422
    status = status_of(caught.value)
    assert status["reason"] == "Invalid"
    assert status["message"] == "the server rejected our request due to an error in our request"
    current = await crd.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
    assert current["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_strategic_merge_patch_is_415_for_custom_resources(
    crd: client.CustomObjectsApi,
) -> None:
    """Custom Resources: "strategic merge patch is not supported for custom resources";
    the API server answers 415 UnsupportedMediaType listing what it accepts."""
    await create(crd, taskset("wf"))
    with pytest.raises(ApiException) as caught:
        await crd.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "wf",
            {"metadata": {"labels": {"a": "b"}}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert caught.value.status == 415
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the body of the request was in an unknown format - accepted media types "
        "include: application/json-patch+json, application/merge-patch+json, "
        "application/apply-patch+yaml",
        "reason": "UnsupportedMediaType",
        "code": 415,
    }


async def test_unknown_patch_content_type_is_415(crd: client.CustomObjectsApi) -> None:
    """API Concepts: Patch: only the listed patch media types are accepted."""
    await create(crd, taskset("wf"))
    with pytest.raises(ApiException) as caught:
        await crd.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "wf",
            {"status": {}},
            _content_type="application/json",
        )
    assert caught.value.status == 415


async def test_apply_patch_requires_field_manager(sim: ApiSimulator) -> None:
    """Server-Side Apply: "fieldManager is required for apply requests" (422)."""
    sim.create_object(PLURAL, taskset("wf"))
    url = f"{sim.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/wf"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/apply-patch+yaml"}
    async with aiohttp.ClientSession() as http:
        async with http.patch(url, data=b"metadata:\n  labels: {a: b}\n", headers=headers) as resp:
            assert resp.status == 422
            assert "fieldManager: Required value" in (await resp.json())["message"]
        async with http.patch(
            url + "?fieldManager=test", data=b"metadata:\n  labels: {a: b}\n", headers=headers
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["metadata"]["labels"] == {"a": "b"}


# ---- lists and selectors --------------------------------------------------------------------


async def test_list_reports_resource_version_and_kind(crd: client.CustomObjectsApi) -> None:
    """API Concepts: Collections ("kind: <Kind>List", metadata.resourceVersion of the
    list, items in name order)."""
    await create(crd, taskset("b"))
    last = await create(crd, taskset("a"))
    listed = await crd.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert listed["kind"] == "WorkflowTaskSetList"
    assert listed["apiVersion"] == f"{GROUP}/{VERSION}"
    assert listed["metadata"]["resourceVersion"] == last["metadata"]["resourceVersion"]
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a", "b"]


async def test_label_selectors(crd: client.CustomObjectsApi) -> None:
    """Labels and Selectors: Equality-based requirement (``=``, ``==``, ``!=``), existence
    (``key``, ``!key``), set-based (``in``, ``notin``); comma is a logical AND."""
    await create(crd, taskset("one", labels={"tier": "a", "done": "true"}))
    await create(crd, taskset("two", labels={"tier": "b"}))
    await create(crd, taskset("three"))

    async def names(selector: str) -> list[str]:
        listed = await crd.list_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, label_selector=selector
        )
        return sorted(i["metadata"]["name"] for i in listed["items"])

    assert await names("tier=a") == ["one"]
    assert await names("tier==b") == ["two"]
    assert await names("tier!=a") == ["three", "two"]
    assert await names("tier") == ["one", "two"]
    assert await names("!tier") == ["three"]
    assert await names("tier,done!=true") == ["two"]
    assert await names("tier in (a,b)") == ["one", "two"]
    assert await names("tier notin (a)") == ["three", "two"]


async def test_bad_label_selector_is_400(crd: client.CustomObjectsApi) -> None:
    """Labels and Selectors: syntax and character set; an invalid selector is 400."""
    with pytest.raises(ApiException) as caught:
        await crd.list_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, label_selector="a=b c"
        )
    assert caught.value.status == 400
    assert "labelSelector" in status_of(caught.value)["message"]


async def test_field_selectors(crd: client.CustomObjectsApi) -> None:
    """Field Selectors: custom resources support ``metadata.name`` and
    ``metadata.namespace`` with ``=``, ``==`` and ``!=``; others are 400."""
    await create(crd, taskset("one"))
    await create(crd, taskset("two"))
    await create(crd, taskset("one"), ns="other")
    mine = await crd.list_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, field_selector="metadata.name=one"
    )
    assert [i["metadata"]["namespace"] for i in mine["items"]] == ["default"]
    everywhere = await crd.list_cluster_custom_object(
        GROUP, VERSION, PLURAL, field_selector="metadata.name==one"
    )
    assert sorted(i["metadata"]["namespace"] for i in everywhere["items"]) == ["default", "other"]
    not_default = await crd.list_cluster_custom_object(
        GROUP, VERSION, PLURAL, field_selector="metadata.namespace!=default"
    )
    assert [i["metadata"]["name"] for i in not_default["items"]] == ["one"]
    with pytest.raises(ApiException) as caught:
        await crd.list_cluster_custom_object(GROUP, VERSION, PLURAL, field_selector="spec.x=1")
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == (
        '"spec.x" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )


async def test_list_in_chunks(crd: client.CustomObjectsApi) -> None:
    """API Concepts: Retrieving large results sets in chunks (``limit``, ``continue``,
    ``remainingItemCount``)."""
    for i in range(5):
        await create(crd, taskset(f"wf{i}"))
    first = await crd.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, limit=2)
    assert [i["metadata"]["name"] for i in first["items"]] == ["wf0", "wf1"]
    assert first["metadata"]["remainingItemCount"] == 3
    seen = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = await crd.list_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, limit=2, _continue=token
        )
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert seen == [f"wf{i}" for i in range(5)]


async def test_delete_collection_with_selector(crd: client.CustomObjectsApi) -> None:
    """API Concepts: deletecollection honours label selectors."""
    await create(crd, taskset("a", labels={"gone": "yes"}))
    await create(crd, taskset("b"))
    await crd.delete_collection_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, label_selector="gone=yes"
    )
    listed = await crd.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["b"]


# ---- secrets and leases ---------------------------------------------------------------------


async def test_secret_string_data_becomes_base64_data(api: client.ApiClient) -> None:
    """Secrets: "stringData ... is merged into the data field on write"; values in
    ``data`` are base64; type defaults to Opaque; DELETE answers a Status."""
    core = client.CoreV1Api(api)
    created = await core.create_namespaced_secret(
        "default",
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="creds"),
            data={"a": "YQ=="},
            string_data={"token": "s3cret"},
        ),
    )
    assert created.data == {"a": "YQ==", "token": "czNjcmV0"}
    assert created.string_data is None
    assert created.type == "Opaque"
    read = await core.read_namespaced_secret("creds", "default")
    assert read.data["token"] == "czNjcmV0"
    status = await core.delete_namespaced_secret("creds", "default")
    assert status.status == "Success"
    assert status.details.kind == "secrets"


async def test_secret_strategic_merge_patch_is_accepted(api: client.ApiClient) -> None:
    """API Concepts: Patch: built-in types accept strategic merge patch (the client's
    default for a dict body)."""
    core = client.CoreV1Api(api)
    await core.create_namespaced_secret(
        "default", client.V1Secret(metadata=client.V1ObjectMeta(name="s"), data={"a": "YQ=="})
    )
    patched = await core.patch_namespaced_secret("s", "default", {"data": {"b": "Yg=="}})
    assert patched.data == {"a": "YQ==", "b": "Yg=="}


async def test_lease_optimistic_concurrency(api: client.ApiClient) -> None:
    """Leases (coordination.k8s.io/v1) and API Concepts: Resource versions: a replace
    with a stale resourceVersion is 409, which leader election relies on."""
    coordination = client.CoordinationV1Api(api)
    lease = await coordination.create_namespaced_lease(
        "default",
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="leader"),
            spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15),
        ),
    )
    lease.spec.holder_identity = "b"
    renewed = await coordination.replace_namespaced_lease("leader", "default", lease)
    assert renewed.spec.holder_identity == "b"
    lease.spec.holder_identity = "c"
    with pytest.raises(ApiException) as caught:
        await coordination.replace_namespaced_lease("leader", "default", lease)
    assert caught.value.status == 409
    assert renewed.metadata.generation is None


# ---- paths ----------------------------------------------------------------------------------


async def test_unknown_resource_is_404_and_wrong_method_405(sim: ApiSimulator) -> None:
    """The Kubernetes API (REST paths): an unserved path is 404 NotFound; a verb the
    resource does not serve (POST on a named object) is 405 MethodNotAllowed."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{sim.url}/apis/argoproj.io/v1alpha1/namespaces/d/cronworkflows") as r:
            assert r.status == 404
            assert (await r.json())["message"] == "the server could not find the requested resource"
        async with http.post(
            f"{sim.url}/apis/argoproj.io/v1alpha1/namespaces/d/workflowtasksets/x", json={}
        ) as r:
            assert r.status == 405
            assert (await r.json())["reason"] == "MethodNotAllowed"


# ---- in-process helpers -----------------------------------------------------------------------


async def test_in_process_helpers_follow_the_same_rules(sim: ApiSimulator) -> None:
    """The test-side helpers share the store and its rules (preconditions, selectors,
    status subresource) with the HTTP API, without authentication or the request log."""
    created = sim.create_object(PLURAL, taskset("a", labels={"team": "x"}), namespace="ns1")
    sim.create_object(PLURAL, taskset("b"), namespace="ns2")
    assert [o["metadata"]["name"] for o in sim.list_objects(PLURAL, label_selector="team=x")] == [
        "a"
    ]
    assert [o["metadata"]["namespace"] for o in sim.list_objects(PLURAL)] == ["ns1", "ns2"]
    assert sim.find_object(PLURAL, "a", namespace="ns2") is None
    stale = dict(created, spec={"tasks": {}})
    sim.replace_object(PLURAL, stale, namespace="ns1")
    with pytest.raises(ApiError) as caught:
        sim.replace_object(PLURAL, stale, namespace="ns1")
    assert caught.value.code == 409
    patched = sim.patch_object(
        PLURAL, "a", {"status": {"nodes": {"n": {}}}}, namespace="ns1", subresource="status"
    )
    assert patched["status"] == {"nodes": {"n": {}}}
    patched["status"]["nodes"]["mutated"] = {}
    assert sim.get_object(PLURAL, "a", namespace="ns1")["status"] == {"nodes": {"n": {}}}
    assert sim.requests() == []
    with pytest.raises(KeyError, match="unknown resource 'pods'"):
        sim.get_object("pods", "x")


async def test_rejected_write_does_not_consume_a_version(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """API Concepts: Resource versions: a rejected write stores nothing, so a watch from
    a version before it replays exactly the writes that happened."""
    start = sim.resource_version
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as caught:
        await core.create_namespaced_secret(
            "default", client.V1Secret(metadata=client.V1ObjectMeta(name="s"), data={"k": "%%"})
        )
    assert caught.value.status == 400
    assert sim.resource_version == start
    created = sim.create_object(PLURAL, taskset("after"))
    assert int(created["metadata"]["resourceVersion"]) == int(start) + 1
