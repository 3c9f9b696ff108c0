"""Rules on plain engine state with a hand-moved clock: the built-in scenarios, every guard, the rule
model's validation and the guard arithmetic (property tests)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.clock import ManualClock
from shared.contract import Event
from shared.engine.handlers import handle, timer_event
from shared.engine.runner import RuleBook, RuleRunner
from shared.engine.state import PartitionState
from shared.rules import ContactPolicy, Rule, RuleSet, builtin_rules, rule_schema
from shared.rules import guards as g
from shared.rules.builtin import BUILTIN, CHECKIN
from shared.rules.model import QuietHours
from tests.factories import event

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 10:00 UTC = 11:00 in Warsaw


def builtin(name: str, **changes: Any) -> dict[str, Any]:
    raw = next(dict(r) for r in BUILTIN if r["rule_id"] == name)
    return {**raw, **changes}


class Shop:
    """Events through the engine's handlers and rules, timers fired as the clock moves."""

    def __init__(self, rules: list[Rule] | None = None, policy: ContactPolicy | None = None) -> None:
        self.clock = ManualClock(T0)
        self.state = PartitionState(0)
        self.runner = RuleRunner(RuleBook(RuleSet(rules or builtin_rules(), policy)))
        self.actions: list[Event] = []
        self.decisions: list[dict[str, Any]] = []

    def send(self, *events: Event) -> None:
        for e in events:
            self.actions += handle(self.state, e, self.clock.now(), rules=self.runner)
        self.decisions += self.state.take_decisions()

    def wait(self, delta: timedelta, step: timedelta = timedelta(minutes=30)) -> None:
        end = self.clock.now() + delta
        while self.clock.now() < end:
            self.clock.advance(min(step, end - self.clock.now()))
            for timer in self.state.due(self.clock.now()):
                self.send(timer_event(timer, self.clock.now()))

    def sent(self, rule_id: str) -> list[dict[str, Any]]:
        return [a.data.model_dump() for a in self.actions if a.data.model_dump()["rule_id"] == rule_id]

    def decided(self, rule_id: str) -> list[dict[str, Any]]:
        return [d for d in self.decisions if d["rule_id"] == rule_id]


def customer(cid: str = "c-1", **fields: Any) -> Event:
    data = {"consents": {"email": True}, "timezone": "Europe/Warsaw", **fields}
    return event("customer.upserted", subject=cid, **data)


def delivered(order_id: str = "o-1", cid: str = "c-1") -> list[Event]:
    return [
        event("order.placed", subject=cid, order_id=order_id, time=T0),
        event("order.delivered", subject=cid, order_id=order_id, time=T0),
    ]


# --- the seed scenarios ------------------------------------------------------------------------
def test_checkin_three_days_after_delivery() -> None:
    shop = Shop()
    shop.send(customer(), *delivered())
    shop.wait(timedelta(days=2, hours=23))
    assert shop.sent(CHECKIN) == []
    shop.wait(timedelta(hours=2))
    (checkin,) = shop.sent(CHECKIN)
    assert (checkin["channel"], checkin["template_id"], checkin["context"]["order_id"]) == ("email", "checkin", "o-1")
    assert checkin["idempotency_key"] == "post-purchase-checkin:o-1"


@pytest.mark.parametrize("exit_event", ["order.return_requested", "ticket.opened"])
def test_a_return_or_ticket_about_the_order_cancels_the_checkin(exit_event: str) -> None:
    shop = Shop()
    shop.send(customer(), *delivered(), event(exit_event, order_id="o-1"))
    shop.wait(timedelta(days=5))
    assert shop.sent(CHECKIN) == []
    (cancelled,) = shop.decided(CHECKIN)
    assert (cancelled["outcome"], cancelled["guard"]) == ("cancelled", "exit_event")
    assert exit_event in cancelled["why"]


def test_a_ticket_about_another_order_does_not_cancel_it() -> None:
    shop = Shop()
    shop.send(customer(), *delivered(), event("ticket.opened", order_id="o-other"))
    shop.wait(timedelta(days=4))
    assert len(shop.sent(CHECKIN)) == 1


def test_checkin_falling_at_two_in_the_night_is_sent_at_eight_local() -> None:
    shop = Shop()
    # delivered 23:00 Warsaw (22:00 UTC) → due 3 days later at 23:00 local, inside 21:00-08:00
    shop.clock = ManualClock(datetime(2026, 11, 23, 22, 0, tzinfo=UTC))
    shop.send(customer(), event("order.placed", time=shop.clock.now()), event("order.delivered", time=shop.clock.now()))
    shop.wait(timedelta(days=3, hours=1), step=timedelta(minutes=15))
    assert shop.sent(CHECKIN) == []
    deferred = [d for d in shop.decided(CHECKIN) if d["outcome"] == "deferred"]
    assert deferred[0]["guard"] == "quiet_hours"
    assert deferred[0]["defer_until"] == datetime(2026, 11, 27, 7, 0, tzinfo=UTC).isoformat()  # 08:00 Warsaw
    shop.wait(timedelta(hours=9), step=timedelta(minutes=15))
    (checkin,) = shop.sent(CHECKIN)
    fired = next(d for d in shop.decided(CHECKIN) if d["outcome"] in ("fired", "holdout"))
    assert datetime.fromisoformat(fired["at"]).astimezone(ZoneInfo("Europe/Warsaw")).hour == 8
    assert checkin["context"]["order_id"] == "o-1"


def test_eta_slipping_twice_gives_one_notice_and_shipping_in_time_none() -> None:
    shop = Shop()
    promise = {
        "promised_ship_by": (T0 + timedelta(days=1)).isoformat(),
        "promised_delivery_by": (T0 + timedelta(days=3)).isoformat(),
    }
    shop.send(customer(), event("order.placed", order_id="late", **promise))
    shop.send(event("order.placed", order_id="fine", **promise))
    shop.send(event("order.shipped", order_id="fine", estimated_delivery=(T0 + timedelta(days=2)).isoformat()))
    for days in (4, 6):
        shop.send(
            event("order.eta_changed", order_id="late", estimated_delivery=(T0 + timedelta(days=days)).isoformat())
        )
    shop.wait(timedelta(days=2))
    notices = shop.sent("delay-notice")
    assert [n["context"]["order_id"] for n in notices] == ["late"]
    # the second ETA change and the missed ship-by date find the order already notified
    suppressed = [d for d in shop.decided("delay-notice") if d["outcome"] == "suppressed"]
    assert {d["guard"] for d in suppressed} == {"reeligibility"}
    assert len(suppressed) == 2


# --- guards ------------------------------------------------------------------------------------
def test_the_contact_policy_cap_suppresses_a_second_rule_with_its_reason() -> None:
    winback = Rule.model_validate(builtin("churn-winback", enabled=True))
    low_csat = Rule.model_validate(builtin("low-csat-callback", enabled=True, guards={"contact_policy": True}))
    checkin = Rule.model_validate(builtin(CHECKIN, guards={**builtin(CHECKIN)["guards"], "holdout_pct": 0}))
    policy = ContactPolicy(max_messages=1, window=timedelta(days=3), cooldown=timedelta(0))
    shop = Shop([checkin, low_csat, winback], policy)
    shop.send(customer(), *delivered())
    shop.wait(timedelta(days=3, hours=1))
    assert len(shop.sent(CHECKIN)) == 1
    shop.send(event("csat.submitted", score=1))
    assert shop.sent("low-csat-callback") == []
    (stopped,) = shop.decided("low-csat-callback")
    assert (stopped["outcome"], stopped["guard"]) == ("suppressed", "frequency_cap")
    assert "1 message per 3 days" in stopped["why"]
    shop.wait(timedelta(days=3))
    shop.send(event("csat.submitted", score=2))
    assert len(shop.sent("low-csat-callback")) == 1  # the window has passed


def _in_holdout(rule_id: str, pct: float, want: bool) -> str:
    return next(f"c-{i}" for i in range(10_000) if g.in_holdout(rule_id, f"c-{i}", pct) == want)


def test_a_holdout_customer_is_recorded_not_sent() -> None:
    shop = Shop()
    held, treated = _in_holdout(CHECKIN, 10, True), _in_holdout(CHECKIN, 10, False)
    for cid in (held, treated):
        shop.send(customer(cid), *delivered(f"o-{cid}", cid))
    shop.wait(timedelta(days=4))
    by_customer = {a["customer_id"]: a for a in shop.sent(CHECKIN)}
    assert by_customer[held]["holdout"] is True  # recorded in the actions, the dispatcher does not send it
    assert by_customer[treated]["holdout"] is False
    assert {d["customer_id"]: d["outcome"] for d in shop.decided(CHECKIN)} == {held: "holdout", treated: "fired"}


@pytest.mark.parametrize(("fallback", "expected"), [("preferred", "email"), ("suppress", None)])
def test_no_consent_for_the_channel_falls_back_or_suppresses_as_configured(fallback: str, expected: str | None) -> None:
    action = {"channel": "sms", "fallback": fallback, "template_id": "low_csat_callback"}
    rule = Rule.model_validate(builtin("low-csat-callback", enabled=True, action=action))
    shop = Shop([rule])
    shop.send(customer(consents={"email": True, "sms": False}), event("csat.submitted", score=1))
    assert [a["channel"] for a in shop.sent(rule.rule_id)] == ([expected] if expected else [])
    if expected is None:
        assert shop.decided(rule.rule_id)[0]["guard"] == "consent"


def test_when_two_rules_fire_at_once_the_higher_priority_wins() -> None:
    base = builtin("low-csat-callback", enabled=True)
    high = Rule.model_validate({**base, "rule_id": "csat-high", "action": {**base["action"], "priority": 90}})
    low = Rule.model_validate({**base, "rule_id": "csat-low", "action": {**base["action"], "priority": 10}})
    shop = Shop([low, high])
    shop.send(customer(), event("csat.submitted", score=1))
    assert [a["rule_id"] for a in shop.actions and [a.data.model_dump() for a in shop.actions]] == ["csat-high"]
    (lost,) = shop.decided("csat-low")
    assert (lost["guard"], lost["outcome"]) == ("priority", "suppressed")
    assert "csat-high" in lost["why"]


def test_rule_cooldown_reeligibility_and_dates() -> None:
    every = Rule.model_validate(
        builtin(
            "low-csat-callback",
            enabled=True,
            guards={"contact_policy": False, "reeligibility": {"mode": "every", "every": "P10D"}},
        )
    )
    shop = Shop([every])
    shop.send(customer(), event("csat.submitted", score=1))
    shop.wait(timedelta(days=5))
    shop.send(event("csat.submitted", score=1))
    shop.wait(timedelta(days=6))
    shop.send(event("csat.submitted", score=1))
    assert len(shop.sent(every.rule_id)) == 2
    assert [d["guard"] for d in shop.decided(every.rule_id)] == [None, "reeligibility", None]

    later = Rule.model_validate(builtin("low-csat-callback", enabled=True, guards={"starts_at": "2027-01-01T00:00Z"}))
    shop = Shop([later])
    shop.send(customer(), event("csat.submitted", score=1))
    assert shop.decided(later.rule_id)[0]["guard"] == "schedule"


def test_a_deadline_for_an_unknown_customer_waits_for_the_profile() -> None:
    shop = Shop()
    shop.send(event("order.placed", order_id="o-1", promised_ship_by=(T0 + timedelta(minutes=5)).isoformat()))
    shop.wait(timedelta(minutes=6), step=timedelta(seconds=10))
    assert shop.sent("delay-notice") == []
    assert shop.decided("delay-notice")[0]["guard"] == "unknown_customer"
    shop.send(customer())  # the profile arrives late (another topic)
    shop.wait(timedelta(minutes=1), step=timedelta(seconds=10))
    assert [a["channel"] for a in shop.sent("delay-notice")] == ["email"]


def test_churn_entering_the_band_triggers_the_winback() -> None:
    rule = Rule.model_validate(builtin("churn-winback", enabled=True, guards={"holdout_pct": 0}))
    shop = Shop([rule])
    shop.send(customer(), event("order.placed", order_id="o-1"), event("order.placed", order_id="o-2"))
    customer_doc = shop.state.get("customer", "c-1")
    assert customer_doc is not None
    shop.state.put("customer", "c-1", {**customer_doc, "churn": {"score": 0.8}})
    out = shop.runner.on_scores(shop.state, [("c-1", 0.5, 0.8), ("c-1", 0.8, 0.9)], shop.clock.now())
    assert [e.data.model_dump()["context"]["orders"] for e in out] == [2]  # entering, not staying in, the band


def test_a_winback_switched_on_reaches_a_customer_already_at_risk_once() -> None:
    """The customer was in the band before the rule came into force: not "entering" it, yet the rule
    is for them. They are evaluated at their next score, once per rule version."""
    rule = Rule.model_validate(builtin("churn-winback", enabled=True, guards={"holdout_pct": 0}))
    shop = Shop([rule])
    shop.send(customer(), event("order.placed", order_id="o-1"), event("order.placed", order_id="o-2"))
    first = shop.runner.on_scores(shop.state, [("c-1", 0.8, 0.81)], shop.clock.now())
    again = shop.runner.on_scores(shop.state, [("c-1", 0.81, 0.82)], shop.clock.now())
    assert [e.data.model_dump()["rule_id"] for e in first] == ["churn-winback"]
    assert again == []
    newer = rule.model_copy(update={"version": rule.version + 1})
    shop.runner.book.current = shop.runner.book.current.__class__([newer], shop.runner.book.current.policy)
    shop.clock.advance(timedelta(days=100))  # past the rule's 90 days between win-backs
    later = shop.runner.on_scores(shop.state, [("c-1", 0.82, 0.83)], shop.clock.now())
    assert [e.data.model_dump()["rule_id"] for e in later] == ["churn-winback"]  # the new version's turn


# --- the model ---------------------------------------------------------------------------------
def test_a_bad_condition_is_refused_with_its_field_and_position() -> None:
    raw = builtin(CHECKIN, conditions=[{"expr": 'order.status == "delivered"'}, {"expr": "order.status =="}])
    with pytest.raises(ValidationError) as info:
        Rule.model_validate(raw)
    (error,) = info.value.errors()
    assert error["loc"] == ("conditions", 1, "expr")
    assert "1:16" in error["msg"]  # line 1, column 16: where the operand is missing


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"conditions": [{"expr": "secret.key == 1"}]}, ("conditions", 0, "expr")),
        ({"conditions": [{"expr": 'customer.orders > "two"'}]}, ("conditions", 0, "expr")),
        (
            {"triggers": [{"kind": "delay", "after": "order.delivred", "delay": "P3D"}]},
            ("triggers", 0, "delay", "after"),
        ),
        (
            {"triggers": [{"kind": "delay", "after": "order.delivered", "delay": "-P1D"}]},
            ("triggers", 0, "delay", "delay"),
        ),
        ({"guards": {"holdout_pct": 80}}, ("guards", "holdout_pct")),
        ({"guards": {"quiet_hours": {"start": "8:00", "end": "8:00"}}}, ("guards", "quiet_hours")),
        ({"action": {"template_id": "x", "context": {"v": "__import__('os')"}}}, ("action", "context")),
        ({"rule_id": "Bad Id"}, ("rule_id",)),
    ],
)
def test_invalid_rules_name_the_wrong_field(change: dict[str, Any], field: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        Rule.model_validate(builtin(CHECKIN, **change))
    assert field in [e["loc"][: len(field)] for e in info.value.errors()]


def test_absence_deadline_must_be_a_timestamp_of_the_trigger_event() -> None:
    trigger = {"kind": "absence", "after": "order.placed", "absent": ["order.shipped"], "deadline_field": "total"}
    with pytest.raises(ValidationError, match="promised_ship_by"):
        Rule.model_validate(builtin("delay-notice", triggers=[trigger]))


def test_the_rule_schema_is_published_and_the_builtins_follow_it() -> None:
    schema = rule_schema()
    assert {"rule_id", "triggers", "action"} <= set(schema["required"])
    assert {r.rule_id for r in builtin_rules()} == {r["rule_id"] for r in BUILTIN}
    assert sorted(RuleSet(builtin_rules()).rules) == [
        "callback-apology",
        "delay-notice",
        "lingering-visitor-callback",
        "low-csat-callback",
        CHECKIN,
        "repair-overdue",
        "repair-ready",
        "repair-received",
    ]


def test_rules_are_indexed_by_what_triggers_them() -> None:
    rules = RuleSet(builtin_rules())
    assert [r.rule_id for r, _ in rules.schedule_on["order.delivered"]] == [CHECKIN]
    assert [r.rule_id for r in rules.exit_on["order.return_requested"]] == [CHECKIN]
    assert not rules.interested_in("page.viewed")


# --- guard arithmetic (property tests) --------------------------------------------------------
ZONES = sorted(z for z in available_timezones() if z.startswith(("Europe/", "America/", "Australia/", "Asia/")))
QUIET = QuietHours(start=time(21), end=time(8))
instants = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))


@settings(max_examples=400, deadline=None)
@given(now=instants, zone=st.sampled_from(ZONES), start=st.integers(0, 23), length=st.integers(1, 12))
def test_next_allowed_is_the_first_instant_outside_quiet_hours(
    now: datetime, zone: str, start: int, length: int
) -> None:
    tz = ZoneInfo(zone)
    quiet = QuietHours(start=time(start), end=time((start + length) % 24))
    allowed = g.next_allowed(now, tz, quiet)
    assert allowed >= now
    assert not g.in_quiet_hours(allowed.astimezone(tz).time(), quiet)
    assert allowed - now <= timedelta(hours=length + 1)  # never more than the window (+1 h across DST)
    if allowed > now:  # nothing earlier was allowed: a minute before, it was still quiet
        before = allowed - timedelta(minutes=1)
        assert before < now or g.in_quiet_hours(before.astimezone(tz).time(), quiet)


@settings(max_examples=200, deadline=None)
@given(now=instants, zone=st.sampled_from(ZONES))
def test_outside_quiet_hours_nothing_waits(now: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    if not g.in_quiet_hours(now.astimezone(tz).time(), QUIET):
        assert g.next_allowed(now, tz, QUIET) == now


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 60 * 24 * 30), max_size=30),
    window_h=st.integers(1, 24 * 30),
    now=instants,
)
def test_caps_count_exactly_the_contacts_inside_the_window(offsets: list[int], window_h: int, now: datetime) -> None:
    contacts = [{"rule_id": "r", "at": (now - timedelta(minutes=m)).isoformat()} for m in offsets]
    window = timedelta(hours=window_h)
    assert g.count_within(contacts, now, window) == sum(1 for m in offsets if timedelta(minutes=m) < window)
    assert g.within(contacts, now, window) == any(timedelta(minutes=m) < window for m in offsets)


@settings(max_examples=50, deadline=None)
@given(pct=st.floats(1, 50), rule=st.text("abcdef-", min_size=2, max_size=10))
def test_holdout_is_stable_and_close_to_its_share(pct: float, rule: str) -> None:
    customers = [f"c-{i}" for i in range(4000)]
    held = [c for c in customers if g.in_holdout(rule, c, pct)]
    assert held == [c for c in customers if g.in_holdout(rule, c, pct)]
    assert abs(len(held) / len(customers) * 100 - pct) < 3.5  # binomial spread at n=4000 is < 0.8 points


def test_across_a_dst_change_the_morning_is_still_eight_local() -> None:
    tz = ZoneInfo("Europe/Warsaw")
    # the night clocks go back (2026-10-25, 03:00 CEST → 02:00 CET) and forward (2026-03-29)
    for night in (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 0, 30, tzinfo=UTC)):
        allowed = g.next_allowed(night, tz, QUIET)
        assert allowed.astimezone(tz).time() == time(8)


def test_purchases_are_kept_and_the_winback_and_checkin_mention_them() -> None:
    """order.placed's items: the customer's recent purchases and favourite categories, and the built-in
    texts mention what was bought; an order without items promises nothing."""
    from shared import templates

    rule = Rule.model_validate(builtin("churn-winback", enabled=True, guards={"holdout_pct": 0}))
    shop = Shop([rule])
    headphones = {"category": "headphones", "price": {"amount": "90.00", "currency": "EUR"}}
    shop.send(
        customer(),
        event("order.placed", order_id="o-1", items=[{"sku": "A1", "name": "Aurora X2", "qty": 1, **headphones}]),
        event(
            "order.placed",
            order_id="o-2",
            items=[
                {"sku": "N7", "name": "Nimbus 7", "qty": 2, **headphones},
                {"sku": "C1", "name": "USB-C cable", "qty": 1, "category": "cables"},
            ],
        ),
    )
    kept = shop.state.get("customer", "c-1")
    assert kept is not None
    assert [p["name"] for p in kept["purchases"]] == ["Aurora X2", "Nimbus 7", "USB-C cable"]
    assert kept["favourite_categories"] == ["headphones", "cables"]
    assert shop.state.get("order", "o-2")["products"] == ["Nimbus 7", "USB-C cable"]  # type: ignore[index]
    (winback,) = [e.data.model_dump() for e in shop.runner.on_scores(shop.state, [("c-1", 0.5, 0.8)], shop.clock.now())]
    assert (winback["context"]["last_item"], winback["context"]["favourite_category"]) == ("USB-C cable", "headphones")
    _, parts = templates.render("winback", "pl", winback["context"])
    assert "USB-C cable" in parts["text"]
    assert "w kategorii headphones" in parts["text"]
    _, parts = templates.render("checkin", "en", {"order_id": "o-2", "product": "Nimbus 7"})
    assert "Your order o-2 (Nimbus 7) arrived" in parts["text"]
    # without items: no product, no category, and the texts say nothing of them
    _, parts = templates.render("winback", "en", {"orders": 2, "last_item": "", "favourite_category": ""})
    assert "what is new" not in parts["text"]
    assert "enjoying" not in parts["text"]


@pytest.mark.parametrize(("counted", "sent"), [(None, 0), (["email", "sms", "push", "phone", "webhook", "inapp"], 1)])
def test_a_popup_to_a_known_customer_counts_against_the_contact_policy(counted: list[str] | None, sent: int) -> None:
    """The visitor logged in (a known customer) and was shown a pop-up an hour before the check-in
    falls due; the check-in meets the policy's 12-hour cool-down, as after an e-mail; unless the
    policy does not count pop-ups."""
    policy = ContactPolicy() if counted is None else ContactPolicy(channels=counted)
    shop = Shop(policy=policy)
    base = {"visitor_id": "v-1", "session_id": "s-1"}
    shown = T0 + timedelta(days=3) - timedelta(hours=1)
    shop.send(customer(), *delivered())
    shop.wait(timedelta(days=3) - timedelta(hours=1), step=timedelta(hours=1))
    shop.send(
        event("session.started", subject="v-1", time=shown, customer_id="c-1", **base),
        event(
            "popup.shown",
            subject="v-1",
            time=shown,
            visitor_id="v-1",
            rule_id="lingering-visitor-callback",
            detail={"session_id": "s-1"},
            channel="popup",
        ),
    )
    contacts = shop.state.get("customer", "c-1")["contacts"]  # type: ignore[index]
    assert [(c["channel"], c["scope"]) for c in contacts] == [("popup", "s-1")]
    shop.wait(timedelta(hours=3), step=timedelta(minutes=10))
    assert len(shop.sent(CHECKIN)) == sent
    if not sent:  # explained like any other suppression
        (held,) = [d for d in shop.decided(CHECKIN) if d["outcome"] == "suppressed"]
        assert held["guard"] == "cooldown"
        assert "cool-down" in held["why"]


# --- after-sales ---------------------------------------------------------------------------------
def case_event(kind: str, case_id: str = "k-1", cid: str = "c-1", **data: Any) -> Event:
    return event(f"service_case.{kind}", subject=cid, case_id=case_id, **data)


def test_a_repair_case_walks_its_states_with_one_message_each() -> None:
    shop = Shop()
    promised = T0 + timedelta(days=5)
    shop.send(customer(), case_event("opened", promised_by=promised.isoformat(), time=T0))
    assert [a["context"]["promised_by"] for a in shop.sent("repair-received")] == [promised.isoformat()]
    for status in ("diagnosed", "waiting_for_parts"):
        shop.send(case_event("updated", status=status))
    assert shop.state.get("case", "k-1")["status"] == "waiting_for_parts"
    shop.wait(timedelta(days=3, hours=23))
    assert shop.sent("repair-overdue") == []
    shop.wait(timedelta(hours=2))  # a day before the promise, still waiting for parts
    overdue = shop.sent("repair-overdue")
    assert len(overdue) == 1
    assert overdue[0]["context"]["status"] == "waiting_for_parts"
    shop.send(case_event("updated", status="ready"), case_event("updated", status="ready"))
    shop.send(case_event("updated", status="returned"), case_event("completed", status="closed"))
    assert len(shop.sent("repair-ready")) == 1
    assert len(shop.sent("repair-received")) == 1
    assert len(shop.sent("repair-overdue")) == 1
    steps = [s["status"] for s in shop.state.get("case", "k-1")["steps"]]
    assert steps == ["received", "diagnosed", "waiting_for_parts", "ready", "ready", "returned", "closed"]


def test_a_moved_promise_moves_the_warning_and_a_ready_case_gets_none() -> None:
    shop = Shop()
    shop.send(customer(), case_event("opened", promised_by=(T0 + timedelta(days=4)).isoformat(), time=T0))
    shop.send(case_event("updated", status="waiting_for_parts", promised_by=(T0 + timedelta(days=8)).isoformat()))
    shop.wait(timedelta(days=6, hours=12))
    assert shop.sent("repair-overdue") == []  # the first promise's warning saw the later promise
    shop.wait(timedelta(days=1))
    assert len(shop.sent("repair-overdue")) == 1
    ready = Shop()
    ready.send(customer(), case_event("opened", promised_by=(T0 + timedelta(days=4)).isoformat(), time=T0))
    ready.send(case_event("updated", status="ready"))
    ready.wait(timedelta(days=5))
    assert ready.sent("repair-overdue") == []
    assert len(ready.sent("repair-ready")) == 1


def test_closing_a_case_early_cancels_the_pending_warning() -> None:
    shop = Shop()
    shop.send(customer(), case_event("opened", promised_by=(T0 + timedelta(days=5)).isoformat(), time=T0))
    shop.send(case_event("completed", status="returned"))
    shop.wait(timedelta(days=6))
    assert shop.sent("repair-overdue") == []
    assert shop.state.pending_timers() == 0
    assert [d["outcome"] for d in shop.decided("repair-overdue")] == ["cancelled"]


def test_a_late_status_event_does_not_move_a_case_back() -> None:
    shop = Shop()
    shop.send(customer(), case_event("opened", time=T0))
    shop.send(case_event("updated", status="ready", time=T0 + timedelta(hours=2)))
    shop.send(case_event("updated", status="diagnosed", time=T0 + timedelta(hours=1)))  # retried late
    case = shop.state.get("case", "k-1")
    assert case["status"] == "ready"
    assert [s["status"] for s in case["steps"]][-1] == "diagnosed"


# --- callbacks -------------------------------------------------------------------------------------
def callback(request_id: str = "r-1", visitor: str = "v-1", **data: Any) -> Event:
    promised = (T0 + timedelta(hours=2)).isoformat()
    fields = {"request_id": request_id, "visitor_id": visitor, "customer_id": None, "promised_by": promised, **data}
    return event("callback.requested", subject=data.get("customer_id") or visitor, **fields)


def test_a_callback_not_made_by_its_promise_brings_one_apology_to_the_visitor_who_asked() -> None:
    shop = Shop()
    shop.send(callback(email="ana@example.com", phone=None, locale="hr-HR"))
    shop.wait(timedelta(hours=1, minutes=59))
    assert shop.sent("callback-apology") == []
    shop.wait(timedelta(hours=1))
    (apology,) = shop.sent("callback-apology")
    # an anonymous visitor, reached at the address they left, with no consent asked beyond the request
    assert (apology["customer_id"], apology["channel"], apology["locale"]) == ("v-1", "email", "hr-HR")
    assert apology["consent_required"] is False
    assert apology["context"]["new_promise"] > apology["context"]["promised_by"]
    assert shop.state.get("customer", "v-1")["has_email"] is True


def test_a_call_recorded_in_time_cancels_the_apology() -> None:
    shop = Shop()
    shop.send(customer("c-9"), callback(customer_id="c-9", phone="+48123456789", email=None))
    shop.wait(timedelta(hours=1))
    shop.send(event("callback.updated", subject="c-9", request_id="r-1", visitor_id="v-1", customer_id="c-9"))
    shop.wait(timedelta(hours=3))
    assert shop.sent("callback-apology") == []
    assert shop.state.pending_timers() == 0
