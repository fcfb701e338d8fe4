"""``ApiSimulator``: the Kubernetes API simulator as one object to start, use and stop.

It serves real HTTP (or HTTPS) on 127.0.0.1 so kubernetes_asyncio, or any client, talks
to it unchanged through a kubeconfig it writes. Tests drive it three ways: through the
Kubernetes API like the agent does, through in-process helpers (``create_object``,
``patch_object``, ``requests``, ``fail_next`` ...) that share the same store and rules,
and through the ``/_sim`` admin endpoint when it runs in another process
(``python -m agent_sim``). In-process helpers bypass authentication, faults and the
request log: they are the test's hands, not a client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import yaml
from aiohttp import web

from . import errors
from .admin import ADMIN_PREFIX, admin_routes
from .api import KubeApi
from .auth import ALL_PERMISSIONS, Rule
from .events import Stored
from .requestlog import RequestRecord
from .resources import kind_by_plural
from .selectors import FieldSelector, LabelSelector, SelectorError
from .state import DEFAULT_MAX_BODY_BYTES, SimOptions, SimState

__all__ = ["DEFAULT_USER", "ApiSimulator", "PatchType", "SimulatorTls", "service_account_user"]

DEFAULT_USER = "system:serviceaccount:default:argo-http-agent"


def service_account_user(namespace: str, name: str) -> str:
    """The user name a service account's requests carry: ``system:serviceaccount:NS:SA``."""
    return f"system:serviceaccount:{namespace}:{name}"


PatchType = Literal["merge", "json", "strategic", "apply"]
_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
# aiohttp's own body limit; the Kubernetes-shaped 413 comes from options.max_body_bytes.
_TRANSPORT_BODY_LIMIT = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SimulatorTls:
    """Serve HTTPS: the server's certificate chain and key, and the CA clients trust."""

    cert_chain_pem: bytes
    private_key_pem: bytes
    ca_pem: bytes


def _copy(stored: Stored) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(stored.raw)
    return result


class ApiSimulator:
    """A Kubernetes API server simulator for workflowtasksets, secrets and leases.

    Use as ``async with ApiSimulator(...) as sim:``; then ``sim.url`` serves the API and
    ``sim.kubeconfig(path, token=...)`` writes a kubeconfig for it.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_interval: float = 60.0,
        watch_timeout: float | None = 1800.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        history_limit: int = 2000,
        watch_queue_limit: int = 10_000,
        watch_queue_bytes: int = 256 * 1024 * 1024,
        request_log_limit: int = 10_000,
        request_log_bytes: int = 64 * 1024 * 1024,
        tls: SimulatorTls | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0-65535, got {port}")
        self._host = host
        self._requested_port = port
        self._tls = tls
        self._state = SimState(
            options=SimOptions(
                bookmark_interval=bookmark_interval,
                watch_timeout=watch_timeout,
                max_body_bytes=max_body_bytes,
            ),
            history_limit=history_limit,
            watch_queue_limit=watch_queue_limit,
            watch_queue_bytes=watch_queue_bytes,
            request_log_limit=request_log_limit,
            request_log_bytes=request_log_bytes,
        )
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ---- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Bind the port and start serving."""
        if self._runner is not None:
            raise RuntimeError("the API simulator is already started")
        app = web.Application(client_max_size=_TRANSPORT_BODY_LIMIT)
        app.add_routes(admin_routes(self._state, url=lambda: self.url))
        api = KubeApi(self._state, server_address=lambda: f"{self._host}:{self.port}")
        app.router.add_route("*", "/{tail:.*}", api.handle)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=2.0,
            # A client that goes away ends its handler (and so its watch) at once.
            handler_cancellation=True,
        )
        await runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
            site = web.SockSite(runner, sock, ssl_context=self._ssl_context())
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._port = int(sock.getsockname()[1])
        self._runner = runner

    async def stop(self) -> None:
        """End every watch cleanly and stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._state.drop_watches()
        await asyncio.sleep(0)  # let the watch streams write their end
        await runner.cleanup()

    async def __aenter__(self) -> ApiSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self._tls is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # load_cert_chain reads files only; the key lives on disk just long enough.
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
            cert.write_bytes(self._tls.cert_chain_pem)
            key.touch(mode=0o600)
            key.write_bytes(self._tls.private_key_pem)
            context.load_cert_chain(cert, key)
        return context

    # ---- addresses -----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the API simulator is not started")
        return self._port

    @property
    def url(self) -> str:
        """The API server URL, e.g. ``http://127.0.0.1:38211``."""
        scheme = "https" if self._tls else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self.port}"

    @property
    def admin_url(self) -> str:
        """The base URL of the ``/_sim`` admin endpoint."""
        return self.url + ADMIN_PREFIX

    @property
    def options(self) -> SimOptions:
        """Tunables that may be changed while running (bookmark interval, limits)."""
        return self._state.options

    # ---- authentication ------------------------------------------------------------

    def add_token(
        self,
        token: str,
        permissions: Iterable[Rule] = ALL_PERMISSIONS,
        *,
        user: str = DEFAULT_USER,
    ) -> None:
        """Accept ``Authorization: Bearer <token>`` as ``user`` with these permissions."""
        self._state.tokens.add(token, permissions, user=user)

    def remove_token(self, token: str) -> None:
        """Stop accepting a token (its requests get 401)."""
        self._state.tokens.remove(token)

    def grant(self, rules: Iterable[Rule], *, user: str = "", group: str = "") -> None:
        """Bind ``rules`` to a user (e.g. :func:`service_account_user`) or a group that has
        no token, as a RoleBinding would; SubjectAccessReviews consult them. Replaces the
        subject's earlier rules."""
        self._state.subjects.grant(rules, user=user, group=group)

    def revoke(self, *, user: str = "", group: str = "") -> None:
        """Unbind every rule :meth:`grant` gave the user or group."""
        self._state.subjects.revoke(user=user, group=group)

    def kubeconfig(
        self, path: str | os.PathLike[str], *, token: str, namespace: str = "default"
    ) -> Path:
        """Write a kubeconfig (mode 0600) pointing at this simulator with ``token``."""
        cluster: dict[str, Any] = {"server": self.url}
        if self._tls is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self._tls.ca_pem).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sim", "cluster": cluster}],
            "users": [{"name": "sim", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "sim",
                    "context": {"cluster": "sim", "user": "sim", "namespace": namespace},
                }
            ],
            "current-context": "sim",
            "preferences": {},
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)
        return target

    # ---- objects (in-process; no auth, faults or request log) ----------------------

    @property
    def resource_version(self) -> str:
        """The newest resourceVersion."""
        return str(self._state.store.resource_version)

    def create_object(
        self, resource: str, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        """Create like a POST (status dropped for workflowtasksets); returns a copy.

        The namespace is ``namespace``, else ``metadata.namespace``, else ``default``.
        """
        kind = kind_by_plural(resource)
        meta = obj.get("metadata")
        ns = namespace or (meta.get("namespace") if isinstance(meta, dict) else None)
        return _copy(self._state.store.create(kind, ns or "default", obj))

    def get_object(self, resource: str, name: str, *, namespace: str = "default") -> dict[str, Any]:
        """The object (a copy); raises :class:`~agent_sim.errors.ApiError` 404 when absent."""
        return _copy(self._state.store.get(kind_by_plural(resource), namespace, name))

    def find_object(
        self, resource: str, name: str, *, namespace: str = "default"
    ) -> dict[str, Any] | None:
        """The object (a copy), or None when absent."""
        try:
            return self.get_object(resource, name, namespace=namespace)
        except errors.ApiError as err:
            if err.code == 404:
                return None
            raise

    def list_objects(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Objects (copies) in (namespace, name) order, filtered like a list request."""
        kind = kind_by_plural(resource)
        try:
            labels = LabelSelector.parse(label_selector)
            fields = FieldSelector.parse(
                field_selector, allowed=kind.field_selectors, custom=kind.custom
            )
        except SelectorError as err:
            raise ValueError(str(err)) from None
        result = self._state.store.list_page(
            kind, namespace=namespace, labels=labels, fields=fields
        )
        return [_copy(s) for s in result.items]

    def replace_object(
        self,
        resource: str,
        obj: dict[str, Any],
        *,
        namespace: str = "default",
        subresource: str = "",
    ) -> dict[str, Any]:
        """Update like a PUT (resourceVersion precondition applies); returns a copy."""
        kind = kind_by_plural(resource)
        name = str((obj.get("metadata") or {}).get("name", ""))
        return _copy(self._state.store.update(kind, namespace, name, obj, subresource=subresource))

    def patch_object(
        self,
        resource: str,
        name: str,
        patch: Any,
        *,
        namespace: str = "default",
        patch_type: PatchType = "merge",
        subresource: str = "",
    ) -> dict[str, Any]:
        """Patch like a PATCH of ``patch_type`` (``subresource="status"`` for status)."""
        kind = kind_by_plural(resource)
        content_type = _PATCH_CONTENT_TYPES[patch_type]
        body = (
            yaml.safe_dump(patch).encode() if patch_type == "apply" else json.dumps(patch).encode()
        )
        stored = self._state.store.patch(
            kind,
            namespace,
            name,
            body,
            content_type=content_type,
            subresource=subresource,
            field_manager="api-simulator",
        )
        return _copy(stored)

    def delete_object(
        self, resource: str, name: str, *, namespace: str = "default"
    ) -> dict[str, Any]:
        """Delete like a DELETE; returns the deleted object at the deletion's version."""
        return _copy(self._state.store.delete(kind_by_plural(resource), namespace, name))

    # ---- request log ---------------------------------------------------------------

    def requests(
        self,
        *,
        verb: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        since: int = 0,
    ) -> list[RequestRecord]:
        """Requests received over HTTP (oldest first), optionally filtered."""
        return self._state.log.select(
            since=since,
            verb=verb,
            resource=resource,
            subresource=subresource,
            namespace=namespace,
            name=name,
        )

    async def wait_for_request(
        self,
        *,
        verb: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        since: int = 0,
        completed: bool = True,
    ) -> RequestRecord:
        """The first matching request after sequence ``since``, waiting until it arrives
        (and, with ``completed``, until it is answered). Bound it with asyncio.timeout."""
        return await self._state.log.wait_for(
            completed=completed,
            since=since,
            verb=verb,
            resource=resource,
            subresource=subresource,
            namespace=namespace,
            name=name,
        )

    def clear_requests(self) -> None:
        """Forget the requests received so far."""
        self._state.log.clear()

    # ---- faults --------------------------------------------------------------------

    def fail_next(
        self,
        count: int | None = 1,
        *,
        code: int = 500,
        verb: str | None = None,
        resource: str | None = None,
        path_contains: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        body_larger_than: int | None = None,
        disconnect: bool = False,
        user: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``code`` (None: until cleared).

        ``resource`` is ``"workflowtasksets"`` or ``"workflowtasksets/status"``;
        ``retry_after`` adds a ``Retry-After`` header; ``body_larger_than`` matches only
        bodies above that many bytes; ``disconnect`` cuts the connection instead;
        ``user`` matches only that client's requests.
        """
        self._state.faults.add_failure(
            code,
            count=count,
            verb=verb,
            resource=resource,
            path_contains=path_contains,
            message=message,
            retry_after=retry_after,
            body_larger_than=body_larger_than,
            disconnect=disconnect,
            user=user,
        )

    def delay(
        self,
        seconds: float,
        *,
        count: int | None = None,
        verb: str | None = None,
        resource: str | None = None,
        path_contains: str | None = None,
        user: str | None = None,
    ) -> None:
        """Hold matching requests for ``seconds`` before serving them."""
        self._state.faults.add_delay(
            seconds,
            count=count,
            verb=verb,
            resource=resource,
            path_contains=path_contains,
            user=user,
        )

    def blackhole(self, user: str) -> None:
        """Cut ``user`` off the API server, as a network partition would: its requests
        are held unanswered and never applied, its watches go silent; :meth:`lift` cuts
        the held connections."""
        self._state.faults.add_blackhole(user)

    def lift(self, user: str | None = None) -> int:
        """End the blackhole of ``user`` (every one when None)."""
        return self._state.faults.lift(user)

    def clear_faults(self) -> None:
        """Remove every failure and delay rule, and lift every blackhole."""
        self._state.faults.clear()

    # ---- usage ---------------------------------------------------------------------

    def usage(self) -> dict[str, dict[str, Any]]:
        """Per user: ``requests``, ``byVerb``, ``requestBytes``, ``responseBytes``,
        ``watches`` and ``watchBytes`` since the start (or :meth:`clear_usage`)."""
        users: dict[str, dict[str, Any]] = self._state.usage.describe()["users"]
        return users

    def clear_usage(self) -> None:
        """Start counting usage afresh."""
        self._state.usage.clear()

    def drop_watches(self, *, abrupt: bool = False) -> int:
        """End every open watch now (``abrupt``: cut the connection mid-stream)."""
        return self._state.drop_watches(abrupt=abrupt)

    def compact(self) -> str:
        """Drop the event history; watching from an older version then gets 410 Expired."""
        return str(self._state.store.compact())

    @property
    def open_watches(self) -> int:
        """How many watch streams are open."""
        return len(self._state.store.watchers())

    async def wait_for_watches(self, count: int = 1) -> None:
        """Wait until at least ``count`` watches are open (bound it with asyncio.timeout)."""
        opened = self._state.store.watch_opened
        while True:
            opened.clear()
            if self.open_watches >= count:
                return
            await opened.wait()
