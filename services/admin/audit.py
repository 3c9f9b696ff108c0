"""What happened, over HTTP: the messages proact sent or held out, and the audit log of changes."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from services.admin.access import Viewer
from shared.store import Collections

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/messages")
async def recent_messages(
    request: Request,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    rule_id: Annotated[str | None, Query(max_length=200)] = None,
) -> list[dict[str, Any]]:
    """The most recent messages proact sent or held out, newest first."""
    query: dict[str, Any] = {"rule_id": rule_id} if rule_id else {}
    cursor = request.app.state.db[Collections.MESSAGES].find(query).sort("created_at", -1).limit(limit)
    return [{**doc, "_id": str(doc["_id"])} async for doc in cursor]


@router.get("/audit")
async def audit_log(
    request: Request,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    subject: Annotated[str | None, Query(max_length=200)] = None,
) -> list[dict[str, Any]]:
    """Every change, newest first: who, when, what, before and after (append-only)."""
    query: dict[str, Any] = {"subject": {"$regex": f"^{re.escape(subject)}"}} if subject else {}
    cursor = request.app.state.db[Collections.AUDIT].find(query, {"_id": 0}).sort("at", -1).limit(limit)
    return [doc async for doc in cursor]
