"""Namespace outbound policies: ConfigMaps in the agent's own namespace, listed and watched.

A platform team declares per-namespace egress rules the way it declares everything else,
as objects only it can edit: ConfigMaps **in the agent's namespace** (workflow authors
cannot write there) labelled ``argo-http-agent.io/outbound-policy=true``::

    data:
      namespaces: "team-a, team-b-*"        # required; comma/space separated globs
      denyNetworks: "10.0.0.0/8, fd00::/8"  # CIDRs (host bits allowed)
      denyHosts: "*.internal, metadata.*"   # globs on the URL's host name
      allowNetworks: "203.0.113.0/24"       # if any allow list is set: only these
      allowHosts: "api.partner.example, *.partner.example"

Each ConfigMap becomes one :class:`~agent.executor.policy.NamespaceRules` for the
namespaces it names; a namespace named by several gets all of them, and a request must pass
each. The agent-wide ``--deny-networks`` (and the always-refused unspecified addresses) are
checked first, whatever the ConfigMaps say.

**A malformed policy fails closed**: when ``namespaces`` can be read but another field
cannot, the namespaces it names get a rule denying every destination (its message names
the ConfigMap and the field), so a typo never opens egress; the ConfigMap is logged at
WARNING with the field and counted in ``argo_agent_outbound_policies{state="invalid"}``. A
ConfigMap whose ``namespaces`` is missing or empty selects nothing: logged and counted,
ignored. Unknown keys are logged and ignored (a misspelt key would otherwise be silently
inert, so the log names it).

Mechanics: list, then watch from the list's ``resourceVersion``; any change re-lists
(policies are few and small, so a re-list is cheaper to get right than an incremental
cache). Until the first list succeeded, :attr:`NamespacePolicies.loaded` stays false and
the executor holds HTTP tasks back rather than send them unchecked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from agent.core import jsoncodec, metrics
from agent.executor.policy import (
    InvalidNetwork,
    NamespacePolicies,
    NamespaceRules,
    parse_networks,
)
from agent.kube.client import api_error_text, api_status_text

__all__ = ["POLICY_LABEL", "PolicyError", "PolicyWatcher", "parse_policy"]

log = logging.getLogger(__name__)

POLICY_LABEL = "argo-http-agent.io/outbound-policy"
_SELECTOR = f"{POLICY_LABEL}=true"
_KEYS = ("namespaces", "denyNetworks", "denyHosts", "allowNetworks", "allowHosts")
_SPLIT = re.compile(r"[\s,]+")
# A host glob: host-name characters, IP literal characters and the glob characters.
_HOST_GLOB = re.compile(r"^[a-z0-9.*?\[\]!:_-]+$")
_MAX_EVENT_BYTES = 4 << 20
_DENY_ALL = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


class PolicyError(ValueError):
    """One field of a policy ConfigMap is unusable; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


def _items(text: str) -> list[str]:
    return [item for item in _SPLIT.split(text.strip()) if item]


def parse_policy(
    name: str, data: Mapping[str, Any]
) -> tuple[tuple[str, ...], NamespaceRules, PolicyError | None]:
    """The namespace patterns and the rules of one ConfigMap's ``data``.

    Raises :class:`PolicyError` when ``namespaces`` is missing or unusable (the policy
    selects nothing). Any other bad field gives deny-everything rules and the error.
    """
    source = f"namespace policy {name}"
    raw = data.get("namespaces")
    if not isinstance(raw, str) or not _items(raw):
        raise PolicyError("data.namespaces", "missing or empty: the policy selects no namespace")
    namespaces = tuple(_items(raw))
    try:
        lists: dict[str, Any] = {}
        for key in ("denyNetworks", "allowNetworks"):
            try:
                lists[key] = parse_networks(_items(str(data.get(key) or "")))
            except InvalidNetwork as exc:
                raise PolicyError(
                    f"data.{key}", f"invalid network {exc.network!r}: {exc}"
                ) from None
        for key in ("denyHosts", "allowHosts"):
            patterns = tuple(p.lower().rstrip(".") for p in _items(str(data.get(key) or "")))
            for pattern in patterns:
                if not _HOST_GLOB.match(pattern):
                    raise PolicyError(f"data.{key}", f"{pattern!r} is not a host name pattern")
            lists[key] = patterns
    except PolicyError as exc:
        closed = NamespaceRules(source=f"{source} (invalid {exc.field})", deny_networks=_DENY_ALL)
        return namespaces, closed, exc
    rules = NamespaceRules(
        source=source,
        deny_networks=lists["denyNetworks"],
        deny_hosts=lists["denyHosts"],
        allow_networks=lists["allowNetworks"],
        allow_hosts=lists["allowHosts"],
    )
    return namespaces, rules, None


class PolicyWatcher:
    """Keeps a :class:`NamespacePolicies` equal to the policy ConfigMaps of ``namespace``."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        namespace: str,
        policies: NamespacePolicies,
        watch_timeout: int = 120,
        request_timeout: float = 30.0,
        retry_delay: float = 0.5,
        max_retry_delay: float = 10.0,
    ) -> None:
        self._api = client.CoreV1Api(api)
        self._namespace = namespace
        self._policies = policies
        self._watch_timeout = watch_timeout
        self._request_timeout = request_timeout
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self.last_error = ""
        self._reported: dict[str, str] = {}  # ConfigMap -> the problem last logged

    async def run(self) -> None:
        delay = self._retry_delay
        while True:
            try:
                version = await self._list()
                delay = self._retry_delay
                await self._watch(version)
            except asyncio.CancelledError:
                raise
            except (ApiException, OSError, TimeoutError, aiohttp.ClientError, ValueError) as exc:
                text = api_error_text(exc) if isinstance(exc, ApiException) else str(exc)
                text = text or type(exc).__name__
                self.last_error = f"outbound policies in namespace {self._namespace}: {text}"
                log.warning("cannot read %s; retrying in %.1fs", self.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)

    async def _list(self) -> str:
        response: Any = await self._api.list_namespaced_config_map(
            self._namespace,
            label_selector=_SELECTOR,
            _preload_content=False,
            _request_timeout=self._request_timeout,
        )
        try:
            body = await response.read()
        finally:
            response.release()
        document = jsoncodec.loads(body)
        self._apply(document.get("items") or [])
        self.last_error = ""
        return str((document.get("metadata") or {}).get("resourceVersion") or "")

    def _apply(self, items: list[Mapping[str, Any]]) -> None:
        entries: list[tuple[tuple[str, ...], NamespaceRules]] = []
        counts = {"valid": 0, "invalid": 0}
        seen: set[str] = set()
        for item in sorted(items, key=lambda i: str((i.get("metadata") or {}).get("name"))):
            meta = item.get("metadata") or {}
            name = f"{meta.get('namespace', self._namespace)}/{meta.get('name', '')}"
            seen.add(name)
            data = item.get("data") or {}
            unknown = sorted(set(data) - set(_KEYS))
            problem = f"unknown key(s) {', '.join(unknown)} ignored" if unknown else ""
            try:
                namespaces, rules, error = parse_policy(name, data)
            except PolicyError as exc:
                counts["invalid"] += 1
                self._report(name, f"{exc}; the policy is ignored")
                continue
            entries.append((namespaces, rules))
            if error is not None:
                counts["invalid"] += 1
                problem = f"{error}; its namespaces are denied every destination until it is fixed"
            else:
                counts["valid"] += 1
            self._report(name, problem)
        for gone in set(self._reported) - seen:
            del self._reported[gone]
        self._policies.replace(entries)
        for state, count in counts.items():
            metrics.child(metrics.OUTBOUND_POLICIES, state).set(count)
        log.info(
            "outbound policies: %d in force (%d invalid) from namespace %s",
            len(entries),
            counts["invalid"],
            self._namespace,
        )

    def _report(self, name: str, problem: str) -> None:
        # Logged once per change, not at every re-list.
        if problem and self._reported.get(name) != problem:
            log.warning("outbound policy ConfigMap %s: %s", name, problem)
        self._reported[name] = problem

    async def _watch(self, version: str) -> None:
        # Raw (_preload_content=False): an aiohttp response, not the typed list.
        response: Any = await self._api.list_namespaced_config_map(
            self._namespace,
            label_selector=_SELECTOR,
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=version,
            timeout_seconds=self._watch_timeout,
            _preload_content=False,
            _request_timeout=(self._request_timeout, self._watch_timeout + 15.0),
        )
        try:
            if response.status != 200:
                body = await response.read()
                raise ApiException(
                    status=response.status, reason=api_status_text(body, response.reason)
                )
            while True:
                line = await response.content.readline(max_line_length=_MAX_EVENT_BYTES)
                if not line:
                    return  # the server's timeout: re-list
                if line.isspace():
                    continue
                event = jsoncodec.loads(line)
                if event.get("type") != "BOOKMARK":
                    return  # a change (or an error such as 410): re-list
        finally:
            response.release()
