"""Secrets with the workflow's authority: may this workflow's service account read it?

Argo's agent pod runs as the workflow's service account (``createAgentPod`` in
workflow/controller/agent.go mounts the token of ``woc.execWf.Spec.ServiceAccountName``),
so in Argo the Kubernetes RBAC of that account decides which Secrets a workflow's HTTP
headers may send. A shared agent reads Secrets with its own account in every namespace
it serves; without a check, anyone who may create a workflow could send any Secret of
its namespace anywhere. :class:`WorkflowSecretAuthority` restores Argo's guarantee:
before a node uses a Secret it establishes, with the authorization API, that the
workflow's service account may ``get`` that Secret.

**Which account.** The taskset's owner Workflow (the taskset has the Workflow's name; its
ownerReference's UID must match) is read, and its account picked as the controller picks
it for the agent pod (``woc.execWf``, operator.go ``setExecWorkflow``):

* with ``spec.workflowTemplateRef``: ``status.storedWorkflowTemplateSpec`` (the
  workflow, its template and the controller's ``workflowDefaults`` joined by
  ``JoinWorkflowSpec``);
* otherwise ``spec`` itself: the controller merges ``workflowDefaults`` into it
  (``setWorkflowDefaults``) and persists the result with the workflow's first status;
* an empty name is the namespace's ``default`` account (the pod's ``serviceAccountName``
  left empty; ``getServiceAccountTokenName`` reads ``default``).

The controller creates the taskset in the same reconciliation that first persists the
workflow, so for a moment the taskset can exist while the Workflow still lacks its
``status.phase`` (and the merged defaults) or its stored template spec. Such a Workflow
is read again a few times (about 5 s in all) before the node fails, so no account is
ever guessed from a spec the controller has not finished.

**Why SubjectAccessReview, not impersonation.** A review asks the API server's own
authorizer chain (RBAC and any webhook authorizer) whether ``system:serviceaccount:NS:SA``
with its groups may ``get`` the Secret; the agent keeps reading the Secret itself, once,
shared by every workflow. Impersonation would need ``impersonate`` on service accounts --
the power to do anything any of them may do -- and one Secret read per service account;
a review needs only ``create subjectaccessreviews``, which grants no access to anything.
Neither runs admission webhooks (reads are not admitted). What a review cannot see is a
bound token's extra attributes (the pod it is bound to, the node): an authorizer that
decides on those answers for the bare account.

**Cost and freshness.** The Workflow's account and each (account, Secret) decision are
cached for ``ttl`` seconds (``ARGO_AGENT_SECRET_CACHE_SECONDS``, as Secret values) and
concurrent misses share one request that no single reader can cancel (as Secret reads),
so a thousand nodes using one Secret cost one Workflow GET and one review. An RBAC change
is therefore seen within ``ttl``, in both directions; errors are never cached. Transient
API errors are retried as Secret reads are (Argo's ``GetSecrets`` ``DefaultRetry``).
Every decision is counted in ``argo_agent_secret_authority_total{result, cache}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from agent.core import metrics
from agent.core.refs import TaskRef
from agent.core.secrets import SecretError, denied_message
from agent.kube.client import GROUP, VERSION, api_error_text
from agent.kube.reads import DEFAULT_BACKOFF_SECONDS, SharedCache, retry_transient

__all__ = ["WorkflowSecretAuthority", "service_account_of"]

log = logging.getLogger(__name__)

# A Workflow the controller has not finished persisting: read again, about 5 s in all.
_PENDING_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 1.6)


class _Pending(Exception):
    """The Workflow is not yet as the controller will run it; read it again."""


@dataclass(frozen=True, slots=True)
class _Decision:
    allowed: bool
    service_account: str


def service_account_of(workflow: Mapping[str, Any]) -> str:
    """The service account Argo's controller gives the workflow's agent pod (see the
    module docstring); raises :class:`_Pending` while the controller has not persisted
    what decides it, :class:`SecretError` for a malformed Workflow."""
    meta = _mapping(workflow.get("metadata"))
    where = f'workflow "{meta.get("namespace", "")}/{meta.get("name", "")}"'
    spec = _mapping(workflow.get("spec"))
    status = _mapping(workflow.get("status"))
    if spec.get("workflowTemplateRef") is not None:
        exec_spec = status.get("storedWorkflowTemplateSpec")
        if exec_spec is None:
            raise _Pending(f"{where} has no status.storedWorkflowTemplateSpec yet")
        field = "status.storedWorkflowTemplateSpec.serviceAccountName"
        exec_spec = _mapping(exec_spec)
    else:
        if not status.get("phase"):
            raise _Pending(f"{where} has no status.phase yet")
        field = "spec.serviceAccountName"
        exec_spec = spec
    name = exec_spec.get("serviceAccountName")
    if name is None or name == "":
        return "default"
    if not isinstance(name, str):
        raise SecretError(f"{where}: {field} must be a string")
    return name


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class WorkflowSecretAuthority:
    """A :class:`agent.core.secrets.SecretAuthority` deciding with the workflow's service
    account, by SubjectAccessReview."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        ttl: float = 10.0,
        request_timeout: float = 30.0,
        backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
        pending_delays: tuple[float, ...] = _PENDING_DELAYS,
    ) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._authz = client.AuthorizationV1Api(api)
        self._request_timeout = request_timeout
        self._backoff = backoff_seconds
        self._pending_delays = pending_delays
        self._accounts: SharedCache[tuple[str, str, str], str] = SharedCache(
            ttl=ttl, what="read workflow"
        )
        self._decisions: SharedCache[tuple[str, str, str], _Decision] = SharedCache(
            ttl=ttl, what="review secret access"
        )

    async def check(self, *, ref: TaskRef, secret: str) -> None:
        account_key = (ref.namespace, ref.taskset, ref.workflow_uid)
        decision: _Decision | None = None
        account = self._accounts.cached(account_key)
        if account is not None:
            decision = self._decisions.cached((ref.namespace, account, secret))
        cache = "hit" if decision is not None else "miss"
        if decision is None:
            try:
                if account is None:
                    account = await self._accounts.get(
                        account_key, lambda: self._workflow_account(ref)
                    )
                decision = await self._decisions.get(
                    (ref.namespace, account, secret),
                    lambda: self._review(ref.namespace, account or "default", secret),
                )
            except SecretError:
                metrics.child(metrics.SECRET_AUTHORITY, "error", "miss").inc()
                raise
        metrics.child(
            metrics.SECRET_AUTHORITY, "allowed" if decision.allowed else "denied", cache
        ).inc()
        if not decision.allowed:
            raise SecretError(denied_message(ref.namespace, decision.service_account, secret))

    # -- the workflow's account -------------------------------------------------------

    async def _workflow_account(self, ref: TaskRef) -> str:
        where = f'workflow "{ref.namespace}/{ref.taskset}"'
        delays = iter(self._pending_delays)
        while True:
            workflow = await retry_transient(
                lambda: self._objects.get_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    ref.namespace,
                    "workflows",
                    ref.taskset,
                    _request_timeout=self._request_timeout,
                ),
                api_error=lambda exc: _workflow_error(exc, ref),
                connection_error=lambda text: SecretError(f"cannot read {where}: {text}"),
                backoff=self._backoff,
            )
            if not isinstance(workflow, Mapping):
                raise SecretError(f"cannot read {where}: the API returned no object")
            uid = str(_mapping(workflow.get("metadata")).get("uid") or "")
            if ref.workflow_uid and uid != ref.workflow_uid:
                raise SecretError(
                    f"{where} (UID {ref.workflow_uid}), the owner of this taskset, no longer "
                    "exists: cannot tell which service account may use its secrets"
                )
            try:
                return service_account_of(workflow)
            except _Pending as pending:
                delay = next(delays, None)
                if delay is None:
                    raise SecretError(
                        f"{pending}: the controller has not started it, so its service "
                        "account is not known"
                    ) from None
                await asyncio.sleep(delay)

    # -- the review -------------------------------------------------------------------

    async def _review(self, namespace: str, account: str, secret: str) -> _Decision:
        body: dict[str, Any] = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{namespace}:{account}",
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{namespace}",
                    "system:authenticated",
                ],
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": "get",
                    "version": "v1",
                    "resource": "secrets",
                    "name": secret,
                },
            },
        }
        what = f'cannot check whether service account "{namespace}/{account}" may get secret'
        review = await retry_transient(
            lambda: self._authz.create_subject_access_review(
                body,  # type: ignore[arg-type]  # a dict is sent as it is
                _request_timeout=self._request_timeout,
            ),
            api_error=lambda exc: _review_error(exc, namespace, account, secret),
            connection_error=lambda text: SecretError(f'{what} "{secret}": {text}'),
            backoff=self._backoff,
        )
        status = getattr(review, "status", None)
        allowed = bool(getattr(status, "allowed", False))
        if not allowed:
            log.info(
                "service account %s/%s may not get secret %s (%s)",
                namespace,
                account,
                secret,
                getattr(status, "reason", None)
                or getattr(status, "evaluation_error", None)
                or "no rule allows it",
                extra={"namespace": namespace},
            )
        return _Decision(allowed=allowed, service_account=account)


def _workflow_error(exc: ApiException, ref: TaskRef) -> SecretError:
    where = f'workflow "{ref.namespace}/{ref.taskset}"'
    if exc.status == 404:
        return SecretError(
            f"{where}, the owner of this taskset, not found: cannot tell which service "
            "account may use its secrets"
        )
    if exc.status == 403:
        return SecretError(
            f"cannot read {where}: forbidden; the agent's service account needs the 'get "
            "workflows.argoproj.io' permission there (or run with --secret-authority agent)"
        )
    return SecretError(f"cannot read {where}: {api_error_text(exc)}")


def _review_error(exc: ApiException, namespace: str, account: str, secret: str) -> SecretError:
    what = f'cannot check whether service account "{namespace}/{account}" may get secret "{secret}"'
    if exc.status == 403:
        return SecretError(
            f"{what}: forbidden; the agent's service account needs the cluster-wide 'create "
            "subjectaccessreviews.authorization.k8s.io' permission (or run with "
            "--secret-authority agent)"
        )
    return SecretError(f"{what}: {api_error_text(exc)}")
