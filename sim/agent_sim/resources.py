"""The resource types the simulator serves, and the discovery documents describing them.

A real API server's behaviour differs per resource in small ways that clients notice:
custom resources refuse strategic-merge patches, refuse updates without a
``resourceVersion``, count ``metadata.generation`` and answer a delete with the deleted
object, while core types do none of these. :class:`ResourceKind` names each such switch
once, so the store stays generic and the differences stay visible in one table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LEASES",
    "RESOURCES",
    "SECRETS",
    "WORKFLOWS",
    "WORKFLOW_TASK_SETS",
    "ResourceKind",
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "find_kind",
    "kind_by_plural",
    "version_info",
]

_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class ResourceKind:
    """One served resource type and the API-server switches that apply to it."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    short_names: tuple[str, ...] = ()
    # The `status` subresource: main writes keep the stored status, /status writes
    # change nothing else (apiextensions customResourceStrategy / statusStrategy).
    status_subresource: bool = False
    # metadata.generation starts at 1 and grows on every non-metadata change.
    tracks_generation: bool = False
    # Custom resources answer DELETE with the object; core types with a Status.
    returns_deleted_object: bool = False
    # PUT without metadata.resourceVersion is allowed (AllowUnconditionalUpdate).
    unconditional_update: bool = True
    # Built-in types accept application/strategic-merge-patch+json; custom ones do not.
    strategic_merge: bool = False
    # Selectable fields beyond metadata.name / metadata.namespace.
    extra_field_selectors: tuple[str, ...] = ()
    custom: bool = False
    patch_types: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        types = ["application/json-patch+json", "application/merge-patch+json"]
        if self.strategic_merge:
            types.append("application/strategic-merge-patch+json")
        types.append("application/apply-patch+yaml")
        object.__setattr__(self, "patch_types", tuple(types))

    @property
    def api_version(self) -> str:
        """``apiVersion`` of objects of this kind (``v1`` for the core group)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        """The ``kind`` of a list response."""
        return f"{self.kind}List"

    @property
    def field_selectors(self) -> tuple[str, ...]:
        """Every field a ``fieldSelector`` may name for this kind."""
        return ("metadata.name", "metadata.namespace", *self.extra_field_selectors)

    def discovery_entries(self) -> list[dict[str, Any]]:
        """``APIResource`` entries (the resource and its subresources) for discovery."""
        main: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": True,
            "kind": self.kind,
            "verbs": list(_VERBS),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        entries = [main]
        if self.status_subresource:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": True,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        return entries


WORKFLOW_TASK_SETS = ResourceKind(
    group="argoproj.io",
    version="v1alpha1",
    plural="workflowtasksets",
    singular="workflowtaskset",
    kind="WorkflowTaskSet",
    short_names=("wfts",),
    status_subresource=True,
    tracks_generation=True,
    returns_deleted_object=True,
    unconditional_update=False,
    custom=True,
)
# Argo's Workflow CRD has no subresources: the controller writes status with the object.
WORKFLOWS = ResourceKind(
    group="argoproj.io",
    version="v1alpha1",
    plural="workflows",
    singular="workflow",
    kind="Workflow",
    short_names=("wf",),
    tracks_generation=True,
    returns_deleted_object=True,
    unconditional_update=False,
    custom=True,
)
SECRETS = ResourceKind(
    group="",
    version="v1",
    plural="secrets",
    singular="secret",
    kind="Secret",
    strategic_merge=True,
    extra_field_selectors=("type",),
)
LEASES = ResourceKind(
    group="coordination.k8s.io",
    version="v1",
    plural="leases",
    singular="lease",
    kind="Lease",
    strategic_merge=True,
)
CONFIG_MAPS = ResourceKind(
    group="",
    version="v1",
    plural="configmaps",
    singular="configmap",
    kind="ConfigMap",
    short_names=("cm",),
    strategic_merge=True,
)
RESOURCES: tuple[ResourceKind, ...] = (
    WORKFLOW_TASK_SETS,
    WORKFLOWS,
    SECRETS,
    LEASES,
    CONFIG_MAPS,
)

_BY_PATH = {(k.group, k.version, k.plural): k for k in RESOURCES}
_BY_PLURAL = {k.plural: k for k in RESOURCES}


def find_kind(group: str, version: str, plural: str) -> ResourceKind | None:
    """The kind served at ``/apis/<group>/<version>/<plural>`` (core: group ``""``)."""
    return _BY_PATH.get((group, version, plural))


def kind_by_plural(plural: str) -> ResourceKind:
    """Look a kind up by its plural name; raises ``KeyError`` naming the choices."""
    try:
        return _BY_PLURAL[plural]
    except KeyError:
        raise KeyError(
            f"unknown resource {plural!r}: the simulator serves {sorted(_BY_PLURAL)}"
        ) from None


def version_info() -> dict[str, str]:
    """The ``/version`` document (a plausible recent server)."""
    return {
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-argo-http-agent-sim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """The ``/api`` document."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_doc(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list() -> dict[str, Any]:
    """The ``/apis`` document: every non-core group served."""
    groups: dict[str, list[str]] = {}
    for kind in RESOURCES:
        if kind.group and kind.version not in groups.setdefault(kind.group, []):
            groups[kind.group].append(kind.version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_doc(g, vs) for g, vs in groups.items()],
    }


def api_group(group: str) -> dict[str, Any] | None:
    """The ``/apis/<group>`` document, or None when the group is not served."""
    versions = [k.version for k in RESOURCES if k.group == group and group]
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, sorted(set(versions)))}


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """The ``/api/v1`` or ``/apis/<group>/<version>`` document, or None when not served."""
    kinds = [k for k in RESOURCES if k.group == group and k.version == version]
    if not kinds:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [entry for k in kinds for entry in k.discovery_entries()],
    }
