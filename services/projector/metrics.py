"""The projector's metrics (names follow OpenTelemetry conventions; ``proact.`` for ours)."""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.metrics import Observation

from services.projector.app import Projector

meter = metrics.get_meter("proact.projector")


def observe(projector: Projector) -> None:
    """Gauges read from the running projector when metrics are collected: how far MongoDB's view is
    behind the topics, in records and in event time."""
    meter.create_observable_gauge(
        "proact.projector.lag", [lambda _: [Observation(projector.total_lag)]], unit="{record}"
    )
    meter.create_observable_gauge(
        "proact.projector.lag_seconds", [lambda _: [Observation(projector.lag_seconds)]], unit="s"
    )
