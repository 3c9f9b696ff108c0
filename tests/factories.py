"""Small factories of valid events for tests: one per event type, overridable field by field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contract import Event, new_event
from shared.contract.examples import example_data

SOURCE = "tests"


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def event(type_: str, subject: str = "c-1", time: datetime | None = None, **data: Any) -> Event:
    base = example_data(type_, datetime.now(UTC), customer_id=subject, visitor_id=subject)
    return new_event(type_, subject, {**base, **data}, source=SOURCE, time=time)


def purchase_history(
    customers: int = 20, returns: int = 4, no_consent: int = 2, t0: datetime = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
) -> list[Event]:
    """Each customer buys and gets the order two days later; some return it a day after delivery,
    some never agreed to any message."""
    events = []
    for i in range(customers):
        cid, oid = f"c{i}", f"o{i}"
        consents = {"email": False, "sms": False} if i >= customers - no_consent else {"email": True}
        events += [
            event("customer.upserted", cid, t0 + timedelta(minutes=i), consents=consents),
            event("order.placed", cid, t0 + timedelta(hours=1, minutes=i), order_id=oid),
            event("order.delivered", cid, t0 + timedelta(days=2, minutes=i), order_id=oid),
        ]
        if i < returns:
            events.append(event("order.return_requested", cid, t0 + timedelta(days=3, minutes=i), order_id=oid))
        # a firing the engine recorded: the back-test fires its own timers, never these
        events.append(event("timer.fired", cid, t0 + timedelta(days=5)))
    return sorted(events, key=lambda e: e.time)
