"""Ownership: which member runs which taskset, from a view of the live members.

The unit of ownership is the **taskset** (``namespace/name``, :func:`unit_of`): every node of
a taskset has its taskset's owner. The unit was chosen by measurement (docs/performance.md):
a member that does not own a taskset skips its watch events after reading only their
metadata, so adding processes or replicas does not multiply the decoding of every event,
and a workflow's results ride in its owner's patches instead of one patch per member.

Every unit has exactly one owner, computed by every member alone from the same member set
with *rendezvous* (highest-random-weight) hashing: ``owner(x) = argmax over members m of
hash(m, x)``. When a member joins, only the units it now wins move (to it); when one
leaves, only its units move (each to the runner-up). Nothing else changes hands, and no
coordination is needed to agree: equal views give equal answers.

The same function serves both cases of one concept:

* **static** members -- the worker processes of one pod with ``--membership none``
  (``worker-0`` .. ``worker-N-1``): the view never changes, so a restarted worker owns
  exactly its predecessor's tasksets;
* **dynamic** members -- every running agent (each worker of every pod) of a Lease group
  (:mod:`agent.membership`), whose view changes as members join, leave, or stop renewing.

:class:`Ownership` is the engine's one predicate, ``owns(unit)``, and what the engine's
handover protocol needs besides (docs/replicas.md): whether a claim's author is a live
member (``is_live``), when the view last changed (a node newly owned waits until the view
is ``settle`` seconds old), whether another member is assigned a unit (``elsewhere``: the
source skips such tasksets), and the fence: a member whose own Lease is not renewed in time
owns nothing from the moment its renew deadline passes, checked on the monotonic clock
whenever it is asked (right before a request starts), not only when the renew loop runs.

Inside one pod with ``--processes N`` (shared mode) the pod is **one member**, its primary
worker, and a taskset it owns is run by the primary or *lent* to a helper worker
(:mod:`agent.membership.lending`): the primary's view ``lent`` the unit (it owns it no more,
another runs it), the helper's view is ``granted`` it (it owns exactly what it was granted,
while the primary's Lease holds). Lending is decided by the primary alone, at a taskset's
first sight, so no node changes hands inside the pod.

The hash is BLAKE2b (64 bits) of the member name and the unit: stable across
processes, runs and Python versions (unlike ``hash()``), and not linear like CRC-32, whose
scores for two members of equal-length keys differ by a constant and would skew the argmax.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable

__all__ = ["Ownership", "owner_of", "static_members", "unit_of"]

#: What the engine is told when the view changes (it re-evaluates its nodes).
Listener = Callable[[], None]

#: Units whose owner in the current view is remembered (then forgotten all at once): more
#: than the tasksets an agent holds at a time, under half a MiB.
_OWNERS_REMEMBERED = 4096


def unit_of(namespace: str, name: str) -> str:
    """The unit of ownership of a taskset: ``namespace/name`` (both are DNS names, so the
    slash cannot be part of either)."""
    return f"{namespace}/{name}"


def _score(member: bytes, unit: str) -> int:
    digest = hashlib.blake2b(
        member + b"\x00" + unit.encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big")


def owner_of(members: Iterable[str], unit: str) -> str | None:
    """The member that owns ``unit`` (a taskset's :func:`unit_of`) among ``members`` (None if
    there is none).

    Ties (a 64-bit collision) go to the larger name, so the answer never depends on order.
    """
    best: tuple[int, str] | None = None
    for member in members:
        candidate = (_score(member.encode("utf-8", "surrogatepass"), unit), member)
        if best is None or candidate > best:
            best = candidate
    return best[1] if best is not None else None


def static_members(count: int) -> tuple[str, ...]:
    """The member names of ``count`` worker processes with a static membership."""
    return tuple(f"worker-{index}" for index in range(count))


class Ownership:
    """The engine's view of who owns what; updated by a membership, read by the engine."""

    def __init__(
        self,
        *,
        me: str,
        owners: Iterable[str] | None = None,
        live: Iterable[str] = (),
        settle: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.me = me
        self.settle = settle
        self._clock = clock
        self._owners: tuple[tuple[bytes, str], ...] = ()
        self._owner_names: frozenset[str] = frozenset()
        self._live: frozenset[str] = frozenset()
        self._listeners: list[Listener] = []
        self._deadline_listeners: list[Listener] = []
        self._valid_until = math.inf
        #: How many times the fence was up (the deadline passed before the next renewal):
        #: a request claimed across a lapse is not started (another member may own it).
        self.lapses = 0
        #: Seconds after the fence before the others may judge this member gone (a lease
        #: duration after its last renewal); 0 for members whose view never changes.
        self.expiry_margin = 0.0
        #: How many times that moment passed before the next renewal: a claim of ours
        #: written across it may have landed after another member took the node over.
        self.expiries = 0
        self.changed_at = -math.inf
        self.version = 0
        #: Units this member owns in the group but lent to a helper worker of its pod.
        self.lent: set[str] = set()
        #: A helper worker's units, granted by its primary (None: not a helper).
        self.granted: set[str] | None = None
        # No owners given: this member alone. A dynamic membership starts with none (it
        # owns nothing until its Lease exists) and tells its first view with update().
        self._set(frozenset({me}) if owners is None else frozenset(owners), frozenset(live))
        self.changed_at = -math.inf  # the first view is not a change

    @classmethod
    def single(cls) -> Ownership:
        """One member that owns everything (``--membership none``, one process)."""
        return cls(me="worker-0")

    @classmethod
    def static(cls, index: int, count: int) -> Ownership:
        """Worker ``index`` of ``count`` static members (``--membership none``)."""
        members = static_members(count)
        return cls(me=members[index], owners=members)

    @property
    def valid_until(self) -> float:
        """Monotonic time until which this member may start requests (its renew deadline)."""
        return self._valid_until

    @valid_until.setter
    def valid_until(self, deadline: float) -> None:
        # A renewal that comes after the deadline passed ends a lapse, whether or not the
        # view was told about the fence meanwhile (a paused process is told nothing): the
        # others may have taken our nodes meanwhile, so what we own settles again.
        now = self._clock()
        lapsed = math.isfinite(self._valid_until) and now >= self._valid_until
        if lapsed:
            self.lapses += 1
            if now >= self._valid_until + self.expiry_margin:
                self.expiries += 1
        self._valid_until = deadline
        for listener in list(self._deadline_listeners):
            listener()
        if lapsed:
            # A change of view of its own: what we own again is looked at afresh (and
            # settles first), as after any change.
            self.version += 1
            self.changed_at = now
            for listener in list(self._listeners):
                listener()

    # -- what the engine asks -----------------------------------------------------------

    def owns(self, unit: str) -> bool:
        """Whether this member owns ``unit`` now (False for all while fenced)."""
        if self._clock() >= self.valid_until:
            return False
        if self.granted is not None:
            return unit in self.granted
        return self._owner(unit) == self.me and unit not in self.lent

    def elsewhere(self, unit: str) -> bool:
        """Whether another member (or another worker of this pod) is assigned ``unit`` in
        this view (whatever our fence): the source may skip that taskset's events, and
        reads it afresh if the view gives it to this member later. False while the view
        has no owners (before the first)."""
        if self.granted is not None:
            return unit not in self.granted
        owner = self._owner(unit)
        return owner is not None and (owner != self.me or unit in self.lent)

    def assigned(self, unit: str) -> bool:
        """Whether the view assigns ``unit`` to this member, lent or not, fenced or not."""
        return self._owner(unit) == self.me

    # -- what the pod's lending tells ---------------------------------------------------

    def lend(self, unit: str) -> None:
        """(Primary) ``unit`` is run by a helper from now on; nothing of it ran here."""
        self.lent.add(unit)

    def take_back(self, unit: str) -> None:
        """(Primary) ``unit`` is run here again (its helper is gone, or it was deleted)."""
        self.lent.discard(unit)

    def grant(self, unit: str) -> None:
        """(Helper) the primary lent ``unit`` to this worker."""
        if self.granted is None:
            self.granted = set()
        self.granted.add(unit)

    def revoke(self, unit: str) -> None:
        """(Helper) the group moved ``unit`` away from the pod: what runs here is claimed
        and finished, as on any change of view."""
        if self.granted is not None and unit in self.granted:
            self.granted.discard(unit)
            self.version += 1
            for listener in list(self._listeners):
                listener()

    def _owner(self, unit: str) -> str | None:
        owners = self._owners
        if len(owners) == 1:
            return owners[0][1]
        # Asked for every watch event of every taskset and at every step of a node, and
        # the same for a unit until the view changes: a hash per owner each time was the
        # bulk of the source's cost for another member's event.
        owner = self._owner_of.get(unit)
        if owner is not None:
            return owner
        best: tuple[int, str] | None = None
        for encoded, name in owners:
            candidate = (_score(encoded, unit), name)
            if best is None or candidate > best:
                best = candidate
        if best is None:
            return None
        if len(self._owner_of) >= _OWNERS_REMEMBERED:
            self._owner_of.clear()
        self._owner_of[unit] = best[1]
        return best[1]

    @property
    def fenced(self) -> bool:
        return self._clock() >= self.valid_until

    @property
    def expired(self) -> bool:
        """Whether the others may have judged this member gone by now (its Lease expired)."""
        return self._clock() >= self._valid_until + self.expiry_margin

    def is_live(self, member: str) -> bool:
        """Whether ``member`` (a claim's author) is another live member: its claim stands."""
        return member != self.me and member in self._live

    def settled_in(self) -> float:
        """Seconds until the view is ``settle`` seconds old (0 when it already is)."""
        return max(0.0, self.changed_at + self.settle - self._clock())

    @property
    def owners(self) -> frozenset[str]:
        return self._owner_names

    @property
    def live(self) -> frozenset[str]:
        return self._live

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` after every change of the view."""
        self._listeners.append(listener)

    def subscribe_deadline(self, listener: Listener) -> None:
        """Call ``listener`` whenever the renew deadline is set (each renewal, the fence)."""
        self._deadline_listeners.append(listener)

    # -- what a membership tells ----------------------------------------------------------

    def update(self, *, owners: Iterable[str], live: Iterable[str], settle: bool = True) -> bool:
        """A new view: ``owners`` share the tasksets, ``live`` members' claims stand (owners
        plus members that are leaving). True (and the listeners told) if it changed.

        ``settle=False``: nodes gained need not wait (a member alone when it joins)."""
        owner_set, live_set = frozenset(owners), frozenset(live) | frozenset(owners)
        if owner_set == self._owner_names and live_set == self._live:
            return False
        # Only other members joined: this member gains no node (a join moves nodes to the
        # joiner alone), and any view lacking the joiner agrees with ours on the nodes we
        # keep, so nothing new must wait; the joiner settles itself. An earlier change
        # still pending keeps its settle time.
        joined_only = owner_set > self._owner_names and (self.me in owner_set) == (
            self.me in self._owner_names
        )
        changed_at = self.changed_at
        self._set(owner_set, live_set)
        if not settle:
            self.changed_at = -math.inf
        elif joined_only:
            self.changed_at = changed_at
        for listener in list(self._listeners):
            listener()
        return True

    def _set(self, owners: frozenset[str], live: frozenset[str]) -> None:
        self._owner_names = owners
        self._owners = tuple(sorted((m.encode("utf-8", "surrogatepass"), m) for m in owners))
        self._owner_of: dict[str, str] = {}  # unit -> owner in this view, computed once
        self._live = live | owners
        self.version += 1
        self.changed_at = self._clock()
