"""The watch hands the engine every event that changes what it reads, and skips the rest.

Status patches (the agent's own results) come back as MODIFIED events carrying the whole
taskset; :class:`agent.source.watch.TaskSetWatcher` decodes only their metadata and skips them
when the UID, generation, labels and owners are unchanged. These tests run a real watcher
against the API simulator over HTTP and count what reaches the engine's callback.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from agent_sim import ApiSimulator

from agent.core.refs import TaskSetKey
from agent.kube.client import connect
from agent.source.watch import TaskSetWatcher, WatchScope, _peek_metadata, _shape
from tests.agentproc import TOKEN, http_task, taskset

NS = "argo"
TS = "workflowtasksets"


class Seen:
    """What the watcher handed over: (name, generation, sorted task keys, labels)."""

    def __init__(self) -> None:
        self.objects: list[tuple[str, int, list[str], dict[str, str]]] = []
        self.deleted: list[TaskSetKey] = []

    def on_object(self, obj: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        tasks = sorted((obj.get("spec") or {}).get("tasks") or {})
        self.objects.append((meta["name"], meta.get("generation", 0), tasks, meta.get("labels")))

    def on_deleted(self, key: TaskSetKey) -> None:
        self.deleted.append(key)


@pytest.fixture
async def watching(sim: ApiSimulator, tmp_path: Path) -> AsyncIterator[tuple[Seen, TaskSetWatcher]]:
    api = await connect(kubeconfig=str(sim.kubeconfig(tmp_path / "kubeconfig", token=TOKEN)))
    seen = Seen()
    watcher = TaskSetWatcher(
        api=api,
        scope=WatchScope(namespace=NS),
        on_object=seen.on_object,
        on_deleted=seen.on_deleted,
        on_listed=lambda keys: None,
    )
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: watcher.established)
        yield seen, watcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await api.close()


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def status_patch(node: str) -> dict[str, Any]:
    return {"status": {"nodes": {node: {"phase": "Succeeded", "outputs": {"result": "x"}}}}}


async def test_status_patches_are_skipped_and_spec_and_label_changes_are_not(
    sim: ApiSimulator, watching: tuple[Seen, TaskSetWatcher]
) -> None:
    seen, watcher = watching
    sim.create_object(TS, taskset("wf", {"a": http_task("http://127.0.0.1:1/a")}), namespace=NS)
    await until(lambda: len(seen.objects) == 1)
    for index in range(5):  # what the agent's own patches look like
        sim.patch_object(TS, "wf", status_patch(f"a{index}"), namespace=NS, subresource="status")
    # A spec change after them: it must arrive, and the version must have moved past the
    # skipped events (a resumed watch would otherwise replay them).
    sim.patch_object(
        TS, "wf", {"spec": {"tasks": {"b": http_task("http://127.0.0.1:1/b")}}}, namespace=NS
    )
    await until(lambda: len(seen.objects) == 2)
    assert seen.objects[1][:3] == ("wf", 2, ["a", "b"])
    sim.patch_object(
        TS,
        "wf",
        {"metadata": {"labels": {"workflows.argoproj.io/completed": "true"}}},
        namespace=NS,
    )
    await until(lambda: len(seen.objects) == 3)
    assert seen.objects[2][3] == {"workflows.argoproj.io/completed": "true"}
    sim.patch_object(TS, "wf", status_patch("z"), namespace=NS, subresource="status")
    sim.delete_object(TS, "wf", namespace=NS)
    await until(lambda: len(seen.deleted) == 1)
    assert len(seen.objects) == 3, "a status-only event reached the engine"
    assert watcher._version == sim.resource_version


async def test_a_resumed_watch_starts_after_skipped_events(
    sim: ApiSimulator, watching: tuple[Seen, TaskSetWatcher]
) -> None:
    seen, watcher = watching
    sim.create_object(TS, taskset("wf", {"a": http_task("http://127.0.0.1:1/a")}), namespace=NS)
    await until(lambda: len(seen.objects) == 1)
    sim.patch_object(TS, "wf", status_patch("a"), namespace=NS, subresource="status")
    await until(lambda: watcher._version == sim.resource_version)
    sim.drop_watches()
    await until(lambda: watcher.established)
    sim.patch_object(
        TS, "wf", {"spec": {"tasks": {"b": http_task("http://127.0.0.1:1/b")}}}, namespace=NS
    )
    await until(lambda: len(seen.objects) == 2)
    assert [o[2] for o in seen.objects] == [["a"], ["a", "b"]]


async def test_a_recreated_taskset_under_the_same_name_is_handed_over(
    sim: ApiSimulator, watching: tuple[Seen, TaskSetWatcher]
) -> None:
    seen, _ = watching
    sim.create_object(TS, taskset("wf", {"a": http_task("http://127.0.0.1:1/a")}), namespace=NS)
    await until(lambda: len(seen.objects) == 1)
    sim.delete_object(TS, "wf", namespace=NS)
    sim.create_object(TS, taskset("wf", {"c": http_task("http://127.0.0.1:1/c")}), namespace=NS)
    await until(lambda: len(seen.objects) == 2)
    assert seen.objects[1][2] == ["c"]


def _line(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


_META = {"name": "wf", "namespace": NS, "uid": "u", "generation": 3, "resourceVersion": "9"}
_OBJECT = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTaskSet", "metadata": _META}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (_line({"type": "MODIFIED", "object": {**_OBJECT, "spec": {}}}), ("MODIFIED", _META)),
        (_line({"type": "ADDED", "object": _OBJECT}), ("ADDED", _META)),
        (_line({"type": "DELETED", "object": _OBJECT}), ("DELETED", _META)),
        # Not exactly the API server's shape: decoded in full instead.
        (_line({"type": "BOOKMARK", "object": _OBJECT}), None),
        (_line({"object": _OBJECT, "type": "MODIFIED"}), None),
        (json.dumps({"type": "MODIFIED", "object": _OBJECT}).encode(), None),  # spaces
        (
            _line({"type": "MODIFIED", "object": {"kind": "X", "metadata": _META}}),
            None,
        ),
        (_line({"type": "MODIFIED", "object": {**_OBJECT, "metadata": [1]}}), None),
        (b'{"type":"MODIFIED","object":{"apiVersion":"v","kind":"k","metadata":{"a"', None),
        (b'{"type":"MODIFIED","object":{"apiVersion":"v","kind":"k","metadata":\xff}', None),
    ],
)
def test_peek_metadata(line: bytes, expected: tuple[str, dict[str, Any]] | None) -> None:
    peeked = _peek_metadata(line)
    assert (peeked if peeked is None else peeked[:2]) == expected


def test_shape_needs_a_generation() -> None:
    assert _shape({"uid": "u", "generation": 2}) == ("u", 2, None, None)
    assert _shape({"uid": "u"}) is None
    assert _shape({"uid": "u", "generation": True}) is None


async def test_other_members_tasksets_are_skipped_unread_and_listed_when_they_become_ours(
    sim: ApiSimulator, tmp_path: Path
) -> None:
    """With a ``skip`` predicate (the engine's: another member owns it, nothing of it is
    here) a taskset's events never reach the engine, in the list or the watch, while the
    others' still do; once the predicate lets go, the watcher names it as one to read
    afresh, and a deletion makes it forgotten."""
    theirs: set[str] = {"theirs", "theirs-listed"}
    sim.create_object(
        TS, taskset("theirs-listed", {"l": http_task("http://127.0.0.1:1/l")}), namespace=NS
    )
    api = await connect(kubeconfig=str(sim.kubeconfig(tmp_path / "kubeconfig", token=TOKEN)))
    seen = Seen()
    watcher = TaskSetWatcher(
        api=api,
        scope=WatchScope(namespace=NS),
        on_object=seen.on_object,
        on_deleted=seen.on_deleted,
        on_listed=lambda keys: None,
        skip=lambda key: key.name in theirs,
    )
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: watcher.established)
        sim.create_object(
            TS, taskset("theirs", {"a": http_task("http://127.0.0.1:1/a")}), namespace=NS
        )
        sim.patch_object(
            TS,
            "theirs",
            {"spec": {"tasks": {"b": http_task("http://127.0.0.1:1/b")}}},
            namespace=NS,
        )
        sim.create_object(
            TS, taskset("mine", {"m": http_task("http://127.0.0.1:1/m")}), namespace=NS
        )
        await until(lambda: len(seen.objects) == 1)  # events arrive in order: theirs came first
        assert [o[0] for o in seen.objects] == ["mine"]
        assert watcher.skipped() == []  # still theirs: nothing to read
        theirs.discard("theirs")  # the view changed: it is ours now
        assert watcher.skipped() == [TaskSetKey(NS, "theirs")]
        watcher.shown(TaskSetKey(NS, "theirs"))
        assert watcher.skipped() == []
        # A deletion of a skipped taskset: told (the engine may hold nothing), then forgotten.
        sim.delete_object(TS, "theirs-listed", namespace=NS)
        await until(lambda: TaskSetKey(NS, "theirs-listed") in seen.deleted)
        theirs.clear()
        assert watcher.skipped() == []
        # Shown and ours: its next event is decoded and handed over like any other.
        sim.patch_object(
            TS,
            "theirs",
            {"spec": {"tasks": {"c": http_task("http://127.0.0.1:1/c")}}},
            namespace=NS,
        )
        await until(lambda: len(seen.objects) == 2)
        assert seen.objects[1][:3] == ("theirs", 3, ["a", "b", "c"])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await api.close()


def test_peek_metadata_reads_the_metadata_of_a_large_event_however_long_it_is() -> None:
    tasks = {f"n{i}": {"http": {"url": f"http://127.0.0.1:1/{i}" + "x" * 100}} for i in range(400)}
    large = _line({"type": "MODIFIED", "object": {**_OBJECT, "spec": {"tasks": tasks}}})
    assert len(large) > 32 << 10
    assert _peek_metadata(large) == ("MODIFIED", _META, _line(_META))
    # Metadata longer than the fallback's head (big managedFields), with or without a spec
    # after it (without: read by the fallback, from the whole line).
    meta = {**_META, "managedFields": [{"manager": "m" * 40_000}]}
    for spec in ({"spec": {}}, {}):
        long_meta = _line({"type": "MODIFIED", "object": {**_OBJECT, "metadata": meta, **spec}})
        assert (_peek_metadata(long_meta) or ())[:2] == ("MODIFIED", meta)
    # A multi-byte character cut by the head's end changes nothing.
    # (Two bytes each, shifted by one byte or not: one of the two lines has the cut inside.)
    for pad in ("", "a"):
        cut = {**_META, "labels": {"k": pad + "é" * 20_000}}
        event = {"type": "ADDED", "object": {**_OBJECT, "metadata": cut}}
        raw = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        assert (_peek_metadata(raw) or ())[:2] == ("ADDED", cut)
