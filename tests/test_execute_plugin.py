"""The executor-plugin protocol against real little plugin servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.core.model import dump
from agent.core.refs import TaskRef, TaskSetKey, TaskSetSnapshot
from agent.engine.scheduler import Engine
from agent.executor.executor import Executor
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import ExecutorSettings, PluginEndpoint
from tests.executors import executor_factory
from tests.servers import PluginReply, PluginServer
from tests.test_engine import ListSink

REF = TaskRef(namespace="argo", taskset="my-wf", node_id="my-wf-123", workflow_uid="uid-42")
TEMPLATE = {"name": "hello", "inputs": {}, "plugin": {"hello": {"greeting": "hi"}}}
SUCCEEDED = {"node": {"phase": "Succeeded", "message": "done", "outputs": {"result": "42"}}}

MakeExecutor = Callable[..., Executor]


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    path = tmp_path / "token"
    path.write_text("plugin-token\n")
    return str(path)


@pytest.fixture
async def make_executor(token_file: str) -> AsyncIterator[MakeExecutor]:
    async with executor_factory(plugin_retry_base_seconds=0.01, ca_dir=None) as build:

        def make(*servers: PluginServer | PluginEndpoint, **overrides: Any) -> Executor:
            plugins = tuple(
                s
                if isinstance(s, PluginEndpoint)
                else PluginEndpoint(name=f"p{i}", address=s.base_url, token_path=token_file)
                for i, s in enumerate(servers)
            )
            return build(plugins=plugins, **overrides)

        yield make


@pytest.fixture
def plugin() -> Iterator[Callable[..., PluginServer]]:
    started: list[PluginServer] = []

    def start(*replies: PluginReply, **kwargs: Any) -> PluginServer:
        server = PluginServer(list(replies), **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


async def run(executor: Executor, template: dict[str, Any] = TEMPLATE) -> dict[str, Any]:
    return dump(await executor.run(template, ref=REF))


async def test_plugin_result_and_request_shape(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    server = plugin(PluginReply(json=SUCCEEDED))
    assert await run(make_executor(server)) == SUCCEEDED["node"]
    (call,) = server.calls
    assert call.body == {
        "workflow": {"metadata": {"name": "my-wf", "namespace": "argo", "uid": "uid-42"}},
        "template": TEMPLATE,
    }
    assert call.headers["Authorization"] == "Bearer plugin-token"
    assert call.headers["Content-Type"] == "application/json"


async def test_null_node_passes_to_the_next_plugin(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    first = plugin(PluginReply(json={"node": None}))
    second = plugin(PluginReply(json=SUCCEEDED))
    assert await run(make_executor(first, second)) == SUCCEEDED["node"]
    assert (len(first.calls), len(second.calls)) == (1, 1)


async def test_404_plugin_is_never_asked_again(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    missing = plugin(PluginReply(status=404, text="404 page not found"))
    working = plugin(PluginReply(json=SUCCEEDED))
    executor = make_executor(missing, working)
    assert await run(executor) == SUCCEEDED["node"]
    assert await run(executor) == SUCCEEDED["node"]
    assert (len(missing.calls), len(working.calls)) == (1, 2)


async def test_503_is_retried(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    server = plugin(
        PluginReply(status=503, text="warming up"),
        PluginReply(status=503, text="warming up"),
        PluginReply(json=SUCCEEDED),
    )
    assert await run(make_executor(server)) == SUCCEEDED["node"]
    assert len(server.calls) == 3


async def test_503_until_the_retries_run_out(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    server = plugin(PluginReply(status=503, text="still warming up"))
    result = await run(make_executor(server, plugin_retry_steps=3))
    assert result == {"phase": "Failed", "message": "still warming up"}
    assert len(server.calls) == 3


async def test_other_status_fails_with_status_and_body(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    server = plugin(PluginReply(status=500, text="boom"))
    assert await run(make_executor(server)) == {
        "phase": "Failed",
        "message": "500 Internal Server Error: boom",
    }
    assert len(server.calls) == 1


async def test_connection_refused_is_retried_then_fails(make_executor: MakeExecutor) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = PluginEndpoint(name="gone", address=f"http://127.0.0.1:{port}", token_path="")
    result = await run(make_executor(endpoint, plugin_retry_steps=2))
    assert result == {
        "phase": "Failed",
        "message": f'Post "http://127.0.0.1:{port}/api/v1/template.execute": dial tcp '
        f"127.0.0.1:{port}: connect: connection refused",
    }


async def test_requeue_asks_again_and_returns_the_final_result(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    server = plugin(
        PluginReply(json={"node": {"phase": "Running", "progress": "1/2"}, "requeue": "20ms"}),
        PluginReply(json=SUCCEEDED),
    )
    assert await run(make_executor(server)) == SUCCEEDED["node"]
    assert len(server.calls) == 2


async def test_fulfilled_phase_ends_even_with_requeue(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    failed = {"node": {"phase": "Failed", "message": "no"}, "requeue": "1h"}
    server = plugin(PluginReply(json=failed))
    assert await run(make_executor(server)) == {"phase": "Failed", "message": "no"}


async def test_nobody_executes_the_template(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    server = plugin(PluginReply(json={}))
    expected = {"phase": "Failed", "message": "no plugin executed the template"}
    assert await run(make_executor(server)) == expected
    assert await run(make_executor()) == expected


async def test_no_plugins_configured_as_the_controller_writes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ARGO_PLUGIN_ADDRESSES=null (controller/agent.go ``createAgentPod``) means no plugins;
    # a plugin template then fails as in Argo (workflow/executor/agent.go
    # ``executePluginTemplate``: ``no plugin executed the template``).
    from agent.service.agent import executor_settings
    from agent.service.settings import load_settings

    monkeypatch.setenv("ARGO_PLUGIN_ADDRESSES", "null")
    monkeypatch.setenv("ARGO_PLUGIN_NAMES", "null")
    settings = executor_settings(load_settings(), task_workers=4)
    async with Executor(settings=settings, secrets=StaticSecretResolver()) as executor:
        assert await run(executor) == {
            "phase": "Failed",
            "message": "no plugin executed the template",
        }


async def test_unreadable_token_file(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer], tmp_path: Path
) -> None:
    server = plugin(PluginReply(json=SUCCEEDED))
    missing = str(tmp_path / "nope")
    endpoint = PluginEndpoint(name="hello", address=server.base_url, token_path=missing)
    assert await run(make_executor(endpoint)) == {
        "phase": "Failed",
        "message": f"plugin 'hello': cannot read its token file {missing}: No such file or "
        "directory",
    }
    assert server.calls == []


async def test_invalid_reply_fails_the_node(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    server = plugin(PluginReply(text="not json"))
    result = await run(make_executor(server))
    assert result["phase"] == "Failed"
    assert result["message"].startswith("plugin 'p0' replied with invalid JSON: ")


async def test_plugins_are_exempt_from_the_deny_list(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    server = plugin(PluginReply(json=SUCCEEDED))
    executor = make_executor(server, deny_networks=("127.0.0.0/8",))
    assert await run(executor) == SUCCEEDED["node"]


async def test_plugin_field_must_name_exactly_one_plugin(make_executor: MakeExecutor) -> None:
    result = await run(make_executor(), {"plugin": {"a": {}, "b": {}}})
    assert result == {
        "phase": "Failed",
        "message": "invalid template: plugin: must name exactly one plugin, got 2 (a, b)",
    }


# -- reply decoding as Go's encoding/json does it -----------------------------------------
# Argo's agent decodes a reply with ``json.NewDecoder(resp.Body).Decode(reply)``
# (workflow/util/plugin/plugin.go ``Client.Call``) into ``ExecuteTemplateReply``
# (pkg/plugins/executor/template_executor_plugin.go), whose ``node`` is a ``NodeResult``
# (pkg/apis/workflow/v1alpha1/task_set_types.go).


async def test_parameter_values_are_any_strings(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    # pkg/apis/workflow/v1alpha1/anystring.go ``AnyString.UnmarshalJSON``: numbers as
    # strconv.FormatFloat(v, 'f', -1, 64), booleans as FormatBool, objects/arrays as "".
    values = ["1.5", "true", "null", '{"x":1}', "12345678901234567890", "1e21", "1.0",
              "-0", "[1]", '"text"', "5", "0.0000001"]  # fmt: skip
    params = ",".join(f'{{"name":"p{i}","value":{v}}}' for i, v in enumerate(values))
    body = f'{{"node":{{"phase":"Succeeded","outputs":{{"parameters":[{params}]}}}}}}'
    server = plugin(PluginReply(text=body))
    result = await run(make_executor(server))
    got = [p.get("value") for p in result["outputs"]["parameters"]]
    # Go writes a non-nil empty *AnyString as "value":""; dump leaves "" out (omitempty).
    assert got == ["1.5", "true", None, None, "12345678901234567000",
                   "1000000000000000000000", "1", "-0", None, "text", "5",
                   "0.0000001"]  # fmt: skip


async def test_unknown_node_fields_are_not_copied(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    # Go decodes into the NodeResult struct and marshals it again: unknown fields vanish.
    body = (
        '{"node":{"phase":"Succeeded","foo":1,"outputs":{"result":"r","bar":2,'
        '"parameters":[{"name":"a","value":"v","junk":true}]}},"baz":3}'
    )
    server = plugin(PluginReply(text=body))
    assert await run(make_executor(server)) == {
        "phase": "Succeeded",
        "outputs": {"result": "r", "parameters": [{"name": "a", "value": "v"}]},
    }


async def test_keys_match_case_insensitively_and_trailing_data_is_ignored(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    # encoding/json matches keys case-insensitively; Decoder.Decode reads one value only.
    server = plugin(PluginReply(text='{"Node":{"PHASE":"Succeeded","Message":"m"}} trailing'))
    assert await run(make_executor(server)) == {"phase": "Succeeded", "message": "m"}


@pytest.mark.parametrize("body", ["", "  \n"])
async def test_empty_body_fails_the_node(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer], body: str
) -> None:
    # Decode of an empty body returns io.EOF: not transient, the node fails.
    server = plugin(PluginReply(text=body))
    assert await run(make_executor(server)) == {
        "phase": "Failed",
        "message": "plugin 'p0' replied with an empty body: EOF",
    }
    assert len(server.calls) == 1


async def test_truncated_reply_is_retried(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    # A cut-short body is io.ErrUnexpectedEOF, transient for Argo's client (retried).
    server = plugin(PluginReply(text='{"node":'), PluginReply(json=SUCCEEDED))
    assert await run(make_executor(server)) == SUCCEEDED["node"]
    assert len(server.calls) == 2


@pytest.mark.parametrize(
    ("requeue", "problem"),
    [
        ("10", 'requeue: must be a Go duration string such as "30s", got a number'),
        ("true", 'requeue: must be a Go duration string such as "30s", got a boolean'),
        ('""', "requeue: invalid duration ''"),
        ('"10"', "requeue: missing or unknown unit in duration '10'"),
    ],
)
async def test_requeue_must_be_a_duration_string_even_when_succeeded(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer], requeue: str, problem: str
) -> None:
    # metav1.Duration.UnmarshalJSON accepts a JSON string only, then time.ParseDuration;
    # the decode error fails the node whatever its phase.
    server = plugin(PluginReply(text=f'{{"node":{{"phase":"Succeeded"}},"requeue":{requeue}}}'))
    assert await run(make_executor(server)) == {
        "phase": "Failed",
        "message": f"plugin 'p0' replied with an invalid {problem}",
    }


async def test_wrong_field_type_names_the_field(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    # Go: json: cannot unmarshal number into Go struct field NodeResult.node.phase ...
    server = plugin(PluginReply(text='{"node":{"phase":1}}'))
    assert await run(make_executor(server)) == {
        "phase": "Failed",
        "message": "plugin 'p0' replied with an invalid node.phase: must be a string, got a number",
    }


async def test_node_without_a_phase(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    # agent.go ``taskWorker`` reports a result only ``if result.Phase != ""`` and asks
    # again after ``requeue``: with a requeue the plugin is asked again.
    server = plugin(PluginReply(json={"node": {}, "requeue": "10ms"}), PluginReply(json=SUCCEEDED))
    assert await run(make_executor(server)) == SUCCEEDED["node"]
    assert len(server.calls) == 2
    # Without one, Argo's node would stay Pending for ever; here it fails, naming the field.
    lone = plugin(PluginReply(json={"node": {"message": "thinking"}}))
    assert await run(make_executor(lone)) == {
        "phase": "Failed",
        "message": "plugin 'p0' replied with a node without a phase (node.phase) and no requeue",
    }


async def test_top_level_null_passes_to_the_next_plugin(
    make_executor: MakeExecutor, plugin: Callable[..., PluginServer]
) -> None:
    first = plugin(PluginReply(text="null"))
    second = plugin(PluginReply(json=SUCCEEDED))
    assert await run(make_executor(first, second)) == SUCCEEDED["node"]


async def test_intermediate_replies_are_reported_then_replaced(
    plugin: Callable[..., PluginServer], token_file: str
) -> None:
    # agent.go ``taskWorker``: every result with a phase goes to the patcher, and a
    # non-Succeeded one with ``requeue`` is asked again; so the workflow shows the plugin's
    # Running phase, message and progress until the final result replaces them.
    running = {"node": {"phase": "Running", "message": "working", "progress": "1/2"}}
    server = plugin(PluginReply(json={**running, "requeue": "10ms"}), PluginReply(json=SUCCEEDED))
    sink = ListSink()
    endpoint = PluginEndpoint(name="hello", address=server.base_url, token_path=token_file)
    settings = ExecutorSettings(plugins=(endpoint,), ca_dir=None)
    engine: Engine | None = None

    def on_progress(ref: TaskRef, result: Any) -> None:
        assert engine is not None
        engine.progress(ref, result)

    async with Executor(
        settings=settings, secrets=StaticSecretResolver(), on_progress=on_progress
    ) as executor:
        engine = Engine(runner=executor, sink=sink, max_in_flight=4)
        loop = asyncio.create_task(engine.run())
        key = TaskSetKey("argo", "my-wf")
        engine.observe(TaskSetSnapshot(key=key, tasks={"n": TEMPLATE}, nodes={}))
        await asyncio.sleep(0)  # let the engine dispatch the node
        await engine.wait_idle()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert [dump(result) for _, result in sink.results] == [running["node"], SUCCEEDED["node"]]
    # The final result replaces the intermediate entry field by field (no stale progress).
    assert sink.overwritten == ["n"]
