"""Scores kept in the engine's state: purchase intent per session, churn risk per customer.

After a batch of events changes sessions or customers, the promoted model of each kind scores them
once each from the state alone, with the features of ``shared.features`` (the trainer's own), and
the score, the model version and the time are stored with the entity. Without a promoted model
nothing is scored.

A session's intent score is refreshed at most every ``intent_refresh`` of event time: the engine's
score is for the projection (people and reports reading ``sessions``), while the storefront scores
the live session itself at each decision call. Scoring every page view was a fifth of the engine's
time for nothing a reader could tell apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.contract import Event
from shared.contract import events as ev
from shared.features import churn, intent
from shared.models.registry import ModelHandle, Registry


class Scorers:
    def __init__(self, registry: Registry, intent_refresh: timedelta = timedelta(seconds=30)) -> None:
        self.intent = ModelHandle(registry, "intent")
        self.intent_refresh = intent_refresh
        self.churn = ModelHandle(registry, "churn")

        self._sessions: dict[int, dict[str, datetime]] = {}
        self._customers: dict[int, dict[str, datetime]] = {}

    def changed(self, state: Any, event: Event) -> None:
        """Note what an event changed; ``flush`` scores it once however many events touched it."""
        data = event.data
        if isinstance(data, ev.BrowsingData):
            self._sessions.setdefault(state.partition, {})[data.session_id] = event.time
        elif isinstance(data, ev.OrderPlaced | ev.Ticket | ev.CsatSubmitted | ev.NpsSubmitted):
            touched = self._customers.setdefault(state.partition, {})
            touched[data.customer_id] = max(event.time, touched.get(data.customer_id, event.time))

    def flush(self, state: Any, failed: Failed | None = None) -> list[tuple[str, float | None, float]]:
        """Score what changed; return the customers whose churn score moved: (id, before, after).

        A score that cannot be computed (a record the features cannot read, a model that raises)
        leaves that session or customer unscored and is reported to ``failed``; the rest are scored.
        Without ``failed`` (tests, back-tests) the error is raised."""
        touched = self._sessions.pop(state.partition, {})
        try:
            self._score_sessions(state, touched)
        except Exception as exc:
            if failed is None:
                raise
            failed("intent score", exc, sessions=len(touched))
        changes = []
        for customer_id, at in self._customers.pop(state.partition, {}).items():
            try:
                change = self._score_customer(state, customer_id, at)
            except Exception as exc:
                if failed is None:
                    raise
                failed("churn score", exc, customer_id=customer_id)
                continue
            if change is not None:
                changes.append(change)
        return changes

    def _score_sessions(self, state: Any, touched: dict[str, datetime]) -> None:
        """All sessions a batch touched, scored at once (one vectorised call, not one walk per row)."""
        model = self.intent.current()
        if model is None or not touched:
            return
        sessions = [
            (sid, at, s)
            for sid, at in touched.items()
            if (s := state.get("session", sid)) is not None and not self._fresh(s.get("intent"), model.version, at)
        ]
        if not sessions:
            return
        views = [
            # the page statistics promoted with the model (shared.features.page_stats)
            intent.from_session(s, model.page_stats, datetime.fromisoformat(s["started_at"]))
            for _, _, s in sessions
        ]
        X = intent.intent_matrix(views)[:, model.feature_indices]
        for (sid, at, session), score in zip(sessions, model.model.score_many(X), strict=True):
            state.put("session", sid, {**session, "intent": _score(float(score), model.version, at)})

    def _fresh(self, scored: dict[str, Any] | None, version: str, at: datetime) -> bool:
        """A score of the same model less than ``intent_refresh`` old (in event time) stands."""
        if not scored or scored.get("model_version") != version:
            return False
        return at - datetime.fromisoformat(scored["at"]) < self.intent_refresh

    def _score_customer(self, state: Any, customer_id: str, at: datetime) -> tuple[str, float | None, float] | None:
        model = self.churn.current()
        customer = state.get("customer", customer_id)
        if model is None or customer is None or not customer.get("order_history"):
            return None
        history = history_of(customer)
        # Topics have no order between them: a ticket may be read after an order placed later than
        # it, so the score is as of the latest thing known about the customer.
        as_of = max(at, max(o.at for o in history.orders))
        score = model.score_one(churn.churn_vector(history, as_of))
        state.put("customer", customer_id, {**customer, "churn": _score(score, model.version, at)})
        before = (customer.get("churn") or {}).get("score")
        return customer_id, before, score


class Failed(Protocol):
    def __call__(self, what: str, exc: Exception, **where: Any) -> None: ...


def history_of(customer: dict[str, Any]) -> churn.CustomerHistory:
    """The churn features' view of the engine's customer record."""

    def times(field: str) -> list[datetime]:
        return [datetime.fromisoformat(t) for t in customer.get(field, [])]

    def scored(field: str) -> list[tuple[datetime, float]]:
        return [(datetime.fromisoformat(i["at"]), float(i["score"])) for i in customer.get(field, [])]

    return churn.CustomerHistory(
        customer_id=customer["customer_id"],
        orders=[
            churn.Order(datetime.fromisoformat(o["at"]), float(o["amount"]), int(o["items"]))
            for o in customer.get("order_history", [])
        ],
        late_deliveries=times("late_history"),
        tickets=times("ticket_history"),
        returns=times("return_history"),
        csat=scored("csat_history"),
        nps=scored("nps_history"),
        messages_opened=times("opened_history"),
    )


def _score(value: float, version: str, at: datetime) -> dict[str, Any]:
    return {"score": round(value, 6), "model_version": version, "at": at.isoformat()}
