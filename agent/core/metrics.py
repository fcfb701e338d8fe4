"""Prometheus metric objects, defined once for the process.

Names follow Prometheus conventions (``argo_agent_`` prefix, ``_total`` counters,
``_seconds`` histograms). Every label has bounded cardinality: phases, methods, status
classes, API codes and reasons -- never a URL, a taskset name or a node ID.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, Info

__all__ = [
    "ARTIFACTS",
    "ARTIFACT_BYTES",
    "BUILD",
    "CONDITION_EVALUATIONS",
    "HANDOVERS",
    "HTTP_REQUEST_SECONDS",
    "LEASE_RENEW_AGE",
    "LEASE_RENEW_FAILURES",
    "MEMBERS",
    "MEMBERSHIP_CHANGES",
    "NODES_OWNED",
    "OUTBOUND_POLICIES",
    "PATCH_BATCHES",
    "PATCH_ERRORS",
    "PATCH_FORBIDDEN",
    "PATCH_NODES",
    "PATCH_SECONDS",
    "READY",
    "RESULTS_DROPPED",
    "RESULT_LATENCY_SECONDS",
    "SECRET_AUTHORITY",
    "SECRET_CACHE",
    "SECRET_READ_RETRIES",
    "TAKEOVERS",
    "TASKSETS_LENT",
    "TASKSETS_LISTED",
    "TASKSETS_RETURNED",
    "TASKSETS_WATCHED",
    "TASKS_FINISHED",
    "TASKS_IN_FLIGHT",
    "TASKS_QUEUED",
    "TASKS_RECEIVED",
    "TASKS_STARTED",
    "WATCH_EVENTS",
    "WATCH_EVENTS_NOT_OWNED",
    "WATCH_EVENTS_UNCHANGED",
    "WATCH_RESTARTS",
    "child",
    "initialise",
    "method_label",
    "status_class",
]

_PREFIX = "argo_agent"

BUILD = Info(f"{_PREFIX}_build", "Version of the running agent")
# Evaluated at scrape time (``set_function``) from the same check as /readyz, so an alert
# sees what the kubelet's probe sees.
READY = Gauge(
    f"{_PREFIX}_ready",
    "1 while /readyz answers ready (API server reachable, every watch open), else 0",
)

TASKS_RECEIVED = Counter(f"{_PREFIX}_tasks_received_total", "Tasks seen for the first time")
TASKS_STARTED = Counter(f"{_PREFIX}_tasks_started_total", "Tasks whose execution started")
TASKS_FINISHED = Counter(
    f"{_PREFIX}_tasks_finished_total", "Tasks finished, by resulting node phase", ["phase"]
)
# The engine's gauges are sampled (service.py), not set per task.
TASKS_IN_FLIGHT = Gauge(f"{_PREFIX}_tasks_in_flight", "Tasks executing now")
TASKS_QUEUED = Gauge(f"{_PREFIX}_tasks_queued", "Tasks waiting for a free slot")

HTTP_REQUEST_SECONDS = Histogram(
    f"{_PREFIX}_http_request_duration_seconds",
    "Duration of HTTP template requests, by method and status class",
    ["method", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CONDITION_EVALUATIONS = Counter(
    f"{_PREFIX}_success_condition_evaluations_total",
    "successCondition evaluations, by outcome (true, false, error)",
    ["outcome"],
)

PATCH_BATCHES = Counter(f"{_PREFIX}_patch_batches_total", "Status patches sent successfully")
PATCH_NODES = Counter(f"{_PREFIX}_patch_nodes_total", "Node results delivered by status patches")
PATCH_SECONDS = Histogram(
    f"{_PREFIX}_patch_duration_seconds",
    "Latency of one status patch request",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PATCH_ERRORS = Counter(
    f"{_PREFIX}_patch_errors_total", "Failed status patch requests, by HTTP code", ["code"]
)
PATCH_FORBIDDEN = Counter(
    f"{_PREFIX}_patch_forbidden_total",
    "Status patches refused as unauthorised (401) or forbidden (403), by code",
    ["code"],
)
RESULT_LATENCY_SECONDS = Histogram(
    f"{_PREFIX}_result_latency_seconds",
    "Time from a task's result being ready to the status patch that delivered it succeeding",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300),
)
RESULTS_DROPPED = Counter(
    f"{_PREFIX}_results_dropped_total",
    "Results not delivered, by reason (taskset_deleted, node_removed, rejected)",
    ["reason"],
)

WATCH_EVENTS = Counter(f"{_PREFIX}_watch_events_total", "Watch events handled, by type", ["type"])
WATCH_EVENTS_UNCHANGED = Counter(
    f"{_PREFIX}_watch_events_unchanged_total",
    "MODIFIED events skipped after their metadata showed no change the engine reads",
)
WATCH_EVENTS_NOT_OWNED = Counter(
    f"{_PREFIX}_watch_events_not_owned_total",
    "Taskset events and list items skipped after their metadata showed another member owns "
    "the taskset",
)
WATCH_RESTARTS = Counter(
    f"{_PREFIX}_watch_restarts_total", "Watch restarts, by reason (gone = 410, error)", ["reason"]
)
TASKSETS_LISTED = Gauge(f"{_PREFIX}_tasksets_listed", "Tasksets returned by the last list")
TASKSETS_WATCHED = Gauge(f"{_PREFIX}_tasksets_watched", "Tasksets the engine currently tracks")

# Replicas (agent/membership, agent/engine/ownership.py; docs/replicas.md).
MEMBERS = Gauge(
    f"{_PREFIX}_members", "Members of the agent's group this member counts as owners now"
)
NODES_OWNED = Gauge(
    f"{_PREFIX}_nodes_owned",
    "Nodes this member owns and has not finished (queued, running, settling)",
)
HANDOVERS = Counter(
    f"{_PREFIX}_handovers_total",
    "Running nodes claimed for handover because another member owns them after a view change",
)
TAKEOVERS = Counter(
    f"{_PREFIX}_takeovers_total",
    "Nodes claimed by a member that is gone, settled here by the redelivery policy",
)
TASKSETS_LENT = Counter(
    f"{_PREFIX}_tasksets_lent_total",
    "Tasksets the primary worker of a pod with several processes lent to a helper worker, "
    "at first sight, because it was busy",
)
TASKSETS_RETURNED = Counter(
    f"{_PREFIX}_tasksets_returned_total",
    "Lent tasksets that came back to the primary worker because their helper worker died",
)
MEMBERSHIP_CHANGES = Counter(
    f"{_PREFIX}_membership_changes_total", "Changes of this member's view of the group"
)
LEASE_RENEW_FAILURES = Counter(
    f"{_PREFIX}_lease_renew_failures_total",
    "Renewals of this member's Lease that failed",
    ["reason"],
)
LEASE_RENEW_AGE = Gauge(
    f"{_PREFIX}_lease_renew_age_seconds", "Seconds since this member's Lease was last renewed"
)

SECRET_CACHE = Counter(
    f"{_PREFIX}_secret_cache_total", "Secret look-ups, by result (hit, miss)", ["result"]
)
SECRET_AUTHORITY = Counter(
    f"{_PREFIX}_secret_authority_total",
    "Decisions whether a workflow's service account may get a Secret, by result "
    "(allowed, denied, error) and cache (hit, miss)",
    ["result", "cache"],
)
ARTIFACTS = Counter(
    f"{_PREFIX}_artifacts_total",
    "Output artifacts of HTTP nodes by result: stored, store_error (the store failed), "
    "refused (not attempted: a bad declaration, the repository, a permission, a Secret or "
    "the outbound policy)",
    ["result"],
)
ARTIFACT_BYTES = Counter(
    f"{_PREFIX}_artifact_bytes_total", "Bytes of response bodies stored as output artifacts"
)
SECRET_READ_RETRIES = Counter(
    f"{_PREFIX}_secret_read_retries_total",
    "Secret reads tried again after a transient API error (as Argo's GetSecrets)",
)
OUTBOUND_POLICIES = Gauge(
    f"{_PREFIX}_outbound_policies",
    "Namespace outbound policy ConfigMaps read by the last list, by state (valid, invalid)",
    ["state"],
)

# The label values known in advance, exported as 0 from the start: a series that appears
# only at its first increment hides that increment from rate() and increase() (there is
# no earlier sample to compare with), so an alert on "any drop" would miss the first one,
# and a dashboard would show "no data" where the truth is 0.
_KNOWN_LABELS: tuple[tuple[Any, tuple[str | tuple[str, ...], ...]], ...] = (
    (TASKS_FINISHED, ("Succeeded", "Failed", "Error")),
    (CONDITION_EVALUATIONS, ("true", "false", "error")),
    (PATCH_ERRORS, ("connection",)),
    (PATCH_FORBIDDEN, ("401", "403")),
    (RESULTS_DROPPED, ("taskset_deleted", "node_removed", "rejected")),
    (WATCH_EVENTS, ("ADDED", "MODIFIED", "DELETED", "BOOKMARK")),
    (WATCH_RESTARTS, ("gone", "error")),
    (SECRET_CACHE, ("hit", "miss")),
    (ARTIFACTS, ("stored", "store_error", "refused")),
    (LEASE_RENEW_FAILURES, ("conflict", "gone", "error")),
    (
        SECRET_AUTHORITY,
        (
            ("allowed", "hit"),
            ("allowed", "miss"),
            ("denied", "hit"),
            ("denied", "miss"),
            ("error", "miss"),
        ),
    ),
)


def initialise() -> None:
    """Create every known label value at 0 (see ``_KNOWN_LABELS``); idempotent."""
    for metric, values in _KNOWN_LABELS:
        for value in values:
            child(metric, *((value,) if isinstance(value, str) else value))


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


def method_label(method: str) -> str:
    """Bound the method label: any non-standard token counts as ``other``."""
    upper = method.upper()
    return upper if upper in _METHODS else "other"


def status_class(status: int | None) -> str:
    """``2xx`` ... ``5xx``, or ``error`` when no response was received."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


@functools.lru_cache(maxsize=1024)
def child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, cached: the hot path skips prometheus_client's lock.

    Bounded because every label is (see the module docstring).
    """
    return metric.labels(*values)
