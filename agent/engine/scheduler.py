"""The engine: the scheduler between a source of tasks and a sink of results.

A *source* (the cluster watch, or a manifest file) shows the engine snapshots of
WorkflowTaskSets; the engine decides what to run, runs it through a *runner* (the
executor) and hands every result to a *sink* (the status patcher, or stdout). It knows
nothing about HTTP or Kubernetes, which keeps the rules that make the agent trustworthy
in one place, testable without either:

* **Never twice.** A node ID is queued the first time it appears in ``spec.tasks`` and
  never again while the taskset lives; a node whose ``status.nodes`` entry is already
  fulfilled is not run at all (so a restarted agent does not re-send finished work).
* **Replays are harmless.** A snapshot whose ``metadata.generation`` is older than one
  already seen is ignored, and a new ``uid`` under a known name is a new taskset.
* **Cheap events.** Every status patch comes back as a watch event carrying the whole
  ``spec.tasks``; only keys not seen before are looked at, templates are parsed by the
  runner once, when they run.
* **Fair.** Each taskset has its own queue; slots are handed out round-robin across
  tasksets, so one workflow with thousands of tasks cannot starve the others.
* **Bounded.** At most ``max_in_flight`` tasks run at once (``ARGO_AGENT_TASK_WORKERS``).
  One asyncio task per running node, not a fixed worker pool: idle capacity costs nothing.
* **No stale results.** A node that leaves ``spec.tasks`` is cancelled if running, and its
  result is never reported: the controller aborts reconciliation on an unknown node ID.
* **Owned, when shared.** With an :class:`~agent.engine.ownership.Ownership` (worker
  processes, replicas on Leases) the engine runs and reports only the nodes of the
  tasksets it owns (the unit is the taskset: every node has its taskset's owner), and
  tells the source which tasksets it may skip unread (:meth:`Engine.skips`). When
  the view of the members changes, work moves without a request being sent twice
  (docs/replicas.md): a running node whose owner changed gets a claim (unless it has one)
  and is finished here; a newly owned node waits until the view is ``settle`` seconds
  old, then the taskset is read afresh (``reader``) and the node starts only if no live
  member claims it; a live member's claim is re-read until its result (or release)
  shows. Ownership is asked again right before a request starts, so a fenced member
  (its Lease not renewed in time) starts nothing.
* **Graceful.** :meth:`Engine.drain` stops dispatching, lets running tasks finish within
  a grace period and cancels the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from agent.core import metrics
from agent.core.model import FULFILLED_PHASES, NodePhase, NodeResult
from agent.core.ports import Claims, ResultSink, StatusReader, TaskRunner
from agent.core.refs import TaskRef, TaskSetKey, TaskSetSnapshot
from agent.engine.ownership import Ownership, unit_of

__all__ = ["Engine"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _TaskSetState:
    key: TaskSetKey
    unit: str  # what the ownership is asked about (every node has its taskset's owner)
    workflow_uid: str = ""
    uid: str = ""
    generation: int = 0
    warned: str = ""
    seen: set[str] = field(default_factory=set)
    # Nodes with a status entry of ours or a predecessor's (a claim, leftovers): their
    # result must replace that entry field by field, not merge into it.
    overwrite: set[str] = field(default_factory=set)
    queue: deque[str] = field(default_factory=deque)
    templates: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # Ownership (docs/replicas.md): nodes seen, not finished as far as we know, that another
    # member owns; nodes we own that wait for the settle time and a fresh read (or for a
    # live member's claim to resolve); running nodes that hold a claim of ours.
    foreign: set[str] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)
    claimed: set[str] = field(default_factory=set)
    # Running nodes (sent or about to be) that a change of view gave to another member at
    # some moment: one not sent yet is never sent, even if the view gives it back.
    disowned: set[str] = field(default_factory=set)
    # Nodes whose claim is being written, with the fence lapses counted when it began.
    claiming: dict[str, int] = field(default_factory=dict)
    # Nodes that had a status entry when the taskset came back from a helper worker of
    # this pod that died: a claim naming this member there is the helper's, not ours.
    inherited: frozenset[str] = frozenset()


class Engine:
    """Schedules the nodes of many tasksets onto a bounded number of concurrent runs."""

    def __init__(
        self,
        *,
        runner: TaskRunner,
        sink: ResultSink,
        max_in_flight: int,
        claims: Claims | None = None,
        on_result: Callable[[TaskRef, NodeResult], None] | None = None,
        ownership: Ownership | None = None,
        reader: StatusReader | None = None,
        recheck: float = 1.0,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._runner = runner
        self._sink = sink
        self._claims = claims
        self._on_result = on_result
        self._ownership = ownership
        self._reader = reader
        self._recheck = recheck
        self._pending_wakeup = asyncio.Event()
        if ownership is not None:
            ownership.subscribe(self._reassign)
        self.max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._states: dict[TaskSetKey, _TaskSetState] = {}
        self._ready: deque[TaskSetKey] = deque()
        self._in_ready: set[TaskSetKey] = set()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._accepting = True
        self._draining = False
        self._in_flight = 0

    # -- what the source calls --------------------------------------------------------

    def observe(self, snapshot: TaskSetSnapshot, *, inherited: bool = False) -> None:
        """Take in the current state of one taskset (on every watch event).

        ``inherited``: a first sight of a taskset that a helper worker of this pod ran
        until it died; its claims name this member but are the helper's (gone)."""
        if snapshot.completed:
            self.forget(snapshot.key)
            return
        state = self._states.get(snapshot.key)
        if state is not None and snapshot.uid and state.uid and snapshot.uid != state.uid:
            self.forget(snapshot.key)  # deleted and re-created under the same name
            state = None
        if state is None:
            state = self._states[snapshot.key] = _TaskSetState(
                snapshot.key,
                unit_of(snapshot.key.namespace, snapshot.key.name),
                workflow_uid=snapshot.workflow_uid,
                uid=snapshot.uid,
            )
            if inherited:
                state.inherited = frozenset(snapshot.nodes)
        if snapshot.generation < state.generation:
            # An older spec than one already acted on (a replayed event): applying it
            # would make nodes look removed, then new again. Generations only grow.
            return
        state.generation = snapshot.generation
        if snapshot.problem != state.warned:
            state.warned = snapshot.problem
            if snapshot.problem:
                log.warning(
                    "ignoring a malformed taskset %s: %s",
                    snapshot.key,
                    snapshot.problem,
                    extra=snapshot.key.log_context(),
                )
        tasks = snapshot.tasks
        if len(tasks) == len(state.seen) and not state.seen.symmetric_difference(tasks.keys()):
            return
        gone = state.seen.difference(tasks.keys())
        if gone:
            self._drop_nodes(state, gone)
        queued = 0
        new = tasks.keys() - state.seen
        # Keep spec order (first come, first served) without a Python-level scan of every
        # key on events that bring nothing new; the set difference above runs in C.
        ordered = [k for k in tasks if k in new] if len(new) > 1 else new
        ownership = self._ownership
        unsettled = ownership is not None and ownership.settled_in() > 0
        owned = ownership is None or ownership.owns(state.unit)
        for node_id in ordered:
            state.seen.add(node_id)
            if not isinstance(node_id, str):
                continue
            status = snapshot.nodes.get(node_id)
            phase = status.get("phase") if isinstance(status, Mapping) else None
            if phase in FULFILLED_PHASES:
                continue  # finished by an earlier run; never send it again
            if ownership is not None:
                if not owned:
                    state.foreign.add(node_id)  # another member's (see agent/engine/ownership.py)
                    continue
                if unsettled:
                    # The view changed lately: another member may not know yet that this
                    # node is ours, so it waits for the settle time and a fresh read.
                    state.pending.add(node_id)
                    self._pending_wakeup.set()
                    continue
            queued += self._decide(state, node_id, tasks[node_id], status)
        if queued:
            metrics.TASKS_RECEIVED.inc(queued)
            self._mark_ready(snapshot.key)
            self._idle.clear()  # wait_idle() right after observe() waits for this work
            self._wakeup.set()

    def _decide(self, state: _TaskSetState, node_id: str, template: object, status: object) -> int:
        """A node we own, with its current status: queue it (1), settle it, or wait (0)."""
        phase = status.get("phase") if isinstance(status, Mapping) else None
        if phase in FULFILLED_PHASES:
            return 0  # finished by an earlier run or another member; never send it again
        if status:
            state.overwrite.add(node_id)
        ref = self._ref(state, node_id)
        if phase == NodePhase.RUNNING and self._claims is not None and isinstance(status, Mapping):
            author = self._claims.claimant(status)
            if (
                self._ownership is not None
                and author == self._ownership.me
                and node_id not in state.inherited
            ):
                # Our own claim on a node not running here: one we released after a start
                # was abandoned (the release not read back yet). It was never sent: start it.
                author, status = None, {}
            if author is not None and self._ownership is not None:
                if self._ownership.is_live(author):
                    # Theirs: a live member started it and reports its result (or
                    # releases it); read it again later.
                    state.pending.add(node_id)
                    self._pending_wakeup.set()
                    return 0
                metrics.TAKEOVERS.inc()
                log.info(
                    "taking over a node claimed by a member that is gone",
                    extra={**ref.log_context(), "member": author},
                )
            verdict = self._claims.adopt(ref, _as_mapping(template), status)
            if verdict is not None:
                self._report(state, ref, verdict)
                return 0
        state.templates[node_id] = _as_mapping(template)
        state.queue.append(node_id)
        self._queued += 1
        return 1

    def _reassign(self) -> None:
        """The view of the members changed: move work to and from this member."""
        ownership = self._ownership
        if ownership is None:
            return
        moved_in = moved_out = handed = 0
        for state in self._states.values():
            owned = ownership.owns(state.unit)
            if owned and not state.foreign:
                continue  # ours before and after: nothing moves
            if not owned:
                for node_id in list(state.running):
                    state.disowned.add(node_id)
                    if node_id in state.claimed:
                        continue
                    # Another member owns it now and will read the status before starting
                    # it: a claim says "mine, in flight" (we finish it and report).
                    state.claimed.add(node_id)
                    state.overwrite.add(node_id)
                    if self._claims is not None:
                        self._claims.claim_now(self._ref(state, node_id))
                        handed += 1
                for node_id in list(state.templates):
                    del state.templates[node_id]  # the queue skips it
                    self._queued -= 1
                    state.foreign.add(node_id)
                    moved_out += 1
                moved_out += len(state.pending)
                state.foreign.update(state.pending)
                state.pending.clear()
                continue
            moved_in += len(state.foreign)
            state.pending.update(state.foreign)
            state.foreign.clear()
        if handed:
            metrics.HANDOVERS.inc(handed)
        if moved_in or moved_out or handed:
            log.info(
                "ownership changed",
                extra={"gained": moved_in, "released": moved_out, "claimed_in_flight": handed},
            )
        self._pending_wakeup.set()
        self._update_idle()

    async def _settle_pending(self) -> None:
        """Start newly owned nodes once the view has settled and a fresh read allows it."""
        ownership, reader = self._ownership, self._reader
        if ownership is None:
            return
        while True:
            await self._pending_wakeup.wait()
            delay = ownership.settled_in()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            self._pending_wakeup.clear()
            version = ownership.version
            waiting = False
            for key in [k for k, s in self._states.items() if s.pending]:
                if reader is None:
                    fresh: TaskSetSnapshot | None = None
                else:
                    try:
                        fresh = await reader.read(key)
                    except Exception as exc:  # retried: never start a node without a read
                        log.warning(
                            "cannot read the taskset to settle its nodes: %s",
                            exc,
                            extra=key.log_context(),
                        )
                        waiting = True
                        continue
                if ownership.version != version:
                    break  # the view changed meanwhile: settle again
                waiting |= self._resolve(key, fresh)
            if ownership.version != version:
                self._pending_wakeup.set()
            elif waiting:
                await asyncio.sleep(self._recheck)
                self._pending_wakeup.set()

    def _resolve(self, key: TaskSetKey, fresh: TaskSetSnapshot | None) -> bool:
        """Decide the pending nodes of one taskset from a fresh read; True if some wait."""
        state = self._states.get(key)
        if state is None or not state.pending:
            return False
        if fresh is None or (fresh.uid and state.uid and fresh.uid != state.uid):
            return False  # gone: the watch tells the engine
        queued = 0
        for node_id in list(state.pending):
            state.pending.discard(node_id)
            if node_id not in state.seen or node_id not in fresh.tasks:
                continue  # left spec.tasks
            if self._ownership is not None and not self._ownership.owns(state.unit):
                state.foreign.add(node_id)
                continue
            queued += self._decide(state, node_id, fresh.tasks[node_id], fresh.nodes.get(node_id))
        if queued:
            metrics.TASKS_RECEIVED.inc(queued)
            self._mark_ready(key)
            self._idle.clear()
            self._wakeup.set()
        self._update_idle()
        return bool(state.pending)

    @property
    def owned(self) -> int:
        """Nodes this member owns and has not finished: queued, running or settling."""
        return self._queued + self._in_flight + sum(len(s.pending) for s in self._states.values())

    def progress(self, ref: TaskRef, result: NodeResult) -> None:
        """A running node's intermediate result (a plugin's ``Running`` reply before it
        asks again after ``requeue``): reported now, as Argo's agent reports it, so the
        workflow shows its phase and message; the final result later replaces it field by
        field. Ignored once the node is not running any more."""
        state = self._states.get(ref.key)
        if state is None or ref.node_id not in state.running or ref.node_id not in state.seen:
            return
        overwrite = ref.node_id in state.overwrite
        state.overwrite.add(ref.node_id)
        self._sink.submit(ref, result, overwrite=overwrite)

    def forget(self, key: TaskSetKey) -> None:
        """The taskset is gone (deleted, completed, or no longer ours): drop everything."""
        state = self._states.pop(key, None)
        if state is None:
            return
        self._queued -= len(state.templates)
        for task in state.running.values():
            task.cancel()
        self._sink.discard(key)
        self._update_idle()

    def skips(self, key: TaskSetKey) -> bool:
        """Whether the source may skip this taskset unread: another member owns it and
        nothing of it is here. If the view gives it to this member later, the source reads
        it afresh and shows it (:meth:`observe`), as on first sight."""
        ownership = self._ownership
        return (
            ownership is not None
            and key not in self._states
            and ownership.elsewhere(unit_of(key.namespace, key.name))
        )

    def holds(self, key: TaskSetKey) -> bool:
        """Whether the engine has seen this taskset (and not forgotten it)."""
        return key in self._states

    def known(self) -> frozenset[TaskSetKey]:
        return frozenset(self._states)

    @property
    def tasksets(self) -> int:
        return len(self._states)

    def is_current(self, key: TaskSetKey, node_id: str) -> bool:
        """Whether ``node_id`` is still in the taskset's ``spec.tasks`` (may be reported),
        and, for a node whose claim is being written, whether that claim may still land.

        The status patcher asks before every attempt and drops what is not current."""
        state = self._states.get(key)
        if state is None or node_id not in state.seen:
            return False
        lapses = state.claiming.get(node_id)
        ownership = self._ownership
        if lapses is not None and ownership is not None:
            # A claim not written yet for a node that was another member's since (fenced,
            # or moved): it must not land late, over what that member wrote. Dropped, the
            # node is not sent (see _execute).
            return not (ownership.fenced or ownership.lapses != lapses or node_id in state.disowned)
        return True

    # -- introspection ---------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return self._queued

    async def wait_idle(self) -> None:
        await self._idle.wait()

    # -- the dispatcher --------------------------------------------------------------

    async def run(self) -> None:
        """Hand out slots until cancelled or drained. Cancel-safe."""
        settling = asyncio.create_task(self._settle_pending(), name="settle owned nodes")
        try:
            while self._accepting:
                await self._slots.acquire()
                try:
                    picked = self._next() if self._accepting else None
                    while picked is None and self._accepting:
                        self._update_idle()
                        self._wakeup.clear()
                        await self._wakeup.wait()
                        picked = self._next()
                except BaseException:
                    self._slots.release()
                    raise
                if picked is None:
                    self._slots.release()
                    break
                self._start(*picked)
        finally:
            settling.cancel()
            self._update_idle()

    async def drain(self, *, grace: float) -> None:
        """Stop dispatching; wait up to ``grace`` seconds for running tasks, cancel the rest."""
        self._accepting = False
        self._draining = True
        self._wakeup.set()
        running = [t for s in self._states.values() for t in s.running.values()]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    # -- internals -------------------------------------------------------------------

    def _next(self) -> tuple[_TaskSetState, str, Mapping[str, Any]] | None:
        while self._ready:
            key = self._ready.popleft()
            self._in_ready.discard(key)
            state = self._states.get(key)
            if state is None:
                continue
            while state.queue:
                node_id = state.queue.popleft()
                if node_id not in state.templates:
                    continue  # left spec.tasks while queued
                template = state.templates.pop(node_id)  # may be null: the runner says so
                self._queued -= 1
                if self._ownership is not None and not self._ownership.owns(state.unit):
                    state.foreign.add(node_id)  # fenced, or moved: re-evaluated on a change
                    continue
                if state.queue:
                    self._mark_ready(key)  # round-robin: back of the line
                return state, node_id, template
        return None

    def _mark_ready(self, key: TaskSetKey) -> None:
        if key not in self._in_ready:
            self._in_ready.add(key)
            self._ready.append(key)

    def _start(self, state: _TaskSetState, node_id: str, template: Mapping[str, Any]) -> None:
        ref = self._ref(state, node_id)
        self._in_flight += 1
        self._idle.clear()
        metrics.TASKS_STARTED.inc()
        task = asyncio.create_task(self._execute(state, ref, template), name=f"node {ref.node_id}")
        state.running[node_id] = task

    async def _execute(
        self, state: _TaskSetState, ref: TaskRef, template: Mapping[str, Any]
    ) -> None:
        claimed = sent = False
        ownership = self._ownership
        lapses = ownership.lapses if ownership is not None else 0
        expiries = ownership.expiries if ownership is not None else 0
        state.disowned.discard(ref.node_id)
        try:
            landed = True
            if self._claims is not None and self._claims.needs_claim(template):
                claimed = True
                state.claimed.add(ref.node_id)
                state.overwrite.add(ref.node_id)  # the claim may land even if we are cut short
                landed = await self._claim(state, ref, lapses)
            if not landed or (
                ownership is not None
                and (
                    ref.node_id in state.disowned
                    or ownership.lapses != lapses
                    or not ownership.owns(state.unit)
                )
            ):
                self._abandon_start(
                    state,
                    ref,
                    claim_landed=claimed and landed,
                    handover=not claimed and ref.node_id in state.claimed,
                    expiries=expiries,
                )
                return
            sent = True
            result = await self._runner.run(template, ref=ref)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Ours: the node left spec.tasks, or we are shutting down past the grace;
                # then a claimed node is settled, so no claim outlives a clean stop.
                if self._draining and claimed and self._claims is not None:
                    # Claimed but never sent: hand the node back untouched.
                    verdict = (
                        self._claims.abandoned(ref) if sent else NodeResult(phase=NodePhase.PENDING)
                    )
                    self._report(state, ref, verdict)
                elif self._draining and ref.node_id in state.claimed:
                    # Only a handover claim (a request that may be sent again): hand it back.
                    self._report(state, ref, NodeResult(phase=NodePhase.PENDING))
                raise
            # Propagated from below (a shared resource someone else gave up on): that is a
            # failure of this node, not a reason to lose it.
            log.error(
                "node cancelled from below; reporting it as an error", extra=ref.log_context()
            )
            result = NodeResult(
                phase=NodePhase.ERROR, message="agent internal error: operation cancelled"
            )
        except Exception as exc:  # the runner promises not to raise; never lose a node
            log.exception("runner failed", extra=ref.log_context())
            result = NodeResult(phase=NodePhase.ERROR, message=f"agent internal error: {exc}")
        finally:
            state.running.pop(ref.node_id, None)
            state.claimed.discard(ref.node_id)
            state.disowned.discard(ref.node_id)
            self._in_flight -= 1
            self._slots.release()
            self._update_idle()
        self._report(state, ref, result)

    async def _claim(self, state: _TaskSetState, ref: TaskRef, lapses: int) -> bool:
        """Write the node's claim; False if the sink dropped it (see :meth:`is_current`)."""
        assert self._claims is not None
        state.claiming[ref.node_id] = lapses
        try:
            await self._claims.claim(ref)
        except LookupError:
            return False  # the node left spec.tasks, or was someone else's meanwhile
        finally:
            state.claiming.pop(ref.node_id, None)
        return True

    def _abandon_start(
        self,
        state: _TaskSetState,
        ref: TaskRef,
        *,
        claim_landed: bool,
        handover: bool,
        expiries: int,
    ) -> None:
        """Not sent: the node was another member's at some moment before it could start.

        Fenced, or moved by a change of view, while its claim was being written (or before
        its task ran): the other member may have read the status before our claim landed
        and started the node itself, so it is not sent here even if the node is ours again
        by now. A claim of ours in the status (the one written before sending, or a
        handover claim written before the task ran) is released (``Pending``) so that the
        owner may start the node; a node we own again settles like any newly owned node (a
        fresh read after the settle time). If our Lease may have expired for the others
        while the claim was written (a lease duration without a renewal: a mere lapse of
        the fence is not enough), our claim may have landed late, over the claim of a
        member that took the node over: a release would make the node look free while that
        member sends it, and our own claim would look like one we may ignore. The node is
        then finished here by the claim rule (never sent twice; the other member's result,
        if it sends it, replaces ours).
        """
        ownership = self._ownership
        late = ownership is not None and (ownership.expiries != expiries or ownership.expired)
        if claim_landed and late and self._claims is not None:
            self._report(state, ref, self._claims.superseded(ref))
            return
        if claim_landed or handover:
            self._sink.submit(ref, NodeResult(phase=NodePhase.PENDING), overwrite=True)
        if ownership is None or ref.node_id not in state.seen:
            return
        if ownership.owns(state.unit):
            state.pending.add(ref.node_id)
            self._pending_wakeup.set()
        else:
            state.foreign.add(ref.node_id)

    def _report(self, state: _TaskSetState, ref: TaskRef, result: NodeResult) -> None:
        if self._states.get(state.key) is not state or ref.node_id not in state.seen:
            return  # gone while running: reporting it would abort the controller's pass
        if self._on_result is not None:
            self._on_result(ref, result)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "node finished: %s",
                result.phase,
                extra={**state.key.log_context(), "node": ref.node_id, "phase": str(result.phase)},
            )
        overwrite = ref.node_id in state.overwrite
        state.overwrite.discard(ref.node_id)
        self._sink.submit(ref, result, overwrite=overwrite)

    def _drop_nodes(self, state: _TaskSetState, gone: set[str]) -> None:
        state.seen.difference_update(gone)
        state.overwrite.difference_update(gone)
        state.foreign.difference_update(gone)
        state.pending.difference_update(gone)
        state.disowned.difference_update(gone)
        for node_id in gone:
            if node_id in state.templates:
                del state.templates[node_id]
                self._queued -= 1
            task = state.running.get(node_id)
            if task is not None:
                task.cancel()
        self._sink.discard(state.key, frozenset(gone))
        self._update_idle()

    def _update_idle(self) -> None:
        if self._in_flight == 0 and self._queued == 0:
            self._idle.set()
        else:
            self._idle.clear()

    @staticmethod
    def _ref(state: _TaskSetState, node_id: str) -> TaskRef:
        return TaskRef(
            namespace=state.key.namespace,
            taskset=state.key.name,
            node_id=node_id,
            workflow_uid=state.workflow_uid,
        )


def _as_mapping(template: object) -> Mapping[str, Any]:
    # A non-object template still reaches the runner, which fails that node with a message
    # naming the problem; the type is a promise the runner checks, not one we can keep.
    return cast(Mapping[str, Any], template)
