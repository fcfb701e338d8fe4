"""Bearer-token authentication and RBAC-like authorization.

Each token maps to a user name and a list of :class:`Rule` objects, the shape of an RBAC
``PolicyRule`` bound by a RoleBinding (``namespaces`` set) or a ClusterRoleBinding
(``namespaces=None``). Subresources are separate resources, as in RBAC: a token allowed
to ``patch`` ``workflowtasksets`` may not patch ``workflowtasksets/status``. ``list`` and
``watch`` requests carrying ``fieldSelector=metadata.name=<n>`` are authorized as
requests for the name ``<n>``, as the API server's request-info resolver does, so a rule
limited by ``resource_names`` can serve the per-workflow watch.

Rules can also be bound to a subject without a token (:class:`SubjectRules`: a user such
as ``system:serviceaccount:NS:SA``, or a group), as a RoleBinding names a service account
that never calls the API itself. SubjectAccessReviews (:mod:`agent_sim.reviews`) are
answered from those rules together with the rules of every token of that user.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALL_PERMISSIONS",
    "VERBS",
    "Attributes",
    "Identity",
    "Rule",
    "SubjectRules",
    "TokenRegistry",
    "rules_from_json",
]

VERBS = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
)


def _names(value: str | Iterable[str], what: str) -> frozenset[str]:
    items = (
        frozenset(value.replace(",", " ").split()) if isinstance(value, str) else frozenset(value)
    )
    if not items:
        raise ValueError(f"rule {what} must not be empty")
    return items


@dataclass(frozen=True, slots=True)
class Rule:
    """Permission to use ``verbs`` on ``resources`` (``"*"`` is a wildcard for either).

    ``resources`` name plural resources and subresources (``"workflowtasksets/status"``).
    ``namespaces=None`` grants every namespace and cluster-scoped requests (a
    ClusterRoleBinding); a set grants only those namespaces. ``resource_names`` limits
    the rule to requests for those object names.
    """

    verbs: frozenset[str]
    resources: frozenset[str]
    namespaces: frozenset[str] | None = None
    resource_names: frozenset[str] | None = None

    @classmethod
    def of(
        cls,
        verbs: str | Iterable[str],
        resources: str | Iterable[str],
        *,
        namespaces: str | Iterable[str] | None = None,
        resource_names: str | Iterable[str] | None = None,
    ) -> Rule:
        """Build a rule from space- or comma-separated strings or iterables."""
        verb_set = _names(verbs, "verbs")
        unknown = verb_set - VERBS - {"*"}
        if unknown:
            raise ValueError(f"rule verbs: unknown verb(s) {sorted(unknown)}; use {sorted(VERBS)}")
        return cls(
            verbs=verb_set,
            resources=_names(resources, "resources"),
            namespaces=None if namespaces is None else _names(namespaces, "namespaces"),
            resource_names=(
                None if resource_names is None else _names(resource_names, "resource_names")
            ),
        )

    def allows(self, attrs: Attributes) -> bool:
        """Whether this rule grants the request described by ``attrs``."""
        if "*" not in self.verbs and attrs.verb not in self.verbs:
            return False
        target = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        if "*" not in self.resources and target not in self.resources:
            return False
        if self.namespaces is not None and attrs.namespace not in self.namespaces:
            return False
        return self.resource_names is None or (
            bool(attrs.name) and attrs.name in self.resource_names
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form accepted by :func:`rules_from_json` (admin endpoint)."""
        out: dict[str, Any] = {"verbs": sorted(self.verbs), "resources": sorted(self.resources)}
        if self.namespaces is not None:
            out["namespaces"] = sorted(self.namespaces)
        if self.resource_names is not None:
            out["resourceNames"] = sorted(self.resource_names)
        return out


ALL_PERMISSIONS: tuple[Rule, ...] = (Rule(frozenset({"*"}), frozenset({"*"})),)


def rules_from_json(value: Any) -> tuple[Rule, ...]:
    """Parse ``"*"`` or ``[{"verbs": [...], "resources": [...], "namespaces": [...],
    "resourceNames": [...]}]``; raises ``ValueError`` naming the bad field."""
    if value == "*":
        return ALL_PERMISSIONS
    if not isinstance(value, list):
        raise ValueError('rules must be "*" or a list of rule objects')
    rules = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ValueError(f"rules[{i}] must be an object")
        unknown = set(item) - {"verbs", "resources", "namespaces", "resourceNames"}
        if unknown:
            raise ValueError(f"rules[{i}]: unknown field(s) {sorted(unknown)}")
        try:
            rules.append(
                Rule.of(
                    item.get("verbs", ()),
                    item.get("resources", ()),
                    namespaces=item.get("namespaces"),
                    resource_names=item.get("resourceNames"),
                )
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"rules[{i}]: {err}") from None
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request asks to do, in the authorizer's terms."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user and what it may do."""

    user: str
    rules: tuple[Rule, ...]

    def allows(self, attrs: Attributes) -> bool:
        """Whether any rule grants the request."""
        return any(rule.allows(attrs) for rule in self.rules)


class TokenRegistry:
    """Bearer tokens known to the simulator."""

    def __init__(self) -> None:
        self._by_token: dict[str, Identity] = {}

    def add(self, token: str, rules: Iterable[Rule], *, user: str) -> None:
        """Register (or replace) a token."""
        if not token or any(c.isspace() for c in token):
            raise ValueError("token must be a non-empty string without whitespace")
        self._by_token[token] = Identity(user=user, rules=tuple(rules))

    def rules_of_user(self, user: str) -> tuple[Rule, ...]:
        """The rules of every token authenticating as ``user``."""
        return tuple(
            rule for identity in self._by_token.values() if identity.user == user
            for rule in identity.rules
        )  # fmt: skip

    def remove(self, token: str) -> None:
        """Forget a token; later requests with it get 401."""
        self._by_token.pop(token, None)

    def authenticate(self, authorization: str | None) -> Identity | None:
        """The identity for an ``Authorization`` header value, or None (401)."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self._by_token.get(token.strip())


class SubjectRules:
    """Rules bound to users and groups (the subjects of RoleBindings), without tokens."""

    def __init__(self) -> None:
        self._users: dict[str, tuple[Rule, ...]] = {}
        self._groups: dict[str, tuple[Rule, ...]] = {}

    def grant(self, rules: Iterable[Rule], *, user: str = "", group: str = "") -> None:
        """Bind ``rules`` to exactly one of ``user`` or ``group`` (replacing earlier ones)."""
        if bool(user) == bool(group):
            raise ValueError("name exactly one of user or group")
        table = self._users if user else self._groups
        table[user or group] = tuple(rules)

    def revoke(self, *, user: str = "", group: str = "") -> None:
        """Unbind every rule of ``user`` or ``group``."""
        if bool(user) == bool(group):
            raise ValueError("name exactly one of user or group")
        (self._users if user else self._groups).pop(user or group, None)

    def rules_for(self, user: str, groups: Iterable[str]) -> tuple[Rule, ...]:
        """The rules bound to ``user`` and to each of ``groups``."""
        found = list(self._users.get(user, ()))
        for group in groups:
            found.extend(self._groups.get(group, ()))
        return tuple(found)

    def describe(self) -> dict[str, Any]:
        """Every binding, in the JSON form of :func:`rules_from_json`."""
        return {
            "users": {k: [r.to_json() for r in v] for k, v in sorted(self._users.items())},
            "groups": {k: [r.to_json() for r in v] for k, v in sorted(self._groups.items())},
        }
