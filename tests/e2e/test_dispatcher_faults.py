"""The dispatcher under SIGKILL: 240 actions (e-mail and SMS) stream through a dispatcher process that
is killed three times and restarted. A real SMTP server and a webhook receiver count what arrives.
Every action arrives, under its own idempotency key, and has exactly one outcome (one event id) on
the outcomes topic. A kill between a provider's acceptance and the dispatcher's record of it sends
that message again with the same key (``Message-ID``, ``Idempotency-Key``), for the receiver to
drop: the one window no design closes (docs/architecture.md, "Failure model"); such repeats are
counted and can be at most one per kill."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.contract import Topics, decode
from shared.settings import Settings
from shared.store import Collections, mongo_client
from tests.e2e.stack import Stack, free_port, own_stack
from tests.factories import event, uid
from tests.kafka_io import produce, read
from tests.receivers import Receivers

pytestmark = pytest.mark.e2e
ACTIONS = 240
CUSTOMERS = 40
KILLS = 3


@pytest.fixture
async def dispatcher(tmp_path: Path, model_registry: Path) -> AsyncIterator[tuple[Stack, Receivers]]:
    receivers = Receivers()
    smtp_port, hook_port = free_port(), free_port()
    servers = receivers.serve(smtp_port, hook_port)
    async with own_stack("dfault", tmp_path, model_registry) as stack:
        stack.env |= {
            "PROACT_SMTP_HOST": "127.0.0.1",
            "PROACT_SMTP_PORT": str(smtp_port),
            "PROACT_WEBHOOK_URL": f"http://127.0.0.1:{hook_port}/sms",
            "PROACT_WEBHOOK_SECRET": secrets.token_hex(16),
            "PROACT_UNSUBSCRIBE_SECRET": secrets.token_hex(16),
            "PROACT_DISPATCHER_RETRY_BASE_S": "0.5",
        }
        try:
            yield stack, receivers
        finally:
            Receivers.stop(servers)


async def test_every_action_is_delivered_and_reported_once_across_kills(
    dispatcher: tuple[Stack, Receivers],
) -> None:
    stack, receivers = dispatcher
    topics = Topics(prefix=stack.env["PROACT_TOPIC_PREFIX"])
    rng = random.Random(7)
    customers = [uid("c") for _ in range(CUSTOMERS)]
    await produce(
        [
            event(
                "customer.upserted",
                subject=c,
                email=f"{c}@example.com",
                phone="+48123456789",
                consents={"email": True, "sms": True},
            )
            for c in customers
        ],
        topics,
    )
    stack.start("dispatcher")
    stack.wait_ready("dispatcher")
    db = mongo_client(Settings())[stack.env["PROACT_MONGO_DATABASE"]]
    for _ in range(200):
        if await db[Collections.CONTACTS].count_documents({}) == CUSTOMERS:
            break
        await asyncio.sleep(0.1)
    keys: dict[str, str] = {}  # action id -> idempotency key
    actions = []
    for i in range(ACTIONS):
        cid, action_id = rng.choice(customers), uid("a")
        keys[action_id] = f"delay-notice:{action_id}"
        actions.append(
            event(
                "action.requested",
                subject=cid,
                action_id=action_id,
                customer_id=cid,
                channel="email" if i % 2 else "sms",
                idempotency_key=keys[action_id],
                template_id="delay_notice",
                context={"order_id": f"o-{i}"},
            )
        )
    sending = asyncio.create_task(produce(actions, topics))
    for _ in range(KILLS):
        await asyncio.sleep(rng.uniform(0.8, 2.0))
        stack.kill("dispatcher")
        stack.start("dispatcher")
        stack.wait_ready("dispatcher")
    await sending

    wanted = set(keys.values())
    for _ in range(900):
        if wanted <= set(receivers.smtp) | set(receivers.webhook):
            break
        await asyncio.sleep(0.1)
    assert wanted == set(receivers.smtp) | set(receivers.webhook)  # every action arrived
    repeats = sum(n - 1 for n in (receivers.smtp + receivers.webhook).values())
    assert repeats <= KILLS, f"{repeats} messages arrived twice under the same key"

    records = await read(topics.outcomes, lambda rs: len(rs) >= ACTIONS, timeout_s=60, settle_s=3)
    outcome_ids: dict[str, set[str]] = defaultdict(set)
    for r in records:
        outcome = decode(r.value, r.headers)
        outcome_ids[outcome.data.model_dump()["action_id"]].add(outcome.id)
    assert set(outcome_ids) == set(keys)
    assert {a: len(ids) for a, ids in outcome_ids.items()} == dict.fromkeys(keys, 1)
    assert all(i == f"{a}:message.delivered" for a, ids in outcome_ids.items() for i in ids)
