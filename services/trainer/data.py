"""Reading training data: UCI session CSVs, order-history NDJSON (plain or gzipped), MongoDB."""

from __future__ import annotations

import csv
import gzip
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import IO

from pymongo.asynchronous.database import AsyncDatabase

from shared.contract import ARCHIVE, Event, InvalidEvent, decode
from shared.contract import events as ev
from shared.features.churn import CustomerHistory, Order
from shared.features.intent import LABEL, MONTHS, UciSession, from_uci_record
from shared.store import Collections, Document

log = logging.getLogger(__name__)


def parse_as_of(value: str) -> datetime:
    """``1997-09-30`` means the end of that day (UTC), so its orders count as history; a full
    RFC 3339 timestamp is taken as it is."""
    if "T" in value:
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    day = datetime.fromisoformat(value).date()
    return datetime.combine(day, time.max, tzinfo=UTC)


def read_sessions(path: Path) -> tuple[list[UciSession], list[bool] | None, list[int]]:
    """Sessions, labels (None when the file has no ``Revenue`` column) and month numbers."""
    sessions: list[UciSession] = []
    labels: list[bool] = []
    months: list[int] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        has_label = LABEL in (reader.fieldnames or [])
        for line, record in enumerate(reader, start=2):
            try:
                session = from_uci_record(record)
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
            sessions.append(session)
            months.append(MONTHS.index(session.month) + 1 if session.month in MONTHS else 0)
            if has_label:
                labels.append(str(record[LABEL]).strip().upper() in ("TRUE", "1"))
    return sessions, (labels if has_label else None), months


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def iter_events(path: Path) -> Iterator[Event]:
    skipped = 0
    with _open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                yield decode(line, window=ARCHIVE)
            except InvalidEvent as exc:
                skipped += 1
                if skipped <= 5:
                    log.warning("skipping an invalid event", extra={"reason": exc.reason[:200]})
    if skipped:
        log.warning("invalid events skipped", extra={"count": skipped, "file": str(path)})


def read_histories(path: Path) -> dict[str, CustomerHistory]:
    """Per-customer history from CloudEvents: orders, and the service signals when present."""
    histories: dict[str, CustomerHistory] = {}

    def of(customer_id: str) -> CustomerHistory:
        h = histories.get(customer_id)
        if h is None:
            h = histories[customer_id] = CustomerHistory(customer_id)
        return h

    for event in iter_events(path):
        data, at = event.data, event.time
        if isinstance(data, ev.OrderPlaced):
            items = sum(i.qty for i in data.items) or 1
            of(data.customer_id).orders.append(Order(at, float(data.total.amount), items))
        elif isinstance(data, ev.OrderReturnRequested):
            of(data.customer_id).returns.append(at)
        elif isinstance(data, ev.OrderEtaChanged):
            of(data.customer_id).late_deliveries.append(at)
        elif isinstance(data, ev.Ticket) and event.type == "ticket.opened":
            of(data.customer_id).tickets.append(at)
        elif isinstance(data, ev.CsatSubmitted):
            of(data.customer_id).csat.append((at, float(data.score)))
        elif isinstance(data, ev.NpsSubmitted):
            of(data.customer_id).nps.append((at, float(data.score)))
        elif isinstance(data, ev.Outcome) and event.type == "message.opened" and data.customer_id:
            of(data.customer_id).messages_opened.append(at)
    return histories


async def read_histories_from_mongo(db: AsyncDatabase[Document], until: datetime) -> dict[str, CustomerHistory]:
    """Order history from the engine's ``orders`` projection (``customer_id``, ``placed_at``, ``total``)."""
    histories: dict[str, CustomerHistory] = {}
    # times are compared here, not in the query: the projection keeps them as RFC 3339 strings whose
    # offsets may differ, and strings with different offsets do not sort as times
    cursor = db[Collections.ORDERS].find({}, {"customer_id": 1, "placed_at": 1, "total": 1, "items": 1})
    async for doc in cursor:
        if not doc.get("placed_at"):
            continue  # an order known only from later events
        at = datetime.fromisoformat(doc["placed_at"]) if isinstance(doc["placed_at"], str) else doc["placed_at"]
        if at > until:
            continue
        h = histories.setdefault(doc["customer_id"], CustomerHistory(doc["customer_id"]))
        h.orders.append(Order(at, float((doc.get("total") or {}).get("amount", 0)), int(doc.get("items") or 1)))
    return histories


def horizon_end(as_of: datetime, horizon_days: int) -> datetime:
    return as_of + timedelta(days=horizon_days)
