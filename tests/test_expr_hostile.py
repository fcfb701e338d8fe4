"""Hostile ``successCondition``: each one fails its own node, never the shared agent.

The observations of issue 15 (part 3, point 1) as tests: a regex whose RE2 program is
thousands of instructions long run over a large input, a condition that doubles a string
to the size cap and copies it, ``map`` building hundreds of large strings, and a loop
that never ends. Each must fail with a message naming the budget it spent (time, bytes
of strings, regex cost), and an executor evaluating one must keep serving other nodes.
How long the event loop can be blocked is measured, not asserted: see
``loadtest/bench_expr.py --hostile``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.core.model import dump
from agent.core.refs import TaskRef
from agent.executor.condition import ConditionEvaluator
from agent.executor.executor import Executor
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import ExecutorSettings
from agent.expr import ExprError, Limits, evaluate, success_condition_message
from tests.servers import TargetServer

REF = TaskRef(namespace="argo", taskset="wf", node_id="wf-1")
BODY = "ab" * (1 << 19)  # 1 MiB, the default cap on a response body
ENV: dict[str, Any] = {"request": {}, "response": {"statusCode": 200, "body": BODY}}

# The 1,991-byte condition of the issue, in spirit: double to the cap, then copy it.
_DOUBLING = (
    "let a0 = response.body[:524288]; "
    + " ".join(f"let a{i} = a{i - 1} + a{i - 1};" for i in range(1, 5))
    + " "
    + " + ".join(f'len(a4 + "{i}")' for i in range(100))
    + " > 0"
)
_ENDLESS = "let r = 1..999; all(r, all(r, all(r, # > 0)))"


def test_a_costly_regex_is_refused_before_matching() -> None:
    message = success_condition_message('response.body matches "(a|b){0,1000}c"', ENV)
    assert message == (
        "unable to evaluate expression 'response.body matches \"(a|b){0,1000}c\"': regexp too "
        "costly: program size 4005 x input length 1048576 exceeds the budget of 100000000 (1:15)\n"
        ' | response.body matches "(a|b){0,1000}c"\n'
        " | ..............^"
    )


def test_an_ordinary_regex_on_a_large_body_still_runs() -> None:
    assert success_condition_message('response.body matches "^(ab)+$"', ENV) == ""


def test_strings_built_by_concatenation_are_charged() -> None:
    message = success_condition_message(_DOUBLING, ENV)
    assert "memory budget exceeded: the expression built more than 67108864 bytes" in message


def test_map_building_large_strings_is_charged() -> None:
    message = success_condition_message('len(map(1..256, response.body + "x")) > 0', ENV)
    assert "memory budget exceeded: the expression built more than 67108864 bytes" in message


@pytest.mark.parametrize(
    "source",
    [
        "upper(response.body) + lower(response.body)",
        "response.body[1:] + response.body[2:]",
        'replace(response.body, "a", "aa")',
        "toJSON([response.body, response.body])",
        'join([response.body, response.body], ",")',
    ],
)
def test_every_string_result_is_charged(source: str) -> None:
    with pytest.raises(ExprError, match=r"memory budget exceeded: .* more than 1048576 bytes"):
        evaluate(source, ENV, argo=False, limits=Limits(max_bytes=1 << 20))


def test_sprig_regexes_have_the_same_budget() -> None:
    with pytest.raises(ExprError, match="regexp too costly"):
        evaluate('sprig.regexMatch("(a|b){0,1000}c", s)', {"s": BODY})


def test_an_endless_loop_stops_at_the_deadline() -> None:
    message = success_condition_message(_ENDLESS, ENV, limits=Limits(timeout=0.05))
    assert "evaluation exceeded the time limit of 0.05s" in message


def test_straight_line_code_checks_the_deadline() -> None:
    # No loop at all: the clock is read after each builtin call.
    source = " + ".join(["len(upper(response.body))"] * 200) + " > 0"
    message = success_condition_message(source, ENV, limits=Limits(timeout=0.001))
    assert "evaluation exceeded the time limit of 0.001s" in message


async def test_the_evaluator_runs_cheap_conditions_on_the_loop_and_costly_ones_off_it() -> None:
    evaluator = ConditionEvaluator(limits=Limits(timeout=30), workers=1)
    try:
        assert await evaluator.eval_bool("response.statusCode == 200", ENV) is True
        assert not _expr_threads(), "a cheap condition must not need a worker"
        # Over the on-loop slice (a regex on 1 MiB), within the full budget: rerun off the loop.
        assert await evaluator.eval_bool('response.body matches "^(ab)+$"', ENV) is True
        assert _expr_threads(), "the costly condition was not handed to a worker"
    finally:
        evaluator.close()


def _expr_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("expr")]


@pytest.fixture
async def slow_executor() -> AsyncIterator[Executor]:
    settings = ExecutorSettings(ca_dir=None, default_timeout_seconds=60, expr_timeout_seconds=3)
    async with Executor(settings=settings, secrets=StaticSecretResolver({})) as executor:
        yield executor


async def test_a_hostile_condition_fails_its_node_while_others_are_served(
    slow_executor: Executor, target: TargetServer
) -> None:
    hostile = asyncio.create_task(
        slow_executor.run(
            {"http": {"url": target.url("/status/200"), "successCondition": _ENDLESS}}, ref=REF
        )
    )
    # Positive barrier: the hostile condition is being evaluated by a worker.
    for _ in range(2000):
        if any(t.is_alive() for t in _expr_threads()) and not hostile.done():
            break
        await asyncio.sleep(0.005)
    else:
        raise AssertionError("the hostile condition never reached a worker")
    benign = await slow_executor.run(
        {
            "http": {
                "url": target.url("/status/200"),
                "successCondition": "response.statusCode == 200",
            }
        },
        ref=REF,
    )
    assert dump(benign) == {"phase": "Succeeded", "outputs": {"result": "status 200"}}
    assert not hostile.done(), "the benign node should have been served during the hostile one"
    result = dump(await asyncio.wait_for(hostile, 60))
    assert result["phase"] == "Failed"
    assert result["message"].startswith(
        f"unable to evaluate expression '{_ENDLESS}': evaluation exceeded the time limit of 3s ("
    )
