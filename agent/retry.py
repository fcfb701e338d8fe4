"""``retryStrategy`` decisions, made exactly as Argo's workflow controller makes them.

For HTTP (and plugin) templates the *controller* retries, not the agent: each attempt is
a new child node. Running a template locally should still show what the controller
will do, so this module reproduces ``processNodeRetries`` (workflow/controller/
operator.go) step by step, in its order:

1. An attempt that did not fail (Succeeded, Skipped, Omitted) ends the retry node as
   ``Succeeded``.
2. ``backoff``: past ``maxDuration`` (measured from the start of the first attempt)
   -> stop, ``Max duration limit exceeded``. The wait is ``duration * factor^(n-1)``
   for the n-th attempt (Go's integer ``time.Duration`` arithmetic), capped by ``cap``;
   if waiting would end past ``maxDuration`` -> stop, ``Backoff would exceed max
   duration limit``. The controller waits only when ``limit`` is set and not yet
   exceeded; after waiting it carries on with the checks below.
3. ``retryPolicy`` (default ``OnFailure``, or ``Always`` when an ``expression`` is given):
   ``Always`` retries Failed and Error, ``OnFailure`` only Failed, ``OnError`` only
   Error, ``OnTransientError`` Failed/Error whose message looks transient (Argo's list
   of network/etcd texts, plus the ``TRANSIENT_ERROR_PATTERN`` regex). Not retried ->
   stop with the attempt's own message.
4. ``limit``: more attempts than ``limit + 1`` -> stop, ``No more retries left``.
5. ``expression``: evaluated like ``argoexpr.EvalBool`` with Argo's functions and the
   variables ``retries``, ``lastRetry.exitCode``, ``lastRetry.status``,
   ``lastRetry.duration``, ``lastRetry.message`` (all strings). False -> stop,
   ``retryStrategy.expression evaluated to false``; an evaluation error ends the node
   in ``Error`` with the error text.

Differences from the suggested API, because Argo needs them: :class:`RetryDecision`
also carries the ``phase`` the retry node ends in when not retrying (the last attempt's
phase, ``Succeeded`` or ``Error``), and ``delay_seconds`` applies to stop decisions too
(the controller waits out the backoff before it evaluates policy, limit and
expression). ``elapsed_seconds`` is the time from the start of the first attempt to the
end of the last one. Invalid strategy values raise :class:`RetryStrategyError` naming
the field (Argo fails the node with the same texts, but only when it reaches them).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.core.model import RetryStrategy
from agent.expr import ExprError, eval_bool
from agent.expr.errors import Panic
from agent.expr.gotime import TimeError, duration_string, parse_duration
from agent.expr.interp import compile_regexp
from agent.expr.values import INT64_MIN, go_float_v, wrap

__all__ = [
    "POLICIES",
    "LastAttempt",
    "RetryDecision",
    "RetryStrategyError",
    "decide_retry",
    "format_duration_seconds",
    "validate_retry_strategy",
]

POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")
_FAILED, _ERROR, _SUCCEEDED = "Failed", "Error", "Succeeded"
_FULFILLED = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})
_NS = 1_000_000_000

# Argo v4.1.2 util/errors/errors.go, isTransientErr, applied (processNodeRetries) to
# errors.InternalError(node.message): Cause() unwraps it to a plain string error, so only
# the checks that read err.Error() can match. The typed ones (apierr.*, *net.DNSError,
# *net.OpError, io.ErrUnexpectedEOF, *url.Error + "EOF", errTransient) never do, which is
# why "EOF", "unexpected EOF" and DNS "no such host" messages are not transient.
_TRANSIENT_TEXTS = (
    # isTransientNetworkErr, in its order
    "unexpected error when reading response body",
    "stream error when reading response body",
    "Connection closed by foreign host",
    "net/http: TLS handshake timeout",
    "i/o timeout",
    "connection timed out",
    "connection reset by peer",
    "http2: client connection lost",
    "http2: server sent GOAWAY and closed the connection",
    "request did not complete within requested timeout",
    "connect: connection refused",
    "invalid connection",
    # isTransientEtcdErr
    "etcdserver: leader changed",
    "etcdserver: request timed out",
    "etcdserver: too many requests",
    # isClientGoRateLimiterWaitErr
    "client rate limiter Wait returned an error",
    # isTransientSqbErr
    "upper: no more rows in",
)


class RetryStrategyError(ValueError):
    """A ``retryStrategy`` field with a value Argo cannot use; the message names the field."""


@dataclass(frozen=True, slots=True)
class LastAttempt:
    """The attempt that just ended, as the strings Argo exposes to expressions.

    ``exit_code`` is ``"-1"`` for nodes without one (HTTP and plugin nodes);
    ``duration`` is seconds as Go prints a float64 (see :func:`format_duration_seconds`).
    """

    exit_code: str = "-1"
    status: str = _FAILED
    duration: str = "0"
    message: str = ""


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What the controller does next.

    ``retry``: start another attempt after ``delay_seconds``. Otherwise the retry node
    ends in ``phase`` with ``reason`` as its message, after ``delay_seconds``.
    """

    retry: bool
    delay_seconds: float
    reason: str
    phase: str = ""


def format_duration_seconds(seconds: float) -> str:
    """``fmt.Sprint(duration.Seconds())``: how Argo fills ``lastRetry.duration``."""
    return go_float_v(float(seconds))


def _go_atoi(text: str) -> int | None:
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    return value if -(2**63) <= value <= 2**63 - 1 else None


def _int_or_string(value: str | int | None, field: str) -> int | None:
    """Argo's ``intstr.Int``: ints as is, strings through ``strconv.Atoi``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RetryStrategyError(f"{field}: value '{value}' cannot be resolved to an int")
    if isinstance(value, int):
        return value
    parsed = _go_atoi(value)
    if parsed is None:
        raise RetryStrategyError(f"{field}: value '{value}' cannot be resolved to an int")
    return parsed


def _duration_ns(value: str | int | None, field: str) -> int | None:
    """``wfv1.ParseStringToDuration``: a bare integer is seconds, else a Go duration."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RetryStrategyError(f"{field}: unable to parse {value} as a duration")
    if isinstance(value, int):
        return wrap(value * _NS)
    seconds = _go_atoi(value)
    if seconds is not None:
        return wrap(seconds * _NS)
    try:
        return int(parse_duration(value))
    except TimeError as exc:
        raise RetryStrategyError(f"{field}: unable to parse {value} as a duration: {exc}") from None


def _policy(strategy: RetryStrategy) -> str:
    if strategy.retry_policy:
        return strategy.retry_policy
    return "Always" if strategy.expression else "OnFailure"


def validate_retry_strategy(strategy: RetryStrategy) -> None:
    """Check every field up front; :class:`RetryStrategyError` names the first bad one."""
    _int_or_string(strategy.limit, "retryStrategy.limit")
    policy = _policy(strategy)
    if policy not in POLICIES:
        raise RetryStrategyError(
            f"retryStrategy.retryPolicy: {policy} is not a valid RetryPolicy"
            f" (one of {', '.join(POLICIES)})"
        )
    backoff = strategy.backoff
    if backoff is None:
        return
    if backoff.duration in (None, ""):
        raise RetryStrategyError(
            "retryStrategy.backoff.duration: no base duration specified for retryStrategy"
        )
    _duration_ns(backoff.duration, "retryStrategy.backoff.duration")
    _int_or_string(backoff.factor, "retryStrategy.backoff.factor")
    _duration_ns(backoff.max_duration, "retryStrategy.backoff.maxDuration")
    _duration_ns(backoff.cap, "retryStrategy.backoff.cap")


def _is_transient(message: str, pattern: str | None) -> bool:
    if any(text in message for text in _TRANSIENT_TEXTS):
        return True
    if pattern:
        try:
            return compile_regexp(pattern).search(message) is not None
        except Panic:
            return False  # Argo ignores an invalid TRANSIENT_ERROR_PATTERN
    return False


def _backoff_wait_ns(base: int, factor: int | None, attempts: int) -> int:
    wait = base
    if factor is not None and factor > 0:
        # time.Duration(math.Pow(factor, n-1)): a float converted to int64, then an
        # int64 multiplication that wraps, exactly as Go computes it.
        power = math.pow(float(factor), float(attempts - 1))
        multiplier = int(power) if power < 2**63 else INT64_MIN
        wait = wrap(base * multiplier)
    return wait


def decide_retry(
    strategy: RetryStrategy,
    *,
    retries_done: int,
    last: LastAttempt,
    elapsed_seconds: float,
    extra_env: Mapping[str, str] | None = None,
    transient_error_pattern: str | None = None,
) -> RetryDecision:
    """Decide what Argo's controller does after an attempt of a retried node ended.

    ``retries_done`` counts the retries already made (0 after the first attempt), so
    ``retries_done + 1`` attempts exist. ``transient_error_pattern`` defaults to the
    ``TRANSIENT_ERROR_PATTERN`` environment variable, as in the controller.
    """
    if retries_done < 0:
        raise ValueError(f"retries_done: must be >= 0, got {retries_done}")
    if last.status not in _FULFILLED:
        raise ValueError(f"last.status: the attempt has not finished (status {last.status!r})")
    validate_retry_strategy(strategy)
    attempts = retries_done + 1

    if last.status not in (_FAILED, _ERROR):
        return RetryDecision(retry=False, delay_seconds=0.0, reason="", phase=_SUCCEEDED)

    delay_ns = 0
    backoff = strategy.backoff
    if backoff is not None:
        elapsed_ns = int(elapsed_seconds * _NS)
        max_duration = _duration_ns(backoff.max_duration, "retryStrategy.backoff.maxDuration")
        if max_duration is not None and elapsed_ns > max_duration:
            return RetryDecision(False, 0.0, "Max duration limit exceeded", last.status)
        base = _duration_ns(backoff.duration, "retryStrategy.backoff.duration") or 0
        factor = _int_or_string(backoff.factor, "retryStrategy.backoff.factor")
        wait = _backoff_wait_ns(base, factor, attempts)
        cap = _duration_ns(backoff.cap, "retryStrategy.backoff.cap")
        if cap is not None and wait > cap:
            wait = cap
        if max_duration is not None and elapsed_ns + wait > max_duration:
            return RetryDecision(False, 0.0, "Backoff would exceed max duration limit", last.status)
        limit_value = _limit_int_value(strategy.limit)
        if wait > 0 and strategy.limit is not None and attempts <= limit_value:
            delay_ns = wait
    delay = delay_ns / _NS

    policy = _policy(strategy)
    retry_failed = policy in ("Always", "OnFailure")
    retry_error = policy in ("Always", "OnError")
    if policy == "OnTransientError":
        pattern = transient_error_pattern
        if pattern is None:
            pattern = os.environ.get("TRANSIENT_ERROR_PATTERN", "")
        retry_failed = retry_error = _is_transient(last.message, pattern)
    if (last.status == _FAILED and not retry_failed) or (last.status == _ERROR and not retry_error):
        return RetryDecision(False, delay, last.message, last.status)

    limit = _int_or_string(strategy.limit, "retryStrategy.limit")
    if limit is not None and attempts > limit:
        return RetryDecision(False, delay, "No more retries left", last.status)

    if strategy.expression:
        scope: dict[str, Any] = dict(extra_env or {})
        scope.update(
            {
                "retries": str(retries_done),
                "lastRetry.exitCode": last.exit_code,
                "lastRetry.status": last.status,
                "lastRetry.duration": last.duration,
                "lastRetry.message": last.message,
            }
        )
        try:
            proceed = eval_bool(strategy.expression, scope, argo=True)
        except ExprError as exc:
            return RetryDecision(False, delay, str(exc), _ERROR)
        if not proceed:
            return RetryDecision(
                False, delay, "retryStrategy.expression evaluated to false", last.status
            )

    reason = f"Backoff for {duration_string(delay_ns)}" if delay_ns else "retrying"
    return RetryDecision(True, delay, reason)


def _limit_int_value(limit: str | int | None) -> int:
    """``IntOrString.IntValue()``: a string that is not a number counts as 0."""
    if limit is None:
        return 0
    if isinstance(limit, int):
        return limit
    parsed = _go_atoi(limit)
    return parsed if parsed is not None else 0
