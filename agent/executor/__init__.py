"""The executor: Argo HTTP and plugin templates in, Argo ``NodeResult``s out.

Pure with respect to the cluster: secrets come through a
:class:`~agent.core.secrets.SecretResolver`. One :class:`Executor` per process owns the
shared HTTP client (a fast aiohttp-backed pool under the httpx API), the TLS contexts and
the outbound deny list; the engine calls :meth:`Executor.run` for every task, concurrently.

Modules: ``executor`` (dispatch), ``http`` (Argo's HTTP template semantics), ``plugin``
(the executor-plugin protocol), ``transport`` (the client and its pools), ``policy`` (the
outbound deny list), ``errors`` (transport error texts), ``secrets`` (the in-memory
resolver), ``settings``.

Nothing is re-exported here: importing ``agent.executor.settings`` (as the service's
settings do, in the supervisor too) must not load the HTTP client libraries.
"""
