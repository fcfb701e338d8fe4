"""Benchmark: evaluations per second of a typical ``successCondition``, compiled once.

A shared agent evaluates a condition for every HTTP response it receives, so what
matters is the steady-state cost of running an already-compiled program. This script
measures, for ``response.statusCode == 201 && response.body contains "ok"``:

* ``Program.run`` on a program compiled once (the executor's path);
* ``eval_bool`` (compile-cache lookup + run + the bool check, what the executor calls);
* a plain Python lambda doing the same comparison, as the floor to compare against.

It is a measurement, not a test: run ``python loadtest/bench_expr.py [--seconds N]``.

``--hostile`` measures instead what a hostile condition costs the agent (issue 15):

* each hostile condition alone, in a child process: wall time, peak RSS, the message
  (the child's address space is capped by ``--rss-cap-mb`` so that an unbounded
  evaluation ends in ``MemoryError`` instead of exhausting the machine);
* an :class:`Executor` evaluating one hostile node while a ticker measures the event
  loop's longest stall and benign nodes run back to back on the same executor: their
  worst latency and how many completed while the hostile node ran.

It uses only the executor's public API, so it runs unchanged against older code
(``PYTHONPATH=<old checkout>``) for before/after figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from agent.expr import compile, eval_bool

HOSTILE_BODY = "ab" * (1 << 17)  # 256 KiB, enough to show the cost without minutes of waiting
HOSTILE: dict[str, str] = {
    "regex": 'response.body matches "(a|b){0,1000}c"',
    # Double to the 16 MiB string cap, then keep 100 copies (the 1,991-byte condition of the issue).
    "doubling": "let a0 = response.body + response.body; "
    + " ".join(f"let a{i} = a{i - 1} + a{i - 1};" for i in range(1, 6))
    + " "
    + " len(["
    + ", ".join(f'a4 + "{i}"' for i in range(100))
    + "]) > 0",
    "map": 'let b = a4; len(map(1..256, b + "x")) > 0'.replace(
        "let b = a4;",
        "let a0 = response.body + response.body; "
        + " ".join(f"let a{i} = a{i - 1} + a{i - 1};" for i in range(1, 6))
        + " let b = a4;",
    ),
    "endless": "let r = 1..999; all(r, all(r, all(r, # > 0)))",
}

CONDITION = 'response.statusCode == 201 && response.body contains "ok"'
ENV: dict[str, Any] = {
    "request": {"method": "POST", "url": "http://127.0.0.1/x", "body": "{}", "headers": {}},
    "response": {
        "statusCode": 201,
        "body": '{"status": "ok"}',
        "headers": {"Content-Type": ["application/json"]},
    },
}


def _rate(fn: Callable[[], Any], seconds: float) -> tuple[float, int]:
    """Calls per second over roughly ``seconds`` (batches keep the clock out of the loop)."""
    batch = 1000
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn()
        calls += batch
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start), calls


def _child(name: str, cap_mb: int) -> int:
    """Evaluate one hostile condition in this (child) process and print a JSON line."""
    import resource

    from agent.expr import success_condition_message

    cap = cap_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    env = {"request": {}, "response": {"statusCode": 200, "body": HOSTILE_BODY, "headers": {}}}
    start = time.perf_counter()
    try:
        message = success_condition_message(HOSTILE[name], env)
    except MemoryError:
        message = "MemoryError (address space cap reached)"
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    message = message.replace(HOSTILE[name], "<condition>")
    print(json.dumps({"seconds": seconds, "rss_mb": rss, "message": message[:200]}))
    return 0


def _alone(cap_mb: int) -> None:
    for name in HOSTILE:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--rss-cap-mb", str(cap_mb)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            print(f"{name:9} child failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
            continue
        row = json.loads(lines[-1])
        message = row["message"].split("': ", 1)[-1].split("\n")[0]
        print(f"{name:9} {row['seconds']:7.2f} s  peak RSS {row['rss_mb']:6d} MB  {message[:110]}")


async def _on_executor(name: str) -> None:
    from aiohttp import web

    from agent.core.refs import TaskRef
    from agent.executor.executor import Executor
    from agent.executor.secrets import StaticSecretResolver
    from agent.executor.settings import ExecutorSettings

    async def body(request: web.Request) -> web.Response:
        return web.Response(text=HOSTILE_BODY)

    async def small(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/body", body)
    app.router.add_get("/small", small)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    ref = TaskRef(namespace="argo", taskset="bench", node_id="n")
    settings = ExecutorSettings(ca_dir=None, default_timeout_seconds=300)
    stall = 0.0
    benign_max = 0.0
    benign_done = 0
    try:
        async with Executor(settings=settings, secrets=StaticSecretResolver({})) as executor:
            hostile_tpl = {
                "http": {
                    "url": f"http://127.0.0.1:{port}/body",
                    "successCondition": HOSTILE[name],
                }
            }
            benign_tpl = {
                "http": {
                    "url": f"http://127.0.0.1:{port}/small",
                    "successCondition": "response.statusCode == 200",
                }
            }
            await executor.run(benign_tpl, ref=ref)  # warm the pool
            start = time.perf_counter()
            hostile = asyncio.create_task(executor.run(hostile_tpl, ref=ref))

            async def ticker() -> None:
                nonlocal stall
                last = time.perf_counter()
                while not hostile.done():
                    await asyncio.sleep(0.001)
                    now = time.perf_counter()
                    stall = max(stall, now - last)
                    last = now

            async def benign() -> None:
                nonlocal benign_max, benign_done
                while not hostile.done():
                    t0 = time.perf_counter()
                    result = await executor.run(benign_tpl, ref=ref)
                    benign_max = max(benign_max, time.perf_counter() - t0)
                    if str(result.phase) == "Succeeded":
                        benign_done += 1

            await asyncio.gather(ticker(), benign(), hostile)
            took = time.perf_counter() - start
            message = (hostile.result().message or "").split("': ", 1)[-1].split("\n")[0]
    finally:
        await runner.cleanup()
    print(
        f"{name:9} node {took:6.2f} s  max loop stall {stall * 1000:8.1f} ms  "
        f"benign: {benign_done:5d} done, worst {benign_max * 1000:8.1f} ms  {message[:70]}"
    )


def hostile_main(args: argparse.Namespace) -> int:
    print(f"hostile conditions on a {len(HOSTILE_BODY) >> 10} KiB body")
    print(f"-- alone, in a child process (address space capped at {args.rss_cap_mb} MB):")
    _alone(args.rss_cap_mb)
    print("-- on an executor, with a loop ticker and benign nodes alongside:")
    for name in args.cases or list(HOSTILE):
        asyncio.run(_on_executor(name))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--hostile", action="store_true", help="measure hostile conditions")
    parser.add_argument("--rss-cap-mb", type=int, default=3000, help="child address-space cap")
    parser.add_argument("--cases", nargs="*", choices=list(HOSTILE), help="executor cases")
    parser.add_argument("--child", choices=list(HOSTILE), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.rss_cap_mb)
    if args.hostile:
        return hostile_main(args)

    program = compile(CONDITION, argo=False)
    assert program.run(ENV) is True
    baseline_fn: Callable[[dict[str, Any]], bool] = lambda env: (  # noqa: E731
        env["response"]["statusCode"] == 201 and "ok" in env["response"]["body"]
    )
    assert baseline_fn(ENV) is True

    run_rate, run_calls = _rate(lambda: program.run(ENV), args.seconds)
    bool_rate, bool_calls = _rate(lambda: eval_bool(CONDITION, ENV), args.seconds)
    base_rate, base_calls = _rate(lambda: baseline_fn(ENV), args.seconds)

    print(f"condition: {CONDITION}")
    print(f"Program.run (compiled once): {run_rate:12,.0f} evals/s  ({run_calls:,} calls)")
    print(f"eval_bool (cached compile):  {bool_rate:12,.0f} evals/s  ({bool_calls:,} calls)")
    print(f"plain Python lambda:         {base_rate:12,.0f} evals/s  ({base_calls:,} calls)")
    print(f"lambda / Program.run ratio:  {base_rate / run_rate:12.1f}x")
    print(f"per evaluation:              {1e6 / run_rate:12.2f} us (Program.run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
