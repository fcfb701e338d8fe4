"""The object store: create, read, update, patch, delete, list and watch, with the API
server's semantics.

What a client can observe is reproduced from ``k8s.io/apiserver`` (generic registry
``Store``) and ``apiextensions-apiserver`` (``customResourceStrategy``):

* one global ``resourceVersion`` counter, bumped by every write and reported by lists;
  a write that changes nothing is a no-op (no new version, no event);
* ``metadata.uid``, ``creationTimestamp`` and ``generation`` are the server's: generation
  starts at 1 and grows when anything but ``metadata`` (and, with a status subresource,
  ``status``) changes;
* with a ``status`` subresource, create drops ``status``, main writes keep the stored
  status, and ``/status`` writes change only ``status``;
* a PUT's ``metadata.resourceVersion`` is a precondition (409 Conflict when stale; for
  custom resources it is required, 422); a PATCH may carry one too;
* every operation is synchronous and runs without awaiting, so each is atomic with
  respect to every other request, as an etcd transaction is.

Objects are plain dicts shared copy-on-write (see :mod:`.patching`); nothing stored is
ever mutated in place.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from . import errors
from .events import Event, EventHistory, Stored, Watcher, WatcherIndex, encode, selectable
from .leases import decode_lease, validate_lease
from .patching import (
    MAX_JSON_PATCH_OPERATIONS,
    JsonPatchError,
    PatchDecodeError,
    apply_json_patch,
    decode_json_patch,
    merge_patch,
)
from .resources import ResourceKind
from .selectors import FieldSelector, LabelSelector

__all__ = ["ListResult", "ObjectStore"]

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_NAME_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
# names.SimpleNameGenerator: 5 characters without vowels or look-alikes.
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FIRST_VERSION = 1000


@dataclass(frozen=True, slots=True)
class ListResult:
    """One page of a list."""

    items: list[Stored]
    resource_version: int
    continue_token: str
    remaining: int | None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.bad_request(
            f"the request body must be a JSON object, got {type(body).__name__}"
        )
    return body


def _metadata(kind: ResourceKind, body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata")
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise errors.bad_request(f"{kind.kind}: metadata must be an object")
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is not None and not (
            isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        ):
            raise errors.bad_request(
                f"{kind.kind}: metadata.{key} must be a map of string keys to string values"
            )
    for key in ("name", "namespace", "resourceVersion", "uid", "generateName"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise errors.bad_request(f"{kind.kind}: metadata.{key} must be a string")
    return meta


def _check_type_meta(kind: ResourceKind, body: dict[str, Any]) -> None:
    api_version = body.get("apiVersion")
    if api_version not in (None, "", kind.api_version):
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({kind.api_version})"
        )
    object_kind = body.get("kind")
    if object_kind not in (None, "", kind.kind):
        raise errors.bad_request(
            f"the kind in the data ({object_kind}) does not match the expected kind ({kind.kind})"
        )


def _normalize_secret(obj: dict[str, Any]) -> None:
    # The API server folds stringData into data (base64) and never returns stringData.
    data = obj.get("data")
    if data is not None and not isinstance(data, dict):
        raise errors.bad_request("Secret: data must be a map of keys to base64 strings")
    merged = dict(data or {})
    for key, value in merged.items():
        if not isinstance(value, str):
            raise errors.bad_request(f"Secret: data[{key!r}] must be a base64 string")
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as err:
            raise errors.bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: data[{key!r}]: '
                f"illegal base64 data ({err})"
            ) from None
    string_data = obj.pop("stringData", None)
    if string_data is not None:
        if not isinstance(string_data, dict) or not all(
            isinstance(v, str) for v in string_data.values()
        ):
            raise errors.bad_request("Secret: stringData must be a map of keys to strings")
        for key, value in string_data.items():
            merged[key] = base64.b64encode(value.encode()).decode()
    if merged or data is not None:
        obj["data"] = merged
    obj.setdefault("type", "Opaque")


def _parse_rv(text: str, what: str = "resourceVersion") -> int:
    try:
        value = int(text)
    except ValueError:
        raise errors.bad_request(
            f'{what}: Invalid value: "{text}": strconv.ParseUint: parsing "{text}": invalid syntax'
        ) from None
    if value < 0:
        raise errors.bad_request(f'{what}: Invalid value: "{text}": must be non-negative')
    return value


def _without(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


class ObjectStore:
    """Every object of every served kind, the event history and the open watches."""

    def __init__(
        self,
        *,
        history_limit: int,
        watch_queue_limit: int,
        watch_queue_bytes: int,
    ) -> None:
        self._rv = _FIRST_VERSION
        # plural -> namespace -> name -> current version
        self._objects: dict[str, dict[str, dict[str, Stored]]] = {}
        self._history = EventHistory(limit=history_limit)
        self._watchers: dict[str, WatcherIndex] = {}
        self._watch_queue_limit = watch_queue_limit
        self._watch_queue_bytes = watch_queue_bytes
        # Set whenever a watch opens (tests wait for a client to be watching).
        self.watch_opened = asyncio.Event()

    # ---- state -------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The newest version (the counter's current value)."""
        return self._rv

    @property
    def history_floor(self) -> int:
        """Watches from a version older than this get 410 Expired."""
        return self._history.floor

    def count(self, kind: ResourceKind) -> int:
        """How many objects of ``kind`` exist."""
        return sum(len(names) for names in self._objects.get(kind.plural, {}).values())

    def compact(self) -> int:
        """Drop the event history: watching from any older version now gets 410."""
        self._history.compact(self._rv)
        return self._rv

    # ---- reads -------------------------------------------------------------------------

    def get(self, kind: ResourceKind, namespace: str, name: str) -> Stored:
        """The current object; 404 NotFound when absent."""
        stored = self._objects.get(kind.plural, {}).get(namespace, {}).get(name)
        if stored is None:
            raise errors.not_found(kind.group, kind.plural, name)
        return stored

    def _candidates(
        self, kind: ResourceKind, namespace: str | None, fields: FieldSelector
    ) -> Iterator[Stored]:
        by_namespace = self._objects.get(kind.plural, {})
        namespace = namespace or fields.exact("metadata.namespace") or None
        name = fields.exact("metadata.name")
        namespaces = [namespace] if namespace is not None else sorted(by_namespace)
        for ns in namespaces:
            names = by_namespace.get(ns, {})
            if name is not None:
                if name in names:
                    yield names[name]
                continue
            for key in sorted(names):
                yield names[key]

    def list_page(
        self,
        kind: ResourceKind,
        *,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult:
        """Objects in (namespace, name) order, filtered, optionally paginated."""
        rv = self._rv
        start: tuple[str, str] | None = None
        if continue_token:
            rv, start = _decode_continue(continue_token)
        items: list[Stored] = []
        remaining = 0
        for stored in self._candidates(kind, namespace, fields):
            if start is not None and (stored.namespace, stored.name) <= start:
                continue
            meta = stored.obj["metadata"]
            if not labels.matches(meta.get("labels")) or not fields.matches(
                selectable(kind, stored.obj)
            ):
                continue
            if limit is not None and len(items) >= limit:
                remaining += 1
                continue
            items.append(stored)
        token = ""
        if remaining and items:
            token = _encode_continue(rv, (items[-1].namespace, items[-1].name))
        return ListResult(items, rv, token, remaining if token else None)

    # ---- writes ------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _put(self, kind: ResourceKind, stored: Stored) -> None:
        names = self._objects.setdefault(kind.plural, {}).setdefault(stored.namespace, {})
        old = names.get(stored.name)
        if old is not None:
            old.forget_raw()
        names[stored.name] = stored

    def _emit(self, kind: ResourceKind, event_type: str, new: Stored, prev: Stored | None) -> None:
        event = Event(rv=new.rv, type=event_type, kind=kind, new=new, prev=prev)
        self._history.append(event)
        index = self._watchers.get(kind.plural)
        if index is not None:
            index.dispatch(event)
        event.release()

    def create(self, kind: ResourceKind, namespace: str, body: Any) -> Stored:
        """POST: 201 with the stored object; 409 AlreadyExists; 422 for a bad name."""
        obj = dict(_object(body))
        meta = dict(_metadata(kind, obj))
        _check_type_meta(kind, obj)
        if kind.plural == "leases":
            decode_lease(obj)
        if meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        name = meta.get("name") or ""
        if not name:
            prefix = meta.get("generateName") or ""
            if not prefix:
                raise errors.invalid(
                    kind.group,
                    kind.kind,
                    "",
                    [
                        (
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            name = prefix[:58] + "".join(random.choices(_GENERATE_ALPHABET, k=5))
        if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
            raise errors.invalid(
                kind.group,
                kind.kind,
                name,
                [("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {_NAME_RULE}')],
            )
        if name in self._objects.get(kind.plural, {}).get(namespace, {}):
            raise errors.already_exists(kind.group, kind.plural, name)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"):
            meta.pop(key, None)
        meta.update(name=name, namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=_now())
        if kind.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        rest = _without(obj, "apiVersion", "kind", "metadata")
        if kind.status_subresource:
            rest.pop("status", None)
        new_obj = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta, **rest}
        if kind.plural == "secrets":
            _normalize_secret(new_obj)
        if kind.plural == "leases":
            validate_lease(name, new_obj)
        # Only now, with every check passed: each version number belongs to one event.
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        stored = Stored(new_obj, rv)
        self._put(kind, stored)
        self._emit(kind, "ADDED", stored, None)
        return stored

    def update(
        self, kind: ResourceKind, namespace: str, name: str, body: Any, *, subresource: str = ""
    ) -> Stored:
        """PUT (on the object or its status): the resourceVersion is a precondition."""
        obj = _object(body)
        meta = _metadata(kind, obj)
        _check_type_meta(kind, obj)
        if kind.plural == "leases":
            obj = dict(obj)
            decode_lease(obj)  # a body that cannot be decoded is 400 before any 409
        self._check_identity(meta, namespace, name)
        current = self.get(kind, namespace, name)
        rv_text = meta.get("resourceVersion") or ""
        if not rv_text:
            if not kind.unconditional_update:
                raise errors.invalid(
                    kind.group,
                    kind.kind,
                    name,
                    [
                        (
                            "FieldValueInvalid",
                            "metadata.resourceVersion",
                            "Invalid value: 0x0: must be specified for an update",
                        )
                    ],
                )
        elif _parse_rv(rv_text, "metadata.resourceVersion") != current.rv:
            raise errors.conflict(kind.group, kind.plural, name, _MODIFIED)
        return self._commit(kind, current, self._prepare(kind, current.obj, obj, subresource))

    def patch(
        self,
        kind: ResourceKind,
        namespace: str,
        name: str,
        body: bytes,
        *,
        content_type: str,
        subresource: str = "",
        field_manager: str | None = None,
    ) -> Stored:
        """PATCH with the patch type chosen by ``content_type`` (415 when not served)."""
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in kind.patch_types:
            raise errors.unsupported_media_type(list(kind.patch_types))
        if media == "application/apply-patch+yaml" and not field_manager:
            raise errors.invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                [
                    (
                        "FieldValueRequired",
                        "fieldManager",
                        "Required value: is required for apply patch",
                    )
                ],
            )
        current = self.get(kind, namespace, name)
        patched = self._apply_patch(media, current.obj, body)
        if not isinstance(patched, dict):
            raise errors.bad_request("Invalid JSON Patch")
        meta = _metadata(kind, patched)
        _check_type_meta(kind, patched)
        if kind.plural == "leases":
            patched = dict(patched)
            decode_lease(patched)
        self._check_identity(meta, namespace, name)
        rv_text = meta.get("resourceVersion") or ""
        if rv_text and _parse_rv(rv_text, "metadata.resourceVersion") != current.rv:
            raise errors.conflict(kind.group, kind.plural, name, _MODIFIED)
        return self._commit(kind, current, self._prepare(kind, current.obj, patched, subresource))

    @staticmethod
    def _apply_patch(media: str, current: dict[str, Any], body: bytes) -> Any:
        if media == "application/json-patch+json":
            try:
                operations = decode_json_patch(json.loads(body))
            except json.JSONDecodeError as err:
                raise errors.bad_request(f"invalid character in JSON patch: {err}") from None
            except PatchDecodeError as err:
                raise errors.bad_request(str(err)) from None
            if len(operations) > MAX_JSON_PATCH_OPERATIONS:
                raise errors.ApiError(
                    413,
                    "RequestEntityTooLarge",
                    "Request entity too large: The allowed maximum operations in a JSON patch "
                    f"is {MAX_JSON_PATCH_OPERATIONS}, got {len(operations)}",
                )
            try:
                return apply_json_patch(current, operations)
            except JsonPatchError as err:
                # The server replaces the library's text with a generic one
                # (NewGenericServerResponse 422); the detail is kept as a cause.
                raise errors.ApiError(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                    details={"causes": [{"message": str(err)}]},
                ) from None
        if media == "application/apply-patch+yaml":
            try:
                document = yaml.safe_load(body)
            except yaml.YAMLError as err:
                raise errors.bad_request(f"error decoding YAML: {err}") from None
            if not isinstance(document, dict):
                raise errors.bad_request("error decoding YAML: the apply patch is not an object")
            return merge_patch(current, document)
        try:
            document = json.loads(body)
        except json.JSONDecodeError:
            raise errors.bad_request("Invalid JSON Patch") from None
        if not isinstance(document, dict):
            raise errors.bad_request("Invalid JSON Patch")
        return merge_patch(current, document)

    @staticmethod
    def _check_identity(meta: dict[str, Any], namespace: str, name: str) -> None:
        body_name = meta.get("name") or ""
        if body_name != name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        if meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )

    @staticmethod
    def _prepare(
        kind: ResourceKind, old: dict[str, Any], new: dict[str, Any], subresource: str
    ) -> dict[str, Any]:
        """The object to store for an update of ``old`` by ``new`` (server rules applied)."""
        old_meta = old["metadata"]
        if subresource == "status":
            # statusStrategy.PrepareForUpdate: only status comes from the request.
            result = dict(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            return result
        meta = dict(new.get("metadata") or {})
        new_uid = meta.get("uid")
        if new_uid and new_uid != old_meta["uid"]:
            raise errors.invalid(
                kind.group,
                kind.kind,
                old_meta["name"],
                [
                    (
                        "FieldValueInvalid",
                        "metadata.uid",
                        f'Invalid value: "{new_uid}": field is immutable',
                    )
                ],
            )
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"):
            meta.pop(key, None)
        meta.update(
            name=old_meta["name"],
            namespace=old_meta["namespace"],
            uid=old_meta["uid"],
            creationTimestamp=old_meta["creationTimestamp"],
            resourceVersion=old_meta["resourceVersion"],
        )
        if "generation" in old_meta:
            meta["generation"] = old_meta["generation"]
        else:
            meta.pop("generation", None)
        rest = _without(new, "apiVersion", "kind", "metadata")
        if kind.status_subresource:
            # customResourceStrategy.PrepareForUpdate: the main resource keeps the status.
            rest.pop("status", None)
            if "status" in old:
                rest["status"] = old["status"]
        result = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta, **rest}
        if kind.plural == "secrets":
            _normalize_secret(result)
        if kind.plural == "leases":
            validate_lease(old_meta["name"], result)
        if kind.tracks_generation and _without(result, "metadata") != _without(old, "metadata"):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return result

    def _commit(self, kind: ResourceKind, current: Stored, new_obj: dict[str, Any]) -> Stored:
        if new_obj == current.obj:
            return current  # nothing changed: no new version, no event
        rv = self._next_rv()
        new_obj["metadata"] = {**new_obj["metadata"], "resourceVersion": str(rv)}
        stored = Stored(new_obj, rv)
        self._put(kind, stored)
        self._emit(kind, "MODIFIED", stored, current)
        return stored

    def delete(
        self,
        kind: ResourceKind,
        namespace: str,
        name: str,
        *,
        preconditions: dict[str, Any] | None = None,
    ) -> Stored:
        """DELETE: the deleted object at the deletion's version; 409 on a failed precondition."""
        current = self.get(kind, namespace, name)
        meta = current.obj["metadata"]
        if preconditions:
            uid = preconditions.get("uid")
            if uid and uid != meta["uid"]:
                raise errors.conflict(
                    kind.group,
                    kind.plural,
                    name,
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                    f"{meta['uid']}",
                )
            rv = preconditions.get("resourceVersion")
            if rv and rv != meta["resourceVersion"]:
                raise errors.conflict(
                    kind.group,
                    kind.plural,
                    name,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{rv}, ResourceVersion in object meta: {meta['resourceVersion']}",
                )
        names = self._objects[kind.plural][namespace]
        del names[name]
        if not names:
            del self._objects[kind.plural][namespace]
        current.forget_raw()
        rv = self._next_rv()
        deleted = Stored({**current.obj, "metadata": {**meta, "resourceVersion": str(rv)}}, rv)
        self._emit(kind, "DELETED", deleted, current)
        return deleted

    def delete_collection(
        self,
        kind: ResourceKind,
        *,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
    ) -> list[Stored]:
        """DELETE on a collection: every selected object, one event each."""
        chosen = self.list_page(kind, namespace=namespace, labels=labels, fields=fields).items
        return [self.delete(kind, s.namespace, s.name) for s in chosen]

    # ---- watch -------------------------------------------------------------------------

    def watch(
        self,
        kind: ResourceKind,
        *,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        resource_version: str | None,
    ) -> Watcher:
        """Open a watch, queueing its start (synthetic ADDED, replay, or 410) atomically."""
        watcher = Watcher(
            kind,
            namespace=namespace,
            labels=labels,
            fields=fields,
            max_pending=self._watch_queue_limit,
            max_pending_bytes=self._watch_queue_bytes,
        )
        if not resource_version or resource_version == "0":
            # "Get State and Start at Most Recent / at Any": synthetic ADDED events.
            for stored in self._candidates(kind, namespace, fields):
                if watcher.selects(stored):
                    watcher.push(b'{"type":"ADDED","object":' + stored.raw + b"}\n", initial=True)
        else:
            start = _parse_rv(resource_version)
            if start > self._rv:
                raise errors.ApiError(
                    504,
                    "Timeout",
                    f"Timeout: Too large resource version: {start}, current: {self._rv}",
                    details={
                        "causes": [
                            {
                                "reason": "ResourceVersionTooLarge",
                                "message": "Too large resource version",
                            }
                        ],
                        "retryAfterSeconds": 1,
                    },
                    retry_after=1,
                )
            if start < self._history.floor:
                status = errors.expired(start, self._history.floor).status()
                watcher.push(encode({"type": "ERROR", "object": status}) + b"\n", initial=True)
                watcher.close("expired")
                return watcher
            for event in self._history.after(start):
                if event.kind is kind:
                    watcher.offer(event, initial=True)
                    event.release()
                    if not self._is_current(kind, event.new):
                        event.new.forget_raw()
        self._watchers.setdefault(kind.plural, WatcherIndex()).add(watcher)
        self.watch_opened.set()
        return watcher

    def _is_current(self, kind: ResourceKind, stored: Stored) -> bool:
        names = self._objects.get(kind.plural, {}).get(stored.namespace, {})
        return names.get(stored.name) is stored

    def unwatch(self, watcher: Watcher) -> None:
        """Unregister a finished watch."""
        index = self._watchers.get(watcher.kind.plural)
        if index is not None:
            index.discard(watcher)

    def watchers(self) -> list[Watcher]:
        """Every open watch."""
        return [w for index in self._watchers.values() for w in index.all()]


def _encode_continue(rv: int, after: tuple[str, str]) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{after[0]}/{after[1]}\x00"})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        namespace, _, name = str(data["start"]).rstrip("\x00").partition("/")
        return int(data["rv"]), (namespace, name)
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise errors.bad_request(f"continue key is not valid: {err}") from None
