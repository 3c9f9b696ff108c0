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

A ``callback.updated`` from elsewhere than the admin (a help desk that made the call) is recorded on
the request too (``recorded``), so the queue and the report know of it.
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
from shared.contract.events import CallbackRequested, CallbackUpdated
from shared.store import Collections, Document

log = logging.getLogger(__name__)
HELPDESK_ATTEMPTS = (0.0, 1.0, 4.0)  # waits before each attempt, seconds
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    posted = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in request.items() if k != "_id"}
    for field in ("status", "claimed_by", "attempts", "made_at", "helpdesk_at"):
        posted.pop(field, None)
    await desk.post(posted)
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


ADMIN_SOURCE = "proact/admin"  # the admin's agent queue writes its own records before it publishes them


async def recorded(db: AsyncDatabase[Document], data: CallbackUpdated, source: str, at: datetime) -> None:
    """A call recorded elsewhere (the shop's help desk, through the HTTP intake or Kafka) joins the
    request's document as an agent's record in the admin would: the first call is when the promise
    was kept or not; ``called`` and ``resolved`` close it."""
    if source == ADMIN_SOURCE or data.outcome == "claimed":
        return
    callbacks = db[Collections.CALLBACKS]
    attempt = {"outcome": data.outcome, "by": data.agent or source, "at": at}
    known = await callbacks.find_one({"_id": data.request_id}, {"attempts": 1, "made_at": 1})
    if known is None or attempt in (known.get("attempts") or []):
        return  # a request this dispatcher never queued, or a record read twice
    change: dict[str, Any] = {"claimed_by": data.agent or source}
    if known.get("made_at") is None:
        change["made_at"] = at
    if data.outcome != "no_answer":
        change["status"] = "done"
    await callbacks.update_one({"_id": data.request_id}, {"$set": change, "$push": {"attempts": attempt}})
