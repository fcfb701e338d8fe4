"""The executor: Argo HTTP and plugin templates in, Argo ``NodeResult``s out.

Pure with respect to the cluster: secrets come through a
:class:`~agent.core.secrets.SecretResolver`. One :class:`Executor` per process owns the
shared HTTP client (a fast aiohttp-backed pool under the httpx API), the TLS contexts and
the outbound deny list; the engine calls :meth:`Executor.run` for every task, concurrently.

Modules: ``executor`` (dispatch), ``http`` (Argo's HTTP template semantics), ``plugin``
(the executor-plugin protocol), ``transport`` (the client and its pools), ``policy`` (the
outbound deny list), ``errors`` (transport error texts), ``secrets`` (the in-memory
resolver), ``settings``.
"""

from agent.executor.executor import Executor, template_type
from agent.executor.http import canonical_header_key
from agent.executor.plugin import NO_PLUGIN_MESSAGE
from agent.executor.policy import OutboundPolicy, PolicyDenied
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import DEFAULT_DENY_NETWORKS, ExecutorSettings, PluginEndpoint

__all__ = [
    "DEFAULT_DENY_NETWORKS",
    "NO_PLUGIN_MESSAGE",
    "Executor",
    "ExecutorSettings",
    "OutboundPolicy",
    "PluginEndpoint",
    "PolicyDenied",
    "StaticSecretResolver",
    "canonical_header_key",
    "template_type",
]
