"""The plugin executor: Argo's executor-plugin protocol, as the agent speaks it.

For a template with a ``plugin`` field, each configured sidecar is asked in order with
``POST <address>/api/v1/template.execute`` (JSON, ``Authorization: Bearer <token>`` from
the sidecar's token file), body ``{"workflow": {"metadata": {name, namespace, uid}},
"template": <template>}``. The reply is ``{"node": NodeResult | null, "requeue": "<Go
duration>"}``:

* the first reply with a ``node`` wins; ``null`` passes the template to the next plugin;
* ``404`` means the plugin does not implement ``template.execute``: it is never asked again
  by this process (Argo's rule);
* ``503`` and connection errors/timeouts are transient: retried with back-off (1 s doubling,
  5 attempts; the base delay is a setting so tests run fast); other codes fail the node
  with ``<status>: <body>``;
* no plugin answered (or none is configured): ``Failed``, ``no plugin executed the
  template``.

Replies are decoded as Go's encoding/json decodes them into Argo's types
(:func:`decode_reply`): parameter values are ``AnyString``, fields Argo does not know are
dropped, ``requeue`` must be a duration string, an empty body fails the node.

**Requeue.** As in Argo's agent, a reply that is not ``Succeeded`` with a ``requeue``
is reported (``progress``: phase, message, outputs and progress, so the workflow shows
them) and the plugin is asked again after ``requeue``. One difference: a fulfilled phase
(``Failed``, ``Error`` ...) ends the loop and is the result, where Argo asks again after
``requeue`` even then; the controller takes the first fulfilled result it reads anyway,
and the engine keeps one final result per node. A node without a phase is never reported
(as in Argo): with ``requeue`` it is asked again, without one it fails naming
``node.phase`` (Argo's node would stay ``Pending``). The engine's cancellation stops the
loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import httpx
from pydantic import ValidationError

from agent.core.duration import parse_duration
from agent.core.model import NodePhase, NodeResult
from agent.executor.errors import describe_transport_error, format_url_error
from agent.executor.settings import ExecutorSettings, PluginEndpoint

__all__ = ["NO_PLUGIN_MESSAGE", "PluginExecutor", "any_string", "decode_reply"]

log = logging.getLogger(__name__)

NO_PLUGIN_MESSAGE = "no plugin executed the template"
_METHOD = "template.execute"


_Reply = tuple[NodeResult | None, float]


class _PluginCallError(Exception):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class PluginExecutor:
    """Asks the configured plugin sidecars to execute plugin templates."""

    def __init__(self, *, client: httpx.AsyncClient, settings: ExecutorSettings) -> None:
        self._client = client
        self._settings = settings
        self._not_implemented: set[str] = set()
        self._tokens: dict[str, tuple[float, str]] = {}

    async def run(
        self,
        template: Mapping[str, Any],
        *,
        namespace: str,
        workflow_name: str,
        workflow_uid: str,
        progress: Callable[[NodeResult], None] | None = None,
    ) -> NodeResult:
        payload = json.dumps(
            {
                "workflow": {
                    "metadata": {
                        "name": workflow_name,
                        "namespace": namespace,
                        "uid": workflow_uid,
                    }
                },
                "template": template,
            },
            separators=(",", ":"),
        ).encode("utf-8")
        while True:
            try:
                node, requeue = await self._execute_once(payload)
            except _PluginCallError as exc:
                return NodeResult(phase=NodePhase.FAILED, message=str(exc))
            if node is None:
                return NodeResult(phase=NodePhase.FAILED, message=NO_PLUGIN_MESSAGE)
            if node.fulfilled or requeue <= 0:
                return node
            if progress is not None and node.phase:
                # Reported as Argo's agent reports it (agent.go ``taskWorker``: every
                # result with a phase goes to the patcher), so the workflow shows it.
                progress(node)
            log.debug("plugin answered %s; asking again in %.3fs", node.phase, requeue)
            await asyncio.sleep(requeue)

    async def _execute_once(self, payload: bytes) -> tuple[NodeResult | None, float]:
        for plugin in self._settings.plugins:
            if plugin.name in self._not_implemented:
                continue
            reply = await self._call(plugin, payload)
            if reply is None:
                continue
            node, requeue = reply
            if node is None:
                continue
            if not node.phase:
                # Argo's agent never reports a phase-less node (agent.go ``taskWorker``:
                # ``if result.Phase != ""``) but asks again after ``requeue``.
                if requeue > 0:
                    return node, requeue
                raise _PluginCallError(
                    f"plugin {plugin.name!r} replied with a node without a phase "
                    "(node.phase) and no requeue",
                    transient=False,
                )
            if str(node.phase) == NodePhase.SUCCEEDED:
                return node, 0.0
            return node, requeue
        return None, 0.0

    async def _call(self, plugin: PluginEndpoint, payload: bytes) -> _Reply | None:
        """One ``template.execute`` call with Argo's retries; ``None`` = not implemented."""
        steps = self._settings.plugin_retry_steps
        delay = self._settings.plugin_retry_base_seconds
        for attempt in range(1, steps + 1):
            try:
                return await self._call_once(plugin, payload)
            except _PluginCallError as exc:
                if not exc.transient or attempt == steps:
                    raise
                log.info(
                    "plugin %s: transient error (attempt %d of %d): %s",
                    plugin.name,
                    attempt,
                    steps,
                    exc,
                )
            await asyncio.sleep(delay * (1 + 0.2 * random.random()))
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call_once(self, plugin: PluginEndpoint, payload: bytes) -> _Reply | None:
        url = f"{plugin.address.rstrip('/')}/api/v1/{_METHOD}"
        headers = {"Content-Type": "application/json"}
        token = self._token(plugin)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with asyncio.timeout(self._settings.plugin_timeout_seconds):
                response = await self._client.post(url, content=payload, headers=headers)
        except TimeoutError:
            timeout = self._settings.plugin_timeout_seconds
            raise _PluginCallError(
                format_url_error("POST", url, f"timeout after {timeout:g}s awaiting the plugin"),
                transient=True,
            ) from None
        except httpx.HTTPError as exc:
            target = httpx.URL(url)
            raise _PluginCallError(
                format_url_error("POST", url, describe_transport_error(exc, url=target)),
                transient=isinstance(exc, httpx.TransportError),
            ) from None
        status = response.status_code
        if status == 200:
            return decode_reply(plugin.name, response.content)
        if status == 404:
            log.info("plugin %s does not implement %s; not calling it again", plugin.name, _METHOD)
            self._not_implemented.add(plugin.name)
            return None
        text = response.text
        if status == 503:
            raise _PluginCallError(text or "503 Service Unavailable", transient=True)
        raise _PluginCallError(f"{status} {response.reason_phrase}: {text}", transient=False)

    def _token(self, plugin: PluginEndpoint) -> str:
        path = plugin.token_file
        if not path:
            return ""
        try:
            mtime = os.stat(path).st_mtime
            cached = self._tokens.get(path)
            if cached is not None and cached[0] == mtime:
                return cached[1]
            with open(path, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise _PluginCallError(
                f"plugin {plugin.name!r}: cannot read its token file {path}: {exc.strerror}",
                transient=False,
            ) from None
        self._tokens[path] = (mtime, token)
        return token


def decode_reply(plugin: str, body: bytes) -> _Reply:
    """A ``template.execute`` reply decoded as Go's encoding/json decodes it into Argo's
    ``ExecuteTemplateReply`` (pkg/plugins/executor/template_executor_plugin.go).

    Go's rules kept: only the first JSON value is read (trailing data is ignored); keys
    match case-insensitively; ``null`` is "no node"; ``requeue`` is a ``metav1.Duration``,
    so only a JSON string is accepted, and it is decoded (and can fail the node) whatever
    the phase; parameter values are Argo's ``AnyString`` (numbers and booleans become
    strings); fields Argo's ``NodeResult`` does not have are dropped, so a plugin cannot
    write them into the taskset's status. Errors name the plugin and the field.
    """
    prefix = f"plugin {plugin!r} replied with"
    text = body.decode("utf-8", "replace").lstrip(_JSON_SPACE)
    if not text:
        raise _PluginCallError(f"{prefix} an empty body: EOF", transient=False)
    try:
        reply, _ = _DECODER.raw_decode(text)
    except json.JSONDecodeError as exc:
        # Cut short (Go: ``unexpected EOF``) is transient for Argo: asked again.
        truncated = exc.pos >= len(text)
        raise _PluginCallError(f"{prefix} invalid JSON: {exc}", transient=truncated) from None
    except ValueError as exc:
        raise _PluginCallError(f"{prefix} invalid JSON: {exc}", transient=False) from None
    if reply is None:
        return None, 0.0
    if not isinstance(reply, dict):
        raise _PluginCallError(f"{prefix} {_kind(reply)}, not an object", transient=False)
    fields = _go_fields(reply, ("node", "requeue"))
    try:
        requeue = _requeue_seconds(fields.get("requeue"))
        node = fields.get("node")
        if node is None:
            return None, requeue
        return NodeResult.model_validate(_node(node)), requeue
    except _BadField as exc:
        raise _PluginCallError(f"{prefix} an invalid {exc}", transient=False) from None
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise _PluginCallError(
            f"{prefix} an invalid node: node.{where}: {problem['msg']}", transient=False
        ) from None


class _BadField(ValueError):
    """``str()`` is ``<field>: <problem>``."""


_JSON_SPACE = " \t\r\n"


def _go_number(text: str) -> float | int:
    # Go decodes every JSON number into a float64 for ``any``; "-0" keeps its sign there.
    return -0.0 if text == "-0" else int(text)


def _no_constants(name: str) -> object:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


_DECODER = json.JSONDecoder(parse_int=_go_number, parse_constant=_no_constants)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _go_fields(obj: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    # encoding/json matches a key to a field case-insensitively; of several keys for one
    # field, the last wins. Keys that match no field are dropped.
    wanted = {name.lower(): name for name in names}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = wanted.get(key.lower())
        if name is not None:
            out[name] = value
    return out


def _string(value: object, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _BadField(f"{field}: must be a string, got {_kind(value)}")


def any_string(value: object) -> str | None:
    """Argo's ``AnyString.UnmarshalJSON`` (pkg/apis/workflow/v1alpha1/anystring.go): a
    number is written as Go's ``strconv.FormatFloat(v, 'f', -1, 64)``, a boolean as
    ``true``/``false``, an object or array as ``""``; ``null`` is absent."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value)  # Go holds every JSON number as a float64
        if not math.isfinite(number):
            return ""
        return format(Decimal(repr(number)).normalize(), "f")
    return ""


_PARAMETER_FIELDS = (
    "name", "default", "value", "valueFrom", "globalName", "enum", "description",
)  # fmt: skip
_ANY_STRING_FIELDS = frozenset({"default", "value", "description"})


def _node(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _BadField(f"node: must be an object, got {_kind(raw)}")
    fields = _go_fields(raw, ("phase", "message", "outputs", "progress"))
    node: dict[str, Any] = {}
    for name in ("phase", "message", "progress"):
        value = _string(fields.get(name), f"node.{name}")
        if value:
            node[name] = value
    outputs = fields.get("outputs")
    if outputs is not None:
        node["outputs"] = _outputs(outputs)
    return node


def _outputs(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _BadField(f"node.outputs: must be an object, got {_kind(raw)}")
    fields = _go_fields(raw, ("parameters", "artifacts", "result", "exitCode"))
    out: dict[str, Any] = {}
    for name in ("result", "exitCode"):
        value = _string(fields.get(name), f"node.outputs.{name}")
        if value is not None:
            out[name] = value
    artifacts = fields.get("artifacts")
    if artifacts is not None:
        if not isinstance(artifacts, list):
            raise _BadField(f"node.outputs.artifacts: must be an array, got {_kind(artifacts)}")
        out["artifacts"] = artifacts
    parameters = fields.get("parameters")
    if parameters is not None:
        if not isinstance(parameters, list):
            raise _BadField(f"node.outputs.parameters: must be an array, got {_kind(parameters)}")
        out["parameters"] = [_parameter(p, i) for i, p in enumerate(parameters)]
    return out


def _parameter(raw: object, index: int) -> dict[str, Any]:
    where = f"node.outputs.parameters[{index}]"
    if not isinstance(raw, dict):
        raise _BadField(f"{where}: must be an object, got {_kind(raw)}")
    out: dict[str, Any] = {}
    for name, value in _go_fields(raw, _PARAMETER_FIELDS).items():
        if value is None:
            continue
        if name in _ANY_STRING_FIELDS:
            out[name] = any_string(value)
        elif name == "enum":
            if not isinstance(value, list):
                raise _BadField(f"{where}.enum: must be an array, got {_kind(value)}")
            out[name] = [any_string(v) or "" for v in value]
        elif name == "valueFrom":
            if not isinstance(value, dict):
                raise _BadField(f"{where}.valueFrom: must be an object, got {_kind(value)}")
            out[name] = value
        else:
            out[name] = _string(value, f"{where}.{name}")
    out.setdefault("name", "")
    return out


def _requeue_seconds(value: object) -> float:
    # metav1.Duration.UnmarshalJSON: a JSON string parsed by time.ParseDuration; anything
    # else fails the reply (Argo: ``json: cannot unmarshal number into Go struct field
    # ExecuteTemplateReply.requeue of type string``). A negative duration means no re-ask.
    if value is None:
        return 0.0
    if not isinstance(value, str):
        raise _BadField(f'requeue: must be a Go duration string such as "30s", got {_kind(value)}')
    try:
        return max(parse_duration(value), 0.0)
    except ValueError as exc:
        raise _BadField(f"requeue: {exc}") from None
