"""Rules in MongoDB: versioned documents, drafts and published versions, and the contact policy.

One document per rule version, ``_id`` ``"<rule_id>@<version>"``: ``status`` is ``draft`` or
``published``; the rule in force is the highest published version (so a rollback publishes an old
version's content again, as a new version, and the history stays whole). The built-in rules are
inserted as version 1 when missing, so a team's edits are never overwritten. The contact policy is
the document ``contact_policy`` of the ``settings`` collection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared import versioned
from shared.rules.builtin import BUILTIN
from shared.rules.evaluator import RuleSet
from shared.rules.model import ContactPolicy, Rule
from shared.settings import Settings
from shared.store import Collections, Document
from shared.versioned import VersionedStore, audit

POLICY_ID = "contact_policy"
log = logging.getLogger(__name__)


RULES: VersionedStore[Rule] = VersionedStore(Collections.RULES, "rule", Rule.model_validate)


BUILT_IN_AUTHOR = "proact (built-in)"


async def seed(db: AsyncDatabase[Document], now: datetime | None = None) -> int:
    """Insert the built-in rules and the default contact policy where missing; how many were added.

    A built-in rule nobody has touched (every version of it is proact's own) follows proact's
    definition when that changes: the new one is published as the next version, so an upgrade
    brings its corrected built-ins and the history shows it. A rule a team edited, published or
    switched on or off, even once, is theirs and is never changed here."""
    now = now or datetime.now(UTC)
    added = 0
    for raw in BUILTIN:
        rule = Rule.model_validate({**raw, "version": 1})
        known = await versions(db, rule.rule_id)
        if known:
            added += await _follow_builtin(db, rule, known, now)
            continue
        try:
            await db[Collections.RULES].insert_one(RULES.doc(rule, "published", BUILT_IN_AUTHOR, now))
            added += 1
        except DuplicateKeyError:
            pass  # another service seeded it at the same moment
    try:
        await db[Collections.SETTINGS].insert_one({"_id": POLICY_ID, **ContactPolicy().model_dump(mode="json")})
    except DuplicateKeyError:
        pass
    return added


async def _follow_builtin(db: AsyncDatabase[Document], rule: Rule, known: list[Document], now: datetime) -> int:
    untouched = all(d.get("created_by") == BUILT_IN_AUTHOR and d.get("published_by") is None for d in known)
    wanted = rule.model_dump(mode="json")
    # compared as the model reads them now: a field added since (with its default) is no change
    current = Rule.model_validate(known[0]["rule"]).model_dump(mode="json")
    if not untouched or {**current, "version": 0} == {**wanted, "version": 0}:
        return 0
    try:
        draft = await save_draft(db, wanted, BUILT_IN_AUTHOR)
        await db[Collections.RULES].update_one(
            {"_id": f"{rule.rule_id}@{draft.version}"},
            {"$set": {"status": "published", "published_at": now}},
        )
    except DuplicateKeyError:
        return 0  # another service brought it up to date at the same moment
    log.info(
        "a built-in rule follows proact's new definition", extra={"rule_id": rule.rule_id, "version": draft.version}
    )
    return 1


async def policy(db: AsyncDatabase[Document]) -> ContactPolicy:
    doc = await db[Collections.SETTINGS].find_one({"_id": POLICY_ID})
    if doc is None:
        return ContactPolicy()
    doc.pop("_id")
    return ContactPolicy.model_validate(doc)


async def set_policy(db: AsyncDatabase[Document], value: ContactPolicy, author: str = "unknown") -> None:
    before = (await policy(db)).model_dump(mode="json")
    await db[Collections.SETTINGS].replace_one({"_id": POLICY_ID}, value.model_dump(mode="json"), upsert=True)
    await audit(db, author, "policy.changed", POLICY_ID, before, value.model_dump(mode="json"))


async def versions(db: AsyncDatabase[Document], rule_id: str) -> list[Document]:
    return await RULES.versions(db, rule_id)


async def published(db: AsyncDatabase[Document]) -> list[Rule]:
    """The rule in force for each rule id: its highest published version."""
    latest = await RULES.in_force(db)
    return [Rule.model_validate(latest[k]["rule"]) for k in sorted(latest)]


async def active(db: AsyncDatabase[Document]) -> RuleSet:
    return RuleSet(await published(db), await policy(db))


async def save_draft(db: AsyncDatabase[Document], raw: dict[str, Any], author: str) -> Rule:
    """Validate a rule and store it as the next version, a draft (pydantic's ValidationError names
    the field that is wrong)."""
    return await RULES.save_draft(db, raw, author)


async def publish(db: AsyncDatabase[Document], rule_id: str, version: int, author: str) -> Rule | None:
    """Put a draft in force. Publishing an older version again (a rollback) copies it as a new one."""
    return await RULES.publish(db, rule_id, version, author)


async def follow(
    settings: Settings, on_rules: Callable[[RuleSet], bool], loaded: asyncio.Event, interval_s: float
) -> None:
    """Seed the built-in rules where missing, then read the published rules and the contact policy
    every ``interval_s`` and hand them to ``on_rules`` (which says whether they changed); ``loaded``
    is set after the first successful read (``shared.versioned.follow``)."""
    seeded = False

    async def signature(db: AsyncDatabase[Document]) -> Any:
        nonlocal seeded
        if not seeded:
            await seed(db)
            seeded = True
        # which versions are in force, and the policy: only a change is validated and compiled
        return await RULES.signature(db), await db[Collections.SETTINGS].find_one({"_id": POLICY_ID})

    async def load(db: AsyncDatabase[Document]) -> None:
        rules = await active(db)
        if on_rules(rules):
            log.info("rules loaded", extra={"rules": sorted(rules.rules), "fingerprint": rules.fingerprint})

    await versioned.follow(settings, interval_s, "rules", signature, load, loaded)
