"""The facts a rule's conditions and context read, built in one place for every evaluator: the engine
(events, timers, score bands), the storefront's decision call (pop-up rules), the admin's dry run and
the check of an expression when a rule is saved. So a rule sees the same variables wherever it runs:

=========== ==================================================================================
``event``   the event that triggered the evaluation: ``type``, ``id``, ``time``, ``data``
``customer`` the engine's customer record (``{}`` for an anonymous visitor)
``order``   the order the event is about (``{}`` when none)
``case``    the repair or service case the event is about: ``status``, ``promised_by``,
            ``opened_at``, ``steps`` (``{}`` when none)
``session`` the browsing session the evaluation is about, with ``duration_s``, ``page_count``,
            ``checkout`` and ``offered`` computed (``{}`` when none)
``scores``  ``churn`` (the customer's: pop-up rules too, when the visitor is a known customer) and
            ``intent`` (the session's), 0..1 or null
``trigger`` ``kind`` (event, delay, absence, score, session, deferred) and ``event`` (its type)
``now``     the evaluation time
=========== ==================================================================================
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared import sessions

Doc = dict[str, Any]


def session_facts(session: Doc | None, now: datetime) -> Doc:
    """A session as rules see it: the stored record and what is computed from it at ``now``."""
    if not session:
        return {}
    return {
        **session,
        "duration_s": sessions.duration_s(session, now) if session.get("started_at") else 0.0,
        "page_count": len(session.get("pages") or []),
        "checkout": bool(session.get("checkout")),
        "offered": bool(session.get("offered")),
    }


def _score(record: Doc | None, field: str) -> float | None:
    scored = (record or {}).get(field)
    return scored.get("score") if isinstance(scored, dict) else None


def build(
    *,
    event: Doc,
    trigger: str,
    now: datetime,
    customer: Doc | None = None,
    order: Doc | None = None,
    case: Doc | None = None,
    session: Doc | None = None,
    intent: float | None = None,
) -> Doc:
    """The facts of one evaluation. ``intent`` overrides the session's stored score (the storefront
    scores the live session at each call)."""
    return {
        "event": event,
        "customer": customer or {},
        "order": order or {},
        "case": case or {},
        "session": session_facts(session, now),
        "scores": {
            "churn": _score(customer, "churn"),
            "intent": intent if intent is not None else _score(session, "intent"),
        },
        "trigger": {"kind": trigger, "event": event.get("type")},
        "now": now,
    }
