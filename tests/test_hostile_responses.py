"""120 hostile responses at once: each fails its own node clearly, memory stays bounded.

Endless bodies, gzip bombs (a few KiB that inflate to hundreds of MiB) and trickles (a
byte at a time, past the template's timeout) are served concurrently by a real server on
127.0.0.1 to one executor. Each node must fail with the text naming its problem, and the
bodies must never be held whole: the process's peak RSS may grow by far less than what
the targets sent (120 x tens of MiB).
"""

from __future__ import annotations

import asyncio
import gzip
import re
import resource
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from agent.core.model import dump
from agent.core.refs import TaskRef
from agent.executor.executor import Executor
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import ExecutorSettings

REF = TaskRef(namespace="argo", taskset="wf", node_id="n")
CAP = 64 << 10  # outputs.result cap
DISCARD = 1 << 20  # how far an over-cap body is read to report its size
BOMB = gzip.compress(b"\0" * (256 << 20), compresslevel=9)  # ~250 KiB -> 256 MiB
EACH = 40


async def _endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    chunk = b"x" * 65536
    while True:  # until the client goes away
        await response.write(chunk)


async def _bomb(request: web.Request) -> web.Response:
    return web.Response(body=BOMB, headers={"Content-Encoding": "gzip"})


async def _trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    while True:
        await response.write(b"x")
        await asyncio.sleep(0.05)


@pytest.fixture
async def hostile_server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/endless", _endless)
    app.router.add_get("/bomb", _bomb)
    app.router.add_get("/trickle", _trickle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_120_hostile_responses_fail_their_nodes_with_bounded_memory(
    hostile_server: str,
) -> None:
    settings = ExecutorSettings(
        ca_dir=None, max_result_bytes=CAP, max_discard_bytes=DISCARD, default_timeout_seconds=30
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with Executor(settings=settings, secrets=StaticSecretResolver({})) as executor:
        templates = [
            {"http": {"url": f"{hostile_server}/{kind}", "timeoutSeconds": 2}}
            for kind in ("endless", "bomb", "trickle")
            for _ in range(EACH)
        ]
        results = [
            dump(r) for r in await asyncio.gather(*(executor.run(t, ref=REF) for t in templates))
        ]
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    endless, bombs, trickles = results[:EACH], results[EACH : 2 * EACH], results[2 * EACH :]
    # The size read before giving up depends on chunking: "more than" some N past the limit.
    over = re.compile(
        rf"response body of more than (\d+) bytes exceeds the agent's limit of {CAP} "
        "bytes for outputs.result"
    )
    for result in endless + bombs:
        match = over.fullmatch(result.get("message", ""))
        assert result["phase"] == "Failed" and match, result
        assert int(match[1]) > DISCARD
    for result in trickles:
        assert result["phase"] == "Failed" and "context deadline exceeded" in result["message"]
        assert "outputs" not in result
    # 120 bodies of 1 MiB (endless) to 256 MiB (bombs) were offered: none was kept whole.
    assert grown_mb < 400, f"peak RSS grew by {grown_mb:.0f} MB"
