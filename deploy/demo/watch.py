"""A live, readable account of what proact does: actions requested, decisions not to act, messages
delivered, events refused."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

import orjson
from aiokafka import AIOKafkaConsumer

from shared.contract import InvalidEvent, Topics, decode
from shared.settings import Settings


def line(kind: str, text: str) -> None:
    print(f"{datetime.now():%H:%M:%S}  {kind:<10} {text}", flush=True)


async def main() -> None:
    settings = Settings()
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
                line(
                    "HOLDOUT" if data["holdout"] else "ACTION",
                    f"{data['rule_id']} for order {ctx.get('order_id')} of {data['customer_id']} "
                    f"via {data['channel']} ({ctx.get('reason') or ctx.get('trigger')})",
                )
            else:
                line(
                    "OUTCOME",
                    f"{event.type} {data.get('channel')} to {data.get('customer_id') or data.get('visitor_id')}",
                )
    finally:
        await consumer.stop()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
