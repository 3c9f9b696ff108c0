"""The webhook channel on the real broker and FerretDB against a real HTTP provider (uvicorn, started
here): signed requests, retries with back-off that do not hold up other actions, and the DLQ when the
provider stays down."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pymongo.asynchronous.database import AsyncDatabase
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.dispatcher.app import build_broker
from services.dispatcher.channels import Channels, OutboxChannel, WebhookChannel
from shared.clock import SystemClock
from shared.contract import Topics, decode
from shared.settings import DispatcherSettings
from shared.store import Collections, Document
from tests.factories import event, uid
from tests.integration.conftest import free_port
from tests.kafka_io import produce, read

pytestmark = pytest.mark.integration
SECRET = "test-signing-secret"  # noqa: S105 - a test value


class Provider:
    """Answers 503 for the first ``failures`` requests of each message id, then 200."""

    def __init__(self) -> None:
        self.failures: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.delivered: list[dict[str, Any]] = []
        self.bad_signatures = 0

    async def receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        stamp, digest = (p.split("=", 1)[1] for p in request.headers["x-proact-signature"].split(","))
        expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(digest, expected):
            self.bad_signatures += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        message = await request.json()
        self.calls[message["id"]] = self.calls.get(message["id"], 0) + 1
        if self.calls[message["id"]] <= self.failures.get(message["id"], 0):
            return JSONResponse({"error": "try later"}, status_code=503)
        self.delivered.append(message)
        return JSONResponse({"ok": True})


@pytest.fixture
async def provider() -> AsyncIterator[tuple[Provider, str]]:
    port = free_port()
    receiver = Provider()
    app = Starlette(routes=[Route("/hook", receiver.receive, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    yield receiver, f"http://127.0.0.1:{port}/hook"
    server.should_exit = True
    await task


async def test_failing_twice_then_succeeding_gives_one_delivery_and_a_dead_provider_the_dlq(
    topics: Topics, db: AsyncDatabase[Document], provider: tuple[Provider, str], tmp_path: Path
) -> None:
    receiver, url = provider
    cid = uid("c")
    await produce([event("customer.upserted", subject=cid, phone="+48601234567", consents={"sms": True})], topics)
    flaky, dead = uid("a"), uid("a")
    receiver.failures = {flaky: 2, dead: 99}
    actions = [
        event(
            "action.requested",
            subject=cid,
            action_id=a,
            customer_id=cid,
            channel="sms",
            template_id="delay_notice",
            idempotency_key=f"delay-notice:{a}",
            context={"order_id": a},
        )
        for a in (flaky, dead)
    ]
    settings = DispatcherSettings(
        topic_prefix=topics.prefix, group_id=uid("dispatcher"), max_attempts=3, retry_base_s=0.2
    )
    channels = Channels(OutboxChannel(tmp_path), {"sms": WebhookChannel(url, SECRET, timeout_s=2)})
    broker = build_broker(settings, db, channels, SystemClock())
    async with broker:
        await broker.start()
        for _ in range(100):
            if await db[Collections.CONTACTS].count_documents({"_id": cid}):
                break
            await asyncio.sleep(0.1)
        await produce(actions, topics)
        outcomes = await read(topics.outcomes, lambda rs: sum(r.key == cid.encode() for r in rs) >= 2, settle_s=2)
        dlq = await read(topics.dlq(topics.actions), lambda rs: any(r.key == cid.encode() for r in rs))

    assert [m["id"] for m in receiver.delivered] == [flaky]  # exactly one delivery
    assert receiver.calls == {flaky: 3, dead: 3}
    assert receiver.bad_signatures == 0
    assert receiver.delivered[0]["to"] == "+48601234567"
    by_action = {
        decode(r.value, r.headers).data.model_dump()["action_id"]: decode(r.value, r.headers)
        for r in outcomes
        if r.key == cid.encode()
    }
    assert by_action[flaky].type == "message.delivered"
    assert by_action[dead].type == "message.failed"
    (dead_letter,) = [r for r in dlq if r.key == cid.encode()]
    assert b"gave up after 3 attempts: provider answered 503" in dict(dead_letter.headers)["proact_dlq_reason"]
    docs = {d["_id"]: d async for d in db[Collections.MESSAGES].find({"_id": {"$in": [flaky, dead]}})}
    assert (docs[flaky]["status"], docs[flaky]["attempts"]) == ("delivered", 3)
    assert (docs[dead]["status"], docs[dead]["attempts"]) == ("failed", 3)
