"""The local runner: the agent's job on a manifest file, with no cluster.

``argo-http-agent local FILE [--secrets FILE] [-o yaml|json]`` reads a WorkflowTaskSet
(YAML or JSON), executes every ``spec.tasks`` entry concurrently with the same
:class:`~agent.executor.Executor` the cluster agent uses, and prints the manifest with
``status.nodes`` filled exactly as Argo's agent would write them (phase, message,
outputs.result; empty fields omitted).

Secret-sourced headers read the Secrets given with ``--secrets`` (a YAML file of Kubernetes
``Secret`` manifests, ``data`` base64 or ``stringData``; several documents or a ``List``),
looked up in the taskset's namespace.

``retryStrategy`` is honoured here (in the cluster the controller retries by creating new
nodes): each attempt is reported on stderr, e.g. ``node-1: attempt 1 Failed (received
non-2xx response code: 500), retrying in 1s``, and ``status.nodes`` holds the final result.

Exit status: 0 when every node succeeded, 1 when any did not, 2 for unusable input, with a
one-line error naming the file and the field.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import yaml

from agent import retry
from agent.core.model import NodePhase, NodeResult, RetryStrategy, dump, parse_template
from agent.core.refs import TaskRef
from agent.core.secrets import SecretResolver
from agent.executor import Executor, ExecutorSettings, StaticSecretResolver

__all__ = ["LocalInputError", "load_manifest", "load_secret_manifests", "main", "run_local"]


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


class LocalInputError(ValueError):
    """Unusable input; ``str()`` is one line naming the file (when known) and the field."""


def load_manifest(path: str) -> dict[str, Any]:
    """Read a WorkflowTaskSet manifest (YAML or JSON; ``-`` reads stdin)."""
    document = _load_yaml(path, many=False)
    if not isinstance(document, dict):
        raise LocalInputError(f"{path}: expected a WorkflowTaskSet manifest (a mapping)")
    try:
        _validate_manifest(document)
    except LocalInputError as exc:
        raise LocalInputError(f"{path}: {exc}") from None
    return document


def load_secret_manifests(path: str) -> list[dict[str, Any]]:
    """Read Secret manifests: several YAML documents and/or ``kind: List`` items."""
    documents = _load_yaml(path, many=True)
    manifests: list[dict[str, Any]] = []
    for document in documents:
        if document is None:
            continue
        if isinstance(document, dict) and document.get("kind") == "List":
            items = document.get("items") or []
            if not isinstance(items, list):
                raise LocalInputError(f"{path}: items: expected a list of Secret manifests")
            manifests.extend(items)
        else:
            manifests.append(document)
    try:
        StaticSecretResolver.from_manifests(manifests)  # validate now, name the file
    except ValueError as exc:
        raise LocalInputError(f"{path}: {exc}") from None
    return manifests


def _load_yaml(path: str, *, many: bool) -> Any:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise LocalInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LocalInputError(f"{path}: not UTF-8 text") from None
    try:
        if many:
            return list(yaml.safe_load_all(text))
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise LocalInputError(f"{path}: not valid YAML or JSON{where}: {problem}") from None


def _validate_manifest(manifest: Mapping[str, Any]) -> None:
    kind = manifest.get("kind")
    if kind is not None and kind != "WorkflowTaskSet":
        raise LocalInputError(f"kind: expected WorkflowTaskSet, got {kind!r}")
    metadata = manifest.get("metadata", {})
    if metadata is not None and not isinstance(metadata, Mapping):
        raise LocalInputError("metadata: expected a mapping")
    for field in ("name", "namespace"):
        value = (metadata or {}).get(field)
        if value is not None and not isinstance(value, str):
            raise LocalInputError(f"metadata.{field}: expected a string")
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        raise LocalInputError("spec: required, a mapping with spec.tasks")
    tasks = spec.get("tasks")
    if tasks is None:
        raise LocalInputError("spec.tasks: required, a mapping of node ID to template")
    if not isinstance(tasks, Mapping):
        raise LocalInputError("spec.tasks: expected a mapping of node ID to template")


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
    max_in_flight: int = 512,
) -> dict[str, Any]:
    """Execute every task of ``manifest``; return a copy with ``status.nodes`` filled.

    ``secrets`` is a resolver, ``{name: {key: value}}`` (in the taskset's namespace) /
    ``{(namespace, name): {...}}``, or Secret manifests. Raises :class:`LocalInputError`
    for an unusable manifest; a bad template only fails its own node.
    """
    _validate_manifest(manifest)
    metadata = manifest.get("metadata") or {}
    namespace = metadata.get("namespace") or "default"
    name = metadata.get("name") or "local"
    workflow_uid = _workflow_uid(metadata)
    tasks: Mapping[str, Any] = manifest["spec"]["tasks"]
    resolver = _resolver(secrets, namespace=namespace)
    limit = asyncio.Semaphore(max(max_in_flight, 1))

    async with Executor(settings=settings or ExecutorSettings(), secrets=resolver) as executor:

        async def run_node(node_id: str, template: Any) -> NodeResult:
            ref = TaskRef(namespace, name, str(node_id), workflow_uid)
            strategy = _retry_strategy(template)
            first_start = time.monotonic()
            number = 1
            while True:
                async with limit:
                    started = time.monotonic()
                    result = await executor.run(template, ref=ref)
                if strategy is None:
                    return result
                now = time.monotonic()
                attempt = Attempt(number, result, now - started, now - first_start)
                verdict = _decide(strategy, attempt)
                if on_attempt is not None:
                    on_attempt(str(node_id), attempt, verdict)
                if verdict.delay is None:
                    return verdict.result or result
                await asyncio.sleep(verdict.delay)
                number += 1

        node_ids = list(tasks)
        results = await asyncio.gather(*(run_node(n, tasks[n]) for n in node_ids))

    out = copy.deepcopy(dict(manifest))
    status = out.get("status")
    if not isinstance(status, dict):
        status = {}
    status["nodes"] = {str(n): dump(r) for n, r in zip(node_ids, results, strict=True)}
    out["status"] = status
    return out


def _workflow_uid(metadata: Mapping[str, Any]) -> str:
    for owner in metadata.get("ownerReferences") or ():
        if isinstance(owner, Mapping) and owner.get("kind") == "Workflow":
            return str(owner.get("uid") or "")
    return ""


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
    return all(node.get("phase") == NodePhase.SUCCEEDED for node in nodes.values())


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
    parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    parser.add_argument("--ca-bundle", metavar="FILE", help="extra PEM CA certificates to trust")
    parser.add_argument(
        "--default-timeout",
        type=float,
        metavar="SECONDS",
        default=30.0,
        help="timeout for templates without timeoutSeconds (default 30)",
    )
    parser.add_argument(
        "--max-result-bytes",
        type=int,
        metavar="N",
        default=1 << 20,
        help="largest response body kept as outputs.result (default 1 MiB; 0 = no limit)",
    )
    parser.add_argument("--transport", choices=("aiohttp", "httpcore"), default="aiohttp")
    return parser


def main(argv: list[str]) -> int:
    """``argo-http-agent local``: 0 all succeeded, 1 some did not, 2 unusable input."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    try:
        manifest = load_manifest(args.file)
        secrets = load_secret_manifests(args.secrets) if args.secrets else None
        settings = ExecutorSettings(
            default_timeout_seconds=args.default_timeout,
            max_result_bytes=args.max_result_bytes,
            ca_bundle=args.ca_bundle,
            transport=args.transport,
        )
        result = asyncio.run(
            run_local(
                manifest, secrets=secrets, settings=settings, on_attempt=_print_attempt(sys.stderr)
            )
        )
    except LocalInputError as exc:
        print(f"argo-http-agent local: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # settings: e.g. an unreadable --ca-bundle
        print(f"argo-http-agent local: {exc}", file=sys.stderr)
        return 2
    if args.output == "json":
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(yaml.safe_dump(result, sort_keys=False, allow_unicode=True), end="")
    return 0 if _succeeded(result) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
