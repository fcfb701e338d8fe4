"""The source: list, then watch WorkflowTaskSets, forever.

kubernetes_asyncio has no informer, and its ``watch.Watch`` re-parses every event twice
and gives up after one 410, so the loop is written here, on the raw stream:

1. **List** (one page set) and show every taskset to the engine; remember the list's
   ``resourceVersion``; tell the engine which tasksets exist, so any that vanished while we
   were not watching are forgotten.
2. **Watch** from that version with bookmarks and a server-side ``timeoutSeconds``; every
   event (bookmarks too) advances the version; a read timeout a little longer than the
   server timeout notices a dead connection.
3. When the stream ends or breaks, **resume** from the last version seen; on **410 Gone**
   (the version was compacted), go back to 1.

Each line is decoded once (:mod:`agent.core.jsoncodec`) and handed over as a plain dict; the engine
only looks at task keys it has not seen before.

**Unchanged events are not decoded.** Every status patch (ours, by every worker) comes back
as a MODIFIED event carrying the whole taskset, yet only a change of ``spec.tasks``, the
labels (``completed``), the UID or the owner matters to the engine. For a custom resource
with a status subresource, every change outside ``metadata`` and ``status`` increments
``metadata.generation``; so an event whose metadata shows the same UID, generation, labels
and owners as the last object handed over is skipped after decoding only its
``metadata`` (which the API server writes before ``spec``: Go sorts the keys of an
unstructured object). Anything that does not look exactly like that is decoded in full.

**Other members' tasksets are not decoded either.** When the engine says another member owns
a taskset it holds nothing of (``skip``: the unit of ownership is the taskset), its ADDED and
MODIFIED events are skipped after reading their metadata alone (a DELETED event is told
from its metadata), and list items are not
handed over; such a taskset is remembered (:meth:`TaskSetWatcher.skipped`) so that, if the
view of the members later gives it to this member, it is read afresh and shown to the
engine then.

**A helper worker's tasksets are relayed, not skipped.** Inside a pod with ``--processes
N``, a taskset the primary worker lent to a helper (:mod:`agent.membership.lending`) is
skipped by the primary's engine like another member's, but its events go to that helper
(``relay``) as the lines the API server wrote, except MODIFIED events that change nothing
the engine reads: the helper never watches, so an idle helper costs nothing.

**Reading the metadata alone** costs a substring search and one orjson decode of the
metadata's slice (:func:`_peek_metadata`): every member receives every event, so with N
members a skipped event is paid N-1 times for each handed over. The slice ends where the
first ``},"spec":`` starts; if that slice is one JSON object it is the metadata whatever the
search found (an object's text ends at its own closing brace), so labels, annotations and
managedFields may hold anything. The ownership decision reads the name, namespace and
resourceVersion, strings, which orjson decodes exactly as ``json``; the shape of an owned
taskset is read exactly (:func:`_exact`: integers beyond 64 bits by ``json``). A metadata
that is not followed by a spec, or what orjson refuses, is decoded by ``json`` from the text
of the line, and a line that does not start exactly as the API server writes it, or whose
name, namespace or resourceVersion is not a string, is decoded in full.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from agent.core import jsoncodec, metrics
from agent.core.refs import TaskSetKey, TaskSetSnapshot
from agent.kube.client import GROUP, PLURAL, VERSION, api_error_text, api_status_text

__all__ = ["TaskSetReader", "TaskSetWatcher", "WatchScope"]

log = logging.getLogger(__name__)

INSTANCE_ID_LABEL = "workflows.argoproj.io/controller-instanceid"
_MAX_EVENT_BYTES = 64 << 20  # a taskset is bounded by etcd (~1.5 MiB); leave room


@dataclass(frozen=True, slots=True)
class WatchScope:
    """What one watcher covers: a namespace (or all), optionally a single taskset."""

    namespace: str | None
    name: str | None = None
    instance_id: str = ""

    @property
    def label_selector(self) -> str:
        # One taskset by name: Argo's agent selects it by name only (agent.go ``Agent``),
        # and a controller with an instance ID labels the taskset without passing the ID
        # to the agent pod (controller/agent.go ``createAgentPod``), so no label filter.
        if self.name:
            return ""
        # Many tasksets: as Argo's controller does (controller.go
        # ``newWorkflowTaskSetInformer``), with an instance ID only its tasksets, without
        # one only tasksets of controllers that have none.
        if self.instance_id:
            return f"{INSTANCE_ID_LABEL}={self.instance_id}"
        return f"!{INSTANCE_ID_LABEL}"

    @property
    def field_selector(self) -> str:
        return f"metadata.name={self.name}" if self.name else ""

    def __str__(self) -> str:
        where = self.namespace or "all namespaces"
        return f"{where}/{self.name}" if self.name else where


class Relay(Protocol):
    """Where the events of tasksets lent to a helper worker go (:mod:`agent.membership.lending`)."""

    def lends(self, key: TaskSetKey) -> bool:
        """Whether ``key`` is lent to a helper."""
        ...

    def send(self, key: TaskSetKey, line: bytes) -> None:
        """Pass on one watch event of a lent taskset, as a line of the watch stream."""
        ...


class _Gone(Exception):
    """The resourceVersion we resume from has been compacted: re-list."""


class TaskSetWatcher:
    """Feeds the engine from the API server; cancel the task running :meth:`run` to stop."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        scope: WatchScope,
        on_object: Callable[[Mapping[str, Any]], None],
        on_deleted: Callable[[TaskSetKey], None],
        on_listed: Callable[[frozenset[TaskSetKey]], None],
        skip: Callable[[TaskSetKey], bool] | None = None,
        relay: Relay | None = None,
        watch_timeout: int = 120,
        request_timeout: float = 30.0,
        retry_delay: float = 0.5,
        max_retry_delay: float = 10.0,
    ) -> None:
        self._api = client.CustomObjectsApi(api)
        self._scope = scope
        self._on_object = on_object
        self._on_deleted = on_deleted
        self._on_listed = on_listed
        self._skip = skip
        self._relay = relay
        # Tasksets that exist and were skipped unread (another member's).
        self._skipped: set[TaskSetKey] = set()
        self._watch_timeout = watch_timeout
        self._request_timeout = request_timeout
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._established = asyncio.Event()
        self._version: str | None = None
        self.last_error: str = ""
        # What the engine last saw of each taskset: (uid, generation, labels, owners).
        self._shapes: dict[TaskSetKey, tuple[Any, ...]] = {}
        # The event counter of each type, looked up once (every event counts).
        self._events: dict[str, Any] = {
            kind: metrics.child(metrics.WATCH_EVENTS, kind)
            for kind in ("ADDED", "MODIFIED", "DELETED")
        }

    def skipped(self) -> list[TaskSetKey]:
        """The tasksets skipped unread that the engine would no longer skip now (the view
        gave them to this member): the caller reads them afresh and shows them."""
        skip = self._skip
        return [k for k in self._skipped if skip is None or not skip(k)]

    def shown(self, key: TaskSetKey) -> None:
        """``key`` was read afresh and shown to the engine: no longer a skipped one."""
        self._skipped.discard(key)

    @property
    def established(self) -> bool:
        """True while a watch stream is open (readiness)."""
        return self._established.is_set()

    async def run(self) -> None:
        # The version to resume from is advanced by every event (bookmarks too) as it is
        # handled, so a stream that breaks mid-way resumes after the last event we saw:
        # resuming from where the broken watch *started* would replay old snapshots.
        self._version = None
        delay = self._retry_delay
        try:
            while True:
                try:
                    if self._version is None:
                        self._version = await self._list()
                    await self._watch()
                    delay = self._retry_delay
                except _Gone:
                    metrics.WATCH_RESTARTS.labels(reason="gone").inc()
                    log.info(
                        "watch resource version expired, re-listing",
                        extra={"scope": str(self._scope)},
                    )
                    self._version = None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # every failure is retried; the loop never dies
                    if self._established.is_set():
                        delay = self._retry_delay  # it was healthy: a fresh failure
                    self._established.clear()
                    self.last_error = api_error_text(exc)
                    metrics.WATCH_RESTARTS.labels(reason="error").inc()
                    log.warning(
                        "watch failed, retrying in %.1fs: %s",
                        delay,
                        self.last_error,
                        extra={"scope": str(self._scope)},
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_retry_delay)
        finally:
            self._established.clear()

    # -- list ------------------------------------------------------------------------

    async def _list(self) -> str:
        keys: set[TaskSetKey] = set()
        token: str | None = None
        version = ""
        while True:
            kwargs: dict[str, Any] = {"_request_timeout": self._request_timeout, "limit": 500}
            if self._scope.label_selector:
                kwargs["label_selector"] = self._scope.label_selector
            if self._scope.field_selector:
                kwargs["field_selector"] = self._scope.field_selector
            if token:
                kwargs["_continue"] = token
            try:
                if self._scope.namespace is None:
                    page = await self._api.list_cluster_custom_object(
                        GROUP, VERSION, PLURAL, **kwargs
                    )
                else:
                    page = await self._api.list_namespaced_custom_object(
                        GROUP, VERSION, self._scope.namespace, PLURAL, **kwargs
                    )
            except ApiException as exc:
                if exc.status == 410:  # a continue token expired mid-list
                    keys.clear()
                    token = None
                    continue
                raise
            for item in page.get("items") or ():
                if isinstance(item, Mapping):
                    meta = item.get("metadata") or {}
                    key = TaskSetKey(str(meta.get("namespace", "")), str(meta.get("name", "")))
                    keys.add(key)
                    if self._skip is not None and self._skip(key):
                        self._skipped.add(key)
                        if self._relay is not None and self._relay.lends(key):
                            self._relay_object(key, item, meta)
                        continue
                    self._skipped.discard(key)
                    self._hand_over(key, item, meta)
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion") or version)
            token = meta.get("continue") or None
            if not token:
                break
        for gone in self._shapes.keys() - keys:
            del self._shapes[gone]
        self._skipped &= keys
        self._on_listed(frozenset(keys))
        metrics.TASKSETS_LISTED.set(len(keys))
        return version

    # -- watch -----------------------------------------------------------------------

    async def _watch(self) -> None:
        kwargs: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "resource_version": self._version,
            "timeout_seconds": self._watch_timeout,
            "_preload_content": False,
            # (connect, read): a stream silent for longer than the server's own timeout
            # plus a margin is a dead connection.
            "_request_timeout": (self._request_timeout, self._watch_timeout + 15.0),
        }
        if self._scope.label_selector:
            kwargs["label_selector"] = self._scope.label_selector
        if self._scope.field_selector:
            kwargs["field_selector"] = self._scope.field_selector
        if self._scope.namespace is None:
            response = await self._api.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)
        else:
            response = await self._api.list_namespaced_custom_object(
                GROUP, VERSION, self._scope.namespace, PLURAL, **kwargs
            )
        try:
            if response.status == 410:
                raise _Gone
            if response.status != 200:
                body = await response.read()
                raise ApiException(
                    status=response.status, reason=api_status_text(body, response.reason)
                )
            self._established.set()
            self.last_error = ""
            while True:
                line = await response.content.readline(max_line_length=_MAX_EVENT_BYTES)
                if not line:
                    return  # the server ended the stream (timeoutSeconds): resume
                if not line.isspace():
                    self._receive(line)
        finally:
            response.release()

    def _receive(self, line: bytes) -> None:
        """One line of the watch stream: one event, skipped from its metadata or decoded."""
        if not self._skip_cheaply(line):
            self._handle(jsoncodec.loads(line))

    def _handle(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code") if isinstance(obj, Mapping) else None
            if code == 410:
                raise _Gone
            message = obj.get("message", "") if isinstance(obj, Mapping) else ""
            raise ApiException(status=code, reason=str(message or obj))
        meta = obj.get("metadata") or {}
        if meta.get("resourceVersion"):
            self._version = str(meta["resourceVersion"])
        if kind in ("ADDED", "MODIFIED"):
            self._events[kind].inc()
            key = TaskSetKey(str(meta.get("namespace", "")), str(meta.get("name", "")))
            self._hand_over(key, obj, meta)
        elif kind == "DELETED":
            self._events[kind].inc()
            key = TaskSetKey(str(meta.get("namespace", "")), str(meta.get("name", "")))
            self._shapes.pop(key, None)
            self._skipped.discard(key)
            if self._relay is not None and self._relay.lends(key):
                self._relay.send(key, jsoncodec.dumps(event))
            self._on_deleted(key)

    def _hand_over(self, key: TaskSetKey, obj: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        if self._skip is not None and self._skip(key):
            self._skipped.add(key)  # another member's: read afresh if it becomes ours
            if self._relay is not None and self._relay.lends(key):
                self._relay_object(key, obj, meta)
                return
            self._shapes.pop(key, None)
            metrics.WATCH_EVENTS_NOT_OWNED.inc()
            return
        self._skipped.discard(key)
        self._shapes.pop(key, None)  # not recorded if the engine raises
        self._on_object(obj)
        shape = _shape(meta)
        if shape is not None:
            self._shapes[key] = shape

    def _skip_cheaply(self, line: bytes) -> bool:
        """Handle, from its metadata alone, an event of a taskset another member owns, or a
        MODIFIED event that changes nothing the engine reads."""
        if self._skip is None and not line.startswith(b'{"type":"MODIFIED"'):
            return False  # nothing to skip: no need to read the metadata twice
        peeked = _peek_metadata(line)
        if peeked is None:
            return False
        kind, meta, text = peeked
        namespace, name, version = (
            meta.get("namespace"),
            meta.get("name"),
            meta.get("resourceVersion"),
        )
        if type(namespace) is not str or type(name) is not str or type(version) is not str:
            return False  # not as the API server writes it: decoded in full
        key = TaskSetKey(namespace, name)
        relay = self._relay
        if relay is not None and relay.lends(key) and self._skip is not None and self._skip(key):
            self._relay_line(key, kind, meta, text, line)
        elif self._skip is not None and self._skip(key):
            self._shapes.pop(key, None)
            metrics.WATCH_EVENTS_NOT_OWNED.inc()
            if kind == "DELETED":
                self._skipped.discard(key)
                self._on_deleted(key)  # nothing of it is here; told all the same
            else:
                self._skipped.add(key)
        else:
            shape = _shape(_exact(meta, text)) if kind == "MODIFIED" else None
            if shape is None or self._shapes.get(key) != shape:
                return False
            metrics.WATCH_EVENTS_UNCHANGED.inc()
        if version:
            self._version = version
        self._events[kind].inc()
        return True

    # -- relayed (lent to a helper worker) ----------------------------------------------

    def _relay_line(
        self, key: TaskSetKey, kind: str, meta: dict[str, Any], text: bytes, line: bytes
    ) -> None:
        assert self._relay is not None
        if kind == "DELETED":
            self._shapes.pop(key, None)
            self._skipped.discard(key)
            self._relay.send(key, line)
            self._on_deleted(key)
            return
        self._skipped.add(key)
        shape = _shape(_exact(meta, text))
        if kind == "MODIFIED" and shape is not None and self._shapes.get(key) == shape:
            metrics.WATCH_EVENTS_UNCHANGED.inc()  # nothing the helper's engine reads changed
            return
        self._relay.send(key, line)
        if shape is None:
            self._shapes.pop(key, None)
        else:
            self._shapes[key] = shape

    def _relay_object(
        self, key: TaskSetKey, obj: Mapping[str, Any], meta: Mapping[str, Any]
    ) -> None:
        assert self._relay is not None
        self._relay.send(key, jsoncodec.dumps({"type": "MODIFIED", "object": obj}))
        shape = _shape(meta)
        if shape is None:
            self._shapes.pop(key, None)
        else:
            self._shapes[key] = shape


# The exact start of an ADDED, MODIFIED or DELETED event as the API server writes it, up to
# the metadata (the event's fields in its Go struct's order, then the object's keys sorted);
# a WorkflowTaskSet's is compared as a whole first, in a fifth of the pattern's time.
_EVENT_PREFIX = re.compile(
    rb'\{"type":"(ADDED|MODIFIED|DELETED)","object":\{"apiVersion":"[^"\\]*","kind":"[^"\\]*",'
    rb'"metadata":'
)
_KINDS = {b"ADDED": "ADDED", b"MODIFIED": "MODIFIED", b"DELETED": "DELETED"}
_TASKSET_PREFIXES = {
    kind[:1]: (
        text,
        b'{"type":"'
        + kind
        + b'","object":{"apiVersion":"'
        + f"{GROUP}/{VERSION}".encode()
        + b'","kind":"WorkflowTaskSet","metadata":',
    )
    for kind, text in _KINDS.items()
}
# What follows the metadata: "spec" is the next key in sorted order. Outside a string
# only: within one, the '"' after the ',' would be escaped.
_METADATA_END = b'},"spec":'
_DECODER = json.JSONDecoder()
_PEEK_BYTES = 16 << 10  # the fallback's head: metadata with managedFields fits


def _peek_metadata(line: bytes) -> tuple[str, dict[str, Any], bytes] | None:
    """The type and ``metadata`` of an ADDED, MODIFIED or DELETED event, the metadata decoded
    alone, and the metadata's text if orjson alone decoded it (see :func:`_exact`), else
    ``b""``; None if the line is not such an event.

    The metadata's end is found by a substring search and the slice up to it decoded: if the
    slice is one JSON object, its end is the metadata's (an object's text ends at its own
    closing brace, so a slice that ends at any other brace is no JSON document). Anything
    else is decoded by ``json``, from a head of the line or the whole line.
    """
    kind, prefix = _TASKSET_PREFIXES.get(line[9:10], ("", b""))
    if kind and line.startswith(prefix):
        start = len(prefix)
    else:
        match = _EVENT_PREFIX.match(line)
        if match is None:
            return None
        kind, start = _KINDS[match.group(1)], match.end()
    end = line.find(_METADATA_END, start) + 1  # one past the metadata's brace; 0: not found
    if end:
        text = line[start:end]
        try:
            meta = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # not the metadata's end, or what only json decodes (lone surrogates)
        else:
            return (kind, meta, text) if type(meta) is dict else None
    for head in (line[:_PEEK_BYTES], line) if len(line) > _PEEK_BYTES else (line,):
        try:
            meta, _ = _DECODER.raw_decode(head.decode("utf-8"), start)
        except (UnicodeDecodeError, ValueError):  # the cut split a character, or too short
            continue
        return (kind, meta, b"") if isinstance(meta, dict) else None
    return None


def _exact(meta: dict[str, Any], text: bytes) -> dict[str, Any]:
    """Peeked metadata as :func:`agent.core.jsoncodec.loads` decodes it: orjson and ``json``
    differ only on integers beyond 64 bits (orjson's are floats), never on a string."""
    if text and jsoncodec.inexact(text):
        exact: dict[str, Any] = json.loads(text)
        return exact
    return meta


def _shape(meta: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What the engine reads from a taskset's metadata, with the generation standing for the
    spec; None without a generation (then every event is decoded)."""
    generation = meta.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool):
        return None
    return (meta.get("uid"), generation, meta.get("labels"), meta.get("ownerReferences"))


class TaskSetReader:
    """The engine's :class:`agent.core.ports.StatusReader`: one taskset, read afresh.

    A plain GET without a ``resourceVersion`` is a consistent read (served from etcd with
    a quorum), so it shows every write the API server acknowledged before it -- what the
    handover protocol relies on to see a previous owner's claim (docs/replicas.md).
    """

    def __init__(self, *, api: client.ApiClient, request_timeout: float = 30.0) -> None:
        self._api = client.CustomObjectsApi(api)
        self._request_timeout = request_timeout

    async def read(self, key: TaskSetKey) -> TaskSetSnapshot | None:
        try:
            obj = await self._api.get_namespaced_custom_object(
                GROUP,
                VERSION,
                key.namespace,
                PLURAL,
                key.name,
                _request_timeout=self._request_timeout,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise RuntimeError(api_error_text(exc)) from None
        return TaskSetSnapshot.from_object(obj) if isinstance(obj, Mapping) else None
