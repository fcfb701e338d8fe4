"""The dashboard and the alert rules, proven against the real Prometheus and promtool.

``charts/argo-http-agent/files`` holds the two artefacts the chart ships: the alert rules
as a plain rules file (the PrometheusRule is made of it) and the Grafana dashboard JSON.

* ``promtool check rules`` validates the rules file, ``promtool test rules`` runs the unit
  tests in ``tests/monitoring/alerts_test.yaml``, which show every alert firing (and near
  misses silent);
* every alert has its paragraph in ``docs/runbook.md``;
* an integration test runs a real Prometheus on 127.0.0.1 that scrapes a running agent (a
  real process, against the simulator and a local target) every second under a short load,
  loads the rules file, then asks Prometheus's HTTP API for every dashboard panel query and
  for every series selector of every alert: each must return data with the labels its legend
  or its grouping names (the agent runs as a Lease member, so the replica metrics have data
  too). Prometheus must also have evaluated every rule without an error, and none fires on
  the healthy agent.

promtool and prometheus come from Debian's ``prometheus`` package: ``make tools`` (run by
``make test``) installs it where it is missing; where it cannot, these tests are skipped
with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from agent_sim import ApiSimulator
from agent_sim.samples import secret

from tests.agentproc import AgentProcess, free_port, http_task, owner_workflow, taskset
from tests.servers import TargetServer

ROOT = Path(__file__).resolve().parents[1]
FILES = ROOT / "charts" / "argo-http-agent" / "files"
RULES_FILE = FILES / "argo-http-agent.rules.yaml"
DASHBOARD_FILE = FILES / "argo-http-agent-dashboard.json"
UNIT_TESTS = ROOT / "tests" / "monitoring" / "alerts_test.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"
README = ROOT / "README.md"

JOB = "argo-http-agent"
NS = "argo"
TS = "workflowtasksets"
# Metrics of agent replicas (members, handovers, lease renewals), built elsewhere: their
# panels and alerts may return no data until the agent exports them.
# What Grafana substitutes in the dashboard's queries.
RATE_INTERVAL = "15s"

_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_GROUPING = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed: `make tools` installs Debian's prometheus package "
            "(it needs root and apt-get); on other systems install Prometheus 2.x yourself"
        )
    return path


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_targets() -> list[tuple[str, str, str]]:
    """(panel title, query as Grafana sends it for this job, legend) of every panel."""
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            expr = (
                target["expr"]
                .replace("$__rate_interval", RATE_INTERVAL)
                .replace("$job", JOB)
                .replace("$instance", ".*")
            )
            out.append((panel["title"], expr, target.get("legendFormat", "")))
    return out


def _metric_names(expr: str) -> set[str]:
    return {match.group(1) for match in _SELECTOR.finditer(expr)}


def _base_name(metric: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if metric.endswith(suffix):
            return metric.removesuffix(suffix)
    return metric


# --- promtool ---------------------------------------------------------------------------------


def test_rules_file_passes_promtool_check() -> None:
    done = subprocess.run(
        [_tool("promtool"), "check", "rules", str(RULES_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_every_alert_is_unit_tested_and_the_tests_pass() -> None:
    alerts = {rule["alert"] for rule in _rules()}
    fired: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", ()):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    assert fired == alerts, f"alerts never shown firing: {sorted(alerts - fired)}"
    done = subprocess.run(
        [_tool("promtool"), "test", "rules", str(UNIT_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_runbook_paragraph() -> None:
    runbook = RUNBOOK.read_text()
    sections = dict(
        (heading.strip().lower(), body.strip())
        for heading, body in re.findall(r"^## (.+)\n((?:(?!^## ).*\n?)*)", runbook, re.M)
    )
    for rule in _rules():
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/runbook.md#{rule['alert'].lower()}", url
        body = sections.get(rule["alert"].lower())
        assert body, f"docs/runbook.md has no paragraph for {rule['alert']}"
        assert len(body.split()) > 40, f"{rule['alert']}: the runbook paragraph is a stub"
        for key in ("summary", "description"):
            assert rule["annotations"][key].strip(), (rule["alert"], key)
        assert rule["labels"]["severity"] in {"warning", "critical"}


# --- a real Prometheus scraping a running agent -------------------------------------------


class Prometheus:
    """``prometheus`` as a subprocess on 127.0.0.1 with its own config and storage."""

    def __init__(self, binary: str, workdir: Path, *, scrape: str, rules: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [scrape]}]}],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.argv = [
            binary,
            f"--config.file={config_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={workdir / 'data'}",
            "--storage.tsdb.retention.time=1h",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    @contextlib.contextmanager
    def running(self) -> Iterator[Prometheus]:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
            try:
                yield self
            finally:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()

    async def wait_ready(self, client: httpx.AsyncClient, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited ({self.proc.returncode}):\n{self.logs()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{self.url}/-/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError(f"prometheus not ready after {timeout}s:\n{self.logs()}")

    async def query(self, client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (an error fails the test)."""
        response = await client.get(f"{self.url}/api/v1/query", params={"query": expr})
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (expr, body)
        assert body["data"]["resultType"] == "vector", (expr, body["data"]["resultType"])
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def wait_for(
        self, client: httpx.AsyncClient, expr: str, *, timeout: float = 45.0
    ) -> list[dict[str, Any]]:
        """Poll until ``expr`` returns data (a positive barrier); fail when time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = await self.query(client, expr)
            if result:
                return result
            await asyncio.sleep(0.5)
        raise AssertionError(f"no data for {expr} after {timeout}s:\n{self.logs()}")


async def _load(sim: ApiSimulator, target: TargetServer) -> None:
    """Tasksets that exercise every class of result until cancelled (about 3 per second)."""
    token = {"name": "X-Token", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}
    for wave in itertools.count():
        tasks = {
            f"w{wave}-ok-{i}": http_task(target.url("/echo"), headers=[token]) for i in range(6)
        }
        tasks[f"w{wave}-cond"] = http_task(
            target.url("/status/200"), successCondition="response.statusCode == 200"
        )
        tasks[f"w{wave}-404"] = http_task(target.url("/status/404"))
        tasks[f"w{wave}-503"] = http_task(target.url("/status/503"))
        tasks[f"w{wave}-slow"] = http_task(target.url("/delay/0.5"))
        tasks[f"w{wave}-refused"] = http_task("http://127.0.0.1:1/")  # nothing listens
        # Owned by a Workflow whose (default) account may get the Secret.
        uid = owner_workflow(sim, f"load-{wave}", namespace=NS, secrets=["api"])
        sim.create_object(TS, taskset(f"load-{wave}", tasks, namespace=NS, owner_uid=uid))
        await asyncio.sleep(0.3)


@contextlib.asynccontextmanager
async def _loaded(sim: ApiSimulator, target: TargetServer) -> AsyncIterator[None]:
    load = asyncio.create_task(_load(sim, target), name="load")
    try:
        yield
    finally:
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load


def _labels_named(expr: str, legend: str) -> set[str]:
    """The labels every series of ``expr`` must carry: its legend's and its grouping's."""
    named = set(_LEGEND_LABEL.findall(legend))
    for grouping in _GROUPING.findall(expr):
        named |= {label.strip() for label in grouping.split(",") if label.strip() != "le"}
    named.discard("")
    return named


async def test_a_real_prometheus_answers_every_panel_and_alert_query(
    sim: ApiSimulator, target: TargetServer, tmp_path: Path
) -> None:
    binary = _tool("prometheus")
    sim.create_object("secrets", secret("api", {"token": "t0ken"}, namespace=NS))
    async with AgentProcess(sim, "--namespace", NS, "--task-workers", "4") as agent:
        prometheus = Prometheus(
            binary, tmp_path, scrape=f"127.0.0.1:{agent.port}", rules=RULES_FILE
        )
        with prometheus.running():
            async with httpx.AsyncClient(timeout=10) as client, _loaded(sim, target):
                await prometheus.wait_ready(client)
                # Barriers: results were scraped twice over a rate window, and every rule
                # has been evaluated at least twice.
                await prometheus.wait_for(
                    client,
                    f'increase(argo_agent_result_latency_seconds_count{{job="{JOB}"}}'
                    f"[{RATE_INTERVAL}]) > 0",
                )
                await prometheus.wait_for(
                    client,
                    f'count_over_time(argo_agent_tasks_finished_total{{job="{JOB}", '
                    f'phase="Failed"}}[{RATE_INTERVAL}]) >= 5',
                )
                rules = await _evaluated_rules(prometheus, client)

                empty: list[str] = []  # queries without data, or of the wrong shape
                for title, expr, legend in _dashboard_targets():
                    result = await prometheus.query(client, expr)
                    if not result:
                        empty.append(f"panel {title!r}: {expr}")
                        continue
                    for series in result:
                        missing = _labels_named(expr, legend) - set(series["metric"])
                        if missing:
                            empty.append(f"panel {title!r}: {series} lacks {sorted(missing)}")
                        float(series["value"][1])  # a number (NaN and Inf parse too)

                for rule in _rules():
                    # The whole expression evaluates; each selector in it finds the agent.
                    await prometheus.query(client, rule["expr"])
                    for match in _SELECTOR.finditer(rule["expr"]):
                        selector = match.group(0)
                        if not await prometheus.query(client, selector):
                            empty.append(f"alert {rule['alert']}: {selector}")
                assert empty == [], "queries without data or labels:\n" + "\n".join(empty)

                for rule in rules:
                    assert rule["health"] == "ok", rule
                    assert rule["state"] == "inactive", rule  # a healthy agent fires none
                assert {r["name"] for r in rules} == {r["alert"] for r in _rules()}
    assert agent.proc is not None and agent.proc.returncode == 0, agent.logs()


async def test_the_cpu_panel_shows_each_worker_of_a_pod_with_several_processes(
    sim: ApiSimulator, tmp_path: Path
) -> None:
    # A single-process agent shows as worker 1/1 (the test above); a pod with workers shows
    # each of them, and not also its total under 1/1.
    binary = _tool("prometheus")
    (expr,) = [
        e for title, e, legend in _dashboard_targets() if title == "CPU" and "worker" in legend
    ]
    # Without Leases: a joining member's settle time would only delay its readiness here.
    membership = ("--membership", "none")
    async with AgentProcess(sim, "--namespace", NS, "--processes", "2", *membership) as agent:
        prometheus = Prometheus(
            binary, tmp_path, scrape=f"127.0.0.1:{agent.port}", rules=RULES_FILE
        )
        with prometheus.running():
            async with httpx.AsyncClient(timeout=10) as client:
                await prometheus.wait_ready(client)
                await prometheus.wait_for(
                    client,
                    f'count(rate(argo_agent_worker_cpu_seconds_total{{job="{JOB}"}}'
                    f"[{RATE_INTERVAL}])) == 2",
                )
                result = await prometheus.query(client, expr)
    assert sorted(series["metric"]["worker"] for series in result) == ["1/2", "2/2"], result


async def _evaluated_rules(
    prometheus: Prometheus, client: httpx.AsyncClient, *, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The loaded alerting rules, once each has been evaluated (positive barrier)."""
    deadline = time.monotonic() + timeout
    rules: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = await client.get(f"{prometheus.url}/api/v1/rules", params={"type": "alert"})
        groups = response.json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = [r for r in rules if not r.get("lastEvaluation", "").startswith("0001-")]
        if rules and len(evaluated) == len(rules):
            return rules
        await asyncio.sleep(0.5)
    raise AssertionError(f"rules not evaluated after {timeout}s: {rules}\n{prometheus.logs()}")


async def test_readiness_and_known_labels_are_exported_for_one_or_several_processes(
    sim: ApiSimulator,
) -> None:
    # The gauge follows /readyz; with --processes N it is the supervisor's verdict for the
    # pod (one sample, not a sum over workers). Known label values exist at 0 from the start.
    from prometheus_client.parser import text_string_to_metric_families

    # Without Leases: a second worker's settle time after joining would only delay readiness.
    for processes in ("1", "2"):
        args = ("--namespace", NS, "--processes", processes, "--membership", "none")
        async with AgentProcess(sim, *args) as agent:
            assert (await agent.get("/readyz")).status_code == 200
            text = (await agent.get("/metrics")).text
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        assert [v for (n, _), v in samples.items() if n == "argo_agent_ready"] == [1.0], processes
        for reason in ("taskset_deleted", "node_removed", "rejected"):
            key = ("argo_agent_results_dropped_total", (("reason", reason),))
            assert samples[key] == 0.0, (processes, reason)
        assert samples[("argo_agent_result_latency_seconds_count", ())] == 0.0
        assert ("process_cpu_seconds_total", ()) in samples
