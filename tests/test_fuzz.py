"""Hypothesis fuzzing of the template model and the executor: any input, one NodeResult.

Two properties, on arbitrary JSON-ish input shaped like Argo templates (field names the
model knows, values of every JSON type, injection characters, odd URLs):

* :func:`agent.core.model.parse_template` returns a ``Template`` or raises ``TemplateError``
  (``invalid template: ...``), nothing else; what it parsed serialises (``dump``) to JSON
  that parses again.
* :meth:`agent.executor.Executor.run` returns a ``NodeResult`` for any template, against a
  real local target (which may answer, fail, reset, or send garbage) or invalid URLs,
  and never needs its last line of defence (the catch-all that turns an unexpected
  exception into ``error processing task: <Exception>`` and logs a traceback).

Every URL the strategies build points at 127.0.0.1 (a counting target or a closed port),
at a denied address (never connected to), or is not a valid URL at all: no host name is
ever generated, so no example can cause a DNS lookup. Example counts are bounded so the
module runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.core.model import NodePhase, NodeResult, Template, TemplateError, dump, parse_template
from agent.core.refs import TaskRef
from agent.executor.executor import Executor
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import ExecutorSettings
from tests.agentproc import free_port
from tests.faultkit import CountingTarget, Mode

TARGET_MODES: tuple[Mode, ...] = ("ok", "status", "huge", "reset", "close", "garbage", "badchunk")
REF = TaskRef(namespace="argo", taskset="fuzz", node_id="fuzz-1", workflow_uid="uid-1")
RESULT_CAP = 1000

# -- strategies -------------------------------------------------------------------------

FIELD_NAMES = (
    "name",
    "http",
    "plugin",
    "retryStrategy",
    "url",
    "method",
    "headers",
    "value",
    "valueFrom",
    "secretKeyRef",
    "key",
    "optional",
    "body",
    "bodyFrom",
    "bytes",
    "timeoutSeconds",
    "successCondition",
    "insecureSkipVerify",
    "limit",
    "retryPolicy",
    "expression",
    "backoff",
    "duration",
    "factor",
    "maxDuration",
    "container",
)
TRICKY_TEXT = st.sampled_from(
    ["", " ", "\r\n", "a\r\nX-Injected: 1", "\x00", "\x7f", "ü", "日本", "%", "%zz", "'", '"', "\\"]
)
TEXT = st.text(max_size=16) | TRICKY_TEXT

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
_keys = st.sampled_from(FIELD_NAMES) | TEXT
#: any JSON value, with keys biased towards the names the model knows
JSON = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)
#: JSON values that are never strings (a URL field must not get free text: DNS)
NON_STRING = JSON.filter(lambda value: not isinstance(value, str))

METHODS = st.sampled_from(
    ["", "GET", "get", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "GE T", "G\r\nET", "Ü"]
)
CONDITIONS = (
    st.sampled_from(
        [
            "response.statusCode == 200",
            "response.statusCode >= 200 && response.statusCode < 300",
            "response.body contains 'node'",
            "len(response.headers) > 0",
            "request.bodyBytes == nil",
            "request.method == 'POST' || response.statusCode == 404",
            "response.headers['Content-Type'][0] startsWith 'text/'",
            "not (response.statusCode in [500, 503])",
            "response.statusCode ==",
            "response.statusCode",
            "1 / 0 == 1",
            "(" * 200 + "true" + ")" * 200,
            "nil.x",
        ]
    )
    | TEXT
)


@st.composite
def urls(draw: st.DrawFn, target: CountingTarget, closed_port: int) -> str:
    """A target URL (any mode), a closed local port, a denied address, or not a URL."""
    kind = draw(st.sampled_from(["target", "target", "target", "closed", "denied", "broken"]))
    if kind == "target":
        mode = draw(st.sampled_from(TARGET_MODES))
        url = target.node_url(
            "fuzz",
            mode=mode,
            code=draw(st.sampled_from([200, 201, 204, 301, 404, 500])),
            size=draw(st.sampled_from([10, RESULT_CAP + 1, 5000])),
        )
        return url + draw(st.sampled_from(["", "&x=1", "#frag", "&q=%20", "&u=ü"]))
    if kind == "closed":
        return f"http://127.0.0.1:{closed_port}/x"
    if kind == "denied":
        return draw(st.sampled_from(["http://169.254.169.254/", "http://[fd00:ec2::254]/"]))
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "ftp", "file", "", "javascript"]))
    host = draw(st.sampled_from(["127.0.0.1", "[::1]", "[::1", "", "169.254.169.254"]))
    port = draw(
        st.sampled_from(["", ":", ":0", f":{closed_port}", ":65536", ":99999", ":-1", ":x"])
    )
    path = draw(st.sampled_from(["", "/", "/a b", "/%zz", "/\r\n", "?q", "#f"]))
    return f"{scheme}://{host}{port}{path}" if scheme else f"{host}{port}{path}"


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` nine times in ten: most examples then get past parsing to the request."""
    return st.integers(0, 9).flatmap(lambda roll: bad if roll == 0 else good)


@st.composite
def templates(draw: st.DrawFn, target: CountingTarget, closed_port: int) -> Any:
    """Mostly HTTP templates with one or two odd fields; sometimes plugins or junk."""
    kind = draw(st.sampled_from(["http"] * 8 + ["plugin", "junk"]))
    if kind == "junk":
        return draw(NON_STRING)
    if kind == "plugin":
        return {"name": "p", "plugin": draw(st.dictionaries(TEXT, JSON, max_size=2) | NON_STRING)}
    secret = st.fixed_dictionaries(
        {},
        optional={"secretKeyRef": st.fixed_dictionaries({}, optional={"name": TEXT, "key": TEXT})},
    )
    header = st.fixed_dictionaries(
        {
            "name": _mostly(
                st.sampled_from(["X-A", "Host", "Content-Length", "Accept-Encoding", "x-b"]), TEXT
            )
        },
        optional={
            "value": TEXT,
            "valueFrom": _mostly(secret, NON_STRING),
        },
    )
    http = st.fixed_dictionaries(
        {"url": _mostly(urls(target, closed_port), NON_STRING)},
        optional={
            "method": _mostly(METHODS, NON_STRING),
            "headers": _mostly(st.lists(_mostly(header, NON_STRING), max_size=3), NON_STRING),
            "body": _mostly(TEXT, NON_STRING),
            "bodyFrom": _mostly(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "bytes": _mostly(st.binary(max_size=16).map(_base64), TEXT | NON_STRING)
                    },
                ),
                NON_STRING,
            ),
            "timeoutSeconds": _mostly(st.integers(1, 3), st.integers(-2, 0) | NON_STRING),
            "successCondition": _mostly(CONDITIONS, NON_STRING),
            "insecureSkipVerify": _mostly(st.booleans(), NON_STRING),
            "extraField": JSON,
        },
    )
    template: dict[str, Any] = {
        "name": draw(_mostly(TEXT, NON_STRING)),
        "http": draw(_mostly(http, NON_STRING)),
    }
    if draw(st.integers(0, 9)) == 0:
        template["retryStrategy"] = draw(JSON)
    return template


# -- the model --------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(raw=JSON | templates(CountingTarget(), 9))
# Argo serialises HTTPHeader.name and HTTP.url even when empty (no omitempty in Go).
@example(raw={"http": {"url": "http://127.0.0.1/", "headers": [{"name": ""}]}})
@example(raw={"http": {"url": ""}})
def test_parse_template_returns_a_template_or_a_template_error(raw: Any) -> None:
    try:
        parsed = parse_template(raw)
    except TemplateError as exc:
        assert str(exc).startswith("invalid template: ")
        return
    assert isinstance(parsed, Template)
    wire = json.loads(json.dumps(dump(parsed)))  # what a plugin would receive
    again = parse_template(wire)
    assert isinstance(again, Template)
    assert dump(again) == wire
    # The round trip keeps what the template is (an HTTP one stays an HTTP one).
    assert (again.http is None, again.plugin is None) == (
        parsed.http is None,
        parsed.plugin is None,
    )


# -- the executor -----------------------------------------------------------------------


class _Unexpected(logging.Handler):
    """Collects the executor's "unexpected error" records (its last line of defence)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def counting() -> Iterator[CountingTarget]:
    with CountingTarget() as server:
        yield server


async def _executor() -> Executor:
    return Executor(
        settings=ExecutorSettings(
            ca_dir=None, default_timeout_seconds=3.0, max_result_bytes=RESULT_CAP
        ),
        secrets=StaticSecretResolver({("argo", "s"): {"k": "value"}}),
    )


def test_executor_turns_any_template_into_a_node_result(counting: CountingTarget) -> None:
    closed_port = free_port()
    loop = asyncio.new_event_loop()
    unexpected = _Unexpected()
    logger = logging.getLogger("agent.executor.executor")
    logger.addHandler(unexpected)
    executor = loop.run_until_complete(_executor())
    try:

        @settings(
            max_examples=150,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(template=templates(counting, closed_port))
        # Inputs that once needed the catch-all, kept as fixed examples.
        @example(template={"http": {"url": "http://127.0.0.1:99999/x"}})
        @example(template={"http": {"url": "http://[::1]:-1"}})
        def check(template: Any) -> None:
            unexpected.records.clear()
            result = loop.run_until_complete(executor.run(template, ref=REF))
            assert isinstance(result, NodeResult)
            assert result.phase in (NodePhase.SUCCEEDED, NodePhase.FAILED, NodePhase.ERROR)
            if result.phase != NodePhase.SUCCEEDED:
                assert result.message, result
            if result.outputs is not None and result.outputs.result is not None:
                assert len(result.outputs.result.encode()) <= RESULT_CAP
            assert not unexpected.records, (
                f"the executor's catch-all fired: {result.message!r} for {template!r}"
            )

        check()
    finally:
        logger.removeHandler(unexpected)
        loop.run_until_complete(executor.aclose())
        loop.close()
