"""Churn over time, on the real broker: a customer who says nothing is scored again as their silence
grows (a durable refresh timer per customer), and a win-back reaches them, and not an active one;
and a back-test of 120 simulated days, through the admin API, shows the same."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.admin.app import create_app
from services.projector.app import Projector
from shared.contract import Event, InvalidEvent, decode
from shared.rules import RuleSet, builtin_rules
from shared.settings import AdminSettings, Settings
from shared.store import mongo_client
from tests.factories import event, uid
from tests.integration.conftest import admin_api, engine_on, finished, isolated_topics, profiles_known, signed_in
from tests.kafka_io import produce, read

pytestmark = pytest.mark.integration
WINBACK = "churn-winback"


def orders(customer: str, first: datetime, count: int, every_days: int) -> list[Event]:
    return [
        event(
            "order.placed",
            customer,
            first + timedelta(days=k * every_days),
            order_id=f"o-{customer}-{k}",
            total={"amount": "40.00", "currency": "EUR"},
        )
        for k in range(count)
    ]


def winbacks(records: list[object]) -> list[str]:
    found = []
    for r in records:
        try:
            e = decode(r.value, r.headers)  # type: ignore[attr-defined]
        except InvalidEvent:
            continue
        data = e.data.model_dump()
        if data.get("rule_id") == WINBACK:
            found.append(data["customer_id"])
    return found


async def test_a_silent_customer_is_rescored_and_gets_the_win_back(
    base_settings: Settings, model_registry: Path
) -> None:
    now = datetime.now(UTC)
    silent, active = uid("c-silent"), uid("c-active")
    rules = [r.model_copy(update={"enabled": True}) if r.rule_id == WINBACK else r for r in builtin_rules()]
    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("churn")) as topics:
        # a second between refreshes here; a day by default
        engine = engine_on(topics, model_registry, RuleSet(rules), churn_refresh_s=1.0)
        running = asyncio.create_task(engine.run())
        try:
            profiles = [
                event("customer.upserted", c, now - timedelta(days=300), consents={"email": True})
                for c in (silent, active)
            ]
            await produce(profiles, topics)
            await profiles_known(engine, [silent, active])
            # the silent customer bought twice, about seven months ago, and nothing since; the active
            # one every two weeks up to last week. Scored at each order as of its time, both are low;
            # their refresh timers then score them as of now.
            await produce(
                orders(silent, now - timedelta(days=215), 2, 7) + orders(active, now - timedelta(days=85), 6, 14),
                topics,
            )
            records = await read(topics.actions, lambda rs: silent in winbacks(rs), timeout_s=60, settle_s=3)
            await asyncio.sleep(2)  # the active customer's refresh too

            def doc(customer: str) -> dict[str, object] | None:
                return next((d for s in engine.states.values() if (d := s.get("customer", customer))), None)

            silent_doc, active_doc = doc(silent), doc(active)
        finally:
            engine.stop()
            await asyncio.wait_for(running, 30)
    assert winbacks(records) == [silent]
    assert silent_doc is not None
    assert active_doc is not None
    silent_churn, active_churn = silent_doc["churn"], active_doc["churn"]
    assert silent_churn["score"] >= 0.7  # type: ignore[index]
    assert active_churn["score"] < 0.3  # type: ignore[index]
    # both scored as of now, not as of their last order: the refresh measured the silence
    assert datetime.fromisoformat(silent_churn["at"]) > now - timedelta(minutes=5)  # type: ignore[index]
    assert datetime.fromisoformat(active_churn["at"]) > now - timedelta(minutes=5)  # type: ignore[index]


async def test_a_back_test_of_120_days_reaches_silent_customers_and_not_active_ones(
    base_settings: Settings, model_registry: Path
) -> None:
    t0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    actives = [f"c-active-{i}" for i in range(8)]
    silents = [f"c-silent-{i}" for i in range(8)]
    history: list[Event] = []
    for i, customer in enumerate(actives + silents):
        history.append(event("customer.upserted", customer, t0, consents={"email": True}))
        start = t0 + timedelta(days=1, hours=i)
        history += orders(customer, start, 9, 14) if customer in actives else orders(customer, start, 2, 7)
    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("bt120")) as topics:
        await produce(sorted(history, key=lambda e: e.time), topics)
        async with admin_api(base_settings, topics, model_registry) as (_, http):
            rule = (await http.get(f"/v1/rules/{WINBACK}")).json()[0]["rule"]
            # a marketer's draft: the win-back at a risk of 0.5 instead of 0.7
            draft = {**rule, "enabled": True, "triggers": [{"kind": "score", "score": "churn", "at_least": 0.5}]}
            assert (await http.put(f"/v1/rules/{WINBACK}", json=draft)).status_code == 201
            until = (t0 + timedelta(days=120)).isoformat()
            job = (await http.post(f"/v1/rules/{WINBACK}/backtests", json={"until": until})).json()
            done = await finished(http, job["job_id"])
    assert done["status"] == "done", done
    result = done["result"]
    assert result["warnings"] == []  # the score trigger was back-tested, with the promoted models
    reached = {s["customer_id"] for s in result["samples"]}
    assert reached  # win-backs, on the simulated clock, to customers who went quiet
    assert reached <= set(silents)
    assert result["messages"] + result["held_out"] == len(silents)  # each silent customer once (90-day guard)
    first = min(s["at"] for s in result["samples"])
    assert first > (t0 + timedelta(days=30)).isoformat()  # only after their silence had grown


async def test_churn_causes_reach_the_why_the_decision_log_and_the_admin(
    base_settings: Settings, model_registry: Path
) -> None:
    """Each churn score keeps its top reasons (exact shares of the logistic model's log-odds): the
    engine stores them, the projector copies them to MongoDB, and the admin shows them for one
    customer (``/why``), in the win-back's decision, and counted per risk segment."""
    now = datetime.now(UTC)
    silent, active = uid("c-silent"), uid("c-active")
    rules = [r.model_copy(update={"enabled": True}) if r.rule_id == WINBACK else r for r in builtin_rules()]
    name = f"churncauses{uuid.uuid4().hex[:8]}"
    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("causes")) as topics:
        engine = engine_on(topics, model_registry, RuleSet(rules), mongo_database=name, churn_refresh_s=1.0)
        settings = engine.settings
        client = mongo_client(base_settings)
        projector = Projector(settings, client[name], flush_interval_s=0.2)
        tasks = [asyncio.create_task(engine.run()), asyncio.create_task(projector.run())]
        app = create_app(AdminSettings(mongo_database=name, topic_prefix=topics.prefix, model_dir=model_registry))
        try:
            await produce(
                [
                    event("customer.upserted", c, now - timedelta(days=300), consents={"email": True})
                    for c in (silent, active)
                ],
                topics,
            )
            await profiles_known(engine, [silent, active])
            await produce(
                orders(silent, now - timedelta(days=215), 2, 7) + orders(active, now - timedelta(days=85), 6, 14),
                topics,
            )
            async with app.router.lifespan_context(app):
                async with signed_in(app, "viewer") as http:
                    why: dict[str, object] = {}
                    for _ in range(200):
                        why = (await http.get(f"/v1/customers/{silent}/why")).json()
                        decided = any(d["rule_id"] == WINBACK for d in why.get("decisions", []))  # type: ignore[union-attr]
                        if decided and why.get("churn") and why["churn"]["score"] >= 0.7:  # type: ignore[index]
                            break
                        await asyncio.sleep(0.2)
                    causes = (await http.get("/v1/churn/causes")).json()
        finally:
            engine.stop()
            projector.stop()
            await asyncio.gather(*tasks)
            await client.drop_database(name)
            await client.close()
    churn = why["churn"]
    assert churn["score"] >= 0.7  # type: ignore[index]
    reasons = churn["reasons"]  # type: ignore[index]
    assert 1 <= len(reasons) <= 3
    assert all(r["contribution"] > 0 and r["label"] for r in reasons)
    assert [r["contribution"] for r in reasons] == sorted((r["contribution"] for r in reasons), reverse=True)
    assert "raised most by" in churn["summary"]  # type: ignore[index]
    (decision,) = [d for d in why["decisions"] if d["rule_id"] == WINBACK]  # type: ignore[union-attr]
    assert decision["inputs"]["churn_reasons"] == reasons  # the decision log keeps why the risk was high
    high = next(s for s in causes["segments"] if s["segment"].startswith("high"))
    low = next(s for s in causes["segments"] if s["segment"].startswith("low"))
    assert high["customers"] == 1
    assert low["customers"] == 1
    assert {c["feature"] for c in high["causes"]} == {r["feature"] for r in reasons}
