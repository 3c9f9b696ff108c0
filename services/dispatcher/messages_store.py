"""The ``messages`` collection: one document per action, claimed by its unique idempotency key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.store import Collections, Document

FINAL_STATUSES = frozenset({"delivered", "failed", "holdout"})


async def claim(db: AsyncDatabase[Document], message: dict[str, Any]) -> Document | None:
    """Insert the message as pending; return the existing document when the key was claimed before."""
    try:
        await db[Collections.MESSAGES].insert_one({**message, "_id": message["action_id"], "status": "pending"})
    except DuplicateKeyError:
        return await db[Collections.MESSAGES].find_one({"idempotency_key": message["idempotency_key"]})
    return None


async def mark(db: AsyncDatabase[Document], action_id: str, status: str, at: datetime, **fields: Any) -> None:
    # one writer per document (the dispatcher that owns the action's partition), so a plain update is safe
    await db[Collections.MESSAGES].update_one(
        {"_id": action_id}, {"$set": {"status": status, f"{status}_at": at, **fields}}
    )


async def outcome_published(db: AsyncDatabase[Document], action_id: str) -> None:
    """The outcome of a final status is on the outcomes topic: a re-read action publishes nothing more."""
    await db[Collections.MESSAGES].update_one({"_id": action_id}, {"$set": {"outcome_published": True}})


def unpublished(doc: Document) -> bool:
    """A final status whose outcome was recorded but maybe not published: the dispatcher stopped
    between the two. (Documents written before the flag existed count as published.)"""
    return doc.get("status") in ("delivered", "failed") and doc.get("outcome_published") is False


async def engaged(db: AsyncDatabase[Document], action_id: str, field: str, at: datetime) -> None:
    """The first open (or click) of a message; a repeat, or a replayed outcome, changes nothing."""
    await db[Collections.MESSAGES].update_one({"_id": action_id, field: None}, {"$set": {field: at}})
