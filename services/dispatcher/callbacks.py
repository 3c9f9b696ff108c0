"""Callback requests, routed to the people who make the calls.

For each ``callback.requested`` (``proact.support``) the dispatcher, the one service that keeps
personal data, does three things, each idempotent so that a request read twice changes nothing:

1. **The queue**: a document in MongoDB's ``callbacks`` collection (by request id) with the number
   or address to call, the promised time, and room for the agents' records. The admin's agent queue
   (``services/admin/callbacks.py``) reads and updates it.
2. **The help desk**: when ``PROACT_HELPDESK_URL`` is set, a signed JSON POST of the request to it
   (``X-Proact-Signature`` as on every proact webhook, ``Idempotency-Key`` the request id), tried
   ``HELPDESK_ATTEMPTS`` times with back-off; the time it was accepted is kept on the document, so a
   re-read does not post it again. A help desk that keeps refusing dead-letters the request with the
   reason (the admin can send it back once the help desk is fixed); the queue has it meanwhile.
3. **The contact book**: the person (the customer, or the visitor when not a known customer) gets
   the address they left, where none is known, so that a reply about their request (the built-in
   ``callback-apology``) can reach them. No consent is recorded: the request is consent for replies
   about it only (those actions say ``consent_required: false``).

The dispatcher is the one writer of a request's document (FerretDB does not make two writers'
updates atomic): agents' claims (``callback.claimed``) and calls (``callback.updated``), whether
from the admin's queue or a help desk, arrive on ``proact.support`` keyed like the request, so one
consumer applies them in order (``claimed``, ``recorded``); the admin waits to see them applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared import signing
from shared.contract.events import CallbackClaimed, CallbackRequested, CallbackUpdated
from shared.store import Collections, Document, as_time

log = logging.getLogger(__name__)
HELPDESK_ATTEMPTS = (0.0, 1.0, 4.0)  # waits before each attempt, seconds
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# what the help desk gets of a request: who asked, how to reach them, about what, by when (not the
# queue's own bookkeeping)
POSTED = (
    "request_id",
    "person",
    "visitor_id",
    "customer_id",
    "phone",
    "email",
    "locale",
    "topic",
    "preferred_time",
    "requested_at",
    "promised_by",
)


class HelpDeskRefused(Exception):
    """The help desk did not take the request after every attempt; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = None


class HelpDesk:
    def __init__(self, url: str, secret: str, timeout_s: float = 5.0) -> None:
        self.url, self._secret = url, secret
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def post(self, request: dict[str, Any]) -> None:
        body = orjson.dumps(request)
        reason = ""
        for wait in HELPDESK_ATTEMPTS:
            await asyncio.sleep(wait)
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": request["request_id"],
                "X-Proact-Signature": signing.webhook_signature(self._secret, body, int(time.time())),
            }
            try:
                response = await self._client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                reason = f"help desk: {type(exc).__name__}"
                continue
            if response.is_success:
                return
            reason = f"help desk answered {response.status_code}"
            if response.status_code < 500 and response.status_code not in (408, 429):
                break  # it will answer the same again
        raise HelpDeskRefused(reason)


def _person(data: CallbackRequested) -> str:
    return data.customer_id or data.visitor_id


async def route(db: AsyncDatabase[Document], data: CallbackRequested, at: datetime, desk: HelpDesk | None) -> None:
    """Queue the request, post it to the help desk (once), and remember where to reply."""
    request: Document = {
        "_id": data.request_id,
        "request_id": data.request_id,
        "person": _person(data),
        "visitor_id": data.visitor_id,
        "customer_id": data.customer_id,
        "phone": data.phone,
        "email": data.email,
        "locale": data.locale,
        "topic": data.topic,
        "preferred_time": data.preferred_time,
        "requested_at": at,
        "promised_by": data.promised_by,
        "status": "open",
        "claimed_by": None,
        "attempts": [],
        "made_at": None,
        "helpdesk_at": None,
    }
    callbacks = db[Collections.CALLBACKS]
    try:
        await callbacks.insert_one(request)
    except DuplicateKeyError:
        request = await callbacks.find_one({"_id": data.request_id}) or request
    await _remember(db, data, at)
    if desk is None or request.get("helpdesk_at") is not None:
        return
    await desk.post({k: v.isoformat() if isinstance(v, datetime) else v for k, v in request.items() if k in POSTED})
    await callbacks.update_one({"_id": data.request_id}, {"$set": {"helpdesk_at": datetime.now(UTC)}})
    log.info("callback sent to the help desk", extra={"request_id": data.request_id})


async def _remember(db: AsyncDatabase[Document], data: CallbackRequested, at: datetime) -> None:
    contacts = db[Collections.CONTACTS]
    known = await contacts.find_one({"_id": _person(data)}, {"email": 1, "phone": 1, "locale": 1})
    if known is None:
        # dated at the epoch: the customer's own profile, whenever it is read, replaces this one
        doc: Document = {
            "email": data.email,
            "phone": data.phone,
            "locale": data.locale,
            "consents": {},
            "updated_at": EPOCH,
        }
        try:
            await contacts.insert_one({"_id": _person(data), **doc})
        except DuplicateKeyError:
            return  # a profile arrived meanwhile: it wins
        return
    missing = {k: v for k, v in (("email", data.email), ("phone", data.phone)) if v and not known.get(k)}
    if missing:
        await contacts.update_one({"_id": _person(data)}, {"$set": missing})


async def claimed(db: AsyncDatabase[Document], data: CallbackClaimed) -> None:
    """The first agent to claim an open request has it; a later claim by another changes nothing."""
    known = await db[Collections.CALLBACKS].find_one({"_id": data.request_id}, {"status": 1, "claimed_by": 1})
    if known is None or known.get("status") != "open" or known.get("claimed_by") not in (None, data.agent):
        return
    await db[Collections.CALLBACKS].update_one(
        {"_id": data.request_id}, {"$set": {"claimed_by": data.agent, "claimed_at": datetime.now(UTC)}}
    )


async def recorded(db: AsyncDatabase[Document], data: CallbackUpdated, at: datetime) -> None:
    """A call made, by the agent who holds the request (or by anyone, when nobody claimed it: a help
    desk reporting through the HTTP intake): the first call is when the promise was kept or broken;
    ``called`` and ``resolved`` close the request. A record read twice is applied once."""
    callbacks = db[Collections.CALLBACKS]
    by = data.agent or "help desk"
    attempt = {"outcome": data.outcome, "by": by, "at": at}
    known = await callbacks.find_one(
        {"_id": data.request_id}, {"attempts": 1, "made_at": 1, "claimed_by": 1, "status": 1}
    )
    if known is None or known.get("status") != "open" or known.get("claimed_by") not in (None, by):
        return
    if any(
        a.get("outcome") == data.outcome and a.get("by") == by and _same(a.get("at"), at)
        for a in known.get("attempts") or []
    ):
        return
    change: dict[str, Any] = {"claimed_by": by}
    if known.get("made_at") is None:
        change["made_at"] = at
    if data.outcome != "no_answer":
        change["status"] = "done"
    await callbacks.update_one({"_id": data.request_id}, {"$set": change, "$push": {"attempts": attempt}})


def _same(stored: Any, at: datetime) -> bool:
    """A stored time (BSON keeps milliseconds, and may give it back without a zone) equal to ``at``."""
    time = as_time(stored) if isinstance(stored, datetime) else None
    return time is not None and abs((time - at).total_seconds()) < 0.001
