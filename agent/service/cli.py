"""The ``argo-http-agent`` command: one entry point, one subcommand per job.

* ``run``   -- the agent's main job: watch WorkflowTaskSets, execute, patch results back.
* ``local`` -- the same executor on a manifest file, no cluster (prints the filled status).
* ``expr``  -- evaluate an expression as Argo would (debug a ``successCondition``).
* ``demo``  -- a self-contained tour: simulator, echo target and agent, all on 127.0.0.1.

Subcommands import their module lazily so ``expr`` does not pay for kubernetes_asyncio.
The demo ships with the simulator in the ``argo-http-agent-sim`` distribution (a
development tool, not part of the product): it plugs in through the
``argo_http_agent.commands`` entry point group, so the product never imports it.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

from agent import __version__

__all__ = ["main"]

_PLUGIN_GROUP = "argo_http_agent.commands"

_USAGE = """\
usage: argo-http-agent {run,local,expr,demo,version} ...

commands:
  run      watch WorkflowTaskSets and execute their HTTP/plugin tasks (the agent)
  local    execute a WorkflowTaskSet manifest without a cluster and print the result
  expr     evaluate an expression the way Argo does (successCondition, retry expressions)
  demo     run a self-contained demo (simulated API server, echo target, agent)
  version  print the version

'argo-http-agent COMMAND --help' describes each command.
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(_USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command in ("version", "--version"):
        print(__version__)
        return 0
    if command == "run":
        from agent.service.run import main as run_main

        return run_main(rest)
    if command == "local":
        from agent.service.local import main as local_main

        return local_main(rest)
    if command == "expr":
        from agent.expr.cli import main as expr_main

        return expr_main(rest)
    plugged = entry_points(group=_PLUGIN_GROUP, name=command)
    if plugged:
        plugin_main = next(iter(plugged)).load()
        return int(plugin_main(rest))
    if command == "demo":
        print(
            "argo-http-agent demo: the demo ships with the simulator (the argo-http-agent-sim "
            "distribution in this repository's sim/ folder): run `make demo`",
            file=sys.stderr,
        )
        return 2
    print(f"argo-http-agent: unknown command {command!r}\n", file=sys.stderr)
    print(_USAGE, end="", file=sys.stderr)
    return 2


def _entry() -> None:  # pragma: no cover - the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
