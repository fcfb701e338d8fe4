"""Contract tests: the simulator answers SubjectAccessReviews and serves Workflows as an API
server does, for what the agent's secret authority (agent/kube/authority.py) relies on.

Sources, Kubernetes documentation:
* "Authorization" (kubernetes.io/docs/reference/access-authn-authz/authorization/),
  "Checking API access": a SubjectAccessReview asks whether a user or group may perform an
  action; ``POST /apis/authorization.k8s.io/v1/subjectaccessreviews`` answers with the
  review and ``status.allowed``; nothing is stored.
* API reference, "SubjectAccessReview v1": ``spec.user``, ``spec.groups``,
  ``spec.resourceAttributes {namespace, verb, group, resource, subresource, name}``; the
  resource is cluster-scoped and create-only.
* "Authenticating", Service account tokens: a service account authenticates as the user
  ``system:serviceaccount:(NAMESPACE):(SERVICEACCOUNT)`` in the groups
  ``system:serviceaccounts`` and ``system:serviceaccounts:(NAMESPACE)``.
* "Using RBAC Authorization": a RoleBinding grants its Role's rules in its namespace only;
  creating a review needs ``create`` on the cluster-scoped ``subjectaccessreviews``, which
  only a ClusterRoleBinding grants.
* Validation (k8s.io/kubernetes pkg/apis/authorization/validation,
  ``ValidateSubjectAccessReviewSpec``): without user and groups, 422 with
  ``spec.user: Invalid value: "": at least one of user or group must be specified``.
"""

from __future__ import annotations

from typing import Any

import httpx
from agent_sim import ApiSimulator, Rule, service_account_user
from agent_sim.samples import workflow

from tests.agentproc import TOKEN

NS = "argo"
REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


def review_body(user: str = "", groups: list[str] | None = None, **attrs: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"resourceAttributes": attrs or {
        "namespace": NS, "verb": "get", "resource": "secrets", "name": "creds"}}  # fmt: skip
    if user:
        spec["user"] = user
    if groups is not None:
        spec["groups"] = groups
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


async def post_review(
    sim: ApiSimulator, body: dict[str, Any], *, token: str = TOKEN
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        return await http.post(REVIEWS, json=body, headers={"Authorization": f"Bearer {token}"})


async def test_a_review_answers_from_the_rules_bound_to_the_service_account(
    sim: ApiSimulator,
) -> None:
    """201 Created, the review echoed with status.allowed; the rule's namespace and
    resourceNames are honoured exactly as for requests."""
    user = service_account_user(NS, "wf-sa")
    sim.grant([Rule.of("get", "secrets", namespaces=NS, resource_names="creds")], user=user)
    allowed = await post_review(sim, review_body(user))
    assert allowed.status_code == 201
    answer = allowed.json()
    assert answer["kind"] == "SubjectAccessReview"
    assert answer["apiVersion"] == "authorization.k8s.io/v1"
    assert answer["spec"]["user"] == user
    assert answer["status"]["allowed"] is True

    for attrs in (
        {"namespace": NS, "verb": "get", "resource": "secrets", "name": "other"},
        {"namespace": "elsewhere", "verb": "get", "resource": "secrets", "name": "creds"},
        {"namespace": NS, "verb": "list", "resource": "secrets", "name": "creds"},
    ):
        denied = await post_review(sim, review_body(user, **attrs))
        assert denied.status_code == 201
        assert denied.json()["status"]["allowed"] is False, attrs
    # Another account of the namespace has no rule.
    other = await post_review(sim, review_body(service_account_user(NS, "default")))
    assert other.json()["status"]["allowed"] is False
    # Nothing is stored: a review is not an object.
    assert "subjectaccessreviews" not in (await sim_info(sim))["objects"]


async def test_group_bindings_count_and_revoking_takes_effect(sim: ApiSimulator) -> None:
    """Rules bound to ``system:serviceaccounts:NS`` apply to every account of NS whose
    review names that group, as for its real requests; revoking removes them."""
    group = f"system:serviceaccounts:{NS}"
    sim.grant([Rule.of("get", "secrets", namespaces=NS)], group=group)
    user = service_account_user(NS, "any")
    with_groups = await post_review(sim, review_body(user, ["system:serviceaccounts", group]))
    assert with_groups.json()["status"]["allowed"] is True
    without = await post_review(sim, review_body(user))
    assert without.json()["status"]["allowed"] is False
    sim.revoke(group=group)
    revoked = await post_review(sim, review_body(user, ["system:serviceaccounts", group]))
    assert revoked.json()["status"]["allowed"] is False


async def test_a_tokens_rules_answer_reviews_of_its_user(sim: ApiSimulator) -> None:
    """The rules of a token are the rules bound to its user: a review agrees with what
    that token's own requests may do."""
    user = service_account_user(NS, "runner")
    sim.add_token("runner-token", [Rule.of("get", "secrets", namespaces=NS)], user=user)
    answer = await post_review(sim, review_body(user))
    assert answer.json()["status"]["allowed"] is True


async def test_creating_a_review_needs_a_cluster_wide_grant(sim: ApiSimulator) -> None:
    """``subjectaccessreviews`` is cluster-scoped: a namespaced rule does not cover it."""
    sim.add_token("ns-only", [Rule.of("create", "subjectaccessreviews", namespaces=NS)])
    sim.add_token("cluster", [Rule.of("create", "subjectaccessreviews")])
    body = review_body(service_account_user(NS, "sa"))
    refused = await post_review(sim, body, token="ns-only")
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        "subjectaccessreviews.authorization.k8s.io is forbidden: User "
        '"system:serviceaccount:default:argo-http-agent" cannot create resource '
        '"subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope'
    )
    assert (await post_review(sim, body, token="cluster")).status_code == 201
    async with httpx.AsyncClient(base_url=sim.url) as http:
        got = await http.get(REVIEWS, headers={"Authorization": f"Bearer {TOKEN}"})
    assert got.status_code == 405


async def test_a_review_without_user_or_groups_is_invalid(sim: ApiSimulator) -> None:
    answer = await post_review(sim, review_body())
    assert answer.status_code == 422
    status = answer.json()
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid value: '
        '"": at least one of user or group must be specified'
    )
    neither = {"spec": {"user": "u"}}
    missing = await post_review(sim, neither)
    assert missing.status_code == 422
    assert "exactly one of nonResourceAttributes or resourceAttributes" in missing.json()["message"]


async def test_workflows_are_served_with_their_status(sim: ApiSimulator) -> None:
    """``argoproj.io/v1alpha1`` ``workflows``: namespaced, no status subresource (Argo's
    CRD), so a created Workflow keeps the status the controller wrote; the server sets
    its uid."""
    created = sim.create_object("workflows", workflow("wf", service_account="sa"))
    async with httpx.AsyncClient(base_url=sim.url) as http:
        got = await http.get(
            f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows/wf",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        missing = await http.get(
            f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/workflows/nope",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert got.status_code == 200
    body = got.json()
    assert body["status"]["phase"] == "Running"
    assert body["spec"]["serviceAccountName"] == "sa"
    assert body["metadata"]["uid"] == created["metadata"]["uid"] != ""
    assert missing.status_code == 404
    assert missing.json()["message"] == 'workflows.argoproj.io "nope" not found'


async def test_grants_over_the_admin_endpoint(sim: ApiSimulator) -> None:
    user = service_account_user(NS, "remote")
    async with httpx.AsyncClient(base_url=sim.admin_url) as admin:
        bad = await admin.post("/grants", json={"rules": "*"})
        assert bad.status_code == 400
        assert "exactly one of user or group" in bad.json()["error"]
        granted = await admin.post(
            "/grants", json={"user": user, "rules": [{"verbs": ["get"], "resources": ["secrets"]}]}
        )
        assert granted.status_code == 201
        listed = (await admin.get("/grants")).json()
        assert listed["users"][user] == [{"verbs": ["get"], "resources": ["secrets"]}]
        assert (await post_review(sim, review_body(user))).json()["status"]["allowed"] is True
        revoked = await admin.request("DELETE", "/grants", json={"user": user})
        assert revoked.status_code == 200
    assert (await post_review(sim, review_body(user))).json()["status"]["allowed"] is False


async def sim_info(sim: ApiSimulator) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=sim.admin_url) as admin:
        info: dict[str, Any] = (await admin.get("/info")).json()
    return info
