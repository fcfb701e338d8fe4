"""The ``/_sim`` admin endpoint: control the simulator from another process.

End-to-end tests run the agent (and sometimes the simulator) as separate processes, so
everything the in-process helpers can do is also reachable over HTTP under a path no
Kubernetes client uses. Bodies are JSON validated by pydantic (a bad field is a 400 that
names it). The endpoint needs no token: the simulator listens on 127.0.0.1 only.

=================================  ==========================================================
``GET /_sim/info``                 URL, current resourceVersion, object and watch counts
``GET /_sim/requests?since=N``     request log records after sequence N (``next`` for polling);
                                   filters ``verb``, ``resource``, ``subresource``,
                                   ``namespace``, ``name``
``GET /_sim/requests/wait``        the first matching record (same filters), waiting for it
                                   up to ``timeout`` seconds (504 then); ``completed=false``
                                   returns it before it is answered
``DELETE /_sim/requests``          clear the request log
``GET /_sim/watches/wait?count=N`` wait until N watches are open (``timeout``, 504)
``POST /_sim/faults/fail``         ``{"code", "count", "verb", "resource", "pathContains",
                                   "user", "message", "retryAfter", "bodyLargerThan",
                                   "disconnect"}``
``POST /_sim/faults/delay``        ``{"seconds", "count", "verb", "resource", "pathContains",
                                   "user"}``
``POST /_sim/faults/blackhole``    ``{"user"}``: cut that user off the API (held, never
                                   applied) until lifted
``DELETE /_sim/faults/blackhole``  ``{"user"}`` (or every blackhole without one): lift it
``GET|DELETE /_sim/faults``        list or clear fault rules (clearing lifts blackholes)
``GET|DELETE /_sim/usage``         per user: requests (by verb), bytes received, answered
                                   and streamed on watches; or start counting afresh
``POST /_sim/watches/drop``        ``{"abrupt": false}``: end every open watch now
``POST /_sim/compact``             drop the event history (older versions get 410)
``POST /_sim/tokens``              ``{"token", "user", "rules": "*" | [{"verbs", "resources",
                                   "namespaces", "resourceNames"}]}``
``DELETE /_sim/tokens/{token}``    forget a token
``POST /_sim/grants``              ``{"user" | "group", "rules"}``: bind rules to a subject
                                   without a token (SubjectAccessReviews consult them)
``DELETE /_sim/grants``            ``{"user" | "group"}``: unbind them
``GET /_sim/grants``               every binding
``PATCH /_sim/options``            ``{"bookmarkInterval", "watchTimeout", "maxBodyBytes"}``
=================================  ==========================================================
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from .auth import rules_from_json
from .resources import RESOURCES
from .state import SimState

__all__ = ["ADMIN_PREFIX", "admin_routes"]

ADMIN_PREFIX = "/_sim"

_Body = TypeVar("_Body", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class _FailBody(_Model):
    code: int = 500
    count: int | None = Field(default=1, ge=1)
    verb: str | None = None
    resource: str | None = None
    path_contains: str | None = None
    message: str | None = None
    retry_after: int | None = Field(default=None, ge=0)
    body_larger_than: int | None = Field(default=None, ge=0)
    disconnect: bool = False
    user: str | None = None


class _DelayBody(_Model):
    seconds: float = Field(ge=0)
    count: int | None = Field(default=None, ge=1)
    verb: str | None = None
    resource: str | None = None
    path_contains: str | None = None
    user: str | None = None


class _BlackholeBody(_Model):
    user: str | None = None


class _DropBody(_Model):
    abrupt: bool = False


class _TokenBody(_Model):
    token: str = Field(min_length=1)
    user: str = "system:serviceaccount:default:argo-http-agent"
    rules: Any = "*"


class _GrantBody(_Model):
    user: str = ""
    group: str = ""
    rules: Any = None


class _OptionsBody(_Model):
    bookmark_interval: float | None = Field(default=None, gt=0)
    watch_timeout: float | None = Field(default=None, gt=0)
    max_body_bytes: int | None = Field(default=None, ge=1)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _error(message: str, status: int = 400) -> web.Response:
    return _json({"error": message}, status)


async def _body(request: web.Request, model: type[_Body]) -> _Body:
    raw = await request.read()
    try:
        data = json.loads(raw) if raw.strip() else {}
        return model.model_validate(data)
    except json.JSONDecodeError as err:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"body is not JSON: {err}"}), content_type="application/json"
        ) from None
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()
        )
        raise web.HTTPBadRequest(
            text=json.dumps({"error": problems}), content_type="application/json"
        ) from None


def admin_routes(state: SimState, *, url: Callable[[], str]) -> list[web.RouteDef]:
    """The admin routes bound to ``state``."""

    async def info(_: web.Request) -> web.Response:
        store = state.store
        return _json(
            {
                "url": url(),
                "resourceVersion": str(store.resource_version),
                "historyFloor": str(store.history_floor),
                "objects": {k.plural: store.count(k) for k in RESOURCES},
                "watches": len(store.watchers()),
                "options": {
                    "bookmarkInterval": state.options.bookmark_interval,
                    "watchTimeout": state.options.watch_timeout,
                    "maxBodyBytes": state.options.max_body_bytes,
                },
            }
        )

    def filters(request: web.Request) -> dict[str, Any]:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "since must be an integer sequence number"}),
                content_type="application/json",
            ) from None
        chosen: dict[str, Any] = {"since": since}
        for key in ("verb", "resource", "subresource", "namespace", "name"):
            if key in request.query:
                chosen[key] = request.query[key]
        return chosen

    def wait_timeout(request: web.Request) -> float:
        try:
            value = float(request.query.get("timeout", "30"))
        except ValueError:
            value = -1.0
        if not 0 < value <= 600:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "timeout must be a number of seconds in (0, 600]"}),
                content_type="application/json",
            )
        return value

    async def requests(request: web.Request) -> web.Response:
        records = state.log.select(**filters(request))
        return _json({"requests": [r.to_json() for r in records], "next": state.log.next_seq - 1})

    async def wait_request(request: web.Request) -> web.Response:
        chosen = filters(request)
        completed = request.query.get("completed", "true").lower() != "false"
        try:
            async with asyncio.timeout(wait_timeout(request)):
                record = await state.log.wait_for(completed=completed, **chosen)
        except TimeoutError:
            return _error("no matching request arrived in time", 504)
        return _json({"request": record.to_json()})

    async def wait_watches(request: web.Request) -> web.Response:
        try:
            count = int(request.query.get("count", "1"))
        except ValueError:
            return _error("count must be an integer")
        opened = state.store.watch_opened
        try:
            async with asyncio.timeout(wait_timeout(request)):
                while len(state.store.watchers()) < count:
                    opened.clear()
                    await opened.wait()
        except TimeoutError:
            return _error(f"fewer than {count} watches opened in time", 504)
        return _json({"watches": len(state.store.watchers())})

    async def clear_requests(_: web.Request) -> web.Response:
        state.log.clear()
        return _json({"cleared": True})

    async def fail(request: web.Request) -> web.Response:
        body = await _body(request, _FailBody)
        try:
            rule = state.faults.add_failure(
                body.code,
                count=body.count,
                verb=body.verb,
                resource=body.resource,
                path_contains=body.path_contains,
                message=body.message,
                retry_after=body.retry_after,
                body_larger_than=body.body_larger_than,
                disconnect=body.disconnect,
                user=body.user,
            )
        except ValueError as err:
            return _error(str(err))
        return _json(rule.to_json(), 201)

    async def delay(request: web.Request) -> web.Response:
        body = await _body(request, _DelayBody)
        rule = state.faults.add_delay(
            body.seconds,
            count=body.count,
            verb=body.verb,
            resource=body.resource,
            path_contains=body.path_contains,
            user=body.user,
        )
        return _json(rule.to_json(), 201)

    async def blackhole(request: web.Request) -> web.Response:
        body = await _body(request, _BlackholeBody)
        try:
            hole = state.faults.add_blackhole(body.user or "")
        except ValueError as err:
            return _error(f"user: {err}")
        return _json(hole.to_json(), 201)

    async def lift(request: web.Request) -> web.Response:
        body = await _body(request, _BlackholeBody)
        return _json({"lifted": state.faults.lift(body.user)})

    async def usage(_: web.Request) -> web.Response:
        return _json(state.usage.describe())

    async def clear_usage(_: web.Request) -> web.Response:
        state.usage.clear()
        return _json({"cleared": True})

    async def faults(_: web.Request) -> web.Response:
        return _json(state.faults.describe())

    async def clear_faults(_: web.Request) -> web.Response:
        state.faults.clear()
        return _json({"cleared": True})

    async def drop(request: web.Request) -> web.Response:
        body = await _body(request, _DropBody)
        return _json({"dropped": state.drop_watches(abrupt=body.abrupt)})

    async def compact(_: web.Request) -> web.Response:
        return _json({"resourceVersion": str(state.store.compact())})

    async def add_token(request: web.Request) -> web.Response:
        body = await _body(request, _TokenBody)
        try:
            rules = rules_from_json(body.rules)
            state.tokens.add(body.token, rules, user=body.user)
        except ValueError as err:
            return _error(str(err))
        return _json({"user": body.user, "rules": [r.to_json() for r in rules]}, 201)

    async def remove_token(request: web.Request) -> web.Response:
        state.tokens.remove(request.match_info["token"])
        return _json({"removed": True})

    async def grant(request: web.Request) -> web.Response:
        body = await _body(request, _GrantBody)
        try:
            if body.rules is None:
                raise ValueError("rules are required")
            rules = rules_from_json(body.rules)
            state.subjects.grant(rules, user=body.user, group=body.group)
        except ValueError as err:
            return _error(str(err))
        subject = {"user": body.user} if body.user else {"group": body.group}
        return _json({**subject, "rules": [r.to_json() for r in rules]}, 201)

    async def revoke(request: web.Request) -> web.Response:
        body = await _body(request, _GrantBody)
        try:
            state.subjects.revoke(user=body.user, group=body.group)
        except ValueError as err:
            return _error(str(err))
        return _json({"revoked": True})

    async def grants(_: web.Request) -> web.Response:
        return _json(state.subjects.describe())

    async def set_options(request: web.Request) -> web.Response:
        body = await _body(request, _OptionsBody)
        options = state.options
        if body.bookmark_interval is not None:
            options.bookmark_interval = body.bookmark_interval
        if "watch_timeout" in body.model_fields_set:
            options.watch_timeout = body.watch_timeout
        if body.max_body_bytes is not None:
            options.max_body_bytes = body.max_body_bytes
        return _json(
            {
                "bookmarkInterval": options.bookmark_interval,
                "watchTimeout": options.watch_timeout,
                "maxBodyBytes": options.max_body_bytes,
            }
        )

    p = ADMIN_PREFIX
    return [
        web.get(f"{p}/info", info),
        web.get(f"{p}/requests", requests),
        web.get(f"{p}/requests/wait", wait_request),
        web.get(f"{p}/watches/wait", wait_watches),
        web.delete(f"{p}/requests", clear_requests),
        web.post(f"{p}/faults/fail", fail),
        web.post(f"{p}/faults/delay", delay),
        web.post(f"{p}/faults/blackhole", blackhole),
        web.delete(f"{p}/faults/blackhole", lift),
        web.get(f"{p}/usage", usage),
        web.delete(f"{p}/usage", clear_usage),
        web.get(f"{p}/faults", faults),
        web.delete(f"{p}/faults", clear_faults),
        web.post(f"{p}/watches/drop", drop),
        web.post(f"{p}/compact", compact),
        web.post(f"{p}/tokens", add_token),
        web.delete(p + "/tokens/{token}", remove_token),
        web.post(f"{p}/grants", grant),
        web.delete(f"{p}/grants", revoke),
        web.get(f"{p}/grants", grants),
        web.patch(f"{p}/options", set_options),
    ]
