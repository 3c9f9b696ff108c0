"""Liveness and readiness over HTTP for a service without a web API of its own (the engine)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Generator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from shared.metrics import prometheus_app

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]


async def kafka_reachable(bootstrap_servers: str, timeout_s: float = 2.0) -> bool:
    """Readiness: at least one bootstrap broker accepts a connection. aiokafka's consumer keeps
    polling quietly while the broker is down, so the loop alone cannot tell."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host or "127.0.0.1", int(port)), timeout_s)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        await writer.wait_closed()
        return True
    return False


Stats = Callable[[], dict[str, object]]


def health_app(service: str, ready: ReadyCheck, stats: Stats | None = None, detail: Stats | None = None) -> Starlette:
    """``detail`` adds what an operator should see beside the checks without it failing readiness
    (the models a service scores with: none promoted means scores are off, not a broken service)."""

    async def live(_: Request) -> JSONResponse:
        return JSONResponse({"service": service, "status": "live"})

    async def readiness(_: Request) -> JSONResponse:
        checks = await ready()
        ok = all(checks.values())
        body = {"service": service, "status": "ready" if ok else "not ready", "checks": checks}
        return JSONResponse({**body, **(detail() if detail else {})}, status_code=200 if ok else 503)

    async def counters(_: Request) -> JSONResponse:
        return JSONResponse(stats() if stats else {})

    return Starlette(
        routes=[
            Route("/health/live", live),
            Route("/health/ready", readiness),
            Route("/stats", counters),
            Mount("/metrics", app=prometheus_app()),
        ]
    )


def start_health_server(
    service: str,
    port: int,
    ready: ReadyCheck,
    stats: Stats | None = None,
    host: str = "0.0.0.0",  # noqa: S104 - kubelet probes
    detail: Stats | None = None,
) -> asyncio.Task[None]:
    app = health_app(service, ready, stats, detail)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    return asyncio.create_task(_QuietServer(config).serve(), name=f"{service}-health")


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves SIGTERM and SIGINT to the service that embeds it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
