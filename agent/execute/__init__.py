"""The executor: Argo HTTP and plugin templates in, Argo ``NodeResult``s out.

Pure with respect to the cluster: secrets come through a :class:`SecretResolver`. One
:class:`Executor` per process owns the shared HTTP client (a fast aiohttp-backed pool
under the httpx API), the TLS contexts and the outbound deny list; the engine calls
:meth:`Executor.run` for every task, concurrently.

Modules: ``executor`` (dispatch), ``http`` (Argo's HTTP template semantics), ``plugin``
(the executor-plugin protocol), ``transport`` (the client and its pools), ``policy`` (the
outbound deny list), ``errors`` (transport error texts), ``secrets`` (the resolver
interface), ``settings``.
"""

from agent.execute.executor import Executor, TaskRef, template_type
from agent.execute.http import canonical_header_key
from agent.execute.plugin import NO_PLUGIN_MESSAGE
from agent.execute.policy import OutboundPolicy, PolicyDenied
from agent.execute.secrets import (
    SecretError,
    SecretResolver,
    StaticSecretResolver,
    missing_key_message,
)
from agent.execute.settings import DEFAULT_DENY_NETWORKS, ExecutorSettings, PluginEndpoint

__all__ = [
    "DEFAULT_DENY_NETWORKS",
    "NO_PLUGIN_MESSAGE",
    "Executor",
    "ExecutorSettings",
    "OutboundPolicy",
    "PluginEndpoint",
    "PolicyDenied",
    "SecretError",
    "SecretResolver",
    "StaticSecretResolver",
    "TaskRef",
    "canonical_header_key",
    "missing_key_message",
    "template_type",
]
