"""The Kubernetes REST face of the simulator: paths, verbs, authentication, faults, watch.

A request goes through the API server's filter chain in its order: authentication (401),
then (here) injected faults, then path resolution, authorization (403), the body-size
limit (413) and finally the handler. Paths are resolved like ``RequestInfoFactory``:
``/api/v1/...`` and ``/apis/<group>/<version>/...``, optional ``namespaces/<ns>``, then
``<resource>[/<name>[/<subresource>]]``, the verb derived from the method, the presence
of a name and the ``watch`` parameter.

A watch answers 200 at once and then streams newline-delimited JSON events with chunked
encoding; it ends on ``timeoutSeconds`` (or the server's own limit), when the simulator
drops watches, or when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from . import errors, reviews
from .auth import Attributes, Identity
from .events import Stored, Watcher, encode
from .faults import Blackhole, RequestFacts
from .requestlog import RequestRecord
from .resources import (
    ResourceKind,
    api_group,
    api_group_list,
    api_resource_list,
    api_versions,
    find_kind,
    version_info,
)
from .selectors import FieldSelector, LabelSelector, SelectorError
from .state import SimState
from .store import ListResult
from .tables import TableRequest, negotiate_table, table_for, table_watch_line

__all__ = ["KubeApi"]

_log = logging.getLogger("agent_sim")

_ANONYMOUS_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
_WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_BODY_TYPES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]


@dataclass(frozen=True, slots=True)
class _RequestInfo:
    verb: str
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    kind: ResourceKind | None = None
    review: bool = False  # a SubjectAccessReview (reviews.py): create-only, not stored

    @property
    def target(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _flag(value: str | None) -> bool:
    # RequestInfoFactory: any value but "0"/"false" turns a GET into a watch.
    return value is not None and value.lower() not in ("0", "false")


def _parse_path(method: str, path: str, query: dict[str, str]) -> _RequestInfo:
    """Resolve a path; a non-resource path gets ``kind=None`` and an empty resource."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return _RequestInfo(verb=method.lower())
    if (group, version, rest) == (reviews.GROUP, reviews.VERSION, [reviews.RESOURCE]):
        if method != "POST":
            raise errors.method_not_allowed()
        return _RequestInfo("create", group, version, resource=reviews.RESOURCE, review=True)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise errors.resource_not_found()
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    kind = find_kind(group, version, resource)
    if kind is None or (subresource and not (subresource == "status" and kind.status_subresource)):
        raise errors.resource_not_found()
    if not namespace and name:
        raise errors.resource_not_found()  # namespaced objects have no cluster-scope path
    if method == "GET":
        verb = "get" if name else ("watch" if _flag(query.get("watch")) else "list")
    elif method == "POST" and not name and namespace:
        verb = "create"
    elif method == "PUT" and name:
        verb = "update"
    elif method == "PATCH" and name:
        verb = "patch"
    elif method == "DELETE" and namespace and not subresource:
        verb = "delete" if name else "deletecollection"
    else:
        raise errors.method_not_allowed()
    if subresource and verb not in ("get", "update", "patch"):
        raise errors.method_not_allowed()
    if verb in ("list", "watch"):
        # A list pinned to one name is authorized as a request for that name.
        pinned = _pinned_name(query.get("fieldSelector"))
        if pinned:
            name = pinned
    return _RequestInfo(verb, group, version, namespace, resource, subresource, name, kind)


def _pinned_name(selector: str | None) -> str:
    for term in (selector or "").split(","):
        field, sep, value = term.partition("=")
        if sep and field.strip() == "metadata.name" and not field.endswith("!"):
            return value.lstrip("=").strip()
    return ""


def _json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def _status_response(err: errors.ApiError) -> web.Response:
    response = _json_response(encode(err.status()), err.code)
    if err.retry_after is not None:
        response.headers["Retry-After"] = str(err.retry_after)
    return response


def _list_body(kind: ResourceKind, result: ListResult) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
    if result.continue_token:
        meta["continue"] = result.continue_token
        if result.remaining is not None:
            meta["remainingItemCount"] = result.remaining
    head = encode({"kind": kind.list_kind, "apiVersion": kind.api_version, "metadata": meta})
    return head[:-1] + b',"items":[' + b",".join(s.raw for s in result.items) + b"]}"


def _table_body(kind: ResourceKind, result: ListResult, table: TableRequest) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
    if result.continue_token:
        meta["continue"] = result.continue_token
        if result.remaining is not None:
            meta["remainingItemCount"] = result.remaining
    objects = [s.obj for s in result.items]
    return encode(table_for(kind, objects, table, list_meta=meta))


def _decode_body(body: bytes, content_type: str) -> Any:
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in ("application/json", "application/yaml"):
        raise errors.unsupported_media_type(_BODY_TYPES)
    try:
        return json.loads(body) if media == "application/json" else yaml.safe_load(body)
    except (ValueError, yaml.YAMLError) as err:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {err}") from None


def _int_param(query: dict[str, str], name: str, *, minimum: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise errors.bad_request(f"{name}: invalid value {raw!r}: must be an integer") from None
    if value < minimum:
        raise errors.bad_request(f"{name}: invalid value {raw!r}: must be >= {minimum}")
    return value


class KubeApi:
    """The aiohttp handler serving every Kubernetes path."""

    def __init__(self, state: SimState, *, server_address: Callable[[], str]) -> None:
        self._state = state
        self._server_address = server_address

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one request, recording it in the request log."""
        body = await request.read()
        query = {k: request.query[k] for k in request.query}
        record = self._state.log.record(
            time=time.time(),
            method=request.method,
            path=request.path,
            query=query,
            content_type=request.headers.get("Content-Type", ""),
            body=body,
        )
        try:
            response = await self._serve(request, body, query, record)
        except errors.ApiError as err:
            response = _status_response(err)
        self._state.log.complete(record, response.status)
        if isinstance(response, web.Response):
            answer = response.body
            self._state.usage.answered(
                record.user, len(answer) if isinstance(answer, (bytes, bytearray)) else 0
            )
        return response

    async def _serve(
        self, request: web.Request, body: bytes, query: dict[str, str], record: RequestRecord
    ) -> web.StreamResponse:
        state = self._state
        identity: Identity | None = None
        if request.path not in _ANONYMOUS_PATHS:
            identity = state.tokens.authenticate(request.headers.get("Authorization"))
            if identity is None:
                raise errors.unauthorized()
            record.user = identity.user
        info = _parse_path(request.method, request.path, query)
        record.verb, record.resource, record.subresource = (
            info.verb,
            info.resource,
            info.subresource,
        )
        record.namespace, record.name = info.namespace, info.name
        state.usage.request(record.user, info.verb, received=len(body))
        hole = state.faults.blackhole(record.user)
        if hole is not None:
            await self._fall_in(request, hole, record)
        facts = RequestFacts(info.verb, info.target, request.path, len(body), record.user)
        delay = state.faults.take_delay(facts)
        if delay:
            await asyncio.sleep(delay)
        fault = state.faults.take_failure(facts)
        if fault is not None:
            if fault.disconnect:
                self._state.log.complete(record, 0)
                if request.transport is not None:
                    request.transport.abort()
                raise errors.generic(500, "connection dropped by an injected fault")
            raise errors.generic(fault.code, fault.message, retry_after=fault.retry_after)
        if info.kind is None and not info.review:
            return self._non_resource(request.method, request.path)
        if identity is None:  # resource paths are never anonymous
            raise errors.unauthorized()
        attrs = Attributes(
            info.verb, info.group, info.resource, info.subresource, info.namespace, info.name
        )
        if not identity.allows(attrs):
            raise errors.forbidden(
                info.group,
                info.resource,
                info.name,
                user=identity.user,
                verb=info.verb,
                subresource=info.subresource,
                namespace=info.namespace,
            )
        if info.verb in _WRITE_VERBS and len(body) > state.options.max_body_bytes:
            raise errors.too_large(state.options.max_body_bytes)
        if "dryRun" in query:
            raise errors.bad_request("dryRun is not supported by the API simulator")
        if info.review or info.kind is None:
            content_type = request.headers.get("Content-Type", "")
            answer = reviews.review(state, _decode_body(body, content_type or "application/json"))
            return _json_response(encode(answer), 201)
        return await self._resource(request, info, info.kind, body, query, record)

    async def _fall_in(self, request: web.Request, hole: Blackhole, record: RequestRecord) -> None:
        """Hold a request of a user cut off the API: never applied, cut when lifted."""
        hole.held += 1
        await hole.lifted.wait()
        self._state.log.complete(record, 0)
        if request.transport is not None:
            request.transport.abort()
        raise errors.generic(500, "connection cut by an injected blackhole")

    def _non_resource(self, method: str, path: str) -> web.Response:
        if method != "GET":
            raise errors.method_not_allowed()
        parts = [p for p in path.split("/") if p]
        doc: dict[str, Any] | None = None
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if parts == ["version"]:
            doc = version_info()
        elif parts == ["api"]:
            doc = api_versions(self._server_address())
        elif parts == ["api", "v1"]:
            doc = api_resource_list("", "v1")
        elif parts == ["apis"]:
            doc = api_group_list()
        elif len(parts) == 2 and parts[0] == "apis":
            doc = api_group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = api_resource_list(parts[1], parts[2])
        if doc is None:
            raise errors.resource_not_found()
        return _json_response(encode(doc))

    async def _resource(
        self,
        request: web.Request,
        info: _RequestInfo,
        kind: ResourceKind,
        body: bytes,
        query: dict[str, str],
        record: RequestRecord,
    ) -> web.StreamResponse:
        store = self._state.store
        ns = info.namespace
        content_type = request.headers.get("Content-Type", "")
        table = None
        if info.verb in ("get", "list", "watch"):
            table = negotiate_table(request.headers.get("Accept", ""), query.get("includeObject"))
        if info.verb == "get":
            stored = store.get(kind, ns, info.name)
            if table is not None:
                meta = {"resourceVersion": str(stored.rv)}
                return _json_response(encode(table_for(kind, [stored.obj], table, list_meta=meta)))
            return _json_response(stored.raw)
        if info.verb in ("list", "watch", "deletecollection"):
            try:
                labels = LabelSelector.parse(query.get("labelSelector"))
                fields = FieldSelector.parse(
                    query.get("fieldSelector"), allowed=kind.field_selectors, custom=kind.custom
                )
            except SelectorError as err:
                raise errors.bad_request(str(err)) from None
            namespace = ns or None
            if info.verb == "watch":
                watcher = store.watch(
                    kind,
                    namespace=namespace,
                    labels=labels,
                    fields=fields,
                    resource_version=query.get("resourceVersion"),
                )
                # A watch is answered 200 as soon as it starts streaming.
                self._state.log.complete(record, 200)
                return await self._stream(request, kind, watcher, query, table, record.user)
            if info.verb == "deletecollection":
                removed = store.delete_collection(
                    kind, namespace=namespace, labels=labels, fields=fields
                )
                result = ListResult(removed, store.resource_version, "", None)
                return _json_response(_list_body(kind, result))
            result = store.list_page(
                kind,
                namespace=namespace,
                labels=labels,
                fields=fields,
                limit=_int_param(query, "limit", minimum=0) or None,  # 0: no limit
                continue_token=query.get("continue"),
            )
            if table is not None:
                return _json_response(_table_body(kind, result, table))
            return _json_response(_list_body(kind, result))
        if info.verb == "create":
            stored = store.create(kind, ns, _decode_body(body, content_type))
            return _json_response(stored.raw, 201)
        if info.verb == "update":
            stored = store.update(
                kind, ns, info.name, _decode_body(body, content_type), subresource=info.subresource
            )
            return _json_response(stored.raw)
        if info.verb == "patch":
            stored = store.patch(
                kind,
                ns,
                info.name,
                body,
                content_type=content_type,
                subresource=info.subresource,
                field_manager=query.get("fieldManager"),
            )
            return _json_response(stored.raw)
        # delete
        options = _decode_body(body, content_type or "application/json") if body else None
        preconditions = options.get("preconditions") if isinstance(options, dict) else None
        deleted = store.delete(
            kind,
            ns,
            info.name,
            preconditions=preconditions if isinstance(preconditions, dict) else None,
        )
        return _json_response(self._deleted_body(kind, deleted))

    @staticmethod
    def _deleted_body(kind: ResourceKind, deleted: Stored) -> bytes:
        if kind.returns_deleted_object:
            return deleted.raw
        meta = deleted.obj["metadata"]
        details: dict[str, Any] = {"name": meta["name"]}
        if kind.group:
            details["group"] = kind.group
        details.update(kind=kind.plural, uid=meta["uid"])
        return encode(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }
        )

    async def _stream(
        self,
        request: web.Request,
        kind: ResourceKind,
        watcher: Watcher,
        query: dict[str, str],
        table: TableRequest | None,
        user: str,
    ) -> web.StreamResponse:
        store = self._state.store
        usage = self._state.usage
        faults = self._state.faults
        options = self._state.options
        try:
            timeout_param = _int_param(query, "timeoutSeconds", minimum=0)
        except errors.ApiError:
            store.unwatch(watcher)
            raise
        timeout = float(timeout_param) if timeout_param else options.watch_timeout
        bookmarks = _flag(query.get("allowWatchBookmarks"))
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"},
        )
        response.enable_chunked_encoding()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        next_bookmark = loop.time() + options.bookmark_interval
        headers_sent = False
        try:
            await response.prepare(request)
            while True:
                hole = faults.blackhole(user)
                if hole is not None:  # cut off: nothing more arrives, then the connection dies
                    hole.held += 1
                    await hole.lifted.wait()
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                chunk = watcher.drain()
                if chunk and table is not None:
                    lines = []
                    for line in chunk.splitlines():
                        lines.append(table_watch_line(kind, line, table, headers=not headers_sent))
                        headers_sent = True
                    chunk = b"".join(lines)
                if chunk:
                    await response.write(chunk)
                    usage.streamed(user, len(chunk))
                    continue
                # Nothing is queued and nothing was awaited since: a bookmark composed now
                # cannot overtake an event (every event up to its version is written).
                if watcher.closed is not None:
                    if watcher.abrupt and request.transport is not None:
                        request.transport.abort()
                        return response
                    break
                now = loop.time()
                if deadline is not None and now >= deadline:
                    if bookmarks:
                        # The server sends a bookmark right before a watch times out.
                        mark = self._bookmark(kind)
                        await response.write(mark)
                        usage.streamed(user, len(mark))
                    break
                if bookmarks and now >= next_bookmark:
                    mark = self._bookmark(kind)
                    await response.write(mark)
                    usage.streamed(user, len(mark))
                    next_bookmark = now + options.bookmark_interval
                    continue
                waits = [t - now for t in (deadline, next_bookmark if bookmarks else None) if t]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watcher.wakeup.wait(), min(waits) if waits else None)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError) as err:
            # The client went away (or the server is stopping): nothing left to write to.
            _log.debug("watch on %s ended: %r", kind.plural, err)
            if isinstance(err, asyncio.CancelledError):
                raise
        finally:
            store.unwatch(watcher)
        return response

    def _bookmark(self, kind: ResourceKind) -> bytes:
        bookmark = {
            "kind": kind.kind,
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": str(self._state.store.resource_version)},
        }
        return encode({"type": "BOOKMARK", "object": bookmark}) + b"\n"
