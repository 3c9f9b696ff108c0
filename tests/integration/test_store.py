"""MongoDB through FerretDB: writes and reads, the idempotency index, and the aggregation proact relies on."""

from __future__ import annotations

import uuid

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.rules import store as rule_store
from shared.rules.builtin import BUILTIN
from shared.settings import Settings
from shared.store import Collections, Document, ensure_indexes, mongo_client
from tests.factories import uid

pytestmark = pytest.mark.integration


async def test_a_document_written_is_read_back(db: AsyncDatabase[Document]) -> None:
    doc = {"_id": uid("d"), "customer_id": "c-1", "nested": {"n": 3}, "tags": ["a", "b"]}
    await db["scratch"].insert_one(doc)
    assert await db["scratch"].find_one({"_id": doc["_id"]}) == doc


async def test_indexes_can_be_ensured_again_on_every_start(db: AsyncDatabase[Document]) -> None:
    await ensure_indexes(db, [Collections.MESSAGES, Collections.DECISIONS])
    await ensure_indexes(db, [Collections.MESSAGES, Collections.DECISIONS])
    names = set(await db[Collections.MESSAGES].index_information())
    assert {"idempotency_key_unique", "customer_recent", "rule_recent"} <= names


async def test_the_idempotency_key_is_unique(db: AsyncDatabase[Document]) -> None:
    key = uid("k")
    await db[Collections.MESSAGES].insert_one({"_id": uid("a"), "idempotency_key": key})
    with pytest.raises(DuplicateKeyError):
        await db[Collections.MESSAGES].insert_one({"_id": uid("a"), "idempotency_key": key})


async def test_group_with_two_accumulators_counts_both(db: AsyncDatabase[Document]) -> None:
    """Unpatched FerretDB v1 computes only the first accumulator and returns n = 0 here; the build
    script applies deploy/local/ferretdb/v1.24.2-fixes.patch."""
    coll = db[uid("agg")]
    await coll.insert_many([{"k": "a", "v": 2}, {"k": "a", "v": 3}, {"k": "b", "v": 5}])
    rows = [r async for r in await coll.aggregate([{"$group": {"_id": "$k", "t": {"$sum": "$v"}, "n": {"$sum": 1}}}])]
    assert {r["_id"]: (r["t"], r["n"]) for r in rows} == {"a": (5, 2), "b": (5, 1)}


async def test_updates_by_id_batch_of_150_returns(db: AsyncDatabase[Document]) -> None:
    """Unpatched FerretDB hangs on a bulk write of 100 or more updates."""
    from pymongo import UpdateOne

    coll = db[uid("bulk")]
    await coll.insert_many([{"_id": i, "n": 0} for i in range(150)])
    result = await coll.bulk_write([UpdateOne({"_id": i}, {"$inc": {"n": 1}}) for i in range(150)])
    assert result.modified_count == 150


async def test_an_untouched_builtin_rule_follows_proacts_new_definition_and_an_edited_one_stays(
    base_settings: Settings,
) -> None:
    """Upgrading proact: a built-in rule nobody edited gets the new definition as its next version; a
    rule a team published (even unchanged) keeps theirs."""
    name = f"seed{uuid.uuid4().hex[:8]}"
    client = mongo_client(base_settings)
    db = client[name]
    try:
        await rule_store.seed(db)
        assert await rule_store.seed(db) == 0  # nothing changed: nothing new
        # as an older proact left it: the repair warning off and different
        old = next(r for r in BUILTIN if r["rule_id"] == "repair-overdue")
        await db["rules"].update_one(
            {"_id": "repair-overdue@1"}, {"$set": {"rule.enabled": False, "rule.conditions": []}}
        )
        edited = (await rule_store.versions(db, "ticket-followup"))[0]["rule"]
        draft = await rule_store.save_draft(db, {**edited, "enabled": False}, author="Maria")
        await rule_store.publish(db, "ticket-followup", draft.version, author="Maria")
        await db["rules"].update_one({"_id": "ticket-followup@2"}, {"$set": {"rule.name": "Ours"}})
        assert await rule_store.seed(db) == 1
        (latest, _first) = await rule_store.versions(db, "repair-overdue")
        assert (latest["version"], latest["status"], latest["created_by"]) == (2, "published", "proact (built-in)")
        assert latest["rule"]["enabled"] is True
        assert latest["rule"]["conditions"] == old["conditions"]
        in_force = {r.rule_id: r for r in await rule_store.published(db)}
        assert in_force["repair-overdue"].version == 2
        assert in_force["ticket-followup"].name == "Ours"  # the team's, untouched
        assert in_force["delay-notice"].version == 1
    finally:
        await client.drop_database(name)
        await client.close()
