"""The failure model on plain state, no servers: a record that fails leaves nothing half-done, and
absurd times and numbers are refused at the contract with the field named (docs/architecture.md,
"Failure model"). The same on the real broker: tests/integration/test_failure_model.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from shared.clock import LATEST, shifted
from shared.contract import ARCHIVE, InvalidEvent, TimeWindow, decode
from shared.engine.handlers import handle
from shared.engine.runner import RuleBook, RuleRunner
from shared.engine.state import CUSTOMER, PartitionState, Timer
from shared.rules import RuleSet, builtin_rules
from tests.factories import event

RUNNER = RuleRunner(RuleBook(RuleSet(builtin_rules())))


def raw(type_: str, time: str | None = None, **data: object) -> bytes:
    """A structured CloudEvent as a producer would write it: ``data`` overrides a valid event's."""
    doc = event(type_).to_dict()
    doc["data"].update(data)
    if time is not None:
        doc["time"] = time
    return orjson.dumps(doc)


def test_a_rollback_undoes_entities_seen_ids_timers_and_decisions_of_one_record() -> None:
    state = PartitionState(0)
    now = datetime.now(UTC)
    handle(state, event("customer.upserted", subject="c-1", customer_id="c-1"), now, rules=RUNNER)
    kept_timer = Timer("t-kept", "rule", "c-1", now + timedelta(days=1), {})
    state.schedule(kept_timer)
    list(state.changelog_records())  # the batch so far is committed
    before = (state.get(CUSTOMER, "c-1"), state.timers(), state.count(CUSTOMER))

    state.savepoint()
    placed = event("order.placed", subject="c-1", customer_id="c-1", order_id="o-9")
    handle(state, placed, now, rules=RUNNER)
    state.schedule(Timer("t-new", "rule", "c-1", now, {}))
    state.cancel("t-kept")
    state.put(CUSTOMER, "c-2", {"customer_id": "c-2"})
    state.decide({"rule_id": "r", "outcome": "fired"})
    assert state.get(CUSTOMER, "c-1") != before[0]
    state.rollback()

    assert (state.get(CUSTOMER, "c-1"), state.timers(), state.count(CUSTOMER)) == before
    assert state.get("order", "o-9") is None
    assert not state.seen("c-1", placed.id)  # the event can be applied again, whole
    assert state.take_decisions() == []
    assert list(state.changelog_records()) == []  # nothing half-made reaches the changelog
    assert [t.timer_id for t in state.due(now + timedelta(days=2))] == ["t-kept"]


def test_a_released_savepoint_keeps_the_changes() -> None:
    state = PartitionState(0)
    state.savepoint()
    state.put(CUSTOMER, "c-1", {"customer_id": "c-1"})
    state.release()
    state.rollback()  # nothing to undo any more
    assert state.get(CUSTOMER, "c-1") == {"customer_id": "c-1"}


@pytest.mark.parametrize(
    ("time", "field"),
    [
        ("9999-12-31T23:59:59Z", "time"),  # stopped the engine once: the check-in's time + delay overflowed
        ("1999-12-31T23:59:59Z", "time"),
        ((datetime.now(UTC) + timedelta(days=2)).isoformat(), "time"),
    ],
)
def test_an_event_time_outside_the_window_is_refused_naming_the_field(time: str, field: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        decode(raw("order.delivered", time=time))
    assert refused.value.field == field
    assert "outside the accepted window" in refused.value.reason


def test_a_date_in_the_data_may_be_further_ahead_but_not_absurdly() -> None:
    months = (datetime.now(UTC) + timedelta(days=200)).isoformat()
    assert decode(raw("order.placed", promised_delivery_by=months)).type == "order.placed"
    with pytest.raises(InvalidEvent) as refused:
        decode(raw("order.placed", promised_delivery_by="2999-01-01T00:00:00Z"))
    assert refused.value.field == "data.promised_delivery_by"


def test_an_archive_of_1997_is_read_with_the_archive_window() -> None:
    old = raw("order.placed", time="1997-03-01T10:00:00Z", promised_delivery_by=None, promised_ship_by=None)
    with pytest.raises(InvalidEvent):
        decode(old)
    assert decode(old, window=ARCHIVE).time.year == 1997


def test_the_window_is_a_setting() -> None:
    wide = TimeWindow(ahead=timedelta(days=30))
    soon = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    assert decode(raw("order.delivered", time=soon), window=wide).type == "order.delivered"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"total": {"amount": "NaN", "currency": "EUR"}}, "data.total.amount"),
        ({"total": {"amount": "1e30", "currency": "EUR"}}, "data.total.amount"),
        ({"items": [{"qty": 18446744073709551615}]}, "data.items.0.qty"),
    ],
)
def test_non_finite_and_huge_numbers_are_refused(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        decode(raw("order.placed", **data))
    assert refused.value.field == field


def test_infinite_durations_are_refused() -> None:
    with pytest.raises(InvalidEvent) as refused:
        decode(raw("page.viewed", duration_s="Infinity"))
    assert refused.value.field == "data.duration_s"


def test_arithmetic_on_times_is_clamped_not_raised() -> None:
    edge = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    assert shifted(edge, timedelta(days=3)) == LATEST
    assert shifted(datetime(2026, 1, 1, tzinfo=UTC), timedelta(days=3)) == datetime(2026, 1, 4, tzinfo=UTC)
    assert shifted(datetime(1, 1, 2, tzinfo=UTC), -timedelta(days=3)).year == 1970


def test_a_back_test_counts_an_event_that_fails_and_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.engine import backtest, handlers
    from tests.factories import purchase_history

    def broken(state: PartitionState, e: object, now: datetime) -> list[object]:
        raise OverflowError("date value out of range")

    history = purchase_history(customers=6, returns=0, no_consent=0)
    rule = RuleSet(builtin_rules()).rules["post-purchase-checkin"]
    until = datetime(2026, 10, 20, tzinfo=UTC)  # the check-ins are due 3 days after the deliveries
    whole = backtest.run(rule, [], RuleSet([]).policy, history, until)
    monkeypatch.setitem(handlers.HANDLERS, "order.return_requested", broken)
    monkeypatch.setitem(handlers.HANDLERS, "order.placed", broken)
    result = backtest.run(rule, [], RuleSet([]).policy, history, until)
    assert result["failed_events"] == {"OverflowError": 6}
    assert whole["failed_events"] == {}
    assert result["messages"] == whole["messages"] > 0  # the deliveries still start their check-ins


def test_idle_sessions_visitors_and_seen_ids_expire_with_tombstones_and_their_timers() -> None:
    from shared.engine.state import SESSION, VISITOR, Expiry

    expiry = Expiry(session=timedelta(hours=2), visitor=timedelta(days=30), seen=timedelta(days=7))
    state = PartitionState(0, expiry=expiry)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)

    def at(when: datetime, *events: object) -> None:
        state.now_s = when.timestamp()
        for e in events:
            handle(state, e, when, rules=RUNNER)  # type: ignore[arg-type]

    at(
        t0,
        event("page.viewed", subject="v-old", visitor_id="v-old", session_id="s-old"),
        event("customer.upserted", subject="c-1", customer_id="c-1"),
    )
    state.schedule(Timer("t-old", "rule", "v-old", t0 + timedelta(days=90), {}))
    list(state.changelog_records())
    at(t0 + timedelta(days=29), event("page.viewed", subject="v-new", visitor_id="v-new", session_id="s-new"))
    list(state.changelog_records())

    assert state.expire(t0 + timedelta(days=29, hours=1)) == 3  # s-old, and the seen ids of v-old and c-1
    assert state.get(SESSION, "s-old") is None
    assert state.get(SESSION, "s-new") is not None
    assert state.get(VISITOR, "v-old") is not None  # 30 days for visitors
    assert state.expire(t0 + timedelta(days=31)) == 2  # v-old, and s-new idle for two days now
    assert state.get(VISITOR, "v-old") is None
    assert state.timers() == []  # the expired visitor's timer went with it
    assert state.get(CUSTOMER, "c-1") is not None  # the shop's records do not expire
    tombstones = {k.decode() for k, v in state.changelog_records() if v is None}
    assert tombstones == {"session:s-old", "seen:v-old", "seen:c-1", "visitor:v-old", "timer:t-old", "session:s-new"}
    assert state.live_keys() == 3  # c-1, v-new and v-new's seen ids


def test_savepoints_nest_and_the_outermost_decides() -> None:
    state = PartitionState(0)
    state.savepoint()  # the engine's, around the handlers' own
    handle(state, event("customer.upserted", subject="c-9", customer_id="c-9"), datetime.now(UTC), rules=RUNNER)
    assert state.get(CUSTOMER, "c-9") is not None  # the handlers released theirs
    state.rollback()  # the encoding of the outputs failed: the whole event goes
    assert state.get(CUSTOMER, "c-9") is None
