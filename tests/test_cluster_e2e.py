"""End to end: `argo-http-agent run` as a real process against the API simulator and real
local targets. Everything between agent and "cluster" crosses real HTTP.

Set ``E2E_KUBECONFIG`` to run the same scenarios against a real cluster is not possible for
the fault-injection ones; see the README ("Testing against a real cluster")."""

from __future__ import annotations

import asyncio
import json
import signal

from agent_sim import ApiSimulator, Rule
from agent_sim.samples import secret

from tests.agentproc import AgentProcess, http_task, owner_workflow, taskset, wait_for_nodes
from tests.servers import TargetServer

NS = "argo"
TS = "workflowtasksets"
#: What a shared-mode agent needs besides Argo's agent RBAC: its member Lease (docs/replicas.md).
LEASES = Rule.of("get list watch create update delete", "leases")


async def sentinel(
    sim: ApiSimulator,
    target: TargetServer,
    name: str = "sentinel",
    *,
    path: str = "/status/200",
    namespace: str = NS,
    labels: dict[str, str] | None = None,
) -> None:
    """A positive barrier: a taskset created now, whose result arrives only after the agent
    has taken in every earlier event (it handles a watch's events in order)."""
    task = {"s": http_task(target.url(path))}
    sim.create_object(TS, taskset(name, task, namespace=namespace, labels=labels))
    await wait_for_nodes(sim, name, ["s"], namespace=namespace)


def status_patches(sim: ApiSimulator, name: str) -> list[dict[str, object]]:
    return [
        json.loads(r.body)
        for r in sim.requests(verb="patch", subresource="status", name=name)
        if r.status == 200
    ]


async def test_results_are_patched_as_argo_does(sim: ApiSimulator, target: TargetServer) -> None:
    """The exact merge-patch body and content type the API received."""
    async with AgentProcess(sim, "--namespace", NS):
        sim.create_object(
            TS,
            taskset(
                "wf",
                {
                    "ok": http_task(target.url("/status/200")),
                    "bad": http_task(target.url("/status/503")),
                    "cond": http_task(
                        target.url("/status/201"), successCondition="response.statusCode == 201"
                    ),
                },
            ),
        )
        nodes = await wait_for_nodes(sim, "wf", ["ok", "bad", "cond"])
    assert nodes == {
        "ok": {"phase": "Succeeded", "outputs": {"result": "status 200"}},
        "bad": {
            "phase": "Failed",
            "message": "received non-2xx response code: 503",
            "outputs": {"result": "status 503"},
        },
        "cond": {"phase": "Succeeded", "outputs": {"result": "status 201"}},
    }
    patches = [r for r in sim.requests(verb="patch") if r.name == "wf"]
    assert patches, "no patch received"
    for record in patches:
        assert record.subresource == "status"
        assert record.content_type == "application/merge-patch+json"
        body = json.loads(record.body)
        assert list(body) == ["status"] and list(body["status"]) == ["nodes"]
        # Compact JSON, as Go's encoding/json writes it (no spaces after separators).
        assert record.body == json.dumps(body, separators=(",", ":")).encode()


async def test_tasks_added_over_time_each_run_once(sim: ApiSimulator, target: TargetServer) -> None:
    async with AgentProcess(sim, "--namespace", NS):
        sim.create_object(TS, taskset("grow", {"a": http_task(target.url("/echo?n=a"))}))
        await wait_for_nodes(sim, "grow", ["a"])
        for new in ("b", "c"):
            sim.patch_object(
                TS,
                "grow",
                {"spec": {"tasks": {new: http_task(target.url(f"/echo?n={new}"))}}},
                namespace=NS,
            )
            await wait_for_nodes(sim, "grow", [new])
        # Further events (our own patches) must not re-run anything: the sentinel's result
        # comes after the agent took in all of them.
        await sentinel(sim, target)
    reported = [n for p in status_patches(sim, "grow") for n in p["status"]["nodes"]]  # type: ignore[index]
    assert sorted(reported) == ["a", "b", "c"]


async def test_removed_task_is_never_reported(sim: ApiSimulator, target: TargetServer) -> None:
    async with AgentProcess(sim, "--namespace", NS):
        sim.create_object(
            TS,
            taskset(
                "rm",
                {
                    "slow": http_task(target.url("/delay/2")),
                    "fast": http_task(target.url("/status/200")),
                },
            ),
        )
        await wait_for_nodes(sim, "rm", ["fast"])
        sim.patch_object(TS, "rm", {"spec": {"tasks": {"slow": None}}}, namespace=NS)
        # A request as slow as "slow", started after it: once its result is in, "slow"
        # would have been reported too, had it not been cancelled.
        await sentinel(sim, target, path="/delay/2")
    reported = {n for p in status_patches(sim, "rm") for n in p["status"]["nodes"]}  # type: ignore[index]
    assert reported == {"fast"}


async def test_fulfilled_nodes_are_not_rerun_after_restart(
    sim: ApiSimulator, target: TargetServer
) -> None:
    sim.create_object(
        TS,
        taskset(
            "again",
            {
                "first": http_task(target.url("/echo?n=first")),
            },
        ),
    )
    async with AgentProcess(sim, "--namespace", NS):
        await wait_for_nodes(sim, "again", ["first"])
    sim.patch_object(
        TS,
        "again",
        {"spec": {"tasks": {"second": http_task(target.url("/echo?n=second"))}}},
        namespace=NS,
    )
    sim.clear_requests()
    async with AgentProcess(sim, "--namespace", NS):
        await wait_for_nodes(sim, "again", ["second"])
        await sentinel(sim, target)  # the agent took in every earlier event
    reported = {n for p in status_patches(sim, "again") for n in p["status"]["nodes"]}  # type: ignore[index]
    assert reported == {"second"}


async def test_dropped_watch_and_410_mid_run(sim: ApiSimulator, target: TargetServer) -> None:
    async with AgentProcess(sim, "--namespace", NS) as agent:
        sim.create_object(TS, taskset("w1", {"a": http_task(target.url("/status/200"))}))
        await wait_for_nodes(sim, "w1", ["a"])
        sim.drop_watches(abrupt=True)
        sim.create_object(TS, taskset("w2", {"b": http_task(target.url("/status/200"))}))
        await wait_for_nodes(sim, "w2", ["b"])
        # Compact the history and drop the watch: resuming from the old version gets
        # 410 Expired, and the agent must re-list to find the taskset created meanwhile.
        sim.drop_watches()
        sim.create_object(TS, taskset("w3", {"c": http_task(target.url("/status/200"))}))
        sim.compact()
        await wait_for_nodes(sim, "w3", ["c"])
        metrics = (await agent.get("/metrics")).text
    assert 'argo_agent_watch_restarts_total{reason="gone"}' in metrics
    gone = [
        ln
        for ln in metrics.splitlines()
        if ln.startswith('argo_agent_watch_restarts_total{reason="gone"}')
    ]
    assert float(gone[0].split()[-1]) >= 1


async def test_transient_patch_errors_are_retried(sim: ApiSimulator, target: TargetServer) -> None:
    sim.fail_next(2, code=500, verb="patch", resource="workflowtasksets/status")
    sim.fail_next(1, code=429, verb="patch", resource="workflowtasksets/status", retry_after=1)
    async with AgentProcess(sim, "--namespace", NS):
        sim.create_object(TS, taskset("flaky", {"n": http_task(target.url("/status/200"))}))
        nodes = await wait_for_nodes(sim, "flaky", ["n"], timeout=30)
    assert nodes["n"]["phase"] == "Succeeded"
    codes = [r.status for r in sim.requests(verb="patch", name="flaky")]
    assert codes[:3] == [500, 500, 429] and codes[-1] == 200


async def test_oversized_result_errors_only_its_own_node(
    sim: ApiSimulator, target: TargetServer
) -> None:
    """A 413 for one result among many: the batch is split, only that node is Error."""
    sim.options.max_body_bytes = 20_000
    tasks = {f"small{i}": http_task(target.url(f"/echo?i={i}")) for i in range(5)}
    tasks["huge"] = http_task(target.url("/bytes/50000"))
    # Delay the first patch so every result lands in one batch.
    sim.delay(0.5, count=1, verb="patch")
    async with AgentProcess(sim, "--namespace", NS):
        sim.create_object(TS, taskset("big", tasks))
        nodes = await wait_for_nodes(sim, "big", list(tasks), timeout=30)
    assert nodes["huge"] == {
        "phase": "Error",
        "message": "HTTP request completed successfully but an error occurred when patching its "
        "result: Request entity too large: limit is 20000",
    }
    for i in range(5):
        assert nodes[f"small{i}"]["phase"] == "Succeeded"
    assert any(r.status == 413 for r in sim.requests(verb="patch", name="big"))


async def test_secret_headers_allowed_and_forbidden(
    sim: ApiSimulator, target: TargetServer
) -> None:
    sim.create_object(
        "secrets",
        secret("api-token", {"token": "s3cr3t-value"}, namespace=NS),
    )
    secret_header = {
        "name": "X-Token",
        "valueFrom": {"secretKeyRef": {"name": "api-token", "key": "token"}},
    }
    missing_key = {
        "name": "X-Other",
        "valueFrom": {"secretKeyRef": {"name": "api-token", "key": "nope"}},
    }
    # The workflow's service account may get the Secret (see test_secret_authority_e2e.py).
    uid = owner_workflow(sim, "sec", secrets=["api-token"])
    async with AgentProcess(sim, "--namespace", NS) as agent:
        sim.create_object(
            TS,
            taskset(
                "sec",
                {
                    "ok": http_task(target.url("/echo"), headers=[secret_header]),
                    "missing": http_task(target.url("/echo"), headers=[missing_key]),
                },
                owner_uid=uid,
            ),
        )
        nodes = await wait_for_nodes(sim, "sec", ["ok", "missing"])
        logs = agent.logs()
    echoed = json.loads(nodes["ok"]["outputs"]["result"])
    assert ["X-Token", "s3cr3t-value"] in echoed["headers"]
    assert nodes["missing"] == {
        "phase": "Failed",
        "message": "secret 'api-token' does not have the key 'nope'",
    }
    assert "s3cr3t-value" not in logs

    # An agent whose own service account lacks `get secrets` (with the agent's authority,
    # the only one consulted): the node fails naming the permission.
    limited = "no-secrets"
    sim.add_token(
        limited,
        [
            Rule.of("get list watch", "workflowtasksets"),
            Rule.of("patch", "workflowtasksets/status"),
            LEASES,
        ],
    )
    async with AgentProcess(sim, "--namespace", NS, "--secret-authority", "agent", token=limited):
        sim.create_object(
            TS, taskset("sec2", {"ok": http_task(target.url("/echo"), headers=[secret_header])})
        )
        nodes = await wait_for_nodes(sim, "sec2", ["ok"])
    assert nodes["ok"]["phase"] == "Failed"
    assert "api-token" in nodes["ok"]["message"]
    assert "'get secrets' permission" in nodes["ok"]["message"]


async def test_forbidden_status_patch_is_never_silent(
    sim: ApiSimulator, target: TargetServer
) -> None:
    """Argo's agent turns a non-transient patch error (a 403) into Error for the whole batch
    (workflow/executor/agent.go ``patchWorker``; util/errors/errors.go ``IsTransientErr``
    is false for a 403 without "exceeded quota"). Here the results are kept and retried
    until RBAC is fixed, but never silently: /readyz fails naming the refusal, the error is
    logged (once a minute at most) and counted."""
    token = "no-status-patch"
    sim.add_token(token, [Rule.of("get list watch", "workflowtasksets"), LEASES])
    async with AgentProcess(sim, "--namespace", NS, token=token) as agent:
        sim.create_object(TS, taskset("denied", {"n": http_task(target.url("/status/200"))}))
        for _ in range(600):
            ready = await agent.get("/readyz")
            if ready.status_code == 503:
                break
            await asyncio.sleep(0.05)
        assert ready.status_code == 503, agent.logs()
        reason = ready.json()["reason"]
        assert reason.startswith(
            "status patches forbidden (403) for 1 taskset(s), e.g. argo/denied"
        )
        assert "results are kept and retried" in reason
        scraped = (await agent.get("/metrics")).text
        assert 'argo_agent_patch_forbidden_total{code="403"}' in scraped
        # Permission granted: the kept result lands and the agent is ready again.
        sim.add_token(
            token,
            [
                Rule.of("get list watch", "workflowtasksets"),
                Rule.of("patch", "workflowtasksets/status"),
                LEASES,
            ],
        )
        nodes = await wait_for_nodes(sim, "denied", ["n"])
        await agent.wait_ready()
        logs = agent.logs()
    assert nodes["n"]["phase"] == "Succeeded"
    assert logs.count("status patch refused (403)") == 1, logs


async def test_per_workflow_mode_exits_when_completed(
    sim: ApiSimulator, target: TargetServer
) -> None:
    sim.create_object(TS, taskset("mine", {"n": http_task(target.url("/status/200"))}))
    sim.create_object(TS, taskset("other", {"n": http_task(target.url("/status/200"))}))
    agent = AgentProcess(sim, "--namespace", NS, env={"ARGO_WORKFLOW_NAME": "mine"})
    await agent.start()
    await agent.wait_ready()
    await wait_for_nodes(sim, "mine", ["n"])
    sim.patch_object(
        TS,
        "mine",
        {"metadata": {"labels": {"workflows.argoproj.io/completed": "true"}}},
        namespace=NS,
    )
    assert await agent.stop(sig=0, timeout=15) == 0  # sig 0: no signal, it must exit by itself
    other = sim.get_object(TS, "other", namespace=NS)
    assert "status" not in other or not other["status"].get("nodes"), "served a taskset not its own"
    lists = [r for r in sim.requests(verb="list") + sim.requests(verb="watch") if r.resource == TS]
    assert lists and all(r.query.get("fieldSelector") == "metadata.name=mine" for r in lists)


async def test_per_workflow_mode_selects_by_name_only(
    sim: ApiSimulator, target: TargetServer
) -> None:
    """A controller with an instance ID labels the taskset but does not pass the ID to the
    agent pod (workflow/controller/agent.go ``createAgentPod``: no ARGO_INSTANCE_ID), and
    Argo's agent selects its taskset by name only (workflow/executor/agent.go ``Agent``:
    ``FieldSelector: "metadata.name=" + name``, no label selector)."""
    labels = {"workflows.argoproj.io/controller-instanceid": "team-a"}
    task = {"n": http_task(target.url("/status/200"))}
    sim.create_object(TS, taskset("labelled", task, labels=labels))
    async with AgentProcess(sim, "--namespace", NS, "--workflow", "labelled"):
        nodes = await wait_for_nodes(sim, "labelled", ["n"])
    assert nodes["n"]["phase"] == "Succeeded"
    lists = [r for r in sim.requests(verb="list") + sim.requests(verb="watch") if r.resource == TS]
    assert lists and all("labelSelector" not in r.query for r in lists)


async def test_per_workflow_mode_exits_when_deleted(
    sim: ApiSimulator, target: TargetServer
) -> None:
    sim.create_object(TS, taskset("gone", {"n": http_task(target.url("/status/200"))}))
    agent = AgentProcess(sim, "--namespace", NS, "--workflow", "gone")
    await agent.start()
    await agent.wait_ready()
    await wait_for_nodes(sim, "gone", ["n"])
    sim.delete_object(TS, "gone", namespace=NS)
    assert await agent.stop(sig=0, timeout=15) == 0


async def test_shared_mode_serves_many_namespaces_and_honours_instance_id(
    sim: ApiSimulator, target: TargetServer
) -> None:
    label = "workflows.argoproj.io/controller-instanceid"
    cases = [("a", "team-a", "blue"), ("b", "team-b", "blue"), ("c", "team-c", "green"),
             ("d", "team-d", None)]  # fmt: skip
    async with AgentProcess(sim, "--all-namespaces", "--instance-id", "blue"):
        for name, namespace, instance in cases:
            labels = {label: instance} if instance else {}
            task = {"n": http_task(target.url("/status/200"))}
            sim.create_object(TS, taskset(name, task, namespace=namespace, labels=labels))
        await wait_for_nodes(sim, "a", ["n"], namespace="team-a")
        await wait_for_nodes(sim, "b", ["n"], namespace="team-b")
        # Created after c and d, in a namespace of its own, for this instance: once its
        # result is in, the agent has taken in (and skipped) c and d.
        await sentinel(sim, target, namespace="team-e", labels={label: "blue"})
    for ns, name in (("team-c", "c"), ("team-d", "d")):
        assert not (sim.get_object(TS, name, namespace=ns).get("status") or {}).get("nodes")


async def test_graceful_shutdown_flushes_in_flight_results(
    sim: ApiSimulator, target: TargetServer
) -> None:
    agent = AgentProcess(sim, "--namespace", NS)
    await agent.start()
    await agent.wait_ready()
    sim.create_object(TS, taskset("drain", {"slow": http_task(target.url("/delay/1"))}))
    for _ in range(200):  # wait until the request is in flight, then ask the agent to stop
        if "argo_agent_tasks_in_flight 1.0" in (await agent.get("/metrics")).text:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"the request never went in flight:\n{agent.logs()}")
    assert await agent.stop(signal.SIGTERM) == 0
    nodes = (sim.get_object(TS, "drain", namespace=NS).get("status") or {}).get("nodes") or {}
    assert nodes.get("slow", {}).get("phase") == "Succeeded", agent.logs()


async def test_invalid_configuration_fails_at_start_naming_the_variable(sim: ApiSimulator) -> None:
    agent = AgentProcess(sim, "--namespace", NS, env={"ARGO_AGENT_PATCH_RATE": "soon"})
    await agent.start()
    assert await agent.wait_exit(15) == 2
    assert "ARGO_AGENT_PATCH_RATE" in agent.logs()
    await agent.kill()
