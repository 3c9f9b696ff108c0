"""The storefront's FastAPI application."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request

from services.storefront import intake
from services.storefront.churn import ChurnScores
from services.storefront.decide import Decider
from services.storefront.limits import RateLimit
from services.storefront.messages import router as messages
from services.storefront.pages import router as pages
from services.storefront.publisher import Publisher
from services.storefront.ratings import router as ratings
from services.storefront.routes import router
from services.storefront.session_view import SessionView
from services.storefront.sites import SiteGuard
from shared import template_store, templates
from shared.contract import Topics
from shared.models.registry import ModelHandle, Registry
from shared.rules import store as rule_store
from shared.settings import StorefrontSettings
from shared.store import database, mongo_client
from shared.web import NO_NATIVE_TELEMETRY, install_error_handlers, install_health


def create_app(settings: StorefrontSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        topics = Topics.from_settings(settings)
        publisher = Publisher(settings.kafka_bootstrap_servers, topics)
        await publisher.start()
        app.state.publisher = publisher
        client = mongo_client(settings)  # the in-app inbox, and consents for unsubscribe links
        app.state.db = database(client, settings)
        view = SessionView(timedelta(seconds=settings.session_ttl_s))
        app.state.view = view
        intent = ModelHandle(Registry(settings.model_dir), "intent")
        app.state.intent_model = intent
        app.state.templates = templates.InForce()  # the published over the built-in, kept current below
        churn = ChurnScores(app.state.db)  # of identified visitors, for pop-up rules (read in the background)
        decider = Decider(
            view,
            intent,
            timedelta(seconds=settings.popup_cooldown_s),
            settings.decide_budget_ms,
            app.state.templates,
            churn,
        )
        app.state.decider = decider
        app.state.rules_loaded = asyncio.Event()
        app.state.event_limits = (
            RateLimit(settings.events_per_visitor_minute, 60),
            RateLimit(settings.events_per_ip_minute, 60),
        )
        app.state.new_session_limit = RateLimit(settings.new_sessions_per_ip_minute, 60)
        app.state.outcome_limits = (
            RateLimit(settings.outcomes_per_visitor_minute, 60),
            RateLimit(settings.events_per_ip_minute, 60),
        )
        app.state.callback_limits = (
            RateLimit(settings.callbacks_per_visitor_hour, 3600),
            RateLimit(settings.callbacks_per_ip_hour, 3600),
        )
        tasks = [
            asyncio.create_task(view.follow(settings.kafka_bootstrap_servers, topics)),
            asyncio.create_task(
                rule_store.follow(settings, decider.replace_rules, app.state.rules_loaded, settings.rules_refresh_s)
            ),
        ]
        tasks.append(asyncio.create_task(_freeze_when_caught_up(view)))
        tasks.append(
            asyncio.create_task(template_store.follow(settings, settings.templates_refresh_s, app.state.templates))
        )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task
            await publisher.stop()
            await client.close()

    app = FastAPI(
        title="proact storefront API",
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
        telemetry=NO_NATIVE_TELEMETRY,
    )
    app.state.settings = settings
    app.state.intake_sources = intake.sources(
        settings.intake_sources.get_secret_value() if settings.intake_sources else None
    )
    app.state.intake_limit = RateLimit(settings.intake_per_minute, 60)
    app.include_router(router)
    app.include_router(intake.router)
    app.include_router(pages)
    app.include_router(messages)
    app.include_router(ratings)
    if settings.sites:  # the shops whose pages may call this API: site keys and their origins
        app.add_middleware(SiteGuard, sites=settings.sites)
    install_error_handlers(app)

    async def ready(request: Request) -> bool:
        """The broker answers, the rules are loaded and the session view has read its history."""
        state = request.app.state
        publisher: Publisher | None = getattr(state, "publisher", None)
        if publisher is None or not state.rules_loaded.is_set() or not state.view.caught_up:
            return False
        return await publisher.ping()

    def models(request: Request) -> dict[str, Any]:
        handle = getattr(request.app.state, "intent_model", None)
        return {"models": [handle.status()] if handle is not None else []}

    install_health(app, ready, models)
    return app


async def _freeze_when_caught_up(view: SessionView) -> None:
    """Once the start-up work is done, move what exists to the GC's permanent generation: the
    collector then no longer walks it, which keeps its pauses out of the decision call's tail."""
    await view.caught_up_event.wait()
    gc.collect()
    gc.freeze()
