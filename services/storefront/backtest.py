"""A pop-up rule's back-test: recorded browsing replayed through the storefront's own decision path.

The storefront decides pop-ups live, when the widget asks; nothing of those calls is recorded but
their results. So the back-test rebuilds each session from the recorded browsing events, with the
same session definition (``shared.sessions``), and asks the storefront's ``Decider`` after each of
the session's events, at that event's time, as a widget that asks at every page and heartbeat
would: with the intent model in force (and the page statistics promoted with it), the rule tested
among the pop-up rules in force, their guards, the one-offer-per-session rule and the visitor
cool-down. The first offer a session gets is counted, as the widget would show it.

Not seen in a back-test: the churn score of a known customer behind a visitor (``scores.churn`` is
null here, as for an anonymous visitor), and pop-up outcomes (shown, accepted) that the recorded
visitors gave to the offers of the time. Nothing is published and nothing is stored but the result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from services.storefront.decide import Decider
from shared import sessions
from shared.contract import Event
from shared.contract import events as ev
from shared.models.registry import ModelHandle
from shared.rules import ContactPolicy, Rule, RuleSet

SAMPLES_KEPT = 50


def run(
    rule: Rule,
    in_force: Iterable[Rule],
    policy: ContactPolicy,
    events: Iterable[Event],
    intent_model: ModelHandle | None,
    cooldown: timedelta = timedelta(hours=1),
    until: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Replay the browsing among ``events`` (in time order) and say what pop-up ``rule`` would have done."""
    tested = rule.model_copy(update={"enabled": True})
    others = [r for r in in_force if r.rule_id != rule.rule_id and any(t.kind == "session" for t in r.triggers)]
    store = sessions.MemoryStore()
    decider = Decider(store, intent_model, cooldown, budget_ms=float("inf"))
    decider.replace_rules(RuleSet([*others, tested], policy))
    offers = held_out = count = 0
    first = last = None
    by_day: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    suppressed: Counter[str] = Counter()
    sessions_seen: set[str] = set()
    offered: set[str] = set()
    samples: list[dict[str, Any]] = []
    for event in events:
        if until is not None and event.time >= until:
            break
        data = event.data
        if not isinstance(data, ev.BrowsingData):
            continue
        count += 1
        first, last = first or event.time, event.time
        sessions.apply(store, event)
        sessions_seen.add(data.session_id)
        answer = decider.decide(data.visitor_id, data.session_id, None, event.time)
        for decision in answer.decisions:
            if decision["rule_id"] != rule.rule_id:
                continue
            outcomes[decision["outcome"]] += 1
            if decision["outcome"] == "suppressed":
                suppressed[decision.get("guard") or "unknown"] += 1
        if answer.rule_id == rule.rule_id and (answer.show or answer.holdout):
            if answer.holdout:
                held_out += 1
                continue
            offers += 1
            offered.add(data.visitor_id)
            by_day[event.time.date().isoformat()] += 1
            if len(samples) < SAMPLES_KEPT:
                samples.append({"customer_id": data.visitor_id, "at": event.time_iso, "channel": "popup"})
        if progress is not None and count % 1000 == 0:
            progress(count)
    return {
        "rule_id": rule.rule_id,
        "rule_version": rule.version,
        "events": count,
        "from": first.isoformat() if first else None,
        "to": last.isoformat() if last else None,
        "messages": offers,
        "customers": len(offered),  # visitors offered a pop-up
        "sessions": len(sessions_seen),
        "held_out": held_out,
        "by_day": dict(sorted(by_day.items())),
        "by_channel": {"popup": offers} if offers else {},
        "outcomes": dict(outcomes),
        "suppressed_by_guard": dict(suppressed.most_common()),
        "pending_timers": 0,
        "samples": samples,
        "failed_events": {},
        "warnings": []
        if intent_model is not None and intent_model.current() is not None
        else ["no intent model is promoted: scores.intent is null in this back-test"],
    }
