"""The cluster's artifact repository lookup: Argo's order of precedence, read through the API.

Argo's controller resolves a workflow's artifact repository once, when the workflow starts
(workflow/artifactrepositories/artifactrepositories.go ``Resolve``: the namespace's
``artifact-repositories`` ConfigMap, then the controller's default) and records it in the
Workflow's ``status.artifactRepositoryRef`` (with the repository itself under
``artifactRepository``), so that a later change of a ConfigMap never moves a running
workflow's artifacts. :class:`ClusterRepositoryLookup` follows the same order:

1. the owning Workflow's ``status.artifactRepositoryRef.artifactRepository`` (a ``get`` on
   the Workflow; its UID must be the taskset owner's);
2. a ref without the repository itself (an older controller): its ConfigMap and key are
   read as Argo's ``get`` does;
3. the namespace's ``artifact-repositories`` ConfigMap, the entry named by its
   ``workflows.argoproj.io/default-artifact-repository`` annotation (a missing ConfigMap or
   entry falls through, as in Argo);
4. the controller's default: ``artifactRepository`` in the controller's ConfigMap
   (``--controller-configmap``, ``--controller-namespace``), as a key of its own or inside
   the legacy ``config`` key.

Results are cached ``ttl`` seconds per workflow (errors never), concurrent misses share one
read. A refused read (403) fails only the node that needs the repository, with a message
naming the permission the agent's service account lacks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from agent.core.artifacts import ArtifactError, Repository, parse_repository
from agent.core.refs import TaskRef
from agent.kube.client import GROUP, VERSION, api_error_text
from agent.kube.reads import DEFAULT_BACKOFF_SECONDS, SharedCache, is_transient, retry_transient

__all__ = [
    "DEFAULT_ANNOTATION",
    "NAMESPACE_CONFIGMAP",
    "ClusterRepositoryLookup",
    "controller_repository",
]

#: The ConfigMap of a namespace's repositories and the annotation naming its default entry
#: (artifactrepositories.go ``get``).
NAMESPACE_CONFIGMAP = "artifact-repositories"
DEFAULT_ANNOTATION = "workflows.argoproj.io/default-artifact-repository"


class ClusterRepositoryLookup:
    """A :class:`agent.core.artifacts.RepositoryLookup` reading the Workflow and ConfigMaps."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        controller_namespace: str,
        controller_configmap: str,
        ttl: float = 10.0,
        request_timeout: float = 30.0,
        backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    ) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._controller_namespace = controller_namespace
        self._controller_configmap = controller_configmap
        self._request_timeout = request_timeout
        self._backoff = backoff_seconds
        self._cache: SharedCache[tuple[str, str, str], Repository] = SharedCache(
            ttl=ttl, what="find artifact repository"
        )

    async def repository(self, *, ref: TaskRef) -> Repository:
        key = (ref.namespace, ref.taskset, ref.workflow_uid)
        return await self._cache.get(key, lambda: self._find(ref))

    async def _find(self, ref: TaskRef) -> Repository:
        found = await self._from_workflow(ref)
        if found is not None:
            return found
        found = await self._from_configmap(ref.namespace, NAMESPACE_CONFIGMAP, key="")
        if found is not None:
            return found
        found = await self._from_controller()
        if found is not None:
            return found
        raise ArtifactError(
            f'no artifact repository for workflow "{ref.namespace}/{ref.taskset}": its status '
            f'names none, namespace "{ref.namespace}" has no {NAMESPACE_CONFIGMAP} ConfigMap '
            "with a default entry, and the controller's ConfigMap "
            f'"{self._controller_namespace}/{self._controller_configmap}" has no '
            "artifactRepository; give the artifact a complete s3 location or configure one"
        )

    # -- 1, 2: the Workflow's status ------------------------------------------------------

    async def _from_workflow(self, ref: TaskRef) -> Repository | None:
        where = f'workflow "{ref.namespace}/{ref.taskset}"'
        workflow = await self._read(
            lambda: self._objects.get_namespaced_custom_object(
                GROUP,
                VERSION,
                ref.namespace,
                "workflows",
                ref.taskset,
                _request_timeout=self._request_timeout,
            ),
            what=f"cannot read {where}",
            permission=f"get workflows.argoproj.io in namespace {ref.namespace}",
        )
        if workflow is None:
            raise ArtifactError(f"{where}, the owner of this taskset, not found")
        if not isinstance(workflow, Mapping):
            raise ArtifactError(f"cannot read {where}: the API returned no object")
        uid = str(_mapping(workflow.get("metadata")).get("uid") or "")
        if ref.workflow_uid and uid != ref.workflow_uid:
            raise ArtifactError(
                f"{where} (UID {ref.workflow_uid}), the owner of this taskset, no longer exists"
            )
        status_ref = _mapping(_mapping(workflow.get("status")).get("artifactRepositoryRef"))
        if not status_ref:
            return None
        repository = status_ref.get("artifactRepository")
        if repository is not None:
            return parse_repository(
                repository, source=f"{where} status.artifactRepositoryRef.artifactRepository"
            )
        if status_ref.get("default"):
            return await self._from_controller()
        configmap = str(status_ref.get("configMap") or NAMESPACE_CONFIGMAP)
        namespace = str(status_ref.get("namespace") or ref.namespace)
        return await self._from_configmap(
            namespace, configmap, key=str(status_ref.get("key") or "")
        )

    # -- 3: a namespace's ConfigMap ---------------------------------------------------------

    async def _from_configmap(self, namespace: str, name: str, *, key: str) -> Repository | None:
        configmap = await self._read_configmap(namespace, name)
        if configmap is None:
            return None
        annotations = getattr(configmap.metadata, "annotations", None) or {}
        key = key or str(annotations.get(DEFAULT_ANNOTATION) or "")
        data = configmap.data or {}
        if not key or key not in data:
            return None  # Argo: "config map missing key" falls through to the next
        source = f'ConfigMap "{namespace}/{name}" key "{key}"'
        return parse_repository(_yaml(data[key], source=source), source=source)

    # -- 4: the controller's default --------------------------------------------------------

    async def _from_controller(self) -> Repository | None:
        namespace, name = self._controller_namespace, self._controller_configmap
        configmap = await self._read_configmap(namespace, name)
        if configmap is None:
            return None
        return controller_repository(configmap.data or {}, source=f'ConfigMap "{namespace}/{name}"')

    # -- reads -----------------------------------------------------------------------------

    async def _read_configmap(self, namespace: str, name: str) -> Any | None:
        return await self._read(
            lambda: self._core.read_namespaced_config_map(
                name, namespace, _request_timeout=self._request_timeout
            ),
            what=f'cannot read ConfigMap "{namespace}/{name}"',
            permission=f'get configmaps "{name}" in namespace {namespace}',
        )

    async def _read(
        self, call: Callable[[], Awaitable[Any]], *, what: str, permission: str
    ) -> Any | None:
        """The object, or None when it does not exist (:func:`retry_transient`); a
        refusal names the permission."""

        async def present() -> Any | None:
            try:
                return await call()
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        def failed(exc: ApiException) -> ArtifactError:
            if exc.status == 403 and not is_transient(exc):
                return ArtifactError(
                    f"{what}: forbidden; the agent's service account needs '{permission}' "
                    "to find the artifact repository (or give the artifact a complete s3 "
                    "location)"
                )
            return ArtifactError(f"{what}: {api_error_text(exc)}")

        return await retry_transient(
            present,
            api_error=failed,
            connection_error=lambda text: ArtifactError(f"{what}: {text}"),
            backoff=self._backoff,
        )


def controller_repository(data: Mapping[str, Any], *, source: str) -> Repository | None:
    """``artifactRepository`` of the controller's ConfigMap data: a key of its own, or inside
    the whole configuration under ``config`` (the older layout); None when not configured."""
    if "artifactRepository" in data:
        where = f'{source} key "artifactRepository"'
        return parse_repository(_yaml(data["artifactRepository"], source=where), source=where)
    if "config" in data:
        config = _yaml(data["config"], source=f'{source} key "config"')
        if isinstance(config, Mapping) and config.get("artifactRepository") is not None:
            where = f'{source} key "config" artifactRepository'
            return parse_repository(config["artifactRepository"], source=where)
    return None


def _yaml(text: object, *, source: str) -> Any:
    try:
        return yaml.safe_load(str(text))
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ArtifactError(f"artifact repository {source}: invalid YAML: {first}") from None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
