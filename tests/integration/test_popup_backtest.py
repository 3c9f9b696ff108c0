"""A pop-up rule back-tested over the shop's recorded browsing, through the admin API on the real
broker: the storefront's own decision path replayed at each recorded event's time, with the intent
model and its page statistics. The lingering-visitor offer reaches lingering visits only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deploy.demo.shop import history
from shared.features.page_stats import PageStats, sessions_from_events
from shared.models.registry import Registry, attach_page_stats
from shared.rules.builtin import LINGERING
from shared.settings import Settings
from tests.factories import uid
from tests.integration.conftest import admin_api, finished, isolated_topics
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
        async with admin_api(base_settings, topics, registry.root, role="marketer") as (_, http):
            job = (await http.post(f"/v1/rules/{LINGERING}/backtests", json={})).json()
            done = await finished(http, job["job_id"])
    assert done["status"] == "done", done
    result = done["result"]
    assert result["warnings"] == []
    offered = {s["customer_id"] for s in result["samples"]}
    assert result["messages"] + result["held_out"] >= len(lingering) // 2  # most lingering visits
    assert offered <= lingering  # and only those: never a buying visit
    assert not offered & buying
    assert result["sessions"] == len(recorded)
    assert result["by_channel"] == {"popup": result["messages"]}
