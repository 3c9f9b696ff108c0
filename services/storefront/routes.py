"""HTTP routes of the storefront: thin, validation in the contract, publishing through the producer."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from services.storefront import metrics
from services.storefront.decide import Decider
from services.storefront.limits import RateLimit
from services.storefront.publisher import Publisher
from services.storefront.schemas import (
    Accepted,
    CallbackAccepted,
    CallbackRequest,
    DecideRequest,
    DecideResponse,
    EventBatch,
    Popup,
    PopupOutcome,
)
from shared import sessions, signing, templates
from shared.contract import EVENT_TYPES, Event, InvalidEvent, check_times, new_event
from shared.contract import events as ev

log = logging.getLogger(__name__)
tracer = trace.get_tracer("proact.storefront")

SOURCE = "proact/storefront"
router = APIRouter()


async def publisher(request: Request) -> Publisher:
    pub: Publisher = request.app.state.publisher
    return pub


_pending: set[asyncio.Task[object]] = set()
MAX_PENDING_DECISION_RECORDS = 10_000


def log_decision(pub: Publisher, record: dict[str, object]) -> None:
    """Hand a decision record to the producer in the background: a slow or absent broker must not
    slow the decision call. Beyond a bound of records in flight they are dropped, and counted."""
    if len(_pending) >= MAX_PENDING_DECISION_RECORDS:
        metrics.decision_log_dropped.add(1)
        return
    key = str(record["customer_id"]).encode()
    task = asyncio.ensure_future(pub.producer.send(pub.topics.decisions, value=orjson.dumps(record), key=key))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def _client(request: Request) -> str:
    """The client's address: the visitor's behind a trusted proxy (see ``shared.web.serve``)."""
    return request.client.host if request.client else "unknown"


def limited(request: Request, route: str, limits: tuple[RateLimit, RateLimit], visitor_id: str) -> None:
    """429 with ``Retry-After`` when the visitor or the client address is over its limit."""
    limited_by(request, route, limits[0], f"v:{visitor_id}")
    limited_by(request, route, limits[1], f"ip:{_client(request)}")


def limited_by(request: Request, route: str, limit: RateLimit, key: str) -> None:
    if not limit.allow(key):
        metrics.refused.add(1, {"http.route": route})
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many requests; please try again later",
            headers={"Retry-After": str(limit.retry_after(key))},
        )


IDENTITY_HEADER = "X-Proact-Identity"


def verified_identity(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without its ``customer_id`` unless the request carries that customer's signed identity
    (``X-Proact-Identity``, ``shared.signing.identity_signature``, made by the shop's back end): a
    browser can claim any customer id, and a claimed one would join this visitor's sessions to that
    customer's record. The event itself counts, as an anonymous visitor's."""
    customer_id = data.get("customer_id")
    if not customer_id:
        return data
    secret = request.app.state.settings.identity_secret
    signature = request.headers.get(IDENTITY_HEADER, "")
    if secret is not None and signing.identity_holds(secret.get_secret_value(), str(customer_id), signature):
        return data
    metrics.unverified_identity.add(1)
    return {k: v for k, v in data.items() if k != "customer_id"}


@router.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={422: {"description": "an event breaks the contract; `field` names the first wrong field"}},
)
async def post_events(batch: EventBatch, request: Request, pub: Annotated[Publisher, Depends(publisher)]) -> Accepted:
    """Accept a batch of browsing events from the widget and publish them to ``proact.browsing``.

    The whole batch is refused if one event is invalid, so the widget can fix and resend it."""
    visitor_id = str(batch.events[0].data.get("visitor_id") or "") if batch.events else ""
    limited(request, "/v1/events", request.app.state.event_limits, visitor_id)
    limit = request.app.state.settings.max_batch_events
    if len(batch.events) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"at most {limit} events per batch")
    events: list[Event] = []
    view = request.app.state.view
    for _ in view.unknown_sessions({str(item.data.get("session_id")) for item in batch.events}):
        limited_by(request, "/v1/events", request.app.state.new_session_limit, f"ip:{_client(request)}")
    for i, item in enumerate(batch.events):
        if EVENT_TYPES.get(item.type, ("",))[0] != "browsing":
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                {"detail": f"{item.type!r} is not a browsing event type", "field": f"events.{i}.type"},
            )
        try:
            visitor = str(item.data.get("visitor_id") or "")
            data = verified_identity(request, item.data)
            event = new_event(item.type, visitor, data, source=SOURCE, time=item.time, id=item.id)
            check_times(event)  # a client's clock may be wrong, not by days
            events.append(event)
        except InvalidEvent as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                {"detail": exc.reason, "field": f"events.{i}.{exc.field}" if exc.field else f"events.{i}"},
            ) from None
    await pub.publish_all(events)
    for e in events:  # the decision call sees them at once, before they come back from Kafka
        request.app.state.view.apply(e)
        if customer_id := getattr(e.data, "customer_id", None):  # a signed identity: its churn score, ahead
            request.app.state.decider.churn.want(customer_id)
    return Accepted(accepted=len(events), ids=[e.id for e in events])


@router.post("/v1/decide", response_model=DecideResponse, response_model_exclude_none=True)
async def decide(body: DecideRequest, request: Request, pub: Annotated[Publisher, Depends(publisher)]) -> Response:
    """Whether to show this visitor a pop-up now, and its content in their locale.

    Always answers quickly: on any internal fault the answer is "no pop-up" with the reason."""
    if "traceparent" not in request.headers:
        # The shop asks many times a second: a server span and HTTP metrics per call cost more than
        # the decision (about 0.4 ms of 1 ms). Untraced calls are counted and timed by the decision
        # metrics below; a caller that traces gets its span, as untraced Kafka producers do not.
        return _decide(body, request, pub)
    with tracer.start_as_current_span(
        "POST /v1/decide",
        context=propagate.extract(request.headers),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "http.route": "/v1/decide", "url.path": "/v1/decide"},
    ) as span:
        response = _decide(body, request, pub)
        span.set_attribute("http.response.status_code", response.status_code)
        return response


def _decide(body: DecideRequest, request: Request, pub: Publisher) -> Response:
    started = time.perf_counter()
    decider: Decider = request.app.state.decider
    answer = decider.decide(body.visitor_id, body.session_id, body.locale, datetime.now(UTC))
    kind = "show" if answer.show else "holdout" if answer.holdout else "none"
    metrics.decide_duration.record(time.perf_counter() - started, {"proact.decision": kind})
    metrics.decisions.add(1, {"proact.decision": kind})
    if answer.reason.startswith("fail-safe"):
        metrics.fail_safe.add(1, {"proact.reason": answer.reason.split(":", 1)[-1].strip()[:40]})
    for record in answer.decisions:  # the decision log, as the engine's: never delays the answer
        log_decision(pub, record)
    out: dict[str, object] = {"show": answer.show, "decision_id": answer.decision_id, "reason": answer.reason}
    if answer.rule_id:
        out["rule_id"] = answer.rule_id
    if answer.popup:
        out["popup"] = {k: answer.popup[k] for k in Popup.model_fields}
    # serialised directly (the response model documents it): this route is the hot path
    return Response(orjson.dumps(out), media_type="application/json")


@router.post("/v1/outcomes", status_code=status.HTTP_202_ACCEPTED)
async def popup_outcome(
    body: PopupOutcome, request: Request, pub: Annotated[Publisher, Depends(publisher)]
) -> dict[str, str]:
    """What the visitor did with a pop-up: shown, accepted or dismissed (to ``proact.outcomes``).
    Only for the visitor's own live session, and rate-limited: an outcome moves the results of a
    rule and marks the session as offered."""
    limited(request, "/v1/outcomes", request.app.state.outcome_limits, body.visitor_id)
    session = request.app.state.view.get(sessions.SESSION, body.session_id)
    if session is None or session.get("visitor_id") != body.visitor_id:
        problem = {"detail": "no live session of this visitor has that id", "field": "session_id"}
        raise HTTPException(status.HTTP_404_NOT_FOUND, problem)
    data = ev.Outcome(
        action_id=body.decision_id,
        rule_id=body.rule_id,
        visitor_id=body.visitor_id,
        channel="popup",
        detail={"session_id": body.session_id},
    )
    event = new_event(body.type, body.visitor_id, data, source=SOURCE)
    await pub.publish_all([event])
    request.app.state.view.apply(event)
    return {"id": event.id}


@router.post(
    "/v1/callbacks",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CallbackAccepted,
    responses={
        422: {"description": "no consent, or an invalid phone or e-mail; `field` says which"},
        429: {"description": "too many callback requests; retry after the given seconds"},
    },
)
async def callback(
    body: CallbackRequest, request: Request, response: Response, pub: Annotated[Publisher, Depends(publisher)]
) -> CallbackAccepted:
    """A visitor asks to be called back: ``callback.requested`` on ``proact.support`` for the support
    team. The phone number and e-mail are never logged."""
    limited(request, "/v1/callbacks", request.app.state.callback_limits, body.visitor_id)
    session = request.app.state.view.get(sessions.SESSION, body.session_id) if body.session_id else None
    request_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    promised_by = now + timedelta(minutes=request.app.state.settings.callback_promise_min)
    customer_id = (session or {}).get("customer_id")
    data = ev.CallbackRequested(
        request_id=request_id,
        visitor_id=body.visitor_id,
        phone=body.phone,
        email=body.email,
        consent=True,
        customer_id=customer_id,
        preferred_time=body.preferred_time,
        topic=body.topic,
        locale=body.locale,
        promised_by=promised_by,
        decision_id=body.decision_id,
        session_id=body.session_id,
    )
    # keyed by the person the rules will write to (the customer, else the visitor), so that the
    # engine reads it in the partition that holds their record
    event = new_event("callback.requested", customer_id or body.visitor_id, data, source=SOURCE, time=now)
    await pub.publish_all([event])
    log.info("callback requested", extra={"request_id": request_id, "visitor_id": body.visitor_id})
    return CallbackAccepted(
        request_id=request_id,
        message=_confirmation(request, body.locale, body.timezone, now, promised_by),
        promised_by=promised_by,
    )


def _confirmation(request: Request, locale: str | None, zone: str | None, now: datetime, by: datetime) -> str:
    """The confirmation in the visitor's language, with the promised time in their time zone (the
    time alone when it is today there, else the date too)."""
    tz = ZoneInfo(zone or "UTC")
    local, today = by.astimezone(tz), now.astimezone(tz).date()
    shown = f"{local:%H:%M}" if local.date() == today else f"{local:%Y-%m-%d %H:%M}"
    if not zone:
        shown += " UTC"
    _, parts = request.app.state.templates.render("callback_offer", locale, {"by": shown})
    if "thanks" in parts:
        return str(parts["thanks"])
    # a shop's own version of the pop-up made before it had a confirmation: the built-in one
    return str(templates.render("callback_offer", locale, {"by": shown})[1]["thanks"])
