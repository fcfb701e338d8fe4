"""The end-to-end scenarios that need no fault injection, against a REAL cluster.

Set ``E2E_KUBECONFIG`` to a kubeconfig whose current context may create and delete
``workflowtasksets`` and ``secrets`` in ``E2E_NAMESPACE`` (default ``argo-http-agent-e2e``,
which must exist) on a cluster that has the WorkflowTaskSet CRD (Argo, or ``crds/``). The
agent runs on this machine (as a process) and its HTTP targets on 127.0.0.1, so only the
API server is remote. Without ``E2E_KUBECONFIG`` the module is skipped and pytest prints why
(no real API server can run on the development machines; the same scenarios run against
the simulator in ``tests/test_cluster_e2e.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from tests.agentproc import free_port, http_task, taskset
from tests.servers import TargetServer

KUBECONFIG = os.environ.get("E2E_KUBECONFIG", "")
NAMESPACE = os.environ.get("E2E_NAMESPACE", "argo-http-agent-e2e")
GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflowtasksets"

pytestmark = pytest.mark.skipif(
    not KUBECONFIG,
    reason="E2E_KUBECONFIG is not set: no real cluster here (the simulator suite covers these)",
)


@pytest.fixture
async def api() -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=KUBECONFIG, client_configuration=configuration)
    async with client.ApiClient(configuration=configuration) as api_client:
        yield api_client


class RealAgent:
    """`argo-http-agent run` against the real cluster's kubeconfig."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.log = Path(tempfile.mkdtemp(prefix="agent-real-")) / "agent.log"
        self.args = [
            "--kubeconfig", KUBECONFIG, "--metrics-host", "127.0.0.1",
            "--metrics-port", str(self.port), "--log-format", "text", *args,
        ]  # fmt: skip
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> RealAgent:
        self._out = open(self.log, "wb")  # closed in __aexit__
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", "run", *self.args,
            stdout=self._out, stderr=self._out, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.terminate()
        await asyncio.wait_for(self.proc.wait(), 60)
        self._out.close()


async def create(api: client.ApiClient, body: dict[str, Any]) -> None:
    body = json.loads(json.dumps(body))
    body["metadata"]["namespace"] = NAMESPACE
    body["metadata"].pop("ownerReferences", None)  # no Workflow to own it here
    await client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, body
    )


async def nodes_of(api: client.ApiClient, name: str) -> Mapping[str, Any]:
    obj = await client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, name
    )
    return (obj.get("status") or {}).get("nodes") or {}


async def wait_nodes(api: client.ApiClient, name: str, ids: list[str]) -> Mapping[str, Any]:
    deadline = time.monotonic() + 60
    nodes: Mapping[str, Any] = {}
    while time.monotonic() < deadline:
        nodes = await nodes_of(api, name)
        if all(nodes.get(i, {}).get("phase") not in (None, "Pending", "Running") for i in ids):
            return nodes
        await asyncio.sleep(0.2)
    raise AssertionError(f"{ids} not fulfilled: {nodes}")


async def delete(api: client.ApiClient, name: str) -> None:
    try:
        await client.CustomObjectsApi(api).delete_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, name
        )
    except ApiException as exc:
        if exc.status != 404:
            raise


async def test_results_and_tasks_added_over_time(api: client.ApiClient) -> None:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    with TargetServer() as target:
        async with RealAgent("--namespace", NAMESPACE):
            try:
                await create(api, taskset(name, {
                    "ok": http_task(target.url("/status/200")),
                    "bad": http_task(target.url("/status/503")),
                }))  # fmt: skip
                nodes = await wait_nodes(api, name, ["ok", "bad"])
                assert nodes["ok"] == {"phase": "Succeeded", "outputs": {"result": "status 200"}}
                assert nodes["bad"]["message"] == "received non-2xx response code: 503"
                await client.CustomObjectsApi(api).patch_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, PLURAL, name,
                    {"spec": {"tasks": {"later": http_task(target.url("/status/201"))}}},
                    _content_type="application/merge-patch+json",
                )  # fmt: skip
                nodes = await wait_nodes(api, name, ["later"])
                assert nodes["later"]["phase"] == "Succeeded"
            finally:
                await delete(api, name)


async def test_per_workflow_mode_exits_when_completed(api: client.ApiClient) -> None:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    with TargetServer() as target:
        await create(api, taskset(name, {"n": http_task(target.url("/status/200"))}))
        try:
            agent = RealAgent("--namespace", NAMESPACE, "--workflow", name)
            async with agent:
                await wait_nodes(api, name, ["n"])
                await client.CustomObjectsApi(api).patch_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, PLURAL, name,
                    {"metadata": {"labels": {"workflows.argoproj.io/completed": "true"}}},
                    _content_type="application/merge-patch+json",
                )  # fmt: skip
                assert agent.proc is not None
                assert await asyncio.wait_for(agent.proc.wait(), 30) == 0
        finally:
            await delete(api, name)
