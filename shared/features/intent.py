"""Purchase-intent features of a browsing session, in the UCI Online Shoppers layout.

Training reads UCI rows from CSV; the engine builds the same ``UciSession`` from its live session
state (``from_session``). Both then go through ``intent_vector``/``intent_matrix``, so training and
serving compute the same numbers.

Mapping from proact's session state to the UCI columns:

| UCI column | from proact |
|---|---|
| Administrative, _Duration | pages of type ``account``: count and seconds spent |
| Informational, _Duration | pages of type ``help`` and ``info`` |
| ProductRelated, _Duration | pages of type ``category``, ``product``, ``search``, ``cart``, ``checkout`` |
| BounceRates, ExitRates, PageValues | mean over the session's pages of each page's site-wide stats (``PageStat``) |

The page statistics are the shop's own, computed from its recorded visits and orders by
``shared.features.page_stats`` and promoted with the model (``LoadedModel.page_stats``).

Bounce rate, exit rate and page value are web analytics' own: page value = revenue of the sessions that
included the page ÷ its unique page views.

| UCI column | from proact |
|---|---|
| SpecialDay | closeness to a special day (``special_day_closeness``) |
| Month, Weekend | the session's start, in the shop's time zone |
| VisitorType | ``New_Visitor`` when the visitor had no earlier session, else ``Returning_Visitor`` |
| TrafficType | the session's ``traffic_source`` (kept, not used by the model) |

``home`` and ``other`` pages belong to no UCI category; they still count for bounce, exit and value.
Seconds on a page are known when the next page is viewed (``duration_s``) or from heartbeats.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

UCI_COLUMNS = (
    "Administrative",
    "Administrative_Duration",
    "Informational",
    "Informational_Duration",
    "ProductRelated",
    "ProductRelated_Duration",
    "BounceRates",
    "ExitRates",
    "PageValues",
    "SpecialDay",
    "Month",
    "OperatingSystems",
    "Browser",
    "Region",
    "TrafficType",
    "VisitorType",
    "Weekend",
)
LABEL = "Revenue"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PAGE_GROUPS = {
    "account": "Administrative",
    "help": "Informational",
    "info": "Informational",
    "category": "ProductRelated",
    "product": "ProductRelated",
    "search": "ProductRelated",
    "cart": "ProductRelated",
    "checkout": "ProductRelated",
}
# The model's inputs. Month, operating system, browser, region and traffic type are left out on
# purpose: in a time-ordered validation they make a model worse on months it has not seen.
FEATURES = (
    "log_administrative",
    "log_administrative_duration",
    "log_informational",
    "log_informational_duration",
    "log_product_related",
    "log_product_related_duration",
    "bounce_rate",
    "exit_rate",
    "log_page_value",
    "special_day",
    "new_visitor",
    "weekend",
)


@dataclass(frozen=True, slots=True)
class UciSession:
    administrative: float = 0.0
    administrative_duration: float = 0.0
    informational: float = 0.0
    informational_duration: float = 0.0
    product_related: float = 0.0
    product_related_duration: float = 0.0
    bounce_rate: float = 0.0
    exit_rate: float = 0.0
    page_value: float = 0.0
    special_day: float = 0.0
    month: str = "May"
    visitor_type: str = "Returning_Visitor"
    weekend: bool = False
    traffic_type: str = ""


@dataclass(frozen=True, slots=True)
class PageStat:
    bounce_rate: float
    exit_rate: float
    page_value: float


def intent_vector(s: UciSession) -> list[float]:
    """The model's input for one session; the single-row path, in plain Python for speed."""
    log1p = math.log1p
    return [
        log1p(s.administrative),
        log1p(s.administrative_duration),
        log1p(s.informational),
        log1p(s.informational_duration),
        log1p(s.product_related),
        log1p(s.product_related_duration),
        s.bounce_rate,
        s.exit_rate,
        log1p(s.page_value),
        s.special_day,
        1.0 if s.visitor_type == "New_Visitor" else 0.0,
        1.0 if s.weekend else 0.0,
    ]


def intent_matrix(sessions: Sequence[UciSession]) -> NDArray[np.float64]:
    """The same features for many sessions at once (training, batch scoring)."""
    raw = np.array(
        [
            (
                s.administrative,
                s.administrative_duration,
                s.informational,
                s.informational_duration,
                s.product_related,
                s.product_related_duration,
                s.bounce_rate,
                s.exit_rate,
                s.page_value,
                s.special_day,
                s.visitor_type == "New_Visitor",
                s.weekend,
            )
            for s in sessions
        ],
        dtype=np.float64,
    ).reshape(-1, 12)
    out = raw.copy()
    for col in (0, 1, 2, 3, 4, 5, 8):
        out[:, col] = np.log1p(np.maximum(raw[:, col], 0.0))
    return out


def _number(record: Mapping[str, str], column: str) -> float:
    try:
        value = float(record[column])
    except KeyError:
        raise ValueError(f"missing column {column}") from None
    except ValueError:
        raise ValueError(f"column {column}: not a number: {record[column]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"column {column}: must be a finite number >= 0, got {record[column]!r}")
    return value


def from_uci_record(record: Mapping[str, str]) -> UciSession:
    """One row of the UCI CSV (strings, as csv.DictReader gives them); raises ValueError naming the column."""
    weekend = str(record.get("Weekend", "FALSE")).strip().upper()
    if weekend not in ("TRUE", "FALSE", "1", "0"):
        raise ValueError(f"column Weekend: expected TRUE or FALSE, got {record.get('Weekend')!r}")
    return UciSession(
        administrative=_number(record, "Administrative"),
        administrative_duration=_number(record, "Administrative_Duration"),
        informational=_number(record, "Informational"),
        informational_duration=_number(record, "Informational_Duration"),
        product_related=_number(record, "ProductRelated"),
        product_related_duration=_number(record, "ProductRelated_Duration"),
        bounce_rate=_number(record, "BounceRates"),
        exit_rate=_number(record, "ExitRates"),
        page_value=_number(record, "PageValues"),
        special_day=_number(record, "SpecialDay"),
        month=str(record.get("Month", "May")),
        visitor_type=str(record.get("VisitorType", "Returning_Visitor")),
        weekend=weekend in ("TRUE", "1"),
        traffic_type=str(record.get("TrafficType", "")),
    )


# Days before a special day on which shoppers buy for it, as in the UCI data set (Valentine's Day,
# Mother's Day, ...): closeness is 1 at the peak and falls to 0 over `SPECIAL_DAY_WINDOW` days.
SPECIAL_DAY_PEAK_DAYS_BEFORE = 4
SPECIAL_DAY_WINDOW = 10


def special_day_closeness(day: date, special_days: Iterable[date]) -> float:
    best = 0.0
    for special in special_days:
        before = (special - day).days
        if 0 <= before <= SPECIAL_DAY_WINDOW:
            distance = abs(before - SPECIAL_DAY_PEAK_DAYS_BEFORE)
            best = max(best, 1.0 - distance / (SPECIAL_DAY_WINDOW - SPECIAL_DAY_PEAK_DAYS_BEFORE))
    return round(best, 1)


def from_session(
    session: Mapping[str, Any],
    page_stats: Mapping[str, PageStat],
    started_at: datetime,
    special_days: Iterable[date] = (),
) -> UciSession:
    """Build the UCI view of a live session. ``session["pages"]`` is a list of
    ``{"url", "page_type", "duration_s"}`` in the order they were viewed."""
    counts = {"Administrative": 0.0, "Informational": 0.0, "ProductRelated": 0.0}
    seconds = dict.fromkeys(counts, 0.0)
    bounce = exits = value = 0.0
    pages = session.get("pages") or []
    for page in pages:
        group = PAGE_GROUPS.get(page.get("page_type", "other"))
        if group:
            counts[group] += 1
            seconds[group] += float(page.get("duration_s") or 0.0)
        stat = page_stats.get(page.get("url", ""))
        if stat:
            bounce += stat.bounce_rate
            exits += stat.exit_rate
            value += stat.page_value
    n = max(len(pages), 1)
    return UciSession(
        administrative=counts["Administrative"],
        administrative_duration=seconds["Administrative"],
        informational=counts["Informational"],
        informational_duration=seconds["Informational"],
        product_related=counts["ProductRelated"],
        product_related_duration=seconds["ProductRelated"],
        bounce_rate=bounce / n,
        exit_rate=exits / n,
        page_value=value / n,
        special_day=special_day_closeness(started_at.date(), special_days),
        month=MONTHS[started_at.month - 1],
        visitor_type="Returning_Visitor" if session.get("returning") else "New_Visitor",
        weekend=started_at.weekday() >= 5,
        traffic_type=str(session.get("traffic_source") or ""),
    )
