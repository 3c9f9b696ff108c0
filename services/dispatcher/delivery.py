"""Delivering one action: claim it, send it on its channel once, record the outcome."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from services.dispatcher import contacts, messages_store
from services.dispatcher.channels import Channel, Channels, DeliveryFailed
from shared.clock import Clock
from shared.contract.events import ActionRequested, Outcome
from shared.rules.guards import consented
from shared.store import Document

log = logging.getLogger(__name__)
tracer = trace.get_tracer("proact.dispatcher")
messages = metrics.get_meter("proact.dispatcher").create_counter(
    "proact.dispatcher.messages", unit="{message}", description="actions handled, by channel and outcome"
)


@dataclass(frozen=True)
class Result:
    outcome_type: str | None  # the outcome event to publish, None when nothing new happened
    outcome: Outcome | None
    retry: str | None = None  # a passing failure: the reason, and another attempt is due
    gave_up: str | None = None  # the last attempt failed: the reason, for the dead-letter topic
    via: str | None = None  # the channel that was tried


async def deliver(
    action: ActionRequested,
    db: AsyncDatabase[Document],
    channels: Channel | Channels,
    clock: Clock,
    attempt: int = 1,
    last_attempt: bool = True,
    from_retry: bool = False,
) -> Result:
    """Deliver once; ``attempt`` counts the tries of this action (retries come back through here)."""
    now = clock.now()
    channel = channels.pick(action.channel) if isinstance(channels, Channels) else channels
    message = {
        "action_id": action.action_id,
        "idempotency_key": action.idempotency_key,
        "rule_id": action.rule_id,
        "rule_version": action.rule_version,
        "customer_id": action.customer_id,
        "channel": action.channel,
        "template_id": action.template_id,
        "locale": action.locale,
        "context": action.context,
        "holdout": action.holdout,
        "created_at": now,
    }
    existing = await messages_store.claim(db, message)
    if existing is not None and messages_store.unpublished(existing):
        # delivered (or failed) and recorded, then the dispatcher stopped before the outcome went
        # out: publish it now, once (its id is the action's, so a reader that saw it ignores it)
        return _recorded_outcome(action, existing)
    done = existing is not None and existing.get("status") in messages_store.FINAL_STATUSES
    # an action read again from the actions topic (a restart before its offset was committed) whose
    # next attempt is already scheduled on the retry topic: that copy delivers it, this one must not
    # (the two would race, and the customer would get it twice)
    handed_over = existing is not None and existing.get("status") == "retrying" and not from_retry
    if done or handed_over:
        log.info("duplicate action ignored", extra={"action_id": action.action_id, "status": existing["status"]})  # type: ignore[index]
        messages.add(1, {"proact.channel": action.channel, "outcome": "duplicate"})
        return Result(None, None)
    if action.holdout:
        await messages_store.mark(db, action.action_id, "holdout", now)
        messages.add(1, {"proact.channel": action.channel, "outcome": "holdout"})
        return Result(None, None)
    with tracer.start_as_current_span(
        f"send {action.channel}",
        kind=SpanKind.CLIENT,
        attributes={
            "proact.action.id": action.action_id,
            "proact.rule.id": action.rule_id,
            "proact.channel": action.channel,
            "proact.channel.via": channel.name,
        },
    ):
        try:
            outgoing = {**message, "created_at": now.isoformat()}
            if isinstance(channels, Channels) and channels.ratings is not None:
                outgoing["context"] = channels.ratings.add(outgoing, now)
            if channel.name in ("smtp", "webhook", "inbox"):
                outgoing["to"] = await _address(db, action, required=channel.name == "smtp")
            first_time = await channel.send(outgoing)
        except DeliveryFailed as exc:
            if exc.permanent or last_attempt:
                result = await _failed(db, action, channel, exc, clock, attempt)
                return result if exc.permanent else Result(result.outcome_type, result.outcome, gave_up=exc.reason)
            # the caller schedules the next attempt on the retry topic, then marks the message
            # "retrying" (``retrying``): from then on the retry topic owns it
            messages.add(1, {"proact.channel": action.channel, "outcome": "retrying"})
            return Result(None, None, retry=exc.reason, via=channel.name)
        except PyMongoError:
            raise  # MongoDB away: the action is read again once it is back
        except Exception as exc:
            # Anything else this message does (a subject that renders a line break, a value the
            # mail library refuses) would do again on every attempt: it fails for good, naming
            # the template, instead of being read again for ever.
            reason = f"template {action.template_id}: {type(exc).__name__}: {exc}"[:500]
            return await _failed(db, action, channel, DeliveryFailed(reason, permanent=True), clock, attempt)
    await _record_delivery(
        db, action.action_id, clock.now(), via=channel.name, attempts=attempt, outcome_published=False
    )
    messages.add(1, {"proact.channel": action.channel, "outcome": "delivered"})
    log.info(
        "message delivered",
        extra={"action_id": action.action_id, "channel": action.channel, "first": first_time},
    )
    outcome = Outcome(
        action_id=action.action_id,
        rule_id=action.rule_id,
        customer_id=action.customer_id,
        channel=action.channel,
        detail={"via": channel.name},
    )
    return Result("message.delivered", outcome)


# Waits between attempts to record a delivery while MongoDB is unreachable: about 90 s in all.
RECORD_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 5.0, 10.0, 10.0, 10.0, 15.0, 15.0, 15.0)


async def _record_delivery(db: AsyncDatabase[Document], action_id: str, at: datetime, **fields: Any) -> None:
    """Record that a provider accepted the message, trying again while MongoDB is away.

    Until it is recorded the message is only claimed, so an error raised here would have the
    action read again and sent a second time (``make chaos`` delivered one message twice when
    FerretDB was killed between a send and its record). Holding the partition for a while is
    better: nothing else can be claimed without MongoDB anyway."""
    for wait in (*RECORD_BACKOFF_S, None):
        try:
            await messages_store.mark(db, action_id, "delivered", at, **fields)
            return
        except PyMongoError as exc:
            if wait is None:
                raise
            log.warning(
                "delivery not recorded yet, trying again",
                extra={"action_id": action_id, "error": exc.__class__.__name__, "retry_in_s": wait},
            )
            await asyncio.sleep(wait)


ADDRESS_FIELD = {"email": "email", "sms": "phone", "phone": "phone"}


async def _address(db: AsyncDatabase[Document], action: ActionRequested, required: bool) -> str | None:
    """The customer's address for the channel (e-mail, or phone for SMS and calls), if they still
    consent: a consent withdrawn after the action was requested wins (a reply to the person's own
    request, ``consent_required: false``, needs none). A customer the contact book has
    not heard of yet is a passing failure (retried); a known one without the address, a lasting one."""
    contact = await contacts.lookup(db, action.customer_id)
    if contact is None and required:
        # the contact book reads the customers topic beside the actions: after a restart, or with a
        # profile and an order written moments apart, it can be behind; another attempt will find it
        raise DeliveryFailed("the contact book does not know this customer yet", permanent=False)
    withdrawn = action.consent_required and not consented((contact or {}).get("consents") or {}, action.channel)
    if contact is not None and withdrawn:
        raise DeliveryFailed(f"the customer has withdrawn consent for {action.channel}", permanent=True)
    field = ADDRESS_FIELD.get(action.channel)
    address = (contact or {}).get(field) if field else None
    if required and not address:
        raise DeliveryFailed(f"no {field or 'address'} for this customer", permanent=True)
    return str(address) if address else None


async def _failed(
    db: AsyncDatabase[Document],
    action: ActionRequested,
    channel: Channel,
    exc: DeliveryFailed,
    clock: Clock,
    attempt: int,
) -> Result:
    """Record the final failure and report it."""
    await messages_store.mark(
        db,
        action.action_id,
        "failed",
        clock.now(),
        via=channel.name,
        reason=exc.reason,
        attempts=attempt,
        outcome_published=False,
    )
    messages.add(1, {"proact.channel": action.channel, "outcome": "failed"})
    log.warning("message failed", extra={"action_id": action.action_id, "reason": exc.reason})
    outcome = Outcome(
        action_id=action.action_id,
        rule_id=action.rule_id,
        customer_id=action.customer_id,
        channel=action.channel,
        detail={"via": channel.name, "reason": exc.reason, "permanent": exc.permanent},
    )
    return Result("message.failed", outcome)


def _recorded_outcome(action: ActionRequested, doc: Document) -> Result:
    """The outcome of a delivery or failure recorded in ``doc``, as it was first made."""
    delivered = doc["status"] == "delivered"
    detail = (
        {"via": doc.get("via")}
        if delivered
        else {"via": doc.get("via"), "reason": doc.get("reason"), "permanent": True}
    )
    outcome = Outcome(
        action_id=action.action_id,
        rule_id=action.rule_id,
        customer_id=action.customer_id,
        channel=action.channel,
        detail=detail,
    )
    return Result("message.delivered" if delivered else "message.failed", outcome)


async def retrying(
    db: AsyncDatabase[Document], action: ActionRequested, result: Result, clock: Clock, attempt: int
) -> None:
    """Record that the next attempt is scheduled (call it after publishing that attempt)."""
    await messages_store.mark(
        db, action.action_id, "retrying", clock.now(), via=result.via, reason=result.retry, attempts=attempt
    )
