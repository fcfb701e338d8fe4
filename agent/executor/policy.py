"""The outbound request policy: destinations no template may reach.

A shared agent sends requests on behalf of every workflow author, from inside the
cluster. The deny list keeps those requests away from networks the author must not
reach through us (by default the cloud metadata endpoints, which hand out node
credentials). It is checked on the **address a connection is actually made to**: the
transports call :meth:`OutboundPolicy.check` after DNS resolution (and for literal IPs),
on every connection, so a hostname that resolves to a denied address, a redirect to one,
or a DNS answer that changes between two requests cannot slip through.

Three layers, checked in this order on every connection (the first refusal wins):

1. **Always**: the unspecified addresses ``0.0.0.0/8`` and ``::/128`` (IPv4-mapped forms
   included). Linux connects to them as to the local host, so denying ``127.0.0.0/8``
   would otherwise be bypassed by ``http://0.0.0.0:PORT/``. Reported as part of the
   agent-wide list (``deny_networks``).
2. **Agent-wide** ``deny_networks`` (the operator's flag).
3. **Per namespace**: :class:`NamespaceRules`, one per policy ConfigMap that selects the
   task's namespace (the executor picks them by namespace; the Kubernetes side that reads
   the ConfigMaps lives in :mod:`agent.kube.outbound`). Each set of rules is a constraint
   of its own: its ``denyNetworks`` / ``denyHosts`` refuse, and when it has an allow list
   (``allowNetworks`` or ``allowHosts``) only destinations matching one of them pass.

Because a pooled connection is reused without a new check, the executor never lets two
different policies share a pool: each distinct set of namespace rules gets its own client.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ALWAYS_DENIED",
    "InvalidNetwork",
    "NamespacePolicies",
    "NamespaceRules",
    "OutboundPolicy",
    "PolicyDenied",
    "normalize_host",
    "parse_networks",
]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_VERDICT_CACHE = 4096
#: Destinations no template may reach whatever the lists say: the unspecified addresses,
#: which Linux connects to as to the local host.
ALWAYS_DENIED: tuple[str, ...] = ("0.0.0.0/8", "::/128")
_AGENT_WIDE = "deny_networks"


class PolicyDenied(OSError):
    """A connection to a denied address; an ``OSError`` so connection machinery treats it
    like any other failure to connect (no retry, no pooled connection)."""

    def __init__(self, *, host: str, address: str, rule: str, source: str = _AGENT_WIDE) -> None:
        self.host = host
        self.address = address
        self.rule = rule
        self.source = source
        where = address if host in ("", address) else f"{host} ({address})"
        super().__init__(
            f"outbound policy: destination {where} is denied by rule {rule} ({source})"
        )

    def __str__(self) -> str:  # OSError's str() would prefix an errno tuple
        return str(self.args[0])


class InvalidNetwork(ValueError):
    """One entry of a deny list is not a network; ``str()`` is :mod:`ipaddress`'s reason."""

    def __init__(self, network: str, reason: str) -> None:
        super().__init__(reason)
        self.network = network


def parse_networks(items: Iterable[str]) -> tuple[_Network, ...]:
    """The networks of a deny list (CIDRs; host bits allowed, a bare address is one host).

    The one check of a deny list: the executor's settings, the service's flags and the
    policy itself all parse it here. Raises :class:`InvalidNetwork` for the first bad entry.
    """
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise InvalidNetwork(item, str(exc)) from None
    return tuple(networks)


def normalize_host(host: str) -> str:
    """A host name as the host patterns see it: lower case, no brackets, no trailing dot."""
    return host.strip("[]").rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class NamespaceRules:
    """The rules of one namespace policy (one ConfigMap), already validated.

    ``source`` names it in denial messages (``namespace policy <ns>/<name>``). Host patterns
    are shell globs (:func:`fnmatch.fnmatchcase`, lower case): ``*`` matches dots too, so
    ``*.example.com`` covers every subdomain but not ``example.com`` itself. They match the
    URL's host (the name dialled, not a ``Host`` header), on every redirect hop.
    """

    source: str
    deny_networks: tuple[_Network, ...] = ()
    deny_hosts: tuple[str, ...] = ()
    allow_networks: tuple[_Network, ...] = ()
    allow_hosts: tuple[str, ...] = ()

    @property
    def restricts(self) -> bool:
        return bool(self.allow_networks or self.allow_hosts)

    def verdict(self, candidates: list[_Address], host: str) -> tuple[str, str] | None:
        """``(rule, list)`` refusing this destination, or ``None``."""
        rule = _network_rule(self.deny_networks, candidates)
        if rule is not None:
            return rule, f"denyNetworks of {self.source}"
        for pattern in self.deny_hosts:
            if host and fnmatch.fnmatchcase(host, pattern):
                return pattern, f"denyHosts of {self.source}"
        if not self.restricts:
            return None
        if _network_rule(self.allow_networks, candidates) is not None:
            return None
        if host and any(fnmatch.fnmatchcase(host, p) for p in self.allow_hosts):
            return None
        return "allowNetworks/allowHosts", f"no match in {self.source}"


class NamespacePolicies:
    """Which :class:`NamespaceRules` apply to which namespace; replaced as a whole.

    The reader of the policy ConfigMaps calls :meth:`replace` with every valid policy and
    the namespace patterns (globs) it selects; the executor asks :meth:`rules_for` per task.
    ``generation`` grows with every replacement, so the executor knows when its per-policy
    clients may be stale.
    """

    def __init__(self) -> None:
        self._entries: tuple[tuple[tuple[str, ...], NamespaceRules], ...] = ()
        self._by_namespace: dict[str, tuple[NamespaceRules, ...]] = {}
        self.generation = 0
        self._loaded: asyncio.Event | None = None
        self.loaded = False

    def replace(self, entries: Iterable[tuple[tuple[str, ...], NamespaceRules]]) -> None:
        self._entries = tuple(entries)
        self._by_namespace = {}
        self.generation += 1
        self.loaded = True
        if self._loaded is not None:
            self._loaded.set()

    async def wait_loaded(self) -> None:
        """Until the first :meth:`replace`: no request is sent before the rules are known."""
        if self.loaded:
            return
        if self._loaded is None:
            self._loaded = asyncio.Event()
        await self._loaded.wait()

    def rules_for(self, namespace: str) -> tuple[NamespaceRules, ...]:
        try:
            return self._by_namespace[namespace]
        except KeyError:
            pass
        rules = tuple(
            rules
            for patterns, rules in self._entries
            if any(fnmatch.fnmatchcase(namespace, pattern) for pattern in patterns)
        )
        if len(self._by_namespace) >= _VERDICT_CACHE:
            self._by_namespace.clear()
        self._by_namespace[namespace] = rules
        return rules


def _network_rule(networks: tuple[_Network, ...], candidates: list[_Address]) -> str | None:
    for network in networks:
        for candidate in candidates:
            if candidate.version == network.version and candidate in network:
                return str(network)
    return None


class OutboundPolicy:
    """The always-denied addresses, a list of denied networks and namespace rules.

    IPv4-mapped IPv6 addresses are checked as IPv4 too. ``refuse_unspecified=False`` is for
    the plugins' client only (operator-configured sidecars, exempt from every list).
    """

    def __init__(
        self,
        deny_networks: Iterable[str],
        *,
        namespace_rules: tuple[NamespaceRules, ...] = (),
        refuse_unspecified: bool = True,
    ) -> None:
        always = ALWAYS_DENIED if refuse_unspecified else ()
        self._networks = parse_networks((*always, *deny_networks))
        self.namespace_rules = namespace_rules
        # (address, host) -> (rule, list); addresses and hosts repeat
        self._verdicts: dict[tuple[str, str], tuple[str, str] | None] = {}

    def __bool__(self) -> bool:
        return bool(self._networks or self.namespace_rules)

    def rule_for(self, address: str, *, host: str = "") -> str | None:
        """The rule refusing ``address`` (an IP literal) reached as ``host``, or ``None``."""
        verdict = self.verdict(address, host=host)
        return None if verdict is None else verdict[0]

    def verdict(self, address: str, *, host: str = "") -> tuple[str, str] | None:
        """``(rule, list)`` refusing a connection to ``address`` for ``host``, or ``None``."""
        key = (address, host)
        try:
            return self._verdicts[key]
        except KeyError:
            pass
        verdict = self._verdict(address, host)
        if len(self._verdicts) >= _VERDICT_CACHE:
            self._verdicts.clear()
        self._verdicts[key] = verdict
        return verdict

    def _verdict(self, address: str, host: str) -> tuple[str, str] | None:
        ip = _parse(address)
        if ip is None:
            return None
        candidates: list[_Address] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        rule = _network_rule(self._networks, candidates)
        if rule is not None:
            return rule, _AGENT_WIDE
        name = normalize_host(host) if host else normalize_host(address)
        for rules in self.namespace_rules:
            verdict = rules.verdict(candidates, name)
            if verdict is not None:
                return verdict
        return None

    def check(self, address: str, *, host: str = "") -> None:
        """Raise :class:`PolicyDenied` if a connection to ``address`` is not allowed."""
        verdict = self.verdict(address, host=host)
        if verdict is not None:
            raise PolicyDenied(
                host=host, address=_strip_zone(address), rule=verdict[0], source=verdict[1]
            )


def is_ip_literal(host: str) -> bool:
    return _parse(host) is not None


def _strip_zone(address: str) -> str:
    return address.strip("[]").split("%", 1)[0]


@functools.lru_cache(maxsize=4096)
def _parse(address: str) -> _Address | None:
    # Cached: every request asks about its host, hosts repeat, and parsing an address is
    # costly next to a dict look-up.
    try:
        return ipaddress.ip_address(_strip_zone(address))
    except ValueError:
        return None
