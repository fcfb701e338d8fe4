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
* no plugin answered: ``Failed``, ``no plugin executed the template``.

**Requeue (a deliberate difference).** Argo's agent reports a not-yet-fulfilled node (e.g.
``Running``) and asks the plugin again after ``requeue``. This executor instead waits for
``requeue`` and asks again itself, returning only the final result, so the engine sees one
result per task. A fulfilled phase ends the loop even with ``requeue`` set; a non-fulfilled
phase without ``requeue`` is returned as it is. The engine's cancellation stops the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import ValidationError

from agent.core.duration import parse_duration
from agent.core.model import NodePhase, NodeResult
from agent.executor.errors import describe_transport_error, format_url_error
from agent.executor.settings import ExecutorSettings, PluginEndpoint

__all__ = ["NO_PLUGIN_MESSAGE", "PluginExecutor"]

log = logging.getLogger(__name__)

NO_PLUGIN_MESSAGE = "no plugin executed the template"
_METHOD = "template.execute"


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
            log.debug("plugin answered %s; asking again in %.3fs", node.phase, requeue)
            await asyncio.sleep(requeue)

    async def _execute_once(self, payload: bytes) -> tuple[NodeResult | None, float]:
        for plugin in self._settings.plugins:
            if plugin.name in self._not_implemented:
                continue
            reply = await self._call(plugin, payload)
            if reply is None:
                continue
            node = reply.get("node")
            if node is None:
                continue
            try:
                result = NodeResult.model_validate(node)
            except ValidationError as exc:
                problem = exc.errors()[0]["msg"]
                raise _PluginCallError(
                    f"plugin {plugin.name!r} replied with an invalid node: {problem}",
                    transient=False,
                ) from None
            if str(result.phase) == NodePhase.SUCCEEDED:
                return result, 0.0
            return result, _requeue_seconds(plugin, reply.get("requeue"))
        return None, 0.0

    async def _call(self, plugin: PluginEndpoint, payload: bytes) -> dict[str, Any] | None:
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

    async def _call_once(self, plugin: PluginEndpoint, payload: bytes) -> dict[str, Any] | None:
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
            try:
                reply = json.loads(response.content or b"{}")
            except ValueError as exc:
                raise _PluginCallError(
                    f"plugin {plugin.name!r} replied with invalid JSON: {exc}", transient=False
                ) from None
            if not isinstance(reply, dict):
                raise _PluginCallError(
                    f"plugin {plugin.name!r} replied with {type(reply).__name__}, not an object",
                    transient=False,
                )
            return reply
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


def _requeue_seconds(plugin: PluginEndpoint, value: object) -> float:
    if value in (None, ""):
        return 0.0
    if isinstance(value, int | float):
        return max(float(value), 0.0)
    try:
        return max(parse_duration(str(value)), 0.0)
    except ValueError:
        raise _PluginCallError(
            f"plugin {plugin.name!r} replied with an invalid requeue duration {value!r}",
            transient=False,
        ) from None
