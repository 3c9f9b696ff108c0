"""The dispatcher's FastStream app: a thin subscriber on the actions topic (parse → deliver → publish)."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta
from typing import Any

from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, make_ping_asgi
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.specification import AsyncAPI
from opentelemetry import metrics, trace
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from services.dispatcher import callbacks, contacts, messages_store
from services.dispatcher.channels import Channel, Channels
from services.dispatcher.delivery import deliver, retrying
from shared.clock import Clock
from shared.contract import Event, InvalidEvent, Topics, decode, encode, new_event
from shared.contract.events import (
    ActionRequested,
    CallbackClaimed,
    CallbackRequested,
    CallbackUpdated,
    CustomerUpserted,
    Outcome,
)
from shared.contract.topics import dead_letter_headers, error_type
from shared.metrics import prometheus_app
from shared.settings import DispatcherSettings
from shared.store import Document

log = logging.getLogger(__name__)
SOURCE = "proact/dispatcher"
ATTEMPT_HEADER = "proact_attempt"
RETRY_AT_HEADER = "proact_retry_at"
dead_letters = metrics.get_meter("proact.dispatcher").create_counter(
    "proact.dispatcher.dead_letters", unit="{action}", description="actions dead-lettered, by topic and error type"
)


def backoff(attempt: int, base_s: float, cap_s: float = 300.0) -> timedelta:
    """Exponential back-off with full jitter: a random wait up to base·2^(attempt-1), capped."""
    return timedelta(seconds=random.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1))))  # noqa: S311 - not security


class Dispatch:
    """What happens to one action read from the actions topic or the retry topic, a step a method:
    decode it, hold it until its ``not_before``, deliver it (``services.dispatcher.delivery``),
    schedule a retry, give up, report the outcome. Any error of one action but MongoDB's or Kafka's
    dead-letters that action with its reason; those two have it read again (nack)."""

    def __init__(
        self,
        broker: KafkaBroker,
        settings: DispatcherSettings,
        db: AsyncDatabase[Document],
        channel: Channel | Channels,
        clock: Clock,
    ) -> None:
        self.broker, self.settings, self.db, self.channel, self.clock = broker, settings, db, channel, clock
        self.topics = Topics.from_settings(settings)

    async def handle(self, body: bytes, msg: KafkaMessage, attempt: int, from_retry: bool) -> None:
        raw: Any = msg.raw_message
        try:
            event = self.decode(body, raw)
            if await self.held(event, body, raw, attempt):
                return
            await self.deliver(event, body, raw, attempt, from_retry)
        except (PyMongoError, KafkaError):
            raise
        except Exception as exc:
            await self.dead_letter(body, raw, exc)

    def decode(self, body: bytes, raw: Any) -> Event:
        event = decode(body, raw.headers)
        if not isinstance(event.data, ActionRequested):
            raise InvalidEvent(f"{event.type} does not belong on {self.topics.actions}", "type")
        return event

    async def held(self, event: Event, body: bytes, raw: Any, attempt: int) -> bool:
        """Not yet (quiet hours): the action waits on the retry topic until its ``not_before``."""
        not_before = getattr(event.data, "not_before", None)
        if not_before is None or not_before <= self.clock.now():
            return False
        await self._to_retry(body, raw, attempt, not_before)
        return True

    async def deliver(self, event: Event, body: bytes, raw: Any, attempt: int, from_retry: bool) -> None:
        action = event.data
        assert isinstance(action, ActionRequested)
        last = attempt >= self.settings.max_attempts
        result = await deliver(
            action, self.db, self.channel, self.clock, attempt, last_attempt=last, from_retry=from_retry
        )
        if result.retry:
            await self._to_retry(
                body, raw, attempt + 1, self.clock.now() + backoff(attempt, self.settings.retry_base_s)
            )
            await retrying(self.db, action, result, self.clock, attempt)
            log.info(
                "delivery will be retried",
                extra={"action_id": action.action_id, "attempt": attempt, "reason": result.retry},
            )
        if result.gave_up:
            why = RuntimeError(f"gave up after {attempt} attempts: {result.gave_up}")
            headers = {**_original(raw), **dead_letter_headers(why, raw.topic, raw.partition, raw.offset)}
            await self.broker.publish(body, self.topics.dlq(self.topics.actions), key=raw.key, headers=headers)
        if result.outcome_type and result.outcome:
            await self.report(event, result.outcome_type, result.outcome)

    async def report(self, event: Event, outcome_type: str, outcome: Outcome) -> None:
        """The outcome, under one id per action and outcome: published again after a crash, it is
        the same event; then marked published, so a re-read action publishes nothing more."""
        action_id = outcome.action_id or event.id
        made = new_event(
            outcome_type, event.subject, outcome, source=SOURCE, time=self.clock.now(), id=f"{action_id}:{outcome_type}"
        )
        key, value, headers = encode(made)
        await self.broker.publish(value, self.topics.outcomes, key=key, headers={k: v.decode() for k, v in headers})
        await messages_store.outcome_published(self.db, action_id)

    async def dead_letter(self, body: bytes, raw: Any, exc: Exception) -> None:
        headers = dead_letter_headers(exc, self.topics.actions, raw.partition, raw.offset)
        await self.broker.publish(body, self.topics.dlq(self.topics.actions), key=raw.key, headers=headers)
        dead_letters.add(1, {"messaging.destination.name": self.topics.actions, "error.type": error_type(exc)})
        log.warning(
            "action dead-lettered",
            extra={"reason": str(getattr(exc, "reason", exc))[:200], "error_type": error_type(exc)},
        )

    async def _to_retry(self, body: bytes, raw: Any, attempt: int, due: datetime) -> None:
        headers = {**_original(raw), ATTEMPT_HEADER: str(attempt), RETRY_AT_HEADER: due.isoformat()}
        await self.broker.publish(body, self.topics.actions_retry, key=raw.key, headers=headers)

    def retry_wait(self, msg: KafkaMessage) -> tuple[int, float]:
        """(attempt, seconds to wait) of an action on the retry topic, from its headers."""
        headers = dict(msg.raw_message.headers or ())  # type: ignore[union-attr]
        try:
            attempt = int(headers.get(ATTEMPT_HEADER, b"2"))
            due = datetime.fromisoformat(headers.get(RETRY_AT_HEADER, b"1970-01-01T00:00:00+00:00").decode())
            return attempt, min((due - self.clock.now()).total_seconds(), self.settings.retry_max_wait_s)
        except (ValueError, TypeError, OverflowError):  # headers someone else wrote: try it now
            return self.settings.max_attempts, 0.0


def _original(raw: Any) -> dict[str, str]:
    """The record's own headers, without the dispatcher's bookkeeping ones."""
    return {k: v.decode() for k, v in (raw.headers or ()) if not k.startswith("proact_")}


def build_broker(
    settings: DispatcherSettings, db: AsyncDatabase[Document], channel: Channel | Channels, clock: Clock
) -> KafkaBroker:
    topics = Topics.from_settings(settings)
    instance = settings.instance_id if settings.static_membership else None
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        middlewares=[KafkaTelemetryMiddleware(tracer_provider=trace.get_tracer_provider())],
        enable_idempotence=True,
        logger=log,
    )
    dispatch = Dispatch(broker, settings, db, channel, clock)
    desk = None
    if settings.helpdesk_url:
        if settings.helpdesk_secret is None:
            raise SystemExit("PROACT_HELPDESK_SECRET is required with PROACT_HELPDESK_URL: requests are signed")
        desk = callbacks.HelpDesk(settings.helpdesk_url, settings.helpdesk_secret.get_secret_value())

    @broker.subscriber(
        topics.actions,
        group_id=settings.group_id,
        isolation_level="read_committed",  # only actions of committed engine transactions
        auto_offset_reset="earliest",
        # an infrastructure error (MongoDB down) re-reads the action; invalid ones are dead-lettered
        ack_policy=AckPolicy.NACK_ON_ERROR,
        group_instance_id=instance,
        title="dispatch-actions",
        description="Delivers each action.requested once, on its channel, and reports the outcome.",
    )
    # Handlers take the record's own bytes (``msg.body``), never FastStream's decoding of them: a JSON
    # value without a content-type header would arrive as a dict, fail a ``bytes`` parameter, be
    # nacked and come back forever, a poison message that kept the subscriber spinning.
    async def on_action(body: Any, msg: KafkaMessage) -> None:
        await dispatch.handle(msg.body, msg, attempt=1, from_retry=False)

    @broker.subscriber(
        topics.actions_retry,
        group_id=f"{settings.group_id}-retry",
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        group_instance_id=instance,
        title="retry-actions",
        description="Actions whose delivery failed for a passing reason, tried again when their back-off ends.",
    )
    async def on_retry(body: Any, msg: KafkaMessage) -> None:
        attempt, wait = dispatch.retry_wait(msg)
        if wait > 0:  # this waits on the retry topic only; new actions flow on meanwhile
            await asyncio.sleep(wait)
        await dispatch.handle(msg.body, msg, attempt, from_retry=True)

    @broker.subscriber(
        topics.customers,
        group_id=f"{settings.group_id}-contacts",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        group_instance_id=instance,
        title="contact-book",
        description="Keeps each customer's e-mail address, phone and consents for delivery.",
    )
    async def on_customer(body: Any, msg: KafkaMessage) -> None:
        event = _readable(msg)
        if event is not None and isinstance(event.data, CustomerUpserted):
            await contacts.remember(db, event.data, event.time)

    @broker.subscriber(
        topics.support,
        group_id=f"{settings.group_id}-callbacks",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        group_instance_id=instance,
        title="callbacks",
        description="Puts each callback request in the agents' queue and posts it to the shop's help desk; "
        "applies the agents' claims and calls to it, its one writer.",
    )
    async def on_support(body: Any, msg: KafkaMessage) -> None:
        event = _readable(msg)
        if event is None:
            return
        data = event.data
        if isinstance(data, CallbackClaimed):
            await callbacks.claimed(db, data)
            return
        if isinstance(data, CallbackUpdated):
            await callbacks.recorded(db, data, event.time)
            return
        if not isinstance(data, CallbackRequested):
            return
        try:
            await callbacks.route(db, data, event.time, desk)
        except callbacks.HelpDeskRefused as exc:  # the queue has it; the dead letter can be sent back
            raw = msg.raw_message
            headers = dead_letter_headers(exc, topics.support, raw.partition, raw.offset)  # type: ignore[union-attr]
            await broker.publish(msg.body, topics.dlq(topics.support), key=raw.key, headers=headers)  # type: ignore[union-attr]
            log.warning("callback not taken by the help desk", extra={"reason": exc.reason})

    @broker.subscriber(
        topics.outcomes,
        group_id=f"{settings.group_id}-engagement",
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        group_instance_id=instance,
        title="engagement",
        description="Records on each message when it was first opened or clicked (for the results per rule).",
    )
    async def on_outcome(body: Any, msg: KafkaMessage) -> None:
        event = _readable(msg)
        if event is None or not isinstance(event.data, Outcome) or not event.data.action_id:
            return
        if (field := ENGAGEMENT.get(event.type)) is not None:
            await messages_store.engaged(db, event.data.action_id, field, event.time)

    return broker


def _readable(msg: KafkaMessage) -> Event | None:
    """The event of a record on a topic the engine reads too: one it cannot read, the engine
    dead-letters with the reason, and the dispatcher's side readers skip it."""
    try:
        return decode(msg.body, msg.raw_message.headers)  # type: ignore[union-attr]
    except InvalidEvent:
        return None


# outcome → the field of the message it sets (once: the first time counts)
ENGAGEMENT = {"message.opened": "opened_at", "message.clicked": "clicked_at"}


def build_app(broker: KafkaBroker) -> AsgiFastStream:
    return AsgiFastStream(
        broker,
        asgi_routes=[
            ("/health/live", make_ping_asgi(broker, timeout=5.0)),
            ("/health/ready", make_ping_asgi(broker, timeout=5.0)),
            ("/metrics", prometheus_app()),
        ],
        specification=AsyncAPI(broker, title="proact dispatcher", version="0.1.0"),
        asyncapi_path="/docs/asyncapi",
        logger=log,
    )
