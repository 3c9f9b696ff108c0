"""Back-end events over HTTP (``POST /v1/cloudevents``) on the real broker: a shop without a Kafka
client sends its customer and order, structured or batched, and gets its delay notice; a batch with
one bad event writes nothing; a key sends only its own source and topics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from services.storefront.app import create_app
from shared.contract import Topics, decode
from shared.contract.examples import example_data
from shared.rules import RuleSet, builtin_rules
from shared.settings import Settings, StorefrontSettings
from tests.factories import uid
from tests.integration.conftest import engine_on, isolated_topics, profiles_known
from tests.kafka_io import read

pytestmark = pytest.mark.integration
KEY = "shop-a-key-0123456789abcdefghij"
NEIGHBOUR = "shop-b-key-0123456789abcdefghij"


def cloudevent(type_: str, subject: str, source: str = "shop-a/backend", **data: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    body = {**example_data(type_, now, customer_id=subject), **data}
    return {
        "specversion": "1.0",
        "id": uid("ev"),
        "source": source,
        "type": type_,
        "time": now.isoformat(),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": body,
    }


@pytest.fixture
async def shop(base_settings: Settings) -> AsyncIterator[tuple[FastAPI, Topics, httpx.AsyncClient]]:
    sources = {
        "shop-a": {"key": KEY, "topics": ["customers", "orders", "support"]},
        "shop-b": {"key": NEIGHBOUR, "topics": ["support"]},
    }
    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("intake")) as topics:
        settings = StorefrontSettings(topic_prefix=topics.prefix, intake_sources=orjson.dumps(sources).decode())
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
                yield app, topics, http


def post(http: httpx.AsyncClient, body: Any, key: str = KEY, batch: bool = False) -> Any:
    kind = "application/cloudevents-batch+json" if batch else "application/cloudevents+json"
    return http.post(
        "/v1/cloudevents", content=orjson.dumps(body), headers={"Authorization": f"Bearer {key}", "Content-Type": kind}
    )


async def test_a_shop_posts_its_order_over_http_and_gets_its_delay_notice(
    shop: tuple[FastAPI, Topics, httpx.AsyncClient], model_registry: Path
) -> None:
    _, topics, http = shop
    cid, order = uid("c"), uid("o")
    engine = engine_on(topics, model_registry, RuleSet(builtin_rules()))
    running = asyncio.create_task(engine.run())
    try:
        profile = cloudevent("customer.upserted", cid, consents={"email": True}, email=f"{cid}@example.com")
        assert (await post(http, profile)).status_code == 202  # structured mode: one event
        await profiles_known(engine, [cid])
        soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        placed = cloudevent("order.placed", cid, order_id=order, customer_id=cid, promised_ship_by=soon)
        answer = await post(http, [placed], batch=True)  # batched mode
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"accepted": 1, "ids": [placed["id"]]}

        def notices(records: list[Any]) -> list[Any]:
            found = [decode(r.value, r.headers) for r in records]
            return [e for e in found if e.data.model_dump().get("context", {}).get("order_id") == order]

        records = await read(topics.actions, lambda rs: bool(notices(rs)), timeout_s=30)
    finally:
        engine.stop()
        await asyncio.wait_for(running, 30)
    (notice,) = notices(records)
    assert notice.data.model_dump()["rule_id"] == "delay-notice"


async def test_a_batch_with_one_bad_event_writes_nothing_and_keys_keep_to_their_own(
    shop: tuple[FastAPI, Topics, httpx.AsyncClient],
) -> None:
    _, topics, http = shop
    cid = uid("c")
    good = cloudevent("order.placed", cid, order_id=uid("o"), customer_id=cid)
    bad = cloudevent(
        "order.placed", cid, order_id=uid("o"), customer_id=cid, total={"amount": "12.00", "currency": "euro"}
    )
    refused = await post(http, [good, bad], batch=True)
    assert refused.status_code == 422
    assert refused.json()["field"].startswith("events.1.data.total")
    assert (await post(http, good, key="not-a-key")).status_code == 401
    other = await post(http, good, key=NEIGHBOUR)  # shop-b may send tickets only, and as shop-b
    assert other.status_code == 403
    assert other.json()["field"] == "type"
    spoof = await post(http, cloudevent("ticket.opened", cid, source="shop-a/backend"), key=NEIGHBOUR)
    assert (spoof.status_code, spoof.json()["field"]) == (403, "source")
    internal = await post(http, cloudevent("action.requested", cid))  # the engine's own type
    assert internal.status_code in (403, 422)
    # the well-formed but absurd: an event time in year 9999, a 10 KB id, a number no shop sells at
    far = {**good, "id": uid("ev"), "time": "9999-01-01T00:00:00Z"}
    long_id = {**good, "id": "x" * 10_000}
    huge = cloudevent(
        "order.placed", cid, order_id=uid("o"), customer_id=cid, total={"amount": "1e400", "currency": "EUR"}
    )
    for absurd in (far, long_id, huge):
        refused = await post(http, absurd)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"]
    assert (await post(http, "not an object")).status_code == 422
    wrong = await http.post("/v1/cloudevents", content=b"{}", headers={"Authorization": f"Bearer {KEY}"})
    assert wrong.status_code == 415
    assert (await post(http, good)).status_code == 202
    records = await read(topics.orders, lambda rs: any(r.key == cid.encode() for r in rs), settle_s=1)
    mine = [decode(r.value, r.headers).id for r in records if r.key == cid.encode()]
    assert mine == [good["id"]]  # the refused batch's good event was not written
