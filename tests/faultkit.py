"""Shared helpers for the reliability suites: a counting target, task plans, verdicts, scenarios.

The fault-injection suite (``tests/test_faults.py``) and its full-size run
(``loadtest/faults.py``) share everything here, so the figures the load test reports are
produced by exactly the code the unit suite checks:

* :class:`CountingTarget` -- a real HTTP server on 127.0.0.1 that records every request
  arriving for a node (``/n/<node-id>``: per node, per method, with the time it arrived)
  and answers a deterministic body (``node <id> method <M>``), or misbehaves on purpose
  (hangs, resets, huge or malformed answers). What arrived is the ground truth the agent's
  reported results are checked against.
* :class:`TaskPlan` / :func:`plan_tasks` -- a reproducible (seeded) mix of tasks.
* :func:`judge` -- the verdict on one run: every node fulfilled, no non-idempotent request
  arrived twice, idempotent ones re-sent only across an interruption of the agent, every
  reported result equal to what the target answered (or the documented message).
* :func:`run_scenario` -- one named scenario (:data:`SCENARIOS`) end to end: simulator,
  target, the agent as a real process, the faults, the verdict.

Everything is bounded: every wait has a deadline, every server and process is stopped in
a ``finally``; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import signal
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent_sim import ApiSimulator
from agent_sim.target import abort_connection
from aiohttp import web

from agent.engine.ownership import owner_of, unit_of
from tests.agentproc import TOKEN, AgentProcess, taskset
from tests.servers import _ThreadedServer

__all__ = [
    "FULL",
    "IDEMPOTENT_METHODS",
    "REDUCED",
    "REPLICA_SCENARIOS",
    "SCENARIOS",
    "Arrival",
    "CountingTarget",
    "Mode",
    "Restart",
    "ScenarioReport",
    "ScenarioSize",
    "TaskPlan",
    "Verdict",
    "answer_body",
    "judge",
    "members_judged_gone",
    "plan_tasks",
    "run_scenario",
    "summary_json",
]

NS = "argo"
TASKSETS = "workflowtasksets"
#: The member Lease duration every scenario runs with (seconds).
LEASE_SECONDS = 2.0

# RFC 9110 section 9.2.2, as agent/claims.py documents the guarantee.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

Mode = Literal["ok", "status", "hang", "reset", "close", "huge", "garbage", "badchunk"]
Policy = Literal["idempotent", "never", "always"]


# -- the counting target ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request that reached the target for a node."""

    node: str
    method: str
    at: float  # time.monotonic() in this process (the target runs in a thread of it)


_GARBAGE_STATUS_LINE = b"THIS IS NOT HTTP"


def answer_body(node: str, method: str) -> str:
    """The deterministic body the target answers for a node (``outputs.result``)."""
    return f"node {node} method {method}"


class CountingTarget(_ThreadedServer):
    """``/n/{node}?mode=&sleep=&code=&size=``: counts arrivals, then answers per ``mode``.

    =============  ===========================================================
    ``ok``         200 with :func:`answer_body` (after ``sleep`` seconds)
    ``status``     status ``code`` with :func:`answer_body`
    ``hang``       never answers (the template's ``timeoutSeconds`` ends it)
    ``reset``      resets the TCP connection (RST)
    ``close``      closes the connection without an answer (EOF)
    ``huge``       200 with ``size`` bytes (over the agent's ``--max-result-bytes``)
    ``garbage``    a garbage status line, then closes
    ``badchunk``   ``Transfer-Encoding: chunked`` with an invalid chunk size
    =============  ===========================================================

    The arrival is recorded before the answer (and before ``sleep``), so a request cut
    short by a killed agent still counts.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._arrivals: dict[str, list[Arrival]] = {}

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 << 20)  # large template bodies arrive whole
        app.router.add_route("*", "/n/{node}", self._node)
        return app

    def node_url(
        self,
        node: str,
        *,
        mode: Mode = "ok",
        sleep: float = 0.0,
        code: int = 200,
        size: int = 0,
    ) -> str:
        query = [f"mode={mode}"]
        if sleep:
            query.append(f"sleep={sleep:g}")
        if mode == "status":
            query.append(f"code={code}")
        if mode == "huge":
            query.append(f"size={size}")
        return self.url(f"/n/{node}?{'&'.join(query)}")

    def arrivals(self, node: str) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals.get(node, ()))

    def all_arrivals(self) -> dict[str, list[Arrival]]:
        with self._lock:
            return {node: list(items) for node, items in self._arrivals.items()}

    @property
    def total(self) -> int:
        with self._lock:
            return sum(len(items) for items in self._arrivals.values())

    async def _node(self, request: web.Request) -> web.StreamResponse:
        node = request.match_info["node"]
        with self._lock:
            self._arrivals.setdefault(node, []).append(
                Arrival(node, request.method, time.monotonic())
            )
        await request.read()
        query = request.query
        mode = query.get("mode", "ok")
        sleep = float(query.get("sleep", "0"))
        if sleep:
            await asyncio.sleep(sleep)
        body = answer_body(node, request.method)
        if mode == "ok":
            return web.Response(text=body)
        if mode == "status":
            return web.Response(status=int(query["code"]), text=body)
        if mode == "huge":
            return web.Response(body=b"x" * int(query["size"]))
        if mode == "hang":
            await asyncio.sleep(3600)
        elif mode in ("reset", "close"):
            abort_connection(request, reset=mode == "reset")
        elif mode == "garbage":
            _raw(request, _GARBAGE_STATUS_LINE + b"\r\n\r\n")
        elif mode == "badchunk":
            _raw(
                request,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            )
        else:
            return web.Response(status=400, text=f"unknown mode {mode!r}")
        await asyncio.sleep(3600)  # the connection is gone; the server's shutdown ends this
        raise AssertionError("unreachable")  # pragma: no cover


def _raw(request: web.Request, data: bytes) -> None:
    transport = request.transport
    if transport is not None:
        transport.write(data)
        transport.close()


# -- task plans -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskPlan:
    """One node of a scenario: its template, and how the target answers it."""

    node: str
    method: str = "GET"
    mode: Mode = "ok"
    sleep: float = 0.0
    code: int = 200
    size: int = 0
    timeout: int | None = None

    def url(self, target: CountingTarget) -> str:
        return target.node_url(
            self.node, mode=self.mode, sleep=self.sleep, code=self.code, size=self.size
        )

    def template(self, target: CountingTarget) -> dict[str, Any]:
        http: dict[str, Any] = {"method": self.method, "url": self.url(target)}
        if self.timeout is not None:
            http["timeoutSeconds"] = self.timeout
        if self.method in ("POST", "PUT", "PATCH"):
            http["body"] = json.dumps({"node": self.node})
        return {"name": "http", "http": http}

    def expected(self, target: CountingTarget, *, max_result_bytes: int) -> dict[str, Any]:
        """The exact ``status.nodes`` entry the agent must report once the target answered.

        Transport failures are worded as the agent's default (aiohttp) transport words them,
        in Go's shape: ``<Op> "<url>": <cause>``.
        """
        body = answer_body(self.node, self.method)
        where = f'{_go_op(self.method)} "{self.url(target)}": '
        peer = f"127.0.0.1:{target.port}"
        if self.mode == "ok":
            return {"phase": "Succeeded", "outputs": {"result": body}}
        if self.mode == "status":
            message = f"received non-2xx response code: {self.code}"
            return {"phase": "Failed", "message": message, "outputs": {"result": body}}
        causes: dict[Mode, str] = {
            # Go's texts (net/http transport.go, net/net.go OpError): the controller's
            # retryPolicy OnTransientError matches on them.
            "hang": "context deadline exceeded",
            "reset": f"read tcp {peer}: read: connection reset by peer",
            "close": "EOF",
            "garbage": "net/http: HTTP/1.x transport connection broken: malformed HTTP "
            f'response "{_GARBAGE_STATUS_LINE.decode()}"',
            "badchunk": "invalid byte in chunk length",
        }
        if self.mode == "huge":
            message = (
                f"response body of {self.size} bytes exceeds the agent's limit of "
                f"{max_result_bytes} bytes for outputs.result"
            )
        elif self.mode == "badchunk":
            # A chunk size is read with the body: Argo's agent's io.ReadAll returns
            # net/http/internal/chunked.go's error bare (agent.go executeHTTPTemplate).
            message = causes[self.mode]
        else:
            message = where + causes[self.mode]
        return {"phase": "Failed", "message": message}


def _go_op(method: str) -> str:
    # Go's urlErrorOp: "POST" -> "Post"
    return method[:1].upper() + method[1:].lower()


DEFAULT_METHODS: Mapping[str, float] = {
    "GET": 3,
    "POST": 3,
    "PUT": 2,
    "DELETE": 1,
    "PATCH": 1,
}


def plan_tasks(
    rng: random.Random,
    count: int,
    *,
    prefix: str = "n",
    methods: Mapping[str, float] = DEFAULT_METHODS,
    modes: Mapping[Mode, float] | None = None,
    slow: float = 0.0,
    max_sleep: float = 1.5,
    huge_size: int = 64 * 1024,
    hang_timeout: int = 1,
) -> list[TaskPlan]:
    """``count`` tasks drawn from the weighted ``methods`` and ``modes``.

    A fraction ``slow`` of them makes the target wait up to ``max_sleep`` seconds before
    answering (so interruptions find requests in flight).
    """
    mode_weights: Mapping[Mode, float] = modes or {"ok": 1.0}
    method_names, method_weights = list(methods), list(methods.values())
    mode_names, weights = list(mode_weights), list(mode_weights.values())
    plans = []
    for index in range(count):
        mode = rng.choices(mode_names, weights)[0]
        plans.append(
            TaskPlan(
                node=f"{prefix}{index:04d}",
                method=rng.choices(method_names, method_weights)[0],
                mode=mode,
                sleep=round(rng.uniform(0.1, max_sleep), 2) if rng.random() < slow else 0.0,
                code=rng.choice((404, 500, 503)) if mode == "status" else 200,
                size=huge_size if mode == "huge" else 0,
                timeout=hang_timeout if mode == "hang" else None,
            )
        )
    return plans


# -- the verdict ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Restart:
    """A new agent instance started after ``kind`` ended the previous one, at ``at``."""

    # CUT: a member cut off the API server (at its fence); GONE: a member judged gone by
    # another (its Lease not renewed for a lease duration: starved, cut off, killed)
    kind: Literal["SIGKILL", "SIGTERM", "CUT", "GONE"]
    at: float


_ABANDONED = re.compile(
    r"the agent \((?P<instance>\S+)\) (?P<how>stopped|shut down) while this request was in "
    r"flight; it was not sent again to avoid a duplicate side effect "
    r"\(redelivery policy '(?P<policy>\w+)'\)"
)
# A member whose Lease may have expired for the others while it claimed (starved, cut off)
# settles its own claim so (agent/engine/scheduler.py, docs/replicas.md).
_SUPERSEDED = re.compile(
    r"the agent \((?P<instance>\S+)\) could not renew its member Lease while claiming this "
    r"request; it did not send it, and the member that took the node over may have \(a "
    r"duplicate side effect is avoided; redelivery policy '(?P<policy>\w+)'\)"
)
_CLAIM = re.compile(r"argo-http-agent (?P<instance>\S+): request in flight")
_INSTANCE = re.compile(r"agent started \[.*?\binstance=(\S+)")


def _instance_of(agent: AgentProcess) -> str:
    """The instance (member) ID an agent process logged at start."""
    match = _INSTANCE.search(agent.logs())
    return match.group(1) if match else ""


_FULFILLED = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})


@dataclass(slots=True)
class Verdict:
    """The outcome of one run, node by node; ``ok`` when nothing went wrong."""

    tasks: int = 0
    arrivals: int = 0
    #: a claimed (non-idempotent) request that reached the target more than once
    duplicates: list[str] = field(default_factory=list)
    #: an unclaimed request sent again by the same agent instance (no restart in between)
    resent_without_restart: list[str] = field(default_factory=list)
    #: a node not fulfilled at the end
    lost: list[str] = field(default_factory=list)
    #: a reported result that is not what the target answered (or the documented message)
    mismatched: list[str] = field(default_factory=list)
    #: nodes finished ``Failed`` by the claim rule after an interruption (documented)
    abandoned: int = 0
    #: unclaimed requests sent again by a new instance after an interruption (documented)
    resent_after_restart: int = 0
    #: claimed nodes a member settled itself because its Lease may have expired while it
    #: claimed them (documented: never sent by it; at most once by the member taking over)
    superseded: int = 0

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.resent_without_restart or self.lost or self.mismatched)


def claimed_before_sending(method: str, policy: Policy) -> bool:
    """Whether the agent claims a request of this method before sending it."""
    if policy == "always":
        return False
    return policy == "never" or method.upper() not in IDEMPOTENT_METHODS


def judge(
    plans: Iterable[TaskPlan],
    nodes: Mapping[str, Any],
    arrivals: Mapping[str, list[Arrival]],
    restarts: Iterable[Restart],
    *,
    target: CountingTarget,
    policy: Policy = "idempotent",
    max_result_bytes: int = 1 << 20,
) -> Verdict:
    """Check every planned node against what the target saw and the agent reported."""
    restarts = list(restarts)
    verdict = Verdict()
    for plan in plans:
        verdict.tasks += 1
        got = arrivals.get(plan.node, [])
        verdict.arrivals += len(got)
        claimed = claimed_before_sending(plan.method, policy)
        label = f"{plan.node} ({plan.method} {plan.mode})"
        if len(got) > 1:
            if claimed:
                verdict.duplicates.append(f"{label} arrived {len(got)} times")
            elif all(
                any(first.at < r.at < second.at for r in restarts)
                for first, second in itertools.pairwise(got)
            ):
                verdict.resent_after_restart += len(got) - 1
            else:
                verdict.resent_without_restart.append(
                    f"{label} arrived {len(got)} times, twice within one agent instance"
                )
        status = nodes.get(plan.node)
        if not isinstance(status, Mapping) or status.get("phase") not in _FULFILLED:
            verdict.lost.append(f"{label}: {status!r}")
            continue
        superseded = _SUPERSEDED.fullmatch(str(status.get("message", "")))
        if superseded is not None:
            problem = _check_superseded(status, superseded, got, claimed, policy)
            if problem:
                verdict.mismatched.append(f"{label}: {problem}: {dict(status)}")
            else:
                verdict.superseded += 1
            continue
        abandoned = _ABANDONED.fullmatch(str(status.get("message", "")))
        if abandoned is not None:
            problem = _check_abandoned(plan, status, abandoned, got, restarts, claimed, policy)
            if problem:
                verdict.mismatched.append(f"{label}: {problem}: {dict(status)}")
            else:
                verdict.abandoned += 1
            continue
        if not got:
            verdict.mismatched.append(f"{label}: reported without reaching the target: {status}")
            continue
        expected = plan.expected(target, max_result_bytes=max_result_bytes)
        if dict(status) != expected:
            verdict.mismatched.append(f"{label}: reported {dict(status)}, expected {expected}")
    return verdict


def _check_claim_rule(
    status: Mapping[str, Any], match: re.Match[str], claimed: bool, policy: Policy, *, what: str
) -> str:
    """What is wrong with a node the claim rule settled (``what`` names the settlement)."""
    if not claimed:
        return f"{what}, but this method is not claimed"
    if set(status) != {"phase", "message"} or status.get("phase") != "Failed":
        return f"{what}: must be Failed with a message only"
    if match.group("policy") != policy:
        return f"names policy {match.group('policy')!r}, the agent ran {policy!r}"
    return ""


def _check_superseded(
    status: Mapping[str, Any],
    match: re.Match[str],
    got: list[Arrival],
    claimed: bool,
    policy: Policy,
) -> str:
    problem = _check_claim_rule(status, match, claimed, policy, what="settled as superseded")
    if problem:
        return problem
    if len(got) > 1:
        return "sent more than once"  # also a duplicate, counted there
    return ""


def _check_abandoned(
    plan: TaskPlan,
    status: Mapping[str, Any],
    match: re.Match[str],
    got: list[Arrival],
    restarts: list[Restart],
    claimed: bool,
    policy: Policy,
) -> str:
    problem = _check_claim_rule(status, match, claimed, policy, what="finished by the claim rule")
    if problem:
        return problem
    # "stopped": the member's claim was found after its Lease expired -- it was killed,
    # or cut off the API server long enough; "shut down": it finished it at a SIGTERM.
    kinds = ("SIGKILL", "CUT", "GONE") if match.group("how") == "stopped" else ("SIGTERM",)
    kind = kinds[0]
    ends = [r.at for r in restarts if r.kind in kinds]
    if not ends:
        return f"says the agent {match.group('how')}, but no {kind} happened"
    if got and not any(got[0].at < at for at in ends):
        return f"its request arrived after the last {kind}"
    return ""


# -- scenarios --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScenarioSize:
    """How big a scenario run is: ``make test`` uses :data:`REDUCED`, the load test FULL."""

    tasks: int
    interruptions: int  # agent kills/stops in the kill scenarios; API storms at least
    workers: int  # the agent's --task-workers
    waves: int  # tasks arrive in this many batches (new tasksets or added to one)
    settle_timeout: float  # bound on the final wait for every node to be fulfilled
    replica_tasks: int = 0  # tasks of a replica scenario (several members share them)
    feed_seconds: float = 0.0  # a replica scenario's tasks arrive over this long


REDUCED = ScenarioSize(
    tasks=150,
    interruptions=3,
    workers=48,
    waves=4,
    settle_timeout=90,
    replica_tasks=150,
    feed_seconds=4,
)
FULL = ScenarioSize(
    tasks=1000,
    interruptions=12,
    workers=128,
    waves=12,
    settle_timeout=300,
    replica_tasks=3000,
    feed_seconds=24,
)


@dataclass(slots=True)
class ScenarioReport:
    """What one scenario did and found (``summary()`` is the load test's JSON)."""

    name: str
    seed: int
    policy: Policy
    verdict: Verdict
    tasksets: int = 0
    #: what was injected, by kind (SIGKILL, SIGTERM, storms, watch_drops, ...)
    injected: dict[str, int] = field(default_factory=dict)
    #: API requests the simulator answered with an error (or cut)
    api_errors_served: int = 0
    problems: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: what a scenario measured (replicas: takeover and fence seconds, ...)
    measured: dict[str, Any] = field(default_factory=dict)
    #: replicas: API requests and watch bytes per member (the simulator's counters)
    usage: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not self.problems

    @property
    def results_lost(self) -> int:
        """Nodes never fulfilled, or whose reported result is not what the target answered.

        A claimed request finished ``Failed`` by the claim rule after a crash is the
        documented at-most-once outcome, counted apart (``abandoned_by_claim_rule``).
        """
        return len(self.verdict.lost) + len(self.verdict.mismatched)

    def summary(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "scenario": self.name,
            "seed": self.seed,
            "policy": self.policy,
            "tasks": v.tasks,
            "tasksets": self.tasksets,
            "injected": self.injected,
            "api_errors_served": self.api_errors_served,
            "arrivals": v.arrivals,
            "duplicates": len(v.duplicates),
            "resent_without_restart": len(v.resent_without_restart),
            "resent_after_restart": v.resent_after_restart,
            "abandoned_by_claim_rule": v.abandoned,
            "superseded_by_expiry": v.superseded,
            "results_lost": self.results_lost,
            "problems": len(self.problems),
            "seconds": round(self.seconds, 1),
            **({"measured": self.measured} if self.measured else {}),
            **({"usage": self.usage} if self.usage else {}),
        }

    def describe(self, *, limit: int = 15) -> str:
        """A readable account for an assertion message: figures, then examples."""
        lines = [
            f"scenario {self.name!r} (seed {self.seed}; rerun with FAULTS_SEED={self.seed})",
            json.dumps(self.summary()),
        ]
        sections = (
            ("duplicates", self.verdict.duplicates),
            ("re-sent within one instance", self.verdict.resent_without_restart),
            ("not fulfilled", self.verdict.lost),
            ("results not matching the target", self.verdict.mismatched),
            ("problems", self.problems),
            ("agent log errors", self.log_errors),
        )
        for title, items in sections:
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines.extend(f"  {item}" for item in items[:limit])
        return "\n".join(lines)


class _Run:
    """One scenario's moving parts: simulator, target, agent instances, tasks fed so far."""

    def __init__(
        self,
        *,
        name: str,
        sim: ApiSimulator,
        target: CountingTarget,
        rng: random.Random,
        size: ScenarioSize,
        policy: Policy,
        workdir: str,
        agent_args: list[str],
    ) -> None:
        self.name = name
        self.sim = sim
        self.target = target
        self.rng = rng
        self.size = size
        self.policy = policy
        self._workdir = workdir
        self._agent_args = agent_args
        self.agent: AgentProcess | None = None
        self.restarts: list[Restart] = []
        self.plans: list[TaskPlan] = []
        self.tasksets: dict[str, list[str]] = {}
        self.problems: list[str] = []
        self.log_errors: list[str] = []
        self.injected: dict[str, int] = {}
        self.instance_logs: list[str] = []
        #: replica scenarios: the running members, in the order they started
        self.members: list[AgentProcess] = []
        self._member_count = 0
        #: figures a scenario measured (takeover seconds, fence seconds, ...)
        self.measured: dict[str, Any] = {}
        #: each member's API user (the simulator counts and faults users apart)
        self.users: dict[AgentProcess, str] = {}
        #: when each node was first seen fulfilled (while :meth:`track_final` runs)
        self.final_at: dict[str, float] = {}
        #: when :meth:`feed_over` submitted its first wave
        self.fed_at: float | None = None

    async def track_final(self) -> None:
        """Record when each node is first seen fulfilled (until cancelled)."""
        while True:
            self.record_final()
            await asyncio.sleep(0.1)

    def record_final(self) -> None:
        """One look: the nodes fulfilled since the last (the last look is taken after
        :meth:`settle`, so a node that ended within the tracker's period is not missed)."""
        now = time.monotonic()
        for node, status in self.nodes().items():
            if node not in self.final_at and _final(status):
                self.final_at[node] = now

    # -- members (replica scenarios) ---------------------------------------------------

    async def start_member(self) -> AgentProcess:
        """One more member of the group: its own process, token and API user (the
        simulator counts and faults each member apart)."""
        index = self._member_count
        self._member_count += 1
        token, user = f"member-{index}-token", f"member-{index}"
        self.sim.add_token(token, user=user)
        member = AgentProcess(
            self.sim,
            *self._base_args(),
            "--agent-id",
            user,
            token=token,
            workdir=tempfile.mkdtemp(prefix=f"{user}-", dir=self._workdir),
        )
        await member.start()
        self.members.append(member)
        self.users[member] = user
        await member.wait_ready(timeout=60)
        return member

    async def stop_member(self, member: AgentProcess) -> None:
        """SIGTERM one member and wait for it: its claims must be settled when it exits."""
        self.members.remove(member)
        self.restarts.append(Restart("SIGTERM", time.monotonic()))
        code = await member.stop(signal.SIGTERM, timeout=60)
        if code != 0:
            self.problems.append(f"{_instance_of(member)} exited {code} on SIGTERM")
        stale = self.claims_left(instance=_instance_of(member))
        if stale:
            self.problems.append(f"{len(stale)} claim(s) left after a graceful stop: {stale[:5]}")
        self.injected["SIGTERM"] = self.injected.get("SIGTERM", 0) + 1
        self._collect_log_errors(member)

    async def kill_member(self, member: AgentProcess) -> float:
        """SIGKILL one member (no clean-up at all); the moment it died."""
        self.members.remove(member)
        await member.kill()
        died = time.monotonic()
        self.restarts.append(Restart("SIGKILL", died))
        self.injected["SIGKILL"] = self.injected.get("SIGKILL", 0) + 1
        self._collect_log_errors(member)
        return died

    async def stop_members(self) -> None:
        """SIGTERM every member, one after the other (each waits for the previous)."""
        for member in list(self.members):
            if member.proc is not None and member.proc.returncode is None:
                await self.stop_member(member)
            else:
                self.members.remove(member)

    async def member_metric(self, member: AgentProcess, name: str) -> float:
        text = (await member.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    def identities(self, members: Iterable[AgentProcess] | None = None) -> list[str]:
        return [_instance_of(m) for m in (self.members if members is None else members)]

    async def feed_over(
        self, plans: list[TaskPlan], *, seconds: float, waves: int | None = None
    ) -> None:
        """Submit ``plans`` in ``waves`` (``size.waves``) spread evenly over ``seconds``."""
        waves = max(1, min(waves or self.size.waves, len(plans)))
        self.fed_at = time.monotonic()
        for index in range(waves):
            if index:
                await asyncio.sleep(seconds / waves)
            self.submit(plans[index * len(plans) // waves : (index + 1) * len(plans) // waves])

    # -- the agent ---------------------------------------------------------------------

    def _base_args(self) -> list[str]:
        return [
            "--namespace",
            NS,
            "--redelivery",
            self.policy,
            "--task-workers",
            str(self.size.workers),
            # A member Lease of 2 s: a SIGKILLed instance's nodes are taken over by the next
            # one once its Lease expired (docs/replicas.md), so restarts cost ~3 s, not ~23.
            "--lease-duration",
            f"{LEASE_SECONDS:g}s",
            *self._agent_args,
        ]

    async def start_agent(self) -> AgentProcess:
        agent = AgentProcess(
            self.sim,
            *self._base_args(),
            workdir=tempfile.mkdtemp(prefix="agent-", dir=self._workdir),
        )
        await agent.start()
        self.agent = agent
        await agent.wait_ready(timeout=60)
        return agent

    async def interrupt(self, kind: Literal["SIGKILL", "SIGTERM"]) -> None:
        """End the running instance (a crash or a graceful stop) and start a new one."""
        agent = self.agent
        assert agent is not None
        if kind == "SIGKILL":
            await agent.kill()
        else:
            code = await agent.stop(signal.SIGTERM, timeout=60)
            if code != 0:
                self.problems.append(f"agent exited {code} on SIGTERM")
            # Its own claims: a SIGKILLed predecessor's may still stand (its Lease not yet
            # expired, so it counts as live: docs/replicas.md); the next instance settles them.
            stale = self.claims_left(instance=_instance_of(agent))
            if stale:
                self.problems.append(
                    f"{len(stale)} claim(s) left after a graceful stop: {stale[:5]}"
                )
        self._collect_log_errors(agent)
        self.injected[kind] = self.injected.get(kind, 0) + 1
        self.restarts.append(Restart(kind, time.monotonic()))
        await self.start_agent()

    async def stop_agent(self) -> None:
        agent, self.agent = self.agent, None
        if agent is None:
            return
        if agent.proc is not None and agent.proc.returncode is None:
            code = await agent.stop(signal.SIGTERM, timeout=60)
            if code != 0:
                self.problems.append(f"agent exited {code} on the final SIGTERM")
        self._collect_log_errors(agent)

    def _collect_log_errors(self, agent: AgentProcess) -> None:
        text = agent.logs()
        self.instance_logs.append(text)
        for line in text.splitlines():
            if "Traceback" in line or " ERROR " in line or "CRITICAL" in line:
                self.log_errors.append(line[:300])

    def claims_left(self, *, instance: str | None = None) -> list[str]:
        """Nodes still claimed (by ``instance``, or by anyone)."""
        left = []
        for node, status in self.nodes().items():
            if not isinstance(status, Mapping):
                continue
            match = _CLAIM.fullmatch(str(status.get("message", "")))
            if match is not None and instance in (None, match.group("instance")):
                left.append(node)
        return left

    # -- tasks -------------------------------------------------------------------------

    def submit(self, plans: list[TaskPlan], *, extend: float = 0.5) -> None:
        """Create a taskset with these tasks, or (probability ``extend``) add them to one.

        Adding tasks to a taskset that is already served is what the controller does as a
        DAG progresses; it is also what makes a replayed old snapshot dangerous.
        """
        tasks = {plan.node: plan.template(self.target) for plan in plans}
        if self.tasksets and self.rng.random() < extend:
            name = self.rng.choice(sorted(self.tasksets))
            self.sim.patch_object(TASKSETS, name, {"spec": {"tasks": tasks}}, namespace=NS)
        else:
            name = f"{self.name}-{len(self.tasksets)}"
            self.sim.create_object(TASKSETS, taskset(name, tasks, namespace=NS))
        self.tasksets.setdefault(name, []).extend(tasks)
        self.plans.extend(plans)

    async def feed(
        self, plans: list[TaskPlan], *, gap: tuple[float, float], extend: float = 0.5
    ) -> None:
        """Submit ``plans`` in ``size.waves`` waves, ``gap`` seconds apart (random)."""
        waves = max(1, min(self.size.waves, len(plans)))
        for index in range(waves):
            if index:
                await asyncio.sleep(self.rng.uniform(*gap))
            wave = plans[index * len(plans) // waves : (index + 1) * len(plans) // waves]
            self.submit(wave, extend=extend)

    def nodes(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for name in self.tasksets:
            obj = self.sim.find_object(TASKSETS, name, namespace=NS) or {}
            status = obj.get("status")
            nodes = status.get("nodes") if isinstance(status, Mapping) else None
            if isinstance(nodes, Mapping):
                merged.update(nodes)
        return merged

    async def settle(self) -> dict[str, Any]:
        """Wait (bounded) until every planned node is fulfilled; the nodes either way."""
        deadline = time.monotonic() + self.size.settle_timeout
        while True:
            nodes = self.nodes()
            waiting = [
                p.node
                for p in self.plans
                if not isinstance(nodes.get(p.node), Mapping)
                or nodes[p.node].get("phase") not in _FULFILLED
            ]
            if not waiting:
                return nodes
            if time.monotonic() > deadline:
                self.problems.append(
                    f"{len(waiting)} node(s) not fulfilled after {self.size.settle_timeout:g}s"
                )
                return nodes
            await asyncio.sleep(0.1)

    async def metric(self, name: str, labels: str = "") -> float:
        """One sample of the running agent's metrics (0 when absent)."""
        assert self.agent is not None
        text = (await self.agent.get("/metrics")).text
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        return 0.0

    def faults_hit(self) -> int:
        """API requests the simulator answered with an error, or cut (status 0)."""
        return sum(
            1
            for r in self.sim.requests()
            if r.status is not None and (r.status == 0 or r.status >= 400)
        )


ScenarioBody = Callable[[_Run], Awaitable[None]]


async def _kill(run: _Run) -> None:
    """SIGKILL (and now and then SIGTERM) at random moments, with restarts."""
    plans = plan_tasks(run.rng, run.size.tasks, slow=0.3)
    await run.start_agent()
    feeder = asyncio.create_task(run.feed(plans, gap=(0.1, 0.6)))
    try:
        for _ in range(run.size.interruptions):
            await asyncio.sleep(run.rng.uniform(0.2, 1.2))
            await run.interrupt("SIGTERM" if run.rng.random() < 0.25 else "SIGKILL")
        await feeder
    finally:
        feeder.cancel()


async def _api_storm(run: _Run) -> None:
    """Storms of 5xx, 429 (with Retry-After) or cut connections on every API request.

    Each storm lasts a random fraction of a second to a second and a half, then the API
    is healthy again for a while; some storms also drop the watch, so the agent has to
    re-connect through the storm.
    """
    plans = plan_tasks(run.rng, run.size.tasks, slow=0.1, max_sleep=0.5)
    await run.start_agent()
    feeder = asyncio.create_task(run.feed(plans, gap=(0.2, 1.0)))
    storms = 0
    try:
        while storms < run.size.interruptions or not feeder.done():
            await asyncio.sleep(run.rng.uniform(0.1, 0.6))
            code = run.rng.choice((500, 502, 503, 504, 429, 0))
            run.sim.fail_next(
                None,
                code=code or 503,
                verb=run.rng.choice((None, "patch")),
                retry_after=1 if code == 429 else None,
                disconnect=code == 0,
            )
            if run.rng.random() < 0.5:
                run.sim.drop_watches(abrupt=run.rng.random() < 0.5)
            storms += 1
            try:
                await asyncio.sleep(run.rng.uniform(0.2, 1.2))
            finally:
                run.sim.clear_faults()
        await feeder
    finally:
        feeder.cancel()
    run.injected["storms"] = storms


async def _watch_drops(run: _Run) -> None:
    """Every watch dropped every few seconds (cleanly or cut mid-stream)."""
    plans = plan_tasks(run.rng, run.size.tasks, slow=0.1, max_sleep=0.5)
    await run.start_agent()
    feeder = asyncio.create_task(run.feed(plans, gap=(0.3, 0.9), extend=0.8))
    drops = 0
    try:
        while drops < run.size.interruptions + 1 or not feeder.done():
            await asyncio.sleep(run.rng.uniform(0.5, 1.5))
            run.sim.drop_watches(abrupt=run.rng.random() < 0.6)
            drops += 1
        await feeder
    finally:
        feeder.cancel()
    run.injected["watch_drops"] = drops


async def _gone(run: _Run) -> None:
    """The history compacted while the watch is down: the resume gets 410, re-list."""
    plans = plan_tasks(run.rng, run.size.tasks, slow=0.1, max_sleep=0.5)
    await run.start_agent()
    waves = max(1, min(run.size.waves, len(plans)))
    for index in range(waves):
        # No await between the three steps: the agent can only resume after compaction.
        run.sim.drop_watches()
        run.submit(plans[index * len(plans) // waves : (index + 1) * len(plans) // waves])
        run.sim.compact()
        await asyncio.sleep(run.rng.uniform(0.3, 0.8))
    await run.settle()
    relists = await run.metric("argo_agent_watch_restarts_total", 'reason="gone"')
    if relists < 1:
        run.problems.append("the agent never re-listed after 410 Gone")
    run.injected["gone_relists"] = int(relists)


async def _slow_api(run: _Run) -> None:
    """Every API request held before it is served."""
    delay = run.rng.choice((0.1, 0.2, 0.3))
    run.sim.delay(delay)
    run.injected["api_delay_ms"] = int(delay * 1000)
    plans = plan_tasks(run.rng, run.size.tasks, slow=0.1, max_sleep=0.5)
    await run.start_agent()
    await run.feed(plans, gap=(0.1, 0.4))


BAD_TARGET_MODES: Mapping[Mode, float] = {
    "ok": 4,
    "status": 1,
    "hang": 1,
    "reset": 1,
    "close": 1,
    "huge": 1,
    "garbage": 0.5,
    "badchunk": 0.5,
}
BAD_TARGET_RESULT_CAP = 4096


async def _bad_targets(run: _Run) -> None:
    """Targets that hang, reset, close, answer huge or malformed responses."""
    plans = plan_tasks(run.rng, run.size.tasks, modes=BAD_TARGET_MODES, slow=0.1, max_sleep=0.5)
    await run.start_agent()
    await run.feed(plans, gap=(0.1, 0.4))


# -- replica scenarios: several members sharing the work (docs/replicas.md) -------------

#: GET (idempotent: re-sent after a crash) and POST (claimed before sending: never twice).
REPLICA_METHODS: Mapping[str, float] = {"GET": 1, "POST": 1}


def _replica_plans(run: _Run) -> list[TaskPlan]:
    return plan_tasks(run.rng, run.size.replica_tasks, methods=REPLICA_METHODS, slow=0.3)


def _pause(run: _Run, low: float, high: float) -> float:
    """A random fraction of the feeding time."""
    return run.size.feed_seconds * run.rng.uniform(low, high)


async def _start_members(run: _Run, count: int) -> None:
    for _ in range(count):
        await run.start_member()


async def _scale_up(run: _Run) -> None:
    """1 -> 3 members under load: each join moves work to the joiner only."""
    plans = _replica_plans(run)
    await run.start_member()
    feeder = asyncio.create_task(run.feed_over(plans, seconds=run.size.feed_seconds))
    try:
        for _ in range(2):
            await asyncio.sleep(_pause(run, 0.1, 0.25))
            await run.start_member()
            run.injected["joins"] = run.injected.get("joins", 0) + 1
        await feeder
    finally:
        feeder.cancel()


async def _scale_down(run: _Run) -> None:
    """3 -> 1 members by SIGTERM under load: each leaver hands its queue over at once and
    finishes what it runs."""
    plans = _replica_plans(run)
    await _start_members(run, 3)
    feeder = asyncio.create_task(run.feed_over(plans, seconds=run.size.feed_seconds))
    try:
        for _ in range(2):
            await asyncio.sleep(_pause(run, 0.15, 0.3))
            await run.stop_member(run.rng.choice(run.members))
        await feeder
    finally:
        feeder.cancel()


async def _rolling(run: _Run) -> None:
    """A rolling restart of 3 members under load: each stopped (SIGTERM), then replaced."""
    plans = _replica_plans(run)
    await _start_members(run, 3)
    feeder = asyncio.create_task(run.feed_over(plans, seconds=run.size.feed_seconds))
    try:
        for member in list(run.members):
            await asyncio.sleep(_pause(run, 0.05, 0.15))
            await run.stop_member(member)
            await run.start_member()
        await feeder
    finally:
        feeder.cancel()


@dataclass(slots=True)
class _Kill:
    """What a SIGKILLed member left behind, taken right after it died."""

    identity: str
    died: float
    orphaned: list[str]  # its nodes (by the view at its death) without a result
    in_flight: set[str]  # of those, the ones whose request had reached the target
    claimed: list[str]  # nodes its claim stood on


async def _kill_one(run: _Run) -> None:
    """SIGKILL one of 3 members under load (then a replacement starts, as a Deployment's
    would); repeated at full size. Judged on top of the verdict: every POST it had claimed
    ends ``Failed`` by the claim rule naming it, or with the result it reported before
    dying (one arrival); idempotent re-sends only of requests it had in flight; and the
    takeover time (the kill -> its last orphaned node final) measured."""
    # Slower answers than the other scenarios: the victim must die with work in flight.
    plans = plan_tasks(
        run.rng, run.size.replica_tasks, methods=REPLICA_METHODS, slow=0.6, max_sleep=3.0
    )
    await _start_members(run, 3)
    cycles = max(1, run.size.interruptions // 4)
    waves = max(cycles + 1, run.size.waves)
    feeder = asyncio.create_task(run.feed_over(plans, seconds=run.size.feed_seconds, waves=waves))
    tracker = asyncio.create_task(run.track_final())
    await asyncio.sleep(0)  # the first wave is in
    kills: list[_Kill] = []
    gap = run.size.feed_seconds / waves
    try:
        for cycle in range(cycles):
            # Shortly after a wave arrived: its slow requests are still in flight.
            wave = 1 + cycle * (waves - 1) // cycles
            due = (run.fed_at or time.monotonic()) + wave * gap + run.rng.uniform(0.3, 0.6)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            victim = run.rng.choice(run.members)
            identity, view = _instance_of(victim), run.identities()
            died = await run.kill_member(victim)
            nodes, arrivals = run.nodes(), run.target.all_arrivals()
            claimed = run.claims_left(instance=identity)
            # Its nodes by the view at its death (every node has its taskset's owner), and
            # those another member owns that it still ran (their handover claims name it).
            units = {n: unit_of(NS, name) for name, fed in run.tasksets.items() for n in fed}
            orphaned = [
                p.node
                for p in run.plans
                if p.node in units
                and (owner_of(view, units[p.node]) == identity or p.node in claimed)
                and not _final(nodes.get(p.node))
            ]
            kills.append(
                _Kill(
                    identity=identity,
                    died=died,
                    orphaned=orphaned,
                    in_flight={n for n in orphaned if arrivals.get(n)},
                    claimed=claimed,
                )
            )
            await run.start_member()
        await feeder
        await run.settle()
        run.record_final()
    finally:
        feeder.cancel()
        tracker.cancel()
    _judge_kills(run, kills)


def _judge_kills(run: _Run, kills: list[_Kill]) -> None:
    nodes, arrivals = run.nodes(), run.target.all_arrivals()
    methods = {p.node: p.method for p in run.plans}
    takeovers: list[float] = []
    finished: list[float] = []
    resent = in_flight = 0
    for kill in kills:
        for node in kill.claimed:
            if methods.get(node) == "GET":
                continue  # a handover claim: an idempotent request may be re-sent
            status = nodes.get(node) or {}
            abandoned = _ABANDONED.fullmatch(str(status.get("message", "")))
            if abandoned is not None and abandoned.group("instance") == kill.identity:
                continue
            if _final(status) and len(arrivals.get(node, [])) == 1 and abandoned is None:
                continue  # it finished it before dying, and its result landed
            run.problems.append(f"{node} claimed by {kill.identity} ended {status}")
        again = {
            n
            for n, got in arrivals.items()
            if len(got) > 1 and any(a.at < kill.died < b.at for a, b in itertools.pairwise(got))
        }
        if not again <= kill.in_flight:
            run.problems.append(
                f"re-sent after {kill.identity} died, not in flight there: "
                f"{sorted(again - kill.in_flight)[:5]}"
            )
        if any(methods.get(n) != "GET" for n in again):
            run.problems.append(f"a non-idempotent request re-sent: {sorted(again)[:5]}")
        resent += len(again)
        in_flight += len(kill.in_flight)
        finals = [run.final_at.get(n) for n in kill.orphaned]
        if kill.orphaned and all(at is not None for at in finals):
            finished.append(max(at for at in finals if at is not None) - kill.died)
            taken = [
                _taken_over(arrivals.get(n, []), run.final_at[n], kill.died) for n in kill.orphaned
            ]
            takeovers.append(max(taken) - kill.died)
    run.measured.update(
        kills=len(kills),
        orphaned=sum(len(k.orphaned) for k in kills),
        claimed_at_death=sum(len(k.claimed) for k in kills),
        in_flight_at_death=in_flight,
        resent_after_kill=resent,
        takeover_seconds=[round(t, 2) for t in takeovers],
        takeover_target_seconds=LEASE_SECONDS + 3,
        orphans_final_seconds=[round(t, 2) for t in finished],
    )


def _taken_over(got: list[Arrival], final_at: float, died: float) -> float:
    """When a survivor acted on an orphaned node: its request (re-)sent, or -- for a
    claimed one finished by the claim rule -- the node final. Not the request's own
    duration at the target, which is not the agent's to shorten."""
    again = [a.at for a in got if a.at > died]
    return min(again) if again else final_at


async def _cut_off(run: _Run) -> None:
    """One member cut off the API server (a simulator blackhole on its user) for three
    lease durations under load: it must fence itself -- stop starting requests -- before
    its Lease can expire for the others (who then take its work over); after the cut it
    rejoins. Measured: the cut -> its fence shown in ``/readyz``; checked: its
    ``argo_agent_tasks_started_total`` does not move from its fence to the end of the cut."""
    plans = _replica_plans(run)
    await _start_members(run, 3)
    feeder = asyncio.create_task(run.feed_over(plans, seconds=run.size.feed_seconds))
    cuts = max(1, run.size.interruptions // 6)
    fences: list[float] = []
    try:
        for _ in range(cuts):
            await asyncio.sleep(_pause(run, 0.15, 0.3) / cuts)
            victim = run.rng.choice(run.members)
            fenced = await _cut(run, victim, seconds=3 * LEASE_SECONDS)
            if fenced is not None:
                fences.append(fenced)
        await feeder
    finally:
        feeder.cancel()
        run.sim.lift()
    run.measured.update(
        cuts=cuts,
        fence_seconds=[round(f, 2) for f in fences],
        lease_seconds=LEASE_SECONDS,
    )


async def _cut(run: _Run, victim: AgentProcess, *, seconds: float) -> float | None:
    """Cut ``victim`` off for ``seconds``; when its fence showed (seconds after the cut)."""
    user = run.users[victim]
    cut_at = time.monotonic()
    run.sim.blackhole(user)
    run.injected["cuts"] = run.injected.get("cuts", 0) + 1
    fenced_at: float | None = None
    started = 0.0
    try:
        while time.monotonic() < cut_at + seconds:
            ready = await victim.get("/readyz")
            if fenced_at is None and "not starting requests" in ready.text:
                fenced_at = time.monotonic()
                started = await run.member_metric(victim, "argo_agent_tasks_started_total")
                # The interruption the verdict knows: a request the member sent before its
                # fence, unanswered to the API, may be re-sent by the members taking over
                # (idempotent ones: docs/replicas.md); none it sent after (checked below).
                run.restarts.append(Restart("CUT", fenced_at))
            await asyncio.sleep(0.05)
        if fenced_at is None:
            run.restarts.append(Restart("CUT", cut_at))
            run.problems.append(f"{user} cut off for {seconds:g}s never showed its fence")
            return None
        later = await run.member_metric(victim, "argo_agent_tasks_started_total")
        if later != started:
            run.problems.append(f"{user} started {later - started:g} request(s) while fenced")
        return fenced_at - cut_at
    finally:
        run.sim.lift(user)


async def _lease_storm(run: _Run) -> None:
    """Storms on the Lease API under load: 409 conflicts, 5xx, 429 (Retry-After) and cut
    connections on Lease reads and writes, dropped watches, now and then a member's
    Lease deleted under it."""
    plans = _replica_plans(run)
    await _start_members(run, 3)
    feeder = asyncio.create_task(run.feed_over(plans, seconds=run.size.feed_seconds))
    storms = deleted = 0
    try:
        while storms < run.size.interruptions or not feeder.done():
            await asyncio.sleep(run.rng.uniform(0.1, 0.4))
            code = run.rng.choice((409, 500, 503, 429, 0))
            run.sim.fail_next(
                run.rng.randint(2, 8),
                code=code or 503,
                resource="leases",
                verb=run.rng.choice((None, "update", "create", "get", "list", "watch")),
                retry_after=1 if code == 429 else None,
                disconnect=code == 0,
            )
            if run.rng.random() < 0.3:
                run.sim.drop_watches(abrupt=run.rng.random() < 0.5)
            if run.rng.random() < 0.25:
                leases = run.sim.list_objects("leases", namespace=NS)
                if leases:
                    name = run.rng.choice(leases)["metadata"]["name"]
                    run.sim.delete_object("leases", name, namespace=NS)
                    deleted += 1
            storms += 1
            try:
                await asyncio.sleep(run.rng.uniform(0.2, 1.0))
            finally:
                run.sim.clear_faults()
        await feeder
    finally:
        feeder.cancel()
    run.injected["lease_storms"] = storms
    run.injected["leases_deleted"] = deleted
    run.measured["lease_errors_served"] = sum(
        1
        for r in run.sim.requests()
        if r.resource == "leases" and r.status is not None and (r.status == 0 or r.status >= 400)
    )


_WORKER_STARTED = re.compile(r"worker started \[worker=(?P<worker>\d+/\d+) pid=(?P<pid>\d+)\]")


async def _kill_workers(run: _Run) -> None:
    """``--processes 2``: the busy primary lends tasksets to its helper. SIGKILL a worker at
    random moments, the helper twice as often as the primary: a dead helper's tasksets come
    back to the primary (docs/replicas.md, "Workers of one pod"); a dead primary's helper
    drains (a graceful stop) and both start again. The pod itself is never restarted."""
    plans = plan_tasks(run.rng, run.size.tasks, slow=0.5, max_sleep=0.6)
    agent = await run.start_agent()

    async def feed() -> None:
        # Many tasksets, fast: the primary fills its slots and lends the next ones; now
        # and then tasks are added to a taskset already running (lent or not).
        size = max(1, len(plans) // 15)
        for start in range(0, len(plans), size):
            run.submit(plans[start : start + size], extend=0.2)
            await asyncio.sleep(run.rng.uniform(0.05, 0.2))

    def starts(worker: str) -> list[re.Match[str]]:
        return [m for m in _WORKER_STARTED.finditer(agent.logs()) if m["worker"] == worker]

    feeder = asyncio.create_task(feed())
    try:
        for index in range(run.size.interruptions):
            await asyncio.sleep(run.rng.uniform(0.3, 1.2))
            worker = "1/2" if index % 3 == 2 else "2/2"
            before = {w: len(starts(w)) for w in ("1/2", "2/2")}
            pid = int(starts(worker)[-1]["pid"])
            os.kill(pid, signal.SIGKILL)
            # The interruption counts from when the worker is gone and the requests it had
            # written have reached the target, before any other worker could send them again
            # (a helper's tasksets go back a second later; a new primary starts later still).
            for _ in range(100):
                if not _running(pid):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            now = time.monotonic()
            run.restarts.append(Restart("SIGKILL", now))
            if worker == "1/2":
                run.restarts.append(Restart("SIGTERM", now))  # its helper stops gracefully
            key = f"SIGKILL {'primary' if worker == '1/2' else 'helper'}"
            run.injected[key] = run.injected.get(key, 0) + 1
            # Until the supervisor started it again (a primary: its helper too).
            restarted = ("1/2", "2/2") if worker == "1/2" else (worker,)
            for _ in range(1200):  # 60 s
                if all(len(starts(w)) > before[w] for w in restarted):
                    break
                await asyncio.sleep(0.05)
            await agent.wait_ready(timeout=60)
        await feeder
        await run.settle()
        run.measured["tasksets_lent"] = await run.metric("argo_agent_tasksets_lent_total")
        run.measured["tasksets_returned"] = await run.metric("argo_agent_tasksets_returned_total")
    finally:
        feeder.cancel()


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _final(status: object) -> bool:
    return isinstance(status, Mapping) and status.get("phase") in _FULFILLED


@dataclass(frozen=True, slots=True)
class _Scenario:
    body: ScenarioBody
    policy: Policy = "idempotent"
    agent_args: tuple[str, ...] = ()
    max_result_bytes: int = 1 << 20
    replicas: bool = False  # several members (start_member), size.replica_tasks tasks


SCENARIOS: Mapping[str, _Scenario] = {
    "kill": _Scenario(_kill, agent_args=("--shutdown-grace", "0.5")),
    "kill-never": _Scenario(_kill, policy="never", agent_args=("--shutdown-grace", "0.5")),
    "api-storm": _Scenario(_api_storm),
    "watch-drops": _Scenario(_watch_drops),
    "gone": _Scenario(_gone),
    "slow-api": _Scenario(_slow_api),
    "bad-targets": _Scenario(
        _bad_targets,
        agent_args=("--max-result-bytes", str(BAD_TARGET_RESULT_CAP)),
        max_result_bytes=BAD_TARGET_RESULT_CAP,
    ),
    # Four slots per worker: the primary is busy, and lends, whatever the plan's draw.
    "workers-kill": _Scenario(
        _kill_workers,
        agent_args=("--processes", "2", "--task-workers", "8", "--shutdown-grace", "5"),
    ),
    "replicas-scale-up": _Scenario(_scale_up, replicas=True),
    "replicas-scale-down": _Scenario(_scale_down, replicas=True),
    "replicas-rolling": _Scenario(_rolling, replicas=True),
    "replicas-kill": _Scenario(_kill_one, replicas=True, agent_args=("--shutdown-grace", "5")),
    "replicas-cut-off": _Scenario(_cut_off, replicas=True),
    "replicas-lease-storm": _Scenario(_lease_storm, replicas=True),
}
REPLICA_SCENARIOS = tuple(name for name, s in SCENARIOS.items() if s.replicas)


@contextlib.asynccontextmanager
async def _environment() -> AsyncIterator[tuple[ApiSimulator, CountingTarget, str]]:
    with tempfile.TemporaryDirectory(prefix="faults-") as workdir, CountingTarget() as target:
        async with ApiSimulator(bookmark_interval=0.5) as sim:
            sim.add_token(TOKEN)
            yield sim, target, workdir


async def run_scenario(
    name: str, *, seed: int, size: ScenarioSize = REDUCED, keep_logs: str | None = None
) -> ScenarioReport:
    """Run one scenario of :data:`SCENARIOS` end to end and judge it.

    ``keep_logs``: a directory to copy every agent instance's log into (post-mortems).
    """
    scenario = SCENARIOS[name]
    started = time.monotonic()
    clock_offset = time.time() - started  # the agents log wall-clock times
    async with _environment() as (sim, target, workdir):
        run = _Run(
            name=name,
            sim=sim,
            target=target,
            rng=random.Random(f"{seed}:{name}"),
            size=size,
            policy=scenario.policy,
            workdir=workdir,
            agent_args=list(scenario.agent_args),
        )
        try:
            await scenario.body(run)
            await run.settle()
            faults = run.faults_hit()
        finally:
            # One by one: each leaver hands over to the members still running.
            await run.stop_members()
            await run.stop_agent()
        if keep_logs:
            os.makedirs(keep_logs, exist_ok=True)
            for index, text in enumerate(run.instance_logs):
                with open(os.path.join(keep_logs, f"{name}-{index}.log"), "w") as out:
                    out.write(text)
        nodes = run.nodes()  # after the final graceful stop: everything it flushed
        if run.claims_left():
            run.problems.append("claims left after the final graceful stop")
        if scenario.replicas:
            gone = members_judged_gone(run.instance_logs, clock_offset=clock_offset)
            run.restarts.extend(Restart("GONE", at) for at in gone)
            run.measured["members_judged_gone"] = len(gone)
        verdict = judge(
            run.plans,
            nodes,
            target.all_arrivals(),
            run.restarts,
            target=target,
            policy=scenario.policy,
            max_result_bytes=scenario.max_result_bytes,
        )
    report = ScenarioReport(
        name=name,
        seed=seed,
        policy=scenario.policy,
        verdict=verdict,
        tasksets=len(run.tasksets),
        injected=run.injected,
        api_errors_served=faults,
        problems=run.problems,
        log_errors=run.log_errors,
        seconds=time.monotonic() - started,
        measured=run.measured,
        usage=_usage_per_member(sim.usage()) if scenario.replicas else {},
    )
    return report


_VIEW_CHANGED = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO +member view changed "
    r"\[owners=\[[^\]]*\] live=\[(?P<live>[^\]]*)\]",
    re.MULTILINE,
)


def members_judged_gone(logs: Iterable[str], *, clock_offset: float) -> list[float]:
    """When (monotonic) each member first left another member's live view.

    That is when the others may take its nodes over and re-send its unclaimed requests in
    flight (idempotent ones; docs/replicas.md): after a kill or a cut, and also when a
    member starved of CPU did not renew its Lease for a lease duration. A graceful leave
    shows too (its Lease deleted once it drained: nothing of it is re-sent then)."""
    first: dict[str, float] = {}
    for text in logs:
        seen: set[str] | None = None
        for match in _VIEW_CHANGED.finditer(text):
            live = {m.strip(" '") for m in match.group("live").split(",") if m.strip(" '")}
            if seen is not None:
                wall = time.mktime(time.strptime(match.group("at")[:19], "%Y-%m-%d %H:%M:%S"))
                at = wall + int(match.group("at")[20:]) / 1000 - clock_offset
                for member in seen - live:
                    first[member] = min(first.get(member, at), at)
            seen = live
    return sorted(first.values())


def _usage_per_member(usage: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The members' API cost: requests and watch bytes, each member and on average."""
    members = {u: v for u, v in usage.items() if u.startswith("member-")}
    if not members:
        return {}
    return {
        "members": len(members),
        "requests_per_member": round(sum(v["requests"] for v in members.values()) / len(members)),
        "watch_bytes_per_member": round(
            sum(v["watchBytes"] for v in members.values()) / len(members)
        ),
    }


def summary_json(reports: Iterable[ScenarioReport]) -> dict[str, Any]:
    """The load test's figures over several scenario reports."""
    reports = list(reports)
    return {
        "scenarios_run": len(reports),
        "tasks": sum(r.verdict.tasks for r in reports),
        "duplicates_found": sum(len(r.verdict.duplicates) for r in reports),
        "resent_without_restart": sum(len(r.verdict.resent_without_restart) for r in reports),
        "results_lost": sum(r.results_lost for r in reports),
        "problems": sum(len(r.problems) for r in reports),
        "ok": all(r.ok for r in reports),
        "scenarios": [r.summary() for r in reports],
    }
