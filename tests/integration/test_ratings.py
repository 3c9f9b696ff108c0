"""Ratings close the loop, on the real broker, FerretDB, an SMTP server and headless Chromium: the
engine's check-in goes out by e-mail with signed one-click CSAT links; clicking one in the browser
records one ``csat.submitted`` (the same click again is the same event), the thank-you page keeps a
comment; the low score brings the built-in low-CSAT callback offer; the admin's ratings count it."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr
from selenium import webdriver
from selenium.webdriver.common.by import By

from services.admin.app import create_app as create_admin
from services.dispatcher.app import build_broker
from services.dispatcher.channels import Channels, EmailChannel, OutboxChannel, RatingLinks, UnsubscribeLinks
from services.projector.app import Projector
from services.storefront.app import create_app as create_storefront
from shared.clock import SystemClock
from shared.contract import decode
from shared.mail import Mailer
from shared.rules import RuleSet, builtin_rules
from shared.rules.builtin import CHECKIN
from shared.settings import AdminSettings, DispatcherSettings, Settings, StorefrontSettings
from shared.store import INDEXES, ensure_indexes, mongo_client
from tests.factories import event, uid
from tests.integration.conftest import (
    Mailbox,
    engine_on,
    free_port,
    isolated_topics,
    profiles_known,
    signed_in,
    waiting,
)
from tests.kafka_io import produce, read

pytestmark = pytest.mark.integration
SECRET = "links-secret-for-tests"  # noqa: S105 - a test value


def fast_checkin() -> RuleSet:
    """The built-in rules with a check-in a second after delivery, no quiet hours, no hold-out."""
    rules = []
    for rule in builtin_rules():
        if rule.rule_id == CHECKIN:
            trigger = rule.triggers[0].model_copy(update={"delay": timedelta(seconds=1)})
            guards = rule.guards.model_copy(update={"quiet_hours": None, "holdout_pct": 0})
            rule = rule.model_copy(update={"triggers": [trigger], "guards": guards})
        rules.append(rule)
    return RuleSet(rules)


def click_and_comment(driver: webdriver.Chrome, url: str, comment: str) -> str:
    driver.get(url)
    waiting(driver).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-recorded"))
    recorded = driver.find_element(By.TAG_NAME, "body").get_attribute("data-recorded")
    assert recorded == "yes", driver.page_source
    first_page = driver.find_element(By.TAG_NAME, "main").text
    driver.get(url)  # the same click again: the same answer, not a second one
    waiting(driver).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-recorded"))
    driver.find_element(By.ID, "comment-text").send_keys(comment)
    driver.find_element(By.CSS_SELECTOR, "#comment button").click()
    waiting(driver).until(lambda d: "komentarz" in d.find_element(By.TAG_NAME, "main").text)
    return first_page


async def test_a_checkin_rating_clicked_in_the_browser_is_recorded_once_and_counted(
    base_settings: Settings, model_registry: Path, smtp: tuple[Mailbox, int], browser: webdriver.Chrome, tmp_path: Any
) -> None:
    inbox, smtp_port = smtp
    cid, order = uid("c"), uid("o")
    name = f"ratings{uuid.uuid4().hex[:8]}"
    client = mongo_client(base_settings)
    db = client[name]
    await ensure_indexes(db, INDEXES)
    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("rate")) as topics:
        port = free_port()
        shop_url = f"http://127.0.0.1:{port}"
        storefront = create_storefront(
            StorefrontSettings(
                topic_prefix=topics.prefix,
                mongo_database=name,
                model_dir=model_registry,
                unsubscribe_secret=SecretStr(SECRET),
            )
        )
        server = uvicorn.Server(uvicorn.Config(storefront, host="127.0.0.1", port=port, log_level="warning"))
        email = EmailChannel(
            Mailer("127.0.0.1", smtp_port, "shop <shop@example.com>"), links=UnsubscribeLinks(shop_url, SECRET)
        )
        channels = Channels(OutboxChannel(tmp_path), {"email": email}, RatingLinks(shop_url, SECRET))
        dispatcher = build_broker(
            DispatcherSettings(topic_prefix=topics.prefix, mongo_database=name, group_id=uid("dispatcher")),
            db,
            channels,
            SystemClock(),
        )
        engine = engine_on(topics, model_registry, fast_checkin(), mongo_database=name)
        projector = Projector(engine.settings, db, flush_interval_s=0.2)
        tasks = [asyncio.create_task(t) for t in (server.serve(), engine.run(), projector.run())]
        try:
            async with dispatcher:
                await dispatcher.start()
                profile = {"consents": {"email": True}, "email": f"{cid}@example.com", "locale": "pl-PL"}
                await produce([event("customer.upserted", subject=cid, **profile)], topics)
                await profiles_known(engine, [cid])
                await produce(
                    [
                        event("order.placed", subject=cid, order_id=order),
                        event("order.delivered", subject=cid, order_id=order),
                    ],
                    topics,
                )
                for _ in range(300):
                    if inbox.received:
                        break
                    await asyncio.sleep(0.1)
                (checkin,) = inbox.received
                html_part = checkin.get_body(("html",)).get_content()  # type: ignore[union-attr]
                links = dict(re.findall(r'href="([^"]+)"[^>]*aria-label="(\d) / 5"', html_part))
                by_score = {int(score): url.replace("&amp;", "&") for url, score in links.items()}
                assert sorted(by_score) == [1, 2, 3, 4, 5]
                assert all(u.startswith(f"{shop_url}/ratings?token=") for u in by_score.values())
                shown = await asyncio.to_thread(click_and_comment, browser, by_score[2], "Paczka była zgnieciona.")
                assert "2 z 5" in shown  # the thank-you page in the customer's language

                def answers(records: list[Any]) -> list[Any]:
                    found = [decode(r.value, r.headers) for r in records]
                    return [e for e in found if e.type == "csat.submitted" and e.subject == cid]

                records = await read(topics.support, lambda rs: len(answers(rs)) >= 3, timeout_s=30)
                callback = await read(
                    topics.actions,
                    lambda rs: any(decode(r.value, r.headers).data.rule_id == "low-csat-callback" for r in rs),  # type: ignore[union-attr]
                    timeout_s=30,
                )
                for _ in range(100):  # the callback offer's own e-mail (no phone consent: the preferred channel)
                    if len(inbox.received) >= 2:
                        break
                    await asyncio.sleep(0.1)
                admin = create_admin(
                    AdminSettings(mongo_database=name, topic_prefix=topics.prefix, model_dir=model_registry)
                )
                async with admin.router.lifespan_context(admin):
                    async with signed_in(admin, "viewer") as http:
                        ratings: dict[str, Any] = {}
                        for _ in range(100):
                            ratings = (await http.get("/v1/ratings")).json()
                            if ratings["overall"]["csat_answers"] and ratings["comments"]:
                                break
                            await asyncio.sleep(0.2)
        finally:
            engine.stop()
            projector.stop()
            server.should_exit = True
            await asyncio.gather(*tasks)
            await client.drop_database(name)
            await client.close()
    recorded = answers(records)
    assert {e.data.score for e in recorded} == {2}  # type: ignore[attr-defined]
    plain = [e for e in recorded if not e.data.comment]  # type: ignore[attr-defined]
    assert len(plain) == 2
    assert len({e.id for e in plain}) == 1
    (commented,) = [e for e in recorded if e.data.comment]  # type: ignore[attr-defined]
    assert commented.data.model_dump()["action_id"] == plain[0].data.model_dump()["action_id"]
    assert any(decode(r.value, r.headers).data.model_dump()["customer_id"] == cid for r in callback)
    assert len(inbox.received) == 2  # the check-in, then the callback offer
    (group,) = [g for g in ratings["groups"] if g["rule_id"] == CHECKIN]
    assert (group["channel"], group["locale"], group["asked"], group["csat_answers"]) == ("email", "pl-PL", 1, 1)
    assert (group["csat"], group["response_rate"], group["satisfied"]) == (2.0, 1.0, 0.0)
    assert ratings["comments"][0]["comment"] == "Paczka była zgnieciona."
    assert len(group["trend"]) == 1
