"""The cluster's secret resolver against the API simulator over real HTTP.

It follows Argo's ``util.GetSecrets`` (util/util.go): a read failing with a transient
error (util/errors/errors.go ``IsTransientErr``: 429, 503, 504, ServerTimeout, network
errors) is tried again, 5 attempts in all (util/retry/retry.go ``DefaultRetry``); other
errors fail at once. And the header value is the Secret's raw bytes (agent.go
``executeHTTPTemplateRequest``: ``value = string(secret)``), checked on the wire.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agent_sim import ApiSimulator
from kubernetes_asyncio import client, config

from agent.core.refs import TaskRef
from agent.core.secrets import SecretError
from agent.executor.executor import Executor
from agent.executor.settings import ExecutorSettings
from agent.kube.secrets import KubeSecretResolver
from tests.agentproc import TOKEN

NS = "argo"
RAW = b"\xff\xfetok\xe9n"  # not UTF-8: Argo sends these bytes as they are


@pytest.fixture
async def api(sim: ApiSimulator, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    sim.create_object(
        "secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": NS},
            "data": {"token": base64.b64encode(RAW).decode(), "plain": "dG9rZW4="},
        },
    )
    kubeconfig = sim.kubeconfig(tmp_path / "kc", token=TOKEN)
    api_client = await config.new_client_from_config(config_file=str(kubeconfig))
    yield api_client
    await api_client.close()


def resolver(api: client.ApiClient) -> KubeSecretResolver:
    return KubeSecretResolver(api=api, ttl=0, backoff_seconds=0.001)


@pytest.mark.parametrize("code", [429, 503, 504])
async def test_transient_errors_are_retried(
    sim: ApiSimulator, api: client.ApiClient, code: int
) -> None:
    sim.fail_next(4, code=code, verb="get", resource="secrets")
    value = await resolver(api).get_secret_value(namespace=NS, name="creds", key="plain")
    assert value == "token"
    assert [r.status for r in sim.requests(verb="get", resource="secrets")] == [code] * 4 + [200]


async def test_retries_stop_after_five_attempts(sim: ApiSimulator, api: client.ApiClient) -> None:
    sim.fail_next(5, code=503, verb="get", resource="secrets", message="etcd is sad")
    with pytest.raises(SecretError, match="cannot read secret 'creds': 503 etcd is sad"):
        await resolver(api).get_secret_value(namespace=NS, name="creds", key="plain")
    assert len(sim.requests(verb="get", resource="secrets")) == 5


@pytest.mark.parametrize("code", [403, 404, 500])
async def test_other_errors_are_not_retried(
    sim: ApiSimulator, api: client.ApiClient, code: int
) -> None:
    sim.fail_next(1, code=code, verb="get", resource="secrets")
    with pytest.raises(SecretError):
        await resolver(api).get_secret_value(namespace=NS, name="creds", key="plain")
    assert len(sim.requests(verb="get", resource="secrets")) == 1


async def _sent_request(api: client.ApiClient, transport: str, header: dict[str, Any]) -> bytes:
    """The raw request head a template with ``header`` sends, read by a loopback server."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    template = {"http": {"url": f"http://127.0.0.1:{port}/", "headers": [header]}}
    settings = ExecutorSettings(ca_dir=None, deny_networks=(), transport=transport)  # type: ignore[arg-type]
    ref = TaskRef(namespace=NS, taskset="wf", node_id="n", workflow_uid="u")
    try:
        async with Executor(settings=settings, secrets=resolver(api)) as executor:
            result = await executor.run(template, ref=ref)
    finally:
        server.close()
        await server.wait_closed()
    assert str(result.phase) == "Succeeded", result.message
    return received[0]


@pytest.mark.parametrize("transport", ["http1", "aiohttp", "httpcore"])
async def test_the_header_carries_the_secrets_raw_bytes(
    api: client.ApiClient, transport: str
) -> None:
    """Bytes that are not UTF-8 cannot pass aiohttp (it writes header text as UTF-8): the
    aiohttp transport sends such a request on httpx's own HTTP/1.1 pool."""
    header = {"name": "X-Token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}
    sent = await _sent_request(api, transport, header)
    assert b"\r\nX-Token: " + RAW + b"\r\n" in sent


@pytest.mark.parametrize("transport", ["http1", "aiohttp", "httpcore"])
async def test_a_non_ascii_template_value_is_sent_as_its_utf8_bytes(
    api: client.ApiClient, transport: str
) -> None:
    """Go sends the bytes of the Go string: a template's text as UTF-8, once."""
    sent = await _sent_request(api, transport, {"name": "X-Name", "value": "café"})
    assert b"\r\nX-Name: caf\xc3\xa9\r\n" in sent
