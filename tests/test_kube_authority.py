"""The workflow's authority over Secrets (agent/kube/authority.py) against the API simulator.

Argo facts pinned here (argo-workflows, workflow/controller):
* agent.go ``createAgentPod``: the agent pod's ``ServiceAccountName`` is
  ``woc.execWf.Spec.ServiceAccountName`` and the token mounted is that account's
  (``getServiceAccountTokenVolume``); serviceaccount.go / operator.go
  ``getServiceAccountTokenName``: an empty name means ``default``.
* operator.go ``setExecWorkflow``: with ``spec.workflowTemplateRef`` the exec workflow is
  ``status.storedWorkflowTemplateSpec`` (``setStoredWfSpec``: workflow, template and
  ``workflowDefaults`` joined by ``JoinWorkflowSpec``); otherwise the workflow itself,
  with ``workflowDefaults`` merged in (controller.go ``setWorkflowDefaults``) and persisted
  by ``persistUpdates`` along with the first status.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from agent_sim import ApiSimulator, Rule, service_account_user
from agent_sim.samples import workflow
from kubernetes_asyncio import client
from prometheus_client import REGISTRY

from agent.core.model import dump
from agent.core.refs import TaskRef
from agent.core.secrets import SecretError
from agent.executor.executor import Executor
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import ExecutorSettings
from agent.kube.authority import WorkflowSecretAuthority, service_account_of
from agent.kube.client import connect
from tests.servers import PluginServer

NS = "argo"
WAIT = 30.0


def ref_of(created: dict[str, Any], node: str = "n1") -> TaskRef:
    meta = created["metadata"]
    return TaskRef(meta["namespace"], meta["name"], node, workflow_uid=meta["uid"])


def may_get(sim: ApiSimulator, account: str, *secrets: str) -> None:
    sim.grant(
        [Rule.of("get", "secrets", namespaces=NS, resource_names=secrets)],
        user=service_account_user(NS, account),
    )


def reviews(sim: ApiSimulator) -> list[dict[str, Any]]:
    return [
        json.loads(r.body)
        for r in sim.requests(verb="create", resource="subjectaccessreviews")
        if r.status == 201
    ]


def workflow_gets(sim: ApiSimulator, name: str) -> int:
    return len(sim.requests(verb="get", resource="workflows", name=name))


def counted(result: str, cache: str) -> float:
    value = REGISTRY.get_sample_value(
        "argo_agent_secret_authority_total", {"result": result, "cache": cache}
    )
    return value or 0.0


async def test_allowed_denied_and_the_review_sent(sim: ApiSimulator, api: client.ApiClient) -> None:
    """The review names the account as its token would authenticate (user and groups) and
    asks for ``get`` of exactly that Secret; a denial names account and Secret only."""
    created = sim.create_object("workflows", workflow("wf", service_account="wf-sa"))
    may_get(sim, "wf-sa", "creds")
    authority = WorkflowSecretAuthority(api=api, ttl=3600)
    before = counted("allowed", "miss"), counted("allowed", "hit"), counted("denied", "miss")
    await authority.check(ref=ref_of(created), secret="creds")
    await authority.check(ref=ref_of(created, "n2"), secret="creds")
    with pytest.raises(SecretError) as denied:
        await authority.check(ref=ref_of(created), secret="other")
    assert str(denied.value) == 'service account "argo/wf-sa" may not get secret "other"'
    sent = reviews(sim)
    assert [r["spec"] for r in sent] == [
        {
            "user": "system:serviceaccount:argo:wf-sa",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:argo",
                       "system:authenticated"],
            "resourceAttributes": {"namespace": NS, "verb": "get", "version": "v1",
                                   "resource": "secrets", "name": name},
        }
        for name in ("creds", "other")
    ]  # fmt: skip
    assert workflow_gets(sim, "wf") == 1
    assert (
        counted("allowed", "miss") - before[0],
        counted("allowed", "hit") - before[1],
        counted("denied", "miss") - before[2],
    ) == (1, 1, 1)


async def test_no_service_account_means_default(sim: ApiSimulator, api: client.ApiClient) -> None:
    created = sim.create_object("workflows", workflow("plain"))
    authority = WorkflowSecretAuthority(api=api, ttl=3600)
    with pytest.raises(SecretError, match=r'^service account "argo/default" may not get'):
        await authority.check(ref=ref_of(created), secret="creds")
    may_get(sim, "default", "creds")
    await WorkflowSecretAuthority(api=api, ttl=3600).check(ref=ref_of(created), secret="creds")


async def test_a_template_workflow_uses_the_stored_template_spec(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """With workflowTemplateRef, the account of status.storedWorkflowTemplateSpec decides,
    not what the submitted spec says (Argo: ``woc.execWf`` is the stored spec)."""
    created = sim.create_object(
        "workflows",
        workflow("from-tmpl", service_account="ignored", template_ref="t",
                 stored_service_account="tmpl-sa"),
    )  # fmt: skip
    may_get(sim, "tmpl-sa", "creds")
    authority = WorkflowSecretAuthority(api=api, ttl=3600)
    await authority.check(ref=ref_of(created), secret="creds")
    assert reviews(sim)[0]["spec"]["user"] == "system:serviceaccount:argo:tmpl-sa"


def test_the_account_as_argo_picks_it() -> None:
    assert service_account_of(workflow("a", service_account="x")) == "x"
    assert service_account_of(workflow("a", service_account="")) == "default"
    assert service_account_of(workflow("a")) == "default"
    assert service_account_of(workflow("a", template_ref="t")) == "default"
    assert service_account_of(workflow("a", template_ref="t", stored_service_account="s")) == "s"
    broken = workflow("a")
    broken["spec"]["serviceAccountName"] = ["x"]
    with pytest.raises(SecretError, match=r"spec\.serviceAccountName must be a string"):
        service_account_of(broken)


async def test_missing_replaced_and_unreadable_workflows(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    authority = WorkflowSecretAuthority(api=api, ttl=3600)
    gone = TaskRef(NS, "gone", "n", workflow_uid="uid-gone")
    with pytest.raises(SecretError) as missing:
        await authority.check(ref=gone, secret="creds")
    assert str(missing.value) == (
        'workflow "argo/gone", the owner of this taskset, not found: cannot tell which '
        "service account may use its secrets"
    )
    # Same name, another workflow: the taskset's owner (by UID) no longer exists.
    sim.create_object("workflows", workflow("gone", service_account="sa"))
    with pytest.raises(SecretError, match=r"\(UID uid-gone\), the owner of this taskset, no"):
        await authority.check(ref=gone, secret="creds")
    assert not reviews(sim)

    sim.add_token("no-workflows", [Rule.of("create", "subjectaccessreviews")])
    async with connected(sim, "no-workflows") as limited:
        with pytest.raises(SecretError) as forbidden:
            await WorkflowSecretAuthority(api=limited, ttl=3600).check(ref=gone, secret="creds")
    assert str(forbidden.value) == (
        'cannot read workflow "argo/gone": forbidden; the agent\'s service account needs the '
        "'get workflows.argoproj.io' permission there (or run with --secret-authority agent)"
    )


async def test_a_review_the_agent_may_not_create(sim: ApiSimulator, api: client.ApiClient) -> None:
    created = sim.create_object("workflows", workflow("wf", service_account="sa"))
    sim.add_token("no-reviews", [Rule.of("get", "workflows", namespaces=NS)])
    before = counted("error", "miss")
    async with connected(sim, "no-reviews") as limited:
        with pytest.raises(SecretError) as forbidden:
            await WorkflowSecretAuthority(api=limited, ttl=3600).check(
                ref=ref_of(created), secret="creds"
            )
    assert str(forbidden.value) == (
        'cannot check whether service account "argo/sa" may get secret "creds": forbidden; '
        "the agent's service account needs the cluster-wide 'create "
        "subjectaccessreviews.authorization.k8s.io' permission (or run with "
        "--secret-authority agent)"
    )
    assert counted("error", "miss") - before == 1


async def test_transient_errors_are_retried_and_errors_not_cached(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    created = sim.create_object("workflows", workflow("wf", service_account="sa"))
    may_get(sim, "sa", "creds")
    authority = WorkflowSecretAuthority(api=api, ttl=3600, backoff_seconds=0.001)
    sim.fail_next(2, code=503, resource="subjectaccessreviews")
    sim.fail_next(1, code=429, resource="workflows")
    await authority.check(ref=ref_of(created), secret="creds")
    assert len(sim.requests(resource="subjectaccessreviews")) == 3

    sim.fail_next(1, code=500, resource="subjectaccessreviews")
    with pytest.raises(SecretError, match=r'"argo/sa" may get secret "again": 500'):
        await authority.check(ref=ref_of(created), secret="again")
    await authority.check(ref=ref_of(created), secret="creds")  # cached: no request
    with pytest.raises(SecretError, match="may not get"):
        await authority.check(ref=ref_of(created), secret="again")  # asked again


async def test_a_workflow_the_controller_has_not_persisted_is_read_again(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """No status.phase yet (defaults not merged), or a template workflow without its
    stored spec: read again until the controller has written it, then decide."""
    created = sim.create_object("workflows", workflow("young", service_account="sa", phase=""))
    may_get(sim, "sa", "creds")
    authority = WorkflowSecretAuthority(api=api, ttl=3600, pending_delays=(0.05,) * 400)
    check = asyncio.create_task(authority.check(ref=ref_of(created), secret="creds"))
    try:
        async with asyncio.timeout(WAIT):
            first = await sim.wait_for_request(verb="get", resource="workflows", name="young")
            await sim.wait_for_request(
                verb="get", resource="workflows", name="young", since=first.seq
            )
        assert not check.done()
        sim.patch_object("workflows", "young", {"status": {"phase": "Running"}}, namespace=NS)
        async with asyncio.timeout(WAIT):
            await check
    finally:
        check.cancel()

    unresolved = workflow("stuck", template_ref="t")
    del unresolved["status"]["storedWorkflowTemplateSpec"]
    stuck = sim.create_object("workflows", unresolved)
    impatient = WorkflowSecretAuthority(api=api, ttl=3600, pending_delays=(0.01, 0.01))
    with pytest.raises(SecretError) as never:
        await impatient.check(ref=ref_of(stuck), secret="creds")
    assert str(never.value) == (
        'workflow "argo/stuck" has no status.storedWorkflowTemplateSpec yet: the controller '
        "has not started it, so its service account is not known"
    )
    assert workflow_gets(sim, "stuck") == 3


async def test_concurrent_checks_share_one_read_and_one_review(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    created = sim.create_object("workflows", workflow("wide", service_account="sa"))
    may_get(sim, "sa", "creds")
    authority = WorkflowSecretAuthority(api=api, ttl=3600)
    sim.delay(0.3, count=1, resource="workflows")
    async with asyncio.timeout(WAIT):
        await asyncio.gather(
            *(authority.check(ref=ref_of(created, f"n{i}"), secret="creds") for i in range(50))
        )
    assert workflow_gets(sim, "wide") == 1
    assert len(reviews(sim)) == 1


async def test_an_rbac_change_is_seen_after_the_ttl(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    created = sim.create_object("workflows", workflow("wf", service_account="sa"))
    may_get(sim, "sa", "creds")
    authority = WorkflowSecretAuthority(api=api, ttl=0.2)
    await authority.check(ref=ref_of(created), secret="creds")
    sim.revoke(user=service_account_user(NS, "sa"))
    async with asyncio.timeout(WAIT):
        while True:
            try:
                await authority.check(ref=ref_of(created), secret="creds")
            except SecretError as exc:
                assert str(exc) == 'service account "argo/sa" may not get secret "creds"'
                break
            await asyncio.sleep(0.05)
    assert len(reviews(sim)) >= 2


class CountingResolver(StaticSecretResolver):
    """Secrets in memory, counting the reads: shows a denied Secret is never read."""

    def __init__(self, secrets: dict[tuple[str, str], dict[str, str]]) -> None:
        super().__init__(secrets)
        self.reads: list[str] = []

    async def get_secret_value(self, *, namespace: str, name: str, key: str) -> str:
        self.reads.append(name)
        return await super().get_secret_value(namespace=namespace, name=name, key=key)


async def test_the_executor_asks_before_it_reads_and_sends(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """A denied Secret fails its node with the authority's text: the Secret is not read and
    no request leaves; an allowed one is read and sent."""
    created = sim.create_object("workflows", workflow("wf", service_account="sa"))
    may_get(sim, "sa", "allowed")
    resolver = CountingResolver({(NS, "allowed"): {"k": "yes"}, (NS, "denied"): {"k": "no"}})
    authority = WorkflowSecretAuthority(api=api, ttl=3600)

    def task(secret: str) -> dict[str, Any]:
        header = {"name": "X-S", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}
        url = recorder.url("/api/v1/template.execute")
        return {"name": "t", "http": {"url": url, "method": "POST", "headers": [header]}}

    with PluginServer() as recorder:
        async with Executor(
            settings=ExecutorSettings(ca_dir=None), secrets=resolver, authority=authority
        ) as executor:
            denied = dump(await executor.run(task("denied"), ref=ref_of(created)))
            allowed = dump(await executor.run(task("allowed"), ref=ref_of(created)))
        calls = recorder.calls
    assert denied == {
        "phase": "Failed",
        "message": 'service account "argo/sa" may not get secret "denied"',
    }
    assert allowed["phase"] == "Succeeded", allowed
    assert resolver.reads == ["allowed"]
    assert [call.headers["X-S"] for call in calls] == ["yes"]


class connected:
    """An API client authenticating with ``token``."""

    def __init__(self, sim: ApiSimulator, token: str) -> None:
        self._sim = sim
        self._token = token
        self._api: client.ApiClient | None = None

    async def __aenter__(self) -> client.ApiClient:
        with tempfile.TemporaryDirectory() as tmp:
            path = self._sim.kubeconfig(Path(tmp) / "kc", token=self._token)
            self._api = await connect(kubeconfig=str(path))
        return self._api

    async def __aexit__(self, *exc: object) -> None:
        if self._api is not None:
            await self._api.close()


async def test_workflows_of_one_account_share_its_decisions(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    """The decision is the account's: many workflows run by it cost one review per Secret
    (and one Workflow GET each, to learn their account)."""
    may_get(sim, "sa", "creds")
    created = [
        sim.create_object("workflows", workflow(f"wf{i}", service_account="sa")) for i in range(5)
    ]
    authority = WorkflowSecretAuthority(api=api, ttl=3600)
    for one in created:
        await authority.check(ref=ref_of(one), secret="creds")
    assert len(reviews(sim)) == 1
    assert len(sim.requests(verb="get", resource="workflows")) == 5
