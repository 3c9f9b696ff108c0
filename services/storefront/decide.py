"""The decision call: show this visitor a pop-up now, and which?

The pop-up rules (trigger ``session``) are evaluated with the same evaluator, guards and hold-out as
the engine's, on the live session from the storefront's view and the intent model's score computed
here (the compiled model: tens of microseconds). Everything is in memory, so an answer takes well
under a millisecond. It fails safe: no rules loaded yet, an unknown session, an error or an answer
later than the budget all give "no pop-up", with the reason recorded and counted.

Beyond the rules' own guards, two are always enforced: never a second pop-up in a session, and none
while the visitor's last offer is inside the pop-up cool-down (``PROACT_STOREFRONT_POPUP_COOLDOWN_S``).
For an anonymous visitor the visitor's pop-up history is the contact history. For a visitor who is
a known customer, the customer's contacts (messages and pop-ups, from the engine's projection) are
added to it, so a pop-up rule's contact-policy guard counts the pop-up against the same budget as
messages (``ContactPolicy.channels`` says which kinds count), and a pop-up held back by it is in the
decision log as a suppression like any other.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.storefront.churn import ChurnScores
from services.storefront.session_view import SessionView
from shared import sessions, templates
from shared.features import intent
from shared.models.registry import ModelHandle
from shared.rules import RuleSet, Verdict, arbitrate, evaluate
from shared.rules.conditions import context, select
from shared.rules.facts import build as build_facts

log = logging.getLogger(__name__)


@dataclass
class Answer:
    show: bool
    decision_id: str
    reason: str
    rule_id: str | None = None
    rule_version: int | None = None
    holdout: bool = False
    popup: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)  # for the decision log


class Decider:
    def __init__(
        self,
        view: SessionView | sessions.Store,
        intent_model: ModelHandle | None,
        cooldown: timedelta,
        budget_ms: float,
        in_force: templates.InForce | None = None,
        churn: ChurnScores | None = None,
    ) -> None:
        self.view = view
        self.templates = in_force or templates.InForce()
        self.churn = churn or ChurnScores(None)
        self.intent_model = intent_model
        self.cooldown = cooldown
        self.budget_ms = budget_ms
        self.rules: RuleSet | None = None

    def replace_rules(self, rules: RuleSet) -> bool:
        changed = self.rules is None or rules.fingerprint != self.rules.fingerprint
        self.rules = rules
        return changed

    def decide(self, visitor_id: str, session_id: str, locale: str | None, now: datetime) -> Answer:
        started = time.perf_counter()
        decision_id = str(uuid.uuid4())
        try:
            answer = self._decide(decision_id, visitor_id, session_id, locale, now)
        except Exception as exc:  # fail safe: whatever went wrong, the shop gets a quick "no"
            log.exception("decision failed, answering no pop-up", extra={"decision_id": decision_id})
            return Answer(False, decision_id, f"fail-safe: {type(exc).__name__}")
        if (time.perf_counter() - started) * 1000 > self.budget_ms:
            return Answer(False, decision_id, "fail-safe: over the time budget", decisions=answer.decisions)
        return answer

    def _decide(self, decision_id: str, visitor_id: str, session_id: str, locale: str | None, now: datetime) -> Answer:
        rules = self.rules
        if rules is None:
            return Answer(False, decision_id, "fail-safe: rules not loaded yet")
        session = self.view.get(sessions.SESSION, session_id)
        if session is None or session.get("visitor_id") != visitor_id:
            return Answer(False, decision_id, "unknown session")
        if session.get("offered"):
            return Answer(False, decision_id, "this session was already offered a pop-up")
        visitor = self.view.get(sessions.VISITOR, visitor_id) or {}
        last = visitor.get("last_offer_at")
        if last and now - datetime.fromisoformat(last) < self.cooldown:
            return Answer(False, decision_id, "the visitor was offered a pop-up inside the cool-down")
        if not rules.on_session:
            return Answer(False, decision_id, "no pop-up rule is active")

        score = self._intent(session)
        seen = build_facts(
            event={"type": "decide", "id": decision_id, "time": now.isoformat(), "data": {}},
            trigger="session",
            now=now,
            customer=self._customer(session.get("customer_id")),
            session=session,
            intent=score,
        )
        ctx = context(select(seen, rules.session_needs))  # only what the pop-up rules read becomes CEL
        # who the guards count for: the customer when known, else the visitor; their pop-up history
        who = str(session.get("customer_id") or visitor_id)
        contacts = list(visitor.get("contacts") or [])
        if session.get("customer_id"):
            had = {(c.get("rule_id"), c.get("at")) for c in contacts}
            known = self.churn.contacts(str(session["customer_id"]))
            contacts += [c for c in known if (c.get("rule_id"), c.get("at")) not in had]
        history = {"customer_id": who, "consents": {"popup": True}, "contacts": contacts}
        verdicts = arbitrate(
            [
                evaluate(r, ctx, history, session_id, now, rules.policy, check_quiet_hours=False)
                for r in rules.on_session
            ]
        )
        # the decision log gets offers, hold-outs and suppressions; "conditions not met", the answer to
        # most calls, is counted, not logged (the shop asks many times a second)
        records = [
            self._record(v, decision_id, who, session_id, visitor_id, now, score)
            for v in verdicts
            if v.outcome != "not_matched"
        ]
        winner = next((v for v in verdicts if v.acts), None)
        if winner is None:
            reasons = "; ".join(f"{v.rule.rule_id}: {v.why}" for v in verdicts)
            return Answer(False, decision_id, reasons or "no rule applies", decisions=records)
        rule = winner.rule
        contact = {
            "rule_id": rule.rule_id,
            "at": now.isoformat(),
            "channel": "popup",
            "scope": session_id,
            "holdout": winner.outcome == "holdout",
        }
        # the offer is decided: this replica shows no second one in the session, even before the
        # widget reports it shown (other replicas learn it from the popup.shown outcome)
        sessions.offered(self.view, session_id, visitor_id, rule.rule_id, now)
        visitor = self.view.get(sessions.VISITOR, visitor_id) or {}
        self.view.put(
            sessions.VISITOR, visitor_id, {**visitor, "contacts": [*visitor.get("contacts", []), contact][-20:]}
        )
        if winner.outcome == "holdout":
            return Answer(False, decision_id, winner.why, rule.rule_id, rule.version, True, decisions=records)
        used, parts = self.templates.render(rule.action.template_id, locale, winner.context)
        popup = {"template_id": rule.action.template_id, "kind": rule.action.template_id, "locale": used, **parts}
        return Answer(True, decision_id, winner.why, rule.rule_id, rule.version, False, popup, records)

    def _intent(self, session: dict[str, Any]) -> float | None:
        model = self.intent_model.current() if self.intent_model else None
        if model is None:
            return None
        view = intent.from_session(session, model.page_stats, datetime.fromisoformat(session["started_at"]))
        return round(model.score_one(intent.intent_vector(view)), 6)

    def _customer(self, customer_id: str | None) -> dict[str, Any]:
        """What a pop-up rule knows of the customer behind the visitor: the id and the churn score."""
        if not customer_id:
            return {"customer_id": None}  # an anonymous visitor
        score = self.churn.get(customer_id)
        return {"customer_id": customer_id, **({"churn": {"score": score}} if score is not None else {})}

    @staticmethod
    def _record(
        v: Verdict, decision_id: str, who: str, session_id: str, visitor_id: str, now: datetime, score: float | None
    ) -> dict[str, Any]:
        return {
            "_id": f"{v.rule.rule_id}:{decision_id}",
            "rule_id": v.rule.rule_id,
            "rule_version": v.rule.version,
            "rule_name": v.rule.name,
            "customer_id": who,
            "visitor_id": visitor_id,
            "scope": session_id,
            "at": now.isoformat(),
            "outcome": v.outcome,
            "guard": v.guard,
            "why": v.why,
            "channel": "popup",
            "action_id": decision_id if v.acts else None,
            "conditions": v.conditions,
            "trigger": {"kind": "session", "event_type": "decide", "event_id": decision_id},
            "inputs": {"intent": score},
        }
