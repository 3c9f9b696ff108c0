"""What a rule achieved: sent, delivered, failed, opened, clicked, converted, and the uplift of
conversion against the rule's hold-out group, overall, per channel and per locale.

- The unit is an action: one row of the ``messages`` collection. Held-out actions are the control
  group; every other action is treated, whether or not its delivery succeeded (intention to treat:
  the hold-out is drawn before delivery, so comparing only delivered messages would compare unlike
  groups).
- **Converted**: the customer placed an order within the conversion window after the action
  (``window_h``, default ``PROACT_ADMIN_CONVERSION_WINDOW_H``), read from the engine's projection of
  orders. The order that caused the message (placed before it) does not count.
- **Opened** and **clicked** come from ``message.opened`` / ``message.clicked`` outcomes, which the
  dispatcher records on the message (the in-app inbox reports reads; a shop's link tracker or an
  e-mail provider's webhook can report the rest).
- **Uplift** is the difference of conversion rates, treated minus hold-out, with Newcombe's hybrid
  score interval (his method 10, from two Wilson intervals): unlike the Wald interval it stays
  sensible for the small groups and rates near 0 that a young rule has.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from services.admin.access import Viewer
from shared.rules.model import RULE_ID
from shared.store import Collections, as_time

router = APIRouter(prefix="/v1", tags=["results"])
Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def uplift(treated: tuple[int, int], control: tuple[int, int], z: float = Z95) -> dict[str, float | None]:
    """Difference of two proportions (successes, n), treated minus control, and its Newcombe
    interval; None where a group is empty."""
    (x1, n1), (x2, n2) = treated, control
    if n1 == 0 or n2 == 0:
        return {"difference": None, "low": None, "high": None}
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return {
        "difference": d,
        "low": d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        "high": d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    }


COUNTS = ("actions", "sent", "delivered", "failed", "opened", "clicked", "converted", "holdout", "holdout_converted")


def _summary(counts: dict[str, int]) -> dict[str, Any]:
    sent, held = counts["sent"], counts["holdout"]
    rate = counts["converted"] / sent if sent else None
    control = counts["holdout_converted"] / held if held else None
    return {
        **counts,
        "conversion_rate": rate,
        "holdout_conversion_rate": control,
        "uplift": uplift((counts["converted"], sent), (counts["holdout_converted"], held)),
    }


def tally(messages: list[dict[str, Any]], orders: dict[str, list[datetime]], window: timedelta) -> dict[str, Any]:
    """The counts and rates of these messages, overall and per channel and locale."""
    groups: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    for message in messages:
        created = as_time(message.get("created_at"))
        if created is None:
            continue
        converted = any(created < at <= created + window for at in orders.get(message["customer_id"], ()))
        keys = [("all", ""), ("channel", str(message.get("channel"))), ("locale", str(message.get("locale") or "-"))]
        for key in keys:
            counts = groups[key]
            counts["actions"] += 1
            if message.get("holdout"):
                counts["holdout"] += 1
                counts["holdout_converted"] += converted
                continue
            counts["sent"] += 1
            counts["delivered"] += message.get("status") == "delivered"
            counts["failed"] += message.get("status") == "failed"
            counts["opened"] += message.get("opened_at") is not None
            counts["clicked"] += message.get("clicked_at") is not None
            counts["converted"] += converted
    overall = groups.get(("all", ""), dict.fromkeys(COUNTS, 0))
    return {
        "overall": _summary(overall),
        "by_channel": {k: _summary(v) for (kind, k), v in sorted(groups.items()) if kind == "channel"},
        "by_locale": {k: _summary(v) for (kind, k), v in sorted(groups.items()) if kind == "locale"},
    }


@router.get("/rules/{rule_id}/results")
async def results(
    request: Request,
    rule_id: Annotated[str, Path(pattern=RULE_ID)],
    _: Viewer,
    days: Annotated[int, Query(ge=1, le=366, description="messages of the last N days")] = 30,
    window_h: Annotated[int | None, Query(ge=1, le=24 * 90, description="conversion window, hours")] = None,
) -> dict[str, Any]:
    """Sent, delivered, failed, opened, clicked, converted and the uplift against the hold-out."""
    db = request.app.state.db
    window = timedelta(hours=window_h or request.app.state.settings.conversion_window_h)
    since = datetime.now(UTC) - timedelta(days=days)
    fields = {
        "customer_id": 1,
        "channel": 1,
        "locale": 1,
        "holdout": 1,
        "status": 1,
        "created_at": 1,
        "opened_at": 1,
        "clicked_at": 1,
    }
    cursor = db[Collections.MESSAGES].find({"rule_id": rule_id, "created_at": {"$gte": since}}, fields)
    messages = [m async for m in cursor]
    customers = sorted({m["customer_id"] for m in messages})
    orders: dict[str, list[datetime]] = defaultdict(list)
    for chunk in range(0, len(customers), 500):
        query = {"customer_id": {"$in": customers[chunk : chunk + 500]}}
        async for order in db[Collections.ORDERS].find(query, {"customer_id": 1, "placed_at": 1}):
            if (at := as_time(order.get("placed_at"))) is not None:
                orders[order["customer_id"]].append(at)
    return {
        "rule_id": rule_id,
        "since": since.isoformat(),
        "conversion_window_h": window.total_seconds() / 3600,
        **tally(messages, orders, window),
    }
