"""Results per rule on FerretDB: what the dispatcher recorded and the orders the engine projected,
counted per channel and locale, with the uplift against the hold-out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from services.admin import access
from shared.store import Collections

pytestmark = pytest.mark.integration


async def test_results_count_each_stage_and_the_uplift_against_the_holdout(admin_app: FastAPI) -> None:
    db = admin_app.state.db
    now = datetime.now(UTC).replace(microsecond=0)
    sent_at = now - timedelta(days=2)
    messages = []
    for i in range(40):  # 30 treated (every third converts), 10 held out (one converts)
        holdout = i >= 30
        messages.append(
            {
                "_id": f"r-a{i}",
                "idempotency_key": f"r-k{i}",
                "rule_id": "r-rule",
                "customer_id": f"r-c{i}",
                "channel": "email" if i % 2 else "sms",
                "locale": "pl",
                "holdout": holdout,
                "status": "holdout" if holdout else ("failed" if i == 1 else "delivered"),
                "created_at": sent_at,
                **({"opened_at": sent_at} if i < 5 else {}),
            }
        )
    messages.append({**messages[0], "_id": "r-old", "idempotency_key": "r-old", "created_at": now - timedelta(days=60)})
    messages.append({**messages[0], "_id": "r-other", "idempotency_key": "r-other", "rule_id": "r-else"})
    await db[Collections.MESSAGES].insert_many(messages)
    converted = [i for i in range(30) if i % 3 == 0] + [30]
    orders = [
        {
            "_id": f"r-o{i}",
            "order_id": f"r-o{i}",
            "customer_id": f"r-c{i}",
            "placed_at": (sent_at + timedelta(hours=20)).isoformat(),
        }
        for i in converted
    ]
    orders.append(
        {
            "_id": "r-late",
            "order_id": "r-late",
            "customer_id": "r-c1",
            "placed_at": (sent_at + timedelta(days=1, hours=1)).isoformat(),
        }
    )
    await db[Collections.ORDERS].insert_many(orders)
    key, _ = await access.create_key(db, "results", "viewer", by="tests")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=admin_app), base_url="http://admin") as http:
        answer = await http.get(
            "/v1/rules/r-rule/results", params={"days": 30, "window_h": 24}, headers={"Authorization": f"Bearer {key}"}
        )
    assert answer.status_code == 200, answer.text
    found = answer.json()
    overall = found["overall"]
    assert (overall["actions"], overall["sent"], overall["holdout"]) == (40, 30, 10)
    assert (overall["delivered"], overall["failed"], overall["opened"]) == (29, 1, 5)
    assert (overall["converted"], overall["holdout_converted"]) == (10, 1)  # r-c1's order is after the window
    assert overall["uplift"]["difference"] == pytest.approx(10 / 30 - 1 / 10)
    assert overall["uplift"]["low"] < overall["uplift"]["difference"] < overall["uplift"]["high"]
    assert found["by_channel"]["email"]["sent"] + found["by_channel"]["sms"]["sent"] == 30
    assert set(found["by_locale"]) == {"pl"}
    assert found["conversion_window_h"] == 24
