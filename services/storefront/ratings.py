"""Ratings: the one-click CSAT (1-5) and NPS (0-10) links a check-in carries.

A link is ``/ratings?token=…&score=N``: the token, signed by the dispatcher with the links' secret
(``shared.signing.Rating``), names the message, its customer, rule, channel and locale, and expires;
the score is the customer's choice.

- ``GET /ratings`` shows the thank-you page in the message's locale, with an optional comment box,
  and the page records the score by posting it back at once. A ``GET`` itself changes nothing: mail
  scanners open every link of a message, and five scores "clicked" by a scanner would be noise.
  Without JavaScript the page shows a button that records it.
- ``POST /ratings`` (a form: ``token``, ``score``, optional ``comment``) records the answer as
  ``csat.submitted`` / ``nps.submitted`` on ``proact.support``. The event's id is made from the
  message, the score and the comment, so the same click twice is one answer (the engine and the
  projector drop the copy), while another score on the same message is a new answer that replaces
  the first (the engine keeps one answer per message; the admin's results count the latest).

A bad or forged token answers 400, an expired one 410, a score outside the survey's range 422, each
with a page that says so.
"""

from __future__ import annotations

import hashlib
import html
import logging
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse

from services.storefront.messages import LANG, TOKEN, page
from services.storefront.publisher import Publisher
from shared import signing
from shared.contract import events as ev
from shared.contract import new_event

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=True, tags=["ratings"])
SOURCE = "proact/storefront"
SCALES = {"csat": (1, 5), "nps": (0, 10)}
_NAMESPACE = uuid.UUID("3c1f2a9e-5b7d-4e61-8f0a-2d4c6b8e1a37")
SCORE = Query(ge=0, le=10)
MAX_COMMENT = 2000


class RatingRefused(Exception):
    def __init__(self, status: int, key: str, lang: str | None) -> None:
        self.status, self.key, self.lang = status, key, lang


def _rating(request: Request, token: str, score: int) -> signing.Rating:
    secret = request.app.state.settings.unsubscribe_secret
    rating = signing.read_rating_token(secret.get_secret_value(), token) if secret is not None else None
    if rating is None:
        raise RatingRefused(400, "invalid", None)
    if rating.expires < time.time():
        raise RatingRefused(410, "expired", rating.locale)
    low, high = SCALES[rating.survey]
    if not low <= score <= high:
        raise RatingRefused(422, "invalid", rating.locale)
    return rating


def _texts(request: Request, lang: str | None, values: dict[str, Any]) -> dict[str, str]:
    return request.app.state.templates.render("rating", lang, values)[1]  # type: ignore[no-any-return]


def _refused(request: Request, refused: RatingRefused) -> HTMLResponse:
    texts = _texts(request, refused.lang, {"score": 0, "out_of": 0})
    body = texts["expired"] if refused.key == "expired" else "This rating link is not valid."
    response = page(refused.lang, f"<p>{html.escape(body)}</p>", html.escape(texts["title"]))
    response.status_code = refused.status
    return response


def _form(texts: dict[str, str], token: str, score: int, comment_box: bool) -> str:
    hidden = (
        f'<input type="hidden" name="token" value="{html.escape(token)}">'
        f'<input type="hidden" name="score" value="{score}">'
    )
    if not comment_box:
        return (
            f'<noscript><form method="post" action="/ratings">{hidden}<button type="submit" '
            f'style="font:inherit;padding:.5rem 1rem">{html.escape(texts["confirm"])}</button></form></noscript>'
        )
    return (
        f'<form method="post" action="/ratings" id="comment">{hidden}'
        f'<p><label for="comment-text">{html.escape(texts["comment"])}</label></p>'
        f'<p><textarea id="comment-text" name="comment" rows="4" maxlength="{MAX_COMMENT}" '
        f'style="width:100%;font:inherit"></textarea></p>'
        f'<p><button type="submit" style="font:inherit;padding:.5rem 1rem">{html.escape(texts["send"])}</button></p>'
        "</form>"
    )


@router.get("/ratings", response_class=HTMLResponse, include_in_schema=False)
async def rating_page(
    request: Request,
    token: Annotated[str, TOKEN],
    score: Annotated[int, SCORE],
    lang: Annotated[str | None, LANG] = None,
) -> HTMLResponse:
    """The thank-you page a rating link opens; its script records the score (a GET records nothing)."""
    try:
        rating = _rating(request, token, score)
    except RatingRefused as refused:
        return _refused(request, refused)
    locale = lang or rating.locale
    texts = _texts(request, locale, {"score": score, "out_of": SCALES[rating.survey][1]})
    record = (
        "<script>fetch('/ratings',{method:'POST',headers:{'Accept':'application/json'},"
        "body:new URLSearchParams(new FormData(document.getElementById('comment')))})"
        ".then(function(r){document.body.dataset.recorded=r.ok?'yes':'no';});</script>"
    )
    body = (
        f"<p>{html.escape(texts['rated'])}</p>"
        + _form(texts, token, score, comment_box=False)
        + _form(texts, token, score, comment_box=True)
        + record
    )
    return page(locale, body, html.escape(texts["title"]))


@router.post(
    "/ratings",
    response_class=HTMLResponse,
    responses={
        400: {"description": "the link is malformed or not signed by this shop"},
        410: {"description": "the link has expired"},
        422: {"description": "the score is outside the survey's scale"},
    },
)
async def record_rating(
    request: Request,
    token: Annotated[str, Form(min_length=10, max_length=2000)],
    score: Annotated[int, Form(ge=0, le=10)],
    comment: Annotated[str | None, Form(max_length=MAX_COMMENT)] = None,
) -> HTMLResponse:
    """Record an answer (and its comment) as ``csat.submitted`` or ``nps.submitted``; the same answer
    twice is one event."""
    try:
        rating = _rating(request, token, score)
    except RatingRefused as refused:
        return _refused(request, refused)
    comment = (comment or "").strip() or None
    digest = hashlib.sha256((comment or "").encode()).hexdigest()[:16]
    event_id = str(uuid.uuid5(_NAMESPACE, f"{rating.survey}:{rating.action_id}:{score}:{digest}"))
    fields: dict[str, Any] = {
        "customer_id": rating.customer_id,
        "score": score,
        "comment": comment,
        "action_id": rating.action_id,
        "rule_id": rating.rule_id,
        "channel": rating.channel,
        "locale": rating.locale,
    }
    data: ev.CsatSubmitted | ev.NpsSubmitted
    if rating.survey == "csat":
        data = ev.CsatSubmitted(**fields, order_id=rating.order_id)
    else:
        data = ev.NpsSubmitted(**fields)
    pub: Publisher = request.app.state.publisher
    await pub.publish_all(
        [new_event(f"{rating.survey}.submitted", rating.customer_id, data, source=SOURCE, id=event_id)]
    )
    log.info(
        "rating recorded",
        extra={"survey": rating.survey, "action_id": rating.action_id, "score": score, "commented": bool(comment)},
    )
    texts = _texts(request, rating.locale, {"score": score, "out_of": SCALES[rating.survey][1]})
    if "application/json" in request.headers.get("accept", ""):
        return HTMLResponse("", status_code=204)
    said = texts["kept"] if comment else texts["rated"]
    return page(rating.locale, f"<p>{html.escape(said)}</p>", html.escape(texts["title"]))
