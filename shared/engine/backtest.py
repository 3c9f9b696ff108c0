"""A back-test: recorded events replayed through the engine's own handlers and rule runner with a
simulated clock, to see what a rule would have done before anyone publishes it.

The clock is the events' time: before each event, the timers due by then fire (at their due time),
so a three-day check-in delay fires three simulated days after the delivery, and quiet hours,
frequency caps and cool-downs see the times they would have seen. The rule is evaluated together
with the rules in force (a draft replaces the published version of its id), so arbitration and the
contact policy across rules count, as they would in production. Only the rule's own decisions are
reported.

Rules triggered by a score band are back-tested when the back-test is given the scorers (the
promoted models, ``shared.engine.scoring.Scorers``): customers are scored as the engine scores them,
after each event and, for a silent customer, when their churn refresh timer fires on the simulated
clock, so a win-back reaches in the back-test the customers whose risk grew with their silence.
Pop-up rules are decided by the storefront: the admin back-tests them through its decision path
(``services/storefront/backtest.py``); here the result warns of them.
Nothing is sent and nothing is stored but the result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from shared.contract import Event
from shared.contract import events as ev
from shared.engine.handlers import Scores, handle, timer_event
from shared.engine.runner import RuleBook, RuleRunner
from shared.engine.state import PartitionState
from shared.rules import ContactPolicy, Rule, RuleSet

SAMPLES_KEPT = 50


class Backtest:
    """Feed events in time order with :meth:`apply`, then :meth:`finish`; ``result()`` says what the
    rule would have done."""

    def __init__(
        self, rule: Rule, in_force: Iterable[Rule], policy: ContactPolicy, scorers: Scores | None = None
    ) -> None:
        self.rule = rule.model_copy(update={"enabled": True})
        self.scorers = scorers
        others = [r for r in in_force if r.rule_id != rule.rule_id]
        self.state = PartitionState(0)
        self.runner = RuleRunner(RuleBook(RuleSet([*others, self.rule], policy)))
        self.events = 0
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.messages = 0
        self.customers: set[str] = set()
        self.held_out = 0
        self.by_day: Counter[str] = Counter()
        self.by_channel: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.suppressed_by: Counter[str] = Counter()
        self.samples: list[dict[str, Any]] = []
        self.failed: Counter[str] = Counter()  # events the engine would have dead-lettered, by error

    def apply(self, event: Event) -> None:
        if event.type == "timer.fired":
            return  # recorded firings are the engine's; the back-test fires its own timers
        at = event.time
        self._fire_due(at)
        self.events += 1
        self.first = self.first or at
        self.last = max(self.last or at, at)
        self._collect(self._handle(event, at))

    def _handle(self, event: Event, at: datetime) -> list[Event]:
        """One event, isolated as in the engine: one that fails is counted by error, not the end."""
        try:
            out = handle(self.state, event, at, self.scorers, self.runner)
            if self.scorers is not None:  # as the engine does after each batch: score, then score rules
                out += self.runner.on_scores(self.state, self.scorers.flush(self.state), at)
            return out
        except Exception as exc:
            self.failed[type(exc).__name__] += 1
            return []

    def finish(self, until: datetime | None = None) -> None:
        """Fire what is due by ``until`` (default: the last event's time)."""
        end = until or self.last
        if end is not None:
            self._fire_due(end)

    def _fire_due(self, now: datetime) -> None:
        while due := self.state.due(now):
            for timer in due:
                try:
                    fired = timer_event(timer, timer.due_at)
                except Exception as exc:
                    self.failed[type(exc).__name__] += 1
                    continue
                self._collect(self._handle(fired, timer.due_at))

    def _collect(self, out: list[Event]) -> None:
        for event in out:
            data = event.data
            if isinstance(data, ev.ActionRequested) and data.rule_id == self.rule.rule_id:
                if data.holdout:
                    self.held_out += 1
                    continue
                self.messages += 1
                self.customers.add(data.customer_id)
                self.by_day[event.time.date().isoformat()] += 1
                self.by_channel[data.channel] += 1
                if len(self.samples) < SAMPLES_KEPT:
                    self.samples.append(
                        {
                            "customer_id": data.customer_id,
                            "at": event.time_iso,
                            "channel": data.channel,
                            "context": data.context,
                        }
                    )
        for decision in self.state.take_decisions():
            if decision["rule_id"] != self.rule.rule_id:
                continue
            self.outcomes[decision["outcome"]] += 1
            if decision["outcome"] == "suppressed":
                self.suppressed_by[decision.get("guard") or "unknown"] += 1
        self.state.take_changes()  # no changelog here: what changed is not kept twice

    def warnings(self) -> list[str]:
        kinds = {t.kind for t in self.rule.triggers}
        found = []
        if "score" in kinds and self.scorers is None:
            found.append("a score trigger is not back-tested: no promoted churn model to re-run over history")
        if "session" in kinds:
            found.append("a pop-up rule is decided by the storefront, live: it is not back-tested")
        if not self.rule.conditions and kinds <= {"score", "session"}:
            found.append("nothing in this rule can fire in a back-test")
        return found

    def result(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule.rule_id,
            "rule_version": self.rule.version,
            "events": self.events,
            "from": self.first.isoformat() if self.first else None,
            "to": self.last.isoformat() if self.last else None,
            "messages": self.messages,
            "customers": len(self.customers),
            "held_out": self.held_out,
            "by_day": dict(sorted(self.by_day.items())),
            "by_channel": dict(self.by_channel),
            "outcomes": dict(self.outcomes),
            "suppressed_by_guard": dict(self.suppressed_by.most_common()),
            # set but not yet due when the history ends: messages the rule would send after it
            "pending_timers": sum(t.payload.get("rule_id") == self.rule.rule_id for t in self.state.timers()),
            "samples": self.samples,
            "failed_events": dict(self.failed),
            "warnings": self.warnings(),
        }


def run(
    rule: Rule,
    in_force: Iterable[Rule],
    policy: ContactPolicy,
    events: Iterable[Event],
    until: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    scorers: Scores | None = None,
) -> dict[str, Any]:
    """Replay ``events`` (in time order) and say what ``rule`` would have done."""
    test = Backtest(rule, in_force, policy, scorers)
    for i, event in enumerate(events, 1):
        test.apply(event)
        if progress is not None and i % 1000 == 0:
            progress(i)
    test.finish(until)
    if progress is not None:
        progress(test.events)
    return test.result()
