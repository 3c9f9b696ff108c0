"""Page statistics the intent model reads, computed from the shop's own recorded browsing and orders.

The intent model learned from UCI sessions whose ``BounceRates``, ``ExitRates`` and ``PageValues``
are web analytics' per-page figures averaged over the session's pages; ``PageValues`` carries most of
its signal. Live, a session can only have those figures if something computes them for the shop's
pages: that is this module. The definitions are Google Analytics', as the UCI data set documents:

- **bounce rate** of a page: of the sessions that entered the site on it, the share that viewed no
  other page;
- **exit rate**: of the page's views, the share that were the last of their session;
- **page value**: the revenue of the sessions that viewed the page (before their purchase), divided by
  the page's unique views (one per session).

Where they come from: ``sessions_from_events`` replays a CloudEvents export of the shop's browsing
and orders through ``shared.sessions.apply``, the definition of a session the engine and the
storefront use live, so a page is the same URL in all three; a session's revenue is the total of the
orders its customer placed while it lasted (from its first event to ``PURCHASE_WINDOW`` after its
last; an anonymous visitor's session has none). The trainer writes the result beside the intent
model (``page_stats.json``, covered by the artefact's checksum), so a model and the statistics it is
fed are promoted, and rolled back, together; a page the statistics do not know counts as 0, as it
did in training for pages without a transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from shared import sessions as live_sessions
from shared.contract import Event
from shared.contract import events as ev
from shared.features.intent import PageStat

PAGE_STATS_FILE = "page_stats.json"
PURCHASE_WINDOW = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class RecordedSession:
    session_id: str
    pages: tuple[str, ...]
    revenue: float


def compute(sessions: Iterable[RecordedSession]) -> dict[str, PageStat]:
    """Bounce rate, exit rate and page value of every page the sessions viewed."""
    entrances: Counter[str] = Counter()
    bounces: Counter[str] = Counter()
    exits: Counter[str] = Counter()
    views: Counter[str] = Counter()
    unique_views: Counter[str] = Counter()
    value: defaultdict[str, float] = defaultdict(float)
    for session in sessions:
        if not session.pages:
            continue
        entrances[session.pages[0]] += 1
        if len(session.pages) == 1:
            bounces[session.pages[0]] += 1
        exits[session.pages[-1]] += 1
        views.update(session.pages)
        for url in set(session.pages):
            unique_views[url] += 1
            value[url] += session.revenue
    return {
        url: PageStat(
            bounce_rate=bounces[url] / entrances[url] if entrances[url] else 0.0,
            exit_rate=exits[url] / views[url],
            page_value=value[url] / unique_views[url],
        )
        for url in sorted(views)
    }


def sessions_from_events(events: Iterable[Event]) -> tuple[list[RecordedSession], dict[str, dict[str, Any]]]:
    """The recorded sessions (pages in order, revenue) and each session's state as the engine would
    hold it, from browsing and order events in any order (they are replayed in time order)."""
    store = live_sessions.MemoryStore()
    orders: list[tuple[datetime, str, float]] = []
    for event in sorted(events, key=lambda e: e.time):
        if isinstance(event.data, ev.BrowsingData):
            live_sessions.apply(store, event)
        elif isinstance(event.data, ev.OrderPlaced):
            orders.append((event.time, event.data.customer_id, float(event.data.total.amount)))
    states = {eid: doc for (kind, eid), doc in store.docs.items() if kind == live_sessions.SESSION}
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for doc in states.values():
        if doc.get("customer_id"):
            by_customer.setdefault(doc["customer_id"], []).append(doc)
    revenue: defaultdict[str, float] = defaultdict(float)
    for at, customer_id, total in orders:
        for doc in by_customer.get(customer_id, []):
            start = datetime.fromisoformat(doc["started_at"])
            end = datetime.fromisoformat(doc["last_seen_at"]) + PURCHASE_WINDOW
            if start <= at <= end:
                revenue[doc["session_id"]] += total
                break
    recorded = [
        RecordedSession(sid, tuple(p["url"] for p in doc["pages"]), revenue[sid]) for sid, doc in sorted(states.items())
    ]
    return recorded, states


@dataclass(frozen=True)
class PageStats:
    """The artefact: the statistics and where they came from."""

    stats: dict[str, PageStat]
    sessions: int
    sessions_with_revenue: int
    source: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps(
            {
                "sessions": self.sessions,
                "sessions_with_revenue": self.sessions_with_revenue,
                "source": self.source,
                "pages": {url: [s.bounce_rate, s.exit_rate, s.page_value] for url, s in sorted(self.stats.items())},
            },
            indent=1,
            sort_keys=True,
        )

    @classmethod
    def from_sessions(cls, sessions: list[RecordedSession], source: str) -> PageStats:
        return cls(compute(sessions), len(sessions), sum(s.revenue > 0 for s in sessions), source)

    @classmethod
    def read(cls, path: Path) -> PageStats:
        raw = json.loads(path.read_text())
        return cls(
            {url: PageStat(*map(float, values)) for url, values in raw["pages"].items()},
            int(raw["sessions"]),
            int(raw["sessions_with_revenue"]),
            str(raw["source"]),
        )

    def summary(self) -> Mapping[str, Any]:
        return {
            "pages": len(self.stats),
            "sessions": self.sessions,
            "sessions_with_revenue": self.sessions_with_revenue,
            "source": self.source,
        }
