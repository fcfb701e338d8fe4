"""``argo-http-agent expr``: evaluate an expression the way Argo would, from a shell.

Meant for debugging a ``successCondition`` or a ``retryStrategy.expression`` before
submitting a workflow::

    argo-http-agent expr 'response.statusCode == 201' --bool \\
        --env '{"response": {"statusCode": 201, "body": "ok", "headers": {}}}'
    argo-http-agent expr 'asInt(lastRetry.exitCode) > 1' --env '{"lastRetry.exitCode": "2"}'
    argo-http-agent expr 'hello {{=sprig.upper(inputs.parameters.name)}}' --template \\
        --env '{"inputs.parameters.name": "world"}'

Modes: the default evaluates with Argo's functions (as ``{{=...}}`` and retry expressions
do) and prints the result as JSON; ``--bool`` evaluates as ``successCondition`` does (no
Argo functions, the result must be a bool) and prints ``true``/``false``; ``--template``
renders ``{{...}}`` tags; ``--plain`` evaluates without Argo's functions. Errors go to
stderr with exit status 1, worded as Argo words them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .errors import ExprError, Panic
from .program import eval_bool, evaluate
from .template import render
from .values import go_sprint, json_marshal

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="argo-http-agent expr",
        description="Evaluate an Argo (expr-lang) expression and print the result as JSON.",
    )
    parser.add_argument(
        "expression", metavar="EXPR", help="the expression (or template with --template)"
    )
    parser.add_argument(
        "--env", default="{}", metavar="JSON", help="variables as a JSON object (default: {})"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--bool", action="store_true", help="evaluate like successCondition: result must be a bool"
    )
    mode.add_argument("--template", action="store_true", help="render {{=expr}} and {{name}} tags")
    mode.add_argument("--plain", action="store_true", help="evaluate without Argo's functions")
    return parser


def _to_json(value: Any) -> str:
    try:
        return json_marshal(value)
    except Panic:
        # Not representable in JSON (e.g. a groupBy map): show Go's %v form instead.
        return json.dumps(go_sprint(value), ensure_ascii=False)


#: Deepest nesting accepted in ``--env``: the checker and Argo's dotted-key expansion
#: walk values recursively, and no real scope comes near this.
MAX_ENV_DEPTH = 200


def _too_deep(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_ENV_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def main(argv: list[str]) -> int:
    """Run the ``expr`` subcommand; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return int(exc.code or 0)
    try:
        env = json.loads(args.env)
    except json.JSONDecodeError as exc:
        print(f"--env: invalid JSON: {exc}", file=sys.stderr)
        return 1
    except RecursionError:
        print(f"--env: nested more than {MAX_ENV_DEPTH} levels deep", file=sys.stderr)
        return 1
    if not isinstance(env, dict):
        print("--env: must be a JSON object", file=sys.stderr)
        return 1
    if _too_deep(env):
        print(f"--env: nested more than {MAX_ENV_DEPTH} levels deep", file=sys.stderr)
        return 1
    try:
        if args.bool:
            result: Any = eval_bool(args.expression, env, argo=False)
        elif args.template:
            result = render(args.expression, env)
        else:
            result = evaluate(args.expression, env, argo=not args.plain)
    except ExprError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    try:
        text = _to_json(result)
    except Panic as exc:  # e.g. a time outside the years Python can print
        print(exc.message, file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through the agent's CLI
    raise SystemExit(main(sys.argv[1:]))
