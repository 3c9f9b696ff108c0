"""The widget in headless Chromium (Debian's, driven by Selenium) against a real storefront server on
the real broker: a visitor who lingers is offered a callback, leaves a number with consent and the
request reaches Kafka; a visitor who goes straight to checkout is offered nothing. The pop-up's
screenshot is kept in ``tests/artifacts/``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from services.storefront.app import create_app
from shared.contract import Topics, decode
from shared.settings import Settings, StorefrontSettings
from tests.factories import uid
from tests.integration.conftest import database_with_rules, free_port
from tests.kafka_io import read

pytestmark = [pytest.mark.integration]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
async def storefront(topics: Topics, base_settings: Settings, model_registry: Path) -> AsyncIterator[str]:
    database = uid("widget").replace("-", "")
    # the shop's version of the rule for this test: lingering means more than 3 seconds
    conditions = ["session.duration_s > 3.0", "scores.intent != null", "!session.checkout", "!session.offered"]
    db = await database_with_rules(base_settings, database, [{"expr": c} for c in conditions])
    port = free_port()
    settings = StorefrontSettings(topic_prefix=topics.prefix, mongo_database=database, model_dir=model_registry)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    for _ in range(100):  # rules loaded and the session view caught up
        if app.state.rules_loaded.is_set() and app.state.view.caught_up:
            break
        await asyncio.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task
    await db.client.drop_database(database)
    await db.client.close()


def linger_and_accept(driver: webdriver.Chrome, base: str) -> str:
    driver.get(f"{base}/demo?page=home&heartbeat=1")
    driver.get(f"{base}/demo?page=product&heartbeat=1")
    popup = WebDriverWait(driver, 30).until(ec.visibility_of_element_located((By.ID, "proact-popup")))
    assert popup.get_attribute("role") == "dialog"
    assert popup.get_attribute("aria-modal") == "true"
    assert driver.switch_to.active_element.get_attribute("id") == "proact-phone"  # focus moved into it
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "widget-popup.png"))
    driver.find_element(By.ID, "proact-phone").send_keys("+48 601 234 567")
    driver.find_element(By.ID, "proact-accept").click()  # without consent: refused in the page
    assert "agree" in driver.find_element(By.ID, "proact-error").text
    driver.find_element(By.ID, "proact-consent").click()
    driver.find_element(By.ID, "proact-accept").click()
    WebDriverWait(driver, 10).until(ec.visibility_of_element_located((By.ID, "proact-thanks")))
    return str(driver.execute_script("return localStorage.getItem('proact.visitor')"))


def straight_to_checkout(driver: webdriver.Chrome, base: str) -> int:
    driver.get(f"{base}/demo?page=checkout&heartbeat=1")
    time.sleep(6)  # six heartbeats, each followed by a decision call
    return len(driver.find_elements(By.ID, "proact-popup"))


async def test_a_lingering_visitor_leaves_a_number_and_a_buyer_sees_nothing(
    storefront: str, browser: webdriver.Chrome, topics: Topics
) -> None:
    visitor = await asyncio.to_thread(linger_and_accept, browser, storefront)
    records = await read(topics.support, lambda rs: any(r.key == visitor.encode() for r in rs))
    (callback,) = [decode(r.value, r.headers) for r in records if r.key == visitor.encode()]
    assert callback.type == "callback.requested"
    assert callback.data.model_dump()["phone"] == "+48601234567"
    outcomes = await read(topics.outcomes, lambda rs: sum(r.key == visitor.encode() for r in rs) >= 2)
    assert {decode(r.value, r.headers).type for r in outcomes if r.key == visitor.encode()} == {
        "popup.shown",
        "popup.accepted",
    }

    browser.delete_all_cookies()
    await asyncio.to_thread(browser.get, f"{storefront}/demo")
    await asyncio.to_thread(browser.execute_script, "localStorage.clear(); sessionStorage.clear();")
    assert await asyncio.to_thread(straight_to_checkout, browser, storefront) == 0
