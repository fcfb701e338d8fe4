"""The watch reads an event's metadata alone, and exactly as decoding the whole line would.

Every member receives every watch event; one of a taskset another member owns, and a
MODIFIED event that changes nothing the engine reads, are skipped after
:func:`agent.source.watch._peek_metadata` found the metadata's end by a substring search and
decoded that slice alone. These tests pin that the slice is decoded to exactly the metadata a
full decode gives, whatever the labels, annotations and managedFields hold, and that a line
not shaped as expected is decoded in full instead; and, on a real watcher fed real event
lines, that no event of an owned taskset that changes what the engine reads is skipped, and
that the ``argo_agent_watch_events_*`` counters count every event once.

The lines are written as the API server writes them: the watch event's ``type`` then
``object`` (the field order of ``WatchEvent`` in k8s.io/apimachinery
``pkg/apis/meta/v1/watch.go``), and an unstructured object's keys sorted (Go's
``encoding/json`` sorts map keys, ``encode.go`` ``mapEncoder.encode``), non-ASCII text
written as UTF-8.
"""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp
import pytest
from agent_sim import ApiSimulator
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes_asyncio import client
from prometheus_client import REGISTRY

from agent.core import jsoncodec
from agent.core.refs import TaskSetKey
from agent.source.watch import _PEEK_BYTES, TaskSetWatcher, WatchScope, _exact, _peek_metadata
from tests.agentproc import TOKEN, http_task, taskset
from tests.test_watch_unchanged import NS, TS, Seen

API_VERSION = "argoproj.io/v1alpha1"


def api_server_line(kind: str, obj: Mapping[str, Any], *, ascii_only: bool = False) -> bytes:
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only)
    return f'{{"type":"{kind}","object":{body}}}'.encode()


def decoded_metadata(line: bytes) -> dict[str, Any]:
    """What decoding the whole line gives (the codec every decoded event goes through)."""
    metadata: dict[str, Any] = jsoncodec.loads(line)["object"]["metadata"]
    return metadata


def peeked(line: bytes) -> tuple[str, dict[str, Any]] | None:
    """The peek's answer as the watcher uses it: the exact metadata where it must be."""
    result = _peek_metadata(line)
    if result is None:
        return None
    kind, meta, text = result
    return kind, _exact(meta, text)


def managed_fields(nodes: int) -> list[dict[str, Any]]:
    """managedFields as the API server keeps them for a taskset: every node of the spec and
    of the status is a field of the controller's and of the agent's entry."""

    def node_fields(names: tuple[str, ...]) -> dict[str, Any]:
        return {".": {}, **{f"f:{name}": {} for name in names}}

    names = [f"wf-{index}" for index in range(nodes)]
    return [
        {
            "apiVersion": API_VERSION,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:ownerReferences": {".": {}, 'k:{"uid":"w-uid"}': {}}},
                "f:spec": {"f:tasks": {f"f:{n}": node_fields(("http", "name")) for n in names}},
            },
            "manager": "workflow-controller",
            "operation": "Update",
            "time": "2026-12-03T08:00:00Z",
        },
        {
            "apiVersion": API_VERSION,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:status": {
                    "f:nodes": {f"f:{n}": node_fields(("outputs", "phase")) for n in names}
                }
            },
            "manager": "argo-http-agent",
            "operation": "Update",
            "subresource": "status",
            "time": "2026-12-03T08:00:01Z",
        },
    ]


def api_object(**metadata: Any) -> dict[str, Any]:
    """A WorkflowTaskSet as the API server holds it: one node, its result, managedFields."""
    meta = {
        "creationTimestamp": "2026-12-03T08:00:00Z",
        "generation": 1,
        "labels": {"workflows.argoproj.io/controller-instanceid": ""},
        "managedFields": managed_fields(1),
        "name": "wf",
        "namespace": NS,
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "blockOwnerDeletion": True,
                "controller": True,
                "kind": "Workflow",
                "name": "wf",
                "uid": "w-uid",
            }
        ],
        "resourceVersion": "1001",
        "uid": "ts-uid",
    }
    meta.update(metadata)
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowTaskSet",
        "metadata": meta,
        "spec": {"tasks": {"wf-0": http_task("http://127.0.0.1:1/a")}},
        "status": {"nodes": {"wf-0": {"phase": "Succeeded", "outputs": {"result": "ok"}}}},
    }


# -- the peek alone -------------------------------------------------------------------------


# What a label, an annotation or a managedFields key may hold: anything, and above all what
# the search for the metadata's end looks for.
_TRICKY = ['},"spec":', '"},"spec":{', "\\", '"', "é", "\u2028", "\x00", "{", "}", "[", "]"]
_text = (
    st.text(max_size=12)
    | st.sampled_from(_TRICKY)
    | st.lists(st.sampled_from([*_TRICKY, *string.ascii_letters]), max_size=6).map("".join)
)
_fields = st.recursive(
    st.just({}),
    lambda inner: st.dictionaries(_text | st.just("spec"), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["ADDED", "MODIFIED", "DELETED"]),
    labels=st.dictionaries(_text, _text, max_size=4),
    annotations=st.dictionaries(_text, _text, max_size=3),
    fields=st.lists(_fields, max_size=3),
    generation=st.integers(min_value=1, max_value=2**70),
)
def test_the_peek_is_the_full_decode_of_an_api_server_line(
    kind: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    fields: list[dict[str, Any]],
    generation: int,
) -> None:
    obj = api_object(
        labels=labels,
        annotations=annotations,
        generation=generation,  # beyond 64 bits too: exact, as the full decode keeps it
        managedFields=[{"fieldsType": "FieldsV1", "fieldsV1": f} for f in fields],
    )
    line = api_server_line(kind, obj)
    result = peeked(line)
    assert result is not None
    assert result[0] == kind
    assert repr(result[1]) == repr(decoded_metadata(line))  # same values, same types


@pytest.mark.parametrize(
    "metadata",
    [
        # A label or annotation holding the text searched for (escaped in the line).
        {"labels": {"k": '},"spec":{"tasks":{}}}'}, "annotations": {'},"spec":': '\\"}'}},
        # A key "spec" inside the metadata, right after an object: the first match is not
        # the metadata's end, and the slice up to it is no JSON document.
        {"managedFields": [{"fieldsV1": {"f:x": {}, "spec": {}}}]},
        {"annotations": {"big": 12345678901234567890123}},  # beyond 64 bits: kept exact
        {"managedFields": managed_fields(400)},  # metadata far beyond the fallback's head
    ],
    ids=["searched-text-in-strings", "nested-spec-key", "big-int", "huge"],
)
def test_the_peek_is_the_full_decode_where_the_search_may_mislead(
    metadata: dict[str, Any],
) -> None:
    line = api_server_line("MODIFIED", api_object(**metadata))
    assert peeked(line) == ("MODIFIED", decoded_metadata(line))
    assert repr(peeked(line)) == repr(("MODIFIED", decoded_metadata(line)))


def test_what_orjson_refuses_is_decoded_by_json() -> None:
    # A lone surrogate, escaped: json decodes it, orjson does not.
    line = api_server_line("MODIFIED", api_object(annotations={"a": "\ud800"}), ascii_only=True)
    assert b"\\ud800" in line
    assert peeked(line) == ("MODIFIED", decoded_metadata(line))


@pytest.mark.parametrize("kind", ["ADDED", "MODIFIED", "DELETED"])
def test_another_api_version_or_kind_is_peeked_too(kind: str) -> None:
    for api_version, resource in ((API_VERSION, "Other"), ("argoproj.io/v1", "WorkflowTaskSet")):
        obj = {**api_object(), "apiVersion": api_version, "kind": resource}
        line = api_server_line(kind, obj)
        assert peeked(line) == (kind, decoded_metadata(line))


def test_metadata_beyond_the_head_is_read_without_decoding_the_line_as_text() -> None:
    line = api_server_line("MODIFIED", api_object(managedFields=managed_fields(400)))
    assert line.index(b'"spec":') > 2 * _PEEK_BYTES
    result = _peek_metadata(line)
    assert result is not None
    assert result[2], "decoded from its slice, not from the text of the line"


@pytest.mark.parametrize(
    "line",
    [
        # Another key order: nothing is guessed; decoded in full.
        b'{"object":{"apiVersion":"v","kind":"k","metadata":{"name":"wf"}},"type":"MODIFIED"}',
        b'{"type":"MODIFIED","object":{"metadata":{"name":"wf"},"apiVersion":"v","kind":"k"}}',
        b'{"type":"MODIFIED","object":{"apiVersion":"v","kind":"k","spec":{},"metadata":{}}}',
    ],
)
def test_a_line_in_another_key_order_is_not_peeked(line: bytes) -> None:
    assert _peek_metadata(line) is None


def test_metadata_without_a_spec_after_it_is_read_by_the_fallback() -> None:
    obj = api_object()
    del obj["spec"]
    line = api_server_line("DELETED", obj)
    assert peeked(line) == ("DELETED", decoded_metadata(line))


# -- real lines, from the simulator -----------------------------------------------------------


async def test_the_simulators_lines_peek_as_they_decode(
    sim: ApiSimulator,
) -> None:
    """Lines as the simulator writes them (its own key order, no managedFields), read over
    HTTP from a watch (its token has every permission)."""
    url = f"{sim.url}/apis/{API_VERSION}/namespaces/{NS}/{TS}?watch=true"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    lines: list[bytes] = []
    async with aiohttp.ClientSession(headers=headers) as session, session.get(url) as response:
        async with asyncio.timeout(10):
            await sim.wait_for_watches(1)
        task = taskset("wf", {"a": http_task("http://127.0.0.1:1/a")})
        sim.create_object(TS, task, namespace=NS)
        result = {"a": {"phase": "Succeeded", "outputs": {"result": "x"}}}
        sim.patch_object(
            TS, "wf", {"status": {"nodes": result}}, namespace=NS, subresource="status"
        )
        labels = {"l": '"},"spec":\\'}
        sim.patch_object(TS, "wf", {"metadata": {"labels": labels}}, namespace=NS)
        sim.delete_object(TS, "wf", namespace=NS)
        async with asyncio.timeout(10):
            while len(lines) < 4:
                line = await response.content.readline()
                if line.strip() and b'"BOOKMARK"' not in line:
                    lines.append(line)
    assert [peeked(line) for line in lines] == [
        (kind, decoded_metadata(line))
        for kind, line in zip(["ADDED", "MODIFIED", "MODIFIED", "DELETED"], lines, strict=True)
    ]


# -- the watcher's decisions, on real lines -------------------------------------------------


# The watch counters, by a short name: (metric, labels). Process-wide, so compared with
# their values at a test's start.
WATCH_COUNTERS: dict[str, tuple[str, dict[str, str]]] = {
    "ADDED": ("argo_agent_watch_events_total", {"type": "ADDED"}),
    "MODIFIED": ("argo_agent_watch_events_total", {"type": "MODIFIED"}),
    "DELETED": ("argo_agent_watch_events_total", {"type": "DELETED"}),
    "unchanged": ("argo_agent_watch_events_unchanged_total", {}),
    "not_owned": ("argo_agent_watch_events_not_owned_total", {}),
}


class Counters:
    """How much each watch counter moved since this was made."""

    def __init__(self) -> None:
        self.start = self.values()

    def values(self) -> dict[str, float]:
        return {
            name: REGISTRY.get_sample_value(metric, labels) or 0.0
            for name, (metric, labels) in WATCH_COUNTERS.items()
        }

    def delta(self) -> dict[str, float]:
        now = self.values()
        return {name: now[name] - self.start[name] for name in now if now[name] != self.start[name]}


@pytest.fixture
def others() -> set[str]:
    """Names of the tasksets another member owns (the watcher's ``skip``)."""
    return set()


@pytest.fixture
def fed(api: client.ApiClient, others: set[str]) -> Iterator[tuple[TaskSetWatcher, Seen]]:
    seen = Seen()
    watcher = TaskSetWatcher(
        api=api,
        scope=WatchScope(namespace=NS),
        on_object=seen.on_object,
        on_deleted=seen.on_deleted,
        on_listed=lambda keys: None,
        skip=lambda key: key.name in others,
    )
    yield watcher, seen


CHANGES: dict[str, dict[str, Any]] = {
    "generation": {"generation": 2},
    "labels": {"labels": {"workflows.argoproj.io/completed": "true"}},
    "label-with-escapes": {"labels": {"k": '"},"spec":\\é'}},
    "uid": {"uid": "another-uid"},
    "owner": {"ownerReferences": [{"kind": "Workflow", "name": "wf", "uid": "other"}]},
    # Integers beyond 64 bits that orjson would turn into one and the same float.
    "big-int-owner": {"ownerReferences": [{"kind": "Workflow", "uid": "w", "n": 10**20 + 1}]},
}


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
@pytest.mark.parametrize("fields", [1, 400], ids=["small", "managedFields-beyond-the-head"])
async def test_an_owned_change_is_handed_over_and_a_status_patch_is_not(
    fed: tuple[TaskSetWatcher, Seen], change: str, fields: int
) -> None:
    watcher, seen = fed
    base = {
        "managedFields": managed_fields(fields),
        "ownerReferences": [{"kind": "Workflow", "uid": "w", "n": 10**20}],
    }
    counters = Counters()
    watcher._receive(api_server_line("ADDED", api_object(**base)))
    # The agent's own patch: a new resourceVersion and status, the same metadata otherwise.
    watcher._receive(api_server_line("MODIFIED", api_object(**base, resourceVersion="1002")))
    assert len(seen.objects) == 1
    assert watcher._version == "1002"
    changed = api_object(**{**base, **CHANGES[change]}, resourceVersion="1003")
    watcher._receive(api_server_line("MODIFIED", changed))
    assert len(seen.objects) == 2, "a change the engine reads was skipped"
    assert watcher._version == "1003"
    assert counters.delta() == {"ADDED": 1, "MODIFIED": 2, "unchanged": 1}


async def test_another_members_events_are_skipped_and_counted_once(
    fed: tuple[TaskSetWatcher, Seen], others: set[str]
) -> None:
    watcher, seen = fed
    others.add("wf")
    counters = Counters()
    big = {"managedFields": managed_fields(400)}
    for kind, version in (("ADDED", "1"), ("MODIFIED", "2"), ("MODIFIED", "3")):
        watcher._receive(api_server_line(kind, api_object(**big, resourceVersion=version)))
    assert seen.objects == []
    assert watcher._version == "3"
    others.clear()  # the view gave it to this member: to be read afresh
    assert watcher.skipped() == [TaskSetKey(NS, "wf")]
    others.add("wf")
    watcher._receive(api_server_line("DELETED", api_object(resourceVersion="4")))
    assert seen.deleted == [TaskSetKey(NS, "wf")]  # told: the engine may hold something
    assert watcher.skipped() == []
    # A line the peek does not read (another key order) is decoded, and skipped all the same.
    obj = api_object(resourceVersion="5")
    line = json.dumps({"object": obj, "type": "ADDED"}, separators=(",", ":")).encode()
    assert _peek_metadata(line) is None
    watcher._receive(line)
    assert seen.objects == []
    assert watcher._version == "5"
    assert counters.delta() == {"ADDED": 2, "MODIFIED": 2, "DELETED": 1, "not_owned": 5}


async def test_metadata_not_as_the_api_server_writes_it_is_decoded_in_full(
    fed: tuple[TaskSetWatcher, Seen], others: set[str]
) -> None:
    """A name or namespace that is no string: the peek decides nothing, and the full decode
    keys the taskset as always (``str`` of the value)."""
    watcher, seen = fed
    others.add("12345678901234567890123")
    counters = Counters()
    line = api_server_line("ADDED", api_object(name=12345678901234567890123))
    watcher._receive(line)
    assert seen.objects == []  # another member's, by the key the full decode gives
    assert watcher.skipped() == []  # still another member's
    others.clear()
    assert watcher.skipped() == [TaskSetKey(NS, "12345678901234567890123")]
    watcher._receive(api_server_line("ADDED", api_object(namespace=None)))
    assert len(seen.objects) == 1
    assert counters.delta() == {"ADDED": 2, "not_owned": 1}


async def test_a_status_patch_of_an_unlabelled_or_generationless_taskset_is_handed_over(
    fed: tuple[TaskSetWatcher, Seen],
) -> None:
    watcher, seen = fed
    obj = api_object()
    del obj["metadata"]["generation"]
    watcher._receive(api_server_line("ADDED", obj))
    watcher._receive(api_server_line("MODIFIED", obj))
    assert len(seen.objects) == 2  # no generation: nothing says the spec is unchanged
