"""The storefront API on the real broker: browsing events reach Kafka; bad requests get a 4xx naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.storefront.app import create_app
from shared.contract import Topics, decode
from shared.settings import StorefrontSettings
from tests.factories import uid
from tests.kafka_io import read

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def app(topics: Topics) -> AsyncIterator[FastAPI]:
    app = create_app(StorefrontSettings(topic_prefix=topics.prefix))
    async with app.router.lifespan_context(app):
        yield app


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


async def test_readiness_reports_the_broker(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/ready")).json() == {"status": "ready"}
