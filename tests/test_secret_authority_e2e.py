"""End to end: Secrets are used with the workflow's authority (``--secret-authority``).

Real agent processes against the API simulator, whose SubjectAccessReviews are computed
from its RBAC rules (tests/test_sim_reviews.py pins that contract). The target of every
secret-bearing request is a recorder (a real HTTP server keeping every request), so a
denied node is shown to have sent nothing.

Argo facts (argo-workflows, workflow/controller/agent.go ``createAgentPod``): the agent
pod runs with ``woc.execWf.Spec.ServiceAccountName`` and that account's token, so its
RBAC decides which Secrets a workflow may use; ``woc.execWf`` is the stored template spec
for ``workflowTemplateRef`` workflows (operator.go ``setExecWorkflow``); an empty name is
the namespace's ``default`` account (operator.go ``getServiceAccountTokenName``). In
per-workflow mode Argo's agent role (list/watch tasksets, patch their status, get
secrets) is all the pod has, and it suffices here too.
"""

from __future__ import annotations

import asyncio
import json
import re

import httpx
from agent_sim import ApiSimulator, Rule, service_account_user
from agent_sim.samples import secret, workflow

from tests.agentproc import (
    AgentProcess,
    add_argo_agent_token,
    http_task,
    taskset,
    wait_for_nodes,
)
from tests.servers import PluginServer

NS = "argo"
TS = "workflowtasksets"
WAIT = 30.0
SECRET_VALUE = "s3cr3t-e2e-value"
HEADER = {"name": "X-Token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}


def recorded_task(recorder: PluginServer, node: str) -> dict[str, object]:
    return http_task(
        recorder.url("/api/v1/template.execute"),
        method="POST",
        body=f'{{"node": "{node}"}}',
        headers=[HEADER],
    )


def grant_creds(sim: ApiSimulator, account: str) -> None:
    sim.grant(
        [Rule.of("get", "secrets", namespaces=NS, resource_names="creds")],
        user=service_account_user(NS, account),
    )


def owned(sim: ApiSimulator, name: str, **fields: object) -> str:
    created = sim.create_object("workflows", workflow(name, **fields))  # type: ignore[arg-type]
    return str(created["metadata"]["uid"])


def metric(text: str, result: str, cache: str) -> float:
    pattern = rf'^argo_agent_secret_authority_total\{{(?=[^}}]*result="{result}")'
    pattern += rf'(?=[^}}]*cache="{cache}")[^}}]*\}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"no argo_agent_secret_authority_total{{{result},{cache}}}"
    return float(found.group(1))


async def test_the_workflows_service_account_decides(sim: ApiSimulator) -> None:
    """Allowed (named account), denied, no account (default), template-resolved account,
    workflow missing: each node decided alone, the denied ones before any request."""
    sim.create_object("secrets", secret("creds", {"token": SECRET_VALUE}, namespace=NS))
    grant_creds(sim, "reader")
    grant_creds(sim, "default")
    grant_creds(sim, "tmpl-reader")
    uids = {
        "allowed": owned(sim, "allowed", service_account="reader"),
        "denied": owned(sim, "denied", service_account="nobody"),
        "no-account": owned(sim, "no-account"),
        "tmpl": owned(sim, "tmpl", template_ref="t", service_account="nobody",
                      stored_service_account="tmpl-reader"),
    }  # fmt: skip
    with PluginServer() as recorder:
        async with AgentProcess(sim, "--namespace", NS) as agent:
            for name, uid in uids.items():
                sim.create_object(TS, taskset(name, {"n": recorded_task(recorder, name)},
                                              owner_uid=uid))  # fmt: skip
            sim.create_object(TS, taskset("orphan", {"n": recorded_task(recorder, "orphan")}))
            nodes = {
                name: (await wait_for_nodes(sim, name, ["n"], timeout=WAIT))["n"]
                for name in [*uids, "orphan"]
            }
            async with httpx.AsyncClient() as http:
                scraped = (await http.get(f"http://127.0.0.1:{agent.port}/metrics")).text
            logs = agent.logs()
        calls = recorder.calls
    for name in ("allowed", "no-account", "tmpl"):
        assert nodes[name]["phase"] == "Succeeded", (name, nodes[name])
    assert nodes["denied"] == {
        "phase": "Failed",
        "message": 'service account "argo/nobody" may not get secret "creds"',
    }
    assert nodes["orphan"] == {
        "phase": "Failed",
        "message": 'workflow "argo/orphan", the owner of this taskset, not found: cannot tell '
        "which service account may use its secrets",
    }
    # Only the allowed nodes reached the target, each with the Secret's value.
    assert sorted(call.body["node"] for call in calls) == ["allowed", "no-account", "tmpl"]
    assert all(call.headers["X-Token"] == SECRET_VALUE for call in calls)
    assert SECRET_VALUE not in logs
    asked = {
        json.loads(r.body)["spec"]["user"]
        for r in sim.requests(verb="create", resource="subjectaccessreviews")
    }
    assert asked == {
        "system:serviceaccount:argo:reader",
        "system:serviceaccount:argo:nobody",
        "system:serviceaccount:argo:default",
        "system:serviceaccount:argo:tmpl-reader",
    }
    assert metric(scraped, "allowed", "miss") == 3
    assert metric(scraped, "denied", "miss") == 1
    assert metric(scraped, "error", "miss") == 1


async def test_an_rbac_change_is_seen_once_the_cache_expires(sim: ApiSimulator) -> None:
    """A decision is reused for ``--secret-cache-seconds``; after a revocation new nodes
    are denied once it expires, and allowed again after a new grant."""
    sim.create_object("secrets", secret("creds", {"token": SECRET_VALUE}, namespace=NS))
    grant_creds(sim, "reader")
    uid = owned(sim, "rbac", service_account="reader")
    with PluginServer() as recorder:
        async with AgentProcess(sim, "--namespace", NS, "--secret-cache-seconds", "0.5"):
            sim.create_object(TS, taskset("rbac", {"n0": recorded_task(recorder, "n0")},
                                          owner_uid=uid))  # fmt: skip
            first = await wait_for_nodes(sim, "rbac", ["n0"], timeout=WAIT)
            assert first["n0"]["phase"] == "Succeeded"

            async def until(phase: str, start: int) -> int:
                """Add nodes one at a time until one ends in ``phase``; its index."""
                async with asyncio.timeout(WAIT):
                    for i in range(start, 10_000):
                        node = f"n{i}"
                        task = {"spec": {"tasks": {node: recorded_task(recorder, node)}}}
                        sim.patch_object(TS, "rbac", task, namespace=NS)
                        done = await wait_for_nodes(sim, "rbac", [node], timeout=WAIT)
                        if done[node]["phase"] == phase:
                            return i
                        await asyncio.sleep(0.1)
                raise AssertionError(f"no node ended {phase}")

            sim.revoke(user=service_account_user(NS, "reader"))
            denied_at = await until("Failed", 1)
            grant_creds(sim, "reader")
            allowed_at = await until("Succeeded", denied_at + 1)
            nodes = await wait_for_nodes(sim, "rbac", [f"n{denied_at}", f"n{allowed_at}"])
    assert nodes[f"n{denied_at}"]["message"] == (
        'service account "argo/reader" may not get secret "creds"'
    )
    assert f"n{denied_at}" not in {call.body["node"] for call in recorder.calls}


async def test_per_workflow_mode_needs_only_argos_agent_role(sim: ApiSimulator) -> None:
    """``--workflow``: the agent runs as the workflow's own account, so its Secret read is
    the workflow's authority: no Workflow read and no review, with Argo's agent role."""
    sim.create_object("secrets", secret("creds", {"token": SECRET_VALUE}, namespace=NS))
    add_argo_agent_token(sim, "argo-agent-role", namespace=NS)
    with PluginServer() as recorder:
        sim.create_object(TS, taskset("solo", {"n": recorded_task(recorder, "solo")}))
        async with AgentProcess(
            sim, "--namespace", NS, "--workflow", "solo", token="argo-agent-role"
        ):
            nodes = await wait_for_nodes(sim, "solo", ["n"], timeout=WAIT)
        assert [call.headers["X-Token"] for call in recorder.calls] == [SECRET_VALUE]
    assert nodes["n"]["phase"] == "Succeeded"
    assert not sim.requests(resource="workflows")
    assert not sim.requests(resource="subjectaccessreviews")


async def test_the_agents_own_authority_reads_without_asking(sim: ApiSimulator) -> None:
    """``--secret-authority agent``: today's single-tenant behaviour, no Workflow needed."""
    sim.create_object("secrets", secret("creds", {"token": SECRET_VALUE}, namespace=NS))
    with PluginServer() as recorder:
        async with AgentProcess(sim, "--namespace", NS, "--secret-authority", "agent"):
            sim.create_object(TS, taskset("trusted", {"n": recorded_task(recorder, "n")}))
            nodes = await wait_for_nodes(sim, "trusted", ["n"], timeout=WAIT)
        assert len(recorder.calls) == 1
    assert nodes["n"]["phase"] == "Succeeded"
    assert not sim.requests(resource="workflows")
    assert not sim.requests(resource="subjectaccessreviews")
