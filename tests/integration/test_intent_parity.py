"""The intent model sees live what it was trained on: a shop's recorded visits and orders, replayed
through the engine and the storefront on the real broker, give each session the feature vector the
offline path (the trainer's, ``shared.features.page_stats``) gives it, exactly, page statistics
included; and the engine's and the storefront's scores are the model's score of that vector."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deploy.demo.shop import history
from services.storefront.app import create_app
from shared.features import intent
from shared.features.page_stats import PageStats, sessions_from_events
from shared.models.registry import Registry, attach_page_stats
from shared.rules import RuleSet, builtin_rules
from shared.settings import Settings, StorefrontSettings
from tests.factories import uid
from tests.integration.conftest import engine_on, isolated_topics
from tests.kafka_io import produce

pytestmark = pytest.mark.integration


async def test_live_feature_vectors_equal_the_offline_ones(
    base_settings: Settings, intent_model: Path, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    events = history(80, seed=11, end=now - timedelta(minutes=5), days=0.04)  # the last hour
    recorded, offline = sessions_from_events(events)
    stats = PageStats.from_sessions(recorded, source="test")
    assert stats.sessions_with_revenue > 0  # buying visits, linked to their orders
    assert stats.stats["/checkout"].page_value > stats.stats["/help/shipping"].page_value
    registry = Registry(tmp_path / "registry")
    artefact = attach_page_stats(intent_model, stats, tmp_path / "intent-with-stats")
    registry.promote("intent", registry.add(artefact))
    model = registry.load_promoted("intent")
    assert model is not None
    assert model.page_stats == stats.stats

    def offline_vector(session_id: str) -> list[float]:
        session = offline[session_id]
        view = intent.from_session(session, stats.stats, datetime.fromisoformat(session["started_at"]))
        return intent.intent_vector(view)

    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("parity")) as topics:
        await produce(events, topics)
        # every batch's score, not one per 30 s of event time
        engine = engine_on(topics, registry.root, RuleSet(builtin_rules()), intent_refresh_s=0)
        running = asyncio.create_task(engine.run())
        app = create_app(StorefrontSettings(topic_prefix=topics.prefix, model_dir=registry.root))
        try:
            async with app.router.lifespan_context(app):
                live: dict[str, dict[str, object]] = {}
                for _ in range(300):
                    live = {
                        sid: doc
                        for state in list(engine.states.values())
                        for sid in offline
                        if (doc := state.get("session", sid)) is not None and doc.get("intent")
                    }
                    seen = {sid for sid in offline if app.state.view.get("session", sid) is not None}
                    if len(live) == len(offline) and seen == set(offline) and app.state.view.caught_up:
                        break
                    await asyncio.sleep(0.1)
                assert set(live) == set(offline)
                for sid, session in live.items():
                    expected = offline_vector(sid)
                    # the engine: the same session state, the same vector, the model's score of it
                    engine_view = intent.from_session(
                        session, model.page_stats, datetime.fromisoformat(str(session["started_at"]))
                    )
                    assert intent.intent_vector(engine_view) == expected, sid
                    assert session["intent"]["score"] == round(model.score_one(expected), 6)  # type: ignore[index]
                    # the storefront's own view of the session, scored by its decision path
                    viewed = app.state.view.get("session", sid)
                    storefront_view = intent.from_session(
                        viewed, model.page_stats, datetime.fromisoformat(viewed["started_at"])
                    )
                    assert intent.intent_vector(storefront_view) == expected, sid
                    assert app.state.decider._intent(viewed) == round(model.score_one(expected), 6)
        finally:
            engine.stop()
            await asyncio.wait_for(running, 30)
    # and the page statistics reach the model: the buying visits' vectors carry a page value
    buying = [s.session_id for s in recorded if s.revenue > 0]
    assert all(offline_vector(sid)[intent.FEATURES.index("log_page_value")] > 0 for sid in buying)
    shutil.rmtree(tmp_path / "registry")
