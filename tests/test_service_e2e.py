"""The service surface of a real agent process: probes, metrics, version, logs, signals."""

from __future__ import annotations

import asyncio
import json
import signal
import time

from agent_sim import ApiSimulator
from agent_sim.samples import secret

from agent import __version__
from tests.agentproc import AgentProcess, http_task, owner_workflow, taskset, wait_for_nodes
from tests.servers import TargetServer

NS = "argo"
TS = "workflowtasksets"


def metric_value(text: str, name: str, labels: str = "") -> float:
    prefix = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[-1])
    raise AssertionError(f"metric {prefix} not found")


async def scrape_until(agent: AgentProcess, *settled: str, timeout: float = 20.0) -> str:
    """Scrape /metrics until every ``settled`` line is in the exposition; return it all.
    A barrier: counters are updated after the status they count is in the API, gauges
    periodically."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = (await agent.get("/metrics")).text
        if set(settled) <= set(text.splitlines()):
            return text
        await asyncio.sleep(0.02)
    raise AssertionError(f"{settled!r} never all in /metrics:\n{text}\n{agent.logs()}")


async def wait_log(agent: AgentProcess, needle: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in agent.logs():
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} never logged:\n{agent.logs()}")
        await asyncio.sleep(0.02)


async def test_probes_metrics_and_version(sim: ApiSimulator, target: TargetServer) -> None:
    async with AgentProcess(sim, "--namespace", NS) as agent:
        health = await agent.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        ready = await agent.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert (await agent.get("/version")).json() == {"version": __version__}
        docs = await agent.get("/openapi.json")
        assert set(docs.json()["paths"]) == {"/healthz", "/readyz", "/metrics", "/version"}
        sim.create_object(
            TS,
            taskset(
                "m",
                {
                    "ok": http_task(target.url("/status/200")),
                    "bad": http_task(target.url("/status/500")),
                    "cond": http_task(
                        target.url("/status/200"), successCondition="response.statusCode == 1"
                    ),
                },
            ),
        )
        await wait_for_nodes(sim, "m", ["ok", "bad", "cond"], namespace=NS)
        text = await scrape_until(
            agent, "argo_agent_patch_nodes_total 3.0", "argo_agent_tasksets_watched 1.0"
        )
        assert (await agent.post_status("/metrics")) == 405  # nothing on this port changes state
    assert metric_value(text, "argo_agent_tasks_received_total") == 3
    assert metric_value(text, "argo_agent_tasks_finished_total", 'phase="Succeeded"') == 1
    assert metric_value(text, "argo_agent_tasks_finished_total", 'phase="Failed"') == 2
    assert metric_value(text, "argo_agent_tasks_in_flight") == 0
    assert metric_value(text, "argo_agent_patch_batches_total") >= 1
    assert metric_value(text, "argo_agent_patch_nodes_total") == 3
    assert (
        metric_value(
            text,
            "argo_agent_http_request_duration_seconds_count",
            'method="GET",status_class="2xx"',
        )
        == 2
    )
    assert (
        metric_value(text, "argo_agent_success_condition_evaluations_total", 'outcome="false"') == 1
    )
    assert metric_value(text, "argo_agent_tasksets_watched") == 1
    assert "127.0.0.1" not in text and "/status/" not in text, "URLs must never be labels"


async def test_not_ready_while_the_api_refuses_the_agent(sim: ApiSimulator) -> None:
    sim.add_token("revoked")
    agent = AgentProcess(sim, "--namespace", NS, token="revoked")
    await agent.start()
    try:
        await agent.wait_ready()
        sim.remove_token("revoked")
        sim.drop_watches()
        for _ in range(200):
            response = await agent.get("/readyz")
            if response.status_code == 503:
                break
            await asyncio.sleep(0.05)
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "not ready"
        assert "401" in body["reason"] or "Unauthorized" in body["reason"]
        assert (await agent.get("/healthz")).status_code == 200  # alive, just not ready
    finally:
        await agent.stop()


async def test_second_signal_exits_at_once(sim: ApiSimulator, target: TargetServer) -> None:
    agent = AgentProcess(sim, "--namespace", NS, "--shutdown-grace", "60")
    await agent.start()
    await agent.wait_ready()
    sim.create_object(TS, taskset("hang", {"h": http_task(target.url("/hang"), timeoutSeconds=60)}))
    await scrape_until(agent, "argo_agent_tasks_in_flight 1.0")
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGTERM)  # first: drain (would wait up to 60 s)
    await wait_log(agent, "stopping")  # the first signal was handled: the agent is draining
    # Still alive after it, still waiting on the running request (a positive observation).
    await scrape_until(agent, "argo_agent_tasks_in_flight 1.0")
    assert agent.proc.returncode is None
    code = await agent.stop(signal.SIGTERM, timeout=5)  # second: exit now
    assert code == 1
    assert "second signal" in agent.logs()


async def test_json_logs_carry_context_and_no_secrets(
    sim: ApiSimulator, target: TargetServer
) -> None:
    sim.create_object(
        "secrets",
        secret("creds", {"token": "Bearer top-secret-token"}, namespace=NS),
    )
    header = {
        "name": "Authorization",
        "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}},
    }
    uid = owner_workflow(sim, "logs", namespace=NS, secrets=["creds"])
    agent = AgentProcess(sim, "--namespace", NS, "--log-level", "debug")
    agent.args[agent.args.index("text")] = "json"
    async with agent:
        sim.create_object(
            TS,
            taskset(
                "logs",
                {
                    "n": http_task(
                        target.url("/echo"), headers=[header, {"name": "X-Plain", "value": "v"}]
                    ),
                },
                owner_uid=uid,
            ),
        )
        await wait_for_nodes(sim, "logs", ["n"], namespace=NS)
    lines = [json.loads(line) for line in agent.logs().splitlines() if line.startswith("{")]
    assert lines, agent.logs()
    assert all({"time", "level", "logger", "msg"} <= set(entry) for entry in lines)
    assert any(
        entry.get("msg") == "agent started" and entry.get("mode") == "shared" for entry in lines
    )
    assert any(
        entry.get("namespace") == NS and entry.get("taskset") == "logs" and entry.get("node") == "n"
        for entry in lines
    ), "no log record carries the node's namespace, taskset and node ID"
    assert "top-secret-token" not in agent.logs()
