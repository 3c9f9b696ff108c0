"""The walking skeleton end to end: every service up, and late orders become exactly one delivered
notice each even when the engine is killed with SIGKILL while the deadlines run."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from shared.contract import Topics
from shared.rules.builtin import CHECKIN
from tests.e2e.stack import SERVICES, Stack
from tests.factories import event, uid
from tests.kafka_io import produce

pytestmark = pytest.mark.e2e


def test_every_service_answers_its_health_checks(stack: Stack) -> None:
    for name in SERVICES:
        assert httpx.get(stack.url(name, "/health/live"), timeout=5).status_code in (200, 204), name
        assert httpx.get(stack.url(name, "/health/ready"), timeout=5).status_code in (200, 204), name
    trainer = subprocess.run(
        [sys.executable, "-m", "services.trainer", "health"], env=stack.env, capture_output=True, timeout=60
    )
    assert trainer.returncode == 0, trainer.stderr
    assert b"mongodb reachable" in trainer.stdout


def test_contracts_are_published(stack: Stack) -> None:
    openapi = httpx.get(stack.url("storefront", "/openapi.json"), timeout=5).json()
    assert {"/v1/events", "/v1/decide", "/v1/callbacks", "/v1/outcomes"} <= set(openapi["paths"])
    asyncapi = httpx.get(stack.url("dispatcher", "/docs/asyncapi.json"), timeout=5)
    assert asyncapi.status_code == 200
    assert "dispatch-actions" in asyncapi.text


async def test_late_orders_get_one_notice_each_despite_engine_kills(stack: Stack) -> None:
    rng = random.Random(7)
    topics = Topics(prefix=stack.env["PROACT_TOPIC_PREFIX"])
    customers = [uid("c") for _ in range(8)]
    start = datetime.now(UTC)
    events, late = [event("customer.upserted", subject=c, consents={"email": True}) for c in customers], set()
    for i in range(40):
        cid, oid = rng.choice(customers), f"o-{i}-{uid('x')}"
        ship_by = start + timedelta(seconds=rng.uniform(3, 12))
        events.append(event("order.placed", subject=cid, order_id=oid, promised_ship_by=ship_by.isoformat()))
        if rng.random() < 0.5:
            events.append(event("order.shipped", subject=cid, order_id=oid, estimated_delivery=None))
        else:
            late.add(oid)
    await produce(events, topics)
    # kill the engine twice while deadlines are falling due, restarting it each time
    for pause in (rng.uniform(2, 5), rng.uniform(2, 5)):
        await asyncio.sleep(pause)
        stack.kill("engine")
        stack.start("engine")
    browse = {"visitor_id": uid("v"), "session_id": uid("s")}
    response = httpx.post(
        stack.url("storefront", "/v1/events"),
        json={"events": [{"type": "page.viewed", "data": {**browse, "url": "/", "page_type": "home"}}]},
        timeout=5,
    )
    assert response.status_code == 202
    delivered: list[str] = []
    for _ in range(300):
        delivered = [orjson.loads(line)["context"]["order_id"] for line in stack.outbox_lines()]
        if set(delivered) >= late:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(3)  # a duplicate would arrive now
    delivered = [orjson.loads(line)["context"]["order_id"] for line in stack.outbox_lines()]
    assert sorted(delivered) == sorted(late), stack.log_tail("engine")
    auth = {"Authorization": f"Bearer {stack.api_key()}"}
    messages = httpx.get(stack.url("admin", "/v1/messages"), params={"limit": 200}, headers=auth, timeout=5).json()
    assert sorted(m["context"]["order_id"] for m in messages) == sorted(late)
    assert {m["status"] for m in messages} == {"delivered"}


def test_services_publish_prometheus_metrics(stack: Stack) -> None:
    """After the journeys above, the counters say what happened."""

    def scrape(name: str) -> str:
        response = httpx.get(stack.url(name, "/metrics"), timeout=5, follow_redirects=True)
        assert response.status_code == 200, name
        return response.text

    engine = scrape("engine")
    consumed = [line for line in engine.splitlines() if line.startswith("proact_engine_events_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in consumed) > 0  # since the last restart
    assert "proact_engine_batch_duration_seconds_bucket" in engine
    assert "proact_engine_timers_pending" in engine
    delivered = [line for line in scrape("dispatcher").splitlines() if 'outcome="delivered"' in line]
    assert delivered
    assert float(delivered[0].rsplit(" ", 1)[1]) > 0
    assert "proact_projector_lag" in scrape("projector")
    answer = httpx.post(
        stack.url("storefront", "/v1/decide"), json={"visitor_id": "v-x", "session_id": "s-x"}, timeout=5
    )
    assert answer.json()["show"] is False  # an unknown session
    storefront = scrape("storefront")
    assert "proact_storefront_decide_duration_seconds_bucket" in storefront
    decided = [line for line in storefront.splitlines() if line.startswith("proact_storefront_decisions_total{")]
    assert any('proact_decision="none"' in line and line.endswith(" 1.0") for line in decided)


def test_the_engine_drains_and_exits_cleanly_on_sigterm(stack: Stack) -> None:
    stack.wait_ready("engine")
    assert stack.stop("engine") == 0
    stack.start("engine")
    stack.wait_ready("engine")


async def test_the_demo_shop_shortens_the_checkin_through_the_admin_with_its_key(stack: Stack) -> None:
    """What ``make run`` does first: the demo shop publishes a faster check-in as a publisher would."""
    spec = importlib.util.spec_from_file_location("demo_shop", Path(__file__).parents[2] / "deploy/demo/shop.py")
    assert spec is not None
    assert spec.loader is not None
    shop = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shop)
    await shop.demo_speed_checkin(stack.url("admin", ""), "PT30S", stack.api_key("publisher"))
    auth = {"Authorization": f"Bearer {stack.api_key()}"}
    versions = httpx.get(stack.url("admin", f"/v1/rules/{CHECKIN}"), headers=auth, timeout=5).json()
    in_force = next(v for v in versions if v["status"] == "published")
    assert in_force["rule"]["triggers"][0]["delay"] == "PT30S"


async def test_a_repair_case_walks_its_states_with_one_message_each_despite_an_engine_kill(stack: Stack) -> None:
    """After-sales end to end: received, a warning a day before the promise (the case opened three
    days ago, its promise a day and a few seconds away), ready; the engine killed while the warning's
    timer runs; closing the case sends nothing more."""
    topics = Topics(prefix=stack.env["PROACT_TOPIC_PREFIX"])
    cid, case_id, now = uid("c"), uid("k"), datetime.now(UTC)
    case = {"subject": cid, "case_id": case_id}
    promised = now + timedelta(days=1, seconds=8)
    await produce(
        [
            event("customer.upserted", subject=cid, consents={"email": True}, locale="pl-PL"),
            event("service_case.opened", **case, promised_by=promised.isoformat(), time=now - timedelta(days=3)),
            event("service_case.updated", **case, status="diagnosed", promised_by=None),
            event("service_case.updated", **case, status="waiting_for_parts", promised_by=None),
        ],
        topics,
    )

    async def messages(expected: int) -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        for _ in range(300):
            found = [
                m for line in stack.outbox_lines() if (m := orjson.loads(line))["context"].get("case_id") == case_id
            ]
            if len(found) >= expected:
                break
            await asyncio.sleep(0.2)
        return found

    assert [m["rule_id"] for m in await messages(1)] == ["repair-received"]
    stack.kill("engine")
    stack.start("engine")
    assert [m["rule_id"] for m in await messages(2)] == ["repair-received", "repair-overdue"]
    await produce([event("service_case.updated", **case, status="ready", promised_by=None)], topics)
    found = await messages(3)
    await produce([event("service_case.completed", **case, status="closed", promised_by=None)], topics)
    await asyncio.sleep(3)  # a duplicate or a stray message would arrive now
    found = await messages(4)
    assert [m["rule_id"] for m in found] == ["repair-received", "repair-overdue", "repair-ready"]
    assert [m["locale"] for m in found] == ["pl-PL"] * 3
    rendered = found[2]["rendered"]
    assert isinstance(rendered, dict)
    assert f"naprawa {case_id} jest gotowa" in rendered["subject"].lower()
