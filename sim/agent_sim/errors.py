"""API errors as the Kubernetes API server shapes them (``kind: Status``).

Every failure the simulator answers is an :class:`ApiError` carrying the exact ``Status``
object a real server would send: clients (kubernetes_asyncio, the agent's retry policy)
decide on ``code`` and ``reason``, and people read ``message``, so both are copied from
``k8s.io/apimachinery/pkg/api/errors`` (``NewNotFound``, ``NewConflict``, ``NewForbidden``
...) rather than invented. The constructors here are the only place those texts live.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "REASON_BY_CODE",
    "ApiError",
    "already_exists",
    "bad_request",
    "conflict",
    "expired",
    "forbidden",
    "generic",
    "invalid",
    "method_not_allowed",
    "not_found",
    "resource_not_found",
    "too_large",
    "unauthorized",
    "unsupported_media_type",
]

# The reason a real server gives for each status code it answers on its own
# (metav1.StatusReason*); used for injected faults so they look like real answers.
REASON_BY_CODE: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """A failed API call: an HTTP status code plus the ``Status`` body to send."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def status(self) -> dict[str, Any]:
        """The ``Status`` object, keys in the order the API server writes them."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def _details(group: str, kind: str, name: str = "", **extra: Any) -> dict[str, Any]:
    # StatusDetails fields are all omitempty.
    out: dict[str, Any] = {}
    if name:
        out["name"] = name
    if group:
        out["group"] = group
    if kind:
        out["kind"] = kind
    out.update({k: v for k, v in extra.items() if v})
    return out


def _qualified(group: str, resource: str) -> str:
    # schema.GroupResource.String(): "workflowtasksets.argoproj.io", or "secrets" for core.
    return f"{resource}.{group}" if group else resource


def not_found(group: str, resource: str, name: str) -> ApiError:
    """``NewNotFound``: ``workflowtasksets.argoproj.io "x" not found``."""
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(group, resource)} "{name}" not found',
        details=_details(group, resource, name),
    )


def resource_not_found() -> ApiError:
    """The answer for a path no API group serves."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", details={})


def already_exists(group: str, resource: str, name: str) -> ApiError:
    """``NewAlreadyExists``: 409 with reason ``AlreadyExists``."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(group, resource)} "{name}" already exists',
        details=_details(group, resource, name),
    )


def conflict(group: str, resource: str, name: str, why: str) -> ApiError:
    """``NewConflict``: ``Operation cannot be fulfilled on <gr> "<name>": <why>``."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(group, resource)} "{name}": {why}',
        details=_details(group, resource, name),
    )


def invalid(group: str, kind: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """``NewInvalid``: 422; ``causes`` are ``(type, field, message)`` triples.

    The message joins ``<field>: <message>`` like ``field.ErrorList.ToAggregate``.
    """
    parts = [f"{field}: {message}" for _, field, message in causes]
    aggregate = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    qualified_kind = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        "Invalid",
        f'{qualified_kind} "{name}" is invalid: {aggregate}',
        details=_details(
            group,
            kind,
            name,
            causes=[{"reason": t, "message": m, "field": f} for t, f, m in causes],
        ),
    )


def bad_request(message: str) -> ApiError:
    """``NewBadRequest``: 400 with no details."""
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    """What the authentication filter answers for a missing or unknown credential."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(
    group: str,
    resource: str,
    name: str,
    *,
    user: str,
    verb: str,
    subresource: str,
    namespace: str,
) -> ApiError:
    """``NewForbidden`` with the RBAC authorizer's message (``forbiddenMessage``)."""
    target = f"{resource}/{subresource}" if subresource else resource
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    why = f'User "{user}" cannot {verb} resource "{target}" in API group "{group}" {where}'
    qualified = _qualified(group, resource)
    head = f'{qualified} "{name}"' if name else qualified
    return ApiError(
        403,
        "Forbidden",
        f"{head} is forbidden: {why}",
        details=_details(group, resource, name),
    )


def unsupported_media_type(accepted: list[str]) -> ApiError:
    """``NewUnsupportedMediaTypeError``: the patch (or body) type is not served."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def too_large(limit: int) -> ApiError:
    """``NewRequestEntityTooLargeError`` as ``limitedReadBody`` raises it."""
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def expired(requested: int, oldest: int) -> ApiError:
    """The watch cache's answer for a compacted version (410, reason ``Expired``)."""
    return ApiError(410, "Expired", f"too old resource version: {requested} ({oldest})")


def method_not_allowed() -> ApiError:
    """A verb the resource does not serve (405)."""
    return ApiError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        details={},
    )


def generic(code: int, message: str | None = None, *, retry_after: int | None = None) -> ApiError:
    """Any status code, shaped like the server's own answer for it (injected faults)."""
    reason = REASON_BY_CODE.get(code, "InternalError" if code >= 500 else "Unknown")
    if message is None:
        message = {
            409: "Operation cannot be fulfilled: the object has been modified; "
            "please apply your changes to the latest version and try again",
            413: "Request entity too large: limit is 3145728",
            429: "Too many requests, please try again later.",
            500: "Internal error occurred: injected fault",
            503: "The server is currently unable to handle the request",
            504: "Timeout: request did not complete within the allowed duration",
        }.get(code, f"injected fault: status code {code}")
    details: dict[str, Any] | None = None
    if retry_after is not None:
        details = {"retryAfterSeconds": retry_after}
    return ApiError(code, reason, message, details=details, retry_after=retry_after)
