"""``SubjectAccessReview``: ask the simulator's authorizer about another subject.

``POST /apis/authorization.k8s.io/v1/subjectaccessreviews`` (cluster-scoped, create only)
answers whether ``spec.user`` with ``spec.groups`` may do what ``spec.resourceAttributes``
(or ``spec.nonResourceAttributes``) describe, as the API server's authorizer would for a
request of that subject (Kubernetes documentation: "Authorization", Checking API access;
API reference: SubjectAccessReview v1). Nothing is stored: the answer is the review
echoed with ``status.allowed`` set, 201 Created.

The rules consulted are those :class:`~agent_sim.auth.SubjectRules` binds to the user
and its groups plus the rules of every token of that user, matched exactly as requests
are (:meth:`~agent_sim.auth.Rule.allows`). The validation is the API server's
(``ValidateSubjectAccessReviewSpec``): exactly one of the two attribute kinds, and a user
or at least one group, else 422 Invalid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import errors
from .auth import Attributes, Identity
from .state import SimState

__all__ = ["GROUP", "RESOURCE", "VERSION", "review"]

GROUP = "authorization.k8s.io"
VERSION = "v1"
RESOURCE = "subjectaccessreviews"
_KIND = "SubjectAccessReview"


def review(state: SimState, body: Any) -> dict[str, Any]:
    """The answered review for a decoded request ``body``; raises ``ApiError`` 400/422."""
    if not isinstance(body, Mapping):
        raise errors.bad_request("the request body must be a SubjectAccessReview object")
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        spec = {}
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    user = spec.get("user") or ""
    groups = spec.get("groups") or []
    if not isinstance(user, str) or not isinstance(groups, list):
        raise errors.bad_request("spec.user must be a string and spec.groups a list of strings")
    # ValidateSubjectAccessReviewSpec (pkg/apis/authorization/validation): every problem
    # at once, in its order and with its texts.
    problems: list[tuple[str, str, str]] = []
    if resource is not None and non_resource is not None:
        problems.append(
            (
                "FieldValueInvalid",
                "spec.nonResourceAttributes",
                "Invalid value: null: cannot be specified in combination with resourceAttributes",
            )
        )
    if resource is None and non_resource is None:
        problems.append(
            (
                "FieldValueInvalid",
                "spec",
                "Invalid value: null: exactly one of nonResourceAttributes or "
                "resourceAttributes must be specified",
            )
        )
    if not user and not groups:
        problems.append(
            (
                "FieldValueInvalid",
                "spec.user",
                'Invalid value: "": at least one of user or group must be specified',
            )
        )
    if problems:
        raise errors.invalid(GROUP, _KIND, "", problems)
    if resource is not None:
        attrs = _mapping(resource)
        wanted = Attributes(
            verb=str(attrs.get("verb") or ""),
            group=str(attrs.get("group") or ""),
            resource=str(attrs.get("resource") or ""),
            subresource=str(attrs.get("subresource") or ""),
            namespace=str(attrs.get("namespace") or ""),
            name=str(attrs.get("name") or ""),
        )
    else:
        attrs = _mapping(non_resource)
        # Non-resource paths: only a rule for every resource and verb covers them here.
        wanted = Attributes(
            str(attrs.get("verb") or ""), "", str(attrs.get("path") or ""), "", "", ""
        )
    str_groups = [str(g) for g in groups]
    rules = state.subjects.rules_for(user, str_groups) + state.tokens.rules_of_user(user)
    allowed = Identity(user=user, rules=rules).allows(wanted)
    status: dict[str, Any] = {"allowed": allowed}
    if allowed:
        status["reason"] = f'allowed by the simulator\'s rules for "{user or str_groups[0]}"'
    meta = body.get("metadata")
    return {
        "kind": _KIND,
        "apiVersion": f"{GROUP}/{VERSION}",
        "metadata": dict(meta) if isinstance(meta, Mapping) else {},
        "spec": dict(spec),
        "status": status,
    }


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
