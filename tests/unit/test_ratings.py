"""The ratings a check-in's links record: the storefront's answers to bad links, the dispatcher's
links, and the admin's figures (the latest answer per message, CSAT, NPS, response rate)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.admin.ratings import tally
from services.dispatcher.channels import RatingLinks
from services.storefront.ratings import router
from shared import signing, templates
from shared.contract import Event
from shared.settings import StorefrontSettings

SECRET = "links-secret-for-tests"  # noqa: S105 - a test value
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


class Published:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish_all(self, events: list[Event]) -> None:
        self.events += events


def storefront() -> tuple[TestClient, Published]:
    app = FastAPI()
    app.include_router(router)
    app.state.settings = StorefrontSettings(unsubscribe_secret=SecretStr(SECRET))
    app.state.templates = templates.InForce()
    app.state.publisher = published = Published()
    return TestClient(app), published


def token(survey: str = "csat", expires: int | None = None, locale: str = "lt-LT") -> str:
    rating = signing.Rating(
        survey, "a-1", "c-1", "post-purchase-checkin", "email", locale, "o-1", expires or int(time.time()) + 60
    )  # type: ignore[arg-type]
    return signing.rating_token(SECRET, rating)


def test_bad_expired_and_out_of_range_ratings_are_refused_and_record_nothing() -> None:
    http, published = storefront()
    assert http.get("/ratings", params={"token": "forged" * 5, "score": 3}).status_code == 400
    expired = http.post("/ratings", data={"token": token(expires=int(time.time()) - 1), "score": 3})
    assert expired.status_code == 410
    assert "nebegalioja" in expired.text
    assert http.post("/ratings", data={"token": token(), "score": 6}).status_code == 422
    assert http.post("/ratings", data={"token": token("nps"), "score": 11}).status_code == 422
    assert http.post("/ratings", data={"token": token(), "score": 5, "comment": "x" * 2001}).status_code == 422
    assert published.events == []
    page = http.get("/ratings", params={"token": token(), "score": 4})
    assert page.status_code == 200
    assert "4 iš 5" in page.text
    assert published.events == []


def test_the_same_answer_is_one_event_and_another_score_or_a_comment_a_new_one() -> None:
    http, published = storefront()
    for score, comment in ((4, None), (4, None), (2, None), (2, "Per ilgai")):
        data = {"token": token(), "score": score, **({"comment": comment} if comment else {})}
        assert http.post("/ratings", data=data, headers={"Accept": "application/json"}).status_code == 204
    ids = [e.id for e in published.events]
    assert ids[0] == ids[1]
    assert len(set(ids)) == 3
    last = published.events[-1].data.model_dump()
    assert (last["score"], last["comment"], last["action_id"], last["locale"]) == (2, "Per ilgai", "a-1", "lt-LT")
    assert published.events[0].type == "csat.submitted"
    assert published.events[0].subject == "c-1"


def test_a_message_gets_the_links_its_rule_asks_for() -> None:
    links = RatingLinks("https://shop.example", SECRET, timedelta(days=30))
    message: dict[str, Any] = {"action_id": "a-1", "customer_id": "c-1", "rule_id": "r", "channel": "inapp"}
    assert links.add({**message, "context": {"order_id": "o-1"}}, NOW) == {"order_id": "o-1"}
    both = links.add({**message, "context": {"survey": "csat nps"}}, NOW)
    assert [link["score"] for link in both["csat_links"]] == [1, 2, 3, 4, 5]
    assert [link["score"] for link in both["nps_links"]] == list(range(11))
    query = parse_qs(urlsplit(both["nps_links"][10]["url"]).query)
    rating = signing.read_rating_token(SECRET, query["token"][0])
    assert rating is not None
    assert (rating.survey, rating.action_id, query["score"]) == ("nps", "a-1", ["10"])
    assert rating.expires == int((NOW + timedelta(days=30)).timestamp())


def test_the_latest_answer_per_message_counts_and_nps_is_promoters_minus_detractors() -> None:
    def sent(i: int, locale: str = "pl") -> dict[str, Any]:
        return {"rule_id": "r", "channel": "email", "locale": locale, "created_at": NOW}

    def answer(n: int, kind: str, score: int, action: str, minutes: int, comment: str | None = None) -> dict[str, Any]:
        at = NOW + timedelta(minutes=minutes)
        return {
            "_id": f"e{n}",
            "type": f"{kind}.submitted",
            "score": score,
            "action_id": action,
            "at": at,
            "rule_id": "r",
            "channel": "email",
            "locale": "pl",
            "comment": comment,
        }

    answers = [
        answer(1, "csat", 5, "a1", 1),
        answer(2, "csat", 2, "a1", 2),  # changed their mind: 2 counts
        answer(3, "csat", 2, "a1", 3, "late"),  # the comment on the same answer
        answer(4, "csat", 4, "a2", 1),
        answer(5, "nps", 10, "a1", 1),
        answer(6, "nps", 9, "a2", 1),
        answer(7, "nps", 3, "a3", 1),
    ]
    figures = tally([sent(i) for i in range(4)] + [sent(9, "en")], answers)
    (pl,) = [g for g in figures["groups"] if g["locale"] == "pl"]
    assert (pl["asked"], pl["csat_answers"], pl["response_rate"], pl["csat"], pl["satisfied"]) == (4, 2, 0.5, 3.0, 0.5)
    assert pl["nps"] == round(100 * (2 - 1) / 3, 1)
    assert figures["overall"]["asked"] == 5
    assert figures["overall"]["csat_answers"] == 2
    assert [c["comment"] for c in figures["comments"]] == ["late"]
