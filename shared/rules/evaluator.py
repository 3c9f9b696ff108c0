"""Rule evaluation: rules indexed by what triggers them, and one pure function that decides what a
rule does for a customer now, with every step recorded so that the decision can be explained.

The order of the checks (the first that stops a rule is the reason given):

1. the rule's start/end dates                      → suppressed, guard ``schedule``
2. its conditions, each recorded as held or not    → ``not_matched``
3. re-eligibility (once per order, once ever, every N days)  → guard ``reeligibility``
4. the rule's own cool-down and cap                 → guards ``rule_cooldown``, ``rule_cap``
5. consent for the channel (or the fallback)        → guard ``consent``
6. the contact policy across all rules (cap, cool-down) → guards ``frequency_cap``, ``cooldown``
7. quiet hours in the customer's time zone          → ``deferred`` to the first allowed instant
8. the hold-out group                               → ``holdout``: recorded, not sent
9. otherwise                                        → ``fired``

Hold-out customers pass through the same guards as the others, so the two groups stay comparable;
when several rules fire for one customer at once, the engine keeps the highest priority and records
the others as suppressed by guard ``priority``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson

from shared.rules import guards as g
from shared.rules.conditions import evaluate as holds
from shared.rules.conditions import needs, value_of
from shared.rules.model import ContactPolicy, Rule

Outcome = Literal["fired", "holdout", "deferred", "suppressed", "not_matched", "cancelled"]


@dataclass(eq=False)  # verdicts are compared by identity (arbitration), never by value
class Verdict:
    rule: Rule
    outcome: Outcome
    why: str
    guard: str | None = None
    conditions: list[dict[str, Any]] = field(default_factory=list)
    channel: str | None = None
    defer_until: datetime | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def acts(self) -> bool:
        """Whether this verdict produces an action (a hold-out's is recorded, not sent)."""
        return self.outcome in ("fired", "holdout")


class RuleSet:
    """The active rules, indexed by what can trigger them, so an event costs only its own rules."""

    def __init__(self, rules: Iterable[Rule], policy: ContactPolicy | None = None) -> None:
        self.policy = policy or ContactPolicy()
        self.rules: dict[str, Rule] = {r.rule_id: r for r in rules if r.enabled}
        self.on_event: dict[str, list[Rule]] = defaultdict(list)
        # (rule, index of the trigger in rule.triggers) for the timed triggers
        self.schedule_on: dict[str, list[tuple[Rule, int]]] = defaultdict(list)
        self.cancel_on: dict[str, list[tuple[Rule, int]]] = defaultdict(list)
        self.exit_on: dict[str, list[Rule]] = defaultdict(list)
        self.on_score: list[Rule] = []
        self.on_session: list[Rule] = []
        for rule in self.rules.values():
            for i, t in enumerate(rule.triggers):
                if t.kind == "event":
                    self.on_event[t.event].append(rule)
                elif t.kind in ("delay", "absence"):
                    self.schedule_on[t.after].append((rule, i))
                    for name in getattr(t, "absent", []):
                        self.cancel_on[name].append((rule, i))
                elif t.kind == "score":
                    self.on_score.append(rule)
                else:
                    self.on_session.append(rule)
            for name in rule.guards.exit_events:
                self.exit_on[name].append(rule)
        # what each rule's expressions read of the facts (conditions and action context)
        self.needs = {
            r.rule_id: needs([*(c.expr for c in r.conditions), *r.action.context.values()]) for r in self.rules.values()
        }
        self.session_needs: dict[str, set[str] | None] = {}
        for rule in self.on_session:
            merge(self.session_needs, self.needs[rule.rule_id])
        indexes = (self.on_event, self.schedule_on, self.cancel_on, self.exit_on)
        self._interesting = frozenset(t for index in indexes for t in index)
        digest = hashlib.sha256(orjson.dumps(sorted((r.rule_id, r.version) for r in self.rules.values())))
        digest.update(self.policy.model_dump_json().encode())
        self.fingerprint = digest.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return self.rules.get(rule_id)

    def interested_in(self, event_type: str) -> bool:
        return event_type in self._interesting


def evaluate(
    rule: Rule,
    ctx: Any,
    customer: Mapping[str, Any],
    scope: str,
    now: datetime,
    policy: ContactPolicy,
    *,
    check_quiet_hours: bool = True,
) -> Verdict:
    """What ``rule`` does for ``customer`` now (see the module docstring for the order of checks)."""
    guards = rule.guards
    if guards.starts_at and now < guards.starts_at:
        return Verdict(rule, "suppressed", f"the rule starts on {guards.starts_at:%Y-%m-%d %H:%M %Z}", "schedule")
    if guards.ends_at and now >= guards.ends_at:
        return Verdict(rule, "suppressed", f"the rule ended on {guards.ends_at:%Y-%m-%d %H:%M %Z}", "schedule")

    results = []
    for condition in rule.conditions:
        held, error = holds(condition.expr, ctx)
        results.append({"expr": condition.expr, "description": condition.description, "held": held, "error": error})
    failed = [c for c in results if not c["held"]]
    if failed:
        first = failed[0]
        what = first["description"] or first["expr"]
        why = f"condition not met: {what}" + (f" ({first['error']})" if first["error"] else "")
        return Verdict(rule, "not_matched", why, conditions=results)

    def stop(guard: str, why: str) -> Verdict:
        return Verdict(rule, "suppressed", why, guard, conditions=results)

    contacts: list[g.Contact] = list(customer.get("contacts") or [])
    own = [c for c in contacts if c.get("rule_id") == rule.rule_id]
    again = guards.reeligibility
    if again.mode == "once_ever" and own:
        return stop("reeligibility", "the rule is sent once ever, and this customer already had it")
    if again.mode == "once_per_order" and any(c.get("scope") == scope for c in own):
        return stop("reeligibility", f"the rule is sent once per order, and order {scope} already had it")
    if again.mode == "every" and again.every is not None and g.within(own, now, again.every):
        return stop(
            "reeligibility", f"the rule is sent at most every {human(again.every)}, last at {_at(g.last_at(own))}"
        )
    own_sent = g.sent(own)
    if guards.cooldown and g.within(own_sent, now, guards.cooldown):
        return stop(
            "rule_cooldown", f"the rule's cool-down of {human(guards.cooldown)} since {_at(g.last_at(own_sent))}"
        )
    if guards.cap and g.count_within(own_sent, now, guards.cap.window) >= guards.cap.max:
        return stop("rule_cap", f"the rule's cap of {guards.cap.max} per {human(guards.cap.window)} is reached")

    channel = g.choose_channel(
        rule.action.channel,
        rule.action.fallback,
        customer.get("consents") or {},
        reachable(customer),
        guards.require_consent,
    )
    if channel is None:
        wanted = rule.action.channel
        return stop(
            "consent",
            f"no consent for {'any channel' if wanted == 'preferred' else wanted}"
            + (
                ""
                if rule.action.fallback == "preferred" or wanted == "preferred"
                else " and the rule does not fall back"
            ),
        )

    if guards.contact_policy:
        counted = set(policy.channels)
        all_sent = [c for c in g.sent(contacts) if c.get("channel") in counted or not c.get("channel")]
        recent = g.count_within(all_sent, now, policy.window)
        if recent >= policy.max_messages:
            return stop(
                "frequency_cap",
                f"the contact policy allows {_n(policy.max_messages, 'message')} per {human(policy.window)} "
                f"across all rules; this customer had {recent}",
            )
        if g.within(all_sent, now, policy.cooldown):
            since = _at(g.last_at(all_sent))
            return stop("cooldown", f"the contact policy's cool-down of {human(policy.cooldown)} since {since}")

    context = {name: value_of(expr, ctx) for name, expr in rule.action.context.items()}
    if check_quiet_hours and guards.quiet_hours is not None:
        tz = g.zone(customer.get("timezone"), policy.default_timezone)
        allowed = g.next_allowed(now, tz, guards.quiet_hours)
        if allowed > now:
            local = now.astimezone(tz)
            return Verdict(
                rule,
                "deferred",
                f"quiet hours {guards.quiet_hours.start:%H:%M}-{guards.quiet_hours.end:%H:%M} in {tz.key} "
                f"(it is {local:%H:%M} there): postponed to {allowed.astimezone(tz):%Y-%m-%d %H:%M} local",
                "quiet_hours",
                results,
                channel,
                allowed,
                context,
            )
    customer_id = str(customer.get("customer_id", ""))
    if g.in_holdout(rule.rule_id, customer_id, guards.holdout_pct):
        return Verdict(
            rule,
            "holdout",
            f"in the rule's {guards.holdout_pct:g}% hold-out group: recorded, not sent",
            "holdout",
            results,
            channel,
            context=context,
        )
    held_text = ", ".join(str(c["description"] or c["expr"]) for c in results) or "no conditions"
    why = f"conditions held ({held_text}); channel {channel}"
    return Verdict(rule, "fired", why, None, results, channel, None, context)


def merge(into: dict[str, set[str] | None], more: dict[str, set[str] | None]) -> None:
    """Combine what several rules read of the facts (see ``conditions.needs``)."""
    for root, fields in more.items():
        known = into.get(root, set())
        into[root] = None if fields is None or known is None else known | fields


def human(period: timedelta) -> str:
    """A duration as people say it: "3 days", "12 h", "30 min", "45 s"."""
    seconds = int(period.total_seconds())
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            value = seconds // size
            return f"{value} day" if unit == "days" and value == 1 else f"{value} {unit}"
    return f"{seconds} s"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _at(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "never"


def reachable(customer: Mapping[str, Any]) -> dict[str, bool]:
    """Channels with an address: a customer record without the flags is assumed reachable."""
    has_email = bool(customer.get("has_email", True))
    has_phone = bool(customer.get("has_phone", True))
    return {"email": has_email, "sms": has_phone, "phone": has_phone}


def arbitrate(verdicts: list[Verdict]) -> list[Verdict]:
    """Several rules acting on one customer at once: the highest priority acts, the others are
    suppressed with the winner named (ties: the rule id, for a stable answer)."""
    acting = [v for v in verdicts if v.acts or v.outcome == "deferred"]
    if len(acting) <= 1:
        return verdicts
    winner = max(acting, key=lambda v: (v.rule.action.priority, v.rule.rule_id))
    losers = {id(v) for v in acting if v is not winner}
    out = []
    for v in verdicts:
        if id(v) in losers:
            v = Verdict(
                v.rule,
                "suppressed",
                f"rule {winner.rule.rule_id} (priority {winner.rule.action.priority}) fired at the same time and "
                f"wins over priority {v.rule.action.priority}",
                "priority",
                v.conditions,
            )
        out.append(v)
    return out
