"""The simulator as a separate process (``python -m agent_sim``) and its ``/_sim`` admin API.

End-to-end tests run the agent and the simulator as real processes, so the process must
announce its URL on stdout, write a kubeconfig kubernetes_asyncio loads, obey SIGTERM,
and expose every fault and the request log over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflowtasksets"
TOKEN = "process-token"
GUARD = 30


@dataclass
class Running:
    process: asyncio.subprocess.Process
    url: str
    admin: str
    kubeconfig: Path


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    kubeconfig = tmp_path / "kubeconfig"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_sim",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--token",
        TOKEN,
        "--bookmark-interval",
        "0.1",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(GUARD):
            ready = json.loads(await process.stdout.readline())
        assert ready["kubeconfig"] == str(kubeconfig)
        assert ready["pid"] == process.pid
        yield Running(process, ready["url"], ready["admin"], kubeconfig)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def crd(running: Running) -> AsyncIterator[client.CustomObjectsApi]:
    api_client = await config.new_client_from_config(config_file=str(running.kubeconfig))
    yield client.CustomObjectsApi(api_client)
    await api_client.close()


def taskset(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowTaskSet",
        "metadata": {"name": name},
        "spec": {"tasks": {"n1": {"http": {"url": "http://a"}}}},
    }


async def admin(running: Running, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, running.admin + path, json=body) as resp:
            return resp.status, await resp.json()


async def test_process_serves_the_api_and_stops_on_sigterm(
    running: Running, crd: client.CustomObjectsApi
) -> None:
    """The process prints its URL as one JSON line, serves the kubeconfig's token and
    exits 0 on SIGTERM."""
    assert running.url.startswith("http://127.0.0.1:")
    created = await crd.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, taskset("wf")
    )
    status, info = await admin(running, "GET", "/info")
    assert status == 200
    assert info["objects"]["workflowtasksets"] == 1
    assert info["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert info["url"] == running.url
    running.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(GUARD):
        assert await running.process.wait() == 0


async def test_admin_fault_and_request_log(running: Running, crd: client.CustomObjectsApi) -> None:
    """Fault injection over HTTP: fail the next status patch with 429 + Retry-After, then
    read the exact requests back with ``since`` polling."""
    await crd.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, taskset("wf"))
    status, _ = await admin(running, "GET", "/requests")
    assert status == 200
    _, first = await admin(running, "GET", "/requests")
    mark = first["next"]
    status, rule = await admin(
        running,
        "POST",
        "/faults/fail",
        {"code": 429, "retryAfter": 2, "verb": "patch", "resource": "workflowtasksets/status"},
    )
    assert status == 201 and rule["count"] == 1
    patch = {"status": {"nodes": {"n1": {"phase": "Succeeded"}}}}
    with pytest.raises(ApiException) as caught:
        await crd.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "wf",
            patch,
            _content_type="application/merge-patch+json",
        )
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == "2"
    status, waited = await admin(running, "GET", f"/requests/wait?verb=patch&since={mark}")
    assert status == 200 and waited["request"]["status"] == 429
    await crd.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "wf",
        patch,
        _content_type="application/merge-patch+json",
    )
    _, log = await admin(running, "GET", f"/requests?since={mark}")
    patches = [r for r in log["requests"] if r["verb"] == "patch"]
    assert [(r["status"], r["contentType"], json.loads(r["body"])) for r in patches] == [
        (429, "application/merge-patch+json", patch),
        (200, "application/merge-patch+json", patch),
    ]
    assert all(r["seq"] > mark for r in log["requests"])


async def test_admin_tokens_rules_and_validation(running: Running, tmp_path: Path) -> None:
    """Tokens with narrow RBAC rules can be added over HTTP; a bad admin body is a 400
    naming the field."""
    status, added = await admin(
        running,
        "POST",
        "/tokens",
        {
            "token": "reader",
            "user": "alice",
            "rules": [{"verbs": ["get"], "resources": ["secrets"]}],
        },
    )
    assert status == 201 and added["user"] == "alice"
    status, error = await admin(running, "POST", "/faults/fail", {"code": 500, "count": 0})
    assert status == 400 and "count" in error["error"]
    status, error = await admin(
        running,
        "POST",
        "/tokens",
        {"token": "x", "rules": [{"verbs": ["fly"], "resources": ["secrets"]}]},
    )
    assert status == 400 and "verbs" in error["error"]
    url = running.url + f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer reader"}) as http:
        async with http.get(url) as resp:
            assert resp.status == 403
            assert (
                'User "alice" cannot list resource "workflowtasksets"'
                in (await resp.json())["message"]
            )
    status, _ = await admin(running, "DELETE", "/tokens/reader")
    assert status == 200
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer reader"}) as http:
        async with http.get(url) as resp:
            assert resp.status == 401


async def test_admin_drop_compact_and_options(running: Running) -> None:
    """Watches can be dropped and history compacted from another process: the dropped
    stream ends cleanly and re-watching from the old version gets 410 Expired."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = running.url + f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
    status, options = await admin(running, "PATCH", "/options", {"maxBodyBytes": 1000})
    assert status == 200 and options["maxBodyBytes"] == 1000
    async with aiohttp.ClientSession(headers=headers) as http, asyncio.timeout(GUARD):
        async with http.post(base, json=taskset("wf")) as resp:
            assert resp.status == 201
            old = (await resp.json())["metadata"]["resourceVersion"]
        async with http.get(f"{base}?watch=1&resourceVersion={old}") as stream:
            assert await admin(running, "GET", "/watches/wait?count=1") == (200, {"watches": 1})
            status, dropped = await admin(running, "POST", "/watches/drop", {})
            assert (status, dropped) == (200, {"dropped": 1})
            assert await stream.read() == b""
        async with http.patch(
            f"{base}/wf",
            data=json.dumps({"metadata": {"labels": {"a": "b"}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        ) as resp:
            assert resp.status == 200
        status, _ = await admin(running, "POST", "/compact")
        assert status == 200
        async with http.get(f"{base}?watch=1&resourceVersion={old}") as stream:
            [line] = (await stream.read()).splitlines()
        error = json.loads(line)
        assert (error["type"], error["object"]["code"], error["object"]["reason"]) == (
            "ERROR",
            410,
            "Expired",
        )
        async with http.post(base, json={**taskset("big"), "spec": {"x": "y" * 2000}}) as resp:
            assert resp.status == 413
