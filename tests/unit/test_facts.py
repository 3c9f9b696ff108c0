"""One facts builder (shared.rules.facts): a rule sees the same variables in the engine, the
storefront, the dry run and the save-time check; the engine's rules see the session when the event
has one, with its computed fields and intent score."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.engine.runner import Evaluation, RuleBook, RuleRunner
from shared.engine.state import SESSION, PartitionState
from shared.rules import RuleSet, builtin_rules
from shared.rules.conditions import example_facts
from shared.rules.facts import build

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
KEYS = {"event", "customer", "order", "case", "session", "scores", "trigger", "now"}


def test_every_evaluator_gets_the_same_variables() -> None:
    assert set(example_facts()) == KEYS
    assert set(build(event={"type": "decide"}, trigger="session", now=NOW)) == KEYS


def test_the_engine_shows_a_rule_the_session_of_the_event() -> None:
    state = PartitionState(0)
    started = (NOW - timedelta(minutes=10)).isoformat()
    state.put(
        SESSION, "s-1", {"session_id": "s-1", "started_at": started, "pages": [{}, {}, {}], "intent": {"score": 0.7}}
    )
    rule = RuleSet(builtin_rules()).rules["post-purchase-checkin"]
    item = Evaluation(rule, "event", "c-1", {"type": "page.viewed", "data": {"session_id": "s-1"}}, "e-1")
    seen = RuleRunner(RuleBook())._facts(state, {"churn": {"score": 0.2}}, item, NOW)
    assert seen["session"]["page_count"] == 3
    assert seen["session"]["duration_s"] == 600.0
    assert seen["scores"] == {"churn": 0.2, "intent": 0.7}
