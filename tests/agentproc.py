"""The agent as a real process, for end-to-end tests: start, wait ready, signal, collect logs.

Tests run the simulator in their own event loop (:class:`agent_sim.ApiSimulator`) and the
agent as ``python -m agent run`` against a kubeconfig written for it, so everything between
them crosses real HTTP, exactly as in a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
from agent_sim import ApiSimulator, Rule, service_account_user
from agent_sim.samples import http_task, workflow
from agent_sim.samples import workflow_taskset as taskset

__all__ = [
    "AgentProcess",
    "add_argo_agent_token",
    "free_port",
    "http_task",
    "owner_workflow",
    "taskset",
    "wait_for_nodes",
]

TOKEN = "e2e-token"


def owner_workflow(
    sim: ApiSimulator,
    name: str,
    *,
    namespace: str = "argo",
    service_account: str | None = None,
    secrets: Iterable[str] = (),
) -> str:
    """Create the Workflow that owns taskset ``name`` (as the controller has persisted it)
    and let its service account get ``secrets``; returns its UID for ``taskset(...,
    owner_uid=...)``. The default secret authority asks about that account."""
    created = sim.create_object(
        "workflows", workflow(name, namespace=namespace, service_account=service_account)
    )
    names = tuple(secrets)
    if names:
        sim.grant(
            [Rule.of("get", "secrets", namespaces=namespace, resource_names=names)],
            user=service_account_user(namespace, service_account or "default"),
        )
    return str(created["metadata"]["uid"])


def add_argo_agent_token(
    sim: ApiSimulator, token: str, *, namespace: str = "argo", service_account: str = "wf-sa"
) -> None:
    """``token`` for the workflow's service account with what Argo's agent role grants it
    (list and watch tasksets, patch their status) and the ``get secrets`` its HTTP headers
    need: per-workflow mode's whole authority."""
    sim.add_token(
        token,
        [
            Rule.of("get list watch", "workflowtasksets", namespaces=namespace),
            Rule.of("patch", "workflowtasksets/status", namespaces=namespace),
            Rule.of("get", "secrets", namespaces=namespace),
        ],
        user=service_account_user(namespace, service_account),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AgentProcess:
    """``argo-http-agent run`` in a subprocess, with its stderr kept in a file."""

    def __init__(
        self,
        sim: ApiSimulator,
        *args: str,
        token: str = TOKEN,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
    ) -> None:
        self._dir = Path(workdir or tempfile.mkdtemp(prefix="agent-e2e-"))
        self.kubeconfig = sim.kubeconfig(self._dir / "kubeconfig", token=token)
        self.port = free_port()
        self.args = [
            "--kubeconfig",
            str(self.kubeconfig),
            "--metrics-host",
            "127.0.0.1",
            "--metrics-port",
            str(self.port),
            "--log-format",
            "text",
            *args,
        ]
        self.env = {**os.environ, "ARGO_AGENT_CA_DIR": str(self._dir / "no-ca"), **(env or {})}
        self.log_path = self._dir / "agent.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> AgentProcess:
        self._log = open(self.log_path, "wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent",
            "run",
            *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=self.env,
        )
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.get(self.url + path)

    async def post_status(self, path: str) -> int:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.post(self.url + path)).status_code

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.returncode is not None:
                raise AssertionError(f"agent exited early ({self.proc.returncode}):\n{self.logs()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await self.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError(f"agent not ready after {timeout}s:\n{self.logs()}")

    async def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"agent still running after {timeout}s:\n{self.logs()}") from None

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            return await self.wait_exit(timeout)
        finally:
            self._log.close()

    async def kill(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._log.close()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    async def __aenter__(self) -> AgentProcess:
        await self.start()
        await self.wait_ready()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            await self.stop()


async def wait_for_nodes(
    sim: ApiSimulator,
    name: str,
    node_ids: Iterable[str],
    *,
    namespace: str = "argo",
    timeout: float = 30.0,
    fulfilled: bool = True,
) -> dict[str, Any]:
    """Poll the taskset until every node has a (fulfilled) status entry; return status.nodes."""
    wanted = set(node_ids)
    deadline = time.monotonic() + timeout
    nodes: dict[str, Any] = {}
    while time.monotonic() < deadline:
        obj = sim.find_object("workflowtasksets", name, namespace=namespace) or {}
        nodes = (obj.get("status") or {}).get("nodes") or {}
        done = {
            n
            for n, v in nodes.items()
            if not fulfilled or v.get("phase") not in ("Pending", "Running", None)
        }
        if wanted <= done:
            return dict(nodes)
        await asyncio.sleep(0.02)
    raise AssertionError(f"nodes {sorted(wanted)} not fulfilled after {timeout}s; status: {nodes}")
