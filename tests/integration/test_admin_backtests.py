"""Back-test jobs on the real broker and FerretDB: a draft replayed over the shop's recorded events
in the background, with progress, and its result stored; the version in force is not touched."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from services.admin import access
from services.admin.app import create_app
from shared.contract import Topics, encode
from shared.rules import store as rule_store
from shared.rules.builtin import CHECKIN
from shared.settings import AdminSettings, Settings
from shared.store import mongo_client
from tests.factories import purchase_history, uid
from tests.integration.conftest import finished, isolated_topics
from tests.kafka_io import produce, produce_raw

pytestmark = pytest.mark.integration
T0 = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def shop(base_settings: Settings) -> AsyncIterator[tuple[FastAPI, Topics]]:
    """An admin over a shop of its own: its topics hold 20 customers' purchases, and a broken record."""
    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("bt")) as topics:
        await produce(purchase_history(t0=T0), topics)
        await produce_raw(topics.orders, b"{not json", b"c0")
        name = f"admin{uuid.uuid4().hex[:10]}"
        app = create_app(AdminSettings(mongo_database=name, topic_prefix=topics.prefix))
        async with app.router.lifespan_context(app):
            yield app, topics
        client = mongo_client(base_settings)
        await client.drop_database(name)
        await client.close()


async def test_a_draft_is_back_tested_over_the_recorded_events(shop: tuple[FastAPI, Topics]) -> None:
    app, _ = shop
    keys = {r: (await access.create_key(app.state.db, r, r, by="tests"))[0] for r in ("viewer", "marketer")}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as http:
        http.headers["Authorization"] = f"Bearer {keys['marketer']}"
        current = (await http.get(f"/v1/rules/{CHECKIN}")).json()[0]["rule"]
        shorter = {**current, "triggers": [{"kind": "delay", "after": "order.delivered", "delay": "PT12H"}]}
        draft = (await http.put(f"/v1/rules/{CHECKIN}", json=shorter)).json()["version"]

        until = (T0 + timedelta(days=10)).isoformat()
        started = await http.post(f"/v1/rules/{CHECKIN}/backtests", json={"until": until})
        assert started.status_code == 202, started.text
        assert started.json()["rule_version"] == draft
        job = await finished(http, started.json()["job_id"])
        assert job["status"] == "done", job
        result = job["result"]
        assert result["events"] == 20 * 3 + 4  # the recorded timer firings are not replayed
        assert result["invalid_records"] == 1
        assert result["messages"] + result["held_out"] == 18  # 12 h after delivery: before the returns
        assert sum(result["suppressed_by_guard"].values()) == 2  # no consent
        assert result["outcomes"]["deferred"] == 18  # due in the quiet hours, sent in the morning

        # the version in force (3 days) over the same history: the returns stop four check-ins
        in_force = await http.post(f"/v1/rules/{CHECKIN}/backtests", json={"version": 1, "until": until})
        result = (await finished(http, in_force.json()["job_id"]))["result"]
        assert result["messages"] + result["held_out"] == 14
        assert result["outcomes"]["cancelled"] == 4

        # the service's ceiling bounds what a request asks for (memory: see AdminSettings)
        app.state.settings.backtest_max_events = 10
        try:
            capped = await http.post(f"/v1/rules/{CHECKIN}/backtests", json={"until": until, "max_events": 1_000})
            result = (await finished(http, capped.json()["job_id"]))["result"]
        finally:
            app.state.settings.backtest_max_events = AdminSettings().backtest_max_events
        assert result["events"] == 10
        assert "stopped after 10 events: the result covers the oldest ones" in result["warnings"]

        as_viewer = {"Authorization": f"Bearer {keys['viewer']}"}
        listed = await http.get(f"/v1/rules/{CHECKIN}/backtests", headers=as_viewer)
        assert [j["rule_version"] for j in listed.json()][:3] == [draft, 1, draft]
        assert "samples" not in listed.json()[0]["result"]
        # viewers may look, not start one; a bad window names the field
        refused = await http.post(f"/v1/rules/{CHECKIN}/backtests", json={}, headers=as_viewer)
        assert refused.status_code == 403
        bad = await http.post(f"/v1/rules/{CHECKIN}/backtests", json={"since": until, "until": T0.isoformat()})
        assert bad.status_code == 422
        assert (await http.post("/v1/rules/no-such-rule/backtests", json={})).status_code == 404
    versions = await http_get_versions(app)
    assert [v["status"] for v in versions if v["version"] == 1] == ["published"]


async def http_get_versions(app: FastAPI) -> list[dict[str, Any]]:

    return await rule_store.versions(app.state.db, CHECKIN)


async def test_an_ndjson_export_is_back_tested_on_the_command_line(
    shop: tuple[FastAPI, Topics], tmp_path: Path
) -> None:
    app, _ = shop
    export = tmp_path / "events.ndjson"
    export.write_bytes(b"\n".join(encode(e)[1] for e in purchase_history(t0=T0)) + b"\n{broken\n")
    env = {**os.environ, "PROACT_MONGO_DATABASE": app.state.db.name}
    until = (T0 + timedelta(days=10)).isoformat()
    done = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.admin",
        "backtest",
        "--rule",
        CHECKIN,
        "--version",
        "1",
        "--events",
        str(export),
        "--until",
        until,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await done.communicate()
    assert done.returncode == 0
    result = orjson.loads(out)
    assert result["messages"] + result["held_out"] == 14
    assert result["invalid_records"] == 1
