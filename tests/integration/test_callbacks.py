"""Callbacks reach a person, on the real broker and FerretDB: a visitor's request through the
storefront is confirmed in their language with the promised time, posted signed to the help desk
and queued for agents; an agent claims it (another agent cannot) and records the call; a request
nobody calls by its promised time brings the built-in apology with a new time; the admin reports
the share made within their promise."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from pydantic import SecretStr

from services.admin.app import create_app as create_admin
from services.dispatcher.app import build_broker
from services.dispatcher.channels import Channels, OutboxChannel
from services.storefront.app import create_app as create_storefront
from shared.clock import SystemClock
from shared.contract import decode
from shared.rules import RuleSet, builtin_rules
from shared.settings import AdminSettings, DispatcherSettings, Settings, StorefrontSettings
from shared.signing import webhook_signature_holds
from shared.store import INDEXES, ensure_indexes, mongo_client
from tests.factories import event, uid
from tests.integration.conftest import engine_on, free_port, isolated_topics, signed_in
from tests.kafka_io import produce, read

pytestmark = pytest.mark.integration
HELPDESK_SECRET = "helpdesk-secret-for-tests"  # noqa: S105 - a test value


class HelpDesk:
    """A help desk's webhook endpoint: what it got, and whether each signature held."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, Any], bool, str]] = []
        desk = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                signed = webhook_signature_holds(
                    HELPDESK_SECRET, body, self.headers.get("X-Proact-Signature", ""), time.time()
                )
                desk.got.append((orjson.loads(body), signed, self.headers.get("Idempotency-Key", "")))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


async def until(check: Any, timeout_s: float = 30.0) -> Any:
    """What ``check`` (a function, or one returning an awaitable) gives once it is truthy."""
    for _ in range(int(timeout_s * 10)):
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def test_a_callback_is_confirmed_routed_claimed_made_and_a_missed_one_apologised_for(
    base_settings: Settings, model_registry: Path, tmp_path: Path
) -> None:
    desk = HelpDesk()
    name = f"callbacks{uuid.uuid4().hex[:8]}"
    client = mongo_client(base_settings)
    db = client[name]
    await ensure_indexes(db, INDEXES)
    async with isolated_topics(base_settings.kafka_bootstrap_servers, uid("cb")) as topics:
        common = {"topic_prefix": topics.prefix, "mongo_database": name}
        dispatcher = build_broker(
            DispatcherSettings(
                **common,
                group_id=uid("dispatcher"),
                helpdesk_url=f"http://127.0.0.1:{desk.port}/callbacks",
                helpdesk_secret=SecretStr(HELPDESK_SECRET),
            ),
            db,
            Channels(OutboxChannel(tmp_path)),
            SystemClock(),
        )
        engine = engine_on(topics, model_registry, RuleSet(builtin_rules()), mongo_database=name)
        running = asyncio.create_task(engine.run())
        storefront = create_storefront(StorefrontSettings(**common, model_dir=model_registry))
        admin = create_admin(AdminSettings(**common, model_dir=model_registry))
        try:
            async with (
                dispatcher,
                storefront.router.lifespan_context(storefront),
                admin.router.lifespan_context(admin),
                signed_in(admin, "agent", "Ana") as ana,
                signed_in(admin, "agent", "Ben") as ben,
                signed_in(admin, "viewer", "Vi") as viewer,
            ):
                await dispatcher.start()
                shop = httpx.AsyncClient(transport=httpx.ASGITransport(app=storefront), base_url="http://shop")

                visitor = uid("v")
                asked = await shop.post(
                    "/v1/callbacks",
                    json={
                        "visitor_id": visitor,
                        "phone": "601 234 567",
                        "country": "PL",
                        "consent": True,
                        "locale": "pl-PL",
                        "timezone": "Europe/Warsaw",
                        "topic": "headphones",
                    },
                )
                assert asked.status_code == 202, asked.text
                accepted = asked.json()
                promised = datetime.fromisoformat(accepted["promised_by"])
                local = promised.astimezone(ZoneInfo("Europe/Warsaw"))
                assert accepted["message"].startswith("Dziękujemy. Oddzwonimy do ")
                assert f"{local:%H:%M}" in accepted["message"]
                assert timedelta(minutes=119) < promised - datetime.now(UTC) <= timedelta(minutes=120)
                request_id = accepted["request_id"]

                posted = await until(lambda: [g for g in desk.got if g[2] == request_id])
                (body, signed, _), *again = posted
                assert signed
                assert again == []
                assert (body["phone"], body["topic"], body["locale"]) == ("+48601234567", "headphones", "pl-PL")

                assert (await viewer.get("/v1/callbacks")).status_code == 403  # the numbers are for agents
                assert (await ana.get("/v1/rules")).status_code == 403  # and agents see the queue only

                async def queued() -> list[dict[str, Any]]:
                    return [c for c in (await ana.get("/v1/callbacks")).json() if c["request_id"] == request_id]

                (item,) = await until(queued)
                assert (item["phone"], item["overdue"], item["claimed_by"]) == ("+48601234567", False, None)
                assert (await ana.post(f"/v1/callbacks/{request_id}/claim")).status_code == 200
                taken = await ben.post(f"/v1/callbacks/{request_id}/claim")
                assert taken.status_code == 409
                assert taken.json()["detail"] == "claimed by Ana"
                assert (
                    await ben.post(f"/v1/callbacks/{request_id}/outcome", json={"outcome": "called"})
                ).status_code == 409
                made = await ana.post(f"/v1/callbacks/{request_id}/outcome", json={"outcome": "called"})
                assert made.status_code == 200
                assert made.json()["status"] == "done"

                # a request nobody calls: its promise two seconds away
                late_id, late_visitor = uid("r"), uid("v")
                soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
                await produce(
                    [
                        event(
                            "callback.requested",
                            subject=late_visitor,
                            request_id=late_id,
                            visitor_id=late_visitor,
                            phone=None,
                            email=f"{late_visitor}@example.com",
                            locale="hr-HR",
                            promised_by=soon,
                        )
                    ],
                    topics,
                )

                def apology() -> list[dict[str, Any]]:
                    path = tmp_path / "email.ndjson"
                    lines = path.read_bytes().splitlines() if path.exists() else []
                    return [m for line in lines if (m := orjson.loads(line))["context"].get("request_id") == late_id]

                (sent,) = await until(apology)
                updates = await read(
                    topics.support,
                    lambda rs: sum(1 for r in rs if decode(r.value, r.headers).type.startswith("callback.")) >= 4,
                )
                (late,) = await until(lambda: _late(ana, late_id))
                report = (await viewer.get("/v1/callbacks/report")).json()
        finally:
            engine.stop()
            await asyncio.wait_for(running, 30)
            desk.server.shutdown()
            await client.drop_database(name)
            await client.close()
    assert sent["rule_id"] == "callback-apology"
    assert sent["customer_id"] == late_visitor
    assert sent["rendered"]["locale"] == "hr"
    assert sent["context"]["new_promise"] > sent["context"]["promised_by"]
    found = [decode(r.value, r.headers) for r in updates]
    mine = [(e.type, e.data.model_dump().get("outcome"), e.data.model_dump().get("agent")) for e in found]
    mine = [m for m, e in zip(mine, found, strict=True) if e.data.model_dump().get("request_id") == request_id]
    assert mine == [
        ("callback.requested", None, None),
        ("callback.claimed", None, "Ana"),
        ("callback.updated", "called", "Ana"),
    ]
    assert (late["missed_promise"], late["overdue"]) == (True, False)  # the first time passed; the new one not yet
    assert late["due"] == sent["context"]["new_promise"]  # the queue shows the apology's new time
    assert (report["requested"], report["made"], report["made_within_promise"]) == (2, 1, 1)
    assert report["share_within_promise"] == 0.5


async def _late(agent: httpx.AsyncClient, request_id: str) -> list[dict[str, Any]] | None:
    found = [c for c in (await agent.get("/v1/callbacks")).json() if c["request_id"] == request_id]
    return found if found and found[0].get("new_promise") else None
