"""The fault-injection suite at full size: every scenario, 1,000 tasks each (the replica
scenarios 3,000, shared by up to 3 members), many kills.

``python loadtest/faults.py`` runs each scenario of ``tests/faultkit.py`` (the same code
``tests/test_faults.py`` runs at a reduced size in ``make test``): the agent as a real
process against the API simulator and a counting target, under SIGKILL/SIGTERM with
restarts, API 5xx/429 storms, dropped watches, 410 Gone, a slow API server, and targets
that hang, reset, or answer huge or malformed responses; and replicas sharing the work on
Leases (``replicas-*``): scaling 1 -> 3 and 3 -> 1, a rolling restart, a member SIGKILLed
(takeover time measured), a member cut off the API server past its lease, Lease API storms;
and a pod's workers (``workers-kill``): a busy primary lending tasksets to its helper, either
SIGKILLed at random moments.
Each scenario is judged by :func:`tests.faultkit.judge`; progress goes to stderr, and the
run ends with ONE JSON document on stdout::

    {"scenarios_run": 7, "tasks": 7000, "duplicates_found": 0, "results_lost": 0, ...}

The exit status is 0 only when every scenario is clean. ``--seed`` replays a run's plan
and schedule (the interleaving of real processes may still differ); ``--keep-logs DIR``
keeps every agent instance's log.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import sys
from pathlib import Path

# Run as a script from anywhere: the repository root holds the `agent` and `tests` packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faultkit import FULL, SCENARIOS, ScenarioReport, run_scenario, summary_json


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python loadtest/faults.py",
        description="Run the fault-injection scenarios at full size and print a JSON summary.",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a fresh one)")
    parser.add_argument("--tasks", type=int, default=FULL.tasks, help="tasks per scenario")
    parser.add_argument(
        "--replica-tasks",
        type=int,
        default=FULL.replica_tasks,
        help="tasks per replica scenario (replicas-*)",
    )
    parser.add_argument(
        "--interruptions",
        type=int,
        default=FULL.interruptions,
        help="kills/restarts in the kill scenarios (and storms in api-storm)",
    )
    parser.add_argument("--keep-logs", metavar="DIR", help="copy every agent log into DIR")
    return parser


async def _run(args: argparse.Namespace, seed: int) -> list[ScenarioReport]:
    size = dataclasses.replace(
        FULL,
        tasks=args.tasks,
        interruptions=args.interruptions,
        replica_tasks=args.replica_tasks,
    )
    reports = []
    for name in args.scenario or list(SCENARIOS):
        tasks = size.replica_tasks if SCENARIOS[name].replicas else size.tasks
        print(f"scenario {name}: {tasks} tasks (seed {seed}) ...", file=sys.stderr, flush=True)
        report = await run_scenario(name, seed=seed, size=size, keep_logs=args.keep_logs)
        print(report.describe(), file=sys.stderr, flush=True)
        reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    reports = asyncio.run(_run(args, seed))
    summary = summary_json(reports)
    summary["seed"] = seed
    summary["python"] = sys.version.split()[0]
    summary["cpus"] = os.cpu_count()
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
