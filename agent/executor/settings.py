"""Executor settings: one frozen object, built once per process, every field documented.

The executor takes plain values (not the service's pydantic settings) so the local runner,
the service and tests can all build one without the environment. Defaults are the safe
ones: a timeout even when the template sets none, a cap on the body kept as a result, and
a deny list that keeps templates away from the cloud metadata endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from agent import __version__
from agent.executor.policy import InvalidNetwork, parse_networks
from agent.expr import Limits

__all__ = [
    "DEFAULT_CA_DIR",
    "DEFAULT_CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_DENY_NETWORKS",
    "DEFAULT_EXPR_MAX_BYTES",
    "DEFAULT_EXPR_TIMEOUT_SECONDS",
    "DEFAULT_EXPR_WORKERS",
    "DEFAULT_HTTP2",
    "DEFAULT_MAX_RESULT_BYTES",
    "DEFAULT_TIMEOUT_SECONDS",
    "DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECONDS",
    "DEFAULT_TRANSPORT",
    "ExecutorSettings",
    "PluginEndpoint",
]

TransportKind = Literal["http1", "aiohttp", "httpcore"]

# The defaults that the service's flags share (agent/service/settings.py uses these names),
# so that each value is written once; what they mean is documented on ExecutorSettings.
DEFAULT_TIMEOUT_SECONDS: float = 30.0
DEFAULT_MAX_RESULT_BYTES: int = 1 << 20
DEFAULT_CA_DIR: str = "/etc/ssl/certs/ca-certificates"
DEFAULT_DENY_NETWORKS: tuple[str, ...] = ("169.254.169.254/32", "fd00:ec2::254/128")
DEFAULT_TRANSPORT: TransportKind = "http1"
DEFAULT_HTTP2: bool = True
# Go's http.DefaultTransport, which Argo's agent uses for verified requests
# (net/http/transport.go: net.Dialer{Timeout: 30 * time.Second}, TLSHandshakeTimeout: 10 s).
DEFAULT_CONNECT_TIMEOUT_SECONDS: float = 30.0
DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECONDS: float = 10.0
# successCondition budgets (agent/executor/condition.py): generous for real conditions,
# small enough that `workers` hostile ones at once stay far below the chart's 1Gi limit.
DEFAULT_EXPR_TIMEOUT_SECONDS: float = 1.0
DEFAULT_EXPR_MAX_BYTES: int = 64 << 20
DEFAULT_EXPR_WORKERS: int = 2


@dataclass(frozen=True, slots=True)
class PluginEndpoint:
    """One executor-plugin sidecar, as Argo configures it for its agent pod.

    ``address`` is ``http://localhost:<port>``; the bearer token is read from
    ``token_path`` (Argo mounts it at ``/var/run/argo/<name>/token``). ``token_path=""``
    sends no ``Authorization`` header (tests, plugins without auth).
    """

    name: str
    address: str
    token_path: str | None = None

    @property
    def token_file(self) -> str:
        if self.token_path is None:
            return f"/var/run/argo/{self.name}/token"
        return self.token_path


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """How the executor talks to the outside world.

    Fields:
        default_timeout_seconds: applied to an HTTP template without ``timeoutSeconds``
            (Argo documents 30 s but applies none); ``None`` disables it. The timeout covers
            the secret look-ups, the connection, every redirect and reading the body.
        max_result_bytes: cap on the (decoded) response body kept as ``outputs.result``;
            a larger body fails the node with a message giving both sizes. ``0`` disables.
        max_discard_bytes: how far an over-cap body is still read (and dropped) to report
            its size; past this the message says "more than".
        ca_dir: directory of extra PEM CA certificates trusted on top of the system store
            (Argo mounts the Secret ``argo-workflows-agent-ca-certificates`` here);
            ignored when missing.
        ca_bundle: one more PEM file of CAs to trust (tests, private PKI); ``None`` = none.
        max_connections: global limit of open connections to targets.
        max_connections_per_host: limit per ``(host, port, TLS)`` target.
        keepalive_seconds: how long an idle connection is kept for reuse.
        dns_cache_seconds: how long resolved addresses are reused (http1 and aiohttp
            transports); each resolution is checked against the deny list.
        deny_networks: CIDRs no request may connect to, checked on the resolved address of
            every connection, redirects included.
        transport: ``"http1"`` (fastest, default: HTTP/1.1 on :mod:`agent.http1`),
            ``"aiohttp"`` (aiohttp's client) or ``"httpcore"`` (httpx's own pool); kept
            for comparison and as fallbacks. Behaviour is identical.
        http2: speak HTTP/2 with HTTPS targets that offer it (ALPN), as Go's client does;
            HTTP/1.1 targets keep the transport's own HTTP/1.1 pool (see
            ``AiohttpTransport``).
        connect_timeout_seconds: how long opening a TCP connection may take before the node
            fails with Go's ``dial tcp IP:PORT: i/o timeout`` (Go's default transport: 30 s,
            spread over the addresses a name resolves to, as Go's ``dialSerial`` does).
            Not applied with ``insecureSkipVerify``: Argo's insecure client is a bare
            ``http.Transport`` without a dial timeout (only the kernel's SYN retries end it).
        tls_handshake_timeout_seconds: how long the TLS handshake may take before the node
            fails with Go's ``net/http: TLS handshake timeout`` (Go's default transport:
            10 s); not applied with ``insecureSkipVerify``, as in Argo.
        user_agent: ``User-Agent`` sent when a template sets none.
        max_redirects: Go's limit: the request fails with ``stopped after 10 redirects``
            when the 10th response is still a redirect (9 redirects are followed).
        plugins: executor-plugin sidecars, tried in order.
        plugin_timeout_seconds: per call to a plugin (Argo: 30 s).
        plugin_retry_base_seconds: first back-off after a transient plugin error; doubles
            (Argo: 1 s, factor 2, jitter 0.2).
        plugin_retry_steps: attempts per plugin call (Argo: 5).
        expr_timeout_seconds: wall-clock budget of one ``successCondition`` evaluation;
            past it the node fails with ``evaluation exceeded the time limit``.
        expr_max_bytes: bytes of strings one evaluation may build (``+``, slices, builtin
            results) before the node fails with ``memory budget exceeded``.
        expr_workers: threads that run the conditions too costly for the event loop's
            slice (:mod:`agent.executor.condition`); bounds how many run at once.
    """

    default_timeout_seconds: float | None = DEFAULT_TIMEOUT_SECONDS
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    max_discard_bytes: int = 64 << 20
    ca_dir: str | None = DEFAULT_CA_DIR
    ca_bundle: str | None = None
    max_connections: int = 1000
    max_connections_per_host: int = 100
    keepalive_seconds: float = 30.0
    dns_cache_seconds: int = 10
    deny_networks: tuple[str, ...] = DEFAULT_DENY_NETWORKS
    transport: TransportKind = DEFAULT_TRANSPORT
    http2: bool = DEFAULT_HTTP2
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    tls_handshake_timeout_seconds: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECONDS
    user_agent: str = f"argo-http-agent/{__version__}"
    max_redirects: int = 10
    plugins: tuple[PluginEndpoint, ...] = field(default_factory=tuple)
    plugin_timeout_seconds: float = 30.0
    plugin_retry_base_seconds: float = 1.0
    plugin_retry_steps: int = 5
    expr_timeout_seconds: float = DEFAULT_EXPR_TIMEOUT_SECONDS
    expr_max_bytes: int = DEFAULT_EXPR_MAX_BYTES
    expr_workers: int = DEFAULT_EXPR_WORKERS

    @property
    def expr_limits(self) -> Limits:
        """The :class:`agent.expr.Limits` of one ``successCondition`` evaluation."""
        return Limits(timeout=self.expr_timeout_seconds, max_bytes=self.expr_max_bytes)

    def __post_init__(self) -> None:
        if self.default_timeout_seconds is not None and self.default_timeout_seconds <= 0:
            raise ValueError("default_timeout_seconds must be positive (or None to disable)")
        for name in ("max_result_bytes", "max_discard_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in (
            "max_connections",
            "max_connections_per_host",
            "max_redirects",
            "plugin_retry_steps",
            "expr_workers",
            "expr_max_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in (
            "keepalive_seconds",
            "plugin_timeout_seconds",
            "connect_timeout_seconds",
            "tls_handshake_timeout_seconds",
            "expr_timeout_seconds",
        ):
            if not getattr(self, name) > 0:  # NaN too
                raise ValueError(f"{name} must be positive")
        if self.plugin_retry_base_seconds < 0 or self.dns_cache_seconds < 0:
            raise ValueError("plugin_retry_base_seconds and dns_cache_seconds must not be negative")
        if self.transport not in get_args(TransportKind):
            raise ValueError(
                f"transport must be 'http1', 'aiohttp' or 'httpcore', got {self.transport!r}"
            )
        try:
            parse_networks(self.deny_networks)
        except InvalidNetwork as exc:
            raise ValueError(f"deny_networks: invalid network {exc.network!r}: {exc}") from None
