"""A pop-up rule back-tested over the shop's recorded browsing, through the admin API on the real
broker: the storefront's own decision path replayed at each recorded event's time, with the intent
model and its page statistics. The lingering-visitor offer reaches lingering visits only."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from deploy.demo.shop import history
from services.admin import access
from services.admin.app import create_app
from shared.features.page_stats import PageStats, sessions_from_events
from shared.models.registry import Registry, attach_page_stats
from shared.rules.builtin import LINGERING
from shared.settings import AdminSettings, Settings
from shared.store import mongo_client
from tests.factories import uid
from tests.integration.conftest import isolated_topics
from tests.kafka_io import produce

pytestmark = pytest.mark.integration


async def test_the_lingering_offer_is_back_tested_over_recorded_browsing(
    base_settings: Settings, intent_model: Path, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    events = history(120, seed=21, end=now - timedelta(hours=2), days=2)
    recorded, states = sessions_from_events(events)
    registry = Registry(tmp_path / "registry")
    stats = PageStats.from_sessions(sessions_from_events(history(600, seed=3, end=now))[0], source="test")
    registry.promote("intent", registry.add(attach_page_stats(intent_model, stats, tmp_path / "intent")))
    lingering = {
        s["visitor_id"]
        for s in states.values()
        if len(s["pages"]) >= 5
        and not s.get("checkout")
        and (datetime.fromisoformat(s["last_seen_at"]) - datetime.fromisoformat(s["started_at"])).total_seconds() > 3100
    }
    buying = {s["visitor_id"] for s in states.values() if s.get("checkout")}
    assert lingering
    assert buying
    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("popbt")) as topics:
        await produce(events, topics)
        name = f"adminpop{uuid.uuid4().hex[:8]}"
        app = create_app(AdminSettings(mongo_database=name, topic_prefix=topics.prefix, model_dir=registry.root))
        try:
            async with app.router.lifespan_context(app):
                key, _ = await access.create_key(app.state.db, "m", "marketer", by="tests")
                auth = {"Authorization": f"Bearer {key}"}
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://admin", headers=auth
                ) as http:
                    job = (await http.post(f"/v1/rules/{LINGERING}/backtests", json={})).json()
                    for _ in range(600):
                        done = (await http.get(f"/v1/backtests/{job['job_id']}")).json()
                        if done["status"] in ("done", "failed"):
                            break
                        await asyncio.sleep(0.1)
        finally:
            client = mongo_client(base_settings)
            await client.drop_database(name)
            await client.close()
    assert done["status"] == "done", done
    result = done["result"]
    assert result["warnings"] == []
    offered = {s["customer_id"] for s in result["samples"]}
    assert result["messages"] + result["held_out"] >= len(lingering) // 2  # most lingering visits
    assert offered <= lingering  # and only those: never a buying visit
    assert not offered & buying
    assert result["sessions"] == len(recorded)
    assert result["by_channel"] == {"popup": result["messages"]}
