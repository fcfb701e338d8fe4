"""Instructions per task: ``bench.py`` with the agent under valgrind's callgrind.

CPU seconds per task move with the load of a shared machine (cache misses, frequency,
preemption); the number of instructions the agent executes for the same work does not, so
this is how a change of the agent's CPU cost is judged on a busy 2-core machine. It runs
``bench.py`` unchanged except that the agent (and, with ``--processes N``, its workers:
``--trace-children=yes``) runs under callgrind with instrumentation off, switched on right
before the throughput phase and dumped right after it (``callgrind_control``), so start-up
and shutdown are not counted. The run is ~50 times slower than a normal one: use a few
hundred tasks, one repetition, no raw baseline, and one shape (``--single-tasks 0``; for the
one-task-per-taskset shape give ``--tasks N --tasksets N``). Run the agent with
``--membership none``: under valgrind its Lease renewals come late, and the handovers that
follow would be counted. Timing-dependent behaviour (how many results ride in one patch) can
still move the count by a few per cent.

Usage (prints one JSON line: instructions per task and the bench's counters)::

    python loadtest/callgrind.py --tasks 500 --tasksets 500 --single-tasks 0 \\
        --light-iterations 0 --processes 1 --repetitions 1 --no-raw --no-report \\
        --agent-arg=--membership --agent-arg=none
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import bench


def _under_callgrind(out_dir: Path) -> None:
    original = bench.Child.__init__

    def init(self: bench.Child, name: str, argv: Sequence[str], **kwargs: Any) -> None:
        if name == "agent":
            argv = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                "--trace-children=yes",
                f"--callgrind-out-file={out_dir}/callgrind.%p",
                *argv,
            ]
        original(self, name, argv, **kwargs)

    bench.Child.__init__ = init  # type: ignore[method-assign]
    bench._START_TIMEOUT = 300.0  # start-up runs under valgrind too

    @contextlib.asynccontextmanager
    async def counted(output: str | None, *, pid: int, workdir: Path) -> AsyncIterator[None]:
        for member in bench._tree(pid):
            await asyncio.to_thread(_control, "--instr=on", member)
        try:
            yield
        finally:
            for member in bench._tree(pid):
                await asyncio.to_thread(_control, "--dump", member)

    bench._profiled = counted


def _control(action: str, pid: int) -> None:
    subprocess.run(["callgrind_control", action, str(pid)], capture_output=True, check=False)


def _instructions(out_dir: Path) -> int:
    total = 0
    for dump in out_dir.glob("callgrind.*.1"):  # the dump taken right after the phase
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                total += int(line.split()[1])
    return total


def main(argv: Sequence[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="agent-callgrind-") as tmp:
        out_dir = Path(tmp)
        _under_callgrind(out_dir)
        report_file = out_dir / "report.json"
        with report_file.open("w") as sink, contextlib.redirect_stdout(sink):
            code = bench.main([*argv, "--profile", str(out_dir / "unused")])
        if code:
            return code
        report = json.loads(report_file.read_text().strip().splitlines()[-1])
        tasks = report["tasks"] * report["repetitions"]
        counters = ("patches", "watch_events", "watch_events_decoded", "tasks_per_s")
        print(
            json.dumps(
                {
                    "tasks": tasks,
                    "agent_processes": report["agent_processes"],
                    "instructions_per_task": round(_instructions(out_dir) / tasks),
                    **{key: report[key] for key in counters if key in report},
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
