"""Who may do what in the admin: API keys with roles.

Roles, each allowed what the ones before it are:

| role | may |
|---|---|
| ``viewer`` | read rules, policy, messages, explanations and the audit log; validate a rule |
| ``marketer`` | save rule drafts |
| ``publisher`` | publish a version (and so roll back) |
| ``admin`` | change the contact policy; create, list and revoke API keys |

And one role beside them: ``agent``, the support team member who makes callbacks. An agent sees the
callback queue only (with the numbers to call: personal data no other role needs), claims a
request and records how the call went; an ``admin`` may do that too.

A key is ``pk_<id>_<secret>``: the id is public (it names the key in lists and in the audit log),
the secret 256 random bits. Only the SHA-256 of the whole key is stored and the key is shown once,
when it is created. A fast hash is the right one here: the secret is random and long, so there is
nothing to guess that a slow password hash would protect. A request carries the key as
``Authorization: Bearer <key>``; no key, an unknown or a revoked one gets 401, a role below the
route's 403 naming the role it needs.

The first admin key is made on the command line, by whoever runs the service:
``python -m services.admin create-key --name ops --role admin`` (it prints the key once).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pymongo.asynchronous.database import AsyncDatabase

from shared.store import Collections, Document
from shared.versioned import audit

Role = Literal["viewer", "marketer", "publisher", "admin", "agent"]
ROLES: tuple[Role, ...] = ("viewer", "marketer", "publisher", "admin")  # each may what those before may
AGENT: Role = "agent"  # the callback queue only (and an admin may work it too)
ALL_ROLES: tuple[Role, ...] = (*ROLES, AGENT)
PREFIX = "pk_"

bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer pk_…`")


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: Role

    @property
    def who(self) -> str:
        """How the audit log names the author of a change."""
        return f"{self.name} (key {self.key_id}, {self.role})"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(db: AsyncDatabase[Document], name: str, role: Role, by: str) -> tuple[str, Document]:
    """A new key: (the key itself, shown once; its stored record without the hash)."""
    if role not in ALL_ROLES:
        raise ValueError(f"role must be one of {', '.join(ALL_ROLES)}")
    key_id = secrets.token_hex(4)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    record = {
        "_id": key_id,
        "name": name,
        "role": role,
        "created_at": datetime.now(UTC),
        "created_by": by,
        "revoked_at": None,
    }
    await db[Collections.API_KEYS].insert_one({**record, "key_hash": _hash(key)})
    await audit(db, by, "key.created", key_id, None, {"name": name, "role": role})
    return key, public(record)


async def revoke_key(db: AsyncDatabase[Document], key_id: str, by: str) -> bool:
    found = await db[Collections.API_KEYS].find_one_and_update(
        {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": datetime.now(UTC), "revoked_by": by}}
    )
    if found is not None:
        await audit(db, by, "key.revoked", key_id, {"revoked": False}, {"revoked": True})
    return found is not None


def public(record: Document) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in ("_id", "key_hash")}
    return {"key_id": record["_id"], **out}


async def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "an API key is required: Authorization: Bearer pk_…", headers=challenge
        )
    key = credentials.credentials
    if not key.startswith(PREFIX) or len(key) > 200:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "this is not a proact API key", headers=challenge)
    record = await request.app.state.db[Collections.API_KEYS].find_one({"key_hash": _hash(key)})
    if record is None or record.get("revoked_at") is not None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key", headers=challenge)
    return Principal(record["_id"], record["name"], record["role"])


def require(role: Role) -> Any:
    """A dependency: the caller's principal, if their role is ``role`` or above."""

    async def check(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Principal:
        principal = await authenticate(request, credentials)
        if not allowed(principal.role, role):
            needs = "the agent or admin role" if role == AGENT else f"the {role} role or above"
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs {needs}; the key is {principal.role}")
        return principal

    return Depends(check)


def allowed(have: Role, need: Role) -> bool:
    """Whether a key of role ``have`` may do what needs ``need``."""
    if need == AGENT:
        return have in (AGENT, "admin")
    return have in ROLES and ROLES.index(have) >= ROLES.index(need)


async def anyone(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """A dependency: the caller's principal, whatever their role."""
    return await authenticate(request, credentials)


Viewer = Annotated[Principal, require("viewer")]
Marketer = Annotated[Principal, require("marketer")]
Publisher = Annotated[Principal, require("publisher")]
Admin = Annotated[Principal, require("admin")]
Agent = Annotated[Principal, require(AGENT)]
Anyone = Annotated[Principal, Depends(anyone)]
