"""Live browsing sessions built from browsing events: one definition, used by the engine (whose
state is durable) and by the storefront (whose view answers the decision call).

A session records when it started, its pages with their dwell times, whether checkout was reached,
whether it was offered a pop-up, its traffic source and, once the visitor logs in, the customer
(identity stitching: later sessions of the same visitor know the customer too).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from shared.contract import Event
from shared.contract import events as ev

SESSION = "session"
VISITOR = "visitor"
Doc = dict[str, Any]


class Store(Protocol):
    def get(self, kind: str, entity_id: str) -> Doc | None: ...

    def put(self, kind: str, entity_id: str, doc: Doc) -> None: ...


class MemoryStore:
    """A ``Store`` in plain dictionaries: for a replay of recorded events (page statistics, a pop-up
    rule's back-test), where nothing needs to outlive the replay."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], Doc] = {}

    def get(self, kind: str, entity_id: str) -> Doc | None:
        return self.docs.get((kind, entity_id))

    def put(self, kind: str, entity_id: str, doc: Doc) -> None:
        self.docs[(kind, entity_id)] = doc


def duration_s(session: Doc, now: datetime) -> float:
    """How long the visit has lasted, at ``now``."""
    return max((now - datetime.fromisoformat(session["started_at"])).total_seconds(), 0.0)


MAX_PAGES_KEPT = 100


def apply(state: Store, event: Event) -> None:
    """Apply one browsing event to the session (and visitor) it belongs to."""
    data = event.data
    assert isinstance(data, ev.BrowsingData)
    session = state.get(SESSION, data.session_id)
    if session is None:
        visitor = dict(state.get(VISITOR, data.visitor_id) or {"visitor_id": data.visitor_id, "sessions": 0})
        visitor["sessions"] += 1
        state.put(VISITOR, data.visitor_id, visitor)
        session = {
            "session_id": data.session_id,
            "visitor_id": data.visitor_id,
            "started_at": event.time_iso,
            "returning": visitor["sessions"] > 1,
            "pages": [],
        }
    session = {**session, "pages": list(session["pages"]), "last_seen_at": event.time_iso}
    if isinstance(data, ev.PageViewed):
        pages = session["pages"]
        if pages and data.duration_s is not None:  # time on the previous page, known now
            pages[-1] = {**pages[-1], "duration_s": data.duration_s}
        pages.append({"url": data.url, "page_type": data.page_type, "duration_s": None})
        del pages[:-MAX_PAGES_KEPT]
    elif isinstance(data, ev.CheckoutStarted):
        session["checkout"] = True
    elif isinstance(data, ev.SessionStarted):
        session["traffic_source"] = data.traffic_source
        if data.customer_id:
            # identity stitching: the visitor logged in; their later sessions know who they are
            session["customer_id"] = data.customer_id
            visitor = dict(state.get(VISITOR, data.visitor_id) or {"visitor_id": data.visitor_id, "sessions": 1})
            visitor["customer_id"] = data.customer_id
            state.put(VISITOR, data.visitor_id, visitor)
    if "customer_id" not in session:
        known = (state.get(VISITOR, data.visitor_id) or {}).get("customer_id")
        if known:
            session["customer_id"] = known
    state.put(SESSION, data.session_id, session)


def offered(state: Store, session_id: str, visitor_id: str, rule_id: str | None, at: datetime) -> None:
    """Note that a session was shown a pop-up: never a second one in it."""
    session = state.get(SESSION, session_id)
    if session is not None:
        state.put(SESSION, session_id, {**session, "offered": True, "offered_rule": rule_id})
    visitor = dict(state.get(VISITOR, visitor_id) or {"visitor_id": visitor_id, "sessions": 1})
    visitor["last_offer_at"] = at.isoformat()
    state.put(VISITOR, visitor_id, visitor)
