"""Locust load test of a running agent, end to end, through the Kubernetes API.

Each simulated user loops: create a WorkflowTaskSet with K HTTP tasks (all aimed at
``--target-url``), poll the taskset until all K ``status.nodes`` entries show a fulfilled
phase (Succeeded/Failed/Error), delete it, repeat. Two kinds of locust request events are
fired, so ``locust --headless`` reports throughput and percentiles of what matters:

* ``TASKSET  <K> tasks``: creation request start -> all K results visible (a failure if a
  node ended Failed/Error or the wait timed out);
* ``TASK     http``: creation -> that node's result visible (resolution: the poll interval).

The API server and credentials come from a kubeconfig (``--kubeconfig``, else
``$KUBECONFIG``, else ``~/.kube/config``): the current context's server URL, a bearer
``token`` (or ``tokenFile``), and the CA as ``certificate-authority-data`` or
``certificate-authority`` (or ``insecure-skip-tls-verify``). Client certificates, exec and
auth-provider plugins are refused with a clear error: create a ServiceAccount token for the
load test instead (see ``loadtest/README.md``).

Locust runs on gevent: this file lives in its own virtual environment
(``loadtest/requirements.txt``) and never imports the asyncio agent. Tasksets carry no
``ownerReferences``: on a real cluster the garbage collector would delete a taskset whose
owning Workflow does not exist.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
import locust  # noqa: F401 -- before requests: locust monkey-patches ssl/socket for gevent
import requests
import yaml
from locust import User, constant, events, task
from locust.env import Environment

__all__ = ["KubeTarget", "TaskSetUser", "load_kubeconfig"]

GROUP_PATH = "/apis/argoproj.io/v1alpha1"
FULFILLED = frozenset({"Succeeded", "Failed", "Error"})


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used; the message names the field."""


@dataclass(frozen=True)
class KubeTarget:
    """Where and how to reach the API server."""

    server: str
    token: str
    verify: str | bool  # a CA file path, True (system store) or False (skip)


def _pick(items: Any, name: str, kind: str) -> dict[str, Any]:
    for item in items or ():
        if isinstance(item, dict) and item.get("name") == name:
            value = item.get(kind)
            if isinstance(value, dict):
                return value
    raise KubeconfigError(f"kubeconfig: no {kind} named {name!r} in '{kind}s'")


def load_kubeconfig(path: str | None, *, context: str | None = None) -> KubeTarget:
    """Server URL, bearer token and CA of a kubeconfig context (token auth only)."""
    file = Path(
        path or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
    ).expanduser()
    try:
        config = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"kubeconfig {file}: cannot read it: {exc}") from None
    if not isinstance(config, dict):
        raise KubeconfigError(f"kubeconfig {file}: not a mapping")
    name = context or config.get("current-context")
    if not name:
        raise KubeconfigError("kubeconfig: 'current-context' is empty and no --kube-context given")
    ctx = _pick(config.get("contexts"), name, "context")
    cluster = _pick(config.get("clusters"), str(ctx.get("cluster")), "cluster")
    user = _pick(config.get("users"), str(ctx.get("user")), "user")
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("http://", "https://")):
        raise KubeconfigError(f"kubeconfig: cluster 'server' must be an http(s) URL: {server!r}")
    for unsupported in ("client-certificate", "client-certificate-data", "exec", "auth-provider"):
        if user.get(unsupported):
            raise KubeconfigError(
                f"kubeconfig: user field {unsupported!r} is not supported by the load test; "
                "use a bearer token ('token' or 'tokenFile')"
            )
    token = user.get("token")
    if not token and user.get("tokenFile"):
        try:
            token = Path(user["tokenFile"]).read_text().strip()
        except OSError as exc:
            raise KubeconfigError(f"kubeconfig: user 'tokenFile': {exc}") from None
    if not token:
        raise KubeconfigError("kubeconfig: user has no 'token' or 'tokenFile'")
    verify: str | bool = True
    if cluster.get("insecure-skip-tls-verify"):
        verify = False
    elif cluster.get("certificate-authority-data"):
        try:
            pem = base64.b64decode(cluster["certificate-authority-data"], validate=True)
        except ValueError:
            raise KubeconfigError(
                "kubeconfig: cluster 'certificate-authority-data' is not base64"
            ) from None
        with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as handle:
            handle.write(pem)
        verify = handle.name
    elif cluster.get("certificate-authority"):
        verify = str(cluster["certificate-authority"])
    return KubeTarget(server=server, token=str(token), verify=verify)


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any) -> None:
    group = parser.add_argument_group("argo-http-agent load test")
    group.add_argument(
        "--kubeconfig",
        env_var="LOADTEST_KUBECONFIG",
        default=None,
        help="kubeconfig of the cluster (default: $KUBECONFIG, ~/.kube/config)",
    )
    group.add_argument("--kube-context", env_var="LOADTEST_KUBE_CONTEXT", default=None)
    group.add_argument(
        "--namespace",
        env_var="LOADTEST_NAMESPACE",
        default="argo",
        help="namespace the agent watches",
    )
    group.add_argument(
        "--target-url",
        env_var="LOADTEST_TARGET_URL",
        default=None,
        help="URL every HTTP task calls (reachable from the agent)",
    )
    group.add_argument(
        "--tasks-per-taskset",
        env_var="LOADTEST_TASKS_PER_TASKSET",
        type=int,
        default=10,
        help="K: HTTP tasks in each taskset",
    )
    group.add_argument(
        "--poll-interval",
        env_var="LOADTEST_POLL_INTERVAL",
        type=float,
        default=0.05,
        help="seconds between GETs of the taskset while waiting (the latency resolution)",
    )
    group.add_argument(
        "--result-timeout",
        env_var="LOADTEST_RESULT_TIMEOUT",
        type=float,
        default=60.0,
        help="seconds to wait for all results of one taskset",
    )
    group.add_argument(
        "--taskset-labels",
        env_var="LOADTEST_TASKSET_LABELS",
        default="",
        help="k=v,k2=v2 labels on every taskset (e.g. the controller instance id)",
    )
    group.add_argument(
        "--keep-tasksets",
        env_var="LOADTEST_KEEP_TASKSETS",
        action="store_true",
        help="do not delete tasksets after measuring them",
    )


@dataclass(frozen=True)
class _Options:
    target: KubeTarget
    namespace: str
    target_url: str
    tasks: int
    poll: float
    timeout: float
    labels: dict[str, str]
    keep: bool


def _parse_labels(text: str) -> dict[str, str]:
    labels = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"--taskset-labels: expected key=value, got {part!r}")
        labels[key] = value
    return labels


_resolved: _Options | None = None


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _validate(environment: Environment, **_: Any) -> None:
    """Read and check the options once, before any user starts (errors stop the run)."""
    global _resolved
    opts = environment.parsed_options
    assert opts is not None
    if not opts.target_url or not opts.target_url.startswith(("http://", "https://")):
        raise ValueError("--target-url: an http(s) URL the agent can reach is required")
    if opts.tasks_per_taskset < 1:
        raise ValueError("--tasks-per-taskset: must be >= 1")
    if opts.poll_interval <= 0 or opts.result_timeout <= 0:
        raise ValueError("--poll-interval and --result-timeout: must be > 0")
    _resolved = _Options(
        target=load_kubeconfig(opts.kubeconfig, context=opts.kube_context),
        namespace=opts.namespace,
        target_url=opts.target_url,
        tasks=opts.tasks_per_taskset,
        poll=opts.poll_interval,
        timeout=opts.result_timeout,
        labels=_parse_labels(opts.taskset_labels),
        keep=opts.keep_tasksets,
    )


class TaskSetUser(User):
    """Creates a taskset of K HTTP tasks, waits for every result, deletes it; again."""

    wait_time = constant(0)

    def on_start(self) -> None:
        if _resolved is None:
            raise RuntimeError("load test options were not validated (test_start not fired)")
        self.opts = _resolved
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.opts.target.token}"
        # Passed on every call: a session-level ``verify`` loses to $REQUESTS_CA_BUNDLE.
        self.verify = self.opts.target.verify
        self.collection = (
            f"{self.opts.target.server}{GROUP_PATH}/namespaces/{self.opts.namespace}"
            "/workflowtasksets"
        )

    def on_stop(self) -> None:
        self.session.close()

    def _fire(
        self, kind: str, name: str, started: float, length: int, exc: Exception | None
    ) -> None:
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exc,
            context={},
        )

    @task
    def taskset_round_trip(self) -> None:
        k = self.opts.tasks
        prefix = uuid.uuid4().hex[:10]
        body = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTaskSet",
            "metadata": {"generateName": "loadtest-", "labels": self.opts.labels},
            "spec": {
                "tasks": {
                    f"lt-{prefix}-{i}": {"name": "http", "http": {"url": self.opts.target_url}}
                    for i in range(k)
                }
            },
        }
        label = f"{k} tasks"
        started = time.perf_counter()
        try:
            created = self.session.post(self.collection, json=body, timeout=30, verify=self.verify)
        except requests.RequestException as exc:
            self._fire("TASKSET", label, started, 0, exc)
            return
        if created.status_code != 201:
            error = RuntimeError(f"create: HTTP {created.status_code}: {created.text[:300]}")
            self._fire("TASKSET", label, started, 0, error)
            return
        url = f"{self.collection}/{created.json()['metadata']['name']}"
        try:
            self._wait(url, started=started, label=label, k=k)
        finally:
            if not self.opts.keep:
                try:
                    self.session.delete(url, timeout=30, verify=self.verify)
                except requests.RequestException:
                    pass  # the next round does not depend on it

    def _wait(self, url: str, *, started: float, label: str, k: int) -> None:
        seen: set[str] = set()
        failed = 0
        error: Exception | None
        deadline = started + self.opts.timeout
        while True:
            gevent.sleep(self.opts.poll)  # yields to the other users
            try:
                response = self.session.get(url, timeout=30, verify=self.verify)
                response.raise_for_status()
                nodes = (response.json().get("status") or {}).get("nodes") or {}
            except (requests.RequestException, ValueError) as exc:
                if time.perf_counter() > deadline:
                    self._fire("TASKSET", label, started, len(seen), exc)
                    return
                continue
            for node_id, node in nodes.items():
                phase = node.get("phase") if isinstance(node, dict) else None
                if phase in FULFILLED and node_id not in seen:
                    seen.add(node_id)
                    node_error = None if phase == "Succeeded" else RuntimeError(f"node {phase}")
                    failed += node_error is not None
                    self._fire("TASK", "http", started, 1, node_error)
            if len(seen) >= k:
                error = RuntimeError(f"{failed} of {k} nodes failed") if failed else None
                self._fire("TASKSET", label, started, k, error)
                return
            if time.perf_counter() > deadline:
                error = TimeoutError(f"{len(seen)} of {k} results after {self.opts.timeout:g}s")
                self._fire("TASKSET", label, started, len(seen), error)
                return
