"""Per-evaluation state and the safety bounds of one run.

An expression runs inside a shared service, on text that users (or attackers) wrote.
Besides the parser's node and depth bounds, each run carries:

* a **memory budget** counted the way expr's VM counts it (``memGrow``): ranges, array
  and map construction, ``repeat``/``concat``/``flatten``/``sort`` results. expr's
  default is 1,000,000 units and the error text is ``memory budget exceeded``;
* a **string size cap** for concatenation, which expr does not bound but Python should;
* a **byte budget** (``max_bytes``): every string the evaluation builds (``+``, slices,
  every builtin's and function's string result, ``fromJSON`` input) is charged to it, so
  copying a 16 MiB string a hundred times fails the evaluation instead of the process.
  expr has no such bound (Go's strings share memory in ways Python's do not);
* a **regex cost budget** (``max_regex_cost``): RE2 is linear, but in the program size
  times the input length (``(a|b){0,1000}c`` is a 4,005-instruction program: 24 s on a
  1 MiB body). A match whose ``programsize * len(input)`` exceeds the budget is refused
  before it starts, since a running match cannot be interrupted;
* a **deadline**, fixed when the evaluation starts and checked every few loop steps,
  after every builtin or function call and around regex matches, so no expression runs
  much past ``timeout`` seconds: the longest uninterruptible step is one builtin on
  strings capped at ``max_string_length``.

A limit overrun is a :class:`Panic` of kind ``"limit"``: it fails the evaluation (the
node), never the process. The executor uses a *preemptible* first attempt with tiny
limits on the event loop and reruns only the conditions that overran it in a worker
thread with the full limits (:mod:`agent.executor.condition`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .errors import Panic

__all__ = ["DEFAULT_LIMITS", "Limits", "State", "check_regex_cost"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied to one evaluation (see the module docstring)."""

    memory_budget: int = 1_000_000
    max_string_length: int = 16 * 1024 * 1024
    timeout: float = 1.0
    max_bytes: int = 64 * 1024 * 1024
    max_regex_cost: int = 100_000_000


DEFAULT_LIMITS = Limits()

_CHECK_MASK = 15  # the clock is read every 16 loop steps (a few microseconds of work)


class State:
    """What a running expression needs besides its environment."""

    __slots__ = ("bytes", "deadline", "env", "limits", "memory", "scopes", "steps", "vars")

    def __init__(self, env: dict[str, Any], limits: Limits) -> None:
        self.env = env
        self.limits = limits
        self.memory = 0
        self.vars: list[Any] = []
        # Predicate frames: [item, index, acc] of the innermost collection builtin.
        self.scopes: list[list[Any]] = []
        self.steps = 0
        self.bytes = 0
        self.deadline = time.monotonic() + limits.timeout

    def grow(self, size: int) -> None:
        self.memory += max(size, 0)
        if self.memory >= self.limits.memory_budget:
            raise Panic("memory budget exceeded", kind="limit")

    def tick(self) -> None:
        self.steps += 1
        if not self.steps & _CHECK_MASK and time.monotonic() > self.deadline:
            self._late()

    def check_deadline(self) -> None:
        """Read the clock now: after a costly step (a builtin, a call, a regex match)."""
        if time.monotonic() > self.deadline:
            self._late()

    def _late(self) -> None:
        raise Panic(f"evaluation exceeded the time limit of {self.limits.timeout:g}s", kind="limit")

    def charge(self, size: int) -> None:
        """Count ``size`` bytes (characters) of new string data against ``max_bytes``."""
        self.bytes += size
        if self.bytes > self.limits.max_bytes:
            raise Panic(
                "memory budget exceeded: the expression built more than "
                f"{self.limits.max_bytes} bytes of strings",
                kind="limit",
            )

    def check_string(self, text: str) -> str:
        if len(text) > self.limits.max_string_length:
            raise Panic("memory budget exceeded", kind="limit")
        return text

    def check_regex(self, program_size: int, text: str) -> None:
        """Refuse a match whose worst case (program size x input length) is over budget."""
        check_regex_cost(program_size, text, budget=self.limits.max_regex_cost)
        self.check_deadline()


def check_regex_cost(
    program_size: int, text: str, *, budget: int = DEFAULT_LIMITS.max_regex_cost
) -> None:
    """Raise a ``limit`` :class:`Panic` when matching ``text`` could cost more than ``budget``.

    RE2's worst case is proportional to the compiled program's size times the input's
    length; a match cannot be interrupted once started, so the check comes first.
    """
    if program_size * max(len(text), 1) > budget:
        raise Panic(
            f"regexp too costly: program size {program_size} x input length {len(text)} "
            f"exceeds the budget of {budget}",
            kind="limit",
        )
