"""Page statistics as web analytics define them, computed from recorded sessions; kept beside the
intent model under its checksum, so a tampered file is refused and the last good model stays."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.features.intent import PageStat
from shared.features.page_stats import PAGE_STATS_FILE, PageStats, RecordedSession, compute, sessions_from_events
from shared.models.registry import ModelRefused, attach_page_stats, load_artifact
from tests.factories import event


def test_bounce_exit_and_value_follow_their_definitions() -> None:
    stats = compute(
        [
            RecordedSession("s1", ("/",), 0.0),  # entered on /, left: a bounce
            RecordedSession("s2", ("/", "/p/1", "/cart"), 100.0),  # bought: 100 to each page it viewed
            RecordedSession("s3", ("/p/1", "/p/1", "/help"), 0.0),  # /p/1 twice: one unique view
        ]
    )
    assert stats["/"] == PageStat(bounce_rate=0.5, exit_rate=0.5, page_value=50.0)
    # /p/1: entered once (no bounce), 3 views of which none was the last, 2 unique views, 100 revenue
    assert stats["/p/1"] == PageStat(bounce_rate=0.0, exit_rate=0.0, page_value=50.0)
    assert stats["/cart"] == PageStat(bounce_rate=0.0, exit_rate=1.0, page_value=100.0)
    assert stats["/help"] == PageStat(bounce_rate=0.0, exit_rate=1.0, page_value=0.0)


def test_an_order_counts_for_the_session_its_customer_was_in() -> None:
    t0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    base = {"visitor_id": "v1", "session_id": "s1"}
    other = {"visitor_id": "v2", "session_id": "s2"}
    events = [
        event("session.started", "v1", t0, **base, customer_id="c1"),
        event("page.viewed", "v1", t0 + timedelta(seconds=10), **base, url="/p/1", page_type="product"),
        event("session.started", "v2", t0, **other),  # anonymous: no order can be its
        event("page.viewed", "v2", t0 + timedelta(seconds=5), **other, url="/p/1", page_type="product"),
        event(
            "order.placed",
            "c1",
            t0 + timedelta(minutes=5),
            order_id="o1",
            customer_id="c1",
            total={"amount": "80.00", "currency": "EUR"},
        ),
        event(
            "order.placed",
            "c1",
            t0 + timedelta(days=2),
            order_id="o2",
            customer_id="c1",
            total={"amount": "999.00", "currency": "EUR"},
        ),  # another day: not this session's
    ]
    recorded, states = sessions_from_events(reversed(events))  # replayed in time order, whatever the input's
    by_id = {s.session_id: s for s in recorded}
    assert by_id["s1"] == RecordedSession("s1", ("/p/1",), 80.0)
    assert by_id["s2"].revenue == 0.0
    assert states["s1"]["customer_id"] == "c1"


def test_a_tampered_statistics_file_is_refused(intent_model: Path, tmp_path: Path) -> None:
    stats = PageStats.from_sessions([RecordedSession("s", ("/cart",), 50.0)], source="test")
    out = attach_page_stats(intent_model, stats, tmp_path / "with-stats")
    loaded = load_artifact(out, "intent")
    assert loaded.page_stats == {"/cart": PageStat(1.0, 1.0, 50.0)}
    assert loaded.version.endswith(f"-ps{loaded.metadata['page_stats']['sha256'][:8]}")
    assert load_artifact(intent_model, "intent").page_stats == {}  # the original is untouched
    raw = json.loads((out / PAGE_STATS_FILE).read_text())
    raw["pages"]["/cart"][2] = 5000.0
    (out / PAGE_STATS_FILE).write_text(json.dumps(raw))
    with pytest.raises(ModelRefused, match="tampered"):
        load_artifact(out, "intent")
