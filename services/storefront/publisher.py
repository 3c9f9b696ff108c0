"""Publishing CloudEvents from the HTTP side: one idempotent producer, batch sent before answering."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.contract import EVENT_TYPES, Event, Topics, encode
from shared.telemetry import inject_headers


class Publisher:
    def __init__(self, bootstrap_servers: str, topics: Topics) -> None:
        self.topics = topics
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=True, linger_ms=1)

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """Readiness: the broker answers a metadata request."""
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), timeout_s)
        except (KafkaError, TimeoutError):
            return False
        return True

    async def publish_all(self, events: list[Event]) -> None:
        """Send all events and wait for the broker's acknowledgement of every one (nothing is lost
        once the caller has been told 202)."""
        futures = []
        for event in events:
            key, value, headers = encode(event)
            topic = getattr(self.topics, EVENT_TYPES[event.type][0])
            futures.append(await self.producer.send(topic, value=value, key=key, headers=inject_headers(headers)))
        await asyncio.gather(*futures)
