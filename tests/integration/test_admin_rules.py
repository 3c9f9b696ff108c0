"""The admin's rule routes on FerretDB: seeded built-ins, drafts, refusals naming the field,
publishing and rolling back, the contact policy, and "why did customer C (not) get it?"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.admin import access
from shared.rules import store as rule_store
from shared.rules.builtin import CHECKIN
from shared.store import Collections
from tests.factories import uid

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def admin_key(admin_app: FastAPI) -> str:
    key, _ = await access.create_key(admin_app.state.db, "tests", "admin", by="tests")
    return key


@pytest.fixture
async def client(admin_app: FastAPI, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    auth = {"Authorization": f"Bearer {admin_key}"}
    transport = httpx.ASGITransport(app=admin_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth) as client:
        yield client


async def checkin(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get(f"/v1/rules/{CHECKIN}")
    assert response.status_code == 200
    rule: dict[str, Any] = response.json()[-1]["rule"]  # version 1, the built-in
    return rule


async def test_the_builtin_rules_are_seeded_once(client: httpx.AsyncClient, admin_app: FastAPI) -> None:
    rules = {r["rule_id"]: r for r in (await client.get("/v1/rules")).json()}
    assert rules[CHECKIN]["published"]["version"] == 1
    assert rules["churn-winback"]["published"]["enabled"] is False
    assert await rule_store.seed(admin_app.state.db) == 0  # a restart adds nothing, overwrites nothing


async def test_an_edit_is_a_draft_until_published_and_an_old_version_can_come_back(
    client: httpx.AsyncClient, admin_app: FastAPI
) -> None:
    rule = await checkin(client)
    rule["triggers"][0]["delay"] = "P5D"
    saved = await client.put(f"/v1/rules/{CHECKIN}", json=rule)
    assert saved.status_code == 201, saved.text
    draft = saved.json()["version"]
    in_force = {r.rule_id: r for r in await rule_store.published(admin_app.state.db)}
    assert in_force[CHECKIN].version == 1  # a draft changes nothing yet

    assert (await client.post(f"/v1/rules/{CHECKIN}/versions/{draft}/publish")).status_code == 200
    in_force = {r.rule_id: r for r in await rule_store.published(admin_app.state.db)}
    assert (in_force[CHECKIN].version, in_force[CHECKIN].triggers[0].delay.days) == (draft, 5)  # type: ignore[union-attr]

    rollback = await client.post(f"/v1/rules/{CHECKIN}/versions/1/publish")
    assert rollback.json()["version"] == draft + 1
    in_force = {r.rule_id: r for r in await rule_store.published(admin_app.state.db)}
    assert in_force[CHECKIN].triggers[0].delay.days == 3  # type: ignore[union-attr]
    versions = (await client.get(f"/v1/rules/{CHECKIN}")).json()
    assert [v["version"] for v in versions] == [draft + 1, draft, 1]  # the history stays whole
    trail = [a async for a in admin_app.state.db[Collections.AUDIT].find({"subject": {"$regex": f"^{CHECKIN}@"}})]
    assert [a["action"] for a in trail] == ["rule.draft_saved", "rule.published", "rule.republished"]
    assert trail[0]["before"]["triggers"][0]["delay"] == "P3D"
    assert trail[0]["after"]["triggers"][0]["delay"] == "P5D"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"conditions": [{"expr": 'order.status == "delivered" &&'}]}, "conditions.0.expr", "1:31"),
        ({"conditions": [{"expr": "password == 1"}]}, "conditions.0.expr", "unknown variable password"),
        ({"guards": {"holdout_pct": 90}}, "guards.holdout_pct", "50"),
        ({"action": {"template_id": "checkin", "channel": "carrier-pigeon"}}, "action.channel", "email"),
    ],
)
async def test_a_bad_rule_is_refused_with_the_field_that_is_wrong(
    client: httpx.AsyncClient, change: dict[str, Any], field: str, words: str
) -> None:
    rule = {**(await checkin(client)), **change}
    response = await client.put(f"/v1/rules/{CHECKIN}", json=rule)
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == field
    assert words in body["detail"]
    check = (await client.post("/v1/rules/validate", json=rule)).json()
    assert check["valid"] is False
    assert check["errors"][0]["field"] == field


async def test_the_schema_and_the_policy(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/v1/rules/schema")).json()
    assert "triggers" in schema["properties"]
    policy = (await client.get("/v1/policy")).json()
    changed = await client.put("/v1/policy", json={**policy, "max_messages": 1, "window": "P3D"})
    assert changed.status_code == 200
    assert (await client.get("/v1/policy")).json()["max_messages"] == 1
    refused = await client.put("/v1/policy", json={**policy, "max_messages": 0})
    assert (refused.status_code, refused.json()["field"]) == (422, "max_messages")


async def test_why_did_a_customer_get_or_not_get_a_rule(client: httpx.AsyncClient, admin_app: FastAPI) -> None:
    cid = uid("c")
    base = {
        "rule_id": CHECKIN,
        "rule_version": 1,
        "rule_name": "Post-purchase check-in",
        "customer_id": cid,
        "order_id": "o-1",
        "scope": "o-1",
        "conditions": [],
        "inputs": {},
    }
    await admin_app.state.db[Collections.DECISIONS].insert_many(
        [
            {
                **base,
                "_id": uid("d"),
                "at": datetime(2026, 11, 20, 9, tzinfo=UTC).isoformat(),
                "outcome": "suppressed",
                "guard": "frequency_cap",
                "why": "the contact policy allows 1 message per 3 days",
            },
            {
                **base,
                "_id": uid("d"),
                "at": datetime(2026, 11, 24, 9, tzinfo=UTC).isoformat(),
                "outcome": "fired",
                "channel": "email",
                "action_id": "a-77",
                "why": "conditions held",
            },
        ]
    )
    await admin_app.state.db[Collections.MESSAGES].insert_one(
        {"action_id": "a-77", "idempotency_key": uid("k"), "status": "delivered", "customer_id": cid}
    )
    answer = (await client.get(f"/v1/customers/{cid}/why", params={"rule_id": CHECKIN})).json()
    assert answer["answer"].startswith(f"On 2026-11-24 09:00 UTC customer {cid} was sent “Post-purchase check-in”")
    assert "delivered" in answer["answer"]
    assert "frequency_cap guard stopped it" in answer["explanations"][1]
    assert [d["outcome"] for d in answer["decisions"]] == ["fired", "suppressed"]

    by_message = (await client.get(f"/v1/customers/{cid}/why", params={"action_id": "a-77"})).json()
    assert len(by_message["decisions"]) == 1
    never = (await client.get(f"/v1/customers/{cid}/why", params={"rule_id": "churn-winback"})).json()
    assert "has not been evaluated" in never["answer"]
    assert (await client.get(f"/v1/customers/{cid}/why", params={"rule_id": "Not A Rule"})).status_code == 422


async def test_a_dry_run_says_whether_a_rule_would_fire_for_a_customer_now(
    client: httpx.AsyncClient, admin_app: FastAPI
) -> None:
    db = admin_app.state.db
    customer = uid("c")
    # what the engine's projection holds (the projector's documents)
    profile = {
        "customer_id": customer,
        "orders": 2,
        "tickets": 0,
        "timezone": "UTC",
        "consents": {"email": True},
        "has_email": True,
    }
    await db[Collections.CUSTOMERS].insert_one({"_id": customer, **profile})
    await db[Collections.ORDERS].insert_many(
        [
            {
                "_id": "o-old",
                "order_id": "o-old",
                "customer_id": customer,
                "status": "returned",
                "placed_at": "2026-01-01T10:00:00+00:00",
            },
            {
                "_id": "o-new",
                "order_id": "o-new",
                "customer_id": customer,
                "status": "delivered",
                "placed_at": "2026-02-01T10:00:00+00:00",
            },
        ]
    )

    latest = (await client.get(f"/v1/rules/{CHECKIN}/dry-run", params={"customer_id": customer})).json()
    assert latest["order_id"] == "o-new"  # the customer's latest order
    assert [c["held"] for c in latest["conditions"]] == [True]
    # sent, held out, or postponed to the end of quiet hours, depending on the customer and the hour
    assert latest["outcome"] in ("fired", "holdout", "deferred"), latest
    assert latest["would_send"] == (latest["outcome"] == "fired")

    returned = await client.get(f"/v1/rules/{CHECKIN}/dry-run", params={"customer_id": customer, "order_id": "o-old"})
    answer = returned.json()
    assert answer["outcome"] == "not_matched"
    assert answer["why"] == "condition not met: the order is delivered, not returned"
    assert not answer["would_send"]

    unknown = await client.get(f"/v1/rules/{CHECKIN}/dry-run", params={"customer_id": "nobody"})
    assert unknown.status_code == 404
    assert unknown.json()["field"] == "customer_id"
    missing = await client.get("/v1/rules/no-such-rule/dry-run", params={"customer_id": customer})
    assert missing.status_code == 404


async def test_rules_are_listed_with_filters_and_switched_off_and_on(
    client: httpx.AsyncClient, admin_app: FastAPI
) -> None:
    async def ids(**params: Any) -> list[str]:
        return [r["rule_id"] for r in (await client.get("/v1/rules", params=params)).json()]

    assert await ids(q="WINBACK") == ["churn-winback"]
    assert "churn-winback" in await ids(enabled="false")
    assert await ids(trigger="session") == ["lingering-visitor-callback"]
    assert await ids(channel="popup") == ["lingering-visitor-callback"]
    assert set(await ids(status="published")) >= {CHECKIN, "delay-notice"}
    assert (await client.get("/v1/rules", params={"trigger": "sometimes"})).status_code == 422

    off = (await client.post("/v1/rules/ticket-followup/enable")).json()  # built in, off
    assert off["enabled"] is True
    in_force = {r.rule_id: r for r in await rule_store.published(admin_app.state.db)}
    assert in_force["ticket-followup"].enabled is True
    assert in_force["ticket-followup"].version == off["version"] > 1
    again = (await client.post("/v1/rules/ticket-followup/disable")).json()
    assert (again["enabled"], again["version"]) == (False, off["version"] + 1)
    assert (await client.post("/v1/rules/ticket-followup/disable")).json()["version"] == again["version"]  # no-op
    assert (await client.post("/v1/rules/no-such-rule/disable")).status_code == 404
    audit = (await client.get("/v1/audit", params={"subject": "ticket-followup@"})).json()
    assert [a["action"] for a in audit][:2] == ["rule.published", "rule.draft_saved"]
