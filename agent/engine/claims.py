"""At-most-once delivery: claims recorded in the taskset status before a request is sent.

An HTTP template often has side effects (it POSTs an order). Argo's agent forgets what it
started when its pod restarts and sends those requests again. Here, before a request that
must not be repeated is sent, the agent writes a *claim* for its node into the taskset
status -- phase ``Running`` with a message naming this agent instance -- and waits until
the API has it (claims ride in the same coalesced patches as results, so they cost little).

A node found ``Running`` with a claim when it is first seen was claimed by an instance
that is gone (every process has its own instance ID). What happens then is the
*redelivery policy* (``--redelivery``):

=============  ==============================================  =========================
policy         claimed before sending                          a claim left by a crash
=============  ==============================================  =========================
``idempotent`` non-idempotent methods (POST, PATCH, others)    re-sent if the method is
 (default)     and plugin templates                            idempotent, else Failed
``never``      every request                                   Failed, never re-sent
``always``     nothing                                         re-sent
=============  ==============================================  =========================

Idempotent methods (RFC 9110 section 9.2.2): GET, HEAD, OPTIONS, TRACE, PUT, DELETE.
On a graceful shutdown, running requests get the grace period to finish; a claimed one
still running after it is finished as ``Failed`` by this instance (its request may or may
not have reached the target), so no claim outlives a clean stop.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from agent.core.model import NodePhase, NodeResult
from agent.core.ports import DurableSink
from agent.core.refs import TaskRef

__all__ = ["ClaimPolicy", "Redelivery", "new_instance_id"]

Redelivery = Literal["idempotent", "always", "never"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_CLAIM_PREFIX = "argo-http-agent "
_CLAIM_SUFFIX = ": request in flight"
_CLAIM = re.compile(re.escape(_CLAIM_PREFIX) + r"(\S+)" + re.escape(_CLAIM_SUFFIX) + r"$")


def new_instance_id(base: str = "", *, worker: int | None = None) -> str:
    """A name for this process: the pod name (if any), its worker number, a random suffix.

    It is also the process's member identity (its Lease's ``holderIdentity``), so a claim
    names the member whose liveness decides whether the claim stands.
    """
    suffix = uuid.uuid4().hex[:8]
    if worker is not None:
        suffix = f"w{worker}-{suffix}"
    return f"{base}-{suffix}" if base else f"agent-{suffix}"


class ClaimPolicy:
    """The :class:`agent.core.ports.Claims` of the cluster agent: claims in the status.

    Stateless per node: where a node stands (claiming, sent) is the engine's to know.
    """

    def __init__(self, *, sink: DurableSink, redelivery: Redelivery, instance_id: str) -> None:
        self._sink = sink
        self._redelivery = redelivery
        self.instance_id = instance_id

    def needs_claim(self, template: Mapping[str, Any]) -> bool:
        if self._redelivery == "always":
            return False
        if self._redelivery == "never":
            return True
        return not _idempotent(template)

    def claimant(self, status: Mapping[str, Any]) -> str | None:
        match = _CLAIM.match(str(status.get("message", "")))
        return match.group(1) if match is not None else None

    def adopt(
        self, ref: TaskRef, template: Mapping[str, Any], status: Mapping[str, Any]
    ) -> NodeResult | None:
        match = _CLAIM.match(str(status.get("message", "")))
        if match is None:
            return None  # Running, but not our claim (e.g. a plugin's progress): run it
        if self._redelivery == "always" or (
            self._redelivery == "idempotent" and _idempotent(template)
        ):
            return None
        return self._failed(f"the agent ({match.group(1)}) stopped")

    async def claim(self, ref: TaskRef) -> None:
        await self._sink.submit_and_wait(ref, self._claim())

    def claim_now(self, ref: TaskRef) -> None:
        self._sink.submit(ref, self._claim())

    def _claim(self) -> NodeResult:
        message = f"{_CLAIM_PREFIX}{self.instance_id}{_CLAIM_SUFFIX}"
        return NodeResult(phase=NodePhase.RUNNING, message=message)

    def abandoned(self, ref: TaskRef) -> NodeResult:
        return self._failed(f"the agent ({self.instance_id}) shut down")

    def superseded(self, ref: TaskRef) -> NodeResult:
        return NodeResult(
            phase=NodePhase.FAILED,
            message=(
                f"the agent ({self.instance_id}) could not renew its member Lease while "
                "claiming this request; it did not send it, and the member that took the "
                "node over may have (a duplicate side effect is avoided; redelivery policy "
                f"'{self._redelivery}')"
            ),
        )

    def _failed(self, what: str) -> NodeResult:
        return NodeResult(
            phase=NodePhase.FAILED,
            message=(
                f"{what} while this request was in flight; it was not sent again to avoid a "
                f"duplicate side effect (redelivery policy '{self._redelivery}')"
            ),
        )


def _idempotent(template: Mapping[str, Any]) -> bool:
    # dict first: an ABC isinstance check costs more than the rest of this function.
    is_mapping = isinstance(template, dict) or isinstance(template, Mapping)
    http = template.get("http") if is_mapping else None
    if not (isinstance(http, dict) or isinstance(http, Mapping)):
        return False  # plugins (and anything unknown) may have side effects
    method = http.get("method") or "GET"
    return isinstance(method, str) and method.upper() in IDEMPOTENT_METHODS
