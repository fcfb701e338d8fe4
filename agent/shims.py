"""Checked access to the few private attributes of httpx and aiohttp the agent relies on.

Some of the agent's speed and some of its promises rest on names its dependencies do not
publish: httpx's connection pool slot (the pool that applies the outbound policy), its
cookie store and redirect hooks (Go's redirect rule, a lean send), and aiohttp's
``trust_env`` and connection-retry switches (no netrc/proxy lookup per request; no request
sent twice) and its connection hook ``TCPConnector._wrap_create_connection`` (Go's TLS
handshake timeout: aiohttp has no public one). A new release may rename any of them, and
most would then fail silently (an attribute set that nobody reads). So every such use goes
through a named function or override here, and :func:`check` verifies at start-up, on the
installed versions, that each name still exists: a missing one stops the agent with a
message naming the package, its version and the attribute, instead of a quietly slower or
less careful agent.
``constraints.txt`` pins the tested versions; ``pyproject.toml`` allows their minor series.

kubernetes_asyncio is reached through public names only (``ApiClient.rest_client``, its
``pool_manager``: an aiohttp session), so its private use is aiohttp's ``_trust_env``.

This module imports httpx and aiohttp only inside :func:`check` and for type checking:
``argo-http-agent run`` imports it in the supervisor, which never loads those libraries
(it asks a child process instead, :func:`check_in_child`).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp
    import httpcore
    import httpx

__all__ = [
    "ShimError",
    "build_redirect_request",
    "check",
    "check_in_child",
    "check_or_exit",
    "client_transport",
    "disable_retry_connection",
    "disable_trust_env",
    "replace_cookie_store",
    "set_pool",
]

_DISTRIBUTION = "argo-http-agent"


class ShimError(RuntimeError):
    """An installed dependency lacks a private attribute the agent relies on."""


# ---------------------------------------------------------------------------------------
# the uses


def set_pool(transport: httpx.AsyncHTTPTransport, pool: httpcore.AsyncConnectionPool) -> None:
    """Run ``transport`` on ``pool``: httpx takes no network backend, so the pool is swapped."""
    transport._pool = pool


def replace_cookie_store(client: httpx.AsyncClient, cookies: httpx.Cookies) -> None:
    """Install ``cookies`` as is: the public setter copies it into a plain ``httpx.Cookies``,
    losing a subclass that skips extraction."""
    client._cookies = cookies


def client_transport(client: httpx.AsyncClient) -> httpx.AsyncBaseTransport:
    """The transport ``client`` was built with (httpx keeps it private)."""
    return client._transport


def build_redirect_request(
    client: httpx.AsyncClient, request: httpx.Request, response: httpx.Response
) -> httpx.Request:
    """The next request of a redirect chain, built by httpx itself.

    It calls the client's ``_redirect_method`` hook, which the agent's client overrides
    with Go's method rule; :func:`check` verifies that httpx still has that hook.
    """
    return client._build_redirect_request(request, response)


def disable_retry_connection(session: aiohttp.ClientSession) -> None:
    """Never resend a request because a reused keep-alive connection failed.

    aiohttp silently sends an idempotent request a second time in that case and has no
    public switch for it in 3.x.
    """
    session._retry_connection = False


def disable_trust_env(session: aiohttp.ClientSession) -> None:
    """Stop ``session`` reading netrc and the proxy variables (in a thread) per request."""
    session._trust_env = False


# ---------------------------------------------------------------------------------------
# the check


@dataclass(frozen=True, slots=True)
class _Need:
    package: str  # the distribution whose version is reported
    owner: str  # the public name of the class, as the message spells it
    role: str  # which of check()'s parameters holds the class
    attribute: str
    kind: str  # "method": on the class, called or overridden; "field": on a fresh instance
    parameters: tuple[str, ...] = ()  # a method's parameters after self


_NEEDS = (
    _Need("httpx", "httpx.AsyncHTTPTransport", "http_transport", "_pool", "field"),
    _Need("httpx", "httpx.AsyncClient", "async_client", "_cookies", "field"),
    _Need("httpx", "httpx.AsyncClient", "async_client", "_transport", "field"),
    _Need(
        "httpx",
        "httpx.AsyncClient",
        "async_client",
        "_build_redirect_request",
        "method",
        ("request", "response"),
    ),
    # overridden by agent.executor.transport.AgentClient: httpx must still call it
    _Need(
        "httpx",
        "httpx.AsyncClient",
        "async_client",
        "_redirect_method",
        "method",
        ("request", "response"),
    ),
    _Need("aiohttp", "aiohttp.ClientSession", "client_session", "_trust_env", "field"),
    _Need("aiohttp", "aiohttp.ClientSession", "client_session", "_retry_connection", "field"),
    # overridden by agent.executor.transport._AgentConnector, which adds asyncio's
    # ssl_handshake_timeout to the keywords aiohttp passes on to loop.create_connection
    _Need(
        "aiohttp",
        "aiohttp.TCPConnector",
        "tcp_connector",
        "_wrap_create_connection",
        "method",
        ("args", "addr_infos", "req", "timeout", "client_error", "kwargs"),
    ),
)


def check(
    *,
    async_client: type[Any] | None = None,
    http_transport: type[Any] | None = None,
    client_session: type[Any] | None = None,
    tcp_connector: type[Any] | None = None,
) -> None:
    """Raise :class:`ShimError` naming the first private attribute that is gone.

    The classes default to the installed ``httpx.AsyncClient``, ``httpx.AsyncHTTPTransport``,
    ``aiohttp.ClientSession`` and ``aiohttp.TCPConnector``; fields are looked up on a
    freshly built instance (they are set in ``__init__``), methods on the class. Call it
    outside a running event loop: the aiohttp session is built and closed on a loop of its
    own.
    """
    if async_client is None or http_transport is None:
        import httpx

        async_client = async_client or httpx.AsyncClient
        http_transport = http_transport or httpx.AsyncHTTPTransport
    if client_session is None or tcp_connector is None:
        import aiohttp

        client_session = client_session or aiohttp.ClientSession
        tcp_connector = tcp_connector or aiohttp.TCPConnector
    classes = {
        "async_client": async_client,
        "http_transport": http_transport,
        "client_session": client_session,
        "tcp_connector": tcp_connector,
    }
    fields = {
        "async_client": _fields_of(async_client()),
        "http_transport": _fields_of(http_transport()),
        "client_session": asyncio.run(_session_fields(client_session)),
        "tcp_connector": frozenset[str](),  # only a method is needed
    }
    for need in _NEEDS:
        if need.kind == "field":
            if need.attribute not in fields[need.role]:
                raise ShimError(_message(need, "is gone"))
            continue
        method = getattr(classes[need.role], need.attribute, None)
        if not callable(method):
            raise ShimError(_message(need, "is gone"))
        if _parameters(method) != need.parameters:
            wanted = ", ".join(need.parameters)
            raise ShimError(_message(need, f"no longer takes ({wanted})"))


def check_in_child() -> None:
    """:func:`check` in a fresh interpreter, so this process never imports httpx or aiohttp."""
    child = subprocess.run(
        [sys.executable, "-c", "import agent.shims as s; s._child_main()"],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise ShimError(child.stderr.strip() or f"dependency check exited {child.returncode}")


def check_or_exit(command: str) -> None:
    """:func:`check`; on failure print ``command: message`` on stderr and exit 2."""
    try:
        check()
    except ShimError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _child_main() -> None:
    try:
        check()
    except ShimError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def _fields_of(instance: object) -> frozenset[str]:
    names = set(getattr(instance, "__dict__", ()))
    names.update(name for name in _slots(type(instance)) if hasattr(instance, name))
    return frozenset(names)


def _slots(cls: type[Any]) -> Iterator[str]:
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        yield from (slots,) if isinstance(slots, str) else slots


async def _session_fields(cls: type[Any]) -> frozenset[str]:
    session = cls()  # aiohttp builds its connector on the running loop
    try:
        return _fields_of(session)
    finally:
        await session.close()


def _parameters(method: Callable[..., Any]) -> tuple[str, ...]:
    try:
        names = tuple(inspect.signature(method).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to compare
        return ()
    return names[1:] if names[:1] == ("self",) else names


def _message(need: _Need, problem: str) -> str:
    return (
        f"{need.package} {_version(need.package)}: {need.owner}.{need.attribute} {problem}; "
        f"this agent is tested with {_tested_range(need.package)} (see constraints.txt)"
    )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _tested_range(package: str) -> str:
    """The requirement this agent's distribution declares for ``package``."""
    try:
        requirements = importlib.metadata.requires(_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        requirements = []
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[[^]]*\])?\s*([^;]*)", requirement)
        if match and _normalize(match[1]) == _normalize(package) and ";" not in requirement:
            # lower bounds first, as pyproject.toml spells them
            specifiers = sorted(
                (s.strip() for s in match[2].split(",") if s.strip()),
                key=lambda s: not s.startswith(">"),
            )
            return package + ",".join(specifiers)
    return f"the {package} range in pyproject.toml"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
