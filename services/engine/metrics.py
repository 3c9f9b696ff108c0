"""The engine's metrics, in one place (names follow OpenTelemetry conventions; ``proact.`` for ours)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

meter = metrics.get_meter("proact.engine")

events = meter.create_counter("proact.engine.events", unit="{event}", description="events consumed, by topic and type")
dead_letters = meter.create_counter(
    "proact.engine.dead_letters",
    unit="{event}",
    description="events sent to a dead-letter topic, by topic and error type",
)
failures = meter.create_counter(
    "proact.engine.failures",
    unit="{failure}",
    description="scores, score rules or timers that failed for one entity and were skipped, by step and error",
)
actions = meter.create_counter(
    "proact.engine.actions", unit="{action}", description="actions requested, by rule and channel"
)
decisions = meter.create_counter(
    "proact.rule.decisions", unit="{decision}", description="rule evaluations recorded, by rule, outcome and guard"
)
timers_fired = meter.create_counter("proact.engine.timers.fired", unit="{timer}", description="timers fired")
transactions = meter.create_counter(
    "proact.engine.transactions",
    unit="{transaction}",
    description="transactions ended, by outcome (committed, aborted) and, when aborted, error type",
)
batch_duration = meter.create_histogram(
    "proact.engine.batch.duration", unit="s", description="time to process and commit one batch"
)


def observe(pending_timers: Callable[[], int], lag: Callable[[], dict[tuple[str, int], int]]) -> None:
    """Gauges read from the running engine when metrics are collected."""

    def timers(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(pending_timers())

    def consumer_lag(_: CallbackOptions) -> Iterable[Observation]:
        for (topic, partition), value in lag().items():
            yield Observation(
                value, {"messaging.destination.name": topic, "messaging.destination.partition.id": str(partition)}
            )

    meter.create_observable_gauge("proact.engine.timers.pending", [timers], unit="{timer}")
    meter.create_observable_gauge("messaging.kafka.consumer.lag", [consumer_lag], unit="{message}")
