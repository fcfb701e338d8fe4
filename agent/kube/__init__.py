"""Everything that talks to the Kubernetes API server.

* :mod:`agent.kube.client`  -- one configured ``ApiClient`` and API error helpers.
* :mod:`agent.kube.watch`   -- the source: list + watch WorkflowTaskSets, with resume and re-list.
* :mod:`agent.kube.patch`   -- the sink: coalesced merge patches on the status subresource.
* :mod:`agent.kube.secrets` -- the secret resolver for ``valueFrom.secretKeyRef`` headers.
"""

from agent.kube.client import GROUP, PLURAL, VERSION, connect
from agent.kube.patch import StatusPatcher
from agent.kube.secrets import KubeSecretResolver
from agent.kube.watch import TaskSetWatcher, WatchScope

__all__ = [
    "GROUP",
    "PLURAL",
    "VERSION",
    "KubeSecretResolver",
    "StatusPatcher",
    "TaskSetWatcher",
    "WatchScope",
    "connect",
]
