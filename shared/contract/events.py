"""Typed ``data`` of every event type in the contract (the design: docs/architecture.md).

Unknown extra fields are kept (``extra="allow"``); a missing required field or a wrong type is a
validation error that names the field. Models are plain data: no I/O here.
"""

from __future__ import annotations

import re
import zoneinfo
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _e164(value: str) -> str:
    if not _E164.match(value):
        raise ValueError("phone must be in E.164 form, e.g. +48123456789")
    return value


Phone = Annotated[str, AfterValidator(_e164)]

_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")


def _locale(value: str) -> str:
    if not _LOCALE.match(value):
        raise ValueError("locale must be a BCP 47 tag, e.g. pl-PL")
    return value


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def known_timezone(value: str) -> bool:
    """Whether ``value`` is an IANA time zone name this machine knows."""
    return value in _zones()


def _timezone(value: str) -> str:
    # refused here rather than failing every quiet-hours check later (ZoneInfo raises on it)
    if not known_timezone(value):
        raise ValueError("timezone must be an IANA zone name, e.g. Europe/Warsaw")
    return value


Locale = Annotated[str, AfterValidator(_locale)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Id = Annotated[str, Field(min_length=1, max_length=200)]


class EventData(BaseModel):
    """Base of every event's data: unknown extra fields are kept, not rejected."""

    # no NaN or infinity in a float field: they would poison the features and scores computed from it
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)


# Bounds on numbers: well past any real value, and within what JSON encoders and the changelog carry.
MAX_AMOUNT = Decimal(10) ** 12
MAX_COUNT = 1_000_000


class Money(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    amount: Decimal = Field(gt=-MAX_AMOUNT, lt=MAX_AMOUNT, description="decimal string, e.g. '12.50'")
    currency: str = Field(pattern=_CURRENCY.pattern, description="ISO 4217")


class Consents(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    email: bool = False
    sms: bool = False
    push: bool = False
    phone: bool = False


# --- proact.customers -------------------------------------------------------------------------
class CustomerUpserted(EventData):
    customer_id: Id
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: Phone | None = None
    locale: Locale | None = Field(None, max_length=35, description="BCP 47, e.g. pl-PL")
    timezone: TimeZone | None = Field(None, max_length=64, description="IANA, e.g. Europe/Warsaw")
    consents: Consents = Consents()
    attributes: dict[str, Any] = Field(default_factory=dict)


# --- proact.orders ----------------------------------------------------------------------------
class OrderItem(BaseModel):
    """One line of an order: optional as a whole (a shop may send an order without its items), each
    field optional too; the engine keeps the customer's recent purchases from them."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    sku: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=300)
    category: str | None = Field(None, max_length=200, description="the shop's category, e.g. 'headphones'")
    qty: int = Field(1, ge=0, le=MAX_COUNT, description="quantity")
    price: Money | None = Field(None, description="unit price")


class OrderPlaced(EventData):
    order_id: Id
    customer_id: Id
    total: Money
    items: list[OrderItem] = Field(default_factory=list)
    promised_ship_by: AwareDatetime | None = None
    promised_delivery_by: AwareDatetime | None = None


class OrderShipped(EventData):
    order_id: Id
    customer_id: Id
    carrier: str | None = None
    tracking_id: str | None = None
    estimated_delivery: AwareDatetime | None = None


class OrderEtaChanged(EventData):
    order_id: Id
    customer_id: Id
    estimated_delivery: AwareDatetime
    reason: str | None = None


class OrderDelivered(EventData):
    order_id: Id
    customer_id: Id


class OrderCancelled(EventData):
    order_id: Id
    customer_id: Id
    reason: str | None = None


class OrderReturnRequested(OrderCancelled):
    pass


# --- proact.browsing --------------------------------------------------------------------------
PageType = Literal["home", "category", "product", "search", "cart", "checkout", "help", "account", "info", "other"]


class BrowsingData(EventData):
    visitor_id: Id
    session_id: Id


class SessionStarted(BrowsingData):
    customer_id: str | None = None
    landing_url: str | None = None
    referrer: str | None = None
    traffic_source: str | None = None
    device: str | None = None


class PageViewed(BrowsingData):
    url: str = Field(min_length=1, max_length=2048)
    page_type: PageType
    product_id: str | None = None
    duration_s: float | None = Field(None, ge=0, le=366 * 86400, description="time on the previous page")


class SearchPerformed(BrowsingData):
    query: str = Field(max_length=500)
    results: int | None = Field(None, ge=0, le=10**12)


class CartUpdated(BrowsingData):
    cart_value: Money
    items: list[OrderItem] = Field(default_factory=list)


class CheckoutStarted(BrowsingData):
    cart_value: Money


class SessionHeartbeat(BrowsingData):
    pass


# --- proact.support ---------------------------------------------------------------------------
class Ticket(EventData):
    ticket_id: Id
    customer_id: Id
    channel: str | None = None
    topic: str | None = None
    order_id: str | None = None
    status: str | None = None


class Answer(EventData):
    """A survey answer. When it answers one of proact's messages (a rating link), ``action_id`` names
    the message and ``rule_id``, ``channel`` and ``locale`` say where it went; a later answer to the
    same message replaces the earlier one."""

    customer_id: Id
    comment: str | None = Field(None, max_length=2000)
    action_id: str | None = Field(None, max_length=200)
    rule_id: str | None = Field(None, max_length=200)
    channel: str | None = Field(None, max_length=20)
    locale: str | None = Field(None, max_length=35)


class CsatSubmitted(Answer):
    score: int = Field(ge=1, le=5)
    ticket_id: str | None = None
    order_id: str | None = None


class NpsSubmitted(Answer):
    score: int = Field(ge=0, le=10)


# The states of a repair or service case, in the order a case usually walks them; "returned" is the
# item back with the customer, "closed" the case ended (with or without a repair).
CaseStatus = Literal["received", "diagnosed", "waiting_for_parts", "ready", "returned", "closed"]


class ServiceCase(EventData):
    """A repair or service case. ``service_case.opened`` starts it (status ``received`` when none is
    given), ``service_case.updated`` moves it (a new status, a new ``promised_by`` or both),
    ``service_case.completed`` ends it (status ``closed`` when none is given)."""

    case_id: Id
    customer_id: Id
    order_id: str | None = None
    status: CaseStatus | None = None
    promised_by: AwareDatetime | None = Field(None, description="when the shop promised the case would be ready")


class CallbackRequested(EventData):
    request_id: Id
    visitor_id: Id
    phone: Phone | None = None
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    consent: Literal[True] = Field(description="must be true: no callback without explicit consent")
    customer_id: str | None = None
    preferred_time: str | None = None
    topic: str | None = None
    locale: Locale | None = None
    promised_by: AwareDatetime | None = Field(None, description="when the shop promised to have called back")

    @model_validator(mode="after")
    def _phone_or_email(self) -> CallbackRequested:
        if not self.phone and not self.email:
            raise ValueError("phone or email is required")
        return self


class CallbackClaimed(EventData):
    """An agent takes a callback request from the queue (the first claim wins; a later one by another
    agent changes nothing). Keyed, like the request, by its person: the customer, else the visitor."""

    request_id: Id
    visitor_id: Id
    customer_id: str | None = Field(None, max_length=200)
    agent: Id = Field(description="the agent's name (an admin key's name)")


class CallbackUpdated(EventData):
    """A call made for a callback request: ``called``, ``no_answer`` (it stays in the queue for
    another try) or ``resolved``. The first one keeps or breaks the promise."""

    request_id: Id
    visitor_id: Id
    customer_id: str | None = Field(None, max_length=200)
    outcome: Literal["called", "no_answer", "resolved"]
    agent: str | None = Field(None, max_length=200, description="the agent's name (an admin key's name)")


# --- proact.actions, proact.outcomes, proact.timers -------------------------------------------
Channel = Literal["email", "sms", "push", "phone", "popup", "webhook", "inapp"]


class ActionRequested(EventData):
    action_id: Id
    rule_id: Id
    rule_version: int = Field(ge=1, le=MAX_COUNT)
    customer_id: Id
    channel: Channel
    template_id: Id
    locale: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    not_before: AwareDatetime | None = None
    idempotency_key: Id
    holdout: bool = False
    consent_required: bool = Field(
        True, description="false when the rule waives consent (a reply to the person's own request)"
    )


class Outcome(EventData):
    action_id: str | None = None
    rule_id: str | None = None
    customer_id: str | None = None
    visitor_id: str | None = None
    channel: str | None = None
    detail: dict[str, Any] | str | None = None

    @model_validator(mode="after")
    def _someone(self) -> Outcome:
        if not self.customer_id and not self.visitor_id:
            raise ValueError("customer_id or visitor_id is required")
        return self


class TimerFired(EventData):
    timer_id: Id
    kind: str = Field(min_length=1)
    key: Id
    due_at: AwareDatetime


# --- proact.engine.decisions -------------------------------------------------------------------
class DecisionRecord(BaseModel):
    """One entry of the decision log (``proact.engine.decisions``, projected to ``decisions``): what
    a rule decided for a customer or a visitor, why, and on what inputs. Written by the engine and
    by the storefront's decision call; a JSON object keyed by the customer (or visitor) id, not a
    CloudEvent: it is a log of the engine's own reasoning, read by the projector and by people."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(alias="_id", description="rule, customer, scope and cause: a replayed decision is a duplicate")
    rule_id: str
    rule_version: int
    rule_name: str
    customer_id: str
    visitor_id: str | None = None
    scope: str = Field(description="the order, ticket, case or session the decision is about")
    order_id: str | None = None
    at: AwareDatetime
    outcome: Literal["fired", "holdout", "deferred", "suppressed", "not_matched", "cancelled"]
    guard: str | None = Field(None, description="the guard that stopped the rule, if one did")
    why: str
    channel: str | None = None
    action_id: str | None = None
    defer_until: AwareDatetime | None = None
    conditions: list[dict[str, Any]] = Field(default_factory=list, description="each condition, held or not")
    trigger: dict[str, Any]
    cause_event_id: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict, description="what the rule saw (no personal data)")


# type -> (attribute of Topics naming its topic, data model)
EVENT_TYPES: dict[str, tuple[str, type[EventData]]] = {
    "customer.upserted": ("customers", CustomerUpserted),
    "order.placed": ("orders", OrderPlaced),
    "order.shipped": ("orders", OrderShipped),
    "order.eta_changed": ("orders", OrderEtaChanged),
    "order.delivered": ("orders", OrderDelivered),
    "order.cancelled": ("orders", OrderCancelled),
    "order.return_requested": ("orders", OrderReturnRequested),
    "session.started": ("browsing", SessionStarted),
    "page.viewed": ("browsing", PageViewed),
    "search.performed": ("browsing", SearchPerformed),
    "cart.updated": ("browsing", CartUpdated),
    "checkout.started": ("browsing", CheckoutStarted),
    "session.heartbeat": ("browsing", SessionHeartbeat),
    "ticket.opened": ("support", Ticket),
    "ticket.updated": ("support", Ticket),
    "ticket.resolved": ("support", Ticket),
    "csat.submitted": ("support", CsatSubmitted),
    "nps.submitted": ("support", NpsSubmitted),
    "service_case.opened": ("support", ServiceCase),
    "service_case.updated": ("support", ServiceCase),
    "service_case.completed": ("support", ServiceCase),
    "callback.requested": ("support", CallbackRequested),
    "callback.claimed": ("support", CallbackClaimed),
    "callback.updated": ("support", CallbackUpdated),
    "action.requested": ("actions", ActionRequested),
    "message.sent": ("outcomes", Outcome),
    "message.delivered": ("outcomes", Outcome),
    "message.failed": ("outcomes", Outcome),
    "message.opened": ("outcomes", Outcome),
    "message.clicked": ("outcomes", Outcome),
    "message.converted": ("outcomes", Outcome),
    "popup.shown": ("outcomes", Outcome),
    "popup.accepted": ("outcomes", Outcome),
    "popup.dismissed": ("outcomes", Outcome),
    "timer.fired": ("timers", TimerFired),
}
