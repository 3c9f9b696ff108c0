"""Templates in the admin on FerretDB: validation names the field, drafts, publish and rollback, the
side-by-side preview with a customer's real values, a test-send received by a real SMTP server, and
a published template in force where messages are rendered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.admin import access
from shared import template_store, templates
from shared.mail import Mailer
from shared.settings import Settings
from shared.store import Collections
from tests.integration.conftest import Mailbox

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def keys(admin_app: FastAPI) -> dict[str, str]:
    db = admin_app.state.db
    await db[Collections.CUSTOMERS].insert_one({"_id": "c-t1", "customer_id": "c-t1", "orders": 4, "locale": "pl"})
    await db[Collections.ORDERS].insert_one(
        {"_id": "o-t1", "order_id": "o-t1", "customer_id": "c-t1", "placed_at": "2026-11-01T10:00:00+00:00"}
    )
    return {role: (await access.create_key(db, f"{role}-key", role, by="tests"))[0] for role in access.ROLES}


@pytest.fixture
async def http(admin_app: FastAPI, keys: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=admin_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        client.headers["Authorization"] = f"Bearer {keys['admin']}"
        yield client


def checkin(**changes: dict[str, str]) -> dict[str, Any]:
    locales = {loc: dict(parts) for loc, parts in templates.BUILTIN["checkin"].items()}
    for loc, parts in changes.items():
        locales.setdefault(loc, {}).update(parts)
    return {"description": "our check-in", "locales": locales}


async def test_a_template_that_does_not_parse_or_lacks_a_part_is_refused_with_its_field(
    http: httpx.AsyncClient,
) -> None:
    broken = checkin(pl={"subject": "Zamówienie {{ order_id "})
    refused = await http.put("/v1/templates/checkin", json=broken)
    assert refused.status_code == 422
    assert refused.json()["field"] == "locales.pl.subject"
    assert "line 1" in refused.json()["detail"]

    missing = checkin()
    del missing["locales"]["hr"]["text"]
    refused = await http.put("/v1/templates/checkin", json=missing)
    assert refused.status_code == 422
    assert refused.json()["field"] == "locales.hr"
    assert "text" in refused.json()["detail"]

    bad_locale = await http.post("/v1/templates/validate", json={"template_id": "checkin", "locales": {"PL!": {}}})
    assert bad_locale.json()["valid"] is False
    assert bad_locale.json()["errors"][0]["field"].startswith("locales.PL!")
    assert (await http.post("/v1/templates/validate", json={"template_id": "checkin", **checkin()})).json()["valid"]


async def test_drafts_publish_and_roll_back_like_rules(http: httpx.AsyncClient, keys: dict[str, str]) -> None:
    listed = {t["template_id"]: t for t in (await http.get("/v1/templates")).json()}
    assert listed["checkin"]["published"] == 0  # the built-in one
    first = await http.put("/v1/templates/checkin", json=checkin(en={"subject": "How is order {{ order_id }}?"}))
    assert first.status_code == 201
    v1 = first.json()["version"]
    refused = await http.post(
        f"/v1/templates/checkin/versions/{v1}/publish", headers={"Authorization": f"Bearer {keys['marketer']}"}
    )
    assert refused.status_code == 403
    assert (await http.post(f"/v1/templates/checkin/versions/{v1}/publish")).status_code == 200
    second = await http.put("/v1/templates/checkin", json=checkin(en={"subject": "Second: {{ order_id }}"}))
    v2 = second.json()["version"]
    await http.post(f"/v1/templates/checkin/versions/{v2}/publish")
    rolled = (await http.post(f"/v1/templates/checkin/versions/{v1}/publish")).json()
    assert rolled["version"] == v2 + 1
    versions = (await http.get("/v1/templates/checkin")).json()
    assert [v["version"] for v in versions] == [v2 + 1, v2, v1, 0]
    assert versions[0]["template"]["locales"]["en"]["subject"] == "How is order {{ order_id }}?"
    audit = (await http.get("/v1/audit", params={"subject": "checkin@"})).json()
    assert {"template.draft_saved", "template.published", "template.republished"} <= {a["action"] for a in audit}


async def test_the_preview_shows_every_locale_side_by_side_with_the_customers_values(
    http: httpx.AsyncClient,
) -> None:
    # the built-in check-in rule sends this template with the order id from the engine's facts
    shown = (
        await http.post("/v1/templates/checkin/preview", json={"customer_id": "c-t1", "order_id": "o-t1", "version": 0})
    ).json()
    assert set(shown["previews"]) == {"en", "pl", "ru", "lt", "hr"}
    assert "o-t1" in shown["previews"]["pl"]["parts"]["subject"]
    assert shown["previews"]["pl"]["parts"]["subject"].startswith("Czy wszystko")
    # an unsaved draft, a locale it lacks (falls back), and markup in a value is escaped
    draft = {
        "en": {"subject": "Hi {{ name }}", "text": "Order {{ order_id }}"},
        "pl": {"subject": "Cześć {{ name }}", "text": "Zamówienie {{ order_id }}"},
    }
    body = {"template": draft, "locales": ["pl-PL", "de"], "values": {"name": "<b>Ola</b>"}}
    shown = (await http.post("/v1/templates/checkin/preview", json=body)).json()
    assert "previews" in shown, shown
    assert shown["previews"]["pl-PL"] == {
        "locale": "pl",
        "parts": {"subject": "Cześć &lt;b&gt;Ola&lt;/b&gt;", "text": "Zamówienie SAMPLE-1001"},
    }
    assert shown["previews"]["de"]["locale"] == "en"
    broken = await http.post("/v1/templates/checkin/preview", json={"template": {"en": {"subject": "{% if %}"}}})
    assert broken.status_code == 422
    assert broken.json()["field"] == "template.en.subject"
    unknown = await http.post("/v1/templates/checkin/preview", json={"customer_id": "nobody"})
    assert unknown.status_code == 404
    assert unknown.json()["field"] == "customer_id"


async def test_a_test_send_arrives_at_the_mail_server_marked_as_a_test(
    admin_app: FastAPI, http: httpx.AsyncClient, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    admin_app.state.mailer = Mailer("127.0.0.1", port, "shop <shop@example.com>")
    try:
        sent = await http.post(
            "/v1/templates/delay_notice/test-send", json={"to": "qa@example.com", "locale": "lt", "version": 0}
        )
    finally:
        admin_app.state.mailer = None
    assert sent.status_code == 202, sent.text
    mail = mailbox.received[-1]
    assert mail["To"] == "qa@example.com"
    assert mail["Subject"] == "[test] Jūsų užsakymas SAMPLE-1001 vėluoja"
    assert mail["Content-Language"] == "lt"
    audit = (await http.get("/v1/audit", params={"subject": "delay_notice"})).json()
    assert audit[0]["action"] == "template.test_sent"
    assert "qa@" not in str(audit[0])  # the domain only
    bad = await http.post("/v1/templates/delay_notice/test-send", json={"to": "not an address"})
    assert bad.status_code == 422


async def test_a_published_template_is_what_services_render(
    admin_app: FastAPI, http: httpx.AsyncClient, base_settings: Settings
) -> None:
    saved = await http.put(
        "/v1/templates/winback",
        json={"locales": {"en": {"subject": "Come back, {{ customer_id }}", "text": "New things."}}},
    )
    await http.post(f"/v1/templates/winback/versions/{saved.json()['version']}/publish")
    settings = base_settings.model_copy(update={"mongo_database": admin_app.state.db.name})
    in_force = templates.InForce()
    following = asyncio.create_task(template_store.follow(settings, 0.2, in_force))
    try:
        for _ in range(50):
            if "winback" in in_force.published:
                break
            await asyncio.sleep(0.1)
        used, parts = in_force.render("winback", "pl", {"customer_id": "c-9"})
        assert (used, parts["subject"]) == ("en", "Come back, c-9")  # replaced whole: no Polish any more
        assert in_force.render("checkin", "pl", {"order_id": "1"})[1]["subject"] != ""
    finally:
        following.cancel()
