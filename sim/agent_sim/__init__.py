"""A Kubernetes API simulator for tests, the demo and load tests (never production code).

No real API server can run here, and the agent must be tested against the API's actual
contract: resourceVersions, watch resume and 410 Expired, bookmarks, the status
subresource, patch types chosen by Content-Type, RBAC denials and transient failures.
:class:`ApiSimulator` serves ``argoproj.io/v1alpha1`` ``workflowtasksets`` (with
``status``) and ``workflows``, core ``secrets`` and ``coordination.k8s.io/v1``
``leases`` over real HTTP on 127.0.0.1 with those semantics, and answers
``SubjectAccessReviews`` from its rules, so kubernetes_asyncio talks to it unchanged.
``python -m agent_sim`` runs it as a separate process.
"""

from .auth import ALL_PERMISSIONS, Rule
from .errors import ApiError
from .requestlog import RequestRecord
from .simulator import DEFAULT_USER, ApiSimulator, PatchType, SimulatorTls, service_account_user
from .state import DEFAULT_MAX_BODY_BYTES, SimOptions

__all__ = [
    "ALL_PERMISSIONS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_USER",
    "ApiError",
    "ApiSimulator",
    "PatchType",
    "RequestRecord",
    "Rule",
    "SimOptions",
    "SimulatorTls",
    "service_account_user",
]
