"""Ratings: what customers answered to the check-in's CSAT and NPS links, per rule, channel and locale.

- **Asked**: delivered messages whose rule asked for a rating (a ``survey`` in the action's
  context), from the ``messages`` collection; held-out actions were never sent, so never asked.
- **Answers**: ``csat.submitted`` / ``nps.submitted`` from the projector's ``interactions``. A
  customer may click another score on the same message: the latest answer per message counts.
  Answers from the shop's own surveys (no ``action_id``) count under their rule, or ``-``.
- **Response rate**: messages with a CSAT answer / messages that asked.
- **CSAT**: the mean score (1-5) and the share of 4 and 5 ("satisfied"); **NPS**: promoters (9-10)
  minus detractors (0-6), in points (-100..100).
- **Trend**: the same per ISO week (UTC), oldest first.

Counted in Python over plain finds, as the overview is (FerretDB v1 does only part of the
aggregation language); the figures of a quarter of a mid-size shop's check-ins are few.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from services.admin.access import Viewer
from shared.store import Collections, as_time

router = APIRouter(prefix="/v1", tags=["results"])
MAX_COMMENTS = 20


def _at(answer: dict[str, Any]) -> datetime:
    """When an answer was given (the earliest time for one without: it sorts first)."""
    return as_time(answer.get("at")) or datetime.min.replace(tzinfo=UTC)


def latest_answers(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One answer per message and survey, the latest (answers without a message are each their own)."""
    by_message: dict[tuple[str, str], dict[str, Any]] = {}
    for answer in sorted(answers, key=_at):
        key = (str(answer.get("type")), str(answer.get("action_id") or answer["_id"]))
        comment = answer.get("comment") or by_message.get(key, {}).get("comment")
        by_message[key] = {**answer, "comment": comment}
    return list(by_message.values())


def _figures(asked: int, csat: list[int], nps: list[int]) -> dict[str, Any]:
    promoters = sum(1 for s in nps if s >= 9)
    detractors = sum(1 for s in nps if s <= 6)
    return {
        "asked": asked,
        "csat_answers": len(csat),
        "nps_answers": len(nps),
        "response_rate": len(csat) / asked if asked else None,
        "csat": sum(csat) / len(csat) if csat else None,
        "satisfied": sum(1 for s in csat if s >= 4) / len(csat) if csat else None,
        "nps": round(100 * (promoters - detractors) / len(nps), 1) if nps else None,
    }


def _week(at: datetime) -> str:
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"


def tally(messages: list[dict[str, Any]], answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratings figures of these asked messages and answers, per rule, channel and locale, with
    each group's weekly trend; the overall figures; the latest comments."""
    Key = tuple[str, str, str]
    asked: dict[Key, int] = defaultdict(int)
    scores: dict[Key, dict[str, list[int]]] = defaultdict(lambda: {"csat": [], "nps": []})
    weekly: dict[Key, dict[str, dict[str, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: {"csat": [], "nps": [], "asked": []})
    )
    for message in messages:
        key = (str(message.get("rule_id")), str(message.get("channel")), str(message.get("locale") or "-"))
        asked[key] += 1
        if (at := as_time(message.get("created_at"))) is not None:
            weekly[key][_week(at)]["asked"].append(1)
    latest = latest_answers(answers)
    for answer in latest:
        key = (str(answer.get("rule_id") or "-"), str(answer.get("channel") or "-"), str(answer.get("locale") or "-"))
        survey = "csat" if answer.get("type") == "csat.submitted" else "nps"
        if isinstance(answer.get("score"), int):
            scores[key][survey].append(answer["score"])
            if (at := as_time(answer.get("at"))) is not None:
                weekly[key][_week(at)][survey].append(answer["score"])
    groups = []
    for key in sorted(set(asked) | set(scores)):
        rule_id, channel, locale = key
        trend = [
            {"week": week, **_figures(len(w["asked"]), w["csat"], w["nps"])} for week, w in sorted(weekly[key].items())
        ]
        groups.append(
            {
                "rule_id": rule_id,
                "channel": channel,
                "locale": locale,
                **_figures(asked[key], scores[key]["csat"], scores[key]["nps"]),
                "trend": trend,
            }
        )
    everything_csat = [s for k in scores for s in scores[k]["csat"]]
    everything_nps = [s for k in scores for s in scores[k]["nps"]]
    commented = sorted(
        (a for a in latest if a.get("comment")),
        key=_at,
        reverse=True,
    )
    return {
        "overall": _figures(sum(asked.values()), everything_csat, everything_nps),
        "groups": groups,
        "comments": [
            {
                "at": _at(a).isoformat(),
                "survey": "csat" if a.get("type") == "csat.submitted" else "nps",
                "score": a.get("score"),
                "rule_id": a.get("rule_id"),
                "locale": a.get("locale"),
                "comment": a["comment"],
            }
            for a in commented[:MAX_COMMENTS]
        ],
    }


@router.get("/ratings")
async def ratings(
    request: Request, _: Viewer, days: Annotated[int, Query(ge=1, le=366, description="the last N days")] = 90
) -> dict[str, Any]:
    """Asked, answered, response rate, CSAT, NPS and their weekly trend per rule, channel and locale."""
    db = request.app.state.db
    since = datetime.now(UTC) - timedelta(days=days)
    fields = {"rule_id": 1, "channel": 1, "locale": 1, "created_at": 1, "context": 1, "holdout": 1}
    messages = [
        m
        async for m in db[Collections.MESSAGES].find({"created_at": {"$gte": since}, "status": "delivered"}, fields)
        if (m.get("context") or {}).get("survey") and not m.get("holdout")
    ]
    query = {"type": {"$in": ["csat.submitted", "nps.submitted"]}, "at": {"$gte": since}}
    answers = [a async for a in db[Collections.INTERACTIONS].find(query)]
    return {"since": since.isoformat(), **tally(messages, answers)}
