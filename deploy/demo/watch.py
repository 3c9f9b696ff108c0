"""A live, readable account of what proact does: actions requested, decisions not to act, messages
delivered (each e-mail's subject in the customer's language, read from the local SMTP catcher's
files), events refused. Never an address or a phone number."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from shared.contract import InvalidEvent, Topics, decode
from shared.settings import Settings


def line(kind: str, text: str) -> None:
    print(f"{datetime.now():%H:%M:%S}  {kind:<10} {text}", flush=True)


def new_mail(folder: Path, seen: set[str]) -> list[str]:
    """The lines for the e-mails the SMTP catcher kept since the last call: subject, language and the
    message id's left part (the action's idempotency key)."""
    found = []
    for path in sorted(folder.glob("*.eml")) if folder.is_dir() else []:
        if path.name in seen:
            continue
        seen.add(path.name)
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        key = str(mail.get("Message-ID", "")).strip("<>").split("@", 1)[0]
        found.append(f'"{mail["Subject"]}" ({mail.get("Content-Language", "?")}) {key}')
    return found


async def watch_mail(folder: Path) -> None:
    """Print each e-mail the SMTP catcher keeps, as it arrives."""
    seen: set[str] = set()
    await asyncio.to_thread(new_mail, folder, seen)  # what was there before this run is not news
    while True:
        await asyncio.sleep(1)
        for text in await asyncio.to_thread(new_mail, folder, seen):
            line("MAIL", text)


async def main() -> None:
    settings = Settings()
    mail_dir = os.environ.get("PROACT_MAIL_DIR")
    mail_task = asyncio.create_task(watch_mail(Path(mail_dir))) if mail_dir else None
    topics = Topics.from_settings(settings)
    watched = [
        topics.actions,
        topics.outcomes,
        topics.decisions,
        topics.support,
        *[topics.dlq(t) for t in topics.event_topics],
    ]
    consumer = AIOKafkaConsumer(
        *watched,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        isolation_level="read_committed",
        auto_offset_reset="latest",
        group_id=None,
    )
    await consumer.start()
    line("watching", ", ".join(watched))
    try:
        async for record in consumer:
            headers = dict(record.headers or ())
            if record.topic == topics.decisions:
                decision = orjson.loads(record.value)
                if decision["outcome"] != "fired":  # fired ones show as ACTION lines
                    who = decision["customer_id"]
                    about = (
                        f"order {decision['order_id']}" if decision.get("order_id") else f"session {decision['scope']}"
                    )
                    why = f"{decision.get('why')} (guard: {decision.get('guard')})"
                    line("DECISION", f"{decision['rule_id']} {decision['outcome']} for {about} of {who}: {why}")
                continue
            if record.topic.endswith(".dlq"):
                reason = headers.get("proact_dlq_reason", b"?").decode()
                offset = headers.get("proact_dlq_offset", b"?").decode()
                line("REFUSED", f"{record.topic.removesuffix('.dlq')} offset {offset}: {reason}")
                continue
            try:
                event = decode(record.value, record.headers)
            except InvalidEvent:
                continue
            data = event.data.model_dump()
            if record.topic == topics.support:
                if event.type == "callback.requested":  # who and when, never the number or address
                    line("CALLBACK", f"requested by visitor {data['visitor_id']} ({data.get('preferred_time')})")
                continue
            if event.type == "action.requested":
                ctx = data["context"]
                about = f"order {ctx['order_id']} of " if ctx.get("order_id") else ""
                line(
                    "HOLDOUT" if data["holdout"] else "ACTION",
                    f"{data['rule_id']} for {about}{data['customer_id']} "
                    f"via {data['channel']} ({ctx.get('reason') or ctx.get('trigger')})",
                )
            else:
                line(
                    "OUTCOME",
                    f"{event.type} {data.get('channel')} to {data.get('customer_id') or data.get('visitor_id')}",
                )
    finally:
        if mail_task is not None:
            mail_task.cancel()
        await consumer.stop()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
