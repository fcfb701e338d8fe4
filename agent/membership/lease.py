"""This member's Lease, and the view of the group it feeds to the engine's Ownership.

Each running agent (each worker process) is one member of a *group*
(``--group``, default ``argo-http-agent``): it holds one ``coordination.k8s.io/v1`` Lease,
named after its identity (agent ID plus a per-start suffix) and labelled
``argo-http-agent.io/group=<group>``, so ``kubectl get leases -l
argo-http-agent.io/group=<group>`` lists the members. The rules (docs/replicas.md):

* **Renew** every ``duration/3`` with an optimistic update (the PUT carries the
  resourceVersion: a 409 means someone else wrote it, and we re-read before writing
  again); a deleted Lease is created again; 429, 5xx and cut connections are retried
  sooner. Every renewal also re-lists the group's Leases, so a broken watch cannot freeze
  the view.
* **Fence.** A renewal counts from the moment it was *sent*. A member that has not renewed
  for ``2/3 duration`` (the renew deadline) owns nothing: the engine asks
  :meth:`~agent.engine.ownership.Ownership.owns` right before each request starts, and it
  answers False from that instant, before any other member can judge the Lease expired
  (``duration`` after it *observed* the last renewal, which came after the send). The
  margin, a third of the duration, absorbs clock-rate differences and scheduling pauses.
  ``/readyz`` says so.
* **Observe** the group (list + watch with the label selector) and judge the others'
  liveness by observation (:mod:`agent.membership.observe`); an expiry counts once a list
  that started after it confirms it, and the moment a Lease expires as observed, the group
  is listed again to confirm it (a member cut off the API server judges nobody gone).
* **Leave** on a clean stop: first mark the Lease draining (others take over its queued
  work at once, while its claims stay honoured), then, once the engine drained and the
  results are delivered, delete it.
* **Collect** Leases of members that died without deleting theirs (SIGKILL): once expired
  for another full duration, any member deletes them (with the resourceVersion as a
  precondition, so a Lease renewed meanwhile is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes_asyncio import client

from agent.core import jsoncodec, metrics
from agent.engine.ownership import Ownership
from agent.kube.client import api_status_text, send_json
from agent.membership.observe import DRAINING_ANNOTATION, LeaseObserver

__all__ = ["GROUP_LABEL", "LeaseMembership", "lease_name", "wait_event"]

log = logging.getLogger(__name__)

#: The label naming a Lease's group; ``kubectl get leases -l <this>=<group>``.
GROUP_LABEL = "argo-http-agent.io/group"
_JSON = "application/json"
_MAX_EVENT_BYTES = 1 << 20
_NAME_CHARS = re.compile(r"[^a-z0-9.-]+")


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set, at most ``timeout`` seconds.

    Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancellation that arrives in the
    same loop iteration as the event is set (it returns the result instead), and a loop
    built on it then outlives its cancellation -- a member that never finishes stopping.
    ``asyncio.timeout`` lets the cancellation through.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()


def lease_name(identity: str) -> str:
    """A DNS-subdomain name for the Lease of a member with this identity."""
    name = _NAME_CHARS.sub("-", identity.lower()).strip("-.")[:253].rstrip("-.")
    return name or "agent"


class _ApiError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status} {text}".strip())
        self.status = status


class LeaseMembership:
    """One member's Lease and its view of the group; ``await run()`` until cancelled."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        namespace: str,
        group: str,
        identity: str,
        duration: float,
        ownership: Ownership,
        request_timeout: float = 30.0,
        watch_timeout: int = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self.namespace = namespace
        self.group = group
        self.identity = identity
        self.name = lease_name(identity)
        self.duration = duration
        self.renew_interval = duration / 3
        self.renew_deadline = duration * 2 / 3
        # Others judge us gone no sooner than a lease duration after our last renewal.
        ownership.expiry_margin = duration - self.renew_deadline
        self._retry_interval = max(0.05, self.renew_interval / 4)
        self._ownership = ownership
        self._request_timeout = request_timeout
        self._watch_timeout = watch_timeout
        self._clock = clock
        self._observer = LeaseObserver(own_lease=self.name, default_duration=duration)
        self._version: str | None = None  # our Lease's resourceVersion, once it exists
        self._acquired = ""
        self._last_renew_time = ""
        self.renewed_at = -math.inf  # monotonic send time of the last successful renewal
        self.joined = asyncio.Event()
        self._leaving = False
        self._first_view_told = False
        self._settled_once = False
        self._changed = asyncio.Event()
        self._renew_now = asyncio.Event()
        self._confirm_now = asyncio.Event()
        self.last_error = ""
        ownership.valid_until = -math.inf  # nothing is ours before our Lease exists
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace, safe='')}/leases"
        self._selector = f"{GROUP_LABEL}={group}"

    # -- probes ----------------------------------------------------------------------

    def readiness(self) -> str:
        """Why this member may not start requests, or ``""``."""
        if not self.joined.is_set():
            why = f": {self.last_error}" if self.last_error else ""
            return f"joining the member group (Lease {self.namespace}/{self.name}){why}"
        if not self._settled_once:
            wait = self._ownership.settled_in()
            if wait > 0:  # once: later changes of the group are business as usual
                return f"joined the member group; settling ({wait:.1f}s) before starting work"
            self._settled_once = True
        if self._ownership.fenced:
            age = self._clock() - self.renewed_at
            why = f" ({self.last_error})" if self.last_error else ""
            return (
                f"Lease {self.namespace}/{self.name} not renewed for {age:.1f}s (renew "
                f"deadline {self.renew_deadline:.1f}s): not starting requests{why}"
            )
        return ""

    def renew_age(self) -> float:
        return max(0.0, self._clock() - self.renewed_at) if self.joined.is_set() else 0.0

    # -- the run ---------------------------------------------------------------------

    async def run(self) -> None:
        """Hold the Lease, observe the group, keep the view current; until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._renew_loop(), name="lease renew")
            group.create_task(self._watch_loop(), name="lease watch")
            group.create_task(self._view_loop(), name="lease view")
            group.create_task(self._confirm_loop(), name="lease expiry confirmation")

    def leave(self) -> None:
        """Stop taking work (the engine hands over what it runs); others see it at the
        next renewal, which is made at once."""
        if self._leaving:
            return
        self._leaving = True
        self._update_view()
        self._renew_now.set()

    async def release(self, *, timeout: float) -> None:
        """Delete our Lease (after :meth:`run` was cancelled): the member is gone."""
        if self._version is None:
            return
        try:
            async with asyncio.timeout(timeout):
                for _ in range(3):
                    body = {"preconditions": {"resourceVersion": self._version}}
                    try:
                        await self._send("DELETE", f"{self._path}/{self.name}", body)
                        log.info("member lease deleted", extra={"lease": self.name})
                        return
                    except _ApiError as exc:
                        if exc.status == 404:
                            return
                        if exc.status != 409:
                            raise
                    current = await self._send("GET", f"{self._path}/{self.name}")
                    self._version = str((current.get("metadata") or {}).get("resourceVersion"))
        except Exception as exc:
            log.warning("could not delete the member lease: %s", exc, extra={"lease": self.name})

    # -- renewing ----------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        while True:
            # The cadence runs from each renewal's start: the re-list and the clean-up
            # below must not push the next renewal towards the fencing deadline on a
            # slow API server.
            started = self._clock()
            ok = await self._renew_once()
            if ok:
                listed = await self._relist() is not None
                if listed and not self.joined.is_set():
                    # Joined once the group was listed after our Lease existed: any member
                    # live then is in that list, and any member joining later sees us.
                    self.joined.set()
                    log.info(
                        "joined the member group",
                        extra={"lease": f"{self.namespace}/{self.name}", "group": self.group},
                    )
                    self._changed.set()
                await self._collect()
            delay = (
                max(0.0, started + self.renew_interval - self._clock())
                if ok
                else self._retry_interval
            )
            self._renew_now.clear()
            await wait_event(self._renew_now, delay)

    async def _renew_once(self) -> bool:
        sent = self._clock()
        try:
            if self._version is None:
                obj = await self._send("POST", self._path, self._body())
            else:
                path = f"{self._path}/{self.name}"
                obj = await self._send("PUT", path, self._body())
        except _ApiError as exc:
            reason = {404: "gone", 409: "conflict"}.get(exc.status, str(exc.status))
            self._failed(reason, str(exc))
            if exc.status == 404:
                self._version = None  # deleted (by hand, or collected): create it again
                self._renew_now.set()
            elif exc.status == 409:
                await self._reread()
                self._renew_now.set()
            return False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection errors, timeouts: tried again soon
            self._failed("error", str(exc) or type(exc).__name__)
            return False
        self._version = str((obj.get("metadata") or {}).get("resourceVersion") or "") or None
        self.renewed_at = sent
        self._ownership.valid_until = sent + self.renew_deadline
        self.last_error = ""
        metrics.LEASE_RENEW_AGE.set(0.0)
        self._changed.set()
        return True

    async def _reread(self) -> None:
        """After a 409: our Lease's current version (the next write replaces it)."""
        try:
            current = await self._send("GET", f"{self._path}/{self.name}")
        except _ApiError as exc:
            if exc.status == 404:
                self._version = None
            return
        except Exception:
            return
        self._version = str((current.get("metadata") or {}).get("resourceVersion") or "") or None

    def _failed(self, reason: str, text: str) -> None:
        self.last_error = f"lease renewal failed: {text}"
        metrics.child(metrics.LEASE_RENEW_FAILURES, reason).inc()
        log.warning(
            "member lease renewal failed: %s", text, extra={"lease": self.name, "reason": reason}
        )
        self._changed.set()  # the fence may need to show

    def _body(self) -> dict[str, Any]:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if now == self._last_renew_time:  # a wall clock that stands still: still a change
            now = now[:-2] + ("1Z" if now[-2] != "1" else "2Z")
        self._last_renew_time = now
        if not self._acquired:
            self._acquired = now
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {GROUP_LABEL: self.group},
            "annotations": {DRAINING_ANNOTATION: "true"} if self._leaving else {},
        }
        if self._version is not None:
            metadata["resourceVersion"] = self._version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                # int32 seconds: rounded up, so others never judge us dead sooner than we
                # fence ourselves.
                "leaseDurationSeconds": max(1, math.ceil(self.duration)),
                "acquireTime": self._acquired,
                "renewTime": now,
            },
        }

    # -- observing ---------------------------------------------------------------------

    async def _relist(self) -> str | None:
        started = self._clock()
        query = urlencode({"labelSelector": self._selector})
        try:
            page = await self._send("GET", f"{self._path}?{query}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("listing the member leases failed: %s", exc)
            return None
        items = [i for i in page.get("items") or () if isinstance(i, Mapping)]
        if self._observer.listed(items, started_at=started, now=self._clock()):
            self._changed.set()
        return str((page.get("metadata") or {}).get("resourceVersion") or "") or None

    async def _watch_loop(self) -> None:
        delay = self._retry_interval
        while True:
            version = await self._relist()
            if version is not None:
                try:
                    await self._watch(version)
                    delay = self._retry_interval
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a dropped or refused watch: list and watch again
                    log.debug("member lease watch ended: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max(self.renew_interval, 1.0))

    async def _watch(self, version: str) -> None:
        query = urlencode(
            {
                "labelSelector": self._selector,
                "watch": "true",
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(self._watch_timeout),
            }
        )
        response = await send_json(
            self._api,
            "GET",
            f"{self._path}?{query}",
            b"",
            content_type=_JSON,
            timeout=self._watch_timeout + 15.0,
        )
        try:
            if response.status != 200:
                text = api_status_text(await response.read(), response.reason)
                raise _ApiError(response.status, text)
            while True:
                line = await response.content.readline(max_line_length=_MAX_EVENT_BYTES)
                if not line:
                    return
                if line.isspace():
                    continue
                event = jsoncodec.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    raise _ApiError(int(obj.get("code") or 500), str(obj.get("message", "")))
                if kind in ("ADDED", "MODIFIED"):
                    if self._observer.observe(obj, now=self._clock()):
                        self._changed.set()
                elif kind == "DELETED":
                    name = str((obj.get("metadata") or {}).get("name", ""))
                    if self._observer.deleted(name, now=self._clock()):
                        self._changed.set()
        finally:
            response.release()

    async def _view_loop(self) -> None:
        """Tell the ownership every change: events, expiries, and our own fence."""
        while True:
            self._changed.clear()
            self._update_view()
            now = self._clock()
            if self._observer.unconfirmed(now=now):
                self._confirm_now.set()
            wake = min(self._observer.next_expiry(now=now), self._ownership.valid_until)
            metrics.LEASE_RENEW_AGE.set(self.renew_age())
            timeout = min(max(0.0, wake - now) + 0.001, 1.0)
            await wait_event(self._changed, timeout)

    async def _confirm_loop(self) -> None:
        """List the group as soon as a Lease expired as observed: its expiry counts once a
        list that started after it shows it unchanged (see :mod:`agent.membership.observe`).
        While the API server cannot be reached, nothing is confirmed and nobody is gone."""
        while True:
            await self._confirm_now.wait()
            self._confirm_now.clear()
            if await self._relist() is None:
                await asyncio.sleep(self._retry_interval)

    def _update_view(self) -> None:
        now = self._clock()
        owners, live = self._observer.members(now=now)
        if self.joined.is_set() and now < self._ownership.valid_until:
            live = live | {self.identity}
            if not self._leaving:
                owners = owners | {self.identity}
        before = (self._ownership.owners, self._ownership.live)
        # Alone when first joining: no member can have started anything that is now ours
        # (a member that joins later waits the settle time itself), so nothing to wait for.
        alone = not self._first_view_told and live == {self.identity}
        if self._ownership.update(owners=owners, live=live, settle=not alone):
            if self.identity in live:
                self._first_view_told = True
            metrics.MEMBERSHIP_CHANGES.inc()
            metrics.MEMBERS.set(len(owners))
            log.info(
                "member view changed",
                extra={
                    "owners": sorted(owners),
                    "live": sorted(live),
                    "joined": sorted(owners - before[0]),
                    "left": sorted(before[0] - owners),
                    "fenced": self._ownership.fenced,
                    "leaving": self._leaving,
                },
            )

    async def _collect(self) -> None:
        """Delete Leases of members that died without deleting theirs."""
        now = self._clock()
        for name, version in self._observer.expired(now=now, grace=self.duration):
            body = {"preconditions": {"resourceVersion": version}}
            try:
                await self._send("DELETE", f"{self._path}/{quote(name, safe='')}", body)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # 404/409: gone or renewed meanwhile; others: later
                log.debug("collecting an expired lease failed: %s", exc)
                continue
            self._observer.deleted(name, now=now)
            log.info("deleted the lease of a member that is gone", extra={"lease": name})

    # -- the API -----------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        data = jsoncodec.dumps(body) if body is not None else b""
        response = await send_json(
            self._api, method, path, data, content_type=_JSON, timeout=self._request_timeout
        )
        try:
            payload = await response.read()
            if not 200 <= response.status < 300:
                raise _ApiError(response.status, api_status_text(payload, response.reason))
        finally:
            response.release()
        decoded = jsoncodec.loads(payload) if payload else {}
        return decoded if isinstance(decoded, dict) else {}
