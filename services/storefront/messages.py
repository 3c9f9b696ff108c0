"""What customers do with the messages proact sent them: read their in-app inbox, unsubscribe.

**Inbox** (``GET /v1/inbox``, ``POST /v1/inbox/{id}/read``): the dispatcher stores in-app messages in
MongoDB; the shop's page shows them to the signed-in customer. The page proves who that is with
``X-Proact-Identity``, the customer id signed by the shop's back end with
``PROACT_STOREFRONT_IDENTITY_SECRET`` (``shared.signing.identity_signature``): a visitor cannot read
another customer's inbox by changing an id. The first read of a message is reported as
``message.opened`` on ``proact.outcomes``.

**Unsubscribe** (``GET|POST /unsubscribe?token=…``): the link every e-mail carries. ``GET`` shows a
confirmation page and changes nothing (mail scanners open links); ``POST`` sets the consent off,
whether from that page's button or from a mail client's RFC 8058 one-click request. The change is a
``customer.upserted`` on ``proact.customers`` with that channel's consent off and the others as the
engine's projection last knew them, so the engine, the dispatcher and the shop's own systems all
hear of it. The shop's system of record should consume it too: a later ``customer.upserted`` from the
shop with the consent on would switch it back on.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.storefront.publisher import Publisher
from shared import signing, templates
from shared.contract import events as ev
from shared.contract import new_event
from shared.store import Collections, Document

log = logging.getLogger(__name__)
router = APIRouter()
SOURCE = "proact/storefront"
INBOX_LIMIT = 50
CUSTOMER_ID = Query(min_length=1, max_length=200, description="the signed-in customer")
IDENTITY = Header(
    alias="X-Proact-Identity",
    min_length=64,
    max_length=64,
    description="HMAC-SHA256 of the customer id with the identity secret, hex (computed by the shop's back end)",
)


class InboxMessage(BaseModel):
    id: str
    title: str
    text: str
    locale: str
    created_at: datetime
    read: bool


class Inbox(BaseModel):
    messages: list[InboxMessage]
    unread: int


async def database(request: Request) -> AsyncDatabase[Document]:
    db: AsyncDatabase[Document] = request.app.state.db
    return db


def signed_in(request: Request, customer_id: str, identity: str) -> str:
    secret = request.app.state.settings.identity_secret
    if secret is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the in-app inbox is not configured on this storefront")
    if not signing.identity_holds(secret.get_secret_value(), customer_id, identity):
        problem = {"detail": "the identity does not match the customer", "field": "X-Proact-Identity"}
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, problem)
    return customer_id


@router.get("/v1/inbox", response_model=Inbox, responses={401: {"description": "the identity signature is wrong"}})
async def inbox(
    request: Request,
    db: Annotated[AsyncDatabase[Document], Depends(database)],
    customer_id: Annotated[str, CUSTOMER_ID],
    identity: Annotated[str, IDENTITY],
) -> Inbox:
    """The signed-in customer's in-app messages, newest first (at most 50)."""
    signed_in(request, customer_id, identity)
    docs = db[Collections.INBOX].find({"customer_id": customer_id}).sort("created_at", DESCENDING).limit(INBOX_LIMIT)
    items = [
        InboxMessage(
            id=d["_id"],
            title=d["title"],
            text=d["text"],
            locale=d["locale"],
            created_at=d["created_at"].replace(tzinfo=UTC),
            read=d["read_at"] is not None,
        )
        async for d in docs
    ]  # stored in UTC; the driver returns naive datetimes
    return Inbox(messages=items, unread=sum(not m.read for m in items))


@router.post(
    "/v1/inbox/{message_id}/read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={401: {"description": "the identity signature is wrong"}, 404: {"description": "no such message"}},
)
async def read(
    request: Request,
    db: Annotated[AsyncDatabase[Document], Depends(database)],
    message_id: Annotated[str, Path(min_length=1, max_length=300)],
    customer_id: Annotated[str, CUSTOMER_ID],
    identity: Annotated[str, IDENTITY],
) -> None:
    """Mark a message read; the first read is reported as ``message.opened``."""
    signed_in(request, customer_id, identity)
    now = datetime.now(UTC)
    item = await db[Collections.INBOX].find_one_and_update(
        {"_id": message_id, "customer_id": customer_id, "read_at": None}, {"$set": {"read_at": now}}
    )
    if item is None:
        if await db[Collections.INBOX].count_documents({"_id": message_id, "customer_id": customer_id}) == 0:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such message in this inbox")
        return  # read before: nothing new to report
    opened = ev.Outcome(
        action_id=item["action_id"],
        rule_id=item["rule_id"],
        customer_id=customer_id,
        channel="inapp",
        detail={"via": "inbox"},
    )
    pub: Publisher = request.app.state.publisher
    await pub.publish_all([new_event("message.opened", customer_id, opened, source=SOURCE, time=now)])


# --- unsubscribe ----------------------------------------------------------------------------------
def _token(request: Request, token: str) -> tuple[str, str]:
    secret = request.app.state.settings.unsubscribe_secret
    found = signing.read_unsubscribe_token(secret.get_secret_value(), token) if secret is not None else None
    if found is None:
        problem = {"detail": "this unsubscribe link is not valid", "field": "token"}
        raise HTTPException(status.HTTP_400_BAD_REQUEST, problem)
    return found


def page(lang: str | None, body: str, title: str) -> HTMLResponse:
    language = html.escape(templates.locale_chain(lang)[0])
    return HTMLResponse(
        f"""<!doctype html><html lang="{language}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">
<title>{title}</title></head>
<body style="font:16px/1.5 sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem">
<main><h1>{title}</h1>{body}</main></body></html>""",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


TOKEN = Query(min_length=10, max_length=2000)
LANG = Query(max_length=35, pattern=r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$")


@router.get("/unsubscribe", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe_page(
    request: Request, token: Annotated[str, TOKEN], lang: Annotated[str | None, LANG] = None
) -> HTMLResponse:
    """The confirmation page the link opens; it changes nothing by itself."""
    _, channel = _token(request, token)
    _, text = request.app.state.templates.render("unsubscribe", lang, {"channel": channel})
    form = (
        f'<p>{text["question"]}</p><form method="post"><button type="submit" '
        f'style="font:inherit;padding:.5rem 1rem">{text["button"]}</button></form>'
    )
    return page(lang, form, text["title"])


@router.post(
    "/unsubscribe",
    response_class=HTMLResponse,
    responses={400: {"description": "the link is malformed or not signed by this shop"}},
)
async def unsubscribe(
    request: Request,
    db: Annotated[AsyncDatabase[Document], Depends(database)],
    token: Annotated[str, TOKEN],
    lang: Annotated[str | None, LANG] = None,
) -> HTMLResponse:
    """Set the consent for the link's channel off (RFC 8058 one-click, or the confirmation page's
    button): a ``customer.upserted`` with that consent off and the others unchanged."""
    customer_id, channel = _token(request, token)
    known = await db[Collections.CUSTOMERS].find_one({"_id": customer_id}, {"consents": 1}) or {}
    consents = {**(known.get("consents") or {}), channel: False}
    data = ev.CustomerUpserted(
        customer_id=customer_id, consents=ev.Consents(**consents), attributes={"consent_changed_by": "unsubscribe-link"}
    )
    pub: Publisher = request.app.state.publisher
    await pub.publish_all([new_event("customer.upserted", customer_id, data, source=SOURCE)])
    log.info("unsubscribed", extra={"customer_id": customer_id, "channel": channel})
    _, text = request.app.state.templates.render("unsubscribe", lang, {"channel": channel})
    return page(lang, f"<p>{text['done']}</p>", text["title"])
