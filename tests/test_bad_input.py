"""The bad input catalogue: malformed templates and tasksets, and what each one produces.

Every row runs through the REAL agent process against the API simulator; a good task
sits next to each bad one (in the same taskset) and must succeed, and a taskset created
after all of them must be served too: one bad input fails its own node, never the agent.

Two tables:

* :data:`TEMPLATE_ROWS` -- one ``spec.tasks`` entry each: wrong types, missing fields,
  invalid URLs, unsupported schemes, header injection (CR/LF), invalid base64, oversized
  bodies, deeply nested or huge ``successCondition`` expressions, unknown fields, a task
  that is not an object. The expected entry is the node's exact ``status.nodes`` value
  (``@URL@`` stands for the row's own counting-target URL, ``@BODY@`` for what that
  target answers), and whether the request may reach the target at all.
* :data:`TASKSET_ROWS` -- a whole taskset that is malformed (``spec.tasks`` not a map,
  ``status.nodes`` garbage, left-over claims): the node results, or the log line, each
  one produces.

One agent serves the whole module (a module-scoped event loop), so the table costs one
start-up.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from agent_sim import ApiSimulator

from tests.agentproc import TOKEN, AgentProcess, taskset
from tests.faultkit import CountingTarget, answer_body

pytestmark = pytest.mark.asyncio(loop_scope="module")

NS = "argo"
TS = "workflowtasksets"
URL = "@URL@"  # replaced by the row's counting-target URL
BODY = "@BODY@"  # replaced by what the counting target answers for the row's node
_FULFILLED = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})


OK: dict[str, Any] = {"phase": "Succeeded", "outputs": {"result": BODY}}


def _failed(message: str) -> dict[str, Any]:
    return {"phase": "Failed", "message": message}


def _error(message: str) -> dict[str, Any]:
    return {"phase": "Error", "message": f"error processing task: {message}"}


def _http(**fields: Any) -> dict[str, Any]:
    return {"name": "http", "http": {"url": URL, **fields}}


class Pattern(str):
    """An expected message given as a regular expression (full match)."""


@dataclass(frozen=True)
class Row:
    """One bad template: the ``spec.tasks`` entry and the node status it must produce."""

    id: str
    task: Any
    expected: Mapping[str, Any]
    sent: bool = False  # whether its request may reach the target


_NESTING = "compilation failed: expression nesting exceeds 1100 levels"
_LONG_LITERAL = "y" * (1 << 20)

# Go's *url.Error prefix for a request to the target (net/url/url.go (*Error).Error).
URL_ERROR = r'Get "http://127\.0\.0\.1:\d+/[^"]*": '

TEMPLATE_ROWS: list[Row] = [
    # -- the URL ------------------------------------------------------------------------
    Row(
        "url-missing",
        {"http": {}},
        _failed('Get "": unsupported protocol scheme ""'),
    ),
    Row(
        "url-wrong-type",
        {"http": {"url": 42}},
        _failed("invalid template: http.url: Input should be a valid string"),
    ),
    Row(
        "url-unparsable",
        {"http": {"url": "http://[::1"}},
        _failed("invalid template: http.url: cannot parse 'http://[::1': Invalid port: ':1'"),
    ),
    Row(
        "url-port-out-of-range",
        {"http": {"url": "http://127.0.0.1:99999/x"}},
        _failed('parse "http://127.0.0.1:99999/x": invalid port ":99999" after host'),
    ),
    Row(
        "url-space-in-host",
        {"http": {"url": "http://127.0.0.1 /x"}},
        _failed('parse "http://127.0.0.1 /x": invalid character " " in host name'),
    ),
    Row(
        "url-scheme-ftp",
        {"http": {"url": "ftp://127.0.0.1/x"}},
        _failed('Get "ftp://127.0.0.1/x": unsupported protocol scheme "ftp"'),
    ),
    Row(
        "url-scheme-file",
        {"http": {"url": "file:///etc/passwd"}},
        _failed('Get "file:///etc/passwd": unsupported protocol scheme "file"'),
    ),
    Row(
        "url-scheme-missing",
        {"http": {"url": "127.0.0.1/x"}},
        _failed('Get "127.0.0.1/x": unsupported protocol scheme ""'),
    ),
    Row(
        "url-no-host",
        {"http": {"url": "http:///x"}},
        _failed('Get "http:///x": http: no Host in request URL'),
    ),
    Row(
        "url-control-character",
        {"http": {"url": URL + "\r\nX-Injected: 1"}},
        _failed(
            Pattern(
                r'parse "http://[^"]*\\r\\nX-Injected: 1": '
                r"net/url: invalid control character in URL"
            )
        ),
    ),
    Row(
        "url-cloud-metadata",
        {"http": {"url": "http://169.254.169.254/latest/meta-data/"}},
        _failed(
            'Get "http://169.254.169.254/latest/meta-data/": outbound policy: destination '
            "169.254.169.254 is denied by rule 169.254.169.254/32 (deny_networks)"
        ),
    ),
    # -- headers (injection) ------------------------------------------------------------
    Row(
        "header-value-crlf",
        _http(headers=[{"name": "X-A", "value": "v\r\nX-Injected: 1"}]),
        _failed(Pattern(URL_ERROR + 'net/http: invalid header field value for "X-A"')),
    ),
    Row(
        "header-value-nul",
        _http(headers=[{"name": "X-Ok", "value": "fine"}, {"name": "X-B", "value": "a\x00b"}]),
        _failed(Pattern(URL_ERROR + 'net/http: invalid header field value for "X-B"')),
    ),
    Row(
        "header-name-space",
        _http(headers=[{"name": "X A", "value": "v"}]),
        _failed(Pattern(URL_ERROR + 'net/http: invalid header field name "X A"')),
    ),
    Row(
        "header-name-crlf",
        _http(headers=[{"name": "X-A\r\nX-Injected", "value": "v"}]),
        _failed(Pattern(URL_ERROR + r'net/http: invalid header field name "X-A\\r\\nX-Injected"')),
    ),
    Row(
        "headers-not-a-list",
        _http(headers="X-A: 1"),
        _failed("invalid template: http.headers: Input should be a valid list"),
    ),
    Row(
        "header-without-name",
        _http(headers=[{"value": "v"}]),
        _failed("invalid template: http.headers.0.name: Field required"),
    ),
    Row(
        "header-secret-without-key",
        _http(headers=[{"name": "X-A", "valueFrom": {"secretKeyRef": {"name": "s"}}}]),
        _failed("invalid template: http.headers.0.valueFrom.secretKeyRef.key: Field required"),
    ),
    # -- method -------------------------------------------------------------------------
    Row(
        "method-with-space",
        _http(method="GE T"),
        _failed('net/http: invalid method "GE T"'),
    ),
    Row(
        "method-crlf",
        _http(method="GET\r\nX-Injected: 1"),
        _failed('net/http: invalid method "GET\\r\\nX-Injected: 1"'),
    ),
    Row(
        "method-wrong-type",
        _http(method=5),
        _failed("invalid template: http.method: Input should be a valid string"),
    ),
    # -- body ---------------------------------------------------------------------------
    Row(
        "body-base64-invalid",
        _http(method="POST", bodyFrom={"bytes": "!!!not-base64"}),
        _failed(
            "invalid template: http.bodyFrom.bytes: invalid base64: Only base64 data is allowed"
        ),
    ),
    Row(
        "body-base64-wrong-type",
        _http(method="POST", bodyFrom={"bytes": 5}),
        _failed("invalid template: http.bodyFrom.bytes: must be a base64 string"),
    ),
    Row(
        "body-wrong-type",
        _http(method="POST", body=5),
        _failed("invalid template: http.body: Input should be a valid string"),
    ),
    Row("body-oversized", _http(method="POST", body="x" * (2 << 20)), OK, sent=True),
    # -- timeoutSeconds -----------------------------------------------------------------
    Row(
        "timeout-zero",
        _http(timeoutSeconds=0),
        _failed(Pattern(URL_ERROR + "context deadline exceeded")),
    ),
    Row(
        "timeout-negative",
        _http(timeoutSeconds=-5),
        _failed(Pattern(URL_ERROR + "context deadline exceeded")),
    ),
    Row(
        "timeout-not-a-number",
        _http(timeoutSeconds="soon"),
        _failed(
            "invalid template: http.timeoutSeconds: Input should be a valid integer, unable to "
            "parse string as an integer"
        ),
    ),
    Row(
        "timeout-fraction",
        _http(timeoutSeconds=1.5),
        _failed(
            "invalid template: http.timeoutSeconds: Input should be a valid integer, got a "
            "number with a fractional part"
        ),
    ),
    Row("timeout-enormous", _http(timeoutSeconds=10**20), OK, sent=True),
    # -- successCondition ---------------------------------------------------------------
    Row(
        "condition-wrong-type",
        _http(successCondition=5),
        _failed("invalid template: http.successCondition: Input should be a valid string"),
    ),
    Row(
        "condition-syntax-error",
        _http(successCondition="response.statusCode =="),
        _failed(
            "unexpected token EOF (1:23)\n | response.statusCode ==\n | ......................^"
        ),
        sent=True,
    ),
    Row(
        "condition-deeply-nested",
        _http(successCondition="(" * 5000 + "true" + ")" * 5000),
        _failed(_NESTING),
        sent=True,
    ),
    Row(
        "condition-nested-negations",
        _http(successCondition="!" * 20001 + "false"),
        _failed(_NESTING),
        sent=True,
    ),
    Row(
        "condition-huge",
        _http(successCondition=" && ".join(["response.statusCode == 200"] * 20000)),
        _failed(_NESTING),
        sent=True,
    ),
    Row(
        "condition-1mib-literal",
        _http(successCondition=f"response.body == '{_LONG_LITERAL}'"),
        {
            "phase": "Failed",
            "message": f"successCondition 'response.body == '{_LONG_LITERAL}'' evaluated false",
            "outputs": {"result": BODY},
        },
        sent=True,
    ),
    # Hostile conditions (issue 15): each spends its own budget; the neighbour is served.
    Row(
        "condition-costly-regex",
        _http(successCondition='repeat("ab", 200000) matches "(a|b){0,1000}c"'),
        _failed(
            Pattern(
                r"unable to evaluate expression .*: regexp too costly: program size 4005 "
                r"x input length 400000 exceeds the budget of 100000000 \(1:22\)\n.*"
            )
        ),
        sent=True,
    ),
    Row(
        "condition-string-copies",
        _http(
            successCondition='let a = repeat("x", 400000); let b = a + a + a + a + a + a + a + a;'
            " let c = b + b + b + b + b; "
            + " + ".join(f'len(c + "{i}")' for i in range(30))
            + " > 0"
        ),
        _failed(
            Pattern(
                r"unable to evaluate expression .*: memory budget exceeded: the expression "
                r"built more than 67108864 bytes of strings \(1:\d+\)\n.*"
            )
        ),
        sent=True,
    ),
    Row(
        "condition-endless",
        _http(successCondition="let r = 1..999; all(r, all(r, all(r, # > 0)))"),
        _failed(
            Pattern(
                r"unable to evaluate expression .*: evaluation exceeded the time limit "
                r"of 1s \(1:\d+\)\n.*"
            )
        ),
        sent=True,
    ),
    Row(
        "condition-not-boolean",
        _http(successCondition="response.statusCode"),
        _failed("unable to cast expression result '%!s(int=200)' to bool"),
        sent=True,
    ),
    # -- other fields -------------------------------------------------------------------
    Row(
        "unknown-fields",
        {"name": "x", "frobnicate": {"a": 1}, "http": {"url": URL, "newField": [1, 2]}},
        OK,
        sent=True,
    ),
    Row(
        "insecure-wrong-type",
        _http(insecureSkipVerify=[1]),
        _failed("invalid template: http.insecureSkipVerify: Input should be a valid boolean"),
    ),
    Row(
        "retry-strategy-garbage",
        {**_http(), "retryStrategy": {"limit": [1]}},
        _failed(
            "invalid template: retryStrategy.limit.str: Input should be a valid string; "
            "retryStrategy.limit.int: Input should be a valid integer"
        ),
    ),
    # -- not a template at all ----------------------------------------------------------
    Row(
        "task-a-string",
        "http://127.0.0.1/",
        _error("agent cannot execute: template must be an object, got str"),
    ),
    Row("task-a-number", 42, _error("agent cannot execute: template must be an object, got int")),
    Row(
        "task-a-list",
        [_http()],
        _error("agent cannot execute: template must be an object, got list"),
    ),
    Row(
        "task-a-boolean", True, _error("agent cannot execute: template must be an object, got bool")
    ),
    Row(
        "task-null",
        None,
        {
            "phase": "Error",
            "message": Pattern(
                r"error processing task: agent cannot execute: template must be an object.*"
            ),
        },
    ),
    Row(
        "http-a-string",
        {"http": "http://127.0.0.1/"},
        _failed("invalid template: http: Input should be a valid dictionary or instance of HTTP"),
    ),
    Row("http-null", {"http": None}, _error("agent cannot execute: unknown task type: Unknown")),
    Row("no-task-type", {"name": "x"}, _error("agent cannot execute: unknown task type: Unknown")),
    Row(
        "container-task",
        {"name": "x", "container": {"image": "busybox"}},
        _error("agent cannot execute: unknown task type: Container"),
    ),
    Row(
        "http-and-plugin",
        {"http": {"url": URL}, "plugin": {"hello": {}}},
        _error("agent cannot execute: the template sets both http and plugin; set exactly one"),
    ),
    Row(
        "plugin-not-configured",
        {"plugin": {"hello": {"a": 1}}},
        _failed("no plugin executed the template"),
    ),
    Row(
        "plugin-two-names",
        {"plugin": {"a": {}, "b": {}}},
        _failed("invalid template: plugin: must name exactly one plugin, got 2 (a, b)"),
    ),
    Row(
        "plugin-wrong-type",
        {"plugin": "hello"},
        _failed("invalid template: plugin: Input should be a valid dictionary"),
    ),
]


@dataclass(frozen=True)
class TasksetRow:
    """A malformed taskset: how it is built, and the node results or log line it yields.

    ``tasks`` / ``spec`` replace the taskset's; ``status`` is written through the status
    subresource before the agent first sees the taskset. ``nodes`` maps node IDs to their
    exact final status (``None``: no status at all); ``log`` is a pattern one warning or
    error line of the agent must match (the taskset's name is in it).
    """

    id: str
    tasks: Any = None
    spec: Any = None
    status: Any = None
    nodes: Mapping[str, Any] = field(default_factory=dict)
    log: str = ""
    sent: frozenset[str] = frozenset()


_CLAIM = "argo-http-agent gone-1: request in flight"
_ABANDONED = (
    "the agent (gone-1) stopped while this request was in flight; it was not sent again to "
    "avoid a duplicate side effect (redelivery policy 'idempotent')"
)

TASKSET_ROWS: list[TasksetRow] = [
    TasksetRow("tasks-a-list", tasks=[_http()], log=r"spec\.tasks"),
    TasksetRow("tasks-a-string", tasks="oops", log=r"spec\.tasks"),
    TasksetRow("spec-a-string", spec="oops", log=r"\bspec\b"),
    TasksetRow("tasks-null", tasks=None, spec={"tasks": None}),
    TasksetRow("status-a-string", status="oops", nodes={"n": "ok"}, sent=frozenset({"n"})),
    TasksetRow(
        "nodes-a-string", status={"nodes": "oops"}, nodes={"n": "ok"}, sent=frozenset({"n"})
    ),
    TasksetRow("nodes-a-list", status={"nodes": [1, 2]}, nodes={"n": "ok"}, sent=frozenset({"n"})),
    TasksetRow(
        "node-entry-a-string",
        status={"nodes": {"n": "garbage"}},
        nodes={"n": "ok"},
        sent=frozenset({"n"}),
    ),
    TasksetRow(
        "node-phase-a-number",
        status={"nodes": {"n": {"phase": 42}}},
        nodes={"n": "ok"},
        sent=frozenset({"n"}),
    ),
    TasksetRow(
        "node-left-over-fields",
        status={"nodes": {"n": {"phase": "Running", "message": 7, "progress": "1/2"}}},
        nodes={"n": "ok"},
        sent=frozenset({"n"}),
    ),
    TasksetRow(
        "claimed-post-of-a-gone-agent",
        tasks={"n": _http(method="POST")},
        status={"nodes": {"n": {"phase": "Running", "message": _CLAIM}}},
        nodes={"n": _failed(_ABANDONED)},
    ),
    TasksetRow(
        "claimed-get-of-a-gone-agent",
        status={"nodes": {"n": {"phase": "Running", "message": _CLAIM}}},
        nodes={"n": "ok"},
        sent=frozenset({"n"}),
    ),
    TasksetRow(
        "already-fulfilled",
        status={"nodes": {"n": {"phase": "Failed", "message": "done before"}}},
        nodes={"n": _failed("done before")},
    ),
    TasksetRow(
        "odd-node-ids",
        tasks={"x/y.z": _http(), "日本": _http(), "a b": _http()},
        nodes={"x/y.z": "ok", "日本": "ok", "a b": "ok"},
        sent=frozenset({"x/y.z", "日本", "a b"}),
    ),
]


# -- the harness ------------------------------------------------------------------------


def _substitute(value: Any, url: str, body: str = "") -> Any:
    if isinstance(value, str):
        replaced = value.replace(URL, url).replace(BODY, body)
        return Pattern(replaced) if isinstance(value, Pattern) else replaced
    if isinstance(value, list):
        return [_substitute(item, url, body) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, url, body) for key, item in value.items()}
    return value


def _method(task: Any) -> str:
    http = task.get("http") if isinstance(task, dict) else None
    method = http.get("method") if isinstance(http, dict) else None
    return method if isinstance(method, str) and method else "GET"


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, Pattern):
        return isinstance(actual, str) and re.fullmatch(expected, actual, re.DOTALL) is not None
    if isinstance(expected, Mapping):
        return (
            isinstance(actual, Mapping)
            and set(expected) == set(actual)
            and all(_matches(expected[k], actual[k]) for k in expected)
        )
    return bool(expected == actual)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass
class Catalogue:
    """What the agent made of the whole catalogue."""

    target: CountingTarget
    tasksets: dict[str, dict[str, Any]]  # taskset name -> its final object
    logs: str
    alive: bool


def _target_node(taskset_name: str, node: str) -> str:
    """The counting target's name for a node (URL-safe, unique across the catalogue)."""
    return f"{taskset_name}.{_slug(node) or 'x'}"


def _row_url(target: CountingTarget, taskset_name: str, node: str) -> str:
    return target.node_url(_target_node(taskset_name, node))


def _build_taskset_row(row: TasksetRow, target: CountingTarget) -> dict[str, Any]:
    name = f"ts-{row.id}"
    obj = taskset(name, {})
    if row.spec is not None:
        obj["spec"] = row.spec
    elif row.tasks is not None:
        obj["spec"] = {"tasks": row.tasks}
    else:
        obj["spec"] = {"tasks": {"n": _http()}}
    tasks = obj["spec"].get("tasks") if isinstance(obj["spec"], dict) else None
    if isinstance(tasks, dict):
        obj["spec"]["tasks"] = {
            node: _substitute(task, _row_url(target, name, node)) for node, task in tasks.items()
        }
    elif tasks is not None:
        obj["spec"]["tasks"] = _substitute(tasks, _row_url(target, name, "n"))
    return obj


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def catalogue() -> AsyncIterator[Catalogue]:
    with CountingTarget() as target:
        async with ApiSimulator(bookmark_interval=0.5) as sim:
            sim.add_token(TOKEN)
            # Malformed tasksets exist before the agent starts, so it first sees them
            # exactly as written (status included).
            for broken in TASKSET_ROWS:
                obj = _build_taskset_row(broken, target)
                sim.create_object(TS, obj)
                if broken.status is not None:
                    sim.patch_object(
                        TS,
                        obj["metadata"]["name"],
                        {"status": broken.status},
                        namespace=NS,
                        subresource="status",
                    )
            agent = AgentProcess(sim, "--namespace", NS)
            await agent.start()
            try:
                await agent.wait_ready()
                # Bad templates arrive while it runs, each next to a good task.
                for row in TEMPLATE_ROWS:
                    name = f"tpl-{row.id}"
                    task = _substitute(row.task, _row_url(target, name, "bad"))
                    good = _substitute(_http(), _row_url(target, name, "good"))
                    sim.create_object(TS, taskset(name, {"bad": task, "good": good}))
                sim.create_object(
                    TS,
                    taskset("after", {"n": _substitute(_http(), _row_url(target, "after", "n"))}),
                )
                await _settle(sim)
                objects = {
                    obj["metadata"]["name"]: obj
                    for obj in _items(sim.list_objects(TS, namespace=NS))
                }
                alive = agent.proc is not None and agent.proc.returncode is None
            finally:
                await agent.stop()
            yield Catalogue(target, objects, agent.logs(), alive)


def _items(listed: Any) -> list[dict[str, Any]]:
    return list(listed["items"] if isinstance(listed, Mapping) else listed)


def _expected_nodes(name: str, *, good_only: bool) -> list[str]:
    if name.startswith("tpl-"):
        return ["good"] if good_only else ["bad", "good"]
    if name == "after":
        return ["n"]
    row = next(r for r in TASKSET_ROWS if f"ts-{r.id}" == name)
    return [] if good_only else list(row.nodes)


async def _settle(sim: ApiSimulator) -> None:
    """Wait (bounded) for the results; the tests judge whatever is there.

    First every good node (they must all be served; 30 s is a bound, not a target),
    then the bad ones, which run alongside them: a bad node still without a result well
    after its good neighbour has one is left for its test to report.
    """
    for good_only, timeout in ((True, 30.0), (False, 10.0)):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _waiting(sim, good_only=good_only):
                break
            await asyncio.sleep(0.1)


def _waiting(sim: ApiSimulator, *, good_only: bool) -> int:
    waiting = 0
    for obj in _items(sim.list_objects(TS, namespace=NS)):
        status = obj.get("status")
        nodes = status.get("nodes") if isinstance(status, Mapping) else None
        nodes = nodes if isinstance(nodes, Mapping) else {}
        for node in _expected_nodes(obj["metadata"]["name"], good_only=good_only):
            entry = nodes.get(node)
            if not isinstance(entry, Mapping) or entry.get("phase") not in _FULFILLED:
                waiting += 1
    return waiting


def _nodes(catalogue: Catalogue, name: str) -> Mapping[str, Any]:
    status = catalogue.tasksets[name].get("status")
    nodes = status.get("nodes") if isinstance(status, Mapping) else None
    return nodes if isinstance(nodes, Mapping) else {}


# -- the tests --------------------------------------------------------------------------


@pytest.mark.parametrize("row", TEMPLATE_ROWS, ids=lambda r: r.id)
async def test_bad_template(catalogue: Catalogue, row: Row) -> None:
    name = f"tpl-{row.id}"
    nodes = _nodes(catalogue, name)
    url = _row_url(catalogue.target, name, "bad")
    body = answer_body(_target_node(name, "bad"), _method(row.task))
    expected = _substitute(dict(row.expected), url, body)
    assert _matches(expected, nodes.get("bad")), f"got {nodes.get('bad')!r}"
    good = _substitute(OK, "", answer_body(_target_node(name, "good"), "GET"))
    assert nodes.get("good") == good, "the good neighbour was not served"
    arrived = len(catalogue.target.arrivals(_target_node(name, "bad")))
    assert arrived == (1 if row.sent else 0), f"the bad request reached the target {arrived}x"


@pytest.mark.parametrize("row", TASKSET_ROWS, ids=lambda r: r.id)
async def test_bad_taskset(catalogue: Catalogue, row: TasksetRow) -> None:
    name = f"ts-{row.id}"
    nodes = _nodes(catalogue, name)
    spec = _build_taskset_row(row, catalogue.target)["spec"]
    tasks = spec.get("tasks") if isinstance(spec, dict) else None
    tasks = tasks if isinstance(tasks, dict) else {}
    expected = {
        node: _substitute(OK, "", answer_body(_target_node(name, node), _method(tasks.get(node))))
        if want == "ok"
        else want
        for node, want in row.nodes.items()
    }
    assert dict(nodes) == expected, f"got {dict(nodes)!r}"
    for node in set(row.nodes) | set(row.sent):
        arrived = len(catalogue.target.arrivals(_target_node(name, node)))
        assert arrived == (1 if node in row.sent else 0), f"{node}: reached the target {arrived}x"
    if row.log:
        lines = [
            line
            for line in catalogue.logs.splitlines()
            if (" WARNING " in line or " ERROR " in line) and name in line
        ]
        # The field must be named apart from the taskset's name (which may contain it).
        assert any(re.search(row.log, line.replace(name, "")) for line in lines), (
            f"no warning naming {name} and matching {row.log!r} in the agent's log:\n"
            + catalogue.logs[-3000:]
        )


async def test_the_agent_keeps_serving(catalogue: Catalogue) -> None:
    """After every bad input, the agent is alive and serves a taskset created last."""
    assert catalogue.alive, catalogue.logs[-3000:]
    served = _substitute(OK, "", answer_body(_target_node("after", "n"), "GET"))
    assert _nodes(catalogue, "after") == {"n": served}
