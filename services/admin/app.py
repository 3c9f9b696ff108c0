"""The admin service's FastAPI application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from services.admin.audit import router as audit_router
from services.admin.backtests import router as backtests_router
from services.admin.callbacks import router as callbacks_router
from services.admin.churn_causes import router as churn_causes_router
from services.admin.dead_letters import router as dead_letters_router
from services.admin.dryrun import router as dry_run_router
from services.admin.keys import router as keys_router
from services.admin.model_registry import router as models_router
from services.admin.overview import router as overview_router
from services.admin.ratings import router as ratings_router
from services.admin.results import router as results_router
from services.admin.rules import router as rules_router
from services.admin.templates import router as templates_router
from services.admin.ui import router as ui_router
from shared.mail import Mailer
from shared.rules import store as rule_store
from shared.settings import AdminSettings
from shared.store import Collections, database, ensure_indexes, mongo_client, ping
from shared.web import NO_NATIVE_TELEMETRY, install_error_handlers, install_health

# what the marketing team edits; the admin service is the only writer of these
OWNED_COLLECTIONS = (
    Collections.RULES,
    Collections.TEMPLATES,
    Collections.API_KEYS,
    Collections.AUDIT,
    Collections.MODELS,
    Collections.SETTINGS,
    Collections.BACKTESTS,
)


def create_app(settings: AdminSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = mongo_client(settings)
        app.state.mongo = client
        app.state.db = database(client, settings)
        app.state.mailer = Mailer.from_settings(settings)  # template test-sends
        await ensure_indexes(app.state.db, OWNED_COLLECTIONS)
        await rule_store.seed(app.state.db)  # the built-in rules, where missing (the engine does the same)
        app.state.jobs = set()  # back-tests running in this process
        try:
            yield
        finally:
            for job in list(app.state.jobs):
                job.cancel()
            await asyncio.gather(*app.state.jobs, return_exceptions=True)
            await client.close()

    # a rule or a policy is a few kilobytes; a larger body is refused with 413 before it is read whole
    app = FastAPI(
        title="proact admin API",
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=1_048_576,
        telemetry=NO_NATIVE_TELEMETRY,
    )
    app.include_router(keys_router)
    app.include_router(audit_router)
    app.include_router(rules_router)
    app.include_router(dry_run_router)
    app.include_router(templates_router)
    app.include_router(results_router)
    app.include_router(ratings_router)
    app.include_router(callbacks_router)
    app.include_router(backtests_router)
    app.include_router(models_router)
    app.include_router(overview_router)
    app.include_router(churn_causes_router)
    app.include_router(dead_letters_router)
    app.include_router(ui_router)
    app.state.settings = settings
    install_error_handlers(app)

    async def ready(request: Request) -> bool:
        return await ping(request.app.state.mongo)

    install_health(app, ready)
    return app
