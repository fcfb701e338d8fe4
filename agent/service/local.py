"""The local runner: the agent's job on a manifest file, with no cluster.

``argo-http-agent local FILE [--secrets FILE] [-o yaml|json]`` is the cluster agent with
its two Kubernetes ends swapped for files: a manifest source
(:mod:`agent.source.manifest`), the same :class:`~agent.engine.scheduler.Engine` and
:class:`~agent.executor.Executor`, and a stdout sink (:mod:`agent.sink.stdout`). It prints
the WorkflowTaskSet with ``status.nodes`` filled exactly as Argo's agent would write them
(phase, message, outputs.result; empty fields omitted). Sharing the engine is the point:
whatever a local run shows about scheduling (a node ID runs once, the in-flight cap,
round-robin fairness) is what the cluster does; there are no claims (``claims=None``),
since nothing else can be running these nodes.

**Nodes already finished.** A node whose ``status.nodes`` entry is fulfilled
(``Succeeded``, ``Failed``, ``Error``, ``Skipped``, ``Omitted``) is not sent again, as in
the cluster: its entry is printed unchanged and counts towards the exit status like any
other (a kept ``Failed`` entry makes it 1). A node with any other entry (``Running``,
``Pending``) runs and its result replaces the entry. Entries for nodes absent from
``spec.tasks`` are dropped. The ``workflows.argoproj.io/completed`` label is not
consulted: the file is run because it was asked for.

Output artifacts (``outputs.artifacts``, the response body streamed to S3) go where the
artifact's own ``s3`` fields say, completed from ``--artifact-repository FILE`` (Argo's
``ArtifactRepository`` document, as under a key of an ``artifact-repositories`` ConfigMap);
its ``accessKeySecret``/``secretKeySecret`` are read from ``--secrets``.

Secret-sourced headers read the Secrets given with ``--secrets`` (a YAML file of Kubernetes
``Secret`` manifests, ``data`` base64 or ``stringData``; several documents or a ``List``),
looked up in the taskset's namespace.

``retryStrategy`` is honoured here (in the cluster the controller retries by creating new
nodes) by :class:`RetryingRunner`, a runner wrapped around the executor, so the engine sees
one run per node whatever the attempts: each attempt is reported on stderr, e.g.
``node-1: attempt 1 Failed (received non-2xx response code: 500), retrying in 1s``, and
``status.nodes`` holds the final result. A node waiting out a back-off keeps its in-flight
slot, since for the engine it is still running.

Exit status: 0 when every node succeeded, 1 when any did not, 2 for unusable input, with a
one-line error naming the file and the field.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO, get_args

import yaml

from agent import retry, shims
from agent.artifacts.store import ArtifactStore, open_store
from agent.core.artifacts import (
    ArtifactError,
    FixedRepository,
    Repository,
    declares_artifacts,
    parse_repository,
)
from agent.core.model import NodePhase, NodeResult, RetryStrategy, parse_template
from agent.core.ports import TaskRunner
from agent.core.refs import TaskRef, TaskSetSnapshot
from agent.core.secrets import SecretResolver
from agent.engine.scheduler import Engine
from agent.executor.executor import Executor
from agent.executor.secrets import StaticSecretResolver
from agent.executor.settings import ExecutorSettings, TransportKind
from agent.sink.stdout import StdoutSink, render
from agent.source.manifest import (
    LocalInputError,
    load_manifest,
    load_secret_manifests,
    to_snapshot,
)

__all__ = [
    "Attempt",
    "AttemptHook",
    "LocalInputError",
    "RetryVerdict",
    "RetryingRunner",
    "load_artifact_repository",
    "load_manifest",
    "load_secret_manifests",
    "main",
    "run_local",
]

#: The engine's in-flight cap for a local run (the cluster's is ``ARGO_AGENT_TASK_WORKERS``).
DEFAULT_MAX_IN_FLIGHT = 512


@dataclass(frozen=True, slots=True)
class Attempt:
    """One finished attempt of a node."""

    number: int  # 1-based
    result: NodeResult
    duration_seconds: float  # of this attempt
    elapsed_seconds: float  # from the start of the first attempt to the end of this one


@dataclass(frozen=True, slots=True)
class RetryVerdict:
    """After an attempt: retry after ``delay`` seconds, or stop (``delay is None``).

    ``note`` says why a retried node stops; ``result`` replaces the attempt's result
    (an unusable ``retryStrategy`` fails the node with a message naming the field).
    """

    delay: float | None
    note: str = ""
    result: NodeResult | None = None


#: Called after every attempt of a node with a retryStrategy: (node ID, attempt, verdict).
AttemptHook = Callable[[str, Attempt, RetryVerdict], None]


def _resolver(
    secrets: SecretResolver | Mapping[Any, Any] | Iterable[Mapping[str, Any]] | None,
    *,
    namespace: str,
) -> SecretResolver:
    if secrets is None:
        return StaticSecretResolver()
    if hasattr(secrets, "get_secret_value"):
        return secrets  # type: ignore[return-value]
    if isinstance(secrets, Mapping):
        table: dict[tuple[str, str], Mapping[str, str]] = {}
        for key, values in secrets.items():
            ns_name = key if isinstance(key, tuple) else (namespace, str(key))
            table[(str(ns_name[0]), str(ns_name[1]))] = values
        return StaticSecretResolver(table)
    try:
        return StaticSecretResolver.from_manifests(list(secrets), default_namespace=namespace)
    except ValueError as exc:
        raise LocalInputError(f"secrets: {exc}") from None


async def run_local(
    manifest: Mapping[str, Any],
    *,
    secrets: SecretResolver | Mapping[Any, Any] | Iterable[Mapping[str, Any]] | None = None,
    settings: ExecutorSettings | None = None,
    on_attempt: AttemptHook | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    artifact_repository: Repository | None = None,
) -> dict[str, Any]:
    """Execute the tasks of ``manifest``; return a copy with ``status.nodes`` filled.

    ``secrets`` is a resolver, ``{name: {key: value}}`` (in the taskset's namespace) /
    ``{(namespace, name): {...}}``, or Secret manifests. Raises :class:`LocalInputError`
    for an unusable manifest; a bad template only fails its own node. Nodes already
    fulfilled in ``status.nodes`` are not run (see the module docstring).
    ``artifact_repository`` completes the locations of output artifacts.
    """
    snapshot = to_snapshot(manifest)
    resolver = _resolver(secrets, namespace=snapshot.key.namespace)
    sink = StdoutSink()
    # The S3 client library is loaded only when some template can use it.
    store: ArtifactStore | None = None
    if artifact_repository is not None or any(map(declares_artifacts, snapshot.tasks.values())):
        store = open_store()
    try:
        async with Executor(
            settings=settings or ExecutorSettings(),
            secrets=resolver,
            store=store,
            repositories=None
            if artifact_repository is None
            else FixedRepository(artifact_repository),
        ) as executor:
            engine = Engine(
                runner=RetryingRunner(executor, on_attempt=on_attempt),
                sink=sink,
                max_in_flight=max(max_in_flight, 1),
                claims=None,  # nothing else runs these nodes: no at-most-once bookkeeping
            )
            await _run_until_done(engine, snapshot)
    finally:
        if store is not None:
            await store.aclose()
    return sink.filled(manifest, key=snapshot.key)


def load_artifact_repository(path: str) -> Repository:
    """``--artifact-repository FILE``: Argo's ``ArtifactRepository`` document (YAML/JSON)."""
    try:
        with open(path, encoding="utf-8") as stream:
            document = yaml.safe_load(stream)
    except OSError as exc:
        raise LocalInputError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LocalInputError(f"{path}: invalid YAML: {first}") from None
    try:
        return parse_repository(document, source=f"--artifact-repository {path}")
    except ArtifactError as exc:
        raise LocalInputError(exc.message) from None


async def _run_until_done(engine: Engine, snapshot: TaskSetSnapshot) -> None:
    """Show the engine the one snapshot and dispatch until every queued node has a result."""
    engine.observe(snapshot)
    dispatcher = asyncio.create_task(engine.run(), name="engine")
    idle = asyncio.ensure_future(engine.wait_idle())
    try:
        await asyncio.wait({dispatcher, idle}, return_when=asyncio.FIRST_COMPLETED)
        if not idle.done():
            dispatcher.result()  # re-raise what stopped it
            raise RuntimeError("the engine stopped dispatching before every node ran")
    finally:
        idle.cancel()
        dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dispatcher


class RetryingRunner:
    """A :class:`~agent.core.ports.TaskRunner` that applies a template's ``retryStrategy``.

    Each attempt is one ``inner.run``; after it, :func:`_decide` asks :mod:`agent.retry`
    what Argo's controller would do, ``on_attempt`` hears about it, and the runner sleeps
    out the back-off or returns the final result. A template without a ``retryStrategy``
    (or one the executor will reject) is a single plain run. Never raises but for
    cancellation, as the port requires: the inner runner does not, and neither does
    :func:`_decide`.
    """

    def __init__(self, inner: TaskRunner, *, on_attempt: AttemptHook | None = None) -> None:
        self._inner = inner
        self._on_attempt = on_attempt

    async def run(self, template: Mapping[str, Any], *, ref: TaskRef) -> NodeResult:
        strategy = _retry_strategy(template)
        if strategy is None:
            return await self._inner.run(template, ref=ref)
        first_start = time.monotonic()
        number = 1
        while True:
            started = time.monotonic()
            result = await self._inner.run(template, ref=ref)
            now = time.monotonic()
            attempt = Attempt(number, result, now - started, now - first_start)
            verdict = _decide(strategy, attempt)
            if self._on_attempt is not None:
                self._on_attempt(ref.node_id, attempt, verdict)
            if verdict.delay is None:
                return verdict.result or result
            await asyncio.sleep(verdict.delay)
            number += 1


def _retry_strategy(template: Any) -> RetryStrategy | None:
    if not isinstance(template, Mapping) or template.get("retryStrategy") is None:
        return None
    try:
        return parse_template(dict(template)).retry_strategy
    except ValueError:
        return None  # the executor reports the malformed template on its own node


def _decide(strategy: RetryStrategy, attempt: Attempt) -> RetryVerdict:
    """What Argo's controller would do after this attempt (see :mod:`agent.retry`)."""
    result = attempt.result
    if str(result.phase) == NodePhase.SUCCEEDED:
        return RetryVerdict(delay=None)
    exit_code = "-1"
    if result.outputs is not None and result.outputs.exit_code is not None:
        exit_code = result.outputs.exit_code
    try:
        decision = retry.decide_retry(
            strategy,
            retries_done=attempt.number - 1,
            last=retry.LastAttempt(
                exit_code=exit_code,
                status=str(result.phase),
                duration=retry.format_duration_seconds(attempt.duration_seconds),
                message=result.message,
            ),
            elapsed_seconds=attempt.elapsed_seconds,
        )
    except ValueError as exc:  # RetryStrategyError names the field
        failed = NodeResult(phase=NodePhase.ERROR, message=f"invalid retryStrategy: {exc}")
        return RetryVerdict(delay=None, note=failed.message, result=failed)
    if decision.retry:
        return RetryVerdict(delay=decision.delay_seconds)
    if decision.reason and decision.reason != result.message:
        return RetryVerdict(delay=None, note=decision.reason)
    policy = strategy.retry_policy or ("Always" if strategy.expression else "OnFailure")
    return RetryVerdict(
        delay=None, note=f"retryPolicy {policy} does not retry a {result.phase} attempt"
    )


def _succeeded(manifest: Mapping[str, Any]) -> bool:
    nodes = (manifest.get("status") or {}).get("nodes") or {}
    return all(
        isinstance(node, Mapping) and node.get("phase") == NodePhase.SUCCEEDED
        for node in nodes.values()
    )


def _print_attempt(stream: TextIO) -> AttemptHook:
    def hook(node_id: str, attempt: Attempt, verdict: RetryVerdict) -> None:
        result = attempt.result
        if verdict.delay is None and not verdict.note:
            return  # succeeded: nothing to explain
        reason = f" ({result.message})" if result.message else ""
        head = f"{node_id}: attempt {attempt.number} {result.phase}{reason}"
        if verdict.delay is not None:
            print(f"{head}, retrying in {verdict.delay:g}s", file=stream, flush=True)
        else:
            print(f"{head}, not retrying: {verdict.note}", file=stream, flush=True)

    return hook


def _setting_default(name: str) -> Any:
    """An :class:`ExecutorSettings` field's default: the flags repeat no literal of it."""
    for setting in dataclasses.fields(ExecutorSettings):
        if setting.name == name and setting.default is not dataclasses.MISSING:
            return setting.default
    raise LookupError(f"ExecutorSettings.{name} has no plain default")


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="argo-http-agent local",
        description="Execute a WorkflowTaskSet manifest without a cluster and print it with "
        "status.nodes filled as Argo's agent would.",
    )
    parser.add_argument(
        "file", metavar="FILE", help="WorkflowTaskSet manifest (YAML or JSON; - for stdin)"
    )
    parser.add_argument(
        "--secrets", metavar="FILE", help="YAML file of Kubernetes Secret manifests"
    )
    parser.add_argument(
        "--artifact-repository",
        metavar="FILE",
        help="Argo ArtifactRepository document (s3: bucket, endpoint, ...) completing the "
        "locations of output artifacts; its credentials come from --secrets",
    )
    parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    parser.add_argument("--ca-bundle", metavar="FILE", help="extra PEM CA certificates to trust")
    parser.add_argument(
        "--default-timeout",
        type=float,
        metavar="SECONDS",
        default=_setting_default("default_timeout_seconds"),
        help="timeout for templates without timeoutSeconds (default %(default)g)",
    )
    max_result_bytes: int = _setting_default("max_result_bytes")
    parser.add_argument(
        "--max-result-bytes",
        type=int,
        metavar="N",
        default=max_result_bytes,
        help="largest response body kept as outputs.result "
        f"(default {_size(max_result_bytes)}; 0 = no limit)",
    )
    parser.add_argument(
        "--transport", choices=get_args(TransportKind), default=_setting_default("transport")
    )
    return parser


def main(argv: list[str]) -> int:
    """``argo-http-agent local``: 0 all succeeded, 1 some did not, 2 unusable input."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    shims.check_or_exit("argo-http-agent local")  # exits 2 naming a missing private attribute
    try:
        manifest = load_manifest(args.file)
        secrets = load_secret_manifests(args.secrets) if args.secrets else None
        repository = (
            load_artifact_repository(args.artifact_repository) if args.artifact_repository else None
        )
        settings = ExecutorSettings(
            default_timeout_seconds=args.default_timeout,
            max_result_bytes=args.max_result_bytes,
            ca_bundle=args.ca_bundle,
            transport=args.transport,
        )
        result = asyncio.run(
            run_local(
                manifest,
                secrets=secrets,
                settings=settings,
                on_attempt=_print_attempt(sys.stderr),
                artifact_repository=repository,
            )
        )
    except LocalInputError as exc:
        print(f"argo-http-agent local: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # settings: e.g. an unreadable --ca-bundle
        print(f"argo-http-agent local: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(result, output=args.output))
    sys.stdout.flush()
    return 0 if _succeeded(result) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
