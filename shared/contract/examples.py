"""A complete, valid example of every event type's data: the reference page shows them
(``docs/events.md``), the tests build their events from them, and a test checks each against the
published JSON Schema."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


def money(amount: str = "49.90") -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


def example_data(type_: str, now: datetime, customer_id: str = "c-1", visitor_id: str = "v-1") -> dict[str, Any]:
    """A valid ``data`` object of ``type_``, its dates around ``now``."""
    order = {"order_id": "o-1", "customer_id": customer_id}
    browse = {"visitor_id": visitor_id, "session_id": "s-1"}
    examples: dict[str, dict[str, Any]] = {
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
        "service_case.updated": {"case_id": "k-1", "customer_id": customer_id, "status": "waiting_for_parts"},
        "service_case.completed": {"case_id": "k-1", "customer_id": customer_id, "status": "returned"},
        "callback.requested": {
            "request_id": "r-1",
            "visitor_id": visitor_id,
            "phone": "+48123456789",
            "consent": True,
            "preferred_time": "after 17:00",
            "promised_by": now.isoformat(),
        },
        "callback.claimed": {"request_id": "r-1", "visitor_id": visitor_id, "agent": "Ana"},
        "callback.updated": {"request_id": "r-1", "visitor_id": visitor_id, "outcome": "called", "agent": "Ana"},
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
    }
    return examples[type_]
