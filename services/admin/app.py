"""The admin service's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.admin.views import router
from services.storefront.app import install_error_handlers
from shared.settings import AdminSettings
from shared.store import Collections, database, ensure_indexes, mongo_client, ping

# what the marketing team edits; the admin service is the only writer of these
OWNED_COLLECTIONS = (
    Collections.RULES,
    Collections.TEMPLATES,
    Collections.API_KEYS,
    Collections.AUDIT,
    Collections.MODELS,
)


def create_app(settings: AdminSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = mongo_client(settings)
        app.state.mongo = client
        app.state.db = database(client, settings)
        await ensure_indexes(app.state.db, OWNED_COLLECTIONS)
        try:
            yield
        finally:
            await client.close()

    app = FastAPI(title="proact admin API", version="0.1.0", lifespan=lifespan)
    app.include_router(router)
    install_error_handlers(app)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready", tags=["health"])
    async def ready(request: Request) -> JSONResponse:
        ok = await ping(request.app.state.mongo)
        return JSONResponse({"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503)

    return app
