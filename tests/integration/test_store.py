"""MongoDB through FerretDB: writes and reads, the idempotency index, and the aggregation proact relies on."""

from __future__ import annotations

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.store import Collections, Document, ensure_indexes
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
