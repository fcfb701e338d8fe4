"""The outbound deny list: checked on the resolved address, literal IPs and every redirect.

Tests deny loopback networks so they need nothing but 127.0.0.1; a hostname
(``localhost``) proves the check happens after DNS resolution, not on the URL text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agent.core.model import dump
from agent.core.refs import TaskRef
from agent.executor.executor import Executor
from agent.executor.policy import OutboundPolicy, PolicyDenied
from agent.executor.settings import DEFAULT_DENY_NETWORKS, ExecutorSettings
from tests.executors import executor_factory
from tests.servers import TargetServer

REF = TaskRef(namespace="argo", taskset="wf", node_id="wf-1")


@pytest.fixture(params=["http1", "aiohttp", "httpcore"])
async def make_executor(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Executor]]:
    defaults = {"transport": request.param, "ca_dir": None, "default_timeout_seconds": 10}
    async with executor_factory(**defaults) as build:

        def make(deny: tuple[str, ...]) -> Executor:
            return build(deny_networks=deny)

        yield make


async def run(executor: Executor, url: str) -> dict[str, Any]:
    return dump(await executor.run({"http": {"url": url}}, ref=REF))


async def test_literal_ip_is_denied(
    make_executor: Callable[..., Executor], target: TargetServer
) -> None:
    url = target.url("/status/200")
    result = await run(make_executor(("127.0.0.0/8",)), url)
    assert result == {
        "phase": "Failed",
        "message": f'Get "{url}": outbound policy: destination 127.0.0.1 is denied by rule '
        "127.0.0.0/8 (deny_networks)",
    }


async def test_hostname_is_checked_on_its_resolved_address(
    make_executor: Callable[..., Executor], target: TargetServer
) -> None:
    url = target.url("/status/200", host="localhost")
    result = await run(make_executor(("127.0.0.1/32",)), url)
    assert result == {
        "phase": "Failed",
        "message": f'Get "{url}": outbound policy: destination localhost (127.0.0.1) is denied '
        "by rule 127.0.0.1/32 (deny_networks)",
    }


async def test_every_redirect_hop_is_checked(
    make_executor: Callable[..., Executor], target: TargetServer
) -> None:
    # 127.0.0.1 is allowed; the redirect goes to 127.0.0.2, which is denied.
    denied = f"http://127.0.0.2:{target.port}/echo"
    url = target.url(f"/redirect-to?url={denied}")
    result = await run(make_executor(("127.0.0.2/32",)), url)
    assert result == {
        "phase": "Failed",
        "message": f'Get "{denied}": outbound policy: destination 127.0.0.2 is denied by rule '
        "127.0.0.2/32 (deny_networks)",
    }


async def test_allowed_destinations_still_work(
    make_executor: Callable[..., Executor], target: TargetServer
) -> None:
    result = await run(make_executor(("10.0.0.0/8", "127.0.0.2/32")), target.url("/status/200"))
    assert result == {"phase": "Succeeded", "outputs": {"result": "status 200"}}


@pytest.mark.parametrize(
    ("url", "address", "rule"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "169.254.169.254/32"),
        ("http://[fd00:ec2::254]/latest/", "fd00:ec2::254", "fd00:ec2::254/128"),
        ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254", "169.254.169.254/32"),
    ],
)
async def test_default_list_denies_cloud_metadata(
    make_executor: Callable[..., Executor], url: str, address: str, rule: str
) -> None:
    result = await run(make_executor(DEFAULT_DENY_NETWORKS), url)
    assert result == {
        "phase": "Failed",
        "message": f'Get "{url}": outbound policy: destination {address} is denied by rule '
        f"{rule} (deny_networks)",
    }


def test_policy_rules() -> None:
    policy = OutboundPolicy(["10.0.0.0/8", "fd00::/8"])
    assert policy.rule_for("10.1.2.3") == "10.0.0.0/8"
    assert policy.rule_for("::ffff:10.1.2.3") == "10.0.0.0/8"
    assert policy.rule_for("fd12::1%eth0") == "fd00::/8"
    assert policy.rule_for("11.0.0.1") is None
    assert policy.rule_for("not-an-ip") is None
    assert not OutboundPolicy([], refuse_unspecified=False)
    assert OutboundPolicy([]).rule_for("0.0.0.0") == "0.0.0.0/8"
    with pytest.raises(PolicyDenied) as denied:
        policy.check("10.9.9.9", host="internal.example")
    assert str(denied.value) == (
        "outbound policy: destination internal.example (10.9.9.9) is denied by rule 10.0.0.0/8 "
        "(deny_networks)"
    )


def test_settings_reject_an_invalid_network() -> None:
    with pytest.raises(ValueError, match="deny_networks: invalid network 'nope'"):
        ExecutorSettings(deny_networks=("nope",))


# -- the unspecified address (issue 15, 3.2) ----------------------------------------------
# Linux connects to 0.0.0.0 and :: as to the local host, so a deny list of loopback alone
# was bypassed by them. They are refused whatever the lists say.


@pytest.mark.parametrize(
    ("host", "address", "rule"),
    [
        ("0.0.0.0", "0.0.0.0", "0.0.0.0/8"),
        ("[::ffff:0.0.0.0]", "::ffff:0.0.0.0", "0.0.0.0/8"),
        ("0.0.0.1", "0.0.0.1", "0.0.0.0/8"),
    ],
)
async def test_the_unspecified_ipv4_address_is_always_refused(
    make_executor: Callable[..., Executor],
    target: TargetServer,
    host: str,
    address: str,
    rule: str,
) -> None:
    url = f"http://{host}:{target.port}/status/200"
    result = await run(make_executor(("127.0.0.0/8",)), url)
    where = address if host.strip("[]") == address else f"{host} ({address})"
    assert result == {
        "phase": "Failed",
        "message": f'Get "{url}": outbound policy: destination {where} is denied by rule '
        f"{rule} (deny_networks)",
    }
    # Even with an empty agent-wide list.
    assert (await run(make_executor(()), url))["message"] == result["message"]


async def test_the_host_name_0_is_refused(
    make_executor: Callable[..., Executor], target: TargetServer
) -> None:
    # "0" is a host name to httpcore, which the resolver turns into 0.0.0.0; yarl (aiohttp)
    # refuses it as a non-canonical IPv4 address before any connection. Neither reaches
    # the listener on 127.0.0.1.
    url = f"http://0:{target.port}/status/200"
    result = await run(make_executor(("127.0.0.0/8",)), url)
    assert result["phase"] == "Failed" and "outputs" not in result, result
    assert result["message"] in (
        f'Get "{url}": outbound policy: destination 0 (0.0.0.0) is denied by rule 0.0.0.0/8 '
        "(deny_networks)",
        f'Get "{url}": 0 - is not a canonical IPv4 address',
    )


async def test_a_redirect_to_the_unspecified_address_is_refused(
    make_executor: Callable[..., Executor], target: TargetServer
) -> None:
    denied = f"http://0.0.0.0:{target.port}/echo"
    url = target.url(f"/redirect-to?url={denied}&status=307")
    # The first hop (127.0.0.1) is allowed; the 307 to 0.0.0.0 would reach it again.
    result = await run(make_executor(("127.0.0.2/32",)), url)
    assert result == {
        "phase": "Failed",
        "message": f'Get "{denied}": outbound policy: destination 0.0.0.0 is denied by rule '
        "0.0.0.0/8 (deny_networks)",
    }


@pytest.fixture
async def ipv6_listener() -> AsyncIterator[int]:
    """A plain HTTP answer on [::1]: what http://[::]:PORT/ would reach."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(answer, "::1", 0)
    except OSError as exc:  # pragma: no cover - a host without IPv6 loopback
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_the_unspecified_ipv6_address_is_always_refused(
    make_executor: Callable[..., Executor], ipv6_listener: int
) -> None:
    allowed = await run(make_executor(("::1/128",)), f"http://[::1]:{ipv6_listener}/")
    assert allowed["message"].endswith("is denied by rule ::1/128 (deny_networks)")
    url = f"http://[::]:{ipv6_listener}/"
    result = await run(make_executor(("::1/128",)), url)
    assert result == {
        "phase": "Failed",
        "message": f'Get "{url}": outbound policy: destination :: is denied by rule ::/128 '
        "(deny_networks)",
    }
