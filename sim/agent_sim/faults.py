"""Fault injection: failing, delaying or cutting selected requests on purpose.

Faults are rules matched against each API request (after authentication, before
authorization) by verb, resource (``"workflowtasksets/status"`` names the subresource),
a path substring, the authenticated user and, for failures, a minimum body size, so a
test can say "the next status patch larger than 1 KiB gets 413" or "the next two lists
get 429 with Retry-After: 1". A rule with ``count=None`` applies until
:meth:`Faults.clear`.

A *blackhole* cuts one client (a user) off the API server, as a network partition would:
its requests are held unanswered and never applied, its open watches deliver nothing
more, until the blackhole is lifted; then the held connections are cut. Replicas test
their fence with it: a member that cannot reach the API must stop starting requests
before the others judge it dead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Blackhole", "DelayRule", "FailRule", "Faults", "RequestFacts"]


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """The parts of a request a fault rule can match on."""

    verb: str
    resource: str  # "plural" or "plural/subresource"; "" for non-resource paths
    path: str
    body_size: int
    user: str = ""


@dataclass(slots=True)
class _Match:
    verb: str | None = None
    resource: str | None = None
    path_contains: str | None = None
    user: str | None = None

    def matches(self, facts: RequestFacts) -> bool:
        return (
            (self.verb is None or self.verb == facts.verb)
            and (self.resource is None or self.resource == facts.resource)
            and (self.path_contains is None or self.path_contains in facts.path)
            and (self.user is None or self.user == facts.user)
        )


@dataclass(slots=True)
class Blackhole:
    """Every request of ``user`` held unanswered (and never applied) until lifted."""

    user: str
    lifted: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0  # requests that fell in (watch streams that went silent included)

    def to_json(self) -> dict[str, Any]:
        """A readable description for the admin endpoint."""
        return {"user": self.user, "held": self.held}


@dataclass(slots=True)
class FailRule:
    """Answer matching requests with ``code`` (or drop the connection when ``disconnect``)."""

    code: int
    count: int | None
    match: _Match
    message: str | None = None
    retry_after: int | None = None
    body_larger_than: int | None = None
    disconnect: bool = False

    def to_json(self) -> dict[str, Any]:
        """A readable description for the admin endpoint."""
        return {
            "code": self.code,
            "count": self.count,
            "verb": self.match.verb,
            "resource": self.match.resource,
            "pathContains": self.match.path_contains,
            "user": self.match.user,
            "message": self.message,
            "retryAfter": self.retry_after,
            "bodyLargerThan": self.body_larger_than,
            "disconnect": self.disconnect,
        }


@dataclass(slots=True)
class DelayRule:
    """Hold matching requests for ``seconds`` before serving them."""

    seconds: float
    count: int | None
    match: _Match

    def to_json(self) -> dict[str, Any]:
        """A readable description for the admin endpoint."""
        return {
            "seconds": self.seconds,
            "count": self.count,
            "verb": self.match.verb,
            "resource": self.match.resource,
            "pathContains": self.match.path_contains,
            "user": self.match.user,
        }


def _check_count(count: int | None) -> None:
    if count is not None and count < 1:
        raise ValueError(f"count must be >= 1 or None (forever), got {count}")


class Faults:
    """The active fault rules, consumed in the order they were added."""

    def __init__(self) -> None:
        self._fail: list[FailRule] = []
        self._delay: list[DelayRule] = []
        self._blackholes: dict[str, Blackhole] = {}

    def add_failure(
        self,
        code: int,
        *,
        count: int | None = 1,
        verb: str | None = None,
        resource: str | None = None,
        path_contains: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        body_larger_than: int | None = None,
        disconnect: bool = False,
        user: str | None = None,
    ) -> FailRule:
        """Fail the next ``count`` matching requests."""
        _check_count(count)
        if not disconnect and not 400 <= code <= 599:
            raise ValueError(f"code must be an HTTP error status (400-599), got {code}")
        if retry_after is not None and retry_after < 0:
            raise ValueError(f"retry_after must be >= 0, got {retry_after}")
        rule = FailRule(
            code=code,
            count=count,
            match=_Match(verb, resource, path_contains, user),
            message=message,
            retry_after=retry_after,
            body_larger_than=body_larger_than,
            disconnect=disconnect,
        )
        self._fail.append(rule)
        return rule

    def add_delay(
        self,
        seconds: float,
        *,
        count: int | None = None,
        verb: str | None = None,
        resource: str | None = None,
        path_contains: str | None = None,
        user: str | None = None,
    ) -> DelayRule:
        """Delay the next ``count`` matching requests (all of them when None)."""
        _check_count(count)
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        rule = DelayRule(seconds, count, _Match(verb, resource, path_contains, user))
        self._delay.append(rule)
        return rule

    def add_blackhole(self, user: str) -> Blackhole:
        """Cut ``user`` off the API server until :meth:`lift` (or :meth:`clear`)."""
        if not user:
            raise ValueError("user must be a non-empty user name")
        hole = self._blackholes.get(user)
        if hole is None:
            hole = self._blackholes[user] = Blackhole(user)
        return hole

    def blackhole(self, user: str) -> Blackhole | None:
        """The blackhole ``user`` is in, if any."""
        return self._blackholes.get(user) if user else None

    def lift(self, user: str | None = None) -> int:
        """End the blackhole of ``user`` (every one when None); how many ended."""
        users = list(self._blackholes) if user is None else [user]
        ended = 0
        for name in users:
            hole = self._blackholes.pop(name, None)
            if hole is not None:
                hole.lifted.set()
                ended += 1
        return ended

    def clear(self) -> None:
        """Remove every rule (and lift every blackhole)."""
        self._fail.clear()
        self._delay.clear()
        self.lift()

    def take_delay(self, facts: RequestFacts) -> float:
        """Total delay owed by this request (consuming one use of each matching rule)."""
        total = 0.0
        for rule in list(self._delay):
            if rule.match.matches(facts):
                total += rule.seconds
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count == 0:
                        self._delay.remove(rule)
        return total

    def take_failure(self, facts: RequestFacts) -> FailRule | None:
        """The first failure rule matching this request, consuming one use of it."""
        for rule in self._fail:
            if not rule.match.matches(facts):
                continue
            if rule.body_larger_than is not None and facts.body_size <= rule.body_larger_than:
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count == 0:
                    self._fail.remove(rule)
            return rule
        return None

    def describe(self) -> dict[str, Any]:
        """The active rules, for the admin endpoint."""
        return {
            "failures": [r.to_json() for r in self._fail],
            "delays": [r.to_json() for r in self._delay],
            "blackholes": [h.to_json() for h in self._blackholes.values()],
        }
