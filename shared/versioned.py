"""Versioned documents that the marketing team edits (rules, templates), and the audit log of changes.

One document per version, ``_id`` ``"<id>@<version>"``, with ``status`` ``draft`` or ``published``.
What is in force is the highest published version: publishing the newest draft flips its status;
publishing any other version (a rollback) copies its content as a new published version, so the
history stays whole and every change is in the append-only audit log (who, when, before, after).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from shared.settings import Settings
from shared.store import Collections, Document, database, mongo_client

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)  # with ``<kind>_id`` and ``version`` fields


async def audit(
    db: AsyncDatabase[Document], who: str, action: str, subject: str, before: Any = None, after: Any = None
) -> None:
    """An append-only record of a change: who, when, what, before and after."""
    entry = {
        "at": datetime.now(UTC),
        "who": who,
        "action": action,
        "subject": subject,
        "before": before,
        "after": after,
    }
    await db[Collections.AUDIT].insert_one(entry)


@dataclass(frozen=True)
class VersionedStore(Generic[T]):
    """``kind`` names the things (``rule``, ``template``): the id field is ``<kind>_id``, the content is
    under ``<kind>``, audit actions are ``<kind>.draft_saved`` and so on. ``parse`` validates raw
    content (raising pydantic's ``ValidationError`` with the field that is wrong)."""

    collection: str
    kind: str
    parse: Callable[[dict[str, Any]], T]

    @property
    def id_field(self) -> str:
        return f"{self.kind}_id"

    def doc(self, item: T, status: str, author: str, now: datetime) -> Document:
        key = getattr(item, self.id_field)
        return {
            "_id": f"{key}@{item.version}",  # type: ignore[attr-defined]
            self.id_field: key,
            "version": item.version,  # type: ignore[attr-defined]
            "status": status,
            self.kind: item.model_dump(mode="json"),
            "created_at": now,
            "created_by": author,
            "published_at": now if status == "published" else None,
        }

    async def versions(self, db: AsyncDatabase[Document], key: str) -> list[Document]:
        """Every version, newest first."""
        cursor = db[self.collection].find({self.id_field: key}).sort("version", DESCENDING)
        return [d async for d in cursor]

    async def in_force(self, db: AsyncDatabase[Document]) -> dict[str, Document]:
        """The highest published version of each, by id."""
        latest: dict[str, Document] = {}
        async for doc in db[self.collection].find({"status": "published"}):
            key = doc[self.id_field]
            if key not in latest or doc["version"] > latest[key]["version"]:
                latest[key] = doc
        return latest

    async def signature(self, db: AsyncDatabase[Document]) -> list[tuple[str, int]]:
        """Which versions are published: cheap to read, and it changes whenever what is in force does."""
        cursor = db[self.collection].find({"status": "published"}, {self.id_field: 1, "version": 1})
        return sorted([(d[self.id_field], d["version"]) async for d in cursor])

    async def save_draft(self, db: AsyncDatabase[Document], raw: dict[str, Any], author: str) -> T:
        """Validate and store as the next version, a draft. The version number is the store's, whatever
        the input says; two saves racing for one number are refused by the unique ``_id``."""
        existing = await self.versions(db, str(raw.get(self.id_field, "")))
        version = (existing[0]["version"] + 1) if existing else 1
        item = self.parse({**raw, "version": version})
        await db[self.collection].insert_one(self.doc(item, "draft", author, datetime.now(UTC)))
        before = existing[0][self.kind] if existing else None
        key = getattr(item, self.id_field)
        await audit(db, author, f"{self.kind}.draft_saved", f"{key}@{version}", before, item.model_dump(mode="json"))
        return item

    async def publish(self, db: AsyncDatabase[Document], key: str, version: int, author: str) -> T | None:
        """Put a version in force: the newest draft itself, or any other version again as a new one."""
        doc = await db[self.collection].find_one({"_id": f"{key}@{version}"})
        if doc is None:
            return None
        now = datetime.now(UTC)
        newest = (await self.versions(db, key))[0]["version"]
        if doc["status"] == "draft" and version == newest:
            await db[self.collection].update_one(
                {"_id": doc["_id"]}, {"$set": {"status": "published", "published_at": now, "published_by": author}}
            )
            await audit(db, author, f"{self.kind}.published", doc["_id"], {"status": "draft"}, {"status": "published"})
            return self.parse(doc[self.kind])
        again = self.parse({**doc[self.kind], "version": newest + 1})
        await db[self.collection].insert_one(self.doc(again, "published", author, now))
        await audit(
            db,
            author,
            f"{self.kind}.republished",
            f"{key}@{newest + 1}",
            {"from_version": version},
            again.model_dump(mode="json"),
        )
        return again


async def follow(
    settings: Settings,
    interval_s: float,
    what: str,
    signature: Callable[[AsyncDatabase[Document]], Awaitable[Any]],
    load: Callable[[AsyncDatabase[Document]], Awaitable[None]],
    loaded: asyncio.Event | None = None,
) -> None:
    """Follow what is in force in a store: every ``interval_s``, read its ``signature`` (which
    versions are in force) and, when it changed, ``load`` it; ``loaded`` is set after the first good
    read. While MongoDB is unreachable, or what is stored cannot be read, what was loaded last stays
    in force. Runs until cancelled. (The rules and the templates are followed by this one loop.)"""
    client = mongo_client(settings)
    db = database(client, settings)
    last: Any = None
    try:
        while True:
            try:
                now = await signature(db)
                if now != last:
                    await load(db)
                    last = now
                if loaded is not None:
                    loaded.set()
            except PyMongoError as exc:
                log.warning("cannot read the %s from MongoDB: %s", what, exc.__class__.__name__)
            except ValueError as exc:
                log.error("invalid %s in the store, keeping those in force: %s", what, str(exc)[:300])
            await asyncio.sleep(interval_s)
    finally:
        await client.close()
