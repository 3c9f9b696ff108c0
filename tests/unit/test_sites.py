"""Site keys and origins in front of the storefront API: what a browser on each shop may call."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.storefront.sites import SiteGuard
from shared.settings import StorefrontSettings

SITES = {"shop-a": ["https://a.example"], "shop-b": ["https://b.example"]}


async def ok(_: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Route("/v1/decide", ok, methods=["POST"]), Route("/demo", ok)])
    app.add_middleware(SiteGuard, sites=SITES)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://storefront") as client:
        yield client


async def test_a_shop_page_calls_with_its_key_from_its_origin(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/decide", headers={"Origin": "https://a.example", "X-Proact-Site": "shop-a"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://a.example"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://a.example"}, 403),  # no key
        ({"Origin": "https://a.example", "X-Proact-Site": "nope"}, 403),  # unknown key
        ({"Origin": "https://b.example", "X-Proact-Site": "shop-a"}, 403),  # another shop's page
        ({"Origin": "https://evil.example", "X-Proact-Site": "shop-a"}, 403),
        ({}, 200),  # a shop's back end: no browser, no origin check
    ],
)
async def test_other_callers_are_refused_or_let_through(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    assert (await client.post("/v1/decide", headers=headers)).status_code == status


async def test_preflight_answers_only_known_origins(client: httpx.AsyncClient) -> None:
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-proact-site"}
    good = await client.options("/v1/decide", headers={"Origin": "https://b.example", **asked})
    assert good.status_code == 204
    assert "X-Proact-Site" in good.headers["access-control-allow-headers"]
    evil = await client.options("/v1/decide", headers={"Origin": "https://evil.example", **asked})
    assert evil.status_code == 403
    assert (
        await client.get("/demo", headers={"Origin": "https://evil.example"})
    ).status_code == 200  # pages are not guarded


def test_sites_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROACT_STOREFRONT_SITES", '{"shop-a": ["https://a.example"]}')
    assert StorefrontSettings().sites == {"shop-a": ["https://a.example"]}
