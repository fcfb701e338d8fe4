"""``argo-http-agent run``: settings, then one agent process or a supervisor with workers.

Kept light on imports on purpose: with ``--processes N`` the supervisor process runs only
this module, :mod:`agent.service.supervisor` and the HTTP API, never the agent's own libraries
(kubernetes_asyncio, httpx, aiohttp, the expression language), which saves it about half
its memory. The agent itself (:mod:`agent.service.agent`) is imported where it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import types
from typing import Any, Literal, Union, get_args, get_origin

from agent import shims
from agent.service.logs import configure_logging
from agent.service.process import available_cpus, run_event_loop
from agent.service.settings import Settings, SettingsError, load_settings

__all__ = ["build_parser", "check_dependencies", "main", "process_count"]

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
    processes = process_count(settings)
    try:
        check_dependencies(supervisor=processes > 1)
    except shims.ShimError as exc:
        print(f"argo-http-agent run: {exc}", file=sys.stderr)
        return 2
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    if processes > 1:
        from agent.service.supervisor import supervise

        return run_event_loop(supervise(settings, processes=processes), loop=settings.event_loop)
    from agent.service.agent import serve

    return run_event_loop(serve(settings), loop=settings.event_loop)


def check_dependencies(*, supervisor: bool) -> None:
    """:func:`agent.shims.check`, before anything runs; a supervisor has a child run it.

    The supervisor never imports httpx or aiohttp (see above), so it asks a short-lived
    child; the settings come first only to know which process this is.
    """
    if supervisor:
        shims.check_in_child()
    else:
        shims.check()


def process_count(settings: Settings) -> int:
    """``--processes``, with 0 meaning one per CPU this process may use (1 per workflow)."""
    if settings.processes:
        return settings.processes
    if settings.per_workflow:
        return 1  # Argo's per-workflow agent serves one taskset: one process is plenty
    return available_cpus()
