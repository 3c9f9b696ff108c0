"""Scores kept in the engine's state: purchase intent per session, churn risk per customer.

After a batch of events changes sessions or customers, the promoted model of each kind scores them
once each from the state alone, with the features of ``shared.features`` (the trainer's own), and
the score, the model version and the time are stored with the entity. Without a promoted model
nothing is scored.

A session's intent score is refreshed at most every ``intent_refresh`` of event time: the engine's
score is for the projection (people and reports reading ``sessions``), while the storefront scores
the live session itself at each decision call. Scoring every page view was a fifth of the engine's
time for nothing a reader could tell apart.

**Churn over time.** A customer who sends nothing is the one a win-back is for, so a churn score
is not only refreshed by the customer's events: each scoring arms a durable timer
(``churn_refresh``, one per customer, in the engine's state like every timer) that fires
``churn_refresh`` later (a day by default, ``PROACT_ENGINE_CHURN_REFRESH_S``) and scores the customer
again as of the time it fires, with recency grown by the silence; score rules whose band the new
score enters then fire as for any score change. Each customer's timer keeps a phase of its own
(a stable hash of the id spreads them over the interval), so a million customers are not all
re-scored in the same minute. A newly promoted churn model is used from each customer's next
refresh, and sooner: when a partition first scores with a new churn model, every customer's refresh
is brought forward to within ``PROMOTION_SPREAD`` (an hour), each at their own phase of it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.contract import Event
from shared.contract import events as ev
from shared.engine.state import Timer
from shared.features import churn, intent
from shared.models.registry import ModelHandle, Registry

CHURN_REFRESH = "churn_refresh"  # the kind of the timer that re-scores a silent customer
PROMOTION_SPREAD = timedelta(hours=1)  # a new churn model has scored every known customer within this


def refresh_due(customer_id: str, after: datetime, every: timedelta) -> datetime:
    """When a customer scored at ``after`` is scored again: ``every`` later, moved to the customer's
    own phase of the interval (a stable hash of the id), so refreshes are spread, not bunched."""
    seconds = every.total_seconds()
    phase = int.from_bytes(hashlib.blake2b(customer_id.encode(), digest_size=8).digest(), "big") % max(int(seconds), 1)
    base = after.timestamp() + seconds
    return datetime.fromtimestamp(base - (base % seconds) + phase if seconds >= 1 else base, tz=after.tzinfo)


def _arm_refresh(state: Any, customer_id: str, due: datetime) -> None:
    """The customer's one refresh timer, (re)set to ``due``. A timer already set for that time is
    left as it is: the customer's events of one interval all land on the same phase point, and
    setting it again would write the same timer to the changelog once per scoring."""
    timer_id = f"{CHURN_REFRESH}:{customer_id}"
    pending = state.timer(timer_id)
    if pending is not None and pending.due_at == due:
        return
    state.schedule(Timer(timer_id, CHURN_REFRESH, customer_id, due, {"customer_id": customer_id}))


class Scorers:
    def __init__(
        self,
        registry: Registry,
        intent_refresh: timedelta = timedelta(seconds=30),
        churn_refresh: timedelta | None = timedelta(days=1),
    ) -> None:
        self.intent = ModelHandle(registry, "intent")
        self.intent_refresh = intent_refresh
        self.churn = ModelHandle(registry, "churn")
        self.churn_refresh = churn_refresh  # None: scores change only with the customer's events
        self._churn_version: dict[int, str] = {}  # per partition: the churn model it last scored with

        self._sessions: dict[int, dict[str, datetime]] = {}
        self._customers: dict[int, dict[str, datetime]] = {}

    def changed(self, state: Any, event: Event) -> None:
        """Note what an event changed; ``flush`` scores it once however many events touched it."""
        data = event.data
        if isinstance(data, ev.BrowsingData):
            self._sessions.setdefault(state.partition, {})[data.session_id] = event.time
            return
        if isinstance(data, ev.OrderPlaced | ev.Ticket | ev.CsatSubmitted | ev.NpsSubmitted):
            customer_id = data.customer_id
        elif isinstance(data, ev.TimerFired) and data.kind == CHURN_REFRESH:
            customer_id = data.key
        else:
            return
        touched = self._customers.setdefault(state.partition, {})
        touched[customer_id] = max(event.time, touched.get(customer_id, event.time))

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
        self._on_promotion(state)
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

    def _on_promotion(self, state: Any) -> None:
        """A newly promoted churn model: bring every customer's refresh forward, spread over an hour."""
        model = self.churn.current()
        if model is None or self.churn_refresh is None:
            return
        before = self._churn_version.get(state.partition)
        self._churn_version[state.partition] = model.version
        if before is None or before == model.version:
            return  # the first batch of this process, or no change
        now = datetime.fromtimestamp(state.now_s, UTC) if state.now_s else datetime.now(UTC)
        for customer_id in state.ids("customer"):
            _arm_refresh(state, customer_id, refresh_due(customer_id, now - PROMOTION_SPREAD, PROMOTION_SPREAD))

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
        vector = churn.churn_vector(history, as_of)
        score = model.score_one(vector)
        scored = {**_score(score, model.version, as_of), "reasons": model.reasons(vector)}
        state.put("customer", customer_id, {**customer, "churn": scored})
        if self.churn_refresh is not None:
            _arm_refresh(state, customer_id, refresh_due(customer_id, as_of, self.churn_refresh))
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
