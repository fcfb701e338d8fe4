"""``retryStrategy`` decisions against Argo's controller rules, case by case.

Sources cited in ``src``:
  OP    = Argo workflow/controller/operator.go: processNodeRetries (and its backoff block)
  DOCS  = Argo docs/retries.md
  VARS  = Argo docs/variables.md#retrystrategy
  TYPES = Argo pkg/apis/workflow/v1alpha1/workflow_types.go (RetryPolicyActual, Backoff)
  SCOPE = Argo operator.go: buildRetryStrategyLocalScope
  ERRS  = Argo util/errors/errors.go (isTransientErr)
  INTS  = Argo util/intstr/parametrizable.go (Int), v1alpha1.ParseStringToDuration
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.core.model import Backoff, RetryStrategy
from agent.retry import (
    LastAttempt,
    RetryDecision,
    RetryStrategyError,
    decide_retry,
    format_duration_seconds,
    validate_retry_strategy,
)

OP = "argo workflow/controller/operator.go: processNodeRetries"
DOCS = "argo docs/retries.md"
VARS = "argo docs/variables.md#retrystrategy"
TYPES = "argo workflow_types.go: RetryPolicyActual"
SCOPE = "argo operator.go: buildRetryStrategyLocalScope"
ERRS = "argo util/errors/errors.go: isTransientErr"
INTS = "argo util/intstr/parametrizable.go + ParseStringToDuration"

FAILED = LastAttempt(exit_code="-1", status="Failed", duration="0.5", message="boom")
ERRORED = LastAttempt(exit_code="-1", status="Error", duration="0.5", message="pod deleted")


@dataclass(frozen=True)
class Case:
    name: str
    strategy: RetryStrategy
    want: RetryDecision
    src: str
    retries_done: int = 0
    last: LastAttempt = FAILED
    elapsed: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)
    pattern: str | None = ""

    def __str__(self) -> str:
        return self.name


def retry(delay: float = 0.0, reason: str = "retrying") -> RetryDecision:
    return RetryDecision(True, delay, reason)


def stop(reason: str, phase: str = "Failed", delay: float = 0.0) -> RetryDecision:
    return RetryDecision(False, delay, reason, phase)


def rs(**fields: Any) -> RetryStrategy:
    return RetryStrategy.model_validate(fields)


NO_MORE = "No more retries left"
EXPR_FALSE = "retryStrategy.expression evaluated to false"

CASES = [
    Case("no limit retries a failure", rs(), retry(), f"{TYPES} (OnFailure default)"),
    Case("limit 2, first failure", rs(limit=2), retry(), f"{DOCS} (limit)", retries_done=0),
    Case("limit 2, second failure", rs(limit=2), retry(), f"{DOCS} (limit)", retries_done=1),
    Case(
        "limit 2, third failure",
        rs(limit=2),
        stop(NO_MORE),
        f"{OP} (attempts > limit)",
        retries_done=2,
    ),
    Case("limit as a string", rs(limit="10"), retry(), f'{DOCS} (limit: "10")', retries_done=9),
    Case(
        "limit string exhausted",
        rs(limit="10"),
        stop(NO_MORE),
        f'{DOCS} (limit: "10")',
        retries_done=10,
    ),
    Case("limit 0 never retries", rs(limit=0), stop(NO_MORE), f"{OP} (attempts > limit)"),
    Case(
        "default policy skips errors",
        rs(limit=3),
        stop("pod deleted", "Error"),
        f"{DOCS}#retry-policies (OnFailure)",
        last=ERRORED,
    ),
    Case(
        "Always retries errors",
        rs(limit=3, retryPolicy="Always"),
        retry(),
        f"{DOCS}#retry-policies (Always)",
        last=ERRORED,
    ),
    Case(
        "Always retries failures",
        rs(limit=3, retryPolicy="Always"),
        retry(),
        f"{DOCS}#retry-policies (Always)",
    ),
    Case(
        "OnError skips failures",
        rs(limit=3, retryPolicy="OnError"),
        stop("boom"),
        f"{OP} (OnError: retryOnFailed=false)",
    ),
    Case(
        "OnError retries errors",
        rs(limit=3, retryPolicy="OnError"),
        retry(),
        f"{DOCS}#retry-policies (OnError)",
        last=ERRORED,
    ),
    Case(
        "OnFailure retries failures",
        rs(limit=3, retryPolicy="OnFailure"),
        retry(),
        f"{DOCS}#retry-policies (OnFailure)",
    ),
    Case(
        "OnTransientError retries a reset connection",
        rs(limit=3, retryPolicy="OnTransientError"),
        retry(),
        ERRS,
        last=LastAttempt(status="Failed", message="read tcp: connection reset by peer"),
    ),
    Case(
        "OnTransientError retries an i/o timeout error",
        rs(limit=3, retryPolicy="OnTransientError"),
        retry(),
        ERRS,
        last=LastAttempt(status="Error", message="dial tcp 10.0.0.1:80: i/o timeout"),
    ),
    Case(
        "OnTransientError skips others",
        rs(limit=3, retryPolicy="OnTransientError"),
        stop("boom"),
        ERRS,
    ),
    Case(
        "OnTransientError honours TRANSIENT_ERROR_PATTERN",
        rs(limit=3, retryPolicy="OnTransientError"),
        retry(),
        f"{DOCS}#retry-policies (TRANSIENT_ERROR_PATTERN)",
        pattern="bo+m",
    ),
    Case(
        "success ends the node",
        rs(limit=3),
        stop("", "Succeeded"),
        f"{OP} (!FailedOrError -> Succeeded)",
        last=LastAttempt(status="Succeeded"),
    ),
    Case(
        "skipped counts as success",
        rs(limit=3),
        stop("", "Succeeded"),
        f"{OP} (!FailedOrError -> Succeeded)",
        last=LastAttempt(status="Skipped"),
    ),
    Case(
        "expression true retries",
        rs(limit=5, expression="asInt(lastRetry.exitCode) > 1"),
        retry(),
        f"{DOCS}#conditional-retries",
        last=LastAttempt(exit_code="2", status="Failed"),
    ),
    Case(
        "expression false stops",
        rs(limit=5, expression="asInt(lastRetry.exitCode) > 1"),
        stop(EXPR_FALSE),
        f"{DOCS}#conditional-retries",
        last=LastAttempt(exit_code="1", status="Failed"),
    ),
    Case(
        "expression alone makes errors retryable",
        rs(expression="lastRetry.status == 'Error'"),
        retry(),
        f"{DOCS}#retry-policies (3.5+: Always with an expression)",
        last=ERRORED,
    ),
    Case(
        "explicit policy AND expression",
        rs(retryPolicy="OnFailure", expression="true"),
        stop("pod deleted", "Error"),
        f"{DOCS}#conditional-retries (logical and)",
        last=ERRORED,
    ),
    Case(
        "string comparison as the docs suggest",
        rs(expression="lastRetry.exitCode != '2'"),
        stop(EXPR_FALSE),
        VARS,
        last=LastAttempt(exit_code="2", status="Failed"),
    ),
    Case(
        "retries counts earlier retries",
        rs(expression="asInt(retries) < 2"),
        retry(),
        SCOPE,
        retries_done=1,
    ),
    Case(
        "retries stops the loop",
        rs(expression="asInt(retries) < 2"),
        stop(EXPR_FALSE),
        SCOPE,
        retries_done=2,
    ),
    Case(
        "exit code defaults to -1",
        rs(expression="lastRetry.exitCode == '-1'"),
        retry(),
        f"{SCOPE} (exitCode -1)",
        last=LastAttempt(),
    ),
    Case(
        "message is in scope",
        rs(expression="lastRetry.message contains 'timeout'"),
        retry(),
        f"{DOCS}#conditional-retries (lastRetry.message)",
        last=LastAttempt(status="Failed", message="request timeout"),
    ),
    Case(
        "duration is seconds as a string",
        rs(expression="asFloat(lastRetry.duration) < 5"),
        retry(),
        f"{DOCS}#conditional-retries (lastRetry.duration)",
        last=LastAttempt(status="Failed", duration="1.5"),
    ),
    Case(
        "expression sees extra variables",
        rs(expression="inputs.parameters.mode == 'retry'"),
        retry(),
        f"{VARS} (expression tags)",
        extra={"inputs.parameters.mode": "retry"},
    ),
    Case(
        "expression type error ends the node in Error",
        rs(expression="retries + 1 > 2"),
        stop(
            "invalid operation: + (mismatched types string and int) (1:9)\n"
            " | retries + 1 > 2\n | ........^",
            "Error",
        ),
        f"{VARS} (variables are strings)",
    ),
    Case(
        "expression run error is wrapped like EvalBool",
        rs(expression="lastRetry.exitCode > 1"),
        stop(
            "unable to evaluate expression 'lastRetry.exitCode > 1':"
            " invalid operation: string > int (1:20)\n"
            " | lastRetry.exitCode > 1\n | ...................^",
            "Error",
        ),
        "argo util/expr/argoexpr/eval.go",
    ),
    Case(
        "expression must be a bool",
        rs(expression="lastRetry.exitCode"),
        stop("unable to cast expression result '-1' to bool", "Error"),
        "argo util/expr/argoexpr/eval.go",
    ),
    Case(
        "backoff 1st wait is duration",
        rs(limit=5, backoff={"duration": "1", "factor": "2"}),
        retry(1.0, "Backoff for 1s"),
        f"{OP} (duration * factor^(n-1))",
    ),
    Case(
        "backoff 2nd wait doubles",
        rs(limit=5, backoff={"duration": "1", "factor": "2"}),
        retry(2.0, "Backoff for 2s"),
        f"{OP} (duration * factor^(n-1))",
        retries_done=1,
    ),
    Case(
        "backoff 4th wait",
        rs(limit=5, backoff={"duration": "1", "factor": "2"}),
        retry(8.0, "Backoff for 8s"),
        f"{OP} (duration * factor^(n-1))",
        retries_done=3,
    ),
    Case(
        "backoff without factor",
        rs(limit=5, backoff={"duration": "2s"}),
        retry(2.0, "Backoff for 2s"),
        f"{OP} (no factor)",
        retries_done=3,
    ),
    Case(
        "backoff duration in minutes",
        rs(limit=5, backoff={"duration": "1m"}),
        retry(60.0, "Backoff for 1m0s"),
        f"{INTS} (Go durations)",
    ),
    Case(
        "backoff factor 0 is ignored",
        rs(limit=5, backoff={"duration": "3", "factor": 0}),
        retry(3.0, "Backoff for 3s"),
        f"{OP} (factor > 0 only)",
        retries_done=2,
    ),
    Case(
        "backoff cap",
        rs(limit=9, backoff={"duration": "1", "factor": 2, "cap": "5s"}),
        retry(5.0, "Backoff for 5s"),
        f"{OP} (Backoff.Cap)",
        retries_done=3,
    ),
    Case(
        "past maxDuration stops",
        rs(limit=9, backoff={"duration": "1", "maxDuration": "1m"}),
        stop("Max duration limit exceeded"),
        f"{OP} (maxDuration)",
        elapsed=61.0,
    ),
    Case(
        "backoff beyond maxDuration stops",
        rs(limit=9, backoff={"duration": "4", "maxDuration": "10"}),
        stop("Backoff would exceed max duration limit"),
        f"{OP} (waitingDeadline after maxDurationDeadline)",
        elapsed=8.0,
    ),
    Case(
        "maxDuration as seconds",
        rs(limit=9, backoff={"duration": "1", "maxDuration": 30}),
        retry(1.0, "Backoff for 1s"),
        INTS,
        elapsed=20.0,
    ),
    Case(
        "backoff without limit does not wait",
        rs(backoff={"duration": "5"}),
        retry(),
        f"{OP} (waits only when limit is set)",
    ),
    Case(
        "exhausted limit does not wait",
        rs(limit=1, backoff={"duration": "5"}),
        stop(NO_MORE),
        f"{OP} (waits only within the limit)",
        retries_done=1,
    ),
    Case(
        "backoff is waited before the policy stops",
        rs(limit=3, retryPolicy="OnError", backoff={"duration": "2"}),
        stop("boom", delay=2.0),
        f"{OP} (backoff precedes the policy check)",
    ),
    Case(
        "overflowing backoff wraps like Go",
        rs(limit=50, backoff={"duration": "1h", "factor": 10}),
        retry(),
        f"{OP} (time.Duration(math.Pow(...)) arithmetic)",
        retries_done=20,
    ),
]

INVALID = [
    (rs(limit="abc"), "retryStrategy.limit: value 'abc' cannot be resolved to an int", INTS),
    (
        rs(retryPolicy="Sometimes"),
        "retryStrategy.retryPolicy: Sometimes is not a valid RetryPolicy",
        OP,
    ),
    (
        rs(backoff={"factor": 2}),
        "retryStrategy.backoff.duration: no base duration specified for retryStrategy",
        OP,
    ),
    (
        rs(backoff={"duration": "1x"}),
        "retryStrategy.backoff.duration: unable to parse 1x as a duration",
        INTS,
    ),
    (
        rs(backoff={"duration": "1", "factor": "two"}),
        "retryStrategy.backoff.factor: value 'two' cannot be resolved to an int",
        INTS,
    ),
    (
        rs(backoff={"duration": "1", "maxDuration": "soon"}),
        "retryStrategy.backoff.maxDuration: unable to parse soon",
        INTS,
    ),
    (
        rs(backoff={"duration": "1", "cap": "-"}),
        "retryStrategy.backoff.cap: unable to parse -",
        INTS,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_decision(case: Case) -> None:
    got = decide_retry(
        case.strategy,
        retries_done=case.retries_done,
        last=case.last,
        elapsed_seconds=case.elapsed,
        extra_env=case.extra,
        transient_error_pattern=case.pattern,
    )
    assert got == case.want, f"{case.name}: {got} [{case.src}]"


@pytest.mark.parametrize(("strategy", "message", "src"), INVALID, ids=[m for _, m, _ in INVALID])
def test_invalid_strategy_names_the_field(strategy: RetryStrategy, message: str, src: str) -> None:
    with pytest.raises(RetryStrategyError) as info:
        validate_retry_strategy(strategy)
    assert message in str(info.value), src
    with pytest.raises(RetryStrategyError):
        decide_retry(strategy, retries_done=0, last=FAILED, elapsed_seconds=0)


def test_unfinished_attempt_is_rejected() -> None:
    """src: argo operator.go: processNodeRetries (waits for a fulfilled child)."""
    with pytest.raises(ValueError, match=r"last\.status"):
        decide_retry(rs(), retries_done=0, last=LastAttempt(status="Running"), elapsed_seconds=0)
    with pytest.raises(ValueError, match="retries_done"):
        decide_retry(rs(), retries_done=-1, last=FAILED, elapsed_seconds=0)


def test_transient_pattern_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """src: argo docs/retries.md#retry-policies (TRANSIENT_ERROR_PATTERN env var)."""
    strategy = rs(limit=2, retryPolicy="OnTransientError")
    monkeypatch.setenv("TRANSIENT_ERROR_PATTERN", "^bo")
    assert decide_retry(strategy, retries_done=0, last=FAILED, elapsed_seconds=0).retry
    monkeypatch.delenv("TRANSIENT_ERROR_PATTERN")
    assert not decide_retry(strategy, retries_done=0, last=FAILED, elapsed_seconds=0).retry


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1.5, "1.5"), (2.0, "2"), (0.00001, "1e-05"), (1234567.0, "1.234567e+06"), (0.25, "0.25")],
)
def test_duration_is_formatted_like_go(seconds: float, text: str) -> None:
    """src: argo operator.go: buildRetryStrategyLocalScope (fmt.Sprint of Seconds())."""
    assert format_duration_seconds(seconds) == text


def test_a_full_retry_sequence() -> None:
    """src: argo examples/retry-backoff.yaml semantics via processNodeRetries."""
    strategy = rs(limit=3, retryPolicy="Always", backoff={"duration": "1", "factor": 2})
    delays = []
    done = 0
    while True:
        decision = decide_retry(
            strategy, retries_done=done, last=FAILED, elapsed_seconds=done * 2.0
        )
        if not decision.retry:
            break
        delays.append(decision.delay_seconds)
        done += 1
    assert delays == [1.0, 2.0, 4.0]
    assert decision == stop(NO_MORE)
    assert isinstance(Backoff(duration="1").duration, str)


def test_case_count() -> None:
    assert len(CASES) + len(INVALID) >= 50


# Argo v4.1.2 util/errors/errors.go, isTransientErr on errors.InternalError(node.message)
# (operator.go processNodeRetries): one row per substring, and the node messages that only
# Go's typed checks would catch, which a message can never satisfy.
TRANSIENT_MESSAGES = [
    ("unexpected error when reading response body", True, "isTransientNetworkErr"),
    ("stream error when reading response body", True, "isTransientNetworkErr"),
    ("Connection closed by foreign host", True, "isTransientNetworkErr"),
    ('Get "https://h/": net/http: TLS handshake timeout', True, "isTransientNetworkErr"),
    ('Get "http://h/": dial tcp 127.0.0.1:80: i/o timeout', True, "isTransientNetworkErr"),
    ("dial tcp 10.0.0.1:80: connect: connection timed out", True, "isTransientNetworkErr"),
    ("read tcp 127.0.0.1:80: read: connection reset by peer", True, "isTransientNetworkErr"),
    ("http2: client connection lost", True, "isTransientNetworkErr"),
    ("http2: server sent GOAWAY and closed the connection", True, "isTransientNetworkErr"),
    ("request did not complete within requested timeout", True, "isTransientNetworkErr"),
    (
        'Get "http://h/": dial tcp 127.0.0.1:1: connect: connection refused',
        True,
        "isTransientNetworkErr",
    ),
    ("invalid connection", True, "isTransientNetworkErr"),
    ("etcdserver: leader changed", True, "isTransientEtcdErr"),
    ("etcdserver: request timed out", True, "isTransientEtcdErr"),
    ("etcdserver: too many requests", True, "isTransientEtcdErr"),
    ("client rate limiter Wait returned an error", True, "isClientGoRateLimiterWaitErr"),
    ("upper: no more rows in result set", True, "isTransientSqbErr"),
    # the bare text lacks "connect: "
    ("dial tcp 127.0.0.1:1: connection refused", False, "isTransientNetworkErr"),
    ('Get "http://h/": EOF', False, "errors.As(*url.Error) is typed"),
    ("unexpected EOF", False, "errors.Is(io.ErrUnexpectedEOF) is typed"),
    ("dial tcp: lookup h on 10.96.0.10:53: no such host", False, "*net.DNSError is typed"),
    ('Get "http://h/": context deadline exceeded', False, "not in the list"),
    ("x509: certificate signed by unknown authority", False, "not in the list"),
    ("received non-2xx response code: 503", False, "apierr.IsServiceUnavailable is typed"),
]


@pytest.mark.parametrize(
    ("message", "transient", "src"), TRANSIENT_MESSAGES, ids=[m for m, _, _ in TRANSIENT_MESSAGES]
)
def test_transient_messages_are_argos_list(message: str, transient: bool, src: str) -> None:
    strategy = rs(limit=1, retryPolicy="OnTransientError")
    last = LastAttempt(status="Failed", message=message)
    got = decide_retry(
        strategy, retries_done=0, last=last, elapsed_seconds=0, transient_error_pattern=""
    )
    assert got.retry is transient, f"{message!r}: {ERRS} ({src})"


@pytest.mark.parametrize(
    ("pattern", "transient"),
    [("bo+m", True), ("^boom$", True), ("^oom", False), ("(", False), ("", False)],
)
def test_transient_error_pattern_is_an_unanchored_re2_search(pattern: str, transient: bool) -> None:
    """src: argo util/errors/errors.go matchTransientErrPattern (regexp.MatchString on
    err.Error(); an invalid pattern's error is ignored, so it matches nothing)."""
    strategy = rs(limit=1, retryPolicy="OnTransientError")
    got = decide_retry(
        strategy, retries_done=0, last=FAILED, elapsed_seconds=0, transient_error_pattern=pattern
    )
    assert got.retry is transient
