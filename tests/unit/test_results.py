"""The uplift interval against Newcombe's published examples, and the tally of a rule's messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.admin.results import tally, uplift, wilson


@pytest.mark.parametrize(
    ("treated", "control", "low", "high"),
    [((56, 70), (48, 80), 0.0524, 0.3339), ((9, 10), (3, 10), 0.1705, 0.8090), ((5, 56), (0, 29), -0.0381, 0.1926)],
)
def test_the_uplift_interval_is_newcombes_method_10(
    treated: tuple[int, int], control: tuple[int, int], low: float, high: float
) -> None:
    found = uplift(treated, control)
    assert found["low"] == pytest.approx(low, abs=5e-4)
    assert found["high"] == pytest.approx(high, abs=5e-4)


def test_wilson_stays_inside_zero_and_one() -> None:
    assert wilson(0, 10)[0] == 0.0
    assert wilson(10, 10)[1] == pytest.approx(1.0)
    assert uplift((1, 10), (0, 0))["difference"] is None


def test_the_tally_counts_an_order_inside_the_window_after_the_message_only() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    messages = [
        {
            "customer_id": "a",
            "channel": "email",
            "locale": "pl",
            "status": "delivered",
            "created_at": t0,
            "opened_at": t0,
        },
        {"customer_id": "b", "channel": "email", "locale": "en", "status": "failed", "created_at": t0},
        {"customer_id": "c", "channel": "sms", "locale": "pl", "holdout": True, "status": "holdout", "created_at": t0},
        {"customer_id": "d", "channel": "sms", "locale": None, "holdout": True, "status": "holdout", "created_at": t0},
    ]
    orders = {
        "a": [t0 - timedelta(days=3), t0 + timedelta(days=2)],  # the order before the message does not count
        "b": [t0 + timedelta(days=9)],  # outside a 7-day window
        "c": [t0 + timedelta(hours=1)],
    }
    found = tally(messages, orders, timedelta(days=7))
    overall = found["overall"]
    assert (overall["sent"], overall["delivered"], overall["failed"], overall["opened"]) == (2, 1, 1, 1)
    assert (overall["converted"], overall["holdout"], overall["holdout_converted"]) == (1, 2, 1)
    assert overall["conversion_rate"] == 0.5
    assert overall["uplift"]["difference"] == 0.0
    assert found["by_channel"]["sms"]["sent"] == 0
    assert found["by_channel"]["sms"]["uplift"]["difference"] is None
    assert found["by_locale"]["pl"]["converted"] == 1
    assert found["by_locale"]["-"]["holdout"] == 1
