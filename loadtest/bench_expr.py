"""Benchmark: evaluations per second of a typical ``successCondition``, compiled once.

A shared agent evaluates a condition for every HTTP response it receives, so what
matters is the steady-state cost of running an already-compiled program. This script
measures, for ``response.statusCode == 201 && response.body contains "ok"``:

* ``Program.run`` on a program compiled once (the executor's path);
* ``eval_bool`` (compile-cache lookup + run + the bool check, what the executor calls);
* a plain Python lambda doing the same comparison, as the floor to compare against.

It is a measurement, not a test: run ``python loadtest/bench_expr.py [--seconds N]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from agent.expr import compile, eval_bool

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args(argv)

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
