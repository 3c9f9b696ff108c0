"""The agents' callback queue: who asked to be called back, by when, and who is calling.

The dispatcher puts each ``callback.requested`` in the ``callbacks`` collection with the number or
address to call and the time the storefront promised (``services/dispatcher/callbacks.py``). Here,
for the ``agent`` role (and ``admin``):

- ``GET /v1/callbacks``: open requests, the most urgent first (the promised time, or the new one
  the built-in ``callback-apology`` gave when the first was missed), then the recently done;
- ``POST /v1/callbacks/{id}/claim``: take one (refused, 409, when another agent has it);
- ``POST /v1/callbacks/{id}/outcome``: ``called``, ``no_answer`` (it stays in the queue for another
  try) or ``resolved``; each is a call made, and the first one's time is when the promise was kept
  or not.

Claims and calls are published (``callback.claimed``, ``callback.updated``) on ``proact.support``,
keyed like the request, and the dispatcher, the queue's one writer, applies them in order: the
first claim wins (FerretDB does not make two writers' conditional updates atomic, so the admin
never writes the queue itself); the admin answers once it sees its record applied. The engine's
apology waits for ``callback.updated``; both are in the audit log. ``GET
/v1/callbacks/report`` (any role, no personal data) gives the share of callbacks made within their
promise, over the requests whose promised time has passed or that were made.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from pydantic import BaseModel

from services.admin.access import Agent, Principal, Viewer
from services.admin.dead_letters import send_one
from shared.contract import Topics, encode, new_event
from shared.contract import events as ev
from shared.rules.builtin import CALLBACK_APOLOGY
from shared.store import Collections, Document, as_time
from shared.versioned import audit

router = APIRouter(prefix="/v1", tags=["callbacks"])
SOURCE = "proact/admin"
REQUEST_ID = Path(min_length=1, max_length=200)
DONE_SHOWN = 50


def _due(doc: Document) -> datetime | None:
    return as_time(doc.get("new_promise")) or as_time(doc.get("promised_by"))


async def _with_new_promises(request: Request, docs: list[Document]) -> list[Document]:
    """The new time the apology promised, for requests whose first promise was missed."""
    late = {d["_id"]: d for d in docs if d.get("made_at") is None}
    if late:
        query = {"rule_id": CALLBACK_APOLOGY, "context.request_id": {"$in": list(late)}}
        async for message in request.app.state.db[Collections.MESSAGES].find(query, {"context": 1}):
            context = message.get("context") or {}
            if (doc := late.get(context.get("request_id"))) is not None:
                doc["new_promise"] = context.get("new_promise")
    return docs


def _public(doc: Document, now: datetime) -> dict[str, Any]:
    due, first = _due(doc), as_time(doc.get("promised_by"))
    waiting = doc.get("made_at") is None
    return {
        **{k: v for k, v in doc.items() if k not in ("_id", "person")},
        "due": due.isoformat() if due else None,
        "overdue": bool(due and due < now and waiting),  # past the time promised now
        "missed_promise": bool(first and first < now and waiting),  # past the first time promised
    }


@router.get("/callbacks")
async def queue(request: Request, _: Agent, status: Literal["open", "done"] = "open") -> list[dict[str, Any]]:
    """Open callback requests, the most urgent first; or (``status=done``) the last ones done."""
    db, now = request.app.state.db, datetime.now(UTC)
    if status == "open":
        docs = [d async for d in db[Collections.CALLBACKS].find({"status": "open"})]
        docs = await _with_new_promises(request, docs)
        docs.sort(key=lambda d: _due(d) or now)
    else:
        cursor = db[Collections.CALLBACKS].find({"status": "done"}).sort("requested_at", -1).limit(DONE_SHOWN)
        docs = [d async for d in cursor]
    return [_public(d, now) for d in docs]


@router.get("/callbacks/report")
async def report(
    request: Request,
    _: Viewer,
    days: Annotated[int, Query(ge=1, le=366, description="requests of the last N days")] = 30,
) -> dict[str, Any]:
    """How many callbacks were asked for, made, and made within their promise (no personal data)."""
    now = datetime.now(UTC)
    query = {"requested_at": {"$gte": now - timedelta(days=days)}}
    fields = {"promised_by": 1, "made_at": 1, "status": 1}
    docs = [d async for d in request.app.state.db[Collections.CALLBACKS].find(query, fields)]
    judged = [d for d in docs if d.get("made_at") is not None or ((as_time(d.get("promised_by")) or now) < now)]
    kept = [
        d
        for d in judged
        if (made := as_time(d.get("made_at"))) is not None and made <= (as_time(d.get("promised_by")) or made)
    ]
    return {
        "days": days,
        "requested": len(docs),
        "open": sum(1 for d in docs if d.get("status") == "open"),
        "made": sum(1 for d in docs if d.get("made_at") is not None),
        "judged": len(judged),
        "made_within_promise": len(kept),
        "share_within_promise": len(kept) / len(judged) if judged else None,
    }


class CallOutcome(BaseModel):
    outcome: Literal["called", "no_answer", "resolved"]


@router.post("/callbacks/{request_id}/claim", responses={409: {"description": "another agent has it"}})
async def claim(request: Request, request_id: Annotated[str, REQUEST_ID], who: Agent) -> dict[str, Any]:
    """Take an open request; 409 when another agent has it. The claim goes to the dispatcher, the one
    writer of the queue, through ``proact.support``: the first claim it reads wins."""
    doc = await _found(request, request_id)
    _open_to(doc, who)
    now = datetime.now(UTC)
    data = ev.CallbackClaimed(
        request_id=doc["_id"], visitor_id=doc["visitor_id"], customer_id=doc.get("customer_id"), agent=who.name
    )
    await _publish(request, "callback.claimed", doc, data, now)
    doc = await _applied(request, request_id, lambda d: d.get("claimed_by") is not None)
    _open_to(doc, who)
    await audit(request.app.state.db, who.who, "callback.claimed", request_id, None, {"agent": who.name})
    return _public(doc, datetime.now(UTC))


@router.post("/callbacks/{request_id}/outcome", responses={409: {"description": "closed, or another agent's"}})
async def outcome(
    request: Request, request_id: Annotated[str, REQUEST_ID], body: Annotated[CallOutcome, Body()], who: Agent
) -> dict[str, Any]:
    """Record a call: ``no_answer`` keeps the request open for another try, the others close it."""
    doc = await _found(request, request_id)
    _open_to(doc, who)
    now = datetime.now(UTC)
    data = ev.CallbackUpdated(
        request_id=doc["_id"],
        visitor_id=doc["visitor_id"],
        customer_id=doc.get("customer_id"),
        outcome=body.outcome,
        agent=who.name,
    )
    tried = len(doc.get("attempts") or [])
    await _publish(request, "callback.updated", doc, data, now)
    doc = await _applied(request, request_id, lambda d: len(d.get("attempts") or []) > tried)
    await audit(request.app.state.db, who.who, f"callback.{body.outcome}", request_id, None, {"outcome": body.outcome})
    return _public(doc, datetime.now(UTC))


def _open_to(doc: Document, who: Principal) -> None:
    if doc.get("status") != "open":
        raise HTTPException(409, {"detail": "this request is closed", "field": "request_id"})
    if doc.get("claimed_by") not in (None, who.name):
        raise HTTPException(409, {"detail": f"claimed by {doc.get('claimed_by')}", "field": "request_id"})


async def _found(request: Request, request_id: str) -> Document:
    doc: Document | None = await request.app.state.db[Collections.CALLBACKS].find_one({"_id": request_id})
    if doc is None:
        raise HTTPException(404, {"detail": f"no callback request {request_id}", "field": "request_id"})
    return doc


APPLIED_WAIT_S = 15.0  # how long an agent's answer waits for the dispatcher to apply the record


async def _applied(request: Request, request_id: str, done: Any) -> Document:
    """The request's document once the dispatcher has applied the record just published; 503 if it
    has not within ``APPLIED_WAIT_S`` (the record stays on the topic and is applied when it runs)."""
    deadline = asyncio.get_running_loop().time() + APPLIED_WAIT_S
    while True:
        doc = await _found(request, request_id)
        if done(doc):
            return doc
        if asyncio.get_running_loop().time() > deadline:
            raise HTTPException(
                503, {"detail": "recorded, not yet applied by the dispatcher: look again shortly", "field": None}
            )
        await asyncio.sleep(0.1)


async def _publish(request: Request, kind: str, doc: Document, data: ev.EventData, now: datetime) -> None:
    """The record on the support topic, keyed by the request's person (the request's partition)."""
    event = new_event(kind, doc.get("person") or doc["visitor_id"], data, source=SOURCE, time=now)
    settings = request.app.state.settings
    key, value, headers = encode(event)
    await send_one(settings, Topics.from_settings(settings).support, value, key, headers)
