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


# what an action is about, by the first of these its context names
ABOUT = (("order_id", "order"), ("case_id", "repair"), ("request_id", "callback request"))


def support(kind: str, data: dict[str, object]) -> None:
    """A line for the support events the loops are made of: who and what, never a number, an address
    or a comment's text."""
    if kind == "callback.requested":
        promised = str(data.get("promised_by"))[11:16]
        line("CALLBACK", f"requested by visitor {data['visitor_id']}, promised by {promised} UTC")
    elif kind == "callback.claimed":
        line("CALLBACK", f"claimed by {data['agent']} (request {data['request_id']})")
    elif kind == "callback.updated":
        line("CALLBACK", f"{data['outcome']} by {data.get('agent')} (request {data['request_id']})")
    elif kind in ("csat.submitted", "nps.submitted"):
        said = " with a comment" if data.get("comment") else ""
        line("RATING", f"{kind.split('.')[0].upper()} {data['score']} from {data['customer_id']}{said}")
    elif kind.startswith("service_case."):
        line("REPAIR", f"{data['case_id']} of {data['customer_id']}: {data.get('status') or kind.split('.')[1]}")


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
                    about = f"order {decision['order_id']}" if decision.get("order_id") else decision["scope"]
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
                support(event.type, data)
                continue
            if event.type == "action.requested":
                ctx = data["context"]
                about = next((f"{what} {ctx[field]} of " for field, what in ABOUT if ctx.get(field)), "")
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
