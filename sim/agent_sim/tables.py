"""Server-side printing: ``meta.k8s.io`` Tables, as ``kubectl get`` asks for them.

``kubectl get`` sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io, ...,
application/json`` and prints the columns the server chooses; the columns are part of
what an operator sees (``kubectl get leases`` shows each Lease's holder). The API server
builds them per type (``pkg/printers/internalversion``: Lease = Name, Holder, Age;
Secret = Name, Type, Data, Age) and, for a custom resource without
``additionalPrinterColumns``, Name and Age. Each row carries the object's metadata as a
``PartialObjectMetadata`` (``includeObject=Metadata``, the default), the whole object
(``Object``) or nothing (``None``). A watch sends one single-row Table per event, with
the column definitions only in the first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import errors
from .resources import ResourceKind

__all__ = ["TableRequest", "negotiate_table", "table_for", "table_watch_line"]

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is "
    "in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_HOLDER_DOC = (
    "holderIdentity contains the identity of the holder of a current lease. If Coordinated "
    "Leader Election is used, the holder identity must be equal to the elected "
    "LeaseCandidate.metadata.name field."
)
_TYPE_DOC = "Used to facilitate programmatic handling of secret data."
_DATA_DOC = "The number of data entries in the Secret."


def _column(name: str, description: str, *, kind: str = "string", fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": kind, "format": fmt, "description": description, "priority": 0}


def _columns(kind: ResourceKind) -> list[dict[str, Any]]:
    name = _column("Name", _NAME_DOC, fmt="name")
    if kind.plural == "leases":
        return [name, _column("Holder", _HOLDER_DOC), _column("Age", _AGE_DOC)]
    if kind.plural == "secrets":
        return [
            name,
            _column("Type", _TYPE_DOC),
            _column("Data", _DATA_DOC),
            _column("Age", _AGE_DOC),
        ]
    # apiextensions' default printer column for a CRD without additionalPrinterColumns.
    return [name, _column("Age", _AGE_DOC, kind="date")]


def human_duration(seconds: float) -> str:
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(obj: dict[str, Any], now: datetime) -> str:
    created = obj.get("metadata", {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    moment = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((now - moment).total_seconds())


def _cells(kind: ResourceKind, obj: dict[str, Any], now: datetime) -> list[Any]:
    name = obj["metadata"]["name"]
    if kind.plural == "leases":
        holder = (obj.get("spec") or {}).get("holderIdentity") or ""
        return [name, holder, _age(obj, now)]
    if kind.plural == "secrets":
        return [name, obj.get("type", ""), len(obj.get("data") or {}), _age(obj, now)]
    return [name, _age(obj, now)]


@dataclass(frozen=True, slots=True)
class TableRequest:
    """A request answered with Tables: their ``apiVersion`` and the ``includeObject`` policy."""

    api_version: str
    include_object: str


def negotiate_table(accept: str, include_object: str | None) -> TableRequest | None:
    """The Table the ``Accept`` header asks for first, or None for plain objects.

    Entries are taken in order, like the server's content negotiation: the first one the
    server can produce wins; ``application/json`` (or any type without ``as=``) means
    plain objects. A ``Table`` of a group version the server does not serve is skipped.
    """
    for entry in accept.split(","):
        media, *params = (part.strip() for part in entry.split(";"))
        options = dict(p.partition("=")[::2] for p in params if "=" in p)
        if media not in ("application/json", "*/*", "application/*"):
            continue
        wanted = options.get("as")
        if wanted is None:
            return None
        if (
            wanted == "Table"
            and options.get("g") == "meta.k8s.io"
            and options.get("v") in ("v1", "v1beta1")
        ):
            policy = include_object or "Metadata"
            if policy not in ("None", "Metadata", "Object"):
                raise errors.bad_request(
                    f'includeObject: Unsupported value: "{policy}": supported values: '
                    '"None", "Metadata", "Object"'
                )
            return TableRequest(f"meta.k8s.io/{options['v']}", policy)
    return None


def _row(kind: ResourceKind, obj: dict[str, Any], request: TableRequest, now: datetime) -> Any:
    row: dict[str, Any] = {"cells": _cells(kind, obj, now)}
    if request.include_object == "Object":
        row["object"] = obj
    elif request.include_object == "Metadata":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        }
    return row


def table_for(
    kind: ResourceKind,
    objects: list[dict[str, Any]],
    request: TableRequest,
    *,
    list_meta: dict[str, Any],
    headers: bool = True,
) -> dict[str, Any]:
    """A Table of ``objects`` (a list, a single get or one watch event)."""
    now = datetime.now(UTC)
    return {
        "kind": "Table",
        "apiVersion": request.api_version,
        "metadata": list_meta,
        "columnDefinitions": _columns(kind) if headers else None,
        "rows": [_row(kind, obj, request, now) for obj in objects],
    }


def table_watch_line(
    kind: ResourceKind, line: bytes, request: TableRequest, *, headers: bool
) -> bytes:
    """One watch event line with its object turned into a single-row Table.

    BOOKMARK and ERROR events keep their objects (a bookmark has no row to print, an
    ERROR carries a Status).
    """
    event = json.loads(line)
    if event.get("type") in ("BOOKMARK", "ERROR"):
        return line if line.endswith(b"\n") else line + b"\n"
    obj = event["object"]
    meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
    event["object"] = table_for(kind, [obj], request, list_meta=meta, headers=headers)
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"
