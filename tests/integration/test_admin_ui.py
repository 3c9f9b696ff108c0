"""The marketers' web UI in headless Chromium (Debian's, driven by Selenium) against a real admin
server on the real broker and FerretDB: sign in with a key, make a rule from the built-in check-in
by changing its delay, back-test it over the shop's recorded events, publish it and find it in the
audit log; then every other page: the overview, the contact policy, API keys, a customer's "why",
a rule's dry run and full action form, the difference of two versions, the dead letters.

A screenshot of each page is kept in ``tests/artifacts/``; with ``PROACT_UPDATE_SCREENSHOTS=1`` the
documentation's copies in ``docs/img/`` are replaced too (they are committed, so a test run does not
rewrite them unless asked)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from services.admin import access
from services.admin.app import create_app
from services.dispatcher.app import build_broker
from services.dispatcher.channels import Channels, OutboxChannel
from shared.clock import SystemClock
from shared.rules.builtin import CHECKIN
from shared.settings import AdminSettings, DispatcherSettings, Settings
from shared.store import Collections, mongo_client
from tests.factories import purchase_history, uid
from tests.integration.conftest import free_port, isolated_topics, waiting
from tests.kafka_io import produce, produce_raw

pytestmark = [pytest.mark.integration]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
T0 = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
NEW_RULE = "checkin-five-days"


@pytest.fixture
async def admin(
    base_settings: Settings, model_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, str]]:
    """An admin server over a shop with recorded purchases, sent messages and trained models."""
    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("ui")) as topics:
        await produce(purchase_history(t0=T0), topics)
        name = f"adminui{uuid.uuid4().hex[:10]}"
        settings = AdminSettings(mongo_database=name, topic_prefix=topics.prefix, model_dir=model_registry)
        app = create_app(settings)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        db = app.state.db
        key, _ = await access.create_key(db, "Maria (marketing)", "admin", by="tests")
        sent = datetime.now(UTC) - timedelta(days=3)
        await db[Collections.MESSAGES].insert_many(
            [
                {
                    "_id": f"m{i}",
                    "idempotency_key": f"k{i}",
                    "rule_id": CHECKIN,
                    "customer_id": f"c{i}",
                    "channel": "email" if i % 3 else "sms",
                    "locale": "pl" if i % 2 else "en",
                    "holdout": i % 10 == 0,
                    "status": "holdout" if i % 10 == 0 else "delivered",
                    "created_at": sent,
                    "context": {"order_id": f"o{i}", "survey": "csat"},
                    **({"opened_at": sent} if i % 4 == 0 else {}),
                }
                for i in range(60)
            ]
        )
        # what six customers answered to the check-in's rating links, one with a comment
        await db[Collections.INTERACTIONS].insert_many(
            [
                {
                    "_id": f"r{i}",
                    "type": "csat.submitted",
                    "at": sent + timedelta(hours=i),
                    "customer_id": f"c{i}",
                    "rule_id": CHECKIN,
                    "action_id": f"m{i}",
                    "channel": "email" if i % 3 else "sms",
                    "locale": "pl" if i % 2 else "en",
                    "score": score,
                    "comment": "Paczka była zgnieciona." if score == 2 else None,
                }
                for i, score in zip(range(1, 7), (5, 4, 4, 2, 5, 3), strict=True)
            ]
        )
        await db[Collections.CALLBACKS].insert_one(
            {
                "_id": "r-demo",
                "request_id": "r-demo",
                "person": "v-demo",
                "visitor_id": "v-demo",
                "customer_id": None,
                "phone": "+48601234567",
                "email": None,
                "locale": "pl-PL",
                "topic": "headphones",
                "preferred_time": "after 17:00",
                "requested_at": datetime.now(UTC) - timedelta(minutes=30),
                "promised_by": datetime.now(UTC) + timedelta(minutes=90),
                "status": "open",
                "claimed_by": None,
                "attempts": [],
                "made_at": None,
                "helpdesk_at": None,
            }
        )
        await db[Collections.ORDERS].insert_many(
            [
                {
                    "_id": f"o{i}",
                    "order_id": f"o{i}",
                    "customer_id": f"c{i}",
                    "placed_at": (sent + timedelta(days=1)).isoformat(),
                }
                for i in range(60)
                if (i % 3 == 0 and i % 10) or i == 20
            ]
        )
        await db[Collections.DECISIONS].insert_many(
            [
                {
                    "_id": f"d{i}",
                    "rule_id": CHECKIN,
                    "rule_version": 1,
                    "rule_name": "Post-purchase check-in",
                    "customer_id": "c-anna" if i < 3 else f"c{i}",
                    "scope": f"o{i}",
                    "order_id": f"o{i}",
                    "at": (datetime.now(UTC) - timedelta(seconds=i)).isoformat(),
                    "outcome": "suppressed" if i % 2 else "fired",
                    "guard": "cooldown" if i % 2 else None,
                    "channel": "email",
                    "why": "the contact policy's cool-down of 12 h" if i % 2 else "all conditions held",
                    "conditions": [],
                    "trigger": {"kind": "delay"},
                }
                for i in range(8)
            ]
        )
        await db[Collections.CUSTOMERS].insert_one(
            {"_id": "c-anna", "customer_id": "c-anna", "orders": 2, "locale": "pl-PL", "consents": {"email": True}}
        )
        await db[Collections.INTERACTIONS].insert_many(
            [
                {"_id": f"i{i}", "type": ("popup.shown", "popup.accepted")[i % 2], "at": datetime.now(UTC)}
                for i in range(5)
            ]
        )
        await produce_raw(
            topics.dlq(topics.orders),
            b'{"type": "order.placed", "id": "ev-broken"}',
            b"c1",
            [
                ("proact_dlq_error_type", b"InvalidEvent"),
                ("proact_dlq_reason", b"data.total: the amount is negative"),
                ("proact_dlq_field", b"data.total"),
                ("proact_dlq_topic", topics.orders.encode()),
            ],
        )
        # the dispatcher applies the agents' claims and calls to the callback queue (its one writer)
        dispatcher = build_broker(
            DispatcherSettings(topic_prefix=topics.prefix, mongo_database=name, group_id=uid("dispatcher")),
            db,
            Channels(OutboxChannel(tmp_path_factory.mktemp("outbox"))),
            SystemClock(),
        )
        try:
            async with dispatcher:
                await dispatcher.start()
                yield f"http://127.0.0.1:{port}", key
        finally:
            server.should_exit = True
            await task
            client = mongo_client(base_settings)
            await client.drop_database(name)
            await client.close()


def shot(driver: webdriver.Chrome, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"admin-{name}.png"
    driver.save_screenshot(str(path))
    if os.environ.get("PROACT_UPDATE_SCREENSHOTS") == "1" and name != "failure":
        shutil.copy(path, DOC_IMAGES / path.name)


def find(driver: webdriver.Chrome, css: str, timeout: float = 15) -> webdriver.remote.webelement.WebElement:
    return waiting(driver, timeout).until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))


def text_appears(driver: webdriver.Chrome, css: str, text: str, timeout: float = 30) -> None:
    waiting(driver, timeout).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def marketer_journey(driver: webdriver.Chrome, base: str, key: str) -> None:
    driver.get(f"{base}/ui/rules")  # no key yet: the sign-in page
    key_input = find(driver, "#api-key")
    assert driver.switch_to.active_element == key_input
    key_input.send_keys("pk_00000000_wrong")
    driver.find_element(By.ID, "sign-in").click()
    text_appears(driver, "form.login .errors", "not accepted")
    shot(driver, "login")
    key_input.clear()
    key_input.send_keys(key)
    driver.find_element(By.ID, "sign-in").click()

    find(driver, f'a[href="/ui/rules/{CHECKIN}"]')
    assert "Maria (marketing) · admin" in driver.find_element(By.ID, "who").text
    shot(driver, "rules")
    driver.find_element(By.NAME, "q").send_keys("check-in")
    driver.find_element(By.CSS_SELECTOR, 'form[role="search"] button').click()
    WebDriverWait(driver, 15).until(lambda d: "q=check-in" in d.current_url)
    rows = [r.text for r in find(driver, "main table").find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert len(rows) == 1
    assert rows[0].startswith(CHECKIN)
    driver.find_element(By.CSS_SELECTOR, f'a[href="/ui/rules/{CHECKIN}"]').click()

    # the editor: a new rule from the built-in check-in, five days after delivery instead of three
    rule_id = find(driver, "#rule-id")
    text_appears(driver, "#rule-errors", "valid")
    name = driver.find_element(By.ID, "rule-name")
    name.clear()  # live validation names the field
    text_appears(driver, "#rule-errors", "name")
    assert name.get_attribute("aria-invalid") == "true"
    name.send_keys("Check-in five days after delivery")
    rule_id.clear()
    rule_id.send_keys(NEW_RULE)
    wait = driver.find_element(By.CSS_SELECTOR, '#triggers input[type="number"]')
    assert wait.get_attribute("value") == "3"
    wait.clear()
    wait.send_keys("5")
    text_appears(driver, "#rule-errors", "The rule is valid")
    driver.find_element(By.CSS_SELECTOR, "#raw summary").click()
    assert '"delay": "P5D"' in driver.find_element(By.ID, "raw-json").get_attribute("value")
    shot(driver, "rule-editor")
    driver.find_element(By.ID, "save-draft").click()
    text_appears(driver, "main", "Saved as draft version 1")

    # back-test the draft over the recorded purchases, up to ten days after they began
    driver.find_element(By.ID, "to-backtests").click()
    find(driver, "#bt-start")
    until = (T0 + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M")
    driver.execute_script("document.getElementById('bt-until').value = arguments[0]", until)
    driver.find_element(By.ID, "bt-start").click()
    summary = find(driver, "#bt-summary", timeout=60)
    would_send = int(summary.find_element(By.CSS_SELECTOR, ".card b").text)
    assert 10 <= would_send <= 14  # 20 buyers: 4 returned their order, 2 gave no consent, some held out
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect")
    shot(driver, "backtest")

    # publish it, then find it in the audit log
    driver.get(f"{base}/ui/rules/{NEW_RULE}")
    find(driver, "#publish").click()
    text_appears(driver, "main", "Version 1 is in force")
    driver.find_element(By.CSS_SELECTOR, 'header a[href="/ui/audit"]').click()
    text_appears(driver, "main table", f"{NEW_RULE}@1")
    actions = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "td .action")]
    assert actions[:2] == ["rule.published", "rule.draft_saved"]
    shot(driver, "audit")

    # the other pages
    driver.get(f"{base}/ui/rules/{CHECKIN}/results")
    text_appears(driver, "#results-summary", "sent")
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart circle")
    shot(driver, "results")
    driver.get(f"{base}/ui/templates")
    find(driver, 'a[href="/ui/templates/checkin"]').click()
    text_appears(driver, "#preview-pl", "SAMPLE-1001")
    textarea = driver.find_element(By.ID, "part-en-subject")
    textarea.send_keys(" {{ oops")
    text_appears(driver, "main", "template.en.subject")
    shot(driver, "template-editor")
    driver.get(f"{base}/ui/models")
    WebDriverWait(driver, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "img.plot")) >= 3)
    shot(driver, "models")


async def test_a_marketer_makes_back_tests_and_publishes_a_rule_in_the_browser(
    admin: tuple[str, str], browser: webdriver.Chrome
) -> None:
    base, key = admin
    try:
        await asyncio.to_thread(marketer_journey, browser, base, key)
    except Exception as exc:
        shot(browser, "failure")  # what the page showed, and what the browser said, for the report
        logs = [e["message"] for e in browser.get_log("browser")]
        requests = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => [e.name, Math.round(e.duration)])"
        )
        raise AssertionError(f"at {browser.current_url}; console: {logs}; requests: {requests}") from exc


def every_page_journey(driver: webdriver.Chrome, base: str, key: str) -> None:
    driver.get(f"{base}/ui/login")
    find(driver, "#api-key").send_keys(key)
    driver.find_element(By.ID, "sign-in").click()

    # the landing page: the overview, its figures the API's
    find(driver, "#overview-today")
    assert driver.current_url.endswith("/ui/overview")
    today = {
        c.get_attribute("data-figure"): c.find_element(By.TAG_NAME, "b").text
        for c in driver.find_elements(By.CSS_SELECTOR, "#overview-today .card")
    }
    assert today["popups_shown"] == "3"
    assert today["popups_accepted"] == "2"
    assert today["dead_letters"] == "1"
    assert int(today["suppressed"]) >= 1
    week = {
        c.get_attribute("data-figure"): c.find_element(By.TAG_NAME, "b").text
        for c in driver.find_elements(By.CSS_SELECTOR, "#overview-week .card")
    }
    assert week["sent"] == "54"  # 60 messages three days ago, 6 of them held out
    assert week["held_out"] == "6"
    assert driver.find_elements(By.CSS_SELECTOR, '#overview-chart rect[data-figure="sent"]')
    shot(driver, "overview")

    # the contact policy: a wrong time zone is refused naming the field; a right one is saved
    driver.find_element(By.CSS_SELECTOR, 'header a[href="/ui/policy"]').click()
    zone = find(driver, "#policy-timezone")
    zone.clear()
    zone.send_keys("Mars/Olympus")
    driver.find_element(By.ID, "policy-save").click()
    text_appears(driver, "main", "default_timezone")
    assert zone.get_attribute("aria-invalid") == "true"
    zone.clear()
    zone.send_keys("Europe/Warsaw")
    maximum = driver.find_element(By.ID, "policy-max")
    maximum.clear()
    maximum.send_keys("4")
    driver.find_element(By.ID, "policy-save").click()
    text_appears(driver, "main", "Saved: at most 4 messages per customer")
    shot(driver, "policy")

    # API keys: made, shown once, revoked
    driver.find_element(By.CSS_SELECTOR, 'header a[href="/ui/keys"]').click()
    find(driver, "#key-name").send_keys("Shop back end")
    driver.find_element(By.ID, "key-create").click()
    made = find(driver, "#key-value").get_attribute("value")
    assert made.startswith("pk_")
    assert "shown this once" in driver.find_element(By.ID, "new-key").text
    shot(driver, "keys")
    driver.get(f"{base}/ui/keys")
    text_appears(driver, "main table", "Shop back end")
    assert made not in driver.page_source  # listed by its id, never the key again
    driver.find_element(By.CSS_SELECTOR, "button[data-key]").click()
    driver.switch_to.alert.accept()
    waiting(driver, 15).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "button[data-key]"))

    # a customer's "why"
    driver.find_element(By.CSS_SELECTOR, 'header a[href="/ui/customers"]').click()
    find(driver, "#why-customer").send_keys("c-anna")
    driver.find_element(By.CSS_SELECTOR, 'form[role="search"] button').click()
    text_appears(driver, "#why-answer", "c-anna")
    rows = find(driver, "main table").find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 3
    assert "cool-down" in driver.find_element(By.CSS_SELECTOR, "main table").text
    shot(driver, "customer-why")

    # the rule editor: the full action form, a dry run, a saved draft, and the difference
    driver.get(f"{base}/ui/rules/{CHECKIN}")
    find(driver, "#add-context").click()
    find(driver, ".ctx-row:last-of-type .ctx-key").send_keys("coupon")
    driver.find_element(By.CSS_SELECTOR, ".ctx-row:last-of-type .ctx-value").send_keys('"THANKS10"')
    Select(driver.find_element(By.ID, "action-fallback")).select_by_value("suppress")
    driver.find_element(By.ID, "add-cap").click()
    cap = find(driver, "#cap-max")
    cap.clear()
    cap.send_keys("3")
    driver.execute_script(
        "const e = document.getElementById('ends-at'); e.value = '2027-03-01T00:00';e.dispatchEvent(new Event('input'))"
    )
    # the raw JSON follows the form once the live validation has run
    waiting(driver, 15).until(lambda d: '"ends_at": "2027-' in d.find_element(By.ID, "raw-json").get_attribute("value"))
    text_appears(driver, "#rule-errors", "The rule is valid")
    raw = driver.find_element(By.ID, "raw-json").get_attribute("value")
    assert '"coupon": "\\"THANKS10\\""' in raw  # a CEL string literal
    assert '"fallback": "suppress"' in raw
    assert '"max": 3' in raw
    assert '"ends_at": "2027-' in raw
    find(driver, "#dry-customer").send_keys("c-anna")
    driver.find_element(By.CSS_SELECTOR, "#dry-run button").click()
    text_appears(driver, "#dry-result", "v1:")
    shot(driver, "rule-action-and-dry-run")
    driver.find_element(By.ID, "save-draft").click()
    text_appears(driver, "main", "Saved as draft version 2")
    find(driver, "a.compare").click()
    text_appears(driver, "#diff-summary", "differ")
    added = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#diff td.ins")]
    assert any("THANKS10" in line for line in added)
    assert any('"max": 3' in line for line in added)
    shot(driver, "rule-diff")

    # ratings: what the check-ins' links brought back, per rule, channel and locale
    driver.find_element(By.CSS_SELECTOR, 'header a[href="/ui/ratings"]').click()
    find(driver, "#ratings-summary")
    ratings = {
        c.text.split("\n")[0]: c.find_element(By.TAG_NAME, "b").text
        for c in driver.find_elements(By.CSS_SELECTOR, "#ratings-summary .card")
    }
    assert (ratings["asked"], ratings["CSAT answers"], ratings["CSAT (1-5)"]) == ("54", "6", "3.83")
    assert ratings["response rate"] == "11.1%"
    text_appears(driver, "main", "Paczka była zgnieciona.")
    shot(driver, "ratings")

    # the callback queue: an admin may work it as an agent does
    driver.find_element(By.CSS_SELECTOR, 'header a[href="/ui/callbacks"]').click()
    text_appears(driver, "main table", "+48601234567")
    find(driver, 'button[data-action="claim"]').click()
    text_appears(driver, "main table", "Maria (marketing)")  # claimed: the queue drawn again
    find(driver, 'button[data-action="called"]').click()
    text_appears(driver, "main", "No callback waiting.")
    assert "called" in driver.find_elements(By.CSS_SELECTOR, "main table")[-1].text
    shot(driver, "callbacks")

    # the dead letters: listed with their reason, replayed by this admin
    driver.find_element(By.CSS_SELECTOR, 'header a[href="/ui/dead-letters"]').click()
    text_appears(driver, "main table", "the amount is negative")
    assert "data.total" in driver.find_element(By.CSS_SELECTOR, "main table").text
    shot(driver, "dead-letters")
    driver.find_element(By.CSS_SELECTOR, "button.replay").click()
    text_appears(driver, "main table", "sent back to")


async def test_every_admin_page_in_the_browser(admin: tuple[str, str], browser: webdriver.Chrome) -> None:
    base, key = admin
    try:
        await asyncio.to_thread(every_page_journey, browser, base, key)
    except Exception as exc:
        shot(browser, "failure")
        logs = [e["message"] for e in browser.get_log("browser")]
        raise AssertionError(f"at {browser.current_url}; console: {logs}") from exc
