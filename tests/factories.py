"""Small factories of valid events for tests: one per event type, overridable field by field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contract import Event, new_event

SOURCE = "tests"


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def money(amount: str = "49.90") -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


def sample_data(type_: str, customer_id: str = "c-1", visitor_id: str = "v-1") -> dict[str, Any]:
    """A valid ``data`` object for each event type of the contract."""
    now = datetime.now(UTC)
    order = {"order_id": "o-1", "customer_id": customer_id}
    browse = {"visitor_id": visitor_id, "session_id": "s-1"}
    return {
        "customer.upserted": {
            "customer_id": customer_id,
            "email": "anna@example.com",
            "phone": "+48123456789",
            "locale": "pl-PL",
            "timezone": "Europe/Warsaw",
            "consents": {"email": True, "sms": False},
            "attributes": {"tier": "gold"},
        },
        "order.placed": {
            **order,
            "total": money(),
            "items": [{"sku": "A1", "name": "Aurora", "qty": 1, "price": money()}],
            "promised_ship_by": (now + timedelta(days=1)).isoformat(),
            "promised_delivery_by": (now + timedelta(days=3)).isoformat(),
        },
        "order.shipped": {
            **order,
            "carrier": "DHL",
            "tracking_id": "T1",
            "estimated_delivery": now.isoformat(),
        },
        "order.eta_changed": {**order, "estimated_delivery": now.isoformat(), "reason": "weather"},
        "order.delivered": order,
        "order.cancelled": {**order, "reason": "changed mind"},
        "order.return_requested": {**order, "reason": "too small"},
        "session.started": {
            **browse,
            "customer_id": customer_id,
            "landing_url": "/",
            "traffic_source": "ads",
        },
        "page.viewed": {
            **browse,
            "url": "/p/1",
            "page_type": "product",
            "product_id": "p1",
            "duration_s": 12.5,
        },
        "search.performed": {**browse, "query": "usb cable", "results": 12},
        "cart.updated": {**browse, "cart_value": money(), "items": [{"sku": "A1", "qty": 2}]},
        "checkout.started": {**browse, "cart_value": money()},
        "session.heartbeat": browse,
        "ticket.opened": {
            "ticket_id": "t-1",
            "customer_id": customer_id,
            "channel": "email",
            "order_id": "o-1",
        },
        "ticket.updated": {"ticket_id": "t-1", "customer_id": customer_id, "status": "pending"},
        "ticket.resolved": {"ticket_id": "t-1", "customer_id": customer_id, "status": "resolved"},
        "csat.submitted": {"customer_id": customer_id, "score": 4, "ticket_id": "t-1"},
        "nps.submitted": {"customer_id": customer_id, "score": 9, "comment": "great"},
        "service_case.opened": {"case_id": "k-1", "customer_id": customer_id, "promised_by": now.isoformat()},
        "service_case.updated": {"case_id": "k-1", "customer_id": customer_id, "status": "repairing"},
        "service_case.completed": {"case_id": "k-1", "customer_id": customer_id, "status": "done"},
        "callback.requested": {
            "request_id": "r-1",
            "visitor_id": visitor_id,
            "phone": "+48123456789",
            "consent": True,
            "preferred_time": "after 17:00",
        },
        "action.requested": {
            "action_id": "a-1",
            "rule_id": "delay-notice",
            "rule_version": 1,
            "customer_id": customer_id,
            "channel": "email",
            "template_id": "delay_notice",
            "idempotency_key": "delay-notice:o-1",
        },
        "message.sent": {"action_id": "a-1", "customer_id": customer_id, "channel": "email"},
        "message.delivered": {"action_id": "a-1", "customer_id": customer_id, "channel": "email"},
        "message.failed": {"action_id": "a-1", "customer_id": customer_id, "detail": "bounced"},
        "message.opened": {"action_id": "a-1", "customer_id": customer_id},
        "message.clicked": {"action_id": "a-1", "customer_id": customer_id},
        "message.converted": {"action_id": "a-1", "customer_id": customer_id},
        "popup.shown": {"visitor_id": visitor_id, "channel": "popup"},
        "popup.accepted": {"visitor_id": visitor_id, "channel": "popup"},
        "popup.dismissed": {"visitor_id": visitor_id, "channel": "popup"},
        "timer.fired": {
            "timer_id": "x:1",
            "kind": "order.ship_by",
            "key": customer_id,
            "due_at": now.isoformat(),
        },
    }[type_]


def event(type_: str, subject: str = "c-1", time: datetime | None = None, **data: Any) -> Event:
    base = sample_data(type_, customer_id=subject, visitor_id=subject)
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
