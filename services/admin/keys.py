"""API keys over HTTP: who am I, create, list and revoke keys (admins only, except ``/me``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Request
from pydantic import BaseModel, Field

from services.admin import access
from services.admin.access import Admin, Anyone
from shared.store import Collections

router = APIRouter(prefix="/v1", tags=["keys"])


@router.get("/me")
async def me(who: Anyone) -> dict[str, Any]:
    """The caller's key: its id, name and role (what the UI may offer)."""
    return {"key_id": who.key_id, "name": who.name, "role": who.role}


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="who or what uses the key")
    role: access.Role


@router.post("/keys", status_code=201)
async def create_key(request: Request, body: Annotated[NewKey, Body()], who: Admin) -> dict[str, Any]:
    """A new API key. The key is in this answer only: store it now; proact keeps only its hash."""
    key, record = await access.create_key(request.app.state.db, body.name, body.role, who.who)
    return {**record, "key": key}


@router.get("/keys")
async def list_keys(request: Request, _: Admin) -> list[dict[str, Any]]:
    """The API keys (never the keys themselves nor their hashes)."""
    cursor = request.app.state.db[Collections.API_KEYS].find({}).sort("created_at", -1)
    return [access.public(doc) async for doc in cursor]


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(request: Request, key_id: Annotated[str, Path(pattern="^[0-9a-f]{8}$")], who: Admin) -> None:
    """Revoke a key: it is refused from now on (the record stays, for the audit log)."""
    if not await access.revoke_key(request.app.state.db, key_id, who.who):
        raise HTTPException(404, f"no active key {key_id}")
