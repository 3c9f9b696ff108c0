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

Every claim and outcome is published as ``callback.updated`` on ``proact.support`` (the engine's
apology waits for it; the shop's systems may listen) and written to the audit log. ``GET
/v1/callbacks/report`` (any role, no personal data) gives the share of callbacks made within their
promise, over the requests whose promised time has passed or that were made.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from pydantic import BaseModel

from services.admin.access import Agent, Principal, Viewer
from services.admin.results import as_time
from shared.contract import Topics, encode, new_event
from shared.contract import events as ev
from shared.rules.builtin import CALLBACK_APOLOGY
from shared.store import Collections, Document
from shared.versioned import audit

router = APIRouter(prefix="/v1", tags=["callbacks"])
SOURCE = "proact/admin"  # services/dispatcher/callbacks.py skips its own records by it
REQUEST_ID = Path(min_length=1, max_length=200)
DONE_SHOWN = 50


def _due(doc: Document) -> datetime | None:
    return as_time(doc.get("new_promise")) or as_time(doc.get("promised_by"))


async def _with_new_promises(request: Request, docs: list[Document]) -> list[Document]:
    """The new time the apology promised, for requests whose first promise was missed."""
    late = [d["_id"] for d in docs if d.get("made_at") is None]
    if late:
        query = {"rule_id": CALLBACK_APOLOGY, "context.request_id": {"$in": late}}
        async for message in request.app.state.db[Collections.MESSAGES].find(query, {"context": 1}):
            context = message.get("context") or {}
            for doc in docs:
                if doc["_id"] == context.get("request_id"):
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


@router.post("/callbacks/{request_id}/claim")
async def claim(request: Request, request_id: Annotated[str, REQUEST_ID], who: Agent) -> dict[str, Any]:
    """Take an open request; 409 when another agent has it."""
    db, now = request.app.state.db, datetime.now(UTC)
    taken = await db[Collections.CALLBACKS].update_one(
        {"_id": request_id, "status": "open", "claimed_by": {"$in": [None, who.name]}},
        {"$set": {"claimed_by": who.name, "claimed_at": now}},
    )
    doc = await _found(request, request_id)
    if taken.matched_count == 0:
        raise HTTPException(409, {"detail": f"claimed by {doc.get('claimed_by')}", "field": "request_id"})
    await _tell(request, doc, "claimed", who, now)
    return _public(doc, now)


@router.post("/callbacks/{request_id}/outcome")
async def outcome(
    request: Request, request_id: Annotated[str, REQUEST_ID], body: Annotated[CallOutcome, Body()], who: Agent
) -> dict[str, Any]:
    """Record a call: ``no_answer`` keeps the request open for another try, the others close it."""
    db, now = request.app.state.db, datetime.now(UTC)
    doc = await _found(request, request_id)
    if doc.get("status") != "open":
        raise HTTPException(409, {"detail": "this request is closed", "field": "request_id"})
    if doc.get("claimed_by") not in (who.name, None) and who.role != "admin":
        raise HTTPException(409, {"detail": f"claimed by {doc.get('claimed_by')}", "field": "request_id"})
    change: dict[str, Any] = {"claimed_by": doc.get("claimed_by") or who.name}
    if doc.get("made_at") is None:
        change["made_at"] = now
    if body.outcome != "no_answer":
        change["status"] = "done"
    attempt = {"outcome": body.outcome, "by": who.name, "at": now}
    await db[Collections.CALLBACKS].update_one({"_id": request_id}, {"$set": change, "$push": {"attempts": attempt}})
    doc = await _found(request, request_id)
    await _tell(request, doc, body.outcome, who, now)
    return _public(doc, now)


async def _found(request: Request, request_id: str) -> Document:
    doc: Document | None = await request.app.state.db[Collections.CALLBACKS].find_one({"_id": request_id})
    if doc is None:
        raise HTTPException(404, {"detail": f"no callback request {request_id}", "field": "request_id"})
    return doc


async def _tell(request: Request, doc: Document, what: str, who: Principal, now: datetime) -> None:
    """``callback.updated`` on the support topic, keyed by the request's person; and the audit log."""
    data = ev.CallbackUpdated(
        request_id=doc["_id"],
        visitor_id=doc["visitor_id"],
        customer_id=doc.get("customer_id"),
        outcome=what,
        agent=who.name,
    )
    event = new_event("callback.updated", doc.get("person") or doc["visitor_id"], data, source=SOURCE, time=now)
    settings = request.app.state.settings
    key, value, headers = encode(event)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(Topics.from_settings(settings).support, value=value, key=key, headers=headers)
    finally:
        await producer.stop()
    await audit(request.app.state.db, who.who, f"callback.{what}", doc["_id"], None, {"outcome": what})
