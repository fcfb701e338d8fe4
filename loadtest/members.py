"""Several agent members as one child of the benchmark: ``bench.py --replicas N``.

``python loadtest/members.py --member ARGS --member ARGS ... -- COMMON ARGS`` starts one
``python -m agent run COMMON ARGS MEMBER ARGS`` process per ``--member`` (each its own
kubeconfig, API user and metrics port: a member of the Lease group like a replica of a
Deployment). Being their parent, it lets the benchmark read the members' CPU and memory
as one process tree, exactly as it reads one agent with ``--processes``.

On SIGTERM or SIGINT it stops the members one after the other -- each leaves the group and
hands its work over while the others still run -- and exits with the first non-zero exit
status among them (0 when all stopped cleanly). If one member exits on its own, the others
are stopped too: a benchmark with a member missing measures nothing it claims to.
Members die with this process even if it is killed (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import shlex
import signal
import sys
from collections.abc import Sequence

_STOP_SECONDS = 30.0


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def _stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), _STOP_SECONDS)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return proc.returncode if proc.returncode is not None else 0


async def run_members(*, common: Sequence[str], members: Sequence[Sequence[str]]) -> int:
    """Run the members until a signal (or one member's exit); stop them one by one."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    procs = []
    try:
        for own in members:
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "agent",
                    "run",
                    *common,
                    *own,
                    stdin=asyncio.subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,
                )
            )
        waits = [asyncio.ensure_future(p.wait()) for p in procs]
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopping, *waits], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
    finally:
        codes = [await _stop(p) for p in procs]  # one after the other, never all at once
    return next((c for c in codes if c != 0), 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python loadtest/members.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--member",
        action="append",
        required=True,
        help="one member's own arguments, as one shell-quoted string (repeat per member)",
    )
    parser.add_argument("common", nargs="*", help="arguments every member gets, after --")
    args = parser.parse_args(argv)
    members = [shlex.split(own) for own in args.member]
    return asyncio.run(run_members(common=args.common, members=members))


if __name__ == "__main__":
    raise SystemExit(main())
