"""What each event does to partition state: plain data in, events out.

The handlers keep the state (customers, orders, sessions); what the configured rules then do with
it (timers, decisions, actions) is ``shared.engine.runner``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from shared import sessions
from shared.contract import Event, new_event
from shared.contract import events as ev
from shared.engine.runner import RuleRunner
from shared.engine.state import CASE, CUSTOMER, ORDER, TRACE_FIELD, Doc, PartitionState, Timer
from shared.rules.guards import with_contact

log = logging.getLogger(__name__)

SOURCE = "proact/engine"

Handler = Callable[[PartitionState, Event, datetime], list[Event]]


class Scores(Protocol):
    """Told of each event, to re-score what it changed (the engine's models, or a back-test's);
    ``flush`` scores it and returns the customers whose churn score moved: (id, before, after)."""

    def changed(self, state: PartitionState, event: Event) -> None: ...

    def flush(self, state: PartitionState) -> list[tuple[str, float | None, float]]: ...


def handle(
    state: PartitionState,
    event: Event,
    now: datetime,
    scorers: Scores | None = None,
    rules: RuleRunner | None = None,
) -> list[Event]:
    """Apply one event, then the rules; return the events to publish. Duplicate event ids have no effect.

    All or nothing: if anything raises (a rule, a score, arithmetic on the event's times), the
    changes it made are undone before the error goes on to the caller, which dead-letters (the
    engine) or counts (a back-test) that one event (docs/architecture.md, "Failure model")."""
    if state.seen(event.subject, event.id):
        return []
    state.savepoint()
    try:
        state.remember(event.subject, event.id)
        handler = HANDLERS.get(event.type)
        out = handler(state, event, now) if handler else []
        if scorers is not None:
            scorers.changed(state, event)
        if rules is not None:
            out += rules.on_event(state, event, now)
    except BaseException:
        state.rollback()
        raise
    state.release()
    return out


# --- customers ------------------------------------------------------------------------------------
def customer_upserted(state: PartitionState, event: Event, now: datetime) -> list[Event]:
    data = event.data
    assert isinstance(data, ev.CustomerUpserted)
    customer = _customer(state, data.customer_id)
    customer.update(
        locale=data.locale or customer.get("locale"),
        timezone=data.timezone or customer.get("timezone"),
        consents=data.consents.model_dump(),
        has_email=bool(data.email) or customer.get("has_email", False),
        has_phone=bool(data.phone) or customer.get("has_phone", False),
        updated_at=event.time_iso,
    )
    state.put(CUSTOMER, data.customer_id, customer)
    return []


def _customer(state: PartitionState, customer_id: str) -> Doc:
    return dict(state.get(CUSTOMER, customer_id) or {"customer_id": customer_id, "orders": 0, "tickets": 0})


MAX_HISTORY_KEPT = 100


def _remember(customer: Doc, field: str, item: object) -> None:
    """Append to one of the customer's bounded histories (what churn features are computed from).
    Items are strings or objects, never arrays: FerretDB refuses arrays nested in arrays."""
    customer[field] = [*customer.get(field, []), item][-MAX_HISTORY_KEPT:]


def _note(state: PartitionState, customer_id: str, field: str, item: object) -> None:
    """Append to a customer's bounded history and store the customer."""
    customer = _customer(state, customer_id)
    _remember(customer, field, item)
    state.put(CUSTOMER, customer_id, customer)


# --- orders ---------------------------------------------------------------------------------------
def order_placed(state: PartitionState, event: Event, now: datetime) -> list[Event]:
    data = event.data
    assert isinstance(data, ev.OrderPlaced)
    items = sum(i.qty for i in data.items) or 1
    order: Doc = {
        "order_id": data.order_id,
        "customer_id": data.customer_id,
        "status": "placed",
        "placed_at": event.time_iso,
        "total": data.total.model_dump(mode="json"),
        "items": items,
        "products": [i.name for i in data.items if i.name][:MAX_PRODUCTS_NAMED],
        "promised_ship_by": data.promised_ship_by.isoformat() if data.promised_ship_by else None,
        "promised_delivery_by": data.promised_delivery_by.isoformat() if data.promised_delivery_by else None,
    }
    state.put(ORDER, data.order_id, order)
    customer = _customer(state, data.customer_id)
    customer["orders"] = customer.get("orders", 0) + 1
    customer["last_order_at"] = event.time_iso
    _remember(customer, "order_history", {"at": event.time_iso, "amount": str(data.total.amount), "items": items})
    _purchases(customer, data, event.time)
    state.put(CUSTOMER, data.customer_id, customer)
    return []


MAX_PRODUCTS_NAMED = 5  # an order's product names kept with it, for the check-in to mention
MAX_PURCHASES_KEPT = 20  # the items a customer bought last, newest last
FAVOURITES = 3


def _purchases(customer: Doc, data: ev.OrderPlaced, at: datetime) -> None:
    """The customer's recent purchases (``purchases``, the last ``MAX_PURCHASES_KEPT`` items bought)
    and their favourite categories (``favourite_categories``: by quantity among those, ties by the
    latest): what a win-back or a check-in can mention. An order without items changes neither."""
    bought = [
        {"sku": i.sku, "name": i.name, "category": i.category, "qty": i.qty, "at": at.isoformat()}
        for i in data.items
        if i.sku or i.name
    ]
    if not bought:
        return
    kept = [*(customer.get("purchases") or []), *bought][-MAX_PURCHASES_KEPT:]
    customer["purchases"] = kept
    weight: dict[str, tuple[int, int]] = {}
    for n, item in enumerate(kept):
        if item.get("category"):
            qty, _ = weight.get(item["category"], (0, 0))
            weight[item["category"]] = (qty + int(item.get("qty") or 1), n)
    customer["favourite_categories"] = sorted(weight, key=lambda c: weight[c], reverse=True)[:FAVOURITES]


def order_shipped(state: PartitionState, event: Event, now: datetime) -> list[Event]:
    data = event.data
    assert isinstance(data, ev.OrderShipped)
    order = _order(state, data.order_id, data.customer_id)
    order["status"] = "shipped"
    if data.estimated_delivery:
        order["estimated_delivery"] = data.estimated_delivery.isoformat()
    state.put(ORDER, data.order_id, order)
    return []


def order_eta_changed(state: PartitionState, event: Event, now: datetime) -> list[Event]:
    data = event.data
    assert isinstance(data, ev.OrderEtaChanged)
    order = _order(state, data.order_id, data.customer_id)
    order["estimated_delivery"] = data.estimated_delivery.isoformat()
    state.put(ORDER, data.order_id, order)
    promised = order.get("promised_delivery_by")
    if promised and data.estimated_delivery > datetime.fromisoformat(promised) and not order.get("counted_late"):
        order["counted_late"] = True
        _note(state, data.customer_id, "late_history", event.time_iso)
    return []


def order_closed(status: str) -> Handler:
    def close(state: PartitionState, event: Event, now: datetime) -> list[Event]:
        data = event.data
        assert isinstance(data, ev.OrderDelivered | ev.OrderCancelled)
        order = _order(state, data.order_id, data.customer_id)
        order["status"] = status
        state.put(ORDER, data.order_id, order)
        if status == "return_requested":
            _note(state, data.customer_id, "return_history", event.time_iso)
        return []

    return close


def _order(state: PartitionState, order_id: str, customer_id: str) -> Doc:
    # events of an order placed before proact was installed still build a usable order record
    return dict(state.get(ORDER, order_id) or {"order_id": order_id, "customer_id": customer_id, "status": "unknown"})


# --- service cases -------------------------------------------------------------------------------
MAX_CASE_STEPS = 20  # a case's status changes kept with it


def service_case(default_status: str | None) -> Handler:
    """A repair or service case: its status (``shared.contract.events.CaseStatus``), its promised
    date and the steps it went through. Events of one case may arrive out of order (a shop's systems
    retry): a status older than the one the case has is kept in its steps but does not move it back;
    a new ``promised_by`` replaces the old one whenever it comes."""

    def apply(state: PartitionState, event: Event, now: datetime) -> list[Event]:
        data = event.data
        assert isinstance(data, ev.ServiceCase)
        case = dict(
            state.get(CASE, data.case_id)
            or {"case_id": data.case_id, "customer_id": data.customer_id, "opened_at": event.time_iso}
        )
        status = data.status or default_status
        if data.order_id:
            case["order_id"] = data.order_id
        if data.promised_by is not None:
            case["promised_by"] = data.promised_by.isoformat()
        if event.type == "service_case.opened":
            case["opened_at"] = event.time_iso
        if status:
            at = event.time_iso
            case["steps"] = [*case.get("steps", []), {"status": status, "at": at}][-MAX_CASE_STEPS:]
            if "status_at" not in case or datetime.fromisoformat(case["status_at"]) <= event.time:
                case["status"], case["status_at"] = status, at
        case.setdefault("status", "received")
        state.put(CASE, data.case_id, case)
        return []

    return apply


# --- support and browsing -------------------------------------------------------------------------
def ticket_opened(state: PartitionState, event: Event, now: datetime) -> list[Event]:
    data = event.data
    assert isinstance(data, ev.Ticket)
    customer = _customer(state, data.customer_id)
    customer["tickets"] = customer.get("tickets", 0) + 1
    _remember(customer, "ticket_history", event.time_iso)
    state.put(CUSTOMER, data.customer_id, customer)
    return []


def callback_requested(state: PartitionState, event: Event, now: datetime) -> list[Event]:
    """Someone asked to be called back: their record (the customer's, or the visitor's when they are
    not a known customer) learns that an address is known for a reply about it (never the address:
    the dispatcher keeps that), and their language if it had none."""
    data = event.data
    assert isinstance(data, ev.CallbackRequested)
    key = data.customer_id or data.visitor_id
    record = _customer(state, key)
    record["has_email"] = bool(data.email) or record.get("has_email", False)
    record["has_phone"] = bool(data.phone) or record.get("has_phone", False)
    if data.locale and not record.get("locale"):
        record["locale"] = data.locale
    state.put(CUSTOMER, key, record)
    return []


def message_opened(state: PartitionState, event: Event, now: datetime) -> list[Event]:
    """Engagement with proact's own messages, a churn signal."""
    data = event.data
    assert isinstance(data, ev.Outcome)
    if data.customer_id:
        _note(state, data.customer_id, "opened_history", event.time_iso)
    return []


def survey(field: str) -> Handler:
    """A CSAT or NPS answer joins the customer's history (a churn feature); a later answer to the same
    message (``action_id``: a second click on another score) replaces the earlier one."""

    def record(state: PartitionState, event: Event, now: datetime) -> list[Event]:
        data = event.data
        assert isinstance(data, ev.CsatSubmitted | ev.NpsSubmitted)
        answer = {"at": event.time_iso, "score": data.score}
        customer = _customer(state, data.customer_id)
        if data.action_id:
            answer["action_id"] = data.action_id
            customer[field] = [a for a in customer.get(field, []) if a.get("action_id") != data.action_id]
        _remember(customer, field, answer)
        state.put(CUSTOMER, data.customer_id, customer)
        return []

    return record


def browsing(state: PartitionState, event: Event, now: datetime) -> list[Event]:
    sessions.apply(state, event)
    return []


def popup_shown(state: PartitionState, event: Event, now: datetime) -> list[Event]:
    """A pop-up was shown: its session is offered; and when the visitor is a known customer, the pop-up
    is one of the customer's contacts, which the contact policy counts like a message."""
    data = event.data
    assert isinstance(data, ev.Outcome)
    detail = data.detail if isinstance(data.detail, dict) else {}
    session_id = str(detail.get("session_id") or "")
    if data.visitor_id and session_id:
        sessions.offered(state, session_id, data.visitor_id, data.rule_id, event.time)
    known = data.customer_id or (state.get(sessions.VISITOR, data.visitor_id or "") or {}).get("customer_id")
    if known and (customer := state.get(CUSTOMER, str(known))) is not None:
        contact = {
            "rule_id": data.rule_id,
            "at": event.time_iso,
            "channel": "popup",
            "scope": session_id or None,
            "holdout": False,
        }
        state.put(CUSTOMER, str(known), with_contact(customer, contact))
    return []


HANDLERS: dict[str, Handler] = {
    "customer.upserted": customer_upserted,
    "order.placed": order_placed,
    "order.shipped": order_shipped,
    "order.eta_changed": order_eta_changed,
    "order.delivered": order_closed("delivered"),
    "order.cancelled": order_closed("cancelled"),
    "order.return_requested": order_closed("return_requested"),
    "ticket.opened": ticket_opened,
    "callback.requested": callback_requested,
    "csat.submitted": survey("csat_history"),
    "message.opened": message_opened,
    "popup.shown": popup_shown,
    "nps.submitted": survey("nps_history"),
    "service_case.opened": service_case("received"),
    "service_case.updated": service_case(None),
    "service_case.completed": service_case("closed"),
    **dict.fromkeys(
        (
            "session.started",
            "page.viewed",
            "search.performed",
            "cart.updated",
            "checkout.started",
            "session.heartbeat",
        ),
        browsing,
    ),
}


def timer_event(timer: Timer, now: datetime) -> Event:
    """The ``timer.fired`` event a due timer becomes; its id is stable so a re-fire is de-duplicated."""
    payload = {k: v for k, v in timer.payload.items() if k != TRACE_FIELD}
    data = ev.TimerFired(timer_id=timer.timer_id, kind=timer.kind, key=timer.key, due_at=timer.due_at, **payload)
    return new_event(
        "timer.fired",
        timer.key,
        data,
        source=SOURCE,
        time=now,
        id=f"{timer.timer_id}@{timer.due_at.isoformat()}",
    )
