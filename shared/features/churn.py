"""Churn features of a customer as of a date: one implementation for the trainer and the engine.

Works from order history alone (as CDNOW has): recency, frequency (distinct purchase days),
monetary value, inter-purchase timing, recent activity and its trend, tenure. When the shop's
history has them, service signals are added: late deliveries, tickets, returns, CSAT/NPS and
engagement with proact's messages. A signal that never varies in the training data carries no
information and the trainer leaves it out of the model (the model's metadata lists what it uses).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

ORDER_FEATURES = (
    "log_recency_days",
    "log_purchase_days",
    "log_tenure_days",
    "log_mean_gap_days",
    "overdue_ratio",
    "log_purchases_30d",
    "log_purchases_90d",
    "log_purchases_180d",
    "log_total_spent",
    "log_mean_order_value",
    "log_items",
    "trend",
    "log_last_gap_days",
    "log_last_order_value",
)
SERVICE_FEATURES = (
    "late_deliveries",
    "tickets_90d",
    "returns",
    "csat_mean",
    "nps_last",
    "messages_opened",
)
FEATURES = ORDER_FEATURES + SERVICE_FEATURES
# each feature in words, for the reasons shown with a churn score (the admin, ``/why``)
WORDS = {
    "log_recency_days": "days since the last order",
    "log_purchase_days": "days with a purchase",
    "log_tenure_days": "time since the first order",
    "log_mean_gap_days": "the usual time between orders",
    "overdue_ratio": "silence against the usual time between orders",
    "log_purchases_30d": "orders in the last 30 days",
    "log_purchases_90d": "orders in the last 90 days",
    "log_purchases_180d": "orders in the last 180 days",
    "log_total_spent": "total spent",
    "log_mean_order_value": "average order value",
    "log_items": "items bought",
    "trend": "orders falling off, recent against earlier",
    "log_last_gap_days": "time between the last two orders",
    "log_last_order_value": "value of the last order",
    "late_deliveries": "late deliveries",
    "tickets_90d": "support tickets in the last 90 days",
    "returns": "returns",
    "csat_mean": "satisfaction ratings",
    "nps_last": "the last NPS answer",
    "messages_opened": "messages opened",
}


class Order(NamedTuple):
    """One order (a named tuple: the engine builds a customer's orders at each re-score, and a frozen
    dataclass costs a microsecond per instance more)."""

    at: datetime
    amount: float
    items: int = 1


@dataclass
class CustomerHistory:
    customer_id: str
    orders: list[Order] = field(default_factory=list)
    late_deliveries: list[datetime] = field(default_factory=list)
    tickets: list[datetime] = field(default_factory=list)
    returns: list[datetime] = field(default_factory=list)
    csat: list[tuple[datetime, float]] = field(default_factory=list)
    nps: list[tuple[datetime, float]] = field(default_factory=list)
    messages_opened: list[datetime] = field(default_factory=list)

    def has_orders_by(self, as_of: datetime) -> bool:
        return any(o.at <= as_of for o in self.orders)


def churn_vector(h: CustomerHistory, as_of: datetime) -> list[float]:
    """Features of one customer from events up to and including ``as_of`` (later ones are ignored)."""
    past = sorted((o for o in h.orders if o.at <= as_of), key=_at)
    if not past:
        raise ValueError(f"customer {h.customer_id} has no order up to {as_of.isoformat()}")
    days = sorted({o.at.date() for o in past})
    today = as_of.date()
    ages = [(today - d).days for d in days]
    n = len(days)
    recency, tenure = ages[-1], ages[0]
    gaps = [(b - a).days for a, b in pairwise(days)]
    mean_gap = sum(gaps) / len(gaps) if gaps else tenure + 30.0
    spent = sum(o.amount for o in past)
    half = tenure / 2
    first_half = sum(1 for a in ages if a > half)
    log1p = math.log1p
    quarter_ago = as_of - _DAYS_90

    def upto(times: Iterable[datetime]) -> float:
        return float(sum(1 for t in times if t <= as_of))

    csat = [s for t, s in h.csat if t <= as_of]
    nps = [s for t, s in sorted(h.nps) if t <= as_of]
    return [
        log1p(recency),
        math.log(n),
        log1p(tenure),
        log1p(mean_gap),
        recency / (mean_gap + 1.0),
        log1p(sum(1 for a in ages if a <= 30)),
        log1p(sum(1 for a in ages if a <= 90)),
        log1p(sum(1 for a in ages if a <= 180)),
        log1p(max(spent, 0.0)),
        log1p(max(spent / len(past), 0.0)),
        log1p(sum(o.items for o in past)),
        ((n - first_half) - first_half) / n,
        log1p(gaps[-1]) if gaps else -1.0,
        log1p(max(past[-1].amount, 0.0)),
        upto(h.late_deliveries),
        float(sum(1 for t in h.tickets if quarter_ago < t <= as_of)),
        upto(h.returns),
        sum(csat) / len(csat) if csat else 0.0,
        nps[-1] if nps else 0.0,
        upto(h.messages_opened),
    ]


def _at(order: Order) -> datetime:
    return order.at


_DAYS_90 = timedelta(days=90)


def churn_matrix(histories: Sequence[CustomerHistory], as_of: datetime) -> NDArray[np.float64]:
    return np.array([churn_vector(h, as_of) for h in histories], dtype=np.float64).reshape(-1, len(FEATURES))


def churned(h: CustomerHistory, as_of: datetime, horizon_days: int) -> bool:
    """The label: no order in the ``horizon_days`` after ``as_of``."""
    end = as_of + timedelta(days=horizon_days)
    return not any(as_of < o.at <= end for o in h.orders)
