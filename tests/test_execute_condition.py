"""``successCondition``: Argo's texts and Argo's exact expression scope, on both transports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.core.model import dump
from agent.core.refs import TaskRef
from agent.executor.executor import Executor
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import ExecutorSettings
from tests.servers import TargetServer

REF = TaskRef(namespace="argo", taskset="wf", node_id="wf-1")


@pytest.fixture(params=["http1", "aiohttp", "httpcore"])
async def executor(request: pytest.FixtureRequest) -> AsyncIterator[Executor]:
    settings = ExecutorSettings(transport=request.param, ca_dir=None, default_timeout_seconds=10)
    secrets = StaticSecretResolver({("argo", "creds"): {"token": "t0ken"}})
    async with Executor(settings=settings, secrets=secrets) as executor:
        yield executor


async def check(executor: Executor, condition: str, **http: Any) -> dict[str, Any]:
    return dump(await executor.run({"http": {**http, "successCondition": condition}}, ref=REF))


async def test_true_condition_succeeds(executor: Executor, target: TargetServer) -> None:
    result = await check(
        executor,
        "response.statusCode == 201 && response.body == 'made'",
        url=target.url("/respond?status=201&body=made"),
    )
    assert result == {"phase": "Succeeded", "outputs": {"result": "made"}}


async def test_condition_overrides_the_2xx_rule(executor: Executor, target: TargetServer) -> None:
    result = await check(executor, "response.statusCode == 404", url=target.url("/status/404"))
    assert result == {"phase": "Succeeded", "outputs": {"result": "status 404"}}


async def test_false_condition_fails_with_argo_text_and_keeps_the_body(
    executor: Executor, target: TargetServer
) -> None:
    result = await check(executor, "response.statusCode == 201", url=target.url("/status/200"))
    assert result == {
        "phase": "Failed",
        "message": "successCondition 'response.statusCode == 201' evaluated false",
        "outputs": {"result": "status 200"},
    }


async def test_response_headers_are_go_canonical_lists(
    executor: Executor, target: TargetServer
) -> None:
    url = target.url("/respond?header=x-custom-thing:a&header=X-CUSTOM-THING:b")
    condition = (
        'response.headers["X-Custom-Thing"] == ["a", "b"]'
        ' && response.headers["Content-Type"][0] startsWith "text/plain"'
        ' && !("x-custom-thing" in response.headers)'
    )
    assert (await check(executor, condition, url=url))["phase"] == "Succeeded"


async def test_decompressed_response_hides_the_encoding_headers(
    executor: Executor, target: TargetServer
) -> None:
    condition = (
        'response.body == "zipped" && !("Content-Encoding" in response.headers)'
        ' && !("Content-Length" in response.headers)'
    )
    result = await check(executor, condition, url=target.url("/gzip?body=zipped"))
    assert result == {"phase": "Succeeded", "outputs": {"result": "zipped"}}


async def test_request_scope_is_the_template_as_argo_passes_it(
    executor: Executor, target: TargetServer
) -> None:
    """src: workflow/executor/agent.go executeHTTPTemplate builds ``request`` from the
    template; ``headers`` is pkg/apis/workflow/v1alpha1/http_types.go
    ``HTTPHeaders.ToHeader``: ``outHeader[header.Name] = []string{header.Value}`` (the name
    as written, not canonical; the last value of a repeated name) for every header whose
    ``ValueFrom`` is nil (``valueFrom: {}`` is not nil: left out, yet sent with its value)."""
    url = target.url("/echo")
    condition = (
        f'request.method == "" && request.url == "{url}" && request.body == "text"'
        " && request.bodyBytes == nil"
        ' && request.headers["X-A"] == ["3"] && request.headers["x-a"] == ["4"]'
        ' && request.headers["X-B"] == ["2"] && !("X-S" in request.headers)'
        ' && !("X-E" in request.headers) && len(request.headers) == 3'
        ' && response.body contains "sent"'
    )
    result = await check(
        executor,
        condition,
        url=url,
        body="text",
        headers=[
            {"name": "X-A", "value": "1"},
            {"name": "X-B", "value": "2"},
            {"name": "X-A", "value": "3"},
            {"name": "x-a", "value": "4"},
            {"name": "X-S", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "X-E", "value": "sent", "valueFrom": {}},
        ],
    )
    assert result["phase"] == "Succeeded", result


async def test_request_body_bytes_are_the_decoded_bytes(
    executor: Executor, target: TargetServer
) -> None:
    condition = "len(request.bodyBytes) == 5 && request.bodyBytes[0] == 104 && request.body == ''"
    result = await check(
        executor, condition, url=target.url("/echo"), method="POST", bodyFrom={"bytes": "aGVsbG8="}
    )
    assert result["phase"] == "Succeeded", result


async def test_evaluation_error_fails_without_outputs(
    executor: Executor, target: TargetServer
) -> None:
    result = await check(executor, "response.statusCode ==", url=target.url("/status/200"))
    assert result["phase"] == "Failed" and "outputs" not in result
    assert result["message"]


async def test_non_boolean_result_fails_with_argo_text(
    executor: Executor, target: TargetServer
) -> None:
    result = await check(executor, "response.body", url=target.url("/status/200"))
    assert result == {
        "phase": "Failed",
        "message": "unable to cast expression result 'status 200' to bool",
    }
