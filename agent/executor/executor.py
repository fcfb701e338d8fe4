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

Namespace policies (:class:`~agent.executor.policy.NamespacePolicies`): a task whose
namespace has rules of its own runs on a client of its own, built for the agent-wide list
plus those rules, because a pooled connection is reused without a new check and must never
serve a namespace whose rules it was not checked against. When the rules change, the old
clients finish their requests and are closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from agent.artifacts.store import ArtifactStore
from agent.core import metrics
from agent.core.artifacts import (
    ArtifactError,
    RepositoryLookup,
    parse_output_artifact,
    split_endpoint_host,
)
from agent.core.model import NodePhase, NodeResult, Template, TemplateError, dump, parse_template
from agent.core.refs import TaskRef
from agent.core.secrets import SecretAuthority, SecretResolver
from agent.executor.artifacts import ArtifactPlanner
from agent.executor.client import build_client
from agent.executor.condition import ConditionEvaluator
from agent.executor.http import BodyArtifact, HTTPExecutor
from agent.executor.plugin import PluginExecutor
from agent.executor.policy import (
    NamespacePolicies,
    NamespaceRules,
    OutboundPolicy,
    PolicyDenied,
)
from agent.executor.settings import ExecutorSettings
from agent.executor.transport import AgentClient, build_tls_contexts

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


@dataclasses.dataclass(slots=True)
class _Scoped:
    """The client of one set of namespace rules, and how many requests use it now."""

    client: AgentClient
    http: HTTPExecutor
    in_flight: int = 0
    stale: bool = False


class Executor:
    """Turns templates into results; one per process, shared by every task."""

    def __init__(
        self,
        *,
        settings: ExecutorSettings,
        secrets: SecretResolver,
        authority: SecretAuthority | None = None,
        on_progress: Callable[[TaskRef, NodeResult], None] | None = None,
        namespace_policies: NamespacePolicies | None = None,
        store: ArtifactStore | None = None,
        repositories: RepositoryLookup | None = None,
    ) -> None:
        self.settings = settings
        # Output artifacts: the store every HTTP client streams bodies into (None: a
        # template declaring an artifact fails), and where repositories are found.
        self._store = store
        self._planner = ArtifactPlanner(
            repositories=repositories, secrets=secrets, authority=authority
        )
        self._secrets = secrets
        self._authority = authority  # every HTTP executor asks it, scoped ones included
        self._namespace_policies = namespace_policies
        self._scoped: dict[tuple[NamespaceRules, ...], _Scoped] = {}
        self._scoped_generation = 0
        self._closing: set[asyncio.Task[None]] = set()
        # Where a plugin's intermediate replies go (the engine, in the cluster agent).
        self._on_progress = on_progress
        tls = build_tls_contexts(ca_dir=settings.ca_dir, ca_bundle=settings.ca_bundle)
        self._tls = tls
        self.policy = OutboundPolicy(settings.deny_networks)
        self._client = build_client(settings, policy=self.policy, tls=tls)
        # One evaluator (and its worker threads) for every HTTP client, scoped ones included.
        self._conditions = ConditionEvaluator(
            limits=settings.expr_limits, workers=settings.expr_workers
        )
        self._http = HTTPExecutor(
            client=self._client,
            settings=settings,
            secrets=secrets,
            conditions=self._conditions,
            authority=self._authority,
            store=store,
        )
        # Plugins are sidecars the operator configured: trusted, local, never redirected,
        # and exempt from the deny list (which may well deny loopback for templates).
        self._plugin_client = build_client(
            # Local HTTP sidecars: no HTTP/2 pool to build.
            dataclasses.replace(settings, http2=False),
            policy=OutboundPolicy((), refuse_unspecified=False),
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
            return await self._run_http(parsed, ref)
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

    async def _run_http(self, parsed: Template, ref: TaskRef) -> NodeResult:
        assert parsed.http is not None
        policies = self._namespace_policies
        rules: tuple[NamespaceRules, ...] = ()
        if policies is not None:
            if not policies.loaded:
                await policies.wait_loaded()
            rules = policies.rules_for(ref.namespace)
        artifact = await self._artifact(parsed, ref, rules=rules)
        if isinstance(artifact, NodeResult):
            return artifact
        if not rules:
            return await self._http.run(
                parsed.http, namespace=ref.namespace, ref=ref, artifact=artifact
            )
        scoped = self._scoped_for(rules)
        scoped.in_flight += 1
        try:
            return await scoped.http.run(
                parsed.http, namespace=ref.namespace, ref=ref, artifact=artifact
            )
        finally:
            scoped.in_flight -= 1
            if scoped.stale and scoped.in_flight == 0:
                self._close_later(scoped)

    async def _artifact(
        self, parsed: Template, ref: TaskRef, *, rules: tuple[NamespaceRules, ...]
    ) -> BodyArtifact | NodeResult | None:
        """The artifact the body goes to, planned before the request; or the node's result
        when it cannot be (a bad field: ``Failed``; a repository, permission or Secret
        problem: ``Error``, as Argo reports a failed artifact save)."""
        name = ""
        try:
            declared = parse_output_artifact((parsed.model_extra or {}).get("outputs"))
            if declared is None:
                return None
            name = declared.name
            if self._store is None:
                raise ArtifactError(
                    "this agent was started without an artifact store (local: give "
                    "--artifact-repository)"
                )
            plan = await self._planner.plan(declared, ref=ref)
            if plan.own_endpoint:
                await self._check_endpoint(plan.location.endpoint, rules=rules)
        except ArtifactError as exc:
            metrics.child(metrics.ARTIFACTS, "refused").inc()
            message = exc.message if not name else f"artifact '{name}': {exc.message}"
            phase = NodePhase.FAILED if exc.bad_input else NodePhase.ERROR
            return NodeResult(phase=phase, message=message)
        return BodyArtifact(artifact=declared, plan=plan)

    async def _check_endpoint(self, endpoint: str, *, rules: tuple[NamespaceRules, ...]) -> None:
        """An endpoint the template chose (not its repository's) is a destination like a
        template's URL: the outbound policy applies to every address it resolves to. (The
        store connects on its own, so this is checked on resolution, not per connection.)"""
        host = split_endpoint_host(endpoint)
        policy = (
            self.policy
            if not rules
            else OutboundPolicy(self.settings.deny_networks, namespace_rules=rules)
        )
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError as exc:
            raise ArtifactError(
                f"s3.endpoint {endpoint!r}: cannot resolve {host!r}: {exc}"
            ) from None
        try:
            for address in sorted({str(info[4][0]) for info in infos}):
                policy.check(address, host=host)
        except PolicyDenied as exc:
            raise ArtifactError(f"s3.endpoint {endpoint!r}: {exc}") from None

    def _scoped_for(self, rules: tuple[NamespaceRules, ...]) -> _Scoped:
        assert self._namespace_policies is not None
        generation = self._namespace_policies.generation
        if generation != self._scoped_generation:
            # The rules changed: clients built for the old ones serve no new request.
            self._scoped_generation = generation
            for old in self._scoped.values():
                old.stale = True
                if old.in_flight == 0:
                    self._close_later(old)
            self._scoped = {}
        scoped = self._scoped.get(rules)
        if scoped is None:
            policy = OutboundPolicy(self.settings.deny_networks, namespace_rules=rules)
            client = build_client(self.settings, policy=policy, tls=self._tls)
            http = HTTPExecutor(
                client=client,
                settings=self.settings,
                secrets=self._secrets,
                conditions=self._conditions,
                authority=self._authority,
                store=self._store,
            )
            scoped = self._scoped[rules] = _Scoped(client, http)
        return scoped

    def _close_later(self, scoped: _Scoped) -> None:
        task = asyncio.get_running_loop().create_task(scoped.client.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close the connection pools and the condition workers."""
        try:
            self._conditions.close()
            await self._client.aclose()
        finally:
            try:
                await self._plugin_client.aclose()
            finally:
                scoped, self._scoped = list(self._scoped.values()), {}
                for item in scoped:
                    await item.client.aclose()
                if self._closing:
                    await asyncio.gather(*self._closing, return_exceptions=True)

    async def __aenter__(self) -> Executor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
