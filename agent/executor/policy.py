"""The outbound request policy: destinations no template may reach.

A shared agent sends requests on behalf of every workflow author, from inside the
cluster. The deny list keeps those requests away from networks the author must not
reach through us (by default the cloud metadata endpoints, which hand out node
credentials). It is checked on the **address a connection is actually made to**: the
transports call :meth:`OutboundPolicy.check` after DNS resolution (and for literal IPs),
on every connection, so a hostname that resolves to a denied address, a redirect to one,
or a DNS answer that changes between two requests cannot slip through.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

__all__ = ["InvalidNetwork", "OutboundPolicy", "PolicyDenied", "parse_networks"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_VERDICT_CACHE = 4096


class PolicyDenied(OSError):
    """A connection to a denied address; an ``OSError`` so connection machinery treats it
    like any other failure to connect (no retry, no pooled connection)."""

    def __init__(self, *, host: str, address: str, rule: str) -> None:
        self.host = host
        self.address = address
        self.rule = rule
        where = address if host in ("", address) else f"{host} ({address})"
        super().__init__(
            f"outbound policy: destination {where} is denied by rule {rule} (deny_networks)"
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


class OutboundPolicy:
    """A list of denied networks; IPv4-mapped IPv6 addresses are checked as IPv4 too."""

    def __init__(self, deny_networks: Iterable[str]) -> None:
        self._networks = parse_networks(deny_networks)
        self._verdicts: dict[str, str | None] = {}  # address -> rule; addresses repeat

    def __bool__(self) -> bool:
        return bool(self._networks)

    def rule_for(self, address: str) -> str | None:
        """The denied network containing ``address`` (an IP literal), or ``None``."""
        try:
            return self._verdicts[address]
        except KeyError:
            pass
        rule = self._rule_for(address)
        if len(self._verdicts) >= _VERDICT_CACHE:
            self._verdicts.clear()
        self._verdicts[address] = rule
        return rule

    def _rule_for(self, address: str) -> str | None:
        ip = _parse(address)
        if ip is None:
            return None
        candidates: list[_Address] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        for network in self._networks:
            for candidate in candidates:
                if candidate.version == network.version and candidate in network:
                    return str(network)
        return None

    def check(self, address: str, *, host: str = "") -> None:
        """Raise :class:`PolicyDenied` if a connection to ``address`` is not allowed."""
        rule = self.rule_for(address)
        if rule is not None:
            raise PolicyDenied(host=host, address=_strip_zone(address), rule=rule)


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
