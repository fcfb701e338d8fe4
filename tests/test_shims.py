"""agent.shims: each private-attribute use works on the installed httpx and aiohttp, and a
release that drops one stops ``run`` and ``local`` with a message naming it.

A missing attribute is simulated with stand-in classes handed to the real :func:`check`
(it takes the classes to inspect as parameters), so the checking code itself is tested.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import httpcore
import httpx
import pytest

from agent import shims
from agent.executor.transport import AgentClient
from agent.service import run

ROOT = Path(__file__).resolve().parents[1]


def _declared(package: str) -> str:
    """The range pyproject.toml declares for ``package``, as the message spells it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        if requirement.startswith(package):
            return str(requirement.replace(" ", ""))
    raise LookupError(package)


def _expected(package: str, attribute: str, problem: str = "is gone") -> str:
    return (
        f"{package} {importlib.metadata.version(package)}: {attribute} {problem}; "
        f"this agent is tested with {_declared(package)} (see constraints.txt)"
    )


# --- stand-ins: an imagined release without one of the names ------------------------------


class ClientWithoutBuildRedirect:
    def __init__(self) -> None:
        self._cookies = httpx.Cookies()
        self._transport = httpx.AsyncHTTPTransport()

    def _redirect_method(self, request: httpx.Request, response: httpx.Response) -> str:
        return request.method


class ClientWithoutCookies(ClientWithoutBuildRedirect):
    def __init__(self) -> None:
        self._transport = httpx.AsyncHTTPTransport()

    def _build_redirect_request(
        self, request: httpx.Request, response: httpx.Response
    ) -> httpx.Request:
        return request


class ClientWithAnotherRedirectHook(ClientWithoutCookies):
    def __init__(self) -> None:
        super().__init__()
        self._cookies = httpx.Cookies()

    def _redirect_method(self, response: httpx.Response) -> str:  # type: ignore[override]
        return "GET"


class TransportWithoutPool:
    pass


class SessionWithoutRetrySwitch:
    def __init__(self) -> None:
        self._trust_env = True

    async def close(self) -> None:
        return None


class SessionWithoutTrustEnv:
    __slots__ = ("_retry_connection",)

    def __init__(self) -> None:
        self._retry_connection = True

    async def close(self) -> None:
        return None


class ConnectorWithoutConnectionHook:
    pass


class ConnectorWithAnotherConnectionHook:
    async def _wrap_create_connection(self, *args: Any, addr_infos: Any, req: Any) -> None:
        return None


# --- check ---------------------------------------------------------------------------------


def test_check_passes_on_the_installed_versions() -> None:
    shims.check()


def test_check_passes_in_a_child_process() -> None:
    shims.check_in_child()


@pytest.mark.parametrize(
    ("classes", "package", "attribute", "problem"),
    [
        (
            {"async_client": ClientWithoutBuildRedirect},
            "httpx",
            "httpx.AsyncClient._build_redirect_request",
            "is gone",
        ),
        ({"async_client": ClientWithoutCookies}, "httpx", "httpx.AsyncClient._cookies", "is gone"),
        (
            {"async_client": ClientWithAnotherRedirectHook},
            "httpx",
            "httpx.AsyncClient._redirect_method",
            "no longer takes (request, response)",
        ),
        (
            {"http_transport": TransportWithoutPool},
            "httpx",
            "httpx.AsyncHTTPTransport._pool",
            "is gone",
        ),
        (
            {"client_session": SessionWithoutRetrySwitch},
            "aiohttp",
            "aiohttp.ClientSession._retry_connection",
            "is gone",
        ),
        (
            {"client_session": SessionWithoutTrustEnv},
            "aiohttp",
            "aiohttp.ClientSession._trust_env",
            "is gone",
        ),
        (
            {"tcp_connector": ConnectorWithoutConnectionHook},
            "aiohttp",
            "aiohttp.TCPConnector._wrap_create_connection",
            "is gone",
        ),
        (
            {"tcp_connector": ConnectorWithAnotherConnectionHook},
            "aiohttp",
            "aiohttp.TCPConnector._wrap_create_connection",
            "no longer takes (args, addr_infos, req, timeout, client_error, kwargs)",
        ),
    ],
)
def test_a_missing_attribute_is_named_with_package_version_and_range(
    classes: dict[str, type[Any]], package: str, attribute: str, problem: str
) -> None:
    with pytest.raises(shims.ShimError) as caught:
        shims.check(**classes)
    assert str(caught.value) == _expected(package, attribute, problem)


def test_the_message_matches_the_documented_form() -> None:
    with pytest.raises(shims.ShimError) as caught:
        shims.check(async_client=ClientWithoutBuildRedirect)
    version = importlib.metadata.version("httpx")
    assert str(caught.value) == (
        f"httpx {version}: httpx.AsyncClient._build_redirect_request is gone; "
        "this agent is tested with httpx>=0.28,<0.29 (see constraints.txt)"
    )


# --- the start-up of run and local ---------------------------------------------------------


def _failing_check(**classes: type[Any]) -> functools.partial[None]:
    # The real check, on an imagined httpx release.
    return functools.partial(shims.check, **classes)


def test_run_exits_2_naming_the_attribute(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shims, "check", _failing_check(async_client=ClientWithoutBuildRedirect))
    assert run.main(["--processes", "1"]) == 2
    expected = _expected("httpx", "httpx.AsyncClient._build_redirect_request")
    assert capsys.readouterr().err == f"argo-http-agent run: {expected}\n"


def test_run_as_a_supervisor_checks_in_a_child(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(shims, "check", lambda: calls.append("here"))
    monkeypatch.setattr(shims, "check_in_child", lambda: calls.append("child"))
    run.check_dependencies(supervisor=True)
    run.check_dependencies(supervisor=False)
    assert calls == ["child", "here"]


def test_local_exits_2_naming_the_attribute(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from agent.service import local

    monkeypatch.setattr(shims, "check", _failing_check(http_transport=TransportWithoutPool))
    with pytest.raises(SystemExit) as exited:
        local.main([str(tmp_path / "never-read.yaml")])
    assert exited.value.code == 2
    expected = _expected("httpx", "httpx.AsyncHTTPTransport._pool")
    assert capsys.readouterr().err == f"argo-http-agent local: {expected}\n"


def test_importing_the_shims_loads_neither_httpx_nor_aiohttp() -> None:
    # run.py imports them in the supervisor, which never loads the agent's libraries.
    code = "import agent.shims, json, sys; print(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = {name.partition(".")[0] for name in json.loads(completed.stdout)}
    assert not loaded & {"httpx", "httpcore", "aiohttp"}


# --- each shim on real objects -------------------------------------------------------------


async def test_set_pool_runs_the_transport_on_that_pool() -> None:
    backend = httpcore.AsyncMockBackend([b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npool"])
    transport = httpx.AsyncHTTPTransport()
    shims.set_pool(transport, httpcore.AsyncConnectionPool(network_backend=backend))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("http://pool.invalid/")
    assert response.text == "pool"


async def test_replace_cookie_store_keeps_the_subclass() -> None:
    class Store(httpx.Cookies):
        pass

    store = Store()
    async with httpx.AsyncClient() as client:
        shims.replace_cookie_store(client, store)
        assert client.cookies is store


async def test_client_transport_is_the_one_given() -> None:
    transport = httpx.AsyncHTTPTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        assert shims.client_transport(client) is transport


@pytest.mark.parametrize(
    ("client_class", "method"),
    [(httpx.AsyncClient, "PUT"), (AgentClient, "GET")],  # Go: 301 turns PUT into GET
)
async def test_build_redirect_request_uses_the_clients_redirect_hook(
    client_class: type[httpx.AsyncClient], method: str
) -> None:
    request = httpx.Request("PUT", "http://origin.invalid/a", content=b"body")
    response = httpx.Response(301, headers={"Location": "/b"}, request=request)
    async with client_class() as client:
        following = shims.build_redirect_request(client, request, response)
    assert (following.method, str(following.url)) == (method, "http://origin.invalid/b")


async def test_disable_trust_env() -> None:
    async with aiohttp.ClientSession(trust_env=True) as session:
        shims.disable_trust_env(session)
        assert session.trust_env is False


async def test_disable_retry_connection_sends_a_request_once() -> None:
    """A kept-alive connection that the server drops: aiohttp would resend the GET."""
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        served = 0
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                requests += 1
                served += 1
                if served > 1:  # the second request on this connection: drop it unanswered
                    break
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            shims.disable_retry_connection(session)
            async with session.get(f"http://127.0.0.1:{port}/") as response:
                assert await response.text() == "ok"
            with pytest.raises(aiohttp.ServerDisconnectedError):
                async with session.get(f"http://127.0.0.1:{port}/"):
                    pass
    finally:
        server.close()
        await server.wait_closed()
    assert requests == 2
