"""The agent's own HTTP API: health, readiness, metrics, version. Read-only by design.

Served by uvicorn on the same event loop as the agent, so ``/healthz`` answering at all
proves the loop is not blocked. Nothing on this port can change state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from agent import __version__

__all__ = ["ApiServer", "Health", "create_app"]


@dataclass(frozen=True, slots=True)
class Health:
    """What the probes report; produced on demand by the running agent."""

    ok: bool
    reason: str = ""


def create_app(
    *,
    liveness: Callable[[], Health],
    readiness: Callable[[], Health],
    registry: CollectorRegistry = REGISTRY,
    refresh_metrics: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="argo-http-agent",
        version=__version__,
        description="Health, readiness and Prometheus metrics of argo-http-agent.",
    )

    @app.get("/healthz", summary="Liveness: the event loop and the workers are alive")
    async def healthz() -> JSONResponse:
        return _probe(liveness(), ok="ok", failing="failing")

    @app.get("/readyz", summary="Readiness: the API server is reachable, every watch is open")
    async def readyz() -> JSONResponse:
        return _probe(readiness(), ok="ready", failing="not ready")

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)")
    async def metrics() -> Response:
        if refresh_metrics is not None:
            await refresh_metrics()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/version", summary="The agent's version")
    async def version() -> dict[str, str]:
        return {"version": __version__}

    return app


def _probe(health: Health, *, ok: str, failing: str) -> JSONResponse:
    return JSONResponse(
        {"status": ok if health.ok else failing, "reason": health.reason},
        status_code=200 if health.ok else 503,
    )


class ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the agent (or supervisor) owns the signals."""

    @classmethod
    def for_app(cls, app: FastAPI, *, host: str, port: int) -> ApiServer:
        """The server for ``app`` on ``host:port``, quiet: no access log, no lifespan."""
        return cls(
            uvicorn.Config(
                app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
            )
        )

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # uvicorn's own handlers would take SIGTERM from the agent's drain
