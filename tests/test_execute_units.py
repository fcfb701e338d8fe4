"""Small pure pieces of the executor: header canonicalisation, secrets, settings, texts."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.model import parse_template
from agent.core.secrets import SecretError, missing_key_message
from agent.executor.errors import format_url_error, url_error_op
from agent.executor.executor import template_type
from agent.executor.http import (
    _parse_url,
    _Prepared,
    _request_bytes,
    _simple_url,
    canonical_header_key,
)
from agent.executor.http1_transport import _encode
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import ExecutorSettings, PluginEndpoint
from agent.executor.transport import build_tls_contexts


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("content-type", "Content-Type"),
        ("CONTENT-TYPE", "Content-Type"),
        ("x-request-id", "X-Request-Id"),
        ("www-authenticate", "Www-Authenticate"),
        ("x_under-score", "X_under-Score"),
        ("etag", "Etag"),
        ("bad header", "bad header"),  # not a token: unchanged, as in Go
    ],
)
def test_canonical_header_key_is_go_style(name: str, canonical: str) -> None:
    assert canonical_header_key(name) == canonical


@pytest.mark.parametrize(
    ("method", "op"), [("GET", "Get"), ("post", "Post"), ("PATCH", "Patch"), ("", "Get")]
)
def test_url_error_op_is_go_style(method: str, op: str) -> None:
    assert url_error_op(method) == op


def test_format_url_error_masks_the_password() -> None:
    assert format_url_error("GET", httpx.URL("http://u:p@h/x"), "boom") == (
        'Get "http://u:***@h/x": boom'
    )


async def test_secret_manifests_decode_data_and_prefer_string_data() -> None:
    resolver = StaticSecretResolver.from_manifests(
        [
            {
                "kind": "Secret",
                "metadata": {"name": "a", "namespace": "ns"},
                "data": {"k": "dmFsdWU=", "both": "ZnJvbS1kYXRh"},
                "stringData": {"both": "plain"},
            },
            {"metadata": {"name": "b"}, "stringData": {"x": "y"}},
        ],
        default_namespace="def",
    )
    assert await resolver.get_secret_value(namespace="ns", name="a", key="k") == "value"
    assert await resolver.get_secret_value(namespace="ns", name="a", key="both") == "plain"
    assert await resolver.get_secret_value(namespace="def", name="b", key="x") == "y"
    with pytest.raises(SecretError) as missing:
        await resolver.get_secret_value(namespace="ns", name="a", key="nope")
    assert (
        str(missing.value)
        == missing_key_message("a", "nope")
        == ("secret 'a' does not have the key 'nope'")
    )
    with pytest.raises(SecretError, match=r'^secrets "zzz" not found$'):
        await resolver.get_secret_value(namespace="ns", name="zzz", key="k")


@pytest.mark.parametrize(
    ("manifest", "error"),
    [
        ("not a mapping", "secret #1: expected a Secret manifest (a mapping)"),
        ({"kind": "ConfigMap", "metadata": {"name": "x"}}, "secret #1: kind must be Secret"),
        ({"kind": "Secret"}, "secret #1: metadata.name is required"),
        (
            {"metadata": {"name": "x"}, "data": {"k": "%%%"}},
            "secret 'x' key 'k' is not valid base64",
        ),
        ({"metadata": {"name": "x"}, "data": ["k"]}, "secret 'x': data must be a mapping"),
    ],
)
def test_bad_secret_manifests_name_the_field(manifest: object, error: str) -> None:
    with pytest.raises(ValueError, match="^" + error.replace("(", r"\(").replace(")", r"\)")):
        StaticSecretResolver.from_manifests([manifest])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"default_timeout_seconds": 0}, "default_timeout_seconds must be positive"),
        ({"max_result_bytes": -1}, "max_result_bytes must not be negative"),
        ({"max_connections": 0}, "max_connections must be at least 1"),
        ({"transport": "curl"}, "transport must be 'http1', 'aiohttp' or 'httpcore'"),
    ],
)
def test_settings_validate_their_fields(overrides: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        ExecutorSettings(**overrides)  # type: ignore[arg-type]


def test_plugin_token_path_defaults_to_argos_mount() -> None:
    assert PluginEndpoint("hello", "http://localhost:4355").token_file == (
        "/var/run/argo/hello/token"
    )


def test_unreadable_ca_bundle_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match=r"^ca_bundle '/nonexistent/ca\.pem': cannot load"):
        build_tls_contexts(ca_dir=None, ca_bundle="/nonexistent/ca.pem")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ({"http": {"url": "http://x"}}, "HTTP"),
        ({"plugin": {"p": {}}}, "Plugin"),
        ({"dag": {"tasks": []}}, "DAG"),
        ({"steps": [[]]}, "Steps"),
        ({"resource": {"action": "get"}}, "Resource"),
        ({"data": {"source": {}}}, "Data"),
        ({"containerSet": {"containers": []}}, "ContainerSet"),
        ({"name": "nothing"}, "Unknown"),
    ],
)
def test_template_type_follows_argo(raw: dict[str, object], kind: str) -> None:
    assert template_type(parse_template(raw)) == kind


# -- the direct path's URL and request bytes are httpx's ------------------------------------

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
_HOST = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=3).map(".".join),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.sampled_from(["localhost", "127.0.0.1", "1.2.3", "01.2.3.4", "256.1.1.1", "H.example"]),
)
_PATH_CHAR = st.sampled_from([*"abcXYZ019-._~!$&'()*+,;=:@/%?#", "/.", "/..", " ", "é"])
_URL = st.builds(
    lambda scheme, host, port, path, query: f"{scheme}://{host}{port}{path}{query}",
    st.sampled_from(["http", "https", "HTTP", "ftp"]),
    _HOST,
    st.one_of(st.just(""), st.sampled_from([":80", ":443", ":8080", ":0", ":65535", ":99999"])),
    st.one_of(st.just(""), st.lists(_PATH_CHAR, max_size=12).map(lambda p: "/" + "".join(p))),
    st.one_of(st.just(""), st.lists(_PATH_CHAR, max_size=8).map(lambda q: "?" + "".join(q))),
)


@settings(max_examples=600, deadline=None)
@given(_URL)
def test_a_simple_url_has_exactly_the_parts_httpx_gives_it(raw: str) -> None:
    """The direct path sends ``_simple_url``'s parts instead of an ``httpx.URL``'s: for
    every URL it accepts they must be httpx's, byte for byte (and the agent's own URL
    checks must accept it too)."""
    simple = _simple_url(raw)
    if simple is None:
        return
    url = _parse_url(raw)
    port = url.port or (443 if url.scheme == "https" else 80)
    assert (simple.scheme, simple.host, simple.port) == (url.scheme, url.host, port)
    assert simple.target == url.raw_path
    assert simple.netloc == httpx.Request("GET", url).headers.raw[0][1]


def test_common_urls_take_the_direct_path() -> None:
    """What the equivalence above is for: the URLs most templates use are simple."""
    for raw in (
        "http://127.0.0.1:8080/bench/17",
        "https://api.example.com/v1/items?limit=10&offset=20",
        "http://my-service.my-namespace.svc.cluster.local:8080/hook",
    ):
        assert _simple_url(raw) is not None, raw


@pytest.mark.parametrize(
    ("method", "headers", "body"),
    [
        ("GET", [(b"User-Agent", b"a"), (b"Accept-Encoding", b"gzip")], b""),
        ("POST", [(b"Content-Type", b"text/plain")], b"body"),
        ("POST", [(b"User-Agent", b"a"), (b"Content-Length", b"0")], b""),
        ("PUT", [(b"Host", b"other.example"), (b"X-Raw", b"\xff\xfe")], b"x" * 70000),
        ("DELETE", [(b"host", b"lower.example")], b""),
    ],
)
def test_the_direct_request_bytes_are_what_httpx_and_the_pool_send(
    method: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    raw = "http://127.0.0.1:8080/x/y?z=1"
    simple = _simple_url(raw)
    assert simple is not None
    prepared = _Prepared(method, raw, None, simple, [], body, None, False)
    request = httpx.Request(method, httpx.URL(raw), headers=headers, content=body)
    assert _request_bytes(prepared, simple, headers) == _encode(request, body)
