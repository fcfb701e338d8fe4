"""``argo-http-agent run``: settings, then one agent process or a supervisor with workers.

Kept light on imports on purpose: with ``--processes N`` the supervisor process runs only
this module, :mod:`agent.supervisor` and the HTTP API, never the agent's own libraries
(kubernetes_asyncio, httpx, aiohttp, the expression language), which saves it about half
its memory. The agent itself (:mod:`agent.service`) is imported where it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
import types
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from agent.logs import configure_logging
from agent.settings import Settings, SettingsError, load_settings

__all__ = [
    "available_cpus",
    "build_parser",
    "handle_stop_signals",
    "main",
    "process_count",
    "run_event_loop",
]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """One flag per setting, generated from :class:`Settings` so none can be forgotten."""
    parser = argparse.ArgumentParser(
        prog="argo-http-agent run",
        description="Watch WorkflowTaskSets and execute their HTTP and plugin tasks. "
        "Every flag also has an environment variable (shown in brackets).",
    )
    for name, info in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        alias = info.validation_alias
        envs = ", ".join(str(c) for c in getattr(alias, "choices", ()))
        help_text = (
            f"[{envs}] default: {_default_text(info.get_default(call_default_factory=True))}"
        )
        annotation = _unwrap(info.annotation)
        if name == "namespaces":
            parser.add_argument("--namespace", "-n", dest=name, action="append", help=help_text)
        elif annotation is bool:
            parser.add_argument(flag, dest=name, action="store_const", const=True, help=help_text)
        elif get_origin(annotation) is list:
            parser.add_argument(flag, dest=name, action="append", help=help_text)
        elif get_origin(annotation) is Literal:
            choices = [str(c) for c in get_args(annotation)]
            parser.add_argument(flag, dest=name, choices=choices, help=help_text)
        else:
            parser.add_argument(flag, dest=name, help=help_text)
    return parser


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    if get_origin(annotation) is not None and hasattr(annotation, "__metadata__"):
        return get_args(annotation)[0]
    return annotation


def _default_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value) or "(none)"
    return "(none)" if value in (None, "") else str(value)


def main(argv: list[str]) -> int:
    args = vars(build_parser().parse_args(argv))
    try:
        settings = load_settings(**args)
    except SettingsError as exc:
        print(f"argo-http-agent run: {exc}", file=sys.stderr)
        return 2
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    processes = process_count(settings)
    if processes > 1:
        from agent.supervisor import supervise

        return run_event_loop(supervise(settings, processes=processes), loop=settings.event_loop)
    from agent.service import serve

    return run_event_loop(serve(settings), loop=settings.event_loop)


def process_count(settings: Settings) -> int:
    """``--processes``, with 0 meaning one per CPU this process may use (1 per workflow)."""
    if settings.processes:
        return settings.processes
    if settings.per_workflow:
        return 1  # Argo's per-workflow agent serves one taskset: one process is plenty
    return available_cpus()


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
