"""The HTTP executor against real servers on 127.0.0.1, on both transports.

Every test in this module runs twice: on the aiohttp-backed transport (the default) and on
httpx's own httpcore pool, so the two cannot drift apart. Results are compared key for key
with what Argo's agent writes (``dump`` = the wire form, empty fields omitted).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agent.core.model import dump
from agent.core.refs import TaskRef
from agent.core.secrets import SecretError
from agent.executor.executor import Executor
from agent.executor.secrets import StaticSecretResolver
from tests.executors import executor_factory
from tests.servers import TargetServer, TestCA

REF = TaskRef(namespace="argo", taskset="wf", node_id="wf-1", workflow_uid="uid-1")
SECRETS = StaticSecretResolver({("argo", "creds"): {"token": "Bearer s3cr3t", "user": "alice"}})

MakeExecutor = Callable[..., Executor]


@pytest.fixture(params=["http1", "aiohttp", "httpcore"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_executor(transport: str) -> AsyncIterator[MakeExecutor]:
    defaults = {"transport": transport, "ca_dir": None, "default_timeout_seconds": 10.0}
    async with executor_factory(secrets=SECRETS, **defaults) as make:
        yield make


async def run(executor: Executor, http: dict[str, Any], **template: Any) -> dict[str, Any]:
    return dump(await executor.run({"name": "t", "http": http, **template}, ref=REF))


def echoed(result: dict[str, Any]) -> dict[str, Any]:
    assert result["phase"] == "Succeeded", result
    return json.loads(result["outputs"]["result"])  # type: ignore[no-any-return]


def header_values(echo: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in echo["headers"] if key.lower() == name.lower()]


# -- method, headers, body ---------------------------------------------------------------


async def test_method_defaults_to_get(make_executor: MakeExecutor, target: TargetServer) -> None:
    executor = make_executor()
    assert echoed(await run(executor, {"url": target.url("/echo")}))["method"] == "GET"
    assert (
        echoed(await run(executor, {"url": target.url("/echo"), "method": ""}))["method"] == "GET"
    )


async def test_method_and_body_are_sent(make_executor: MakeExecutor, target: TargetServer) -> None:
    echo = echoed(
        await run(
            make_executor(),
            {
                "url": target.url("/echo"),
                "method": "POST",
                "body": '{"a": 1}',
            },
        )
    )
    assert (echo["method"], echo["body"]) == ("POST", '{"a": 1}')
    assert header_values(echo, "Content-Length") == ["8"]


async def test_any_token_method_is_sent(make_executor: MakeExecutor, target: TargetServer) -> None:
    echo = echoed(await run(make_executor(), {"url": target.url("/echo"), "method": "PURGE"}))
    assert echo["method"] == "PURGE"


async def test_empty_post_sends_content_length_zero_like_go(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    echo = echoed(await run(make_executor(), {"url": target.url("/echo"), "method": "POST"}))
    assert header_values(echo, "Content-Length") == ["0"]
    get = echoed(await run(make_executor(), {"url": target.url("/echo")}))
    assert header_values(get, "Content-Length") == []


async def test_headers_keep_order_and_repeats(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    echo = echoed(
        await run(
            make_executor(),
            {
                "url": target.url("/echo"),
                "headers": [
                    {"name": "X-A", "value": "1"},
                    {"name": "X-B", "value": "2"},
                    {"name": "x-a", "value": "3"},
                ],
            },
        )
    )
    sent = [(k.lower(), v) for k, v in echo["headers"] if k.lower() in ("x-a", "x-b")]
    assert sent == [("x-a", "1"), ("x-b", "2"), ("x-a", "3")]


async def test_host_header_sets_the_request_host(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    echo = echoed(
        await run(
            make_executor(),
            {
                "url": target.url("/echo"),
                "headers": [{"name": "host", "value": "example.com"}],
            },
        )
    )
    assert echo["host"] == "example.com"
    assert header_values(echo, "Host") == ["example.com"]


async def test_default_user_agent_and_template_override(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    executor = make_executor(user_agent="agent-under-test/1")
    echo = echoed(await run(executor, {"url": target.url("/echo")}))
    assert header_values(echo, "User-Agent") == ["agent-under-test/1"]
    echo = echoed(
        await run(
            executor,
            {
                "url": target.url("/echo"),
                "headers": [{"name": "User-Agent", "value": "mine"}],
            },
        )
    )
    assert header_values(echo, "User-Agent") == ["mine"]


async def test_template_content_length_is_ignored_like_go(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    echo = echoed(
        await run(
            make_executor(),
            {
                "url": target.url("/echo"),
                "method": "POST",
                "body": "abc",
                "headers": [{"name": "Content-Length", "value": "99"}],
            },
        )
    )
    assert (header_values(echo, "Content-Length"), echo["body"]) == (["3"], "abc")


async def test_body_from_bytes_wins_over_body(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    raw = bytes([0, 1, 2, 255])
    echo = echoed(
        await run(
            make_executor(),
            {
                "url": target.url("/echo"),
                "method": "PUT",
                "body": "ignored",
                "bodyFrom": {"bytes": base64.b64encode(raw).decode()},
            },
        )
    )
    assert base64.b64decode(echo["body_base64"]) == raw


# -- secrets -----------------------------------------------------------------------------


async def test_secret_header_is_sent(make_executor: MakeExecutor, target: TargetServer) -> None:
    echo = echoed(
        await run(
            make_executor(),
            {
                "url": target.url("/echo"),
                "headers": [
                    {
                        "name": "Authorization",
                        "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}},
                    }
                ],
            },
        )
    )
    assert header_values(echo, "Authorization") == ["Bearer s3cr3t"]


async def test_secret_missing_key_fails_with_argo_text(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    result = await run(
        make_executor(),
        {
            "url": target.url("/echo"),
            "headers": [
                {"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope"}}}
            ],
        },
    )
    assert result == {"phase": "Failed", "message": "secret 'creds' does not have the key 'nope'"}


class _ForbiddenSecrets:
    async def get_secret_value(self, *, namespace: str, name: str, key: str) -> str:
        raise SecretError(
            f'secrets "{name}" is forbidden: cannot get resource "secrets" in namespace '
            f'"{namespace}"'
        )


async def test_secret_resolver_error_is_the_message(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    result = await run(
        make_executor(secrets=_ForbiddenSecrets()),
        {
            "url": target.url("/echo"),
            "headers": [
                {"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}
            ],
        },
    )
    assert result == {
        "phase": "Failed",
        "message": 'secrets "creds" is forbidden: cannot get resource "secrets" in namespace '
        '"argo"',
    }


async def test_secret_value_with_newline_is_refused_without_echoing_it(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    secrets = StaticSecretResolver({("argo", "bad"): {"k": "line1\r\nX-Injected: yes"}})
    result = await run(
        make_executor(secrets=secrets),
        {
            "url": target.url("/echo"),
            "headers": [
                {"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "bad", "key": "k"}}}
            ],
        },
    )
    # transport.go validateHeaders names the (canonical) key, never the value.
    assert result == {
        "phase": "Failed",
        "message": f'Get "{target.url("/echo")}": net/http: invalid header field value for "X-Key"',
    }


# -- timeouts ----------------------------------------------------------------------------


async def test_timeout_seconds_fails_with_deadline_and_no_outputs(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    url = target.url("/hang")
    result = await run(make_executor(), {"url": url, "timeoutSeconds": 1})
    assert result == {
        "phase": "Failed",
        "message": f'Get "{url}": context deadline exceeded',
    }


async def test_default_timeout_applies_without_timeout_seconds(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    url = target.url("/hang")
    result = await run(make_executor(default_timeout_seconds=0.3), {"url": url})
    assert result == {
        "phase": "Failed",
        "message": f'Get "{url}": context deadline exceeded',
    }


async def test_timeout_seconds_overrides_the_default(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    result = await run(
        make_executor(default_timeout_seconds=0.2),
        {
            "url": target.url("/delay/0.5"),
            "timeoutSeconds": 5,
        },
    )
    assert result == {"phase": "Succeeded", "outputs": {"result": "slept"}}


# -- TLS ---------------------------------------------------------------------------------


async def test_self_signed_target_fails_verification(
    make_executor: MakeExecutor, tls_target: TargetServer
) -> None:
    url = tls_target.url("/echo")
    result = await run(make_executor(), {"url": url})
    assert result["phase"] == "Failed" and "outputs" not in result
    assert result["message"].startswith(f'Get "{url}": tls: failed to verify certificate: ')


async def test_insecure_skip_verify_accepts_self_signed(
    make_executor: MakeExecutor, tls_target: TargetServer
) -> None:
    executor = make_executor()
    result = await run(executor, {"url": tls_target.url("/status/200"), "insecureSkipVerify": True})
    assert result == {"phase": "Succeeded", "outputs": {"result": "status 200"}}
    # The choice is per request: the same executor still verifies other templates.
    again = await run(executor, {"url": tls_target.url("/status/200")})
    assert again["phase"] == "Failed"


async def test_ca_bundle_is_trusted(
    make_executor: MakeExecutor, tls_target: TargetServer, test_ca: TestCA
) -> None:
    result = await run(
        make_executor(ca_bundle=test_ca.pem_path),
        {
            "url": tls_target.url("/status/200"),
        },
    )
    assert result == {"phase": "Succeeded", "outputs": {"result": "status 200"}}


async def test_ca_dir_is_trusted_and_junk_files_skipped(
    make_executor: MakeExecutor, tls_target: TargetServer, test_ca: TestCA, tmp_path: Any
) -> None:
    test_ca.write_pem(str(tmp_path), "ca.crt")
    (tmp_path / "README").write_text("not a certificate\n")
    os.mkdir(tmp_path / "..data")
    result = await run(
        make_executor(ca_dir=str(tmp_path)),
        {
            "url": tls_target.url("/status/200"),
        },
    )
    assert result == {"phase": "Succeeded", "outputs": {"result": "status 200"}}


async def test_ca_is_checked_against_the_host_name(
    make_executor: MakeExecutor, tls_target: TargetServer, test_ca: TestCA
) -> None:
    # The certificate is for localhost/127.0.0.1; a Host header does not change the check.
    result = await run(
        make_executor(ca_bundle=test_ca.pem_path),
        {
            "url": tls_target.url("/echo", host="localhost"),
            "headers": [{"name": "Host", "value": "elsewhere.example"}],
        },
    )
    assert echoed(result)["host"] == "elsewhere.example"


# -- redirects ---------------------------------------------------------------------------


async def test_redirects_are_followed(make_executor: MakeExecutor, target: TargetServer) -> None:
    result = await run(make_executor(), {"url": target.url("/redirect/3")})
    assert result == {"phase": "Succeeded", "outputs": {"result": "redirected"}}


async def test_nine_redirects_succeed_and_the_tenth_fails_like_go(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    executor = make_executor()
    ok = await run(executor, {"url": target.url("/redirect/9")})
    assert ok == {"phase": "Succeeded", "outputs": {"result": "redirected"}}
    failed = await run(executor, {"url": target.url("/redirect/10")})
    assert failed == {
        "phase": "Failed",
        "message": f'Get "{target.url("/redirect/0")}": stopped after 10 redirects',
    }


async def test_303_turns_post_into_get(make_executor: MakeExecutor, target: TargetServer) -> None:
    echo = echoed(
        await run(
            make_executor(),
            {
                "url": target.url("/redirect/1?status=303&final=/echo"),
                "method": "POST",
                "body": "x",
            },
        )
    )
    assert (echo["method"], echo["body"]) == ("GET", "")


async def test_302_turns_put_into_get_like_go(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    echo = echoed(
        await run(
            make_executor(),
            {
                "url": target.url("/redirect/1?status=302&final=/echo"),
                "method": "PUT",
                "body": "x",
            },
        )
    )
    assert echo["method"] == "GET"


async def test_307_keeps_method_and_body(make_executor: MakeExecutor, target: TargetServer) -> None:
    echo = echoed(
        await run(
            make_executor(),
            {
                "url": target.url("/redirect/1?status=307&final=/echo"),
                "method": "POST",
                "body": "x",
            },
        )
    )
    assert (echo["method"], echo["body"]) == ("POST", "x")


async def test_redirect_to_another_scheme_fails(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    result = await run(make_executor(), {"url": target.url("/redirect-to?url=ftp://files/x")})
    assert result == {
        "phase": "Failed",
        "message": 'Get "ftp://files/x": unsupported protocol scheme "ftp"',
    }


# -- status and outputs ------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 201, 204, 299])
async def test_any_2xx_succeeds(
    make_executor: MakeExecutor, target: TargetServer, code: int
) -> None:
    result = await run(make_executor(), {"url": target.url(f"/status/{code}")})
    body = "" if code == 204 else f"status {code}"
    # outputs.result is a Go *string: an empty body is still reported.
    assert result == {"phase": "Succeeded", "outputs": {"result": body}}


@pytest.mark.parametrize("code", [300, 304, 400, 404, 418, 500, 503])
async def test_non_2xx_fails_with_body_as_result(
    make_executor: MakeExecutor, target: TargetServer, code: int
) -> None:
    result = await run(make_executor(), {"url": target.url(f"/respond?status={code}&body=nope")})
    expected: dict[str, Any] = {
        "phase": "Failed",
        "message": f"received non-2xx response code: {code}",
    }
    if code != 304:  # a 304 has no body, but the (empty) result is still there
        expected["outputs"] = {"result": "nope"}
    else:
        expected["outputs"] = {"result": ""}
    assert result == expected


async def test_gzip_body_is_decompressed_when_go_would(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    executor = make_executor()
    result = await run(executor, {"url": target.url("/gzip?body=hello%20gzip")})
    assert result == {"phase": "Succeeded", "outputs": {"result": "hello gzip"}}
    # A template that asks for an encoding itself gets the raw body, as in Go.
    raw = await run(
        executor,
        {
            "url": target.url("/gzip?body=hello%20gzip"),
            "headers": [{"name": "Accept-Encoding", "value": "gzip"}],
        },
    )
    assert raw["phase"] == "Succeeded" and raw["outputs"]["result"] != "hello gzip"


# -- the body cap ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/bytes/2000", "/stream/2000"])
async def test_body_over_the_cap_fails_with_both_sizes(
    make_executor: MakeExecutor, target: TargetServer, path: str
) -> None:
    result = await run(make_executor(max_result_bytes=1000), {"url": target.url(path)})
    assert result == {
        "phase": "Failed",
        "message": "response body of 2000 bytes exceeds the agent's limit of 1000 bytes "
        "for outputs.result",
    }


async def test_body_at_the_cap_is_kept(make_executor: MakeExecutor, target: TargetServer) -> None:
    result = await run(make_executor(max_result_bytes=1000), {"url": target.url("/stream/1000")})
    assert result == {"phase": "Succeeded", "outputs": {"result": "x" * 1000}}


async def test_endless_body_stops_at_the_discard_limit(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    executor = make_executor(max_result_bytes=1000, max_discard_bytes=100_000)
    result = await run(executor, {"url": target.url("/stream/5000000")})
    assert result["phase"] == "Failed"
    assert result["message"].startswith("response body of more than ")
    assert result["message"].endswith("exceeds the agent's limit of 1000 bytes for outputs.result")


async def test_cap_applies_to_the_decompressed_size(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    result = await run(
        make_executor(max_result_bytes=10),
        {
            "url": target.url("/gzip?body=" + "z" * 50),
        },
    )
    assert result == {
        "phase": "Failed",
        "message": "response body of 50 bytes exceeds the agent's limit of 10 bytes "
        "for outputs.result",
    }


# -- transport errors --------------------------------------------------------------------


async def test_connection_refused(make_executor: MakeExecutor) -> None:
    result = await run(make_executor(), {"url": "http://127.0.0.1:9/x"})
    assert result == {
        "phase": "Failed",
        "message": 'Get "http://127.0.0.1:9/x": dial tcp 127.0.0.1:9: connect: connection refused',
    }


async def test_connection_reset(make_executor: MakeExecutor, target: TargetServer) -> None:
    url = target.url("/reset")
    result = await run(make_executor(), {"url": url})
    assert result == {
        "phase": "Failed",
        "message": f'Get "{url}": read tcp 127.0.0.1:{target.port}: read: connection reset by peer',
    }


async def test_connection_closed_without_answer(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    url = target.url("/close")
    result = await run(make_executor(), {"url": url})
    assert result == {
        "phase": "Failed",
        "message": f'Get "{url}": EOF',
    }


async def test_password_in_url_is_masked_in_messages(make_executor: MakeExecutor) -> None:
    result = await run(make_executor(), {"url": "http://user:hunter2@127.0.0.1:9/x"})
    assert "hunter2" not in result["message"]
    assert result["message"].startswith('Get "http://user:***@127.0.0.1:9/x": ')


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http", "message"),
    [
        # (Go 1.26 source of each text under GOROOT/src)
        ({}, 'Get "": unsupported protocol scheme ""'),  # net/http/transport.go roundTrip
        (
            {"url": "ftp://example.com/x"},
            'Get "ftp://example.com/x": unsupported protocol scheme "ftp"',  # roundTrip
        ),
        (
            {"url": "example.com/x", "method": "POST"},
            'Post "example.com/x": unsupported protocol scheme ""',  # roundTrip
        ),
        ({"url": "http:///x"}, 'Get "http:///x": http: no Host in request URL'),  # roundTrip
        (
            {"url": "http://a/\nb"},
            'parse "http://a/\\nb": net/url: invalid control character in URL',  # url.parse
        ),
        (
            {"url": "http://a b/"},
            'parse "http://a b/": invalid character " " in host name',  # url.parseHost
        ),
        ({"url": "http://a/", "method": "GE T"}, 'net/http: invalid method "GE T"'),  # request.go
        (
            {"url": "http://a/", "headers": [{"name": "X-A\r\nX-B", "value": "1"}]},
            # transport.go validateHeaders, in roundTrip
            'Get "http://a/": net/http: invalid header field name "X-A\\r\\nX-B"',
        ),
        (
            {"url": "http://a/", "headers": [{"name": "", "value": "1"}]},
            'Get "http://a/": net/http: invalid header field name ""',  # validateHeaders
        ),
        (
            {
                "url": "http://a/",
                "headers": [{"name": "Ok", "value": "1"}, {"name": "x", "value": "a\r\nEvil: 1"}],
            },
            'Get "http://a/": net/http: invalid header field value for "X"',  # validateHeaders
        ),
        (
            {"url": "ftp://a/", "headers": [{"name": "a b", "value": "1"}]},
            'Get "ftp://a/": unsupported protocol scheme "ftp"',  # headers checked for http(s)
        ),
        (
            {"url": "http://a/", "timeoutSeconds": 0},
            # context.WithTimeout(0): the deadline has passed when Client.Do starts
            'Get "http://a/": context deadline exceeded',
        ),
    ],
)
async def test_bad_http_fields_fail_naming_the_field(
    make_executor: MakeExecutor, http: dict[str, Any], message: str
) -> None:
    assert await run(make_executor(), http) == {"phase": "Failed", "message": message}


async def test_invalid_base64_fails_naming_the_field(make_executor: MakeExecutor) -> None:
    result = await run(make_executor(), {"url": "http://a/", "bodyFrom": {"bytes": "not base64!"}})
    assert result["phase"] == "Failed"
    assert result["message"].startswith("invalid template: http.bodyFrom.bytes: invalid base64")


async def test_both_http_and_plugin_is_an_error(make_executor: MakeExecutor) -> None:
    result = dump(
        await make_executor().run({"http": {"url": "http://a/"}, "plugin": {"hello": {}}}, ref=REF)
    )
    assert result == {
        "phase": "Error",
        "message": "error processing task: agent cannot execute: the template sets both http "
        "and plugin; set exactly one",
    }


@pytest.mark.parametrize(
    ("template", "kind"),
    [
        ({"name": "x"}, "Unknown"),
        ({"container": {"image": "alpine"}}, "Container"),
        ({"script": {"source": "x"}}, "Script"),
        ({"suspend": {}}, "Suspend"),
    ],
)
async def test_unknown_task_type_uses_argo_text(
    make_executor: MakeExecutor, template: dict[str, Any], kind: str
) -> None:
    result = dump(await make_executor().run(template, ref=REF))
    assert result == {
        "phase": "Error",
        "message": f"error processing task: agent cannot execute: unknown task type: {kind}",
    }


async def test_template_that_is_not_an_object(make_executor: MakeExecutor) -> None:
    result = dump(await make_executor().run(["not", "a", "template"], ref=REF))  # type: ignore[arg-type]
    assert result == {
        "phase": "Error",
        "message": "error processing task: agent cannot execute: template must be an object, "
        "got list",
    }


async def test_template_with_a_wrong_field_type(make_executor: MakeExecutor) -> None:
    result = dump(
        await make_executor().run({"http": {"url": "http://a/", "headers": "x"}}, ref=REF)
    )
    assert result["phase"] == "Failed"
    assert result["message"].startswith("invalid template: http.headers: ")


async def test_url_credentials_become_basic_auth_like_go(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    url = target.url("/echo").replace("http://", "http://alice:s3cret@")
    echo = echoed(await run(make_executor(), {"url": url}))
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert header_values(echo, "Authorization") == [expected]


async def test_non_utf8_body_is_replaced_not_rejected(
    make_executor: MakeExecutor, target: TargetServer
) -> None:
    # Go's JSON encoder writes invalid UTF-8 as U+FFFD; so does the agent.
    result = await run(make_executor(), {"url": target.url("/respond?body=%FF%FEok")})
    assert result == {"phase": "Succeeded", "outputs": {"result": "\ufffd\ufffdok"}}
