"""The storefront's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from services.storefront.publisher import Publisher
from services.storefront.views import router
from shared.contract import Topics
from shared.settings import StorefrontSettings
from shared.web import install_error_handlers, install_health


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

    async def ready(request: Request) -> bool:
        publisher: Publisher | None = getattr(request.app.state, "publisher", None)
        return publisher is not None and await publisher.ping()

    install_health(app, ready)
    return app
