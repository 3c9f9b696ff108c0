"""The admin's API keys and roles on FerretDB: every route refuses a missing, unknown or revoked key
with 401 and a role below its own with 403; keys are stored hashed and shown once; changes are in
the audit log under the key's name."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.admin import access
from shared import templates
from shared.rules.builtin import CHECKIN
from shared.store import Collections

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
async def known_customer(admin_app: FastAPI) -> None:
    """A customer in the engine's projection, for the routes that read one."""
    await admin_app.state.db[Collections.CUSTOMERS].insert_one({"_id": "c-1", "customer_id": "c-1", "orders": 0})


@pytest.fixture(scope="module")
async def keys(admin_app: FastAPI) -> dict[str, str]:
    db = admin_app.state.db
    return {role: (await access.create_key(db, f"{role}-key", role, by="tests"))[0] for role in access.ROLES}


@pytest.fixture
async def http(admin_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=admin_app), base_url="http://admin") as client:
        yield client


def as_(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def builtin_checkin(http: httpx.AsyncClient, key: str) -> dict[str, Any]:
    rule: dict[str, Any] = (await http.get(f"/v1/rules/{CHECKIN}", headers=as_(key))).json()[-1]["rule"]
    return rule


# (method, path, body, the lowest role allowed)
ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", "/v1/rules", None, "viewer"),
    ("GET", "/v1/rules/schema", None, "viewer"),
    ("GET", f"/v1/rules/{CHECKIN}", None, "viewer"),
    ("POST", "/v1/rules/validate", {"rule_id": "x"}, "viewer"),
    ("GET", "/v1/policy", None, "viewer"),
    ("GET", "/v1/messages", None, "viewer"),
    ("GET", "/v1/audit", None, "viewer"),
    ("GET", "/v1/customers/c-1/why", None, "viewer"),
    ("GET", f"/v1/rules/{CHECKIN}/dry-run?customer_id=c-1", None, "viewer"),
    ("PUT", f"/v1/rules/{CHECKIN}", "checkin", "marketer"),
    ("POST", f"/v1/rules/{CHECKIN}/versions/1/publish", None, "publisher"),
    ("POST", f"/v1/rules/{CHECKIN}/enable", None, "publisher"),
    ("PUT", "/v1/policy", {"max_messages": 3, "window": "P7D"}, "admin"),
    ("GET", f"/v1/rules/{CHECKIN}/results", None, "viewer"),
    ("GET", f"/v1/rules/{CHECKIN}/backtests", None, "viewer"),
    ("POST", f"/v1/rules/{CHECKIN}/backtests", {"until": "2026-01-01T00:00:00Z"}, "marketer"),
    ("GET", "/v1/models", None, "viewer"),
    ("GET", "/v1/me", None, "viewer"),
    ("GET", "/v1/rules/vocabulary", None, "viewer"),
    ("GET", "/v1/templates", None, "viewer"),
    ("GET", "/v1/templates/checkin", None, "viewer"),
    ("POST", "/v1/templates/validate", {"template_id": "x"}, "viewer"),
    ("POST", "/v1/templates/checkin/preview", {}, "viewer"),
    ("PUT", "/v1/templates/checkin", "checkin-template", "marketer"),
    ("POST", "/v1/templates/checkin/test-send", {"to": "qa@example.com"}, "marketer"),
    ("POST", "/v1/templates/checkin/versions/1/publish", None, "publisher"),
    ("GET", "/v1/keys", None, "admin"),
    ("POST", "/v1/keys", {"name": "a tool", "role": "viewer"}, "admin"),
]


@pytest.mark.parametrize(("method", "path", "body", "lowest"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
async def test_each_role_is_refused_where_it_must_be(
    http: httpx.AsyncClient, keys: dict[str, str], method: str, path: str, body: Any, lowest: str
) -> None:
    if body == "checkin":
        body = await builtin_checkin(http, keys["viewer"])
    elif body == "checkin-template":
        body = {"locales": templates.BUILTIN["checkin"]}
    for role, key in keys.items():
        answer = await http.request(method, path, json=body, headers=as_(key))
        if access.ROLES.index(role) < access.ROLES.index(lowest):  # type: ignore[arg-type]
            assert answer.status_code == 403, (role, answer.text)
            assert lowest in answer.json()["detail"]
        elif path.endswith("/test-send"):  # allowed, but this admin has no mail server configured
            assert answer.status_code == 409, (role, answer.text)
        else:
            assert answer.status_code < 400, (role, answer.text)
    for headers in ({}, as_("pk_00000000_not-a-key"), as_("not even the format"), {"Authorization": "Basic eDp5"}):
        refused = await http.request(method, path, json=body, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["WWW-Authenticate"] == "Bearer"


async def test_a_key_is_shown_once_stored_hashed_and_can_be_revoked(
    admin_app: FastAPI, http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    made = await http.post("/v1/keys", json={"name": "reporting", "role": "viewer"}, headers=as_(keys["admin"]))
    assert made.status_code == 201
    key, key_id = made.json()["key"], made.json()["key_id"]
    stored = await admin_app.state.db[Collections.API_KEYS].find_one({"_id": key_id})
    assert stored["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(stored)
    listed = (await http.get("/v1/keys", headers=as_(keys["admin"]))).json()
    mine = next(k for k in listed if k["key_id"] == key_id)
    assert "key" not in mine
    assert "key_hash" not in mine
    assert (await http.get("/v1/rules", headers=as_(key))).status_code == 200

    assert (await http.delete(f"/v1/keys/{key_id}", headers=as_(keys["publisher"]))).status_code == 403
    assert (await http.delete(f"/v1/keys/{key_id}", headers=as_(keys["admin"]))).status_code == 204
    assert (await http.get("/v1/rules", headers=as_(key))).status_code == 401
    assert (await http.delete(f"/v1/keys/{key_id}", headers=as_(keys["admin"]))).status_code == 404
    bad = await http.post("/v1/keys", json={"name": "x", "role": "owner"}, headers=as_(keys["admin"]))
    assert bad.status_code == 422
    assert bad.json()["field"] == "role"


async def test_the_audit_log_names_who_changed_what(http: httpx.AsyncClient, keys: dict[str, str]) -> None:
    rule = await builtin_checkin(http, keys["viewer"])
    edited = {**rule, "name": "Check-in, edited"}
    saved = await http.put(f"/v1/rules/{CHECKIN}", json=edited, headers=as_(keys["marketer"]))
    version = saved.json()["version"]
    published = await http.post(f"/v1/rules/{CHECKIN}/versions/{version}/publish", headers=as_(keys["publisher"]))
    assert published.status_code == 200
    log = (await http.get("/v1/audit", params={"subject": CHECKIN}, headers=as_(keys["viewer"]))).json()
    by_action: dict[str, Any] = {}
    for entry in log:  # newest first: the latest of each kind
        if entry["subject"].startswith(f"{CHECKIN}@"):
            by_action.setdefault(entry["action"], entry)
    assert by_action["rule.draft_saved"]["who"].startswith("marketer-key (key ")
    assert by_action["rule.draft_saved"]["after"]["name"] == "Check-in, edited"
    assert by_action["rule.published"]["who"].startswith("publisher-key (key ")
    assert all(entry["subject"].startswith(CHECKIN) for entry in log)
