"""The local runner is the engine's: manifest source, engine rules, stdout sink, retries.

Requests are counted on the real target's ``/flaky/{key}/{n}`` endpoint (500 for the first
``n`` calls with a key, then 200): a later probe of the same key tells how many calls came
before it, so "not sent" and "sent once" are observed on the server, not inferred.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.core.model import NodePhase, NodeResult
from agent.core.refs import COMPLETED_LABEL, TaskRef, TaskSetKey
from agent.executor.settings import ExecutorSettings
from agent.service import local as local_module
from agent.service.local import run_local
from agent.sink.stdout import StdoutSink, render
from agent.source.manifest import LocalInputError, to_snapshot
from tests.servers import TargetServer
from tests.test_local import local, taskset, write

SETTINGS = ExecutorSettings(ca_dir=None)


def failed(call: int, of: int) -> dict[str, Any]:
    """The entry of a node whose request was ``call``-th of a ``/flaky/{key}/{of}`` key."""
    return {
        "phase": "Failed",
        "message": "received non-2xx response code: 500",
        "outputs": {"result": f"failure {call} of {of}"},
    }


def flaky(target: TargetServer, key: str, failures: int) -> dict[str, Any]:
    return {"http": {"url": target.url(f"/flaky/{key}/{failures}")}}


async def probe(target: TargetServer, key: str, failures: int) -> dict[str, Any]:
    """One more call on ``key``: its response body tells how many calls came before."""
    out = await run_local(taskset({"probe": flaky(target, key, failures)}), settings=SETTINGS)
    node: dict[str, Any] = out["status"]["nodes"]["probe"]
    return node


# -- the engine's rules, seen through `local` ---------------------------------------------


async def test_a_fulfilled_node_is_not_sent_again_and_keeps_its_entry(
    tmp_path: Path, target: TargetServer
) -> None:
    key = uuid.uuid4().hex
    earlier = {"phase": "Succeeded", "outputs": {"result": "from an earlier run"}}
    manifest = taskset(
        {
            "done": {
                **flaky(target, key, 1),
                "retryStrategy": {"limit": 2, "retryPolicy": "Always"},
            },
            "was-running": {"http": {"url": target.url("/status/200")}},
            "fresh": {"http": {"url": target.url("/status/201")}},
        }
    )
    manifest["status"] = {
        "nodes": {
            "done": earlier,
            "was-running": {"phase": "Running", "message": "claimed"},
            "left-spec": {"phase": "Failed", "message": "no longer a task"},
        }
    }
    path = tmp_path / "ts.json"  # JSON keeps the spec's order (write() sorts keys)
    path.write_text(json.dumps(manifest))
    done = local(str(path), "-o", "json")
    assert done.returncode == 0, done.stderr
    nodes = json.loads(done.stdout)["status"]["nodes"]
    assert nodes == {
        "done": earlier,
        "was-running": {"phase": "Succeeded", "outputs": {"result": "status 200"}},
        "fresh": {"phase": "Succeeded", "outputs": {"result": "status 201"}},
    }
    assert list(nodes) == ["done", "was-running", "fresh"]  # spec order
    assert "attempt" not in done.stderr  # not even a first attempt
    # The target never saw "done": the probe is the key's first call.
    assert await probe(target, key, 1) == failed(1, 1)


@pytest.mark.parametrize("phase", ["Failed", "Error", "Skipped", "Omitted"])
async def test_every_fulfilled_phase_is_kept_and_counts_as_not_succeeded(
    phase: str, target: TargetServer
) -> None:
    key = uuid.uuid4().hex
    manifest = taskset({"n": flaky(target, key, 0)})
    manifest["status"] = {"nodes": {"n": {"phase": phase, "message": "earlier"}}}
    out = await run_local(manifest, settings=SETTINGS)
    assert out["status"]["nodes"] == {"n": {"phase": phase, "message": "earlier"}}
    assert not local_module._succeeded(out)
    assert await probe(target, key, 1) == failed(1, 1)  # "n" was never sent


def test_a_kept_failed_entry_exits_1(tmp_path: Path, target: TargetServer) -> None:
    manifest = taskset({"n": {"http": {"url": target.url("/status/200")}}})
    manifest["status"] = {"nodes": {"n": {"phase": "Failed", "message": "earlier"}}}
    done = local(write(tmp_path / "ts.yaml", manifest), "-o", "json")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["status"]["nodes"] == {
        "n": {"phase": "Failed", "message": "earlier"}
    }


@pytest.mark.parametrize("max_in_flight", [1, 3, 512])
async def test_each_node_is_sent_exactly_once(max_in_flight: int, target: TargetServer) -> None:
    key = uuid.uuid4().hex
    count = 10
    # Each key's response names its call number: the run's must be the 1st, and the
    # probe after it the 2nd; an extra call by the run would shift the probe's.
    tasks = {f"n{i}": flaky(target, f"{key}-{i}", 2) for i in range(count)}
    out = await run_local(taskset(tasks), settings=SETTINGS, max_in_flight=max_in_flight)
    assert out["status"]["nodes"] == {f"n{i}": failed(1, 2) for i in range(count)}
    for i in range(count):
        assert await probe(target, f"{key}-{i}", 2) == failed(2, 2)


async def test_retries_under_an_in_flight_cap_of_one(target: TargetServer) -> None:
    key = uuid.uuid4().hex
    attempts: list[tuple[str, int, float | None]] = []
    manifest = taskset(
        {
            "flaky": {**flaky(target, key, 2), "retryStrategy": {"limit": 3}},
            "plain": {"http": {"url": target.url("/status/200")}},
        }
    )
    out = await run_local(
        manifest,
        settings=SETTINGS,
        max_in_flight=1,
        on_attempt=lambda node, attempt, verdict: attempts.append(
            (node, attempt.number, verdict.delay)
        ),
    )
    assert out["status"]["nodes"] == {
        "flaky": {"phase": "Succeeded", "outputs": {"result": "ok after 2 failures"}},
        "plain": {"phase": "Succeeded", "outputs": {"result": "status 200"}},
    }
    assert [(node, number) for node, number, _ in attempts] == [
        ("flaky", 1),
        ("flaky", 2),
        ("flaky", 3),
    ]
    assert attempts[-1][2] is None  # the third attempt succeeded: no more retries


async def test_quoted_numeric_node_ids_and_a_completed_label(target: TargetServer) -> None:
    text = (
        "kind: WorkflowTaskSet\n"
        f"metadata: {{labels: {{{COMPLETED_LABEL}: 'true'}}}}\n"
        f"spec: {{tasks: {{'1': {{http: {{url: '{target.url('/status/200')}'}}}}}}}}\n"
    )
    manifest = yaml.safe_load(text)
    out = await run_local(manifest, settings=SETTINGS)
    assert out["status"]["nodes"] == {
        "1": {"phase": "Succeeded", "outputs": {"result": "status 200"}}
    }


# -- the source -----------------------------------------------------------------------------


def test_snapshot_of_a_manifest() -> None:
    manifest = {
        "kind": "WorkflowTaskSet",
        "metadata": {
            "ownerReferences": [{"kind": "Workflow", "uid": "wf-uid"}],
            "labels": {COMPLETED_LABEL: "true"},
            "generation": 3,
        },
        "spec": {"tasks": {"a": {"http": {}}, "2": None}},
        "status": {"nodes": {"a": {"phase": "Succeeded"}}},
    }
    before = json.dumps(manifest, default=str)
    snapshot = to_snapshot(manifest)
    assert snapshot.key == TaskSetKey("default", "local")
    assert snapshot.workflow_uid == "wf-uid"
    assert dict(snapshot.tasks) == {"a": {"http": {}}, "2": None}
    assert dict(snapshot.nodes) == {"a": {"phase": "Succeeded"}}
    assert snapshot.generation == 3
    assert not snapshot.completed  # a local run runs the file it is given
    assert json.dumps(manifest, default=str) == before


def test_snapshot_refuses_an_unusable_manifest() -> None:
    with pytest.raises(LocalInputError, match=r"^metadata.name: expected a string$"):
        to_snapshot({"metadata": {"name": 1}, "spec": {"tasks": {}}})


# -- the sink -------------------------------------------------------------------------------


def test_stdout_sink_fills_status_nodes() -> None:
    key = TaskSetKey("argo", "wf")
    sink = StdoutSink()
    sink.submit(TaskRef("argo", "wf", "b"), NodeResult(phase=NodePhase.FAILED, message="boom"))
    sink.submit(TaskRef("argo", "wf", "gone"), NodeResult(phase=NodePhase.SUCCEEDED))
    sink.submit(TaskRef("argo", "other", "a"), NodeResult(phase=NodePhase.SUCCEEDED))
    sink.discard(key, frozenset({"gone"}))
    manifest = taskset({"a": {}, "b": {}, "c": {}, "gone": {}})
    manifest["status"] = {"nodes": {"a": {"phase": "Skipped"}, "x": {"phase": "Failed"}}}
    out = sink.filled(manifest, key=key)
    assert out["status"] == {
        "nodes": {"a": {"phase": "Skipped"}, "b": {"phase": "Failed", "message": "boom"}}
    }
    assert manifest["status"]["nodes"] == {"a": {"phase": "Skipped"}, "x": {"phase": "Failed"}}
    sink.discard(key)
    assert sink.results(key) == {}
    assert sink.results(TaskSetKey("argo", "other")) == {"a": NodeResult(phase=NodePhase.SUCCEEDED)}


def test_render_yaml_and_json() -> None:
    document = {"kind": "WorkflowTaskSet", "status": {"nodes": {"n": {"phase": "Succeeded"}}}}
    assert yaml.safe_load(render(document, output="yaml")) == document
    assert render(document, output="yaml").startswith("kind: WorkflowTaskSet\n")
    assert json.loads(render(document, output="json")) == document
    assert render(document, output="json").endswith("}\n")


# -- settings -------------------------------------------------------------------------------


def test_flag_defaults_are_the_executor_settings_defaults() -> None:
    args = local_module._parser().parse_args(["file.yaml"])
    defaults = {f.name: f.default for f in dataclasses.fields(ExecutorSettings)}
    assert args.default_timeout == defaults["default_timeout_seconds"]
    assert args.max_result_bytes == defaults["max_result_bytes"]
    assert args.transport == defaults["transport"]
