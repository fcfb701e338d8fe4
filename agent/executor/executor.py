"""The executor: dispatch one template to the HTTP or plugin executor, never raise.

It owns the process-wide resources (the HTTP client and its connection pool, the TLS
contexts, the outbound policy, the plugin client) and turns every problem with one
template into that template's ``NodeResult``: a malformed template, a bad field, a
transport error or an expression error fails that node alone. Only
``asyncio.CancelledError`` propagates (the engine cancels tasks that vanished).

Phases follow Argo: problems with the request or its answer are ``Failed`` (Argo's
``executeTemplate`` error path); a template the agent cannot execute at all (neither
``http`` nor ``plugin``, or both, or not an object) is ``Error`` with Argo's
``error processing task: agent cannot execute: ...`` text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from agent.core.model import NodePhase, NodeResult, Template, TemplateError, dump, parse_template
from agent.core.refs import TaskRef
from agent.core.secrets import SecretResolver
from agent.executor.http import HTTPExecutor
from agent.executor.plugin import PluginExecutor
from agent.executor.policy import OutboundPolicy
from agent.executor.settings import ExecutorSettings
from agent.executor.transport import build_client, build_tls_contexts

__all__ = ["Executor", "template_type"]

log = logging.getLogger(__name__)

# Argo's Template.GetType order; the first present field names the type.
_TEMPLATE_TYPES = (
    ("container", "Container"),
    ("containerSet", "ContainerSet"),
    ("steps", "Steps"),
    ("dag", "DAG"),
    ("script", "Script"),
    ("resource", "Resource"),
    ("data", "Data"),
    ("suspend", "Suspend"),
)


def template_type(template: Template) -> str:
    """Argo's ``Template.GetType()`` for the types the agent does not run."""
    if template.http is not None:
        return "HTTP"
    if template.plugin is not None:
        return "Plugin"
    extra = template.model_extra or {}
    for field, name in _TEMPLATE_TYPES:
        if extra.get(field) is not None:
            return name
    return "Unknown"


def _cannot_execute(reason: str) -> NodeResult:
    return NodeResult(
        phase=NodePhase.ERROR, message=f"error processing task: agent cannot execute: {reason}"
    )


class Executor:
    """Turns templates into results; one per process, shared by every task."""

    def __init__(
        self,
        *,
        settings: ExecutorSettings,
        secrets: SecretResolver,
        on_progress: Callable[[TaskRef, NodeResult], None] | None = None,
    ) -> None:
        self.settings = settings
        # Where a plugin's intermediate replies go (the engine, in the cluster agent).
        self._on_progress = on_progress
        tls = build_tls_contexts(ca_dir=settings.ca_dir, ca_bundle=settings.ca_bundle)
        self.policy = OutboundPolicy(settings.deny_networks)
        self._client = build_client(settings, policy=self.policy, tls=tls)
        self._http = HTTPExecutor(client=self._client, settings=settings, secrets=secrets)
        # Plugins are sidecars the operator configured: trusted, local, never redirected,
        # and exempt from the deny list (which may well deny loopback for templates).
        self._plugin_client = build_client(
            # Local HTTP sidecars: no HTTP/2 pool to build.
            dataclasses.replace(settings, http2=False),
            policy=OutboundPolicy(()),
            tls=tls,
            follow_redirects=False,
        )
        self._plugins = PluginExecutor(client=self._plugin_client, settings=settings)

    async def run(self, template: Mapping[str, Any] | Template, *, ref: TaskRef) -> NodeResult:
        """Execute one template; never raises except ``asyncio.CancelledError``."""
        try:
            return await self._run(template, ref)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the last line of defence: one node, never the agent
            log.exception(
                "unexpected error executing node %s of %s/%s",
                ref.node_id,
                ref.namespace,
                ref.taskset,
                extra=ref.log_context(),
            )
            return NodeResult(
                phase=NodePhase.ERROR,
                message=f"error processing task: {type(exc).__name__}: {exc}",
            )

    async def _run(self, template: Mapping[str, Any] | Template, ref: TaskRef) -> NodeResult:
        raw: Mapping[str, Any] | None
        if isinstance(template, Template):
            parsed, raw = template, None
        elif isinstance(template, dict) or isinstance(template, Mapping):  # dict: no ABC check
            raw = template
            try:
                parsed = parse_template(template if isinstance(template, dict) else dict(template))
            except TemplateError as exc:
                return NodeResult(phase=NodePhase.FAILED, message=str(exc))
        else:
            return _cannot_execute(f"template must be an object, got {type(template).__name__}")
        if parsed.http is not None and parsed.plugin is not None:
            return _cannot_execute("the template sets both http and plugin; set exactly one")
        if parsed.http is not None:
            return await self._http.run(parsed.http, namespace=ref.namespace)
        if parsed.plugin is not None:
            if len(parsed.plugin) != 1:
                names = ", ".join(sorted(parsed.plugin)) or "none"
                return NodeResult(
                    phase=NodePhase.FAILED,
                    message="invalid template: plugin: must name exactly one plugin, got "
                    f"{len(parsed.plugin)} ({names})",
                )
            on_progress = self._on_progress
            return await self._plugins.run(
                raw if raw is not None else dump(parsed),
                namespace=ref.namespace,
                workflow_name=ref.taskset,
                workflow_uid=ref.workflow_uid,
                progress=None if on_progress is None else functools.partial(on_progress, ref),
            )
        return _cannot_execute(f"unknown task type: {template_type(parsed)}")

    async def aclose(self) -> None:
        """Close the connection pools and the condition workers."""
        try:
            self._http.close()
            await self._client.aclose()
        finally:
            await self._plugin_client.aclose()

    async def __aenter__(self) -> Executor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
