"""The storefront API on the real broker and FerretDB: browsing events reach Kafka, bad requests get
a 4xx naming the field, the decision call offers a lingering visitor a callback (once), pop-up
outcomes and callbacks reach their topics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.storefront.app import create_app
from shared.contract import Topics, decode
from shared.rules.builtin import LINGERING
from shared.settings import Settings, StorefrontSettings
from tests.factories import uid
from tests.integration.conftest import database_with_rules
from tests.kafka_io import read

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def app(topics: Topics, base_settings: Settings, model_registry: Path) -> AsyncIterator[FastAPI]:
    database = uid("storefront").replace("-", "")
    # the shop's lingering visitor: two minutes is "far longer" here, and any intent score will do
    # (the session must still have been scored)
    conditions = [
        "session.duration_s > 120.0",
        "scores.intent != null",
        "session.page_count >= 5",
        "!session.checkout",
        "!session.offered",
    ]
    db = await database_with_rules(base_settings, database, [{"expr": c} for c in conditions])
    settings = StorefrontSettings(topic_prefix=topics.prefix, mongo_database=database, model_dir=model_registry)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        for _ in range(100):
            if app.state.rules_loaded.is_set() and app.state.view.caught_up:
                break
            await asyncio.sleep(0.1)
        yield app
    await db.client.drop_database(database)
    await db.client.close()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
        yield client


async def test_browsing_events_are_published_as_cloudevents(client: httpx.AsyncClient, topics: Topics) -> None:
    visitor = uid("v")
    base = {"visitor_id": visitor, "session_id": uid("s")}
    response = await client.post(
        "/v1/events",
        json={
            "events": [
                {"type": "session.started", "data": {**base, "landing_url": "/"}},
                {"type": "page.viewed", "data": {**base, "url": "/p/1", "page_type": "product"}},
            ]
        },
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 2
    records = await read(topics.browsing, lambda rs: sum(r.key == visitor.encode() for r in rs) >= 2)
    events = [decode(r.value, r.headers) for r in records if r.key == visitor.encode()]
    assert [e.type for e in events] == ["session.started", "page.viewed"]
    assert {e.id for e in events} == set(response.json()["ids"])
    assert all(e.envelope.source == "proact/storefront" for e in events)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (
            {"events": [{"type": "page.viewed", "data": {"visitor_id": "v", "session_id": "s", "url": "/"}}]},
            422,
            "events.0.data.page_type",
        ),
        ({"events": [{"type": "order.placed", "data": {}}]}, 422, "events.0.type"),
        ({"events": []}, 422, "events"),
        ({"events": [{"type": "page.viewed", "data": {}, "color": "red"}]}, 422, "events.0.color"),
    ],
)
async def test_invalid_batches_are_refused_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, object], status: int, field: str
) -> None:
    response = await client.post("/v1/events", json=body)
    assert response.status_code == status
    assert response.json()["field"] == field
    assert response.json()["detail"]


async def test_too_many_events_in_one_batch_is_refused(client: httpx.AsyncClient) -> None:
    event = {"type": "session.heartbeat", "data": {"visitor_id": "v", "session_id": "s"}}
    response = await client.post("/v1/events", json={"events": [event] * 101})
    assert response.status_code == 413
    assert "at most 100" in response.json()["detail"]


async def test_readiness_reports_the_broker_and_the_model_in_use(client: httpx.AsyncClient) -> None:
    answer = (await client.get("/health/ready")).json()
    assert answer["status"] == "ready"
    (intent,) = answer["models"]
    assert (intent["kind"], intent["scores"]) == ("intent", "on")


async def browse(client: httpx.AsyncClient, visitor: str, session: str, minutes: float, pages: list[str]) -> None:
    start = datetime.now(UTC) - timedelta(minutes=minutes)
    base = {"visitor_id": visitor, "session_id": session}
    events = [{"type": "session.started", "time": start.isoformat(), "data": {**base, "landing_url": "/"}}]
    for i, page_type in enumerate(pages):
        at = (start + timedelta(seconds=20 * i)).isoformat()
        if page_type == "checkout":
            cart = {"amount": "99.00", "currency": "EUR"}
            events.append({"type": "checkout.started", "time": at, "data": {**base, "cart_value": cart}})
        else:
            data = {**base, "url": f"/{page_type}/{i}", "page_type": page_type, "duration_s": 20}
            events.append({"type": "page.viewed", "time": at, "data": data})
    assert (await client.post("/v1/events", json={"events": events})).status_code == 202


async def test_a_lingering_visitor_gets_one_callback_offer_and_a_buyer_none(
    client: httpx.AsyncClient, topics: Topics
) -> None:
    lingerer, buyer = uid("v"), uid("v")
    looking = ["product", "product", "help", "product", "category", "product"]
    await browse(client, lingerer, f"s-{lingerer}", minutes=10, pages=looking)
    await browse(client, buyer, f"s-{buyer}", minutes=10, pages=[*looking, "cart", "checkout"])

    offer = (
        await client.post("/v1/decide", json={"visitor_id": lingerer, "session_id": f"s-{lingerer}", "locale": "hr-HR"})
    ).json()
    assert offer["show"] is True, offer
    assert (offer["rule_id"], offer["popup"]["locale"], offer["popup"]["cta"]) == (LINGERING, "hr", "Nazovite me")
    again = (await client.post("/v1/decide", json={"visitor_id": lingerer, "session_id": f"s-{lingerer}"})).json()
    assert again["show"] is False
    none = (await client.post("/v1/decide", json={"visitor_id": buyer, "session_id": f"s-{buyer}"})).json()
    assert none["show"] is False
    assert "condition not met: !session.checkout" in none["reason"]

    shown = {
        "type": "popup.shown",
        "visitor_id": lingerer,
        "session_id": f"s-{lingerer}",
        "decision_id": offer["decision_id"],
        "rule_id": LINGERING,
    }
    assert (await client.post("/v1/outcomes", json=shown)).status_code == 202
    records = await read(topics.outcomes, lambda rs: any(r.key == lingerer.encode() for r in rs))
    (outcome,) = [decode(r.value, r.headers) for r in records if r.key == lingerer.encode()]
    assert (outcome.type, outcome.data.model_dump()["action_id"]) == ("popup.shown", offer["decision_id"])
    decisions = await read(topics.decisions, lambda rs: any(lingerer.encode() == r.key for r in rs))
    assert any(lingerer.encode() == r.key for r in decisions)  # the decision log has the offer


async def test_a_callback_with_consent_reaches_support_and_without_is_refused(
    client: httpx.AsyncClient, topics: Topics
) -> None:
    visitor = uid("v")
    body = {"visitor_id": visitor, "phone": "+48 601 234 567", "consent": True, "preferred_time": "after 17:00"}
    accepted = await client.post("/v1/callbacks", json=body)
    assert accepted.status_code == 202, accepted.text
    records = await read(topics.support, lambda rs: any(r.key == visitor.encode() for r in rs))
    (requested,) = [decode(r.value, r.headers) for r in records if r.key == visitor.encode()]
    assert requested.type == "callback.requested"
    assert requested.data.model_dump()["phone"] == "+48601234567"  # E.164

    for change, field in (({"consent": False}, "consent"), ({"phone": "12"}, "phone"), ({"email": "x@"}, "email")):
        refused = await client.post("/v1/callbacks", json={**body, **change})
        assert (refused.status_code, refused.json()["field"]) == (422, field)
    for _ in range(2):
        await client.post("/v1/callbacks", json=body)
    limited = await client.post("/v1/callbacks", json=body)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
