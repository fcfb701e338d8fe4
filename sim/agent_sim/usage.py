"""What each client (authenticated user) cost the API server: requests and bytes.

Replicas share the work, but each member is a client of its own: it watches every
taskset, renews and lists Leases, patches statuses. To measure what one more member costs,
members authenticate as distinct users and the simulator counts, per user, the requests
it served (by verb), the bytes it received, the bytes of plain answers and the bytes
streamed on watches. Unlike the request log, the counters are never trimmed, so a long
benchmark can read its totals at the end (``GET /_sim/usage``, :meth:`ApiSimulator.usage`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["UsageCounters", "UserUsage"]


@dataclass(slots=True)
class UserUsage:
    """One user's totals."""

    requests: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    watches: int = 0
    watch_bytes: int = 0
    by_verb: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON form served by the admin endpoint."""
        return {
            "requests": self.requests,
            "requestBytes": self.request_bytes,
            "responseBytes": self.response_bytes,
            "watches": self.watches,
            "watchBytes": self.watch_bytes,
            "byVerb": dict(sorted(self.by_verb.items())),
        }


class UsageCounters:
    """Totals per user (``""``: requests that did not authenticate)."""

    def __init__(self) -> None:
        self._users: dict[str, UserUsage] = {}

    def _of(self, user: str) -> UserUsage:
        usage = self._users.get(user)
        if usage is None:
            usage = self._users[user] = UserUsage()
        return usage

    def request(self, user: str, verb: str, *, received: int) -> None:
        """A request arrived (counted whether or not it succeeds)."""
        usage = self._of(user)
        usage.requests += 1
        usage.request_bytes += received
        key = verb or "other"
        usage.by_verb[key] = usage.by_verb.get(key, 0) + 1
        if verb == "watch":
            usage.watches += 1

    def answered(self, user: str, size: int) -> None:
        """A plain (not streamed) answer of ``size`` body bytes was sent."""
        self._of(user).response_bytes += size

    def streamed(self, user: str, size: int) -> None:
        """``size`` bytes were written on one of the user's watch streams."""
        self._of(user).watch_bytes += size

    def describe(self) -> dict[str, Any]:
        """Every user's totals, for the admin endpoint."""
        return {"users": {user: u.to_json() for user, u in sorted(self._users.items())}}

    def clear(self) -> None:
        """Start counting afresh."""
        self._users.clear()
