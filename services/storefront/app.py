"""The storefront's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.storefront.publisher import Publisher
from services.storefront.views import router
from shared.contract import Topics
from shared.settings import StorefrontSettings


def create_app(settings: StorefrontSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        publisher = Publisher(settings.kafka_bootstrap_servers, Topics.from_settings(settings))
        await publisher.start()
        app.state.publisher = publisher
        try:
            yield
        finally:
            await publisher.stop()

    app = FastAPI(title="proact storefront API", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.include_router(router)
    install_error_handlers(app)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready", tags=["health"])
    async def ready(request: Request) -> JSONResponse:
        publisher: Publisher | None = getattr(request.app.state, "publisher", None)
        ok = publisher is not None and await publisher.ping()
        return JSONResponse({"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503)

    return app


def install_error_handlers(app: FastAPI) -> None:
    """Every refusal is JSON with ``detail`` and, where known, the ``field`` that is wrong."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"] if p != "body")
        return JSONResponse({"detail": f"{field}: {first['msg']}", "field": field}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = exc.detail if isinstance(exc.detail, dict) else {"detail": exc.detail}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))
