"""Benchmark: microseconds the watch spends on an event it skips after reading its metadata.

Every worker process (and every replica) receives every watch event of every taskset, and
skips those of tasksets another member owns, and the MODIFIED events of its own status
patches, after reading their metadata alone (``agent/source/watch.py``). With N members an
event handed over costs N-1 skipped ones elsewhere, so their cost is what a second process
adds per task in the one-task-per-taskset shape (docs/performance.md, issue 17).

The lines are real: a one-task taskset as ``bench.py`` builds it is created in the API
simulator, its status patched as the agent patches it, and the ADDED and MODIFIED lines are
read from a watch over HTTP; the same events are also written as the API server writes
them (keys sorted, managedFields of the controller and of the agent). Measured, best of 7
runs of 20,000 calls each:

* ``peek``: ``_peek_metadata`` alone;
* ``not-owned``: ``TaskSetWatcher._skip_cheaply`` for another member's taskset (the
  ownership of two static members, as ``--processes 2 --membership none`` gives);
* ``unchanged``: the same for an owned taskset's status-patch MODIFIED event.

It is a measurement, not a test: ``python loadtest/bench_watch.py``. It uses only what both
the current and earlier versions of the watch offer, so it runs unchanged against an older
checkout (``PYTHONPATH=<old checkout>:<old checkout>/sim``) for before/after figures.
"""

from __future__ import annotations

import asyncio
import json
import timeit
from collections.abc import Callable
from typing import Any

import aiohttp
import bench
from agent_sim import ApiSimulator
from kubernetes_asyncio import client

from agent.core.refs import TaskSetKey
from agent.engine.ownership import Ownership, static_members, unit_of
from agent.source import watch

_TOKEN = "bench-watch"
_NAME = "bench-3f9a1c-00042"
_NODE = f"{_NAME}-0"


async def simulator_lines() -> tuple[bytes, bytes]:
    """The ADDED and the status-patch MODIFIED line of a one-task taskset, as the simulator
    writes them to a watch."""
    async with ApiSimulator() as sim:
        sim.add_token(_TOKEN)
        url = f"{sim.url}{bench.GROUP_PATH}/namespaces/{bench.NAMESPACE}/workflowtasksets"
        headers = {"Authorization": f"Bearer {_TOKEN}"}
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.get(url, params={"watch": "true"}) as response,
        ):
            await sim.wait_for_watches(1)
            task = {"name": "http", "http": {"url": "http://127.0.0.1:40123/bench/42"}}
            sim.create_object(
                "workflowtasksets", bench.taskset(_NAME, {_NODE: task}), namespace=bench.NAMESPACE
            )
            result = {_NODE: {"phase": "Succeeded", "outputs": {"result": "ok"}}}
            sim.patch_object(
                "workflowtasksets",
                _NAME,
                {"status": {"nodes": result}},
                namespace=bench.NAMESPACE,
                subresource="status",
            )
            lines: list[bytes] = []
            while len(lines) < 2:
                line = await response.content.readline()
                if line.strip() and b'"BOOKMARK"' not in line:
                    lines.append(line.rstrip(b"\n"))
    return lines[0], lines[1]


def api_server_line(line: bytes) -> bytes:
    """The same event as the API server writes it: the object's keys sorted, managedFields
    of the controller's create and of the agent's status patch, the controller's label."""
    event = json.loads(line)
    obj = event["object"]
    meta = obj["metadata"]
    owner = "k:" + json.dumps({"uid": meta["ownerReferences"][0]["uid"]}, separators=(",", ":"))
    node_spec = {".": {}, "f:http": {".": {}, "f:url": {}}, "f:name": {}}
    meta["labels"] = {"workflows.argoproj.io/controller-instanceid": ""}
    meta["managedFields"] = [
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:ownerReferences": {".": {}, owner: {}}},
                "f:spec": {".": {}, "f:tasks": {".": {}, f"f:{_NODE}": node_spec}},
            },
            "manager": "workflow-controller",
            "operation": "Update",
            "time": meta.get("creationTimestamp", ""),
        }
    ]
    if "status" in obj:
        node_status = {".": {}, "f:outputs": {".": {}, "f:result": {}}, "f:phase": {}}
        meta["managedFields"].append(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:status": {".": {}, "f:nodes": {".": {}, f"f:{_NODE}": node_status}}
                },
                "manager": "argo-http-agent",
                "operation": "Update",
                "subresource": "status",
                "time": meta.get("creationTimestamp", ""),
            }
        )
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f'{{"type":"{event["type"]}","object":{body}}}'.encode()


def microseconds(call: Callable[[], Any], number: int = 20_000) -> float:
    return round(min(timeit.repeat(call, number=number, repeat=7)) / number * 1e6, 2)


def watcher(api: client.ApiClient, *, owned: bool) -> watch.TaskSetWatcher:
    """A watcher whose ``skip`` is the engine's for a taskset it holds nothing of, with the
    ownership of two static members: this one owns the taskset or the other does."""
    key = TaskSetKey(bench.NAMESPACE, _NAME)
    first = Ownership(me="worker-0", owners=static_members(2))
    owner = "worker-0" if first.owns(unit_of(key.namespace, key.name)) else "worker-1"
    me = owner if owned else ({"worker-0", "worker-1"} - {owner}).pop()
    ownership = Ownership(me=me, owners=static_members(2))
    return watch.TaskSetWatcher(
        api=api,
        scope=watch.WatchScope(namespace=bench.NAMESPACE),
        on_object=lambda obj: None,
        on_deleted=lambda key: None,
        on_listed=lambda keys: None,
        skip=lambda key: ownership.elsewhere(unit_of(key.namespace, key.name)),
    )


def measure(api: client.ApiClient, add: bytes, mod: bytes) -> dict[str, Any]:
    figures: dict[str, Any] = {"bytes": [len(add), len(mod)]}
    figures["peek_ADDED_us"] = microseconds(lambda: watch._peek_metadata(add))
    figures["peek_MODIFIED_us"] = microseconds(lambda: watch._peek_metadata(mod))
    theirs = watcher(api, owned=False)
    assert theirs._skip_cheaply(add) and theirs._skip_cheaply(mod), "not skipped"
    figures["not_owned_ADDED_us"] = microseconds(lambda: theirs._skip_cheaply(add))
    figures["not_owned_MODIFIED_us"] = microseconds(lambda: theirs._skip_cheaply(mod))
    mine = watcher(api, owned=True)
    obj = json.loads(add)["object"]
    mine._hand_over(TaskSetKey(bench.NAMESPACE, _NAME), obj, obj["metadata"])
    assert mine._skip_cheaply(mod), "the status patch's event was not skipped"
    figures["unchanged_MODIFIED_us"] = microseconds(lambda: mine._skip_cheaply(mod))
    return figures


async def main() -> None:
    added, modified = await simulator_lines()
    shapes = {
        "simulator": (added, modified),
        "api-server": (api_server_line(added), api_server_line(modified)),
    }
    api = client.ApiClient()
    try:
        for shape, (add, mod) in shapes.items():
            print(json.dumps({"lines": shape, **measure(api, add, mod)}))
    finally:
        await api.close()


if __name__ == "__main__":
    asyncio.run(main())
