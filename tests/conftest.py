"""Shared fixtures: real servers on 127.0.0.1 (see :mod:`tests.servers`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from agent_sim import ApiSimulator
from kubernetes_asyncio import client

from agent.kube.client import connect
from tests.agentproc import TOKEN
from tests.s3server import moto_s3, moto_s3_auth, moto_s3_tls  # noqa: F401 - S3 fixtures
from tests.servers import RawHandler, RawServer, TargetServer, TestCA


@pytest.fixture(scope="session")
def test_ca() -> Iterator[TestCA]:
    ca = TestCA()
    yield ca
    ca.cleanup()


@pytest.fixture(scope="session")
def target() -> Iterator[TargetServer]:
    """A plain-HTTP target server shared by the whole session."""
    with TargetServer() as server:
        yield server


@pytest.fixture(scope="session")
def tls_target(test_ca: TestCA) -> Iterator[TargetServer]:
    """An HTTPS target whose certificate (localhost, 127.0.0.1) is signed by ``test_ca``."""
    with TargetServer(tls=test_ca) as server:
        yield server


@pytest.fixture
def raw_server() -> Iterator[Callable[[RawHandler], RawServer]]:
    """Start :class:`RawServer` listeners; all are closed after the test."""
    servers: list[RawServer] = []

    def start(handler: RawHandler) -> RawServer:
        server = RawServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def sim() -> AsyncIterator[ApiSimulator]:
    """A fresh Kubernetes API simulator; ``tests.agentproc.TOKEN`` has every permission."""
    async with ApiSimulator(bookmark_interval=0.5) as server:
        server.add_token(TOKEN)
        yield server


@pytest.fixture
async def api(sim: ApiSimulator, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    """An API client of the agent's own making, talking to ``sim`` with every permission."""
    api_client = await connect(kubeconfig=str(sim.kubeconfig(tmp_path / "kc", token=TOKEN)))
    try:
        yield api_client
    finally:
        await api_client.close()
