"""Findings of the adversarial pass (issue 15, part 3), each pinned on real servers.

* Secret header values never reach a node message: every value is validated and trimmed
  before sending; HTTP/2's connection-specific headers follow Go's rules
  (net/http/internal/httpcommon ``checkConnHeaders``; h2_bundle.go wraps it as
  ``http2: %w``) before python-h2, whose errors quote values, sees them; a value from a
  Secret is shown as ``***``.
* Debug logs carry no header values: the protocol loggers (hpack, h2, h11, httpcore ...)
  stay at WARNING whatever the agent's level.
* A redirect to a Location httpx cannot follow fails its node with Go's text, never as an
  agent error.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from agent.core.model import dump
from agent.core.refs import TaskRef
from agent.executor.executor import Executor
from agent.executor.secrets import StaticSecretResolver
from agent.service.logs import PINNED_LOGGERS, configure_logging
from tests.executors import executor_factory
from tests.servers import TargetServer, TestCA
from tests.test_execute_http2 import Http2Target

REF = TaskRef(namespace="argo", taskset="wf", node_id="wf-1")
SECRET = "s3cr3t-v4lue-XYZ"


@pytest.fixture(scope="module")
def h2_target(test_ca: TestCA) -> Iterator[Http2Target]:
    with Http2Target(test_ca) as server:
        yield server


@pytest.fixture
async def make_executor(test_ca: TestCA) -> AsyncIterator[Callable[..., Executor]]:
    async with executor_factory(ca_dir=None, ca_bundle=test_ca.pem_path) as build:

        def make(secret: str = SECRET, **overrides: Any) -> Executor:
            secrets = StaticSecretResolver({("argo", "creds"): {"key": secret}})
            return build(secrets=secrets, **overrides)

        yield make


def secret_header(name: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "creds", "key": "key"}}}


async def run(executor: Executor, http: dict[str, Any]) -> dict[str, Any]:
    return dump(await executor.run({"name": "t", "http": http}, ref=REF))


@pytest.mark.parametrize("transport", ["http1", "aiohttp", "httpcore"])
async def test_a_secret_with_a_trailing_space_reaches_an_https_http1_origin(
    make_executor: Callable[..., Executor], tls_target: TargetServer, transport: str
) -> None:
    # Before: h11 refused the value with "Illegal header value b'<secret> '" as the message.
    executor = make_executor(secret=SECRET + " ", transport=transport)
    result = await run(
        executor, {"url": tls_target.url("/status/200"), "headers": [secret_header("X-Api-Key")]}
    )
    assert result == {"phase": "Succeeded", "outputs": {"result": "status 200"}}


@pytest.mark.parametrize("transport", ["http1", "aiohttp", "httpcore"])
async def test_a_secret_te_header_on_http2_is_refused_without_its_value(
    make_executor: Callable[..., Executor], h2_target: Http2Target, transport: str
) -> None:
    # Before: h2's "Invalid value for TE header: b'<secret>'" became the message.
    url = h2_target.url("/")
    result = await run(
        make_executor(transport=transport), {"url": url, "headers": [secret_header("TE")]}
    )
    assert result == {
        "phase": "Failed",
        "message": f'Get "{url}": http2: invalid TE request header: ["***"]',
    }


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # Go 1.26 run (notes/issue12-go-facts.md 5.8): checkConnHeaders' texts.
        ("Connection", "foo", 'http2: invalid Connection request header: ["foo"]'),
        ("Upgrade", "websocket", 'http2: invalid Upgrade request header: ["websocket"]'),
        ("TE", "gzip", 'http2: invalid TE request header: ["gzip"]'),
    ],
)
async def test_connection_specific_headers_on_http2_are_refused_as_gos(
    make_executor: Callable[..., Executor],
    h2_target: Http2Target,
    name: str,
    value: str,
    message: str,
) -> None:
    url = h2_target.url("/")
    result = await run(make_executor(), {"url": url, "headers": [{"name": name, "value": value}]})
    assert result == {"phase": "Failed", "message": f'Get "{url}": {message}'}


async def test_allowed_connection_headers_are_dropped_on_http2_as_gos(
    make_executor: Callable[..., Executor], h2_target: Http2Target
) -> None:
    # EncodeHeaders drops Connection (close/keep-alive), Proxy-Connection, Keep-Alive and
    # Upgrade/Transfer-Encoding values checkConnHeaders let through; TE: trailers is sent.
    headers = [
        {"name": "Connection", "value": "close"},
        {"name": "Keep-Alive", "value": "timeout=5"},
        {"name": "Proxy-Connection", "value": "keep-alive"},
        {"name": "TE", "value": "trailers"},
        {"name": "X-Kept", "value": "yes"},
    ]
    result = await run(make_executor(), {"url": h2_target.url("/"), "headers": headers})
    assert result["phase"] == "Succeeded", result
    sent = {name: value for name, value in json.loads(result["outputs"]["result"])["headers"]}
    assert sent.get("x-kept") == "yes" and sent.get("te") == "trailers"
    assert not {"connection", "keep-alive", "proxy-connection"} & set(sent)


async def test_debug_logs_carry_no_secret_header_value(
    make_executor: Callable[..., Executor],
    h2_target: Http2Target,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Before: with --log-level debug, hpack logged "Adding b'x-api-key'=b'<secret>'".
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    saved_levels = {name: logging.getLogger(name).level for name in PINNED_LOGGERS}
    try:
        configure_logging(fmt="text", level="debug")
        executor = make_executor()
        for header in ("X-Api-Key", "TE"):  # a request that is sent, and one h2 would refuse
            await run(executor, {"url": h2_target.url("/"), "headers": [secret_header(header)]})
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)
    logged = capfd.readouterr().err
    assert "http GET https://" in logged  # the agent's own debug line: debug was on
    assert SECRET not in logged


@pytest.mark.parametrize("transport", ["http1", "aiohttp", "httpcore"])
async def test_a_location_without_a_host_fails_with_gos_text(
    make_executor: Callable[..., Executor], target: TargetServer, transport: str
) -> None:
    # Go: client.go (*Client).do resolves "http:\\127.0.0.1:P/x" (net/url parse: an opaque
    # URL, no host); transport.go roundTrip then fails with "http: no Host in request URL",
    # in a *url.Error whose URL is %q-quoted. Before: Error, "error processing task:
    # InvalidURL ...", and a traceback in the log.
    location = f"http:\\\\127.0.0.1:{target.port}/x"
    url = target.url("/redirect-to?" + urllib.parse.urlencode({"url": location}))
    result = await run(make_executor(transport=transport), {"url": url})
    quoted = location.replace("\\", "\\\\")
    assert result == {
        "phase": "Failed",
        "message": f'Get "{quoted}": http: no Host in request URL',
    }
