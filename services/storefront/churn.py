"""The churn scores and contact histories of the customers behind identified visitors, for pop-up rules.

The contacts (what proact sent the customer, pop-ups included) let a pop-up rule's contact-policy
guard count a pop-up to a known customer against the same budget as messages: an offer minutes
after an e-mail is held back like a second e-mail would be.

A pop-up rule sees ``scores.churn`` as every other rule does (``shared.rules.facts``) when the
visitor is a known customer. The decision call must answer from memory in milliseconds, so the
score comes from this cache, filled in the background from the engine's projection (``customers``
in MongoDB) when a session names a customer (a signed identity, or a visitor stitched to one
earlier), and refreshed after ``max_age_s``. Until it is in, the rule sees ``null``, as it does for
a customer the churn model has not scored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from shared.store import Collections, Document

log = logging.getLogger(__name__)


class ChurnScores:
    def __init__(self, db: AsyncDatabase[Document] | None, max_age_s: float = 300.0, max_customers: int = 100_000):
        self.db = db
        self.max_age_s = max_age_s
        self.max_customers = max_customers
        # id -> (churn score, recent contacts, when read)
        self._known: OrderedDict[str, tuple[float | None, list[dict[str, object]], float]] = OrderedDict()
        self._reading: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, customer_id: str) -> float | None:
        """The score known now (``None`` when not read yet or not scored); asks for a fresh one if due."""
        known = self._known.get(customer_id)
        if known is None or time.monotonic() - known[2] > self.max_age_s:
            self.want(customer_id)
        return known[0] if known else None

    def want(self, customer_id: str) -> None:
        """Read the customer's score in the background, unless a read is under way."""
        if self.db is None or customer_id in self._reading:
            return
        self._reading.add(customer_id)
        task = asyncio.get_running_loop().create_task(self._read(customer_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, customer_id: str) -> None:
        assert self.db is not None
        try:
            doc = await self.db[Collections.CUSTOMERS].find_one({"_id": customer_id}, {"churn": 1, "contacts": 1})
        except PyMongoError as exc:
            log.warning("churn score not read: %s", exc.__class__.__name__)
            return
        finally:
            self._reading.discard(customer_id)
        self.remember(customer_id, doc or {})

    def remember(self, customer_id: str, doc: Document) -> None:
        """Keep what the projection holds of the customer (``churn`` and ``contacts``), the least
        recently read dropped past ``max_customers``."""
        churn = doc.get("churn")
        score = churn.get("score") if isinstance(churn, dict) else None
        contacts = list(doc.get("contacts") or [])
        self._known[customer_id] = (
            float(score) if isinstance(score, int | float) else None,
            contacts,
            time.monotonic(),
        )
        self._known.move_to_end(customer_id)
        while len(self._known) > self.max_customers:
            self._known.popitem(last=False)

    def contacts(self, customer_id: str) -> list[dict[str, object]]:
        """The customer's recent contacts as last read (``get`` keeps them fresh); empty until read."""
        known = self._known.get(customer_id)
        return known[1] if known else []
