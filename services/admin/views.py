"""Admin HTTP routes: recent messages for now; rules, templates and results follow."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from shared.store import Collections

router = APIRouter(prefix="/v1")


@router.get("/messages")
async def recent_messages(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    rule_id: Annotated[str | None, Query(max_length=200)] = None,
) -> list[dict[str, Any]]:
    """The most recent messages proact sent or held out, newest first."""
    query: dict[str, Any] = {"rule_id": rule_id} if rule_id else {}
    cursor = request.app.state.db[Collections.MESSAGES].find(query).sort("created_at", -1).limit(limit)
    return [{**doc, "_id": str(doc["_id"])} async for doc in cursor]
