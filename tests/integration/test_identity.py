"""Identity and personal data at the storefront, on the real broker: a customer id from a browser
counts only with the shop's signed identity; pop-up outcomes only for the visitor's own session;
new sessions per address are limited. Rules cannot read phones or e-mail addresses, and snapshots
of events never carry them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from services.storefront.app import create_app
from services.storefront.limits import RateLimit
from shared import signing
from shared.contract import Topics
from shared.engine.runner import snapshot
from shared.rules.conditions import ConditionError, check_expression
from shared.settings import StorefrontSettings
from shared.store import mongo_client
from tests.factories import event, uid

pytestmark = pytest.mark.integration
SECRET = secrets.token_hex(16)  # made for the run: no secret in code


@pytest.fixture(scope="module")
async def storefront(topics: Topics, model_registry: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = StorefrontSettings(
        topic_prefix=topics.prefix,
        mongo_database=uid("identity").replace("-", ""),
        model_dir=model_registry,
        identity_secret=SecretStr(SECRET),
        new_sessions_per_ip_minute=5,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
    mongo = mongo_client(settings)
    await mongo.drop_database(settings.mongo_database)
    await mongo.close()


def started(visitor: str, session: str, customer_id: str) -> dict[str, object]:
    return {
        "type": "session.started",
        "data": {"visitor_id": visitor, "session_id": session, "customer_id": customer_id},
    }


async def test_a_customer_id_counts_only_with_a_signed_identity(storefront: httpx.AsyncClient) -> None:
    view = storefront.app.state.view  # type: ignore[attr-defined]
    forged, signed = uid("s"), uid("s")
    answer = await storefront.post("/v1/events", json={"events": [started(uid("v"), forged, "c-victim")]})
    assert answer.status_code == 202
    assert "customer_id" not in view.get("session", forged)  # the browsing counts, the claim does not
    header = {"X-Proact-Identity": signing.identity_signature(SECRET, "c-real")}
    answer = await storefront.post("/v1/events", json={"events": [started(uid("v"), signed, "c-real")]}, headers=header)
    assert answer.status_code == 202
    assert view.get("session", signed)["customer_id"] == "c-real"
    wrong = {"X-Proact-Identity": ("é" * 64).encode("latin-1")}  # not even hex: refused as unsigned, not a 500
    answer = await storefront.post("/v1/events", json={"events": [started(uid("v"), uid("s"), "c-x")]}, headers=wrong)
    assert answer.status_code == 202


async def test_an_outcome_only_for_the_visitors_own_session(storefront: httpx.AsyncClient) -> None:
    visitor, session = uid("v"), uid("s")
    page = {
        "type": "page.viewed",
        "data": {"visitor_id": visitor, "session_id": session, "url": "/", "page_type": "home"},
    }
    assert (await storefront.post("/v1/events", json={"events": [page]})).status_code == 202
    outcome = {"type": "popup.shown", "visitor_id": visitor, "session_id": session, "decision_id": "d-1"}
    assert (await storefront.post("/v1/outcomes", json=outcome)).status_code == 202
    someone_else = {**outcome, "visitor_id": uid("v")}
    refused = await storefront.post("/v1/outcomes", json=someone_else)
    assert refused.status_code == 404
    assert refused.json()["field"] == "session_id"


async def test_new_sessions_per_address_are_limited(storefront: httpx.AsyncClient) -> None:
    statuses = []
    for _ in range(8):
        page = {
            "type": "page.viewed",
            "data": {"visitor_id": uid("v"), "session_id": uid("s"), "url": "/", "page_type": "home"},
        }
        statuses.append((await storefront.post("/v1/events", json={"events": [page]})).status_code)
    assert 429 in statuses
    assert statuses.count(202) <= 5


@pytest.mark.parametrize("expr", ["event.data.phone != null", 'event.data["email"] == "x"', "size(customer.email) > 0"])
def test_rules_cannot_read_phones_or_email_addresses(expr: str) -> None:
    with pytest.raises(ConditionError, match="not available to rules"):
        check_expression(expr)
    check_expression("customer.has_email && customer.has_phone")


def test_snapshots_of_events_leave_out_phones_and_email_addresses() -> None:
    callback = event(
        "callback.requested",
        subject="v-1",
        request_id="r-1",
        visitor_id="v-1",
        phone="+48123456789",
        email="anna@example.com",
        consent=True,
        time=datetime.now(UTC),
    )
    kept = snapshot(callback)
    assert "phone" not in kept["data"]
    assert "email" not in kept["data"]
    assert kept["data"]["request_id"] == "r-1"


async def test_pop_up_rules_see_the_churn_score_of_an_identified_visitor(storefront: httpx.AsyncClient) -> None:
    """The engine's projection has the customer's churn score; once a signed session names the
    customer, the decision call's facts carry it (read in the background, never in the call)."""
    app = storefront.app  # type: ignore[attr-defined]
    app.state.new_session_limit = RateLimit(100, 60)  # the limit test before this one used this address's
    customer = uid("c")
    await app.state.db["customers"].insert_one({"_id": customer, "churn": {"score": 0.83, "model_version": "v"}})
    header = {"X-Proact-Identity": signing.identity_signature(SECRET, customer)}
    session = started(uid("v"), uid("s"), customer)
    assert (await storefront.post("/v1/events", json={"events": [session]}, headers=header)).status_code == 202
    decider = app.state.decider
    for _ in range(50):
        if decider.churn.get(customer) is not None:
            break
        await asyncio.sleep(0.1)
    assert decider._customer(customer) == {"customer_id": customer, "churn": {"score": 0.83}}
    assert decider._customer(None) == {"customer_id": None}
