"""Contract tests: the simulator serves ``coordination.k8s.io/v1`` Leases as an API server does.

Replicas coordinate through one Lease per member, renewed with optimistic concurrency
and watched by label selector, so every rule a member relies on is pinned here against
the sentence of the Kubernetes documentation it follows (quoted in each docstring), and
driven through kubernetes_asyncio's ``CoordinationV1Api`` over real HTTP. Where the
documentation is silent the test names the API server's Go code it follows.

Sources: API Concepts (https://kubernetes.io/docs/reference/using-api/api-concepts/),
API Conventions (community/contributors/devel/sig-architecture/api-conventions.md),
Labels and Selectors, and the Lease v1 reference
(https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/lease-v1/).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from agent_sim import ApiSimulator
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.agentproc import TOKEN

GROUP_LABEL = "argo-http-agent.io/group"
NS = "agents"


@pytest.fixture
def leases(api: client.ApiClient) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(api)


def lease(
    name: str,
    *,
    group: str = "g1",
    holder: str | None = None,
    duration: Any = 15,
    renew: Any = "2025-03-04T05:06:07.123456Z",
    **spec: Any,
) -> dict[str, Any]:
    """A Lease body as a member writes it (a raw dict: sent exactly as given)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "labels": {GROUP_LABEL: group}},
        "spec": {
            "holderIdentity": holder or name,
            "leaseDurationSeconds": duration,
            "acquireTime": renew,
            "renewTime": renew,
            **spec,
        },
    }


def status_of(err: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    return body


async def raw(leases: client.CoordinationV1Api, name: str) -> dict[str, Any]:
    """The Lease's JSON exactly as the server sends it (no model conversion)."""
    response = await leases.read_namespaced_lease(name, NS, _preload_content=False)
    body: dict[str, Any] = json.loads(await response.read())
    return body


# ---- the object ----------------------------------------------------------------------------


async def test_create_stores_the_spec_as_given(leases: client.CoordinationV1Api) -> None:
    """Lease v1 reference: "leaseDurationSeconds (int32) ... is a duration that candidates
    for a lease need to wait to force acquire it"; "renewTime (MicroTime) ... MicroTime is
    version of Time with microsecond level precision". A member's Lease comes back with
    the integer duration and both MicroTimes exactly as written (RFC 3339, six digits,
    UTC), plus the server's uid, creationTimestamp and resourceVersion."""
    created, code, _ = await leases.create_namespaced_lease_with_http_info(NS, lease("g1-a"))
    assert code == 201
    body = await raw(leases, "g1-a")
    assert body["spec"] == {
        "holderIdentity": "g1-a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2025-03-04T05:06:07.123456Z",
        "renewTime": "2025-03-04T05:06:07.123456Z",
    }
    assert body["metadata"]["labels"] == {GROUP_LABEL: "g1"}
    assert body["metadata"]["resourceVersion"] == created.metadata.resource_version
    assert body["metadata"]["uid"] and body["metadata"]["creationTimestamp"]
    assert "generation" not in body["metadata"]  # built-in Leases do not count generations
    # The client's model sees the same instant, microseconds included.
    assert created.spec.renew_time == datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


async def test_micro_time_with_an_offset_comes_back_in_utc(
    leases: client.CoordinationV1Api,
) -> None:
    """metav1.MicroTime.MarshalJSON writes ``t.UTC().Format(RFC3339Micro)``: a time sent
    with an offset is stored as the same instant in UTC."""
    await leases.create_namespaced_lease(
        NS, lease("g1-a", renew="2025-03-04T07:06:07.000001+02:00")
    )
    body = await raw(leases, "g1-a")
    assert body["spec"]["renewTime"] == "2025-03-04T05:06:07.000001Z"


async def test_a_python_datetime_round_trips(leases: client.CoordinationV1Api) -> None:
    """What a member built on kubernetes_asyncio sends (``datetime.isoformat()``, UTC,
    non-zero microseconds) is accepted and read back as the same datetime."""
    now = datetime(2025, 3, 4, 5, 6, 7, 654321, tzinfo=UTC)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name="g1-a", labels={GROUP_LABEL: "g1"}),
        spec=client.V1LeaseSpec(
            holder_identity="a", lease_duration_seconds=15, acquire_time=now, renew_time=now
        ),
    )
    created = await leases.create_namespaced_lease(NS, body)
    assert created.spec.renew_time == now
    assert (await raw(leases, "g1-a"))["spec"]["renewTime"] == "2025-03-04T05:06:07.654321Z"


@pytest.mark.parametrize(
    ("renew", "rest", "element"),
    [
        # datetime.isoformat() of a whole second has no fraction: a real server refuses it.
        ("2025-03-04T05:06:07+00:00", "+00:00", ".000000"),
        ("2025-03-04T05:06:07Z", "Z", ".000000"),
        ("2025-03-04T05:06:07.123Z", ".123Z", ".000000"),
        ("2025-03-04T05:06:07.123456789Z", "789Z", "Z07:00"),
        ("yesterday", "yesterday", "2006"),
    ],
)
async def test_micro_time_needs_six_fractional_digits(
    leases: client.CoordinationV1Api, renew: str, rest: str, element: str
) -> None:
    """metav1.MicroTime.UnmarshalJSON parses with ``RFC3339Micro``
    (``2006-01-02T15:04:05.000000Z07:00``) and Go's parser wants exactly the layout's
    six digits: anything else is 400 BadRequest, as ``transformDecodeError`` words it."""
    with pytest.raises(ApiException) as caught:
        await leases.create_namespaced_lease(NS, lease("g1-a", renew=renew))
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == (
        'Lease in version "v1" cannot be handled as a Lease: parsing time '
        f'"{renew}" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "{rest}" as "{element}"'
    )
    assert (await leases.list_namespaced_lease(NS)).items == []


@pytest.mark.parametrize(
    ("duration", "what"), [("15", "string"), (15.0, "number 15.0"), (2**31, f"number {2**31}")]
)
async def test_lease_duration_must_be_an_int32(
    leases: client.CoordinationV1Api, duration: Any, what: str
) -> None:
    """API Concepts, Field validation: "Kubernetes always validates the type of fields.
    For example, if a field in the API is defined as a number, you cannot set the field
    to a text value." ``leaseDurationSeconds`` is an int32: a string, a decimal or a
    value beyond int32 is 400 naming the field (encoding/json's UnmarshalTypeError)."""
    with pytest.raises(ApiException) as caught:
        await leases.create_namespaced_lease(NS, lease("g1-a", duration=duration))
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == (
        'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal '
        f"{what} into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32"
    )


@pytest.mark.parametrize("duration", [0, -5])
async def test_lease_duration_must_be_positive(
    leases: client.CoordinationV1Api, duration: int
) -> None:
    """ValidateLeaseSpec (pkg/apis/coordination/validation): a ``leaseDurationSeconds``
    that is not positive is 422 Invalid naming the field, on create and on update."""
    with pytest.raises(ApiException) as caught:
        await leases.create_namespaced_lease(NS, lease("g1-a", duration=duration))
    assert caught.value.status == 422
    status = status_of(caught.value)
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        'Lease.coordination.k8s.io "g1-a" is invalid: spec.leaseDurationSeconds: '
        f"Invalid value: {duration}: must be greater than 0"
    )
    assert status["details"]["causes"][0]["field"] == "spec.leaseDurationSeconds"
    current = await leases.create_namespaced_lease(NS, lease("g1-a"))
    current.spec.lease_duration_seconds = duration
    with pytest.raises(ApiException) as caught:
        await leases.replace_namespaced_lease("g1-a", NS, current)
    assert caught.value.status == 422


async def test_unknown_and_null_spec_fields_are_dropped(leases: client.CoordinationV1Api) -> None:
    """API Concepts, Field validation: "By default, the API server drops fields that it
    does not recognize from an input that it receives"; a ``null`` optional field is
    simply absent from what is stored."""
    await leases.create_namespaced_lease(
        NS, lease("g1-a", owner="someone", leaseTransitions=None, preferredHolder=None)
    )
    spec = (await raw(leases, "g1-a"))["spec"]
    assert set(spec) == {"holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime"}


# ---- optimistic concurrency ------------------------------------------------------------


async def test_create_of_an_existing_name_is_409_already_exists(
    leases: client.CoordinationV1Api,
) -> None:
    """API Conventions, HTTP status codes: "409 StatusConflict: Indicates that either the
    resource the client attempted to create already exists or the requested update
    operation cannot be completed due to a conflict." Two members creating one name:
    the second gets AlreadyExists and the first one's Lease is untouched."""
    await leases.create_namespaced_lease(NS, lease("g1-a", holder="first"))
    with pytest.raises(ApiException) as caught:
        await leases.create_namespaced_lease(NS, lease("g1-a", holder="second"))
    assert caught.value.status == 409
    status = status_of(caught.value)
    assert status["reason"] == "AlreadyExists"
    assert status["message"] == 'leases.coordination.k8s.io "g1-a" already exists'
    assert status["details"] == {"name": "g1-a", "group": "coordination.k8s.io", "kind": "leases"}
    assert (await leases.read_namespaced_lease("g1-a", NS)).spec.holder_identity == "first"


async def test_update_with_a_stale_resource_version_is_409_conflict(
    leases: client.CoordinationV1Api,
) -> None:
    """API Concepts, Updates to existing resources: "For a PUT request, it is the client's
    responsibility to specify the resourceVersion (taking this from the object being
    updated). ... In the event that the resource has changed (the resourceVersion the
    client provided is stale), the API server returns a 409 Conflict error response."
    Two members read the same version; the first renewal wins, the second is refused
    and the stored Lease is the winner's."""
    await leases.create_namespaced_lease(NS, lease("g1-a"))
    mine = await leases.read_namespaced_lease("g1-a", NS)
    theirs = await leases.read_namespaced_lease("g1-a", NS)
    mine.spec.renew_time = datetime(2025, 3, 4, 5, 6, 8, 1, tzinfo=UTC)
    renewed = await leases.replace_namespaced_lease("g1-a", NS, mine)
    assert int(renewed.metadata.resource_version) > int(mine.metadata.resource_version)
    theirs.spec.holder_identity = "thief"
    with pytest.raises(ApiException) as caught:
        await leases.replace_namespaced_lease("g1-a", NS, theirs)
    assert caught.value.status == 409
    status = status_of(caught.value)
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "g1-a": the object has '
        "been modified; please apply your changes to the latest version and try again"
    )
    stored = await raw(leases, "g1-a")
    assert stored["spec"]["holderIdentity"] == "g1-a"
    assert stored["spec"]["renewTime"] == "2025-03-04T05:06:08.000001Z"
    assert stored["metadata"]["resourceVersion"] == renewed.metadata.resource_version


async def test_a_bad_body_is_400_before_the_version_is_checked(
    leases: client.CoordinationV1Api,
) -> None:
    """The update handler decodes the body before storage checks the resourceVersion
    precondition (registry Store.Update), and validates after it: an undecodable body
    with a stale version is 400, an invalid one with a stale version is 409."""
    created = await leases.create_namespaced_lease(NS, lease("g1-a"))
    await leases.patch_namespaced_lease("g1-a", NS, {"spec": {"holderIdentity": "b"}})
    stale = lease("g1-a", renew="2025-03-04T05:06:07Z")
    stale["metadata"]["resourceVersion"] = created.metadata.resource_version
    with pytest.raises(ApiException) as caught:
        await leases.replace_namespaced_lease("g1-a", NS, stale)
    assert caught.value.status == 400
    invalid = lease("g1-a", duration=0)
    invalid["metadata"]["resourceVersion"] = created.metadata.resource_version
    with pytest.raises(ApiException) as caught:
        await leases.replace_namespaced_lease("g1-a", NS, invalid)
    assert caught.value.status == 409


async def test_patch_carrying_a_stale_resource_version_is_409(
    leases: client.CoordinationV1Api,
) -> None:
    """API Concepts, Updates to existing resources: "Clients that need effective
    detection of lost updates should consider making their request conditional on the
    existing resourceVersion (either HTTP PUT or HTTP PATCH)". A merge patch naming a
    stale ``metadata.resourceVersion`` is 409; one naming none is last-writer-wins."""
    created = await leases.create_namespaced_lease(NS, lease("g1-a"))
    current = created.metadata.resource_version
    patched = await leases.patch_namespaced_lease(
        "g1-a",
        NS,
        {"metadata": {"resourceVersion": current}, "spec": {"holderIdentity": "b"}},
        _content_type="application/merge-patch+json",
    )
    assert patched.spec.holder_identity == "b"
    with pytest.raises(ApiException) as caught:
        await leases.patch_namespaced_lease(
            "g1-a",
            NS,
            {"metadata": {"resourceVersion": current}, "spec": {"holderIdentity": "c"}},
            _content_type="application/merge-patch+json",
        )
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "Conflict"
    blind = await leases.patch_namespaced_lease(
        "g1-a", NS, {"spec": {"holderIdentity": "d"}}, _content_type="application/merge-patch+json"
    )
    assert blind.spec.holder_identity == "d"


async def test_an_update_that_changes_nothing_keeps_the_version(
    leases: client.CoordinationV1Api,
) -> None:
    """API Concepts, Resource versions: "The metadata.resourceVersion of a resource
    instance identifies the resource version the instance was last modified at." A PUT
    of the unchanged object is not a modification: same version, no watch event (so a
    member must change ``renewTime`` to be seen renewing)."""
    created = await leases.create_namespaced_lease(NS, lease("g1-a"))
    again = await leases.replace_namespaced_lease("g1-a", NS, created)
    assert again.metadata.resource_version == created.metadata.resource_version


# ---- delete -------------------------------------------------------------------------------


async def test_delete_removes_the_lease_and_honours_preconditions(
    leases: client.CoordinationV1Api,
) -> None:
    """API Concepts, Single resource API: **delete** acts on one resource. A Lease is a
    built-in type: delete answers a ``Status`` of Success; afterwards the name is 404;
    a delete whose ``preconditions.resourceVersion`` is stale is 409 and deletes
    nothing (a member leaving must not delete a Lease someone else just took over)."""
    created = await leases.create_namespaced_lease(NS, lease("g1-a"))
    await leases.patch_namespaced_lease("g1-a", NS, {"spec": {"holderIdentity": "b"}})
    with pytest.raises(ApiException) as caught:
        await leases.delete_namespaced_lease(
            "g1-a",
            NS,
            body=client.V1DeleteOptions(
                preconditions=client.V1Preconditions(
                    resource_version=created.metadata.resource_version
                )
            ),
        )
    assert caught.value.status == 409
    status = await leases.delete_namespaced_lease("g1-a", NS)
    assert status.status == "Success"
    assert status.details.name == "g1-a"
    with pytest.raises(ApiException) as caught:
        await leases.read_namespaced_lease("g1-a", NS)
    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == 'leases.coordination.k8s.io "g1-a" not found'


# ---- list and watch by label --------------------------------------------------------------


async def test_list_by_group_label(leases: client.CoordinationV1Api) -> None:
    """Labels and Selectors, LIST and WATCH filtering: "LIST and WATCH operations may
    specify label selectors to filter the sets of objects returned using a query
    parameter." A member lists its group's Leases only; other groups and other
    namespaces stay out; the list reports the collection's resourceVersion."""
    for name, group in (("g1-a", "g1"), ("g1-b", "g1"), ("g2-a", "g2")):
        await leases.create_namespaced_lease(NS, lease(name, group=group))
    await leases.create_namespaced_lease("elsewhere", lease("g1-z"))
    listed = await leases.list_namespaced_lease(NS, label_selector=f"{GROUP_LABEL}=g1")
    assert [item.metadata.name for item in listed.items] == ["g1-a", "g1-b"]
    assert [item.spec.holder_identity for item in listed.items] == ["g1-a", "g1-b"]
    assert int(listed.metadata.resource_version) >= max(
        int(item.metadata.resource_version) for item in listed.items
    )
    both = await leases.list_namespaced_lease(NS, label_selector=f"{GROUP_LABEL} in (g1,g2)")
    assert len(both.items) == 3
    everywhere = await leases.list_lease_for_all_namespaces(label_selector=f"{GROUP_LABEL}=g1")
    assert sorted(i.metadata.name for i in everywhere.items) == ["g1-a", "g1-b", "g1-z"]


async def test_watch_by_group_label_from_the_list_version(
    leases: client.CoordinationV1Api,
) -> None:
    """API Concepts, Efficient detection of changes: "When you send a watch request, the
    API server responds with a stream of changes. These changes itemize the outcome of
    operations (such as create, delete, and update) that occurred after the
    resourceVersion you specified as a parameter to the watch request." A member
    watching its group from the list's version sees another member join, renew and
    leave, in order, and nothing of another group."""
    await leases.create_namespaced_lease(NS, lease("g1-a"))
    listed = await leases.list_namespaced_lease(NS, label_selector=f"{GROUP_LABEL}=g1")
    stream = watch.Watch()
    seen: list[tuple[str, str, str]] = []

    async def consume() -> None:
        async for event in stream.stream(
            leases.list_namespaced_lease,
            NS,
            label_selector=f"{GROUP_LABEL}=g1",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=30,
        ):
            obj = event["object"]
            seen.append((event["type"], obj.metadata.name, obj.spec.holder_identity))
            if event["type"] == "DELETED":
                return

    task = asyncio.create_task(consume())
    try:
        await leases.create_namespaced_lease(NS, lease("g2-a", group="g2"))
        joined = await leases.create_namespaced_lease(NS, lease("g1-b"))
        joined.spec.renew_time = datetime(2025, 3, 4, 5, 6, 9, 1, tzinfo=UTC)
        joined.spec.holder_identity = "g1-b-renewed"
        await leases.replace_namespaced_lease("g1-b", NS, joined)
        await leases.delete_namespaced_lease("g1-b", NS)
        await asyncio.wait_for(task, timeout=30)
    finally:
        task.cancel()
        stream.stop()
    assert seen == [
        ("ADDED", "g1-b", "g1-b"),
        ("MODIFIED", "g1-b", "g1-b-renewed"),
        ("DELETED", "g1-b", "g1-b-renewed"),
    ]


# ---- kubectl's view: Tables -----------------------------------------------------------------


async def test_table_shows_each_holder(sim: ApiSimulator, leases: client.CoordinationV1Api) -> None:
    """API Concepts, Receiving resources as Tables: "passing an Accept header containing a
    value of application/json;as=Table;g=meta.k8s.io;v=v1 with a GET call will request
    that the server return objects in the Table content type." A Lease's table has the
    columns of pkg/printers/internalversion (Name, Holder, Age), so ``kubectl get
    leases`` shows who holds each one; a plain ``application/json`` is still a list."""
    await leases.create_namespaced_lease(NS, lease("g1-a", holder="pod-a-1x2y"))
    url = f"{sim.url}/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    }
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as response:
            table = await response.json()
        async with session.get(url, headers={**headers, "Accept": "application/json"}) as response:
            plain = await response.json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Holder", "Age"]
    (row,) = table["rows"]
    assert row["cells"][:2] == ["g1-a", "pod-a-1x2y"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["labels"] == {GROUP_LABEL: "g1"}
    assert plain["kind"] == "LeaseList"
