"""Run the API simulator as its own process: ``python -m agent_sim``.

It prints one JSON line on stdout once it serves (``{"url", "admin", "kubeconfig",
"pid"}``), so a parent process can read the URL of an ephemeral port, and serves until
SIGTERM or SIGINT. ``--kubeconfig PATH`` writes a kubeconfig for ``--token`` (a random
token when none is given; it is written to the file only, never printed). The token gets
every permission; more tokens and narrower rules come through ``POST /_sim/tokens``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from .simulator import DEFAULT_USER, ApiSimulator, SimulatorTls
from .state import DEFAULT_MAX_BODY_BYTES


def _positive(kind: type[float] | type[int]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agent_sim",
        description="Kubernetes API simulator (workflowtasksets, secrets, leases) for tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for --token here")
    parser.add_argument("--token", help="bearer token with every permission")
    parser.add_argument("--user", default=DEFAULT_USER, help="user name of --token")
    parser.add_argument("--namespace", default="default", help="kubeconfig context namespace")
    parser.add_argument(
        "--bookmark-interval",
        type=_positive(float),
        default=60.0,
        help="seconds between watch BOOKMARK events (default %(default)s)",
    )
    parser.add_argument(
        "--watch-timeout",
        type=_positive(float),
        default=1800.0,
        help="seconds before the server ends a watch without timeoutSeconds",
    )
    parser.add_argument(
        "--history-limit",
        type=_positive(int),
        default=2000,
        help="watch events retained; older versions get 410 Expired (default %(default)s)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive(int),
        default=DEFAULT_MAX_BODY_BYTES,
        help="larger write bodies get 413 (default %(default)s, the API server's)",
    )
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate chain (serve HTTPS)")
    parser.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    parser.add_argument("--tls-ca", type=Path, help="PEM CA written into the kubeconfig")
    parser.add_argument("--log-level", default="WARNING", help="logging level")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    tls = None
    if args.tls_cert or args.tls_key or args.tls_ca:
        if not (args.tls_cert and args.tls_key and args.tls_ca):
            raise SystemExit("--tls-cert, --tls-key and --tls-ca must be given together")
        tls = SimulatorTls(
            cert_chain_pem=args.tls_cert.read_bytes(),
            private_key_pem=args.tls_key.read_bytes(),
            ca_pem=args.tls_ca.read_bytes(),
        )
    sim = ApiSimulator(
        host=args.host,
        port=args.port,
        bookmark_interval=args.bookmark_interval,
        watch_timeout=args.watch_timeout,
        history_limit=args.history_limit,
        max_body_bytes=args.max_body_bytes,
        tls=tls,
    )
    token = args.token or (secrets.token_urlsafe(24) if args.kubeconfig else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with sim:
        if token:
            sim.add_token(token, user=args.user)
        kubeconfig = None
        if args.kubeconfig:
            kubeconfig = str(
                sim.kubeconfig(args.kubeconfig, token=token or "", namespace=args.namespace)
            )
        ready = {
            "url": sim.url,
            "admin": sim.admin_url,
            "kubeconfig": kubeconfig,
            "pid": os.getpid(),
        }
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m agent_sim``."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
