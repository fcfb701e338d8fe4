"""Per-evaluation state and the safety bounds of one run.

An expression runs inside a shared service, on text that users (or attackers) wrote.
Besides the parser's node and depth bounds, each run carries:

* a **memory budget** counted the way expr's VM counts it (``memGrow``): ranges, array
  and map construction, ``repeat``/``concat``/``flatten``/``sort`` results. expr's
  default is 1,000,000 units and the error text is ``memory budget exceeded``;
* a **string size cap** for concatenation, which expr does not bound but Python should;
* a **deadline**: loops check the clock every few hundred iterations, so no expression
  can run for longer than ``timeout`` seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .errors import Panic

__all__ = ["DEFAULT_LIMITS", "Limits", "State"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied to one evaluation (see the module docstring)."""

    memory_budget: int = 1_000_000
    max_string_length: int = 16 * 1024 * 1024
    timeout: float = 1.0


DEFAULT_LIMITS = Limits()

_CHECK_EVERY = 256


class State:
    """What a running expression needs besides its environment."""

    __slots__ = ("deadline", "env", "limits", "memory", "scopes", "steps", "vars")

    def __init__(self, env: dict[str, Any], limits: Limits) -> None:
        self.env = env
        self.limits = limits
        self.memory = 0
        self.vars: list[Any] = []
        # Predicate frames: [item, index, acc] of the innermost collection builtin.
        self.scopes: list[list[Any]] = []
        self.steps = 0
        self.deadline = 0.0  # set on the first loop step: straight-line code needs no clock

    def grow(self, size: int) -> None:
        self.memory += max(size, 0)
        if self.memory >= self.limits.memory_budget:
            raise Panic("memory budget exceeded", kind="limit")

    def tick(self) -> None:
        self.steps += 1
        if self.steps % _CHECK_EVERY == 1:
            now = time.monotonic()
            if self.steps == 1:
                self.deadline = now + self.limits.timeout
            elif now > self.deadline:
                raise Panic(
                    f"evaluation exceeded the time limit of {self.limits.timeout:g}s", kind="limit"
                )

    def check_string(self, text: str) -> str:
        if len(text) > self.limits.max_string_length:
            raise Panic("memory budget exceeded", kind="limit")
        return text
