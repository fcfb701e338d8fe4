"""The HTTP executor: one ``template.http`` in, one Argo ``NodeResult`` out.

It reproduces ``executeHTTPTemplate`` of Argo's agent field by field, with Argo's texts:

* ``method`` (empty = GET), ``url``, ``headers`` in order (a repeated name sends repeated
  values; ``Host`` in any case sets the request's host), secret-sourced headers through a
  :class:`~agent.core.secrets.SecretResolver` (after its
  :class:`~agent.core.secrets.SecretAuthority`, when given, allowed the node's workflow to
  read that Secret), ``body`` / ``bodyFrom.bytes`` (bytes
  win), ``timeoutSeconds``, ``insecureSkipVerify``, redirects, extra CAs.
* success without ``successCondition`` is 2xx, else ``received non-2xx response code: N``;
  with it, the expression sees Argo's scope (below); false gives
  ``successCondition '<cond>' evaluated false``; an evaluation error is the message.
* the body becomes ``outputs.result`` whenever a response was read (success and failed
  status/condition); transport errors fail the node with Go-shaped text and no outputs.

Header names are sent as Go's ``Header.Add`` stores them (``textproto.CanonicalMIMEHeaderKey``:
``x-api-key`` -> ``X-Api-Key``; HTTP/2 lowercases every name on the wire, in Go too), and
values as Go's HTTP/1 writer sends them: leading and trailing spaces and tabs trimmed
(net/http/header.go ``writeSubset``: ``textproto.TrimString``), the bytes of the text as
they are (template text as UTF-8, a Secret's raw bytes unchanged).

Like Go's client it sends ``Accept-Encoding: gzip`` when the template does not choose an
encoding, sets no ``Range`` and the method is not HEAD (transport.go
``(*persistConn).roundTrip``: only when it can decode the answer), and then transparently
decompresses a gzip body and hides ``Content-Encoding`` / ``Content-Length`` from
``response.headers``. It drops template ``Content-Length``, ``Transfer-Encoding`` and
``Trailer`` headers, which Go's client ignores too.

Where Argo is unsafe we improve, and say so in the message: a default timeout when the
template sets none, a cap on the body kept as ``outputs.result`` (a larger body fails the
node with both sizes; never a silent truncation), strict validation of the method, URL and
header names/values (each error names the field), and the outbound deny list.

The expression scope (``successCondition``), exactly what Argo passes:

* ``request.method``, ``request.url``, ``request.body``: the template's strings as written
  (``method`` may be ``""``);
* ``request.bodyBytes``: the decoded ``bodyFrom.bytes`` as Python ``bytes``, which the
  expression language treats as Go's ``[]byte`` (``len``, indexing to ints 0-255,
  ``string()``); ``nil`` without ``bodyFrom`` (Argo passes a nil slice: ``== nil`` holds in
  both, but ``len()`` of it is an error here where Go gives 0);
* ``request.headers``: name as written -> one-element list, the **last** value of a repeated
  name, secret-sourced headers excluded (Argo's ``HTTPHeaders.ToHeader``);
* ``response.statusCode`` (int), ``response.body`` (string), ``response.headers``
  (Go-canonical name such as ``Content-Type`` -> list of values in received order).

**Artifacts.** With an output artifact (:class:`BodyArtifact`, planned by
:mod:`agent.executor.artifacts`), the decoded body is streamed into the artifact's store
while it is read (never held whole; the store holds a few parts), whatever the status, and
the node's ``outputs.artifacts`` records the complete location. ``outputs.result`` is still
the body while it fits under ``max_result_bytes``; above it there is no ``outputs.result``
and no size failure, and ``successCondition`` sees ``response.body`` as ``nil`` (never a
truncated text; a failing condition's message says why the body is nil). A store failure is
an ``Error`` naming the artifact, ``s3://bucket/key`` and the cause.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import urllib.parse
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from agent import shims
from agent.artifacts.store import ArtifactStore, StoreError
from agent.core import metrics
from agent.core.artifacts import OutputArtifact
from agent.core.model import HTTP, NodePhase, NodeResult, Outputs, SecretKeySelector
from agent.core.refs import TaskRef
from agent.core.secrets import SECRET_TEXT_ERRORS, SecretAuthority, SecretError, SecretResolver
from agent.executor.artifacts import ArtifactPlan
from agent.executor.condition import ConditionEvaluator
from agent.executor.errors import (
    describe_transport_error,
    format_url_error,
    go_quote,
    url_error_op,
)
from agent.executor.http1_transport import Http1Transport
from agent.executor.settings import ExecutorSettings
from agent.executor.transport import (
    INSECURE_EXTENSION,
    SECRET_HEADERS_EXTENSION,
    AgentClient,
    BadLocation,
)
from agent.expr import ExprError, success_condition_false_message

__all__ = ["BodyArtifact", "HTTPExecutor", "canonical_header_key", "is_token"]

log = logging.getLogger(__name__)

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
# Headers Go's client computes itself and never copies from the request's header map.
_IGNORED_HEADERS = frozenset({"content-length", "transfer-encoding", "trailer"})
# Go sends "Content-Length: 0" for an empty body only for these methods.
_LENGTH_METHODS = frozenset({"POST", "PUT", "PATCH"})
_INFLATE_STEP = 64 * 1024
_NO_PHASE_TIMEOUTS: dict[str, float | None] = dict.fromkeys(("connect", "read", "write", "pool"))
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")  # net/url getScheme
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tab is allowed
# textproto.TrimString: what Go's HTTP/1 writer trims off both ends of a header value (CR
# and LF never get this far: validateHeaders refused them).
_GO_TRIMMED = " \t\r\n"


@functools.lru_cache(maxsize=1024)
def is_token(text: str) -> bool:
    """RFC 7230 ``token``: what Go accepts as a method or header name (cached: names repeat)."""
    return bool(text) and all(char in _TOKEN_CHARS for char in text)


@functools.lru_cache(maxsize=1024)
def canonical_header_key(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``content-type`` -> ``Content-Type``.

    A name with a byte that is not a token character is returned unchanged, as in Go.
    """
    if not is_token(name):
        return name
    out = []
    upper = True
    for char in name:
        out.append(char.upper() if upper else char.lower())
        upper = char == "-"
    return "".join(out)


def _valid_header_value(value: str) -> bool:
    # Go's httpguts.ValidHeaderFieldValue: no control characters except horizontal tab.
    return _HEADER_VALUE_CONTROL.search(value) is None


class _BadTemplate(Exception):
    pass


class _BodyTooLarge(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BodyArtifact:
    """The artifact a node's response body is streamed to, with where it goes."""

    artifact: OutputArtifact
    plan: ArtifactPlan


@dataclass(slots=True)
class _Body:
    """A response body as the verdict sees it."""

    #: the body as text, or None when it is larger than the cap and went to the artifact only
    text: str | None
    size: int
    #: the node's ``outputs.artifacts`` entry once the body is stored
    artifact: dict[str, Any] | None = None
    #: the node's message when the body could not be stored
    store_failure: str = ""


@dataclass(slots=True)
class _Header:
    name: str
    value: str
    secret: SecretKeySelector | None
    index: int


@dataclass(frozen=True, slots=True)
class _SimpleURL:
    """A URL already in the form httpx would normalise it to (see :func:`_simple_url`): what
    the direct path sends without building an ``httpx.URL``."""

    scheme: str
    host: str
    port: int
    #: the request target (path and query), as httpx's ``raw_path``
    target: bytes
    #: ``host[:port]`` without a default port: httpx's ``Host`` header
    netloc: bytes


@dataclass(slots=True)
class _Prepared:
    method: str
    raw_url: str
    #: the URL as httpx parses it; None until needed when ``simple`` stands for it
    parsed: httpx.URL | None
    simple: _SimpleURL | None
    headers: list[_Header]
    body: bytes
    timeout: float | None
    accept_gzip: bool
    #: the response arrived and its body is being read (Go reports errors bare from here)
    reading_body: bool = False
    #: values read from Secrets (as sent), kept out of every message
    secret_values: list[str] = field(default_factory=list)
    #: lower-case names of the headers whose values came from a Secret
    secret_names: frozenset[str] = frozenset()

    @property
    def url(self) -> httpx.URL:
        if self.parsed is None:
            self.parsed = _parse_url(self.raw_url)
        return self.parsed


class HTTPExecutor:
    """Runs HTTP templates on a shared client; never raises but for cancellation."""

    def __init__(
        self,
        *,
        client: AgentClient,
        settings: ExecutorSettings,
        secrets: SecretResolver,
        conditions: ConditionEvaluator,
        authority: SecretAuthority | None = None,
        store: ArtifactStore | None = None,
    ) -> None:
        self._client = client
        transport = shims.client_transport(client)
        # The common request skips httpx's Request and URL objects on the default transport
        self._direct = transport if isinstance(transport, Http1Transport) else None
        self._store = store
        self._settings = settings
        self._secrets = secrets
        # None: the agent's own authority (the Secret read alone decides).
        self._authority = authority
        self._conditions = conditions

    async def run(
        self,
        spec: HTTP,
        *,
        namespace: str,
        ref: TaskRef | None = None,
        artifact: BodyArtifact | None = None,
    ) -> NodeResult:
        """Execute ``spec``; with ``artifact``, the body is streamed into its store."""
        try:
            prepared = self._prepare(spec)
        except _BadTemplate as exc:
            return _failed(str(exc))
        started = time.monotonic()
        try:
            async with asyncio.timeout(prepared.timeout) as deadline:
                result = await self._execute(
                    prepared, spec, namespace=namespace, ref=ref, artifact=artifact
                )
        except TimeoutError:
            if not deadline.expired():
                raise
            # Go: the request's context.DeadlineExceeded, wrapped in *url.Error by
            # Client.Do until the response arrives; io.ReadAll of the body returns it bare.
            cause = "context deadline exceeded"
            if prepared.reading_body:
                result = _failed(cause)
            else:
                result = _failed(format_url_error(prepared.method, prepared.url, cause))
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "http %s %s://%s -> %s in %.3fs",
                prepared.method,
                prepared.url.scheme,
                prepared.url.netloc.decode("ascii", "replace"),
                result.phase,
                time.monotonic() - started,
            )
        return result

    # -- validation ---------------------------------------------------------------------

    def _prepare(self, spec: HTTP) -> _Prepared:
        # The checks and texts of Go's client, in its order: NewRequestWithContext
        # (method, then url.Parse: bare errors), then Transport.roundTrip (header names and
        # values, scheme, host: wrapped in Client.Do's *url.Error). The log says more.
        method = spec.method or "GET"
        if not is_token(method):
            raise _refused(
                f"net/http: invalid method {go_quote(spec.method)}",
                f"http.method: {spec.method!r} is not an RFC 7230 token such as GET or POST",
            )
        simple = _simple_url(spec.url)
        try:
            url = _parse_url(spec.url) if simple is None else None
            bad_url: _BadScheme | None = None
        except _BadScheme as exc:
            bad_url, url = exc, httpx.URL("http://invalid/")
            if not bad_url.no_host:  # headers are checked for http(s) URLs only
                raise _refused(
                    format_url_error(
                        method, spec.url, f"unsupported protocol scheme {go_quote(exc.scheme)}"
                    ),
                    "http.url: only http:// and https:// URLs can be requested",
                ) from None
        headers: list[_Header] = []
        for index, header in enumerate(spec.headers):
            where = f"http.headers[{index}]"
            if not is_token(header.name):
                raise _refused(
                    format_url_error(
                        method,
                        spec.url if bad_url else url or _parse_url(spec.url),
                        f"net/http: invalid header field name {go_quote(header.name)}",
                    ),
                    f"{where}.name: {header.name!r} is not an RFC 7230 token",
                )
            if not _valid_header_value(header.value):
                raise _refused(
                    format_url_error(
                        method,
                        spec.url if bad_url else url or _parse_url(spec.url),
                        _invalid_value(header.name),
                    ),
                    f"{where}.value: contains CR, LF or another control character",
                )
            secret = header.value_from.secret_key_ref if header.value_from else None
            if header.name.lower() in _IGNORED_HEADERS and secret is None:
                continue
            headers.append(_Header(header.name, header.value, secret, index))
        if bad_url is not None:
            raise _refused(
                format_url_error(method, spec.url, "http: no Host in request URL"),
                "http.url: names no host",
            )
        if spec.body_from is not None:
            body = spec.body_from.data or b""
        else:
            body = spec.body.encode("utf-8")
        if spec.timeout_seconds is not None:
            if spec.timeout_seconds <= 0:
                # context.WithTimeout with a deadline already past: Client.Do fails at once.
                raise _refused(
                    format_url_error(
                        method, url or _parse_url(spec.url), "context deadline exceeded"
                    ),
                    f"http.timeoutSeconds: {spec.timeout_seconds} is not a positive number",
                )
            timeout: float | None = float(spec.timeout_seconds)
        else:
            timeout = self._settings.default_timeout_seconds
        names = {h.name.lower() for h in headers}
        sent_method = method.upper()
        accept_gzip = (
            "accept-encoding" not in names and "range" not in names and sent_method != "HEAD"
        )
        return _Prepared(sent_method, spec.url, url, simple, headers, body, timeout, accept_gzip)

    # -- the request --------------------------------------------------------------------

    async def _execute(
        self,
        prepared: _Prepared,
        spec: HTTP,
        *,
        namespace: str,
        ref: TaskRef | None,
        artifact: BodyArtifact | None,
    ) -> NodeResult:
        try:
            wire_headers = await self._wire_headers(prepared, namespace=namespace, ref=ref)
        except SecretError as exc:
            return _failed(str(exc))
        except _BadTemplate as exc:
            return _failed(str(exc))
        started = time.perf_counter()
        status_code: int | None = None
        try:
            try:
                response = await self._send(prepared, spec, wire_headers)
            except httpx.TooManyRedirects as exc:
                cause = f"stopped after {self._settings.max_redirects} redirects"
                return _failed(format_url_error(prepared.method, _url_of(exc, prepared.url), cause))
            except httpx.HTTPError as exc:
                return _failed(self._transport_message(prepared, exc))
            except BadLocation as exc:
                # A redirect's Location httpx cannot use: Go reports a failed request,
                # never an agent error.
                return _failed(_bad_location(prepared, exc))
            prepared.reading_body = True
            try:
                gunzip = prepared.accept_gzip and (
                    response.headers.get("content-encoding", "").strip().lower() == "gzip"
                )
                try:
                    if artifact is not None:
                        body = await self._store_body(
                            response, prepared.method, gunzip=gunzip, artifact=artifact
                        )
                    else:
                        raw = await self._read_body(response, prepared.method, gunzip=gunzip)
                        body = _Body(raw.decode("utf-8", "replace"), len(raw))
                except _BodyTooLarge as exc:
                    return _failed(str(exc))
                except httpx.HTTPError as exc:
                    return _failed(self._transport_message(prepared, exc, reading_body=True))
                except zlib.error as exc:
                    cause = f"gzip: invalid compressed body ({exc})"
                    return _failed(
                        format_url_error(prepared.method, _answered_url(response, prepared), cause)
                    )
            finally:
                await response.aclose()
            status_code = response.status_code
        finally:
            metrics.child(
                metrics.HTTP_REQUEST_SECONDS,
                metrics.method_label(prepared.method),
                metrics.status_class(status_code),
            ).observe(time.perf_counter() - started)
        return await self._judge(spec, response, body, gunzip=gunzip)

    async def _send(
        self, prepared: _Prepared, spec: HTTP, wire_headers: list[tuple[bytes, bytes]]
    ) -> httpx.Response:
        """The request, and its redirects followed.

        The common request (a simple URL to an HTTP/1.1 origin on the default transport)
        goes out as the bytes httpx would build, without an ``httpx.Request`` or ``URL``
        (together ~35 us of a request's CPU); a redirect then continues on httpx's path.
        """
        direct, simple = self._direct, prepared.simple
        insecure = spec.insecure_skip_verify
        if (
            direct is not None
            and simple is not None
            and direct.sends_directly(
                scheme=simple.scheme, host=simple.host, port=simple.port, insecure=insecure
            )
        ):
            response = await direct.send_direct(
                method=prepared.method,
                scheme=simple.scheme,
                host=simple.host,
                port=simple.port,
                data=_request_bytes(prepared, simple, wire_headers),
                insecure=insecure,
            )
            if not (self._client.follow_redirects and response.has_redirect_location):
                return response
            request = self._request(prepared, spec, wire_headers)
            response.request = request
            return await self._client.follow(request, response)
        return await self._client.send_streaming(self._request(prepared, spec, wire_headers))

    @staticmethod
    def _request(
        prepared: _Prepared, spec: HTTP, wire_headers: list[tuple[bytes, bytes]]
    ) -> httpx.Request:
        return httpx.Request(
            prepared.method,
            prepared.url,
            headers=wire_headers,
            content=prepared.body,
            extensions={
                # No per-phase timeouts: run() bounds the whole exchange (redirects and body
                # included, like Go's Client.Timeout) with the same number, which always
                # expires first; per-phase timers would only cost a timer per read.
                "timeout": _NO_PHASE_TIMEOUTS,
                INSECURE_EXTENSION: spec.insecure_skip_verify,
                SECRET_HEADERS_EXTENSION: prepared.secret_names,
            },
        )

    async def _wire_headers(
        self, prepared: _Prepared, *, namespace: str, ref: TaskRef | None
    ) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        host: str | None = None
        has_user_agent = False
        secret_names: set[str] = set()
        for header in prepared.headers:
            value = header.value
            if header.secret is not None:
                if self._authority is not None and ref is not None:
                    # Before the value is read: a denied Secret is never fetched for it.
                    await self._authority.check(ref=ref, secret=header.secret.name)
                value = await self._secrets.get_secret_value(
                    namespace=namespace, name=header.secret.name, key=header.secret.key
                )
                secret_names.add(header.name.lower())
                if value.strip(_GO_TRIMMED):
                    prepared.secret_values.append(value.strip(_GO_TRIMMED))
                if not _valid_header_value(value):
                    raise _refused(
                        format_url_error(
                            prepared.method, prepared.url, _invalid_value(header.name)
                        ),
                        f"secret '{header.secret.name}' key '{header.secret.key}' (for header "
                        f"http.headers[{header.index}]) contains CR, LF or another control "
                        "character",
                    )
                if header.name.lower() in _IGNORED_HEADERS:
                    continue
            lowered = header.name.lower()
            if lowered == "host":
                host = value  # the last Host wins, as in Argo
                continue
            has_user_agent = has_user_agent or lowered == "user-agent"
            out.append(
                (
                    canonical_header_key(header.name).encode("ascii"),
                    value.strip(_GO_TRIMMED).encode("utf-8", SECRET_TEXT_ERRORS),
                )
            )
        if host:
            out.insert(0, (b"Host", host.encode("utf-8", SECRET_TEXT_ERRORS)))
        if not has_user_agent:
            out.append((b"User-Agent", self._settings.user_agent.encode("ascii", "replace")))
        if prepared.accept_gzip:
            out.append((b"Accept-Encoding", b"gzip"))
        if not prepared.body and prepared.method in _LENGTH_METHODS:
            out.append((b"Content-Length", b"0"))
        prepared.secret_names = frozenset(secret_names)
        return out

    async def _read_body(self, response: httpx.Response, method: str, *, gunzip: bool) -> bytes:
        limit = self._settings.max_result_bytes
        # A HEAD answer declares the size of a body it does not send.
        bodiless = method == "HEAD" or response.status_code in (204, 304)
        declared = None if gunzip or bodiless else _content_length(response)
        if limit and declared is not None and declared > limit:
            raise _BodyTooLarge(_too_large(declared, limit, exact=True))
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS) if gunzip else None
        parts: list[bytes] = []
        size = 0
        stream = response.stream
        # The transport's stream itself: httpx's aiter_raw() adds a re-chunking generator
        # layer per chunk and nothing the executor needs (it closes the response itself).
        chunks = stream if isinstance(stream, httpx.AsyncByteStream) else response.aiter_raw()
        async for chunk in chunks:
            pieces = _inflate(decoder, chunk) if decoder is not None else (chunk,)
            for piece in pieces:
                size += len(piece)
                if limit and size > limit:
                    if size > max(self._settings.max_discard_bytes, limit):
                        raise _BodyTooLarge(_too_large(size, limit, exact=False))
                    continue
                parts.append(piece)
        if decoder is not None:
            tail = decoder.flush()
            size += len(tail)
            if not decoder.eof:
                raise zlib.error("unexpected end of gzip stream")
            if not (limit and size > limit):
                parts.append(tail)
        if limit and size > limit:
            raise _BodyTooLarge(_too_large(size, limit, exact=True))
        return b"".join(parts)

    async def _store_body(
        self, response: httpx.Response, method: str, *, gunzip: bool, artifact: BodyArtifact
    ) -> _Body:
        """Stream the (decoded) body into the artifact's store, part by part.

        The first ``max_result_bytes`` are also kept, to become ``outputs.result`` when the
        whole body fits; beyond that the body exists only in the store. An error reading
        the body is raised as :meth:`_read_body` raises it (the store aborts the upload).
        """
        if self._store is None:
            raise AssertionError("an HTTP executor with artifacts needs a store")
        limit = self._settings.max_result_bytes
        bodiless = method == "HEAD" or response.status_code in (204, 304)
        state = _Body(text=None, size=0)
        kept: list[bytes] | None = []
        read_error: list[BaseException] = []

        def keep(piece: bytes) -> None:
            nonlocal kept
            state.size += len(piece)
            if kept is not None:
                if limit and state.size > limit:
                    kept = None  # over the cap: the artifact alone holds the body
                else:
                    kept.append(piece)

        async def pieces() -> AsyncIterator[bytes]:
            try:
                if bodiless:
                    return
                decoder = zlib.decompressobj(16 + zlib.MAX_WBITS) if gunzip else None
                stream = response.stream
                chunks = (
                    stream if isinstance(stream, httpx.AsyncByteStream) else response.aiter_raw()
                )
                async for chunk in chunks:
                    for piece in _inflate(decoder, chunk) if decoder is not None else (chunk,):
                        keep(piece)
                        yield piece
                if decoder is not None:
                    tail = decoder.flush()
                    if not decoder.eof:
                        raise zlib.error("unexpected end of gzip stream")
                    if tail:
                        keep(tail)
                        yield tail
            except (httpx.HTTPError, zlib.error) as exc:
                read_error.append(exc)
                raise

        plan = artifact.plan
        try:
            await self._store.put(plan.target, pieces())
        except StoreError as exc:
            if read_error:
                raise read_error[0] from None
            metrics.child(metrics.ARTIFACTS, "store_error").inc()
            state.store_failure = _store_failure(plan, exc.message)
        else:
            metrics.child(metrics.ARTIFACTS, "stored").inc()
            metrics.ARTIFACT_BYTES.inc(state.size)
            state.artifact = plan.record(artifact.artifact)
        if read_error:  # a store that swallowed the body's error must not look successful
            raise read_error[0]
        if kept is not None:
            state.text = b"".join(kept).decode("utf-8", "replace")
        return state

    def _transport_message(
        self, prepared: _Prepared, exc: httpx.HTTPError, *, reading_body: bool = False
    ) -> str:
        url = _url_of(exc, prepared.url)
        if url.scheme not in ("http", "https"):
            cause = f'unsupported protocol scheme "{url.scheme}"'
        else:
            cause = describe_transport_error(exc, url=url, reading_body=reading_body)
        # No library's error text may carry a header value into a status: the executor
        # validates every value before sending, and this is the last line of defence.
        cause = _scrub(cause, prepared.secret_values)
        if reading_body:
            # Argo's agent reads the body itself (io.ReadAll) and returns its error as is:
            # no *url.Error around it (workflow/executor/agent.go executeHTTPTemplate).
            return cause
        return format_url_error(prepared.method, url, cause)

    # -- the verdict --------------------------------------------------------------------

    async def _judge(
        self, spec: HTTP, response: httpx.Response, body: _Body, *, gunzip: bool
    ) -> NodeResult:
        result = await self._verdict(spec, response, body, gunzip=gunzip)
        if not body.store_failure:
            return result
        # Argo (operator.go inferFailedReason): the main container's failure ranks first
        # (Failed, its message); otherwise a failed artifact save, the wait container's
        # failure, makes the node Error.
        if result.phase == NodePhase.FAILED:
            result.message = f"{result.message}; {body.store_failure}"
            return result
        return NodeResult(phase=NodePhase.ERROR, message=body.store_failure, outputs=result.outputs)

    async def _verdict(
        self, spec: HTTP, response: httpx.Response, body: _Body, *, gunzip: bool
    ) -> NodeResult:
        outputs: Outputs | None = Outputs(
            result=body.text, artifacts=None if body.artifact is None else [body.artifact]
        )
        if body.text is None and body.artifact is None:
            outputs = None  # nothing to report: the body is neither kept nor stored
        withheld = "" if body.text is not None else _withheld_note(body.size, self._settings)
        condition = spec.success_condition
        status = response.status_code
        if not condition:
            if 200 <= status < 300:
                return NodeResult(phase=NodePhase.SUCCEEDED, outputs=outputs)
            return NodeResult(
                phase=NodePhase.FAILED,
                message=f"received non-2xx response code: {status}",
                outputs=outputs,
            )
        scope = {
            "request": _request_scope(spec),
            "response": {
                "statusCode": status,
                # nil above the cap: the body is in the artifact only, never truncated
                "body": body.text,
                "headers": _response_headers(response, gunzip=gunzip),
            },
        }
        try:
            ok = await self._conditions.eval_bool(condition, scope)
        except ExprError as exc:
            metrics.CONDITION_EVALUATIONS.labels(outcome="error").inc()
            # Argo reports no outputs here; a stored artifact is reported all the same.
            return NodeResult(
                phase=NodePhase.FAILED,
                message=f"{exc}{withheld}",
                outputs=None if body.artifact is None else outputs,
            )
        metrics.CONDITION_EVALUATIONS.labels(outcome="true" if ok else "false").inc()
        if ok:
            return NodeResult(phase=NodePhase.SUCCEEDED, outputs=outputs)
        return NodeResult(
            phase=NodePhase.FAILED,
            message=success_condition_false_message(condition) + withheld,
            outputs=outputs,
        )


def _withheld_note(size: int, settings: ExecutorSettings) -> str:
    return (
        f" (response.body is nil: the body of {size} bytes exceeds the agent's limit of "
        f"{settings.max_result_bytes} bytes for outputs.result and is only in the artifact)"
    )


def _store_failure(plan: ArtifactPlan, cause: str) -> str:
    text = cause if plan.target.url in cause else f"{plan.target.url}: {cause}"
    return f"failed to save artifact '{plan.name}': {text}"


def _refused(message: str, explanation: str) -> _BadTemplate:
    """A request Go's client refuses: the node gets Go's text, the log the explanation."""
    log.info("http template refused: %s (%s)", explanation, message)
    return _BadTemplate(message)


def _invalid_value(name: str) -> str:
    # transport.go validateHeaders: the value is not shown; the key is Header.Add's.
    return f"net/http: invalid header field value for {go_quote(canonical_header_key(name))}"


@functools.lru_cache(maxsize=4096)
def _parse_url(raw: str) -> httpx.URL:
    # Cached per distinct string (httpx.URL is immutable): tasks calling the same endpoint
    # parse it once. Errors are not cached (an exception leaves no entry).
    if _CONTROL.search(raw):
        # net/url/url.go parse -> stringContainsCTLByte; a bare *url.Error with Op "parse".
        raise _refused(
            f"parse {go_quote(raw)}: net/url: invalid control character in URL",
            "http.url: contains a control character",
        )
    _check_authority(raw)
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError) as exc:
        raise _BadTemplate(f"invalid template: http.url: cannot parse {raw!r}: {exc}") from None
    if url.scheme not in ("http", "https"):
        # transport.go roundTrip: badStringError, after the header checks; Client.Do's Op
        # is the method's, which is not known here: "Get" is patched in by the caller.
        raise _BadScheme(url.scheme)
    if not url.host:
        raise _BadScheme("", no_host=True)
    return url


class _BadScheme(Exception):
    """A URL Go parses but its transport refuses (no http(s) scheme, or no host)."""

    def __init__(self, scheme: str, *, no_host: bool = False) -> None:
        super().__init__(scheme)
        self.scheme = scheme
        self.no_host = no_host


# Characters Go's url.Parse refuses in a host name (it would otherwise be percent-encoded
# by httpx and sent to DNS as is).
_BAD_HOST_CHARS = frozenset(' "<>\\^`{|}')


def _check_authority(raw: str) -> None:
    """Reject what Go's ``url.Parse`` rejects in the host and port, in Go's words."""
    try:
        parts = urllib.parse.urlsplit(raw)
    except ValueError:
        return  # unparsable: httpx's parse below says why
    netloc = parts.netloc.rpartition("@")[2]
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = netloc.partition(":")
    for char in host:
        if char in _BAD_HOST_CHARS:
            # net/url/url.go parseHost: a bare *url.Error with Op "parse".
            raise _refused(
                f'parse {go_quote(raw)}: invalid character "{char}" in host name',
                "http.url: the host name has a character URLs do not allow",
            )
    if port and (not port.isdigit() or not 0 < int(port) <= 65535):
        raise _refused(
            f'parse {go_quote(raw)}: invalid port ":{port}" after host',
            "http.url: the port is not a number from 1 to 65535",
        )


def _request_scope(spec: HTTP) -> dict[str, Any]:
    headers: dict[str, list[str]] = {}
    for header in spec.headers:
        if header.value_from is None:
            headers[header.name] = [header.value]
    body_bytes = None
    if spec.body_from is not None and spec.body_from.data is not None:
        body_bytes = bytes(spec.body_from.data)
    return {
        "method": spec.method,
        "url": spec.url,
        "body": spec.body,
        "bodyBytes": body_bytes,
        "headers": headers,
    }


def _response_headers(response: httpx.Response, *, gunzip: bool) -> dict[str, list[str]]:
    hidden = {"Transfer-Encoding"}
    if gunzip:
        hidden |= {"Content-Encoding", "Content-Length"}
    out: dict[str, list[str]] = {}
    for raw_name, raw_value in response.headers.raw:
        name = canonical_header_key(raw_name.decode("latin-1"))
        if name in hidden:
            continue
        out.setdefault(name, []).append(raw_value.decode("utf-8", "replace"))
    return out


def _inflate(decoder: Any, data: bytes) -> Iterator[bytes]:
    # Bounded steps: a small compressed chunk can expand enormously (a gzip bomb).
    while data:
        piece = decoder.decompress(data, _INFLATE_STEP)
        if piece:
            yield piece
        data = decoder.unconsumed_tail
        if decoder.eof:
            return


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _too_large(size: int, limit: int, *, exact: bool) -> str:
    amount = f"{size} bytes" if exact else f"more than {size} bytes"
    return (
        f"response body of {amount} exceeds the agent's limit of {limit} bytes for outputs.result"
    )


# A URL httpx would leave exactly as written: lower-case host names (or a dotted IPv4
# address), a port from 1 to 65535, and a path and query of characters it does not
# percent-encode. Anything else (upper case, IPv6, user info, fragments, percent escapes,
# dot segments, default ports written out) takes httpx's parser.
_SIMPLE_URL = re.compile(
    r"(https?)://((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)"
    r"(?::([1-9][0-9]{0,4}))?(/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*)?(\?[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*)?"
)
_NUMERIC_HOST = re.compile(r"[0-9.]+")
_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)


def _simple_url(raw: str) -> _SimpleURL | None:
    """``raw`` as the parts httpx would give, when it is one of the URLs httpx leaves as
    written (tests/test_execute_units.py checks the equivalence); else None."""
    match = _SIMPLE_URL.fullmatch(raw)
    if match is None:
        return None
    scheme, host, port_text, path, query = match.groups()
    if _NUMERIC_HOST.fullmatch(host) and not _IPV4.fullmatch(host):
        return None  # a number httpx or Go may read as an address in another form
    path = path or "/"
    if "/." in path:
        return None  # dot segments, which httpx removes
    default = 443 if scheme == "https" else 80
    port = int(port_text) if port_text else default
    if port > 65535:
        return None
    netloc = host if port == default else f"{host}:{port}"
    target = path + (query or "")
    return _SimpleURL(scheme, host, port, target.encode("ascii"), netloc.encode("ascii"))


def _request_bytes(
    prepared: _Prepared, simple: _SimpleURL, headers: list[tuple[bytes, bytes]]
) -> bytes:
    """The request's bytes as ``httpx.Request`` and the HTTP/1.1 pool would write them:
    ``Host`` first unless the template set one, ``Content-Length`` last for a body."""
    parts = [prepared.method.encode("ascii"), b" ", simple.target, b" HTTP/1.1\r\n"]
    names = [name.lower() for name, _ in headers]
    if b"host" not in names:
        parts += (b"Host: ", simple.netloc, b"\r\n")
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    body = prepared.body
    if body and b"content-length" not in names:
        parts += (b"Content-Length: ", str(len(body)).encode("ascii"), b"\r\n")
    parts.append(b"\r\n")
    if body:
        parts.append(body)
    return b"".join(parts)


def _answered_url(response: httpx.Response, prepared: _Prepared) -> httpx.URL:
    """The URL that gave ``response``: after redirects, the last one."""
    try:
        return response.url
    except RuntimeError:  # the direct path attaches no request: no redirect was followed
        return prepared.url


def _url_of(exc: httpx.HTTPError, default: httpx.URL) -> httpx.URL:
    try:
        return exc.request.url
    except RuntimeError:  # httpx raises when no request is attached
        return default


def _scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value (as text and as a Python bytes repr) masked."""
    for secret in secrets:
        encoded = secret.encode("utf-8", SECRET_TEXT_ERRORS)
        for form in {secret, repr(encoded)[2:-1], encoded.decode("latin-1")}:
            if form and form in text:
                text = text.replace(form, "***")
    return text


def _bad_location(prepared: _Prepared, exc: BadLocation) -> str:
    """A redirect whose ``Location`` cannot be followed, in Go's words.

    Go resolves the Location against the request's URL (client.go ``(*Client).do``:
    ``req.URL.Parse(loc)``). A text with a scheme and no ``//`` (``http:\\\\host/x``)
    parses as an opaque URL without a host, and that hop fails in
    ``(*Transport).roundTrip`` with ``http: no Host in request URL``, under that URL (Go's
    ``%q``). Any other Location httpx refuses is reported as Go's ``failed to parse
    Location header %q: ...`` under the URL that answered, with httpx's reason.
    """
    location = exc.location
    op = url_error_op(prepared.method)
    scheme = _SCHEME.match(location)
    if scheme and not location[scheme.end() :].startswith("/"):
        return f"{op} {go_quote(location)}: http: no Host in request URL"
    reason = exc.reason.removeprefix("Invalid URL in location header: ").rstrip(".")
    return format_url_error(
        prepared.method,
        exc.url,
        f"failed to parse Location header {go_quote(location)}: {reason}",
    )


def _failed(message: str) -> NodeResult:
    return NodeResult(phase=NodePhase.FAILED, message=message)
