"""The hostile-input suite: the whole of proact as processes on the real broker and FerretDB, fed
well-formed but hostile events and hostile admin and storefront requests (a viewer's key is
enough for those). Each input has a named outcome: refused with a 4xx naming the field,
dead-lettered with its reason, or handled harmlessly. Afterwards a late order on every partition
still gets exactly one notice, and every service still answers its liveness probe.

The failure model these inputs exercise is described in docs/architecture.md ("Failure model").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.partitioner import murmur2

from shared.contract import Topics, decode
from tests.e2e.stack import SERVICES, Stack, own_stack
from tests.factories import event, uid
from tests.kafka_io import produce, produce_raw, read

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, model_registry: Path) -> AsyncIterator[Stack]:
    async with own_stack("hostile", tmp_path_factory.mktemp("hostile"), model_registry) as stack:
        for name in SERVICES:
            stack.start(name)
        for name in SERVICES:
            stack.wait_ready(name, timeout_s=90)
        yield stack


def hostile_events(cid: str) -> dict[str, tuple[str, dict[str, Any] | bytes, str]]:
    """name -> (topic attribute, the record's value, the field its dead letter must name)."""
    delivered = event("order.delivered", subject=cid).to_dict()
    placed = event("order.placed", subject=cid).to_dict()
    profile = event("customer.upserted", subject=cid).to_dict()

    def with_data(doc: dict[str, Any], **data: Any) -> dict[str, Any]:
        return {**doc, "data": {**doc["data"], **data}}

    nested: Any = 1
    for _ in range(2000):
        nested = [nested]
    return {
        "a delivery in year 9999": ("orders", {**delivered, "time": "9999-12-31T23:59:59Z"}, "time"),
        "a delivery in 1970": ("orders", {**delivered, "time": "1970-01-01T00:00:00Z"}, "time"),
        "a promise in 2999": (
            "orders",
            with_data(placed, promised_ship_by="2999-01-01T00:00:00Z"),
            "data.promised_ship_by",
        ),
        "an invalid time zone": ("customers", with_data(profile, timezone="Mars/Olympus_Mons"), "data.timezone"),
        "an invalid locale": ("customers", with_data(profile, locale="<script>"), "data.locale"),
        "a huge amount": (
            "orders",
            with_data(placed, total={"amount": "1e30", "currency": "EUR"}),
            "data.total.amount",
        ),
        "a non-finite amount": (
            "orders",
            with_data(placed, total={"amount": "NaN", "currency": "EUR"}),
            "data.total.amount",
        ),
        "a 10 KB order id": ("orders", with_data(placed, order_id="o" * 10_000), "data.order_id"),
        "nesting 2,000 deep": (
            "orders",
            orjson.dumps(with_data(placed, note=[1]))
            .replace(b"[1]", orjson.dumps(1))
            .replace(b'"note":1', b'"note":' + b"[" * 2000 + b"1" + b"]" * 2000),
            "value",
        ),
        "a timer.fired on the orders topic": ("orders", event("timer.fired", subject=cid).to_dict(), "type"),
        "an action.requested on the customers topic": (
            "customers",
            event("action.requested", subject=cid).to_dict(),
            "type",
        ),
    }


def assert_every_service_lives(stack: Stack) -> None:
    for name in SERVICES:
        assert stack.processes[name].poll() is None, f"{name} exited: {stack.log_tail(name)}"
        assert httpx.get(stack.url(name, "/health/live"), timeout=5).status_code in (200, 204), name


async def late_orders_get_exactly_one_notice(topics: Topics) -> None:
    """A consenting customer on every partition with an order whose promised ship date has passed."""
    customers: dict[str, str] = {}
    while len({(murmur2(c.encode()) & 0x7FFFFFFF) % topics.partitions for c in customers.values()}) < topics.partitions:
        customers[uid("o")] = uid("c")
    await produce([event("customer.upserted", subject=c, consents={"email": True}) for c in customers.values()], topics)
    await asyncio.sleep(3)  # the profiles first: topics have no order between them
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    await produce(
        [event("order.placed", subject=c, order_id=o, promised_ship_by=past) for o, c in customers.items()], topics
    )

    def notices(records: list[Any], order_id: str) -> int:
        return sum(
            decode(r.value, r.headers).data.model_dump()["context"].get("order_id") == order_id
            for r in records
            if r.key in wanted
        )

    wanted = {c.encode() for c in customers.values()}
    records = await read(topics.actions, lambda rs: all(notices(rs, o) for o in customers), timeout_s=60, settle_s=3)
    assert {o: notices(records, o) for o in customers} == dict.fromkeys(customers, 1)


async def test_hostile_events_are_dead_lettered_with_their_reason_and_engagement_goes_on(stack: Stack) -> None:
    topics = Topics(prefix=stack.env["PROACT_TOPIC_PREFIX"])
    cid = uid("c")
    hostile = hostile_events(cid)
    for attribute, value, _ in hostile.values():
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        await produce_raw(getattr(topics, attribute), raw, cid.encode())
    by_topic: dict[str, list[str]] = {}
    for attribute, _, field in hostile.values():
        by_topic.setdefault(getattr(topics, attribute), []).append(field)
    for topic, fields in by_topic.items():
        wanted = len(fields)
        dead = await read(topics.dlq(topic), lambda rs, n=wanted: sum(r.key == cid.encode() for r in rs) >= n)
        named = [dict(r.headers)["proact_dlq_field"].decode() for r in dead if r.key == cid.encode()]
        assert named == fields, topic
    await late_orders_get_exactly_one_notice(topics)
    stats = httpx.get(stack.url("engine", "/stats"), timeout=5).json()
    assert stats["dead_letters_by_reason"]["InvalidEvent"] >= len(hostile)
    assert_every_service_lives(stack)


async def test_hostile_requests_get_a_4xx_naming_the_field_and_every_service_lives(stack: Stack) -> None:
    viewer = {"Authorization": f"Bearer {stack.api_key('viewer')}"}
    admin = httpx.AsyncClient(base_url=stack.url("admin", ""), headers=viewer, timeout=30)
    shop = httpx.AsyncClient(base_url=stack.url("storefront", ""), timeout=30)
    history = "customer.order_history"
    nested_all = "".join(f"{history}.all(x{i}, " for i in range(6)) + "true" + ")" * 6
    async with admin, shop:
        rule = (await admin.get("/v1/rules/post-purchase-checkin")).json()[-1]["rule"]
        for name, change, field in [
            (
                "a 40 KB context expression (crashed the CEL binding)",
                {"action": {**rule["action"], "context": {"x": "+".join(["1"] * 20_000)}}},
                "action.context",
            ),
            ("six nested comprehensions (hours of work)", {"conditions": [{"expr": nested_all}]}, "conditions.0.expr"),
        ]:
            answer = await admin.post("/v1/rules/validate", json={**rule, **change})
            assert answer.status_code == 200, name
            assert answer.json()["valid"] is False, name
            assert answer.json()["errors"][0]["field"].startswith(field), (name, answer.json())
        for name, source in [
            ("padding by string formatting", "{{ '%50000000s' % 'x' }}"),
            ("doubling a string 25 times", "{% set s = 'xx' %}" + "{% set s = s ~ s %}" * 25 + "{{ s }}"),
            ("a self-calling macro", "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}"),
        ]:
            answer = await admin.post(
                "/v1/templates/winback/preview", json={"template": {"en": {"subject": source, "text": "x"}}}
            )
            assert answer.status_code == 422, name
            assert answer.json()["field"] == "template.en.subject", name
        page = {"visitor_id": uid("v"), "session_id": uid("s"), "url": "/", "page_type": "home"}
        future = {"type": "page.viewed", "time": "2999-01-01T00:00:00Z", "data": page}
        answer = await shop.post("/v1/events", json={"events": [future]})
        assert answer.status_code == 422
        assert answer.json()["field"] == "events.0.time"
        assert_every_service_lives(stack)
