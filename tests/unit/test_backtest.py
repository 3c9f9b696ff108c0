"""The back-test: recorded events through the engine's handlers and rules with a simulated clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.engine import backtest
from shared.rules import ContactPolicy, Rule
from shared.rules.builtin import BUILTIN, CHECKIN
from tests.factories import purchase_history as history

T0 = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)  # the history's start


def checkin(**changes: object) -> Rule:
    raw = next(r for r in BUILTIN if r["rule_id"] == CHECKIN)
    return Rule.model_validate({**raw, "version": 2, **changes})


def test_a_delay_fires_in_simulated_time_and_exits_and_guards_are_counted() -> None:
    found = backtest.run(checkin(), [], ContactPolicy(), history(), until=T0 + timedelta(days=10))
    assert found["messages"] + found["held_out"] == 14  # 20 customers, 4 returned, 2 without consent
    assert found["customers"] == found["messages"]
    assert sum(found["suppressed_by_guard"].values()) == 2
    assert found["outcomes"]["cancelled"] == 4
    day = (T0 + timedelta(days=5)).date().isoformat()  # delivered on day 2, three days later
    assert set(found["by_day"]) == {day}
    assert found["pending_timers"] == 0
    assert found["warnings"] == []


def test_a_shorter_delay_reaches_the_customers_before_they_return_the_order() -> None:
    found = backtest.run(
        checkin(triggers=[{"kind": "delay", "after": "order.delivered", "delay": "PT12H"}]),
        [],
        ContactPolicy(),
        history(),
        until=T0 + timedelta(days=10),
    )
    assert found["messages"] + found["held_out"] == 18  # the returns come a day after delivery: too late to exit
    # due at 20:00 UTC, 22:00 in Warsaw: inside the quiet hours, so sent the next morning
    assert found["outcomes"]["deferred"] == 18
    assert set(found["by_day"]) == {(T0 + timedelta(days=3)).date().isoformat()}


def test_timers_still_pending_when_the_history_ends_are_reported_not_fired() -> None:
    found = backtest.run(checkin(), [], ContactPolicy(), history())  # ends on day 5 at 08:00, before they are due
    assert found["messages"] == 0
    assert found["pending_timers"] == 16  # set for every delivery (consent is checked when they fire); 4 exited


def test_a_disabled_draft_is_back_tested_and_a_score_rule_is_warned_about() -> None:
    found = backtest.run(checkin(enabled=False), [], ContactPolicy(), history(), until=T0 + timedelta(days=10))
    assert found["messages"] + found["held_out"] == 14
    winback = Rule.model_validate({**next(r for r in BUILTIN if r["rule_id"] == "churn-winback"), "version": 1})
    assert backtest.run(winback, [], ContactPolicy(), history())["warnings"]
