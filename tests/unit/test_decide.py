"""The decision call on an in-memory session view: when the lingering-visitor pop-up shows, when it
must not, and that every fault gives a quick "no"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.storefront.decide import Decider
from services.storefront.limits import RateLimit
from services.storefront.session_view import SessionView
from shared.contract.events import DecisionRecord
from shared.models.registry import ModelHandle, Registry
from shared.rules import Rule, RuleSet
from shared.rules.builtin import BUILTIN, LINGERING
from shared.rules.guards import in_holdout
from shared.templates import locale_chain, render
from tests.factories import event

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def lingering(**guards: Any) -> Rule:
    raw = next(r for r in BUILTIN if r["rule_id"] == LINGERING)
    # a threshold of minutes instead of the learned 3,100 s, and any intent, so the tests stay small
    conditions = [{"expr": "session.duration_s > 600.0"}, *raw["conditions"][2:]]
    return Rule.model_validate({**raw, "conditions": conditions, "guards": {**raw["guards"], **guards}})


def visit(view: SessionView, visitor: str, session: str, minutes: float, *, checkout: bool = False) -> None:
    start = NOW - timedelta(minutes=minutes)
    base = {"subject": visitor, "visitor_id": visitor, "session_id": session}
    view.apply(event("session.started", time=start, customer_id=None, **base))
    for i in range(6):
        view.apply(event("page.viewed", time=start + timedelta(minutes=i), url=f"/p/{i}", duration_s=50, **base))
    if checkout:
        view.apply(event("checkout.started", time=NOW, **base))


@pytest.fixture
def decider(model_registry: Path) -> Decider:
    d = Decider(SessionView(), ModelHandle(Registry(model_registry), "intent"), timedelta(hours=1), budget_ms=50)
    d.replace_rules(RuleSet([lingering()]))
    return d


def test_a_lingering_visitor_is_offered_a_callback_in_their_language_once(decider: Decider) -> None:
    visit(decider.view, "v-1", "s-1", minutes=30)
    answer = decider.decide("v-1", "s-1", "pl-PL", NOW)
    assert answer.show, answer.reason
    assert answer.popup is not None
    assert (answer.popup["locale"], answer.popup["title"]) == ("pl", "Możemy pomóc?")
    assert [d["outcome"] for d in answer.decisions] == ["fired"]
    for record in answer.decisions:  # the decision log's published type, as the engine's records
        DecisionRecord.model_validate(record)
    again = decider.decide("v-1", "s-1", "pl-PL", NOW + timedelta(seconds=5))
    assert not again.show
    assert "already offered" in again.reason
    visit(decider.view, "v-1", "s-2", minutes=30)  # a new session of the same visitor, inside the cool-down
    assert "cool-down" in decider.decide("v-1", "s-2", None, NOW + timedelta(minutes=10)).reason


def test_no_popup_for_a_short_visit_checkout_or_an_unknown_session(decider: Decider) -> None:
    visit(decider.view, "v-2", "s-short", minutes=3)
    short = decider.decide("v-2", "s-short", "en", NOW)
    assert not short.show
    assert "condition not met: session.duration_s > 600.0" in short.reason
    visit(decider.view, "v-3", "s-buy", minutes=40, checkout=True)
    assert "not in checkout" in decider.decide("v-3", "s-buy", "en", NOW).reason
    assert decider.decide("v-4", "s-none", "en", NOW).reason == "unknown session"
    visit(decider.view, "v-5", "s-5", minutes=40)
    assert decider.decide("v-other", "s-5", "en", NOW).reason == "unknown session"  # not someone else's session


def test_a_holdout_visitor_is_recorded_and_not_shown(decider: Decider) -> None:
    decider.replace_rules(RuleSet([lingering(holdout_pct=50)]))
    visitor = next(f"v-{i}" for i in range(1000) if in_holdout(LINGERING, f"v-{i}", 50))
    visit(decider.view, visitor, "s-h", minutes=30)
    answer = decider.decide(visitor, "s-h", "en", NOW)
    assert (answer.show, answer.holdout) == (False, True)
    assert [d["outcome"] for d in answer.decisions] == ["holdout"]


def test_every_fault_is_a_quick_no(decider: Decider, monkeypatch: pytest.MonkeyPatch) -> None:
    visit(decider.view, "v-6", "s-6", minutes=30)
    fresh = Decider(decider.view, None, timedelta(hours=1), budget_ms=50)
    assert fresh.decide("v-6", "s-6", "en", NOW).reason == "fail-safe: rules not loaded yet"

    def broken(*_: object) -> None:
        raise RuntimeError("view corrupted")

    monkeypatch.setattr(decider.view, "get", broken)
    answer = decider.decide("v-6", "s-6", "en", NOW)
    assert (answer.show, answer.reason) == (False, "fail-safe: RuntimeError")
    monkeypatch.undo()
    slow = Decider(decider.view, decider.intent_model, timedelta(hours=1), budget_ms=0.000001)
    slow.replace_rules(RuleSet([lingering()]))
    assert slow.decide("v-6", "s-6", "en", NOW).reason == "fail-safe: over the time budget"


def test_templates_fall_back_by_language_and_escape_values() -> None:
    assert locale_chain("pt-BR") == ["pt-BR", "pt", "en"]
    assert render("callback_offer", "lt-LT", {})[0] == "lt"
    assert render("callback_offer", "ja-JP", {})[0] == "en"


def test_rate_limit_counts_in_a_sliding_window() -> None:
    limit = RateLimit(3, window_s=60)
    assert [limit.allow("v", now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limit.retry_after("v", now=3) == 58
    assert limit.allow("v", now=61)  # the first hit left the window


def test_a_known_customers_pop_up_meets_the_contact_policy_after_an_email(model_registry: Path) -> None:
    """The visitor is a known customer who had an e-mail two hours ago: the offer is held back by the
    policy's cool-down and the decision log says so; the same visit of an anonymous visitor gets it."""
    from services.storefront.churn import ChurnScores

    churn = ChurnScores(None)
    emailed = {"rule_id": "delay-notice", "at": (NOW - timedelta(hours=2)).isoformat(), "channel": "email"}
    churn.remember("c-7", {"contacts": [emailed]})  # what the projection holds for the customer, as read
    decider = Decider(
        SessionView(), ModelHandle(Registry(model_registry), "intent"), timedelta(hours=1), 50, churn=churn
    )
    decider.replace_rules(RuleSet([lingering()]))
    visit(decider.view, "v-7", "s-7", minutes=30)
    visit(decider.view, "v-8", "s-8", minutes=30)
    decider.view.apply(
        event("session.started", subject="v-7", time=NOW, visitor_id="v-7", session_id="s-7", customer_id="c-7")
    )
    held = decider.decide("v-7", "s-7", "en", NOW)
    assert not held.show
    (record,) = held.decisions
    assert (record["outcome"], record["guard"], record["customer_id"]) == ("suppressed", "cooldown", "c-7")
    assert "cool-down" in record["why"]
    assert decider.decide("v-8", "s-8", "en", NOW).show  # anonymous: only their own pop-ups count
