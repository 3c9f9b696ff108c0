"""The engine's domain: state from events, and the built-in delay notice run by the rule runner, on
plain state, no servers."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.clock import ManualClock
from shared.contract import Event
from shared.engine.handlers import handle, timer_event
from shared.engine.runner import RuleBook, RuleRunner, timer_id
from shared.engine.scoring import Scorers
from shared.engine.state import ORDER, PartitionState
from shared.models.registry import Registry
from shared.rules import RuleSet, builtin_rules
from tests.factories import event

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RULES = RuleSet(builtin_rules())
RUNNER = RuleRunner(RuleBook(RULES))
DELAY_NOTICE = RULES.rules["delay-notice"]


def run(state: PartitionState, events: list[Event], clock: ManualClock) -> list[Event]:
    out: list[Event] = []
    for e in events:
        out += handle(state, e, clock.now(), rules=RUNNER)
    return out


def fire_due(state: PartitionState, clock: ManualClock) -> list[Event]:
    """What the engine loop does with due timers: publish timer.fired, then consume it."""
    out: list[Event] = []
    for timer in state.due(clock.now()):
        out += handle(state, timer_event(timer, clock.now()), clock.now(), rules=RUNNER)
    return out


def placed(ship_in: timedelta, deliver_in: timedelta = timedelta(days=3)) -> Event:
    return event(
        "order.placed",
        promised_ship_by=(T0 + ship_in).isoformat(),
        promised_delivery_by=(T0 + deliver_in).isoformat(),
    )


def consenting_customer() -> Event:
    return event("customer.upserted", consents={"email": False, "sms": True})


def test_unshipped_order_gets_one_delay_notice_when_the_promise_passes() -> None:
    clock, state = ManualClock(T0), PartitionState(0)
    assert run(state, [consenting_customer(), placed(timedelta(hours=2))], clock) == []
    clock.advance(timedelta(hours=1))
    assert fire_due(state, clock) == []
    clock.advance(timedelta(hours=1, seconds=1))
    actions = fire_due(state, clock)
    assert [a.type for a in actions] == ["action.requested"]
    action = actions[0].data.model_dump()
    assert action["channel"] == "sms"  # the first consented channel
    assert action["idempotency_key"] == "delay-notice:o-1"
    assert action["context"]["reason"] == "not_shipped_by_promise"
    clock.advance(timedelta(days=1))
    assert fire_due(state, clock) == []


def test_order_shipped_in_time_gets_no_notice() -> None:
    clock, state = ManualClock(T0), PartitionState(0)
    run(
        state,
        [consenting_customer(), placed(timedelta(hours=2)), event("order.shipped", estimated_delivery=None)],
        clock,
    )
    clock.advance(timedelta(days=5))
    assert fire_due(state, clock) == []
    assert state.pending_timers() == 0


def test_cancelled_or_delivered_order_gets_no_notice() -> None:
    for closing in ("order.cancelled", "order.delivered"):
        clock, state = ManualClock(T0), PartitionState(0)
        run(state, [consenting_customer(), placed(timedelta(hours=2)), event(closing)], clock)
        clock.advance(timedelta(days=1))
        assert fire_due(state, clock) == []


def test_eta_slipping_twice_sends_one_notice() -> None:
    clock, state = ManualClock(T0), PartitionState(0)
    out = run(state, [consenting_customer(), placed(timedelta(hours=2), timedelta(days=2))], clock)
    out += run(state, [event("order.shipped", estimated_delivery=(T0 + timedelta(days=1)).isoformat())], clock)
    assert out == []
    out += run(state, [event("order.eta_changed", estimated_delivery=(T0 + timedelta(days=4)).isoformat())], clock)
    out += run(state, [event("order.eta_changed", estimated_delivery=(T0 + timedelta(days=6)).isoformat())], clock)
    assert len(out) == 1
    assert out[0].data.model_dump()["context"]["reason"] == "eta_past_promise"


def test_customer_without_consent_is_not_contacted() -> None:
    clock, state = ManualClock(T0), PartitionState(0)
    run(state, [event("customer.upserted", consents={}), placed(timedelta(minutes=1))], clock)
    clock.advance(timedelta(minutes=2))
    assert fire_due(state, clock) == []
    (decision,) = state.take_decisions()
    assert (decision["outcome"], decision["guard"]) == ("suppressed", "consent")


def test_a_replayed_event_id_has_no_second_effect() -> None:
    clock, state = ManualClock(T0), PartitionState(0)
    order = placed(timedelta(hours=1))
    run(state, [consenting_customer(), order, order], clock)
    assert state.get("customer", "c-1")["orders"] == 1  # type: ignore[index]
    clock.advance(timedelta(hours=2))
    (timer,) = state.due(clock.now())
    fired = timer_event(timer, clock.now())
    assert len(run(state, [fired], clock)) == 1
    assert run(state, [fired], clock) == []


def test_state_restored_from_its_changelog_equals_the_original() -> None:
    clock, state = ManualClock(T0), PartitionState(3)
    run(
        state,
        [consenting_customer(), placed(timedelta(hours=1)), event("order.placed", order_id="o-2")],
        clock,
    )
    assert state.cancel(timer_id(DELAY_NOTICE, 0, "c-1", "o-2"))
    restored = PartitionState(3)
    for key, value in state.changelog_records():
        restored.restore(key, value)
    restored.finish_restore()
    assert restored.get(ORDER, "o-1") == state.get(ORDER, "o-1")
    assert restored.pending_timers() == state.pending_timers() == 1
    clock.advance(timedelta(hours=2))
    assert len(fire_due(restored, clock)) == 1


def test_between_batches_state_is_held_as_its_changelog_bytes() -> None:
    """Entities are bytes once their batch's changelog is written: nothing for the cycle collector
    to walk, and a decoded copy changed without ``put`` changes nothing."""
    clock, state = ManualClock(T0), PartitionState(0)
    first = consenting_customer()
    run(state, [first, placed(timedelta(hours=1))], clock)
    records = dict(state.changelog_records())
    held = state._entities["order:o-1"]
    assert type(held) is bytes
    assert held == records[b"order:o-1"]
    assert not gc.is_tracked(held)
    order = state.get(ORDER, "o-1")
    assert order is not None
    assert order["status"] == "placed"
    order["status"] = "changed without put"
    list(state.changelog_records())  # the next batch: nothing was put, so nothing was written
    fresh = state.get(ORDER, "o-1")
    assert fresh is not None
    assert fresh["status"] == "placed"
    # de-duplication still holds after the changelog was written, and after a restore from it
    assert run(state, [first], clock) == []
    assert state.count("seen") == 1
    restored = PartitionState(0)
    for key, value in records.items():
        restored.restore(key, value)
    restored.finish_restore()
    assert restored.seen(first.subject, first.id)


def test_sessions_and_customers_are_scored_with_the_promoted_models(model_registry: Path) -> None:
    scorers = Scorers(Registry(model_registry))
    state, clock = PartitionState(0), ManualClock(T0)
    visitor = "v-9"
    browse = [
        event("session.started", subject=visitor, session_id="s-9"),
        *[
            event("page.viewed", subject=visitor, session_id="s-9", url=f"/p/{i}", page_type="product", duration_s=30)
            for i in range(6)
        ],
    ]
    for e in browse:
        handle(state, e, clock.now(), scorers)
    scorers.flush(state)
    session = state.get("session", "s-9")
    assert session is not None
    assert len(session["pages"]) == 6
    assert session["pages"][0]["duration_s"] == 30  # the next page view told how long the first one lasted
    assert 0.0 <= session["intent"]["score"] <= 1.0
    assert session["intent"]["model_version"] == scorers.intent.current().version  # type: ignore[union-attr]

    handle(state, consenting_customer(), clock.now(), scorers)
    handle(state, placed(timedelta(days=1)), clock.now(), scorers)
    scorers.flush(state)
    one_order = state.get("customer", "c-1")["churn"]["score"]  # type: ignore[index]
    for i in range(2, 6):
        clock.advance(timedelta(days=20))
        handle(state, event("order.placed", order_id=f"o-{i}", time=clock.now()), clock.now(), scorers)
    scorers.flush(state)
    loyal = state.get("customer", "c-1")["churn"]["score"]  # type: ignore[index]
    assert loyal < one_order  # a regular buyer is less likely to leave than a one-time one


def test_a_session_score_is_refreshed_at_most_every_intent_refresh(model_registry: Path) -> None:
    scorers, state = Scorers(Registry(model_registry), intent_refresh=timedelta(seconds=30)), PartitionState(0)

    def view(i: int, at: timedelta) -> None:
        e = event("page.viewed", subject="v-1", session_id="s-1", url=f"/p/{i}", page_type="product", time=T0 + at)
        handle(state, e, T0 + at, scorers)
        scorers.flush(state)

    view(0, timedelta(0))
    first = state.get("session", "s-1")["intent"]  # type: ignore[index]
    view(1, timedelta(seconds=10))
    assert state.get("session", "s-1")["intent"] == first  # type: ignore[index]
    view(2, timedelta(seconds=31))
    assert state.get("session", "s-1")["intent"]["at"] == (T0 + timedelta(seconds=31)).isoformat()  # type: ignore[index]


def test_without_a_promoted_model_nothing_is_scored(tmp_path: Path) -> None:
    scorers = Scorers(Registry(tmp_path))
    state = PartitionState(0)
    handle(state, event("page.viewed", subject="v", session_id="s"), T0, scorers)
    scorers.flush(state)
    assert "intent" not in state.get("session", "s")  # type: ignore[operator]


def test_a_ticket_read_after_a_later_order_is_still_scored(model_registry: Path) -> None:
    """Topics have no order between them; an earlier ticket may arrive after a later order."""
    scorers, state = Scorers(Registry(model_registry)), PartitionState(0)
    handle(state, event("order.placed", time=T0 + timedelta(hours=1)), T0, scorers)
    handle(state, event("ticket.opened", time=T0), T0, scorers)
    scorers.flush(state)
    assert state.get("customer", "c-1")["tickets"] == 1  # type: ignore[index]
    assert "churn" in state.get("customer", "c-1")  # type: ignore[operator]


def test_a_visitor_who_logs_in_is_linked_to_the_customer_in_later_sessions() -> None:
    state = PartitionState(0)
    handle(state, event("session.started", subject="v-5", session_id="s-1", customer_id="c-5"), T0)
    handle(state, event("session.started", subject="v-5", session_id="s-2", customer_id=None), T0)
    handle(state, event("page.viewed", subject="v-5", session_id="s-2"), T0)
    assert state.get("session", "s-2")["customer_id"] == "c-5"  # type: ignore[index]
    assert state.get("session", "s-2")["returning"] is True  # type: ignore[index]


def test_a_silent_customer_is_refreshed_on_their_own_phase_and_sooner_after_a_promotion(
    churn_model: Path, tmp_path: Path
) -> None:
    from shared.engine.scoring import CHURN_REFRESH, refresh_due

    registry = Registry(tmp_path / "registry")  # its own: this test promotes a second model
    registry.promote("churn", registry.add(churn_model))
    scorers = Scorers(registry, churn_refresh=timedelta(days=1))
    state = PartitionState(0)
    for cid in ("c-1", "c-2", "c-3"):
        handle(state, event("customer.upserted", subject=cid, consents={"email": True}), T0, scorers)
        handle(state, event("order.placed", subject=cid, order_id=f"o-{cid}", time=T0), T0, scorers)
    scorers.flush(state)
    due = {t.key: t.due_at for t in state.timers() if t.kind == CHURN_REFRESH}
    assert set(due) == {"c-1", "c-2", "c-3"}
    assert all(T0 < d <= T0 + timedelta(days=2) for d in due.values())
    assert len({d.time() for d in due.values()}) == 3  # each customer on a phase of their own
    assert due["c-1"] == refresh_due("c-1", T0, timedelta(days=1))  # stable: the same id, the same phase
    # a new churn model: every refresh comes within the hour
    import shutil

    copy = tmp_path / "churn-again"
    shutil.copytree(churn_model, copy)
    meta = (copy / "metadata.json").read_text().replace('"version": "', '"version": "again-', 1)
    (copy / "metadata.json").write_text(meta)
    state.now_s = (T0 + timedelta(hours=5)).timestamp()
    registry.promote("churn", registry.add(copy))
    scorers.churn.refresh(force=True)
    scorers.flush(state)
    soon = [t.due_at for t in state.timers() if t.kind == CHURN_REFRESH]
    assert all(d <= T0 + timedelta(hours=6) for d in soon)


def test_a_churn_refresh_already_set_for_that_moment_is_not_written_again(churn_model: Path, tmp_path: Path) -> None:
    """Each scoring of a customer arms their refresh; events of the same interval land on the same
    phase point, and the timer is then left as it is (no changelog record for it)."""
    from shared.engine.scoring import CHURN_REFRESH

    registry = Registry(tmp_path / "registry")
    registry.promote("churn", registry.add(churn_model))
    scorers, state = Scorers(registry, churn_refresh=timedelta(days=1)), PartitionState(0)
    handle(state, event("order.placed", order_id="o-1", time=T0), T0, scorers)
    scorers.flush(state)
    state.take_changes()
    handle(state, event("order.placed", order_id="o-2", time=T0 + timedelta(minutes=5)), T0, scorers)
    scorers.flush(state)
    written = state.take_changes()
    assert "customer:c-1" in written  # scored again: the score moved with the second order
    assert f"timer:{CHURN_REFRESH}:c-1" not in written
    # a day later the refresh moves to the next phase point, and is written
    handle(state, event("order.placed", order_id="o-3", time=T0 + timedelta(days=1, hours=1)), T0, scorers)
    scorers.flush(state)
    assert f"timer:{CHURN_REFRESH}:c-1" in state.take_changes()
    assert len([t for t in state.timers() if t.kind == CHURN_REFRESH]) == 1


def test_the_collector_is_off_during_a_batch_and_back_on_after_it_even_when_it_fails() -> None:
    from services.engine.app import _no_collection

    assert gc.isenabled()
    try:
        with _no_collection():
            assert not gc.isenabled()
            raise RuntimeError("a batch that fails")
    except RuntimeError:
        pass
    assert gc.isenabled()
    gc.disable()  # whoever turned it off before keeps it off
    try:
        with _no_collection():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
