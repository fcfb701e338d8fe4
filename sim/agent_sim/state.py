"""The simulator's shared state: options, store, tokens, faults, the request log, usage.

Both HTTP faces (the Kubernetes API and the ``/_sim`` admin endpoint) and the in-process
:class:`~agent_sim.ApiSimulator` helpers act on one :class:`SimState`, so a fault injected
from another process and one injected in-process behave identically.
"""

from __future__ import annotations

from dataclasses import dataclass

from .auth import SubjectRules, TokenRegistry
from .faults import Faults
from .requestlog import RequestLog
from .store import ObjectStore
from .usage import UsageCounters

__all__ = ["DEFAULT_MAX_BODY_BYTES", "SimOptions", "SimState"]

# k8s.io/apiserver: MaxRequestBodyBytes defaults to 3 MiB.
DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024


@dataclass(slots=True)
class SimOptions:
    """Tunables that may change while the simulator runs (tests shorten them)."""

    # Seconds between BOOKMARK events on watches that allow them (the API server: ~60).
    bookmark_interval: float = 60.0
    # Server-side end of a watch without timeoutSeconds (the API server: 1800-3600);
    # None keeps such watches open until dropped.
    watch_timeout: float | None = 1800.0
    # Larger request bodies get 413, like the API server's limitedReadBody.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad option."""
        if self.bookmark_interval <= 0:
            raise ValueError(f"bookmark_interval must be > 0, got {self.bookmark_interval}")
        if self.watch_timeout is not None and self.watch_timeout <= 0:
            raise ValueError(f"watch_timeout must be > 0 or None, got {self.watch_timeout}")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")


class SimState:
    """Everything a request handler needs."""

    def __init__(
        self,
        *,
        options: SimOptions,
        history_limit: int,
        watch_queue_limit: int,
        watch_queue_bytes: int,
        request_log_limit: int,
        request_log_bytes: int,
    ) -> None:
        options.validate()
        self.options = options
        self.store = ObjectStore(
            history_limit=history_limit,
            watch_queue_limit=watch_queue_limit,
            watch_queue_bytes=watch_queue_bytes,
        )
        self.tokens = TokenRegistry()
        self.subjects = SubjectRules()
        self.faults = Faults()
        self.log = RequestLog(limit=request_log_limit, max_bytes=request_log_bytes)
        self.usage = UsageCounters()

    def drop_watches(self, *, abrupt: bool = False) -> int:
        """End every open watch now; returns how many were open."""
        watchers = self.store.watchers()
        for watcher in watchers:
            watcher.close("dropped", abrupt=abrupt)
        return len(watchers)
