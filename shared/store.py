"""MongoDB access on PyMongo's async API: the client, collection names, and indexes created at start-up.

Written for real MongoDB and kept to what FerretDB v1 also does (no transactions, TTL or partial
indexes, change streams or multi-accumulator ``$group``): see deploy/local/README.md, "FerretDB:
the patch and the gaps".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from shared.settings import Settings
from shared.telemetry import trace_mongodb

Document = dict[str, Any]


class Collections:
    RULES = "rules"
    TEMPLATES = "templates"
    MODELS = "models"
    API_KEYS = "api_keys"
    AUDIT = "audit"
    MESSAGES = "messages"
    DECISIONS = "decisions"
    CUSTOMERS = "customers"
    ORDERS = "orders"
    # callback requests and the agents' records of them, with the number to call: personal data,
    # written by the dispatcher, worked by agents in the admin
    CALLBACKS = "callbacks"
    CASES = "cases"  # repair and service cases, their status and steps (the projector, from the engine)
    SESSIONS = "sessions"
    SETTINGS = "settings"
    CONTACTS = "contacts"  # addresses and numbers: personal data, read only by the dispatcher
    INBOX = "inbox"  # in-app messages: written by the dispatcher, shown by the storefront
    BACKTESTS = "backtests"  # back-test jobs and their results (admin)
    # pop-ups shown, accepted or dismissed and callbacks requested (the projector, from the outcomes and
    # support topics): the admin's overview counts them; no phone number or address is kept
    INTERACTIONS = "interactions"


INDEXES: dict[str, list[IndexModel]] = {
    # the dispatcher's guard against sending one action twice
    Collections.MESSAGES: [
        IndexModel([("idempotency_key", ASCENDING)], unique=True, name="idempotency_key_unique"),
        IndexModel([("customer_id", ASCENDING), ("created_at", DESCENDING)], name="customer_recent"),
        IndexModel([("rule_id", ASCENDING), ("created_at", DESCENDING)], name="rule_recent"),
    ],
    Collections.INBOX: [IndexModel([("customer_id", ASCENDING), ("created_at", DESCENDING)], name="customer_recent")],
    Collections.INTERACTIONS: [IndexModel([("at", DESCENDING)], name="recent")],
    Collections.DECISIONS: [
        IndexModel([("customer_id", ASCENDING), ("at", DESCENDING)], name="customer_recent"),
        IndexModel([("rule_id", ASCENDING), ("at", DESCENDING)], name="rule_recent"),
    ],
    Collections.RULES: [
        IndexModel([("rule_id", ASCENDING), ("version", DESCENDING)], unique=True, name="rule_version")
    ],
    Collections.TEMPLATES: [
        IndexModel([("template_id", ASCENDING), ("version", DESCENDING)], unique=True, name="template_version")
    ],
    Collections.MODELS: [IndexModel([("name", ASCENDING), ("version", DESCENDING)], unique=True, name="model_version")],
    Collections.API_KEYS: [IndexModel([("key_hash", ASCENDING)], unique=True, name="key_hash_unique")],
    Collections.AUDIT: [IndexModel([("at", DESCENDING)], name="recent")],
    Collections.CUSTOMERS: [IndexModel([("last_order_at", DESCENDING)], name="recent_buyers")],
    Collections.ORDERS: [IndexModel([("customer_id", ASCENDING)], name="customer")],
    Collections.CASES: [IndexModel([("customer_id", ASCENDING)], name="customer")],
    Collections.CALLBACKS: [IndexModel([("status", ASCENDING), ("promised_by", ASCENDING)], name="due")],
    Collections.SESSIONS: [IndexModel([("visitor_id", ASCENDING)], name="visitor")],
    Collections.BACKTESTS: [IndexModel([("rule_id", ASCENDING), ("created_at", DESCENDING)], name="rule_recent")],
    Collections.SETTINGS: [],  # a few documents by _id
    Collections.CONTACTS: [],  # by _id, the customer id
}


def mongo_client(settings: Settings) -> AsyncMongoClient[Document]:
    """The client every service uses; its commands appear as spans in the trace of the operation that
    made them (``shared.telemetry.trace_mongodb``)."""
    trace_mongodb()
    return AsyncMongoClient(
        settings.mongo_url.get_secret_value(),
        serverSelectionTimeoutMS=settings.mongo_timeout_ms,
        connectTimeoutMS=settings.mongo_timeout_ms,
        tz_aware=True,
        appname="proact",
    )


def database(client: AsyncMongoClient[Document], settings: Settings) -> AsyncDatabase[Document]:
    return client[settings.mongo_database]


async def ensure_indexes(db: AsyncDatabase[Document], collections: Iterable[str]) -> None:
    """Create the indexes of the collections a service owns; a no-op when they exist.

    One ``createIndexes`` per index: FerretDB v1 drops the connection (a panic in its handler) when
    one ``createIndexes`` names two or more indexes that already exist, as every restart would."""
    for name in collections:
        for index in INDEXES[name]:
            await db[name].create_indexes([index])


async def ping(client: AsyncMongoClient[Document]) -> bool:
    try:
        await client.admin.command("ping")
    except PyMongoError:  # readiness only reports; the caller decides what "not ready" means
        return False
    return True


def as_time(value: Any) -> datetime | None:
    """A stored time (a BSON date or an ISO string, aware or not) as an aware datetime; None if it is neither."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            found = datetime.fromisoformat(value)
        except ValueError:
            return None
        return found if found.tzinfo else found.replace(tzinfo=UTC)
    return None
