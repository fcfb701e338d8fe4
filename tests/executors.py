"""Executors for the executor suites: built with a suite's defaults, closed when it is done.

Each suite's ``make_executor`` fixture wraps :func:`executor_factory` with its own defaults
(transport, CA, timeout) and call signature; the building and the closing live here once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

from agent.core.secrets import SecretResolver
from agent.executor.executor import Executor
from agent.executor.policy import NamespacePolicies
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import ExecutorSettings

__all__ = ["BuildExecutor", "executor_factory"]


class BuildExecutor(Protocol):
    """Builds one executor: ``settings`` override the suite's defaults."""

    def __call__(
        self,
        *,
        secrets: SecretResolver | None = None,
        namespace_policies: NamespacePolicies | None = None,
        **settings: Any,
    ) -> Executor: ...


@contextlib.asynccontextmanager
async def executor_factory(
    *, secrets: SecretResolver | None = None, **defaults: Any
) -> AsyncIterator[BuildExecutor]:
    """A builder of executors with ``defaults`` as their settings (and ``secrets``, else no
    secrets); every executor it built is closed when the block ends."""
    made: list[Executor] = []

    def build(
        *,
        secrets: SecretResolver | None = secrets,
        namespace_policies: NamespacePolicies | None = None,
        **settings: Any,
    ) -> Executor:
        executor = Executor(
            settings=ExecutorSettings(**{**defaults, **settings}),
            secrets=secrets if secrets is not None else StaticSecretResolver({}),
            namespace_policies=namespace_policies,
        )
        made.append(executor)
        return executor

    try:
        yield build
    finally:
        for executor in made:
            await executor.aclose()
