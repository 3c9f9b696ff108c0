"""The overview, the admin's landing page: what proact did today and in the last 7 days.

Messages sent (delivered), failed and held out, and rule decisions suppressed by a guard, per rule
and channel; pop-ups shown and accepted and callbacks requested (the projector's ``interactions``);
dead letters per topic (counted from Kafka's offsets). Days are UTC days; "today" is the current
one, "week" the last 7 including today.

Counted here in Python over plain finds rather than with ``$group`` pipelines: FerretDB v1 does
only part of the aggregation language, and the documents of a week (a projection of four fields
each) are few enough to count in the admin. ``tests/integration/test_admin_overview.py`` checks
every figure against counts made independently from the documents it wrote.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from services.admin.access import Viewer
from services.admin.dead_letters import day_boundaries, dead_letter_counts
from shared.store import Collections, as_time

router = APIRouter(prefix="/v1", tags=["overview"])
MESSAGE_FIGURES = ("sent", "failed", "held_out", "suppressed")
INTERACTIONS = {"popup.shown": "popups_shown", "popup.accepted": "popups_accepted", "callback.requested": "callbacks"}


@router.get("/overview")
async def overview(request: Request, _: Viewer, days: Annotated[int, Query(ge=1, le=31)] = 7) -> dict[str, Any]:
    """Today's and the last ``days`` days' figures, per day, and per rule and channel."""
    db = request.app.state.db
    now = datetime.now(UTC)
    starts = day_boundaries(now, days)
    first = starts[0]
    labels = [d.date().isoformat() for d in starts]

    def day_of(at: datetime | None) -> int | None:
        if at is None or at < first or at > now:
            return None
        return min((at - first).days, days - 1)

    series: dict[str, list[int]] = defaultdict(lambda: [0] * days)
    per_rule: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(
        lambda: {f: [0] * days for f in MESSAGE_FIGURES}
    )
    fields = {"rule_id": 1, "channel": 1, "status": 1, "holdout": 1, "created_at": 1}
    async for m in db[Collections.MESSAGES].find({"created_at": {"$gte": first}}, fields):
        day = day_of(as_time(m.get("created_at")))
        if day is None:
            continue
        figure = (
            "held_out"
            if m.get("holdout") or m.get("status") == "holdout"
            else {
                "delivered": "sent",
                "failed": "failed",
            }.get(m.get("status", ""))
        )
        if figure:
            series[figure][day] += 1
            per_rule[(m.get("rule_id", "?"), m.get("channel", "?"))][figure][day] += 1
    decision_fields = {"rule_id": 1, "channel": 1, "at": 1, "guard": 1}
    async for d in db[Collections.DECISIONS].find(
        {"outcome": "suppressed", "at": {"$gte": first.isoformat()}}, decision_fields
    ):
        day = day_of(as_time(d.get("at")))
        if day is None:
            continue
        series["suppressed"][day] += 1
        per_rule[(d.get("rule_id", "?"), d.get("channel") or "any")]["suppressed"][day] += 1
    async for i in db[Collections.INTERACTIONS].find({"at": {"$gte": first}}, {"type": 1, "at": 1}):
        day = day_of(as_time(i.get("at")))
        figure = INTERACTIONS.get(i.get("type", ""))
        if day is not None and figure:
            series[figure][day] += 1
    dead_by_topic = await dead_letter_counts(request.app.state.settings, starts)
    series["dead_letters"] = [sum(counts[i] for counts in dead_by_topic.values()) for i in range(days)]
    names = (*MESSAGE_FIGURES, *INTERACTIONS.values(), "dead_letters")
    full = {name: series[name] for name in names}
    return {
        "generated_at": now.isoformat(),
        "days": labels,
        "series": full,
        "today": {name: values[-1] for name, values in full.items()},
        "week": {name: sum(values) for name, values in full.items()},
        "by_rule_channel": [
            {
                "rule_id": rule_id,
                "channel": channel,
                "today": {f: counts[f][-1] for f in MESSAGE_FIGURES},
                "week": {f: sum(counts[f]) for f in MESSAGE_FIGURES},
            }
            for (rule_id, channel), counts in sorted(per_rule.items())
        ],
        "dead_letters_by_topic": {
            topic: {"today": counts[-1], "week": sum(counts)} for topic, counts in sorted(dead_by_topic.items())
        },
    }
