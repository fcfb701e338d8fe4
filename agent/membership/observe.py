"""Liveness by observation: a member is live while its Lease keeps changing.

A member renews its Lease every ``duration/3`` by writing a new ``renewTime``. Whether it
is alive is judged as client-go's leader election judges a leader: never by comparing the
remote ``renewTime`` with the local clock (the clocks of two machines disagree, by any
amount), but by *when this process observed* the Lease record change, on its own monotonic
clock. A Lease is live until ``observed_at + leaseDurationSeconds``; a Lease whose
``renewTime`` lies far in the future or the past is judged exactly like any other.

Observations come from a watch and from periodic re-lists (a broken watch cannot freeze
the view). Both can deliver an older version of a Lease than one already seen (a list
answered before a watch event arrived): a resourceVersion seen before never counts as a
renewal, and a Lease missing from a list is dropped only if the list started after we
last observed it (a Lease created while the list ran is not made to flap).

An expiry counts only once a complete list **that started after it** confirms it (the Lease
unchanged, or gone). Until then the member stays live: an observer that cannot reach the API
server (cut off, or starved) sees no renewal of anybody, and judging the others gone from
that silence would hand it all their work the moment its own Lease is renewed again --
while they run it too. A list that succeeds is evidence the observer sees the API server;
a renewal it shows counts as observed then, and a Lease it shows unchanged past its expiry
is gone. The members list the group at every renewal, and once more the moment a Lease
expires as observed, so a dead member's work is taken over one list later.

A Lease whose holder was cleared ends its member at once, and so does the deletion of a
draining member's Lease (a clean stop: it drained and delivered everything first). A
member whose Lease says it is draining still counts as live (its claims stand) but owns no
new work. The deletion of a Lease that was *not* draining (by hand, or by a collector that
judged too early) is no evidence that its member stopped: it stays live until its last
observed renewal expires, as if the Lease had merely stopped changing. A running member
creates its Lease again at its next renewal and is never judged gone; otherwise its
unclaimed requests in flight would be sent a second time by the members taking its nodes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DRAINING_ANNOTATION", "LeaseObserver", "Observed"]

#: An annotation a member sets on its Lease while it drains (stops taking new work).
DRAINING_ANNOTATION = "argo-http-agent.io/draining"
_VERSIONS_KEPT = 8


@dataclass(slots=True)
class Observed:
    """What we know of one Lease of the group."""

    holder: str
    record: tuple[Any, ...]
    duration: float
    draining: bool
    observed_at: float
    version: str
    versions: deque[str] = field(default_factory=lambda: deque(maxlen=_VERSIONS_KEPT))

    def expires_at(self) -> float:
        return self.observed_at + self.duration if self.holder else -math.inf


class LeaseObserver:
    """The Leases of a group as observed, and which members they show live."""

    def __init__(self, *, own_lease: str, default_duration: float) -> None:
        self.own_lease = own_lease
        self._default_duration = default_duration
        self.leases: dict[str, Observed] = {}
        #: When the last complete list started: it confirms the expiries before it.
        self.listed_at = -math.inf

    def _confirmed_gone(self, observed: Observed) -> bool:
        return observed.expires_at() < self.listed_at

    def _live(self, observed: Observed, now: float) -> bool:
        return bool(observed.holder) and (
            observed.expires_at() > now or not self._confirmed_gone(observed)
        )

    def observe(self, obj: Mapping[str, Any], *, now: float) -> bool:
        """Take in one Lease object (a list item or a watch event's object); True if
        something that changes the view changed."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        if not name or name == self.own_lease:
            return False  # our own liveness is what our renewals say, not what we see
        spec = obj.get("spec") or {}
        if not isinstance(spec, Mapping):
            spec = {}
        version = str(meta.get("resourceVersion", ""))
        holder = str(spec.get("holderIdentity") or "")
        annotations = meta.get("annotations") or {}
        draining = isinstance(annotations, Mapping) and annotations.get(DRAINING_ANNOTATION) == (
            "true"
        )
        seconds = spec.get("leaseDurationSeconds")
        duration = (
            float(seconds)
            if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0
            else self._default_duration
        )
        record = (
            holder,
            spec.get("renewTime"),
            spec.get("acquireTime"),
            seconds,
            spec.get("leaseTransitions"),
            draining,
        )
        known = self.leases.get(name)
        if known is not None and version and version in known.versions:
            return False  # this version, or an older one, was seen already
        if known is None:
            observed = Observed(holder, record, duration, draining, now, version)
            observed.versions.append(version)
            self.leases[name] = observed
            return bool(holder)
        known.versions.append(version)
        known.version = version
        if known.record == record:
            return False  # an unrelated change (a label): not a renewal
        was = (known.holder, known.draining, self._live(known, now))
        known.holder, known.record, known.duration, known.draining = (
            holder,
            record,
            duration,
            draining,
        )
        known.observed_at = now
        return was != (holder, draining, True)

    def deleted(self, name: str, *, now: float) -> bool:
        """A Lease was deleted; True if that ended a member (see the module docstring)."""
        observed = self.leases.get(name)
        if observed is None:
            return False
        if observed.draining or (observed.expires_at() <= now and self._confirmed_gone(observed)):
            del self.leases[name]
            return bool(observed.holder)
        # Live until its observed expiry; nothing left to collect (no version).
        observed.version = ""
        return False

    def listed(self, items: Iterable[Mapping[str, Any]], *, started_at: float, now: float) -> bool:
        """A complete list of the group's Leases, requested at ``started_at``; True if
        the view changed (a renewal seen, a member gone, an expiry confirmed)."""
        before = self.members(now=now)
        self.listed_at = max(self.listed_at, started_at)
        changed = False
        names = set()
        for item in items:
            meta = item.get("metadata") or {}
            names.add(str(meta.get("name", "")))
            changed |= self.observe(item, now=now)
        for name in [n for n in self.leases if n not in names]:
            if self.leases[name].observed_at < started_at:
                changed |= self.deleted(name, now=now)
        return changed or self.members(now=now) != before

    def members(self, *, now: float) -> tuple[frozenset[str], frozenset[str]]:
        """(owners, live): live members taking work, and every live member."""
        live = {o.holder: o.draining for o in self.leases.values() if self._live(o, now)}
        return frozenset(h for h, d in live.items() if not d), frozenset(live)

    def next_expiry(self, *, now: float) -> float:
        """The next moment a live Lease expires unless renewed (inf if none)."""
        times = [o.expires_at() for o in self.leases.values() if o.expires_at() > now]
        return min(times, default=math.inf)

    def unconfirmed(self, *, now: float) -> bool:
        """Whether a Lease expired as observed waits for a list to confirm it."""
        return any(
            o.holder and o.expires_at() <= now and not self._confirmed_gone(o)
            for o in self.leases.values()
        )

    def expired(self, *, now: float, grace: float) -> list[tuple[str, str]]:
        """(name, resourceVersion) of Leases expired (and confirmed) for more than
        ``grace`` seconds.

        Leases deleted before they expired are forgotten here once their expiry is
        confirmed (nothing to delete)."""
        for name in [
            n
            for n, o in self.leases.items()
            if not o.version and o.expires_at() < now and self._confirmed_gone(o)
        ]:
            del self.leases[name]
        return [
            (name, o.version)
            for name, o in self.leases.items()
            if o.expires_at() + grace < now and o.version and self._confirmed_gone(o)
        ]
