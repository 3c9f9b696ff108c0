"""The configured rules in the engine: timers for timed triggers, exit events, evaluation, decisions.

For each event, after the state handlers have applied it (so rules see the state *after* the event):

1. exit events cancel the pending timers of the rules they exit, for the same order (or ticket,
   case), and the cancellation is recorded;
2. the events an absence trigger waits for cancel its deadline timer;
3. events that start a delay or an absence set a timer (a durable one, in the partition's state);
4. rules triggered by this event, by a due rule timer, or by a score entering a band are
   evaluated together; see ``shared.rules.evaluator`` for what they check and in which order.

Every evaluation that fires, is suppressed, deferred, held out or cancelled is recorded in the
decision log, and so is a timed or score trigger whose conditions do not hold (the answer to "why
did I not get my check-in?"); an event that merely fails the conditions of a rule on its type is
counted (``RuleRunner.evaluations``), not logged, or busy event types would flood the log.

A rule whose customer the engine has not seen a profile for yet (no ``customer.upserted``: topics
have no order between them, so an order can be read before its customer) is re-evaluated a little
later rather than suppressed for lack of consent, up to ``profile_wait_max``.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.clock import shifted
from shared.contract import Event, new_event
from shared.contract import events as ev
from shared.engine.state import CASE, CUSTOMER, ORDER, SESSION, Doc, PartitionState, Timer
from shared.rules import ContactPolicy, Rule, RuleSet, Verdict, arbitrate, evaluate, scope_field
from shared.rules.conditions import context, select
from shared.rules.evaluator import merge
from shared.rules.facts import build as build_facts
from shared.rules.guards import with_contact

log = logging.getLogger(__name__)

SOURCE = "proact/engine"
RULE_TIMER = "rule"
DEFER_TIMER = "rule.deferred"
_ACTION_NAMESPACE = uuid.UUID("6f1c1a52-3d0e-4c4e-9a43-0d3c5a1f8e21")


class RuleFailed(Exception):
    """A rule that raised while it was evaluated or acted on: the record that triggered it is
    dead-lettered naming the rule (``rule_id``) and the error, and the stream goes on."""

    def __init__(self, rule_id: str, cause: BaseException) -> None:
        self.rule_id = rule_id
        self.error_type = type(cause).__name__
        self.reason = f"rule {rule_id}: {self.error_type}: {cause}"[:1000]
        self.field = None
        super().__init__(self.reason)

    @staticmethod
    @contextmanager
    def naming(rule_id: str) -> Iterator[None]:
        try:
            yield
        except RuleFailed:
            raise
        except Exception as exc:
            raise RuleFailed(rule_id, exc) from exc


class RuleBook:
    """The rule set the engine evaluates now; replaced as a whole when the store has a new one."""

    def __init__(self, rules: RuleSet | None = None) -> None:
        self.current = rules or RuleSet([], ContactPolicy())

    def replace(self, rules: RuleSet) -> bool:
        if rules.fingerprint == self.current.fingerprint:
            return False
        self.current = rules
        return True


@dataclass(frozen=True)
class Evaluation:
    """One rule to evaluate for one customer, and what started it."""

    rule: Rule
    trigger: str  # the kind of trigger that started it (kept when the evaluation is deferred)
    scope: str  # order, ticket or case id; the customer id when the rule is about the customer
    cause: Doc  # the triggering event as a snapshot: type, id, time, data
    evaluation_id: str  # the id of the event being processed (an event or a timer.fired)
    attempt: int = 0
    first_at: str | None = None


def timer_id(rule: Rule, trigger: int, customer_id: str, scope: str) -> str:
    return f"{RULE_TIMER}:{rule.rule_id}:{trigger}:{customer_id}:{scope}"


def defer_id(rule_id: str, customer_id: str, scope: str) -> str:
    return f"{DEFER_TIMER}:{rule_id}:{customer_id}:{scope}"


PERSONAL_FIELDS = frozenset({"email", "phone"})


def snapshot(event: Event, data: Doc | None = None) -> Doc:
    """The triggering event as kept with timers, decisions and actions; ``data`` is its JSON dump if
    made already. Phone numbers and e-mail addresses are left out: a snapshot reaches the changelog,
    the decision log and the messages a viewer reads (the dispatcher looks addresses up itself)."""
    data = event.data.model_dump(mode="json") if data is None else data
    if not PERSONAL_FIELDS.isdisjoint(data):
        data = {k: v for k, v in data.items() if k not in PERSONAL_FIELDS}
    return {"type": event.type, "id": event.id, "time": event.time_iso, "data": data}


def _has_customer(data_type: type[Any]) -> bool:
    """Whether events of a data type name a customer (not getattr with a default on the instance: a
    pydantic model's missing attribute raises and catches an AttributeError, 10 µs per browsing event)."""
    known = _HAS_CUSTOMER.get(data_type)
    if known is None:
        known = _HAS_CUSTOMER[data_type] = "customer_id" in data_type.model_fields
    return known


_HAS_CUSTOMER: dict[type[Any], bool] = {}
# events a visitor who is not a known customer can be the person of: a callback they asked for
BY_VISITOR = frozenset({"callback.requested", "callback.updated"})


def person(event: Event) -> str | None:
    """Whom the rules of an event are about: its customer; for a callback, the visitor who asked for
    it when they are not a known customer (rules then write to the address they left)."""
    data = event.data
    customer_id = data.customer_id if _has_customer(type(data)) else None  # type: ignore[attr-defined]
    if not customer_id and event.type in BY_VISITOR:
        customer_id = data.visitor_id  # type: ignore[attr-defined]
    return customer_id


class RuleRunner:
    def __init__(
        self,
        book: RuleBook,
        profile_wait: timedelta = timedelta(seconds=30),
        profile_wait_max: timedelta = timedelta(minutes=10),
    ) -> None:
        self.book = book
        self.profile_wait = profile_wait
        self.profile_wait_max = profile_wait_max
        self.evaluations: Counter[str] = Counter()  # by outcome

    # --- events -----------------------------------------------------------------------------
    def on_event(self, state: PartitionState, event: Event, now: datetime) -> list[Event]:
        rules = self.book.current
        if event.type == "timer.fired":
            return self._on_timer(state, event, now)
        customer_id = person(event)
        if not customer_id or not rules.interested_in(event.type):
            return []
        data = event.data.model_dump(mode="json")
        for rule in rules.exit_on.get(event.type, ()):
            self._exit(state, rule, event, data, customer_id, now)
        for rule, i in rules.cancel_on.get(event.type, ()):
            if scope := _scope(rule.triggers[i], data, customer_id):
                state.cancel(timer_id(rule, i, customer_id, scope))
        for rule, i in rules.schedule_on.get(event.type, ()):
            self._schedule(state, rule, i, event, data, customer_id)
        triggered = rules.on_event.get(event.type)
        if not triggered:
            return []
        field = scope_field(event.type)
        scope = str(data.get(field) or customer_id) if field else customer_id
        cause = snapshot(event, data)
        return self._decide(
            state, customer_id, [Evaluation(r, "event", scope, cause, event.id) for r in triggered], now
        )

    def _exit(
        self, state: PartitionState, rule: Rule, event: Event, data: Doc, customer_id: str, now: datetime
    ) -> None:
        for i, trigger in enumerate(rule.triggers):
            scope = _scope(trigger, data, customer_id)
            if not scope:
                continue
            pending = state.cancel(timer_id(rule, i, customer_id, scope))
            pending |= state.cancel(defer_id(rule.rule_id, customer_id, scope))
            if pending:
                state.decide(
                    _decision(
                        Verdict(
                            rule, "cancelled", f"{event.type} for {scope} cancels the pending action", "exit_event"
                        ),
                        Evaluation(rule, "exit", scope, snapshot(event, data), event.id),
                        customer_id,
                        state,
                        now,
                    )
                )

    def _schedule(
        self, state: PartitionState, rule: Rule, index: int, event: Event, data: Doc, customer_id: str
    ) -> None:
        trigger = rule.triggers[index]
        scope = _scope(trigger, data, customer_id)
        if not scope:
            return
        delay = getattr(trigger, "delay", None)
        deadline_field = getattr(trigger, "deadline_field", None)
        if delay is not None:
            due = shifted(event.time, delay)
        elif deadline_field and (raw := data.get(deadline_field)):
            ahead = getattr(trigger, "before", None) or timedelta(0)
            due = shifted(datetime.fromisoformat(raw), -ahead)
        else:
            return  # no deadline given for this one (e.g. an order without a promised ship date)
        payload = {"rule_id": rule.rule_id, "trigger": index, "customer_id": customer_id, "scope": scope}
        state.schedule(
            Timer(
                timer_id(rule, index, customer_id, scope),
                RULE_TIMER,
                event.subject,
                due,
                {**payload, "event": snapshot(event, data)},
            )
        )

    def _on_timer(self, state: PartitionState, event: Event, now: datetime) -> list[Event]:
        data = event.data
        assert isinstance(data, ev.TimerFired)
        if data.kind not in (RULE_TIMER, DEFER_TIMER):
            return []
        payload = data.model_extra or {}
        customer_id, scope = str(payload["customer_id"]), str(payload["scope"])
        rule = self.book.current.get(str(payload["rule_id"]))
        if rule is None:
            log.info("a timer of a rule that is no longer active fired", extra={"rule_id": payload["rule_id"]})
            return []
        if data.kind == RULE_TIMER:
            kind = (
                rule.triggers[int(payload["trigger"])].kind if int(payload["trigger"]) < len(rule.triggers) else "delay"
            )
            item = Evaluation(rule, kind, scope, payload["event"], event.id)
        else:
            item = Evaluation(
                rule,
                str(payload.get("trigger_kind") or "deferred"),
                scope,
                payload["event"],
                event.id,
                int(payload.get("attempt", 0)),
                payload.get("first_at"),
            )
        return self._decide(state, customer_id, [item], now)

    def on_scores(
        self, state: PartitionState, changes: Iterable[tuple[str, float | None, float]], now: datetime
    ) -> list[Event]:
        """Customers whose churn score was computed: the rules whose band the new score enters fire;
        so do rules whose band the customer was already in when that rule (or its version) came into
        force, once, at the customer's next score (a win-back switched on reaches the customers
        already at risk; the rule's re-eligibility guard still decides how often). The versions of
        the score rules a customer has been evaluated for are kept with the customer."""
        rules = self.book.current.on_score
        out: list[Event] = []
        if not rules:
            return out
        for customer_id, before, after in changes:
            customer = state.get(CUSTOMER, customer_id) or {}
            seen: dict[str, int] = customer.get("score_rules") or {}
            entered = [
                r
                for r in rules
                for t in r.triggers
                if t.kind == "score" and t.inside(after) and (not t.inside(before) or seen.get(r.rule_id) != r.version)
            ]
            if entered:
                marks = {**seen, **{r.rule_id: r.version for r in entered}}
                state.put(CUSTOMER, customer_id, {**customer, "customer_id": customer_id, "score_rules": marks})
                cause_id = f"churn:{customer_id}:{now.isoformat()}"
                reasons = (customer.get("churn") or {}).get("reasons") or []
                cause: Doc = {
                    "type": "score.changed",
                    "id": cause_id,
                    "time": now.isoformat(),
                    "data": {"score": "churn", "before": before, "after": after, "reasons": reasons},
                }
                items = [Evaluation(r, "score", customer_id, cause, cause_id) for r in entered]
                out += self._decide(state, customer_id, items, now)
        return out

    # --- deciding ---------------------------------------------------------------------------
    def _decide(self, state: PartitionState, customer_id: str, items: list[Evaluation], now: datetime) -> list[Event]:
        """Evaluate rules for one customer: wait for an unknown customer's profile, decide (conditions
        and guards, then arbitration between the rules), act on each verdict and record it."""
        customer = state.get(CUSTOMER, customer_id) or {"customer_id": customer_id}
        items = self._wait_for_profiles(state, customer_id, customer, items, now)
        out: list[Event] = []
        for item, verdict in zip(items, self._verdicts(state, customer, items, now), strict=True):
            action = self._carry_out(state, customer_id, item, verdict, now)
            if action is not None:
                out.append(action)
            self._record(state, customer_id, item, verdict, now, action.id if action else None)
        return out

    def _wait_for_profiles(
        self, state: PartitionState, customer_id: str, customer: Doc, items: list[Evaluation], now: datetime
    ) -> list[Evaluation]:
        """Defer the evaluations that wait for the customer's profile; the others, to evaluate now."""
        waiting = [i for i in items if self._wait_for_profile(customer, i, now)]
        for item in waiting:
            why = "no profile of this customer yet: evaluated again shortly"
            verdict = Verdict(
                item.rule, "deferred", why, "unknown_customer", defer_until=shifted(now, self.profile_wait)
            )
            self._defer(state, customer_id, item, verdict, now)
            state.decide(_decision(verdict, item, customer_id, state, now))
        return [i for i in items if i not in waiting]

    def _verdicts(self, state: PartitionState, customer: Doc, items: list[Evaluation], now: datetime) -> list[Verdict]:
        """Each rule's verdict, after arbitration. The facts are converted to CEL once per cause, and
        only the parts the rules of that cause read."""
        policy = self.book.current.policy
        contexts: dict[tuple[str, str], Any] = {}
        verdicts = []
        for item in items:
            key = (item.trigger, str(item.cause.get("id")))
            if key not in contexts:
                needed: dict[str, set[str] | None] = {}
                for other in items:
                    if (other.trigger, str(other.cause.get("id"))) == key:
                        merge(needed, self.book.current.needs.get(other.rule.rule_id, {}))
                contexts[key] = context(select(self._facts(state, customer, item, now), needed))
            with RuleFailed.naming(item.rule.rule_id):
                verdicts.append(evaluate(item.rule, contexts[key], customer, item.scope, now, policy))
        return arbitrate(verdicts)

    def _carry_out(
        self, state: PartitionState, customer_id: str, item: Evaluation, verdict: Verdict, now: datetime
    ) -> Event | None:
        """What a verdict does: a deferral sets a timer, a firing (or a hold-out) makes an action."""
        with RuleFailed.naming(item.rule.rule_id):
            if verdict.outcome == "deferred":
                self._defer(state, customer_id, item, verdict, now)
            elif verdict.acts:
                return self._act(state, customer_id, item, verdict, now)
        return None

    def _record(
        self,
        state: PartitionState,
        customer_id: str,
        item: Evaluation,
        verdict: Verdict,
        now: datetime,
        action_id: str | None,
    ) -> None:
        self.evaluations[verdict.outcome] += 1
        if verdict.outcome == "not_matched" and item.trigger == "event":
            return  # an event that does not match a rule on its type is no news: counted, not logged
        state.decide(_decision(verdict, item, customer_id, state, now, action_id))

    def _wait_for_profile(self, customer: Doc, item: Evaluation, now: datetime) -> bool:
        if "consents" in customer or not item.rule.guards.require_consent:
            return False
        first = datetime.fromisoformat(item.first_at) if item.first_at else now
        return now - first < self.profile_wait_max

    def _facts(self, state: PartitionState, customer: Doc, item: Evaluation, now: datetime) -> Doc:
        data = item.cause.get("data", {})
        order_id, session_id, case_id = data.get("order_id"), data.get("session_id"), data.get("case_id")
        return build_facts(
            event=item.cause,
            trigger=item.trigger,
            now=now,
            customer=customer,
            order=state.get(ORDER, order_id) if order_id else None,
            case=state.get(CASE, case_id) if case_id else None,
            session=state.get(SESSION, session_id) if session_id else None,
        )

    def _defer(
        self, state: PartitionState, customer_id: str, item: Evaluation, verdict: Verdict, now: datetime
    ) -> None:
        assert verdict.defer_until is not None
        payload = {
            "rule_id": item.rule.rule_id,
            "customer_id": customer_id,
            "scope": item.scope,
            "event": item.cause,
            "trigger_kind": item.trigger,
            "attempt": item.attempt + 1,
            "first_at": item.first_at or now.isoformat(),
        }
        key = str(item.cause.get("data", {}).get("customer_id") or customer_id)
        state.schedule(
            Timer(defer_id(item.rule.rule_id, customer_id, item.scope), DEFER_TIMER, key, verdict.defer_until, payload)
        )

    def _act(self, state: PartitionState, customer_id: str, item: Evaluation, verdict: Verdict, now: datetime) -> Event:
        rule = item.rule
        mode = rule.guards.reeligibility.mode
        if mode == "once_per_order":
            key = f"{rule.rule_id}:{item.scope}"
        elif mode == "once_ever":
            key = f"{rule.rule_id}:{customer_id}"
        else:
            key = f"{rule.rule_id}:{customer_id}:{item.scope}:{item.cause['id']}"
        holdout = verdict.outcome == "holdout"
        assert verdict.channel is not None
        customer = state.get(CUSTOMER, customer_id) or {"customer_id": customer_id, "orders": 0, "tickets": 0}
        contact = {
            "rule_id": rule.rule_id,
            "at": now.isoformat(),
            "channel": verdict.channel,
            "scope": item.scope,
            "holdout": holdout,
        }
        customer = with_contact(customer, contact)
        state.put(CUSTOMER, customer_id, customer)
        action = ev.ActionRequested(
            action_id=str(uuid.uuid5(_ACTION_NAMESPACE, key)),
            rule_id=rule.rule_id,
            rule_version=rule.version,
            customer_id=customer_id,
            channel=verdict.channel,
            template_id=rule.action.template_id,
            locale=customer.get("locale"),
            context={**verdict.context, "cause_event_id": item.cause["id"], "trigger": item.trigger},
            idempotency_key=key,
            holdout=holdout,
            consent_required=rule.guards.require_consent,
        )
        return new_event("action.requested", customer_id, action, source=SOURCE, time=now, id=action.action_id)


def _scope(trigger: Any, data: Doc, customer_id: str) -> str | None:
    """The scope of a timed trigger for an event: the value of its scope field, or the customer."""
    name = getattr(trigger, "after", None) or getattr(trigger, "event", None)
    field = scope_field(name) if name else None
    if field is None:
        return customer_id
    value = data.get(field)
    return str(value) if value else None


def _decision(
    verdict: Verdict,
    item: Evaluation,
    customer_id: str,
    state: PartitionState,
    now: datetime,
    action_id: str | None = None,
) -> Doc:
    """A decision-log entry: what was decided, why, on what inputs (personal data left out)."""
    rule = verdict.rule
    customer = state.get(CUSTOMER, customer_id) or {}
    order_id = item.cause.get("data", {}).get("order_id")
    order = (state.get(ORDER, order_id) if order_id else None) or {}
    return {
        "_id": f"{rule.rule_id}:{customer_id}:{item.scope}:{item.evaluation_id}",
        "rule_id": rule.rule_id,
        "rule_version": rule.version,
        "rule_name": rule.name,
        "customer_id": customer_id,
        "scope": item.scope,
        "order_id": order_id,
        "at": now.isoformat(),
        "outcome": verdict.outcome,
        "guard": verdict.guard,
        "why": verdict.why,
        "channel": verdict.channel,
        "action_id": action_id,
        "defer_until": verdict.defer_until.isoformat() if verdict.defer_until else None,
        "conditions": verdict.conditions,
        "trigger": {"kind": item.trigger, "event_type": item.cause.get("type"), "event_id": item.cause.get("id")},
        "cause_event_id": item.cause.get("id"),
        "inputs": {
            "customer": {k: customer.get(k) for k in ("orders", "tickets", "locale", "timezone", "consents")},
            "contacts": (customer.get("contacts") or [])[-5:],
            "order": {
                k: order.get(k) for k in ("status", "promised_ship_by", "promised_delivery_by", "estimated_delivery")
            }
            if order
            else None,
            "churn": (customer.get("churn") or {}).get("score"),
            # the features that raised the churn score most (shared/models/compiled.py), for a score rule
            "churn_reasons": (customer.get("churn") or {}).get("reasons") if item.trigger == "score" else None,
        },
    }
