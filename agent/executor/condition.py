"""Evaluating ``successCondition`` so that a hostile one costs only its own node.

A condition is untrusted text run inside a shared agent, on the event loop that serves
every other node, ``/healthz`` and the status patches. Python threads cannot be killed and
the interpreter cannot be suspended mid-evaluation, so the bound is built from two parts:

* every evaluation carries :class:`agent.expr.Limits` -- a wall-clock deadline read every
  few loop steps and after every builtin, a byte budget charged for every string it
  builds, a regex cost budget checked before each match -- so each evaluation ends, with
  an error naming the limit, shortly after its budget is spent;
* the **first attempt runs on the event loop with a small slice** (a few milliseconds,
  a few MiB, a small regex budget). Ordinary conditions finish well within it, at the
  cost of a function call. A condition that overruns the slice is run again, from the
  start (conditions have no side effects), in a small **thread pool** with the full
  limits. There the loop keeps running: Python hands the interpreter lock over every
  few milliseconds (``sys.getswitchinterval``) and RE2 releases it while matching. The
  pool's size bounds how many costly evaluations (and their byte budgets) exist at once.

So the loop is blocked at most for one slice plus the longest single step allowed in it,
and the process holds at most ``workers x (max_bytes + max_string_length)`` of expression
data. ``loadtest/bench_expr.py --hostile`` measures both.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.expr import ExprError, Limits, eval_bool

__all__ = ["SLICE_LIMITS", "ConditionEvaluator"]

#: The on-loop attempt: a few milliseconds and a few MiB at most.
SLICE_LIMITS = Limits(
    timeout=0.002, max_bytes=4 << 20, max_string_length=4 << 20, max_regex_cost=2_000_000
)


class ConditionEvaluator:
    """``eval_bool`` for conditions: a slice on the loop, then a bounded worker pool."""

    def __init__(self, *, limits: Limits, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.limits = limits
        self._slice = dataclasses.replace(
            limits,
            timeout=min(limits.timeout, SLICE_LIMITS.timeout),
            max_bytes=min(limits.max_bytes, SLICE_LIMITS.max_bytes),
            max_string_length=min(limits.max_string_length, SLICE_LIMITS.max_string_length),
            max_regex_cost=min(limits.max_regex_cost, SLICE_LIMITS.max_regex_cost),
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="expr")

    async def eval_bool(self, condition: str, scope: Mapping[str, Any]) -> bool:
        """Argo's ``EvalBool`` of ``condition``; :class:`ExprError` as Argo words it."""
        try:
            return eval_bool(condition, scope, limits=self._slice)
        except ExprError as exc:
            if exc.kind != "limit":
                raise
        # Over the slice: run it again off the loop with the full limits. A cancelled
        # caller leaves the worker to finish within its own deadline.
        call = functools.partial(eval_bool, condition, scope, limits=self.limits)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        """Stop accepting work; a running evaluation ends at its own deadline."""
        self._pool.shutdown(wait=False, cancel_futures=True)
