"""HTTP routes of the storefront: thin, validation in the contract, publishing through the producer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status

from services.storefront.models import Accepted, EventBatch
from services.storefront.publisher import Publisher
from shared.contract import EVENT_TYPES, Event, InvalidEvent, new_event

SOURCE = "proact/storefront"
router = APIRouter()


def publisher(request: Request) -> Publisher:
    pub: Publisher = request.app.state.publisher
    return pub


@router.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={422: {"description": "an event breaks the contract; `field` names the first wrong field"}},
)
async def post_events(batch: EventBatch, request: Request, pub: Annotated[Publisher, Depends(publisher)]) -> Accepted:
    """Accept a batch of browsing events from the widget and publish them to ``proact.browsing``.

    The whole batch is refused if one event is invalid, so the widget can fix and resend it."""
    limit = request.app.state.settings.max_batch_events
    if len(batch.events) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"at most {limit} events per batch")
    events: list[Event] = []
    for i, item in enumerate(batch.events):
        if EVENT_TYPES.get(item.type, ("",))[0] != "browsing":
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                {"detail": f"{item.type!r} is not a browsing event type", "field": f"events.{i}.type"},
            )
        try:
            visitor = str(item.data.get("visitor_id") or "")
            events.append(new_event(item.type, visitor, item.data, source=SOURCE, time=item.time, id=item.id))
        except InvalidEvent as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                {"detail": exc.reason, "field": f"events.{i}.{exc.field}" if exc.field else f"events.{i}"},
            ) from None
    await pub.publish_all(events)
    return Accepted(accepted=len(events), ids=[e.id for e in events])
