"""The process around one event loop: signals, the loop itself, the CPUs it may use.

Shared by a single agent, the supervisor and its workers, so each of them stops the same
way: the first SIGTERM/SIGINT drains (running requests finish, results are delivered),
a second one exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

__all__ = ["available_cpus", "handle_stop_signals", "run_event_loop"]

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """CPUs this process may run on, capped by a cgroup CPU quota (a container's limit)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU limit in cores from cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_*``; None if unlimited."""
    try:
        quota, _, period = (root / "cpu.max").read_text().strip().partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def handle_stop_signals(
    signums: Sequence[signal.Signals],
    *,
    stop: Callable[[signal.Signals], None],
    abort: Callable[[], None] | None = None,
    abort_message: str = "second signal: exiting at once",
) -> Callable[[], None]:
    """Signals on the running loop: the first calls ``stop`` (drain, flush, exit cleanly);
    a second one calls ``abort`` and exits at once with 1. Returns the handlers' remover."""
    loop = asyncio.get_running_loop()
    received = 0

    def on_signal(signum: signal.Signals) -> None:
        nonlocal received
        received += 1
        if received > 1:
            log.warning(abort_message)
            if abort is not None:
                abort()
            os._exit(1)
        stop(signum)

    for signum in signums:
        loop.add_signal_handler(signum, on_signal, signum)

    def remove() -> None:
        for signum in signums:
            loop.remove_signal_handler(signum)

    return remove


def run_event_loop(main: Coroutine[Any, Any, int], *, loop: str) -> int:
    """Run on uvloop (libuv: measurably less CPU per request) unless told otherwise."""
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:  # not installable on this platform: the standard loop works too
            log.warning("uvloop is not available; using the standard asyncio loop")
        else:
            return uvloop.run(main)
    return asyncio.run(main)
