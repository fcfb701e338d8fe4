"""Namespace outbound policies (issue 15, part 2): ConfigMaps in the agent's namespace.

The rules are tested like the agent-wide list: on the resolved address (``localhost``),
literal IPs, IPv4-mapped IPv6 and every redirect hop, on both transports, loopback only.
The ConfigMaps are read from the simulator over real HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from agent_sim import ApiSimulator
from kubernetes_asyncio import client

from agent.core.model import dump
from agent.core.refs import TaskRef
from agent.core.secrets import SecretError, denied_message
from agent.executor.executor import Executor
from agent.executor.policy import NamespacePolicies
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import ExecutorSettings
from agent.source.policies import POLICY_LABEL, PolicyError, PolicyWatcher, parse_policy
from tests.executors import executor_factory
from tests.servers import TargetServer

AGENT_NS = "argo-http-agent"


def ref(namespace: str) -> TaskRef:
    return TaskRef(namespace=namespace, taskset="wf", node_id="wf-1")


def policies_of(*configs: tuple[str, Mapping[str, str]]) -> NamespacePolicies:
    policies = NamespacePolicies()
    entries = []
    for name, data in configs:
        namespaces, rules, error = parse_policy(f"{AGENT_NS}/{name}", data)
        assert error is None, error
        entries.append((namespaces, rules))
    policies.replace(entries)
    return policies


@pytest.fixture(params=["http1", "aiohttp", "httpcore"])
async def make_executor(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Executor]]:
    defaults = {"transport": request.param, "ca_dir": None, "default_timeout_seconds": 10}
    async with executor_factory(**defaults) as build:

        def make(policies: NamespacePolicies, deny: tuple[str, ...] = ()) -> Executor:
            return build(namespace_policies=policies, deny_networks=deny)

        yield make


async def run(executor: Executor, url: str, namespace: str) -> dict[str, Any]:
    return dump(await executor.run({"http": {"url": url}}, ref=ref(namespace)))


OK = {"phase": "Succeeded", "outputs": {"result": "status 200"}}


async def test_deny_networks_apply_to_the_named_namespaces_only(
    make_executor: Callable[..., Executor], target: TargetServer
) -> None:
    executor = make_executor(
        policies_of(("team-a", {"namespaces": "team-a", "denyNetworks": "127.0.0.0/8"}))
    )
    url = target.url("/status/200")
    # The other namespace first: its pooled connection must not serve team-a afterwards.
    assert await run(executor, url, "team-b") == OK
    assert await run(executor, url, "team-a") == {
        "phase": "Failed",
        "message": f'Get "{url}": outbound policy: destination 127.0.0.1 is denied by rule '
        f"127.0.0.0/8 (denyNetworks of namespace policy {AGENT_NS}/team-a)",
    }
    assert await run(executor, url, "team-b") == OK


async def test_rules_are_checked_on_the_resolved_address_and_mapped_ipv6(
    make_executor: Callable[..., Executor], target: TargetServer
) -> None:
    executor = make_executor(
        policies_of(("p", {"namespaces": "team-*", "denyNetworks": "127.0.0.1/32"}))
    )
    named = target.url("/status/200", host="localhost")
    result = await run(executor, named, "team-x")
    assert result["message"] == (
        f'Get "{named}": outbound policy: destination localhost (127.0.0.1) is denied by rule '
        f"127.0.0.1/32 (denyNetworks of namespace policy {AGENT_NS}/p)"
    )
    mapped = f"http://[::ffff:127.0.0.1]:{target.port}/status/200"
    result = await run(executor, mapped, "team-x")
    assert result["phase"] == "Failed"
    assert result["message"].endswith(
        "destination ::ffff:127.0.0.1 is denied by rule 127.0.0.1/32 "
        f"(denyNetworks of namespace policy {AGENT_NS}/p)"
    )


async def test_every_redirect_hop_is_checked(
    make_executor: Callable[..., Executor], target: TargetServer
) -> None:
    executor = make_executor(
        policies_of(("p", {"namespaces": "team-a", "denyHosts": "*.localhost localhost"}))
    )
    denied = f"http://localhost:{target.port}/status/200"
    url = target.url(f"/redirect-to?url={denied}")
    assert await run(executor, url, "team-a") == {
        "phase": "Failed",
        "message": f'Get "{denied}": outbound policy: destination localhost (127.0.0.1) is '
        f"denied by rule localhost (denyHosts of namespace policy {AGENT_NS}/p)",
    }


async def test_allow_lists_mean_only_these(
    make_executor: Callable[..., Executor], target: TargetServer
) -> None:
    executor = make_executor(
        policies_of(
            (
                "p",
                {
                    "namespaces": "team-a",
                    "allowNetworks": "127.0.0.1/32",
                    "allowHosts": "localhost",
                },
            )
        )
    )
    assert await run(executor, target.url("/status/200", host="localhost"), "team-a") == OK
    assert await run(executor, target.url("/status/200"), "team-a") == OK
    url = target.url("/status/200", host="127.0.0.2")
    assert await run(executor, url, "team-a") == {
        "phase": "Failed",
        "message": f'Get "{url}": outbound policy: destination 127.0.0.2 is denied by rule '
        f"allowNetworks/allowHosts (no match in namespace policy {AGENT_NS}/p)",
    }
    # A redirect out of the allowed set is refused on its hop.
    hop = target.url("/redirect-to?url=" + url, host="localhost")
    assert (await run(executor, hop, "team-a"))["message"].startswith(f'Get "{url}": outbound')


async def test_several_policies_all_apply_and_the_agent_wide_list_comes_first(
    make_executor: Callable[..., Executor], target: TargetServer
) -> None:
    executor = make_executor(
        policies_of(
            ("a", {"namespaces": "team-a", "allowNetworks": "127.0.0.0/8"}),
            ("b", {"namespaces": "team-a", "denyNetworks": "127.0.0.3/32"}),
        ),
        deny=("127.0.0.4/32",),
    )
    assert await run(executor, target.url("/status/200"), "team-a") == OK
    assert (await run(executor, target.url("/status/200", host="127.0.0.3"), "team-a"))[
        "message"
    ].endswith(f"(denyNetworks of namespace policy {AGENT_NS}/b)")
    # Allowed by the namespace, denied agent-wide: the agent-wide message, unchanged.
    url = target.url("/status/200", host="127.0.0.4")
    assert await run(executor, url, "team-a") == {
        "phase": "Failed",
        "message": f'Get "{url}": outbound policy: destination 127.0.0.4 is denied by rule '
        "127.0.0.4/32 (deny_networks)",
    }


async def test_changed_rules_take_effect_on_the_next_request(
    make_executor: Callable[..., Executor], target: TargetServer
) -> None:
    policies = policies_of(("p", {"namespaces": "team-a", "denyNetworks": "127.0.0.2/32"}))
    executor = make_executor(policies)
    url = target.url("/status/200")
    assert await run(executor, url, "team-a") == OK  # a pooled connection to 127.0.0.1
    _, rules, _ = parse_policy(
        f"{AGENT_NS}/p", {"namespaces": "team-a", "denyNetworks": "127.0.0.1"}
    )
    policies.replace([(("team-a",), rules)])
    assert (await run(executor, url, "team-a"))["message"].endswith(
        f"127.0.0.1/32 (denyNetworks of namespace policy {AGENT_NS}/p)"
    )


def test_parse_policy_names_the_bad_field_and_fails_closed() -> None:
    with pytest.raises(PolicyError, match=r"^data\.namespaces: missing or empty"):
        parse_policy("ns/p", {"denyNetworks": "10.0.0.0/8"})
    namespaces, rules, error = parse_policy("ns/p", {"namespaces": "a, b", "allowNetworks": "nope"})
    assert namespaces == ("a", "b")
    assert str(error) == (
        "data.allowNetworks: invalid network 'nope': 'nope' does not appear to be an IPv4 or "
        "IPv6 network"
    )
    assert rules.source == "namespace policy ns/p (invalid data.allowNetworks)"
    assert [str(n) for n in rules.deny_networks] == ["0.0.0.0/0", "::/0"]
    _, rules, error = parse_policy("ns/p", {"namespaces": "a", "denyHosts": "bad/host"})
    assert error is not None and error.field == "data.denyHosts"


# -- the ConfigMaps, read from the simulator over real HTTP ---------------------------------


def config_map(name: str, data: dict[str, str], *, labelled: bool = True) -> dict[str, Any]:
    labels = {POLICY_LABEL: "true"} if labelled else {}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": AGENT_NS, "labels": labels},
        "data": data,
    }


async def wait_for(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_watcher_follows_the_labelled_config_maps(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map(
        AGENT_NS, config_map("a", {"namespaces": "team-a", "denyNetworks": "10.0.0.0/8"})
    )
    await core.create_namespaced_config_map(
        AGENT_NS,
        config_map("unlabelled", {"namespaces": "*", "denyNetworks": "0.0.0.0/0"}, labelled=False),
    )
    policies = NamespacePolicies()
    watcher = PolicyWatcher(api=api, namespace=AGENT_NS, policies=policies, watch_timeout=5)
    task = asyncio.create_task(watcher.run())
    try:
        await wait_for(lambda: policies.loaded, "the first list")
        (rules,) = policies.rules_for("team-a")
        assert rules.source == f"namespace policy {AGENT_NS}/a"
        assert [str(n) for n in rules.deny_networks] == ["10.0.0.0/8"]
        assert policies.rules_for("team-b") == ()
        # A change arrives by the watch.
        generation = policies.generation
        await core.patch_namespaced_config_map(
            "a", AGENT_NS, {"data": {"namespaces": "team-a", "allowNetworks": "bad"}}
        )
        await wait_for(lambda: policies.generation > generation, "the change")
        (rules,) = policies.rules_for("team-a")
        assert rules.source.endswith("(invalid data.allowNetworks)")  # fails closed
        generation = policies.generation
        await core.delete_namespaced_config_map("a", AGENT_NS)
        await wait_for(lambda: policies.generation > generation, "the deletion")
        assert policies.rules_for("team-a") == ()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class _DenyingAuthority:
    """The workflow's service account may read no Secret (what RBAC would answer)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def check(self, *, ref: TaskRef, secret: str) -> None:
        self.asked.append((ref.namespace, secret))
        raise SecretError(denied_message(ref.namespace, "default", secret))


@pytest.mark.parametrize("transport", ["http1", "aiohttp", "httpcore"])
async def test_a_namespace_with_a_policy_still_asks_the_secret_authority(
    transport: str, target: TargetServer
) -> None:
    """Requests of a namespace with rules run on a client of their own: that path must ask
    whose authority a Secret is used with exactly as the default path does."""
    authority = _DenyingAuthority()
    executor = Executor(
        settings=ExecutorSettings(transport=transport, ca_dir=None, default_timeout_seconds=10),
        secrets=StaticSecretResolver({("team-a", "creds"): {"token": "s3cr3t"}}),
        authority=authority,
        namespace_policies=policies_of(("team-a", {"namespaces": "team-a", "denyHosts": "x"})),
    )
    template = {
        "http": {
            "url": target.url("/echo"),
            "headers": [
                {"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}
            ],
        }
    }
    try:
        result = dump(await executor.run(template, ref=ref("team-a")))
    finally:
        await executor.aclose()
    assert authority.asked == [("team-a", "creds")]
    assert result == {
        "phase": "Failed",
        "message": 'service account "team-a/default" may not get secret "creds"',
    }
