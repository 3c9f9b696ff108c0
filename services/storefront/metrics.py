"""The storefront's metrics (OpenTelemetry meters; ``proact.`` names for ours)."""

from __future__ import annotations

from opentelemetry import metrics

meter = metrics.get_meter("proact.storefront")

decide_duration = meter.create_histogram(
    "proact.storefront.decide.duration", unit="s", description="time to decide whether to show a pop-up"
)
decisions = meter.create_counter(
    "proact.storefront.decisions", unit="{decision}", description="decision calls, by answer (show, none, holdout)"
)
fail_safe = meter.create_counter(
    "proact.storefront.decide.fail_safe", unit="{decision}", description="'no pop-up' answers given because of a fault"
)
unverified_identity = meter.create_counter(
    "proact.storefront.unverified_identity",
    unit="{event}",
    description="browsing events whose customer_id was dropped for want of a valid signed identity",
)
refused = meter.create_counter(
    "proact.storefront.refused", unit="{request}", description="requests refused by a rate limit, by route"
)
decision_log_dropped = meter.create_counter(
    "proact.storefront.decision_log.dropped",
    unit="{record}",
    description="pop-up decision records dropped because the broker could not take them fast enough",
)
