"""``argo-http-agent demo``: the whole agent on one machine, in a few seconds.

It starts the project's Kubernetes API simulator and a small echo target on 127.0.0.1,
runs the real agent (``argo-http-agent run``, shared mode) as a separate process against
them, creates WorkflowTaskSets the way Argo's controller would (success, a failing status,
a ``successCondition``, a secret-sourced header, a timeout, a POST with a body), waits for
the results to appear in each taskset's status, prints them as a table, and stops
everything. Nothing outside this machine is contacted.

When moto (a test dependency of the agent, installed by ``make demo``) is importable, it
also serves an S3 bucket on 127.0.0.1: a task declares an output artifact, its 3 MiB body
is streamed into the bucket found through the namespace's ``artifact-repositories``
ConfigMap, and the object is read back. Without moto that part is skipped, saying so: the
agent itself never needs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from agent_sim import ApiSimulator, Rule, service_account_user
from agent_sim.samples import configmap, http_task, secret, workflow, workflow_taskset
from agent_sim.target import pattern, target_app

__all__ = ["main"]

_TOKEN = "demo-token"
_NS = "argo"
_TS = "workflowtasksets"
_BUCKET = "demo-artifacts"
_REPORT_BYTES = 3 * 1024 * 1024


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="argo-http-agent demo", description=__doc__)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for results")
    args = parser.parse_args(argv)
    return asyncio.run(_demo(timeout=args.timeout))


async def _demo(*, timeout: float) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="argo-http-agent-demo-"))
    target = await _start_target()
    target_url = f"http://127.0.0.1:{_port(target)}"
    bucket = await _start_bucket()
    try:
        return await _with_target(workdir, target, target_url, bucket, timeout=timeout)
    finally:
        if bucket is not None:
            bucket[0].stop()


async def _with_target(
    workdir: Path,
    target: web.AppRunner,
    target_url: str,
    bucket: tuple[Any, str] | None,
    *,
    timeout: float,
) -> int:
    async with ApiSimulator() as sim:
        sim.add_token(_TOKEN)
        kubeconfig = sim.kubeconfig(workdir / "kubeconfig", token=_TOKEN, namespace=_NS)
        _say(f"API simulator   {sim.url}  (kubeconfig: {kubeconfig})")
        _say(f"echo target     {target_url}")
        if bucket is not None:
            _say(f"S3 bucket       http://{bucket[1]}/{_BUCKET}  (moto_server)")
        else:
            _say("S3 bucket       skipped: moto is not installed (pip install 'moto[server]')")
        log_path = workdir / "agent.log"
        with open(log_path, "wb") as log:
            agent = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agent",
                "run",
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                _NS,
                "--metrics-host",
                "127.0.0.1",
                "--metrics-port",
                "0",
                "--log-format",
                "text",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "ARGO_AGENT_CA_DIR": str(workdir / "no-extra-ca")},
            )
            _say(
                f"agent           pid {agent.pid}: argo-http-agent run --namespace {_NS} "
                f"(log: {log_path})"
            )
            try:
                return await _scenario(
                    sim,
                    target_url,
                    agent,
                    log_path,
                    timeout=timeout,
                    s3=None if bucket is None else bucket[1],
                )
            finally:
                if agent.returncode is None:
                    agent.send_signal(signal.SIGTERM)
                    code = await asyncio.wait_for(agent.wait(), 30)
                    _say(f"agent stopped (exit code {code})")
                await target.cleanup()


async def _scenario(
    sim: ApiSimulator,
    target: str,
    agent: asyncio.subprocess.Process,
    log_path: Path,
    *,
    timeout: float,
    s3: str | None,
) -> int:
    await asyncio.wait_for(sim.wait_for_watches(1), timeout)
    sim.create_object(
        "secrets",
        secret("demo-credentials", {"token": "not-a-real-token"}, namespace=_NS),
    )
    tasksets = {
        "orders-wf": {
            "get-status": http_task(f"{target}/status/200"),
            "create-order": http_task(
                f"{target}/echo",
                method="POST",
                body='{"item": "book"}',
                headers=[{"name": "Content-Type", "value": "application/json"}],
            ),
            "server-error": http_task(f"{target}/status/503"),
        },
        "checks-wf": {
            "condition-true": http_task(
                f"{target}/status/201", successCondition="response.statusCode == 201"
            ),
            "condition-false": http_task(
                f"{target}/echo", successCondition='response.body contains "pineapple"'
            ),
            "secret-header": http_task(
                f"{target}/echo",
                headers=[
                    {
                        "name": "Authorization",
                        "valueFrom": {"secretKeyRef": {"name": "demo-credentials", "key": "token"}},
                    }
                ],
            ),
            "too-slow": http_task(f"{target}/delay/5", timeoutSeconds=1),
            "refused": http_task("http://127.0.0.1:9/unreachable"),
        },
    }
    secrets = ["demo-credentials"]
    if s3 is not None:
        secrets.append("demo-s3")
        _artifact_repository(sim, s3)
        tasksets["reports-wf"] = {
            "download-report": {
                **http_task(f"{target}/pattern/{_REPORT_BYTES}"),
                "outputs": {"artifacts": [{"name": "report"}]},
            }
        }
    sim.grant(
        [Rule.of("get", "secrets", namespaces=_NS, resource_names=secrets)],
        user=service_account_user(_NS, "demo-workflows"),
    )
    started = time.monotonic()
    for name, tasks in tasksets.items():
        # The owner Workflow, whose service account may read the demo's Secret: the agent
        # uses a Secret with the workflow's authority (--secret-authority workflow).
        owner = sim.create_object(
            "workflows", workflow(name, namespace=_NS, service_account="demo-workflows")
        )
        sim.create_object(
            _TS,
            workflow_taskset(name, tasks, namespace=_NS, owner_uid=owner["metadata"]["uid"]),
        )
    _say(
        f"created {len(tasksets)} WorkflowTaskSets with "
        f"{sum(len(t) for t in tasksets.values())} HTTP tasks; waiting for results...\n"
    )
    results: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
    claimed: set[tuple[str, str]] = set()
    deadline = started + timeout
    while len(results) < sum(len(t) for t in tasksets.values()):
        if time.monotonic() > deadline:
            _say(f"timed out; the agent's log is in {log_path}")
            return 1
        if agent.returncode is not None:
            _say(f"the agent exited ({agent.returncode}); its log:\n{log_path.read_text()}")
            return 1
        for name in tasksets:
            obj = sim.get_object(_TS, name, namespace=_NS)
            for node, status in ((obj.get("status") or {}).get("nodes") or {}).items():
                if (
                    status.get("phase") not in ("Running", "Pending")
                    and (name, node) not in results
                ):
                    results[(name, node)] = (status, time.monotonic() - started)
        await asyncio.sleep(0.01)
    _print_table(tasksets, results)
    patches = [r for r in sim.requests(verb="patch") if r.subresource == "status"]
    for record in patches:  # claims: written (phase Running) before a POST is sent
        for node, body in json.loads(record.body)["status"]["nodes"].items():
            if body.get("phase") == "Running":
                claimed.add((str(record.name), node))
    _say(
        f"\n{len(results)} results in the tasksets' status after "
        f"{max(t for _, t in results.values()):.2f}s, delivered in {len(patches)} merge "
        "patches on the status subresource (Argo's agent would wait for its 10 s patch tick)."
    )
    _say("each row is exactly what Argo's controller reads from the taskset's status.nodes")
    _say(
        "a workflow sees these results when Argo's controller next reconciles it: up to "
        "DEFAULT_REQUEUE_TIME (10s by default) later, with either agent; set it lower on the "
        "controller (e.g. 2s) to profit from this speed"
    )
    if s3 is not None:
        await _show_artifact(results[("reports-wf", "download-report")][0], s3)
    for name, node in sorted(claimed):
        _say(
            f"{name}/{node} was first claimed in the status (phase Running) and only then sent: "
            "a restarted agent will not send it twice (--redelivery=idempotent)"
        )
    return 0


def _print_table(
    tasksets: dict[str, dict[str, Any]],
    results: dict[tuple[str, str], tuple[dict[str, Any], float]],
) -> None:
    rows = [("TASKSET", "NODE", "REQUEST", "PHASE", "AFTER", "MESSAGE / RESULT")]
    for name, tasks in tasksets.items():
        for node, template in tasks.items():
            status, after = results[(name, node)]
            http = template["http"]
            request = f"{http.get('method') or 'GET'} {http['url'].split('//', 1)[-1]}"
            outputs = status.get("outputs") or {}
            detail = status.get("message") or outputs.get("result", "")
            for artifact in outputs.get("artifacts") or ():
                location = artifact.get("s3") or {}
                detail = f"artifact {artifact['name']}: s3://{location.get('bucket')}/{location.get('key')}"
            rows.append(
                (
                    name,
                    node,
                    request,
                    status.get("phase", ""),
                    f"{after * 1000:.0f}ms",
                    _short(detail),
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )


async def _start_bucket() -> tuple[Any, str] | None:
    """moto's S3 server on 127.0.0.1 with the demo's bucket, or None without moto."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        return None
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    async with aiohttp.ClientSession() as session:  # moto accepts unsigned requests
        async with session.put(f"http://{endpoint}/{_BUCKET}") as response:
            response.raise_for_status()
    return server, endpoint


def _read_object(endpoint: str, key: str) -> bytes:
    """The object, read with a plain S3 client (boto3 comes with moto)."""
    import boto3  # type: ignore[import-untyped]  # comes with moto, untyped

    client = boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id="demo-access",
        aws_secret_access_key="demo-secret",
        region_name="us-east-1",
    )
    body: bytes = client.get_object(Bucket=_BUCKET, Key=key)["Body"].read()
    return body


def _artifact_repository(sim: ApiSimulator, endpoint: str) -> None:
    """The namespace's default artifact repository, as Argo documents it: the
    ``artifact-repositories`` ConfigMap and its default-repository annotation."""
    sim.create_object(
        "secrets",
        secret("demo-s3", {"accessKey": "demo-access", "secretKey": "demo-secret"}, namespace=_NS),
    )
    repository = {
        "s3": {
            "bucket": _BUCKET,
            "endpoint": endpoint,
            "insecure": True,
            "accessKeySecret": {"name": "demo-s3", "key": "accessKey"},
            "secretKeySecret": {"name": "demo-s3", "key": "secretKey"},
        }
    }
    sim.create_object(
        "configmaps",
        configmap(
            "artifact-repositories",
            {"demo": repository},
            namespace=_NS,
            **{"workflows.argoproj.io/default-artifact-repository": "demo"},
        ),
    )


async def _show_artifact(status: dict[str, Any], endpoint: str) -> None:
    artifacts = (status.get("outputs") or {}).get("artifacts") or []
    if not artifacts:
        _say(f"\nreports-wf/download-report stored no artifact: {status.get('message', '')}")
        return
    key = artifacts[0]["s3"]["key"]
    stored = await asyncio.to_thread(_read_object, endpoint, key)
    same = stored == pattern(_REPORT_BYTES)
    _say(
        f"\nreports-wf/download-report streamed its {_REPORT_BYTES >> 20} MiB body into "
        f"s3://{_BUCKET}/{key} (found through the namespace's artifact-repositories "
        f"ConfigMap); read back: {len(stored)} bytes, "
        f"{'identical to what the target sent' if same else 'DIFFERENT from what was sent'}; "
        "a next step reads it as {{steps.download-report.outputs.artifacts.report}}"
    )


def _short(text: str, limit: int = 70) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


async def _start_target() -> web.AppRunner:
    app = target_app(redact=["Authorization"])  # the demo prints echoed bodies
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def _port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("the echo target has no socket")


def _say(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
