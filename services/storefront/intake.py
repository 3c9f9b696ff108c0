"""``POST /v1/cloudevents``: back-end events over HTTP, for a shop without a Kafka client.

The CloudEvents HTTP binding's structured mode (``application/cloudevents+json``, one event) and
batched mode (``application/cloudevents-batch+json``, a JSON array), validated by the same contract
as every topic (``shared.contract``), and produced to the same topics with the storefront's
idempotent producer. A shop authenticates with its source's key (``Authorization: Bearer <key>``);
each key may write the topics its configuration names and sends events whose ``source`` is its
name (or starts with ``<name>/``), so one shop cannot speak for another:

    PROACT_INTAKE_SOURCES='{"shop-a": {"key": "<32+ random characters>", "topics": ["customers", "orders", "support"]}}'

The keys are secrets (never logged); without the setting the route answers 404. Nothing is half
written: every event of a batch is checked before any is sent; a refused one answers 4xx naming
its index and field (``events.3.data.total``), and the batch may be sent again as a whole (the
engine drops an event id it has seen). Each source is rate-limited (``PROACT_INTAKE_PER_MINUTE``).
The guide for shops: ``docs/connect-your-shop.md``.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel

from services.storefront.limits import RateLimit
from services.storefront.publisher import Publisher
from services.storefront.routes import limited_by, publisher
from shared.contract import EVENT_TYPES, Event, InvalidEvent, check_times
from shared.contract.envelope import from_dict

router = APIRouter(tags=["intake"])
WRITABLE = frozenset({"customers", "orders", "support", "browsing"})  # never the engine's own topics
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
MAX_EVENTS = 500


class Source(BaseModel):
    key: str
    topics: list[str]


class Intake(BaseModel):
    accepted: int
    ids: list[str]


def sources(raw: str | None) -> dict[str, Source]:
    """The configured sources, refusing a key shorter than 24 characters or a topic proact does not
    take from outside."""
    if not raw:
        return {}
    found = {name: Source.model_validate(spec) for name, spec in orjson.loads(raw).items()}
    for name, source in found.items():
        if len(source.key) < 24:
            raise ValueError(f"PROACT_INTAKE_SOURCES: the key of {name} is shorter than 24 characters")
        if not set(source.topics) <= WRITABLE:
            raise ValueError(f"PROACT_INTAKE_SOURCES: {name} names topics outside {sorted(WRITABLE)}")
    return found


def _caller(request: Request) -> tuple[str, Source]:
    configured: dict[str, Source] = request.app.state.intake_sources
    if not configured:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "HTTP intake is not configured (PROACT_INTAKE_SOURCES)")
    auth = request.headers.get("authorization", "")
    key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
    for name, source in configured.items():
        if key and hmac.compare_digest(key.encode(), source.key.encode()):
            return name, source
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "a source key is required: Authorization: Bearer <key>",
        {"WWW-Authenticate": "Bearer"},
    )


def _refuse(code: int, detail: str, field: str) -> HTTPException:
    return HTTPException(code, {"detail": detail, "field": field})


def _checked(name: str, source: Source, raw: Any, where: str) -> Event:
    if not isinstance(raw, dict):
        raise _refuse(422, "a structured CloudEvent must be a JSON object", where or "body")
    prefix = f"{where}." if where else ""
    try:
        event = from_dict(raw)
        check_times(event)
    except InvalidEvent as exc:
        raise _refuse(422, exc.reason, f"{prefix}{exc.field}" if exc.field else where or "body") from None
    topic = EVENT_TYPES[event.type][0]
    if topic not in source.topics:
        raise _refuse(403, f"source {name} may not send {event.type} (topic {topic})", f"{prefix}type")
    if event.envelope.source != name and not event.envelope.source.startswith(f"{name}/"):
        raise _refuse(403, f"this key sends events of source {name}, not {event.envelope.source}", f"{prefix}source")
    return event


@router.post(
    "/v1/cloudevents",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Intake,
    responses={
        401: {"description": "no source key, or an unknown one"},
        403: {"description": "an event this source may not send; `field` names it"},
        415: {"description": "neither structured nor batched CloudEvents JSON"},
        422: {"description": "an event breaks the contract; `field` names the first wrong field"},
    },
)
async def cloudevents(request: Request, pub: Annotated[Publisher, Depends(publisher)]) -> Intake:
    """Back-end events (customers, orders, tickets) from a shop, in the CloudEvents HTTP binding's
    structured or batched mode; all checked before any is sent."""
    name, source = _caller(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in (STRUCTURED, BATCH):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"send {STRUCTURED} or {BATCH}")
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise _refuse(422, f"the body is not valid JSON: {exc}", "body") from None
    if kind == BATCH:
        if not isinstance(body, list) or not body:
            raise _refuse(422, "a batch is a non-empty JSON array of CloudEvents", "body")
        if len(body) > MAX_EVENTS:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"at most {MAX_EVENTS} events per batch")
        events = [_checked(name, source, item, f"events.{i}") for i, item in enumerate(body)]
    else:
        events = [_checked(name, source, body, "")]
    limit: RateLimit = request.app.state.intake_limit
    for _ in events:  # each event counts against the source's limit
        limited_by(request, "/v1/cloudevents", limit, f"source:{name}")
    await pub.publish_all(events)
    return Intake(accepted=len(events), ids=[e.id for e in events])
