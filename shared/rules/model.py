"""The rule model: what a marketing team configures, as validated data (its JSON Schema is published).

A rule is a trigger, conditions over what proact knows when it fires, an action and guards. Every
field is checked when a rule is saved, so a rule that reaches the engine is one it can run: event
names exist, a deadline field is a timestamp of the trigger event, every condition compiles as CEL
and uses only the documented variables (the error says where, e.g. ``conditions.0.expr: 1:20``).
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.contract import events as ev
from shared.rules.conditions import ConditionError, check_expression

RULE_ID = r"^[a-z0-9][a-z0-9-]{1,62}$"


def _known_event(name: str) -> str:
    if name not in ev.EVENT_TYPES:
        raise ValueError(f"unknown event type {name!r}; known: {', '.join(sorted(ev.EVENT_TYPES))}")
    return name


EventType = Annotated[
    str,
    AfterValidator(_known_event),
    Field(description="a CloudEvents type from the event contract, e.g. order.delivered"),
]
# Event types whose subject is a visitor, not a customer: rules on them are pop-up (session) rules.
BROWSING_EVENTS = frozenset(t for t, (topic, _) in ev.EVENT_TYPES.items() if topic == "browsing")
# Messages a rule can send. "popup" is answered by the storefront's decision call, not sent.
RuleChannel = Literal["preferred", "email", "sms", "push", "phone", "webhook", "inapp", "popup"]
# Which channel "preferred" means, in order, among those the customer consented to and can be reached on.
CHANNEL_PREFERENCE: tuple[str, ...] = ("email", "sms", "push", "phone")


def scope_field(event_type: str) -> str | None:
    """What an event is about, for timers, exit events and once-per-order: its order, ticket,
    service case or callback request; None for events about the customer as a whole."""
    return SCOPES.get(event_type.split(".", 1)[0])


SCOPES = {"order": "order_id", "ticket": "ticket_id", "service_case": "case_id", "callback": "request_id"}


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


PositiveDuration = Annotated[timedelta, AfterValidator(_positive)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- triggers ---------------------------------------------------------------------------------
class EventTrigger(_Strict):
    """Evaluate when an event of this type arrives for the customer."""

    kind: Literal["event"] = "event"
    event: EventType

    @field_validator("event")
    @classmethod
    def _not_browsing(cls, value: str) -> str:
        if value in BROWSING_EVENTS:
            raise ValueError("browsing events trigger pop-ups, which are rules of kind 'session'")
        return value


class DelayTrigger(_Strict):
    """Evaluate a fixed delay after an event (e.g. 3 days after ``order.delivered``)."""

    kind: Literal["delay"] = "delay"
    after: EventType
    delay: PositiveDuration = Field(description="ISO 8601 duration, e.g. P3D or PT2S")


class AbsenceTrigger(_Strict):
    """Evaluate when none of ``absent`` arrived for the same order (or ticket, case) by a deadline:
    a timestamp field of the ``after`` event (``deadline_field``) or a fixed ``delay`` after it;
    with ``before``, that long ahead of the deadline (a promise about to be broken)."""

    kind: Literal["absence"] = "absence"
    after: EventType
    absent: list[EventType] = Field(min_length=1)
    deadline_field: str | None = None
    delay: PositiveDuration | None = None
    before: PositiveDuration | None = Field(
        None, description="evaluate this long before the deadline instead of at it (ISO 8601 duration, e.g. P1D)"
    )

    @model_validator(mode="after")
    def _one_deadline(self) -> AbsenceTrigger:
        if (self.deadline_field is None) == (self.delay is None):
            raise ValueError("give exactly one of deadline_field and delay")
        if self.deadline_field is not None:
            model = ev.EVENT_TYPES[self.after][1]
            field = model.model_fields.get(self.deadline_field)
            if field is None or "datetime" not in str(field.annotation).lower():
                stamps = [n for n, f in model.model_fields.items() if "datetime" in str(f.annotation).lower()]
                raise ValueError(
                    f"deadline_field {self.deadline_field!r} is not a timestamp of {self.after}; "
                    f"choose one of {stamps or 'none (use delay)'}"
                )
        return self


class ScoreTrigger(_Strict):
    """Evaluate when a model's score for the customer enters the band [at_least, below)."""

    kind: Literal["score"] = "score"
    score: Literal["churn"]
    at_least: float | None = Field(None, ge=0, le=1)
    below: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _band(self) -> ScoreTrigger:
        if self.at_least is None and self.below is None:
            raise ValueError("give at_least, below or both")
        if self.at_least is not None and self.below is not None and self.at_least >= self.below:
            raise ValueError("at_least must be lower than below")
        return self

    def inside(self, value: float | None) -> bool:
        if value is None:
            return False
        return (self.at_least is None or value >= self.at_least) and (self.below is None or value < self.below)


class SessionTrigger(_Strict):
    """Evaluated by the storefront's decision call, with the live session (pop-up rules)."""

    kind: Literal["session"] = "session"


Trigger = Annotated[
    EventTrigger | DelayTrigger | AbsenceTrigger | ScoreTrigger | SessionTrigger, Field(discriminator="kind")
]


# --- conditions, action, guards ----------------------------------------------------------------
class Condition(_Strict):
    expr: str = Field(
        min_length=1,
        max_length=2000,
        description="a CEL expression that must be true; variables: event, customer, order, case, session, "
        "scores, trigger, now",
        examples=['order.status == "delivered"', 'count_since(customer.ticket_history, now - duration("720h")) > 2'],
    )
    description: str | None = Field(None, max_length=300, description="the condition in plain words")

    @field_validator("expr")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            check_expression(value)
        except ConditionError as exc:
            raise ValueError(str(exc)) from None
        return value


class Action(_Strict):
    channel: RuleChannel = Field(
        "preferred", description="a channel, or 'preferred': the first consented of email, sms, push, phone"
    )
    fallback: Literal["preferred", "suppress"] = Field(
        "suppress", description="without consent for the channel: another consented channel, or nothing"
    )
    template_id: str = Field(pattern=r"^[a-z0-9_.-]{1,64}$")
    priority: int = Field(50, ge=0, le=100, description="when several rules fire at once, the highest wins")
    context: dict[str, str] = Field(
        default_factory=dict, description="values passed to the template: name → CEL expression", max_length=30
    )

    @field_validator("context")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for name, expr in value.items():
            if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", name):
                raise ValueError(f"context name {name!r} must be a lower-case identifier")
            try:
                check_expression(expr)
            except ConditionError as exc:
                raise ValueError(f"context.{name}: {exc}") from None
        return value


class QuietHours(_Strict):
    """Local hours (the customer's time zone) with no messages; a message due then waits for ``end``."""

    start: time
    end: time

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class Cap(_Strict):
    max: int = Field(ge=1, le=1000)
    window: PositiveDuration


class Reeligibility(_Strict):
    mode: Literal["always", "once_per_order", "once_ever", "every"] = Field(
        "always",
        description="once_per_order: once per order, ticket or service case (what the trigger is about)",
    )
    every: timedelta | None = Field(None, description="with mode 'every': the time before a customer may get it again")

    @model_validator(mode="after")
    def _every(self) -> Reeligibility:
        if (self.mode == "every") != (self.every is not None):
            raise ValueError("'every' is required with mode 'every', and only then")
        return self


class Guards(_Strict):
    cooldown: timedelta | None = Field(None, description="no second message of this rule to a customer within")
    cap: Cap | None = Field(None, description="at most max messages of this rule per customer per window")
    contact_policy: bool = Field(
        True, description="subject to the frequency cap and cool-down across all rules (the contact policy)"
    )
    quiet_hours: QuietHours | None = None
    reeligibility: Reeligibility = Reeligibility()
    exit_events: list[EventType] = Field(
        default_factory=list, description="events for the same order (or ticket, case) that cancel a pending action"
    )
    holdout_pct: float = Field(0, ge=0, le=50, description="share of customers kept out to measure uplift")
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    require_consent: bool = True

    @model_validator(mode="after")
    def _dates(self) -> Guards:
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self


class Rule(_Strict):
    """One trigger rule. ``version`` is given by the store: each published edit is a new version."""

    rule_id: str = Field(pattern=RULE_ID, description="stable id: lower-case letters, digits and dashes")
    version: int = Field(1, ge=1)
    name: str = Field(min_length=1, max_length=120)
    description: str = Field("", max_length=2000)
    enabled: bool = True
    triggers: list[Trigger] = Field(min_length=1, max_length=5, description="any of these starts an evaluation")
    conditions: list[Condition] = Field(default_factory=list, max_length=30)
    action: Action
    guards: Guards = Guards()

    @model_validator(mode="after")
    def _coherent(self) -> Rule:
        kinds = {t.kind for t in self.triggers}
        popup = self.action.channel == "popup"
        if popup != ("session" in kinds) or (popup and len(self.triggers) > 1):
            raise ValueError("pop-up rules (action.channel 'popup') and only they have one trigger of kind 'session'")
        if self.guards.reeligibility.mode == "once_per_order":
            for t in self.triggers:
                event = getattr(t, "event", None) or getattr(t, "after", None)
                if not event or scope_field(event) is None:
                    raise ValueError(
                        "once_per_order needs triggers about an order, ticket, service case or callback "
                        "(order.*, ticket.*, service_case.*, callback.* events)"
                    )
        return self


ContactChannel = Literal["email", "sms", "push", "phone", "webhook", "inapp", "popup"]
CONTACT_CHANNELS: tuple[ContactChannel, ...] = ("email", "sms", "push", "phone", "webhook", "inapp", "popup")


class ContactPolicy(_Strict):
    """Across all rules, per customer: how many messages per window, and the pause after each."""

    max_messages: int = Field(3, ge=1, le=1000)
    window: timedelta = timedelta(days=7)
    cooldown: timedelta = timedelta(hours=12)
    default_timezone: ev.TimeZone = Field("UTC", description="for customers whose time zone is unknown")
    # which kinds of contact count against the budget: every channel by default, pop-ups to a known
    # customer among them (a pop-up minutes after an e-mail is a second contact)
    channels: list[ContactChannel] = Field(
        default_factory=lambda: list(CONTACT_CHANNELS),
        description="the channels whose contacts count against the cap and the cool-down",
    )


def rule_schema() -> dict[str, Any]:
    """The JSON Schema of a rule, as the admin API publishes it."""
    return Rule.model_json_schema(mode="validation")


__all__ = [
    "CHANNEL_PREFERENCE",
    "AbsenceTrigger",
    "Action",
    "Cap",
    "Condition",
    "ContactPolicy",
    "DelayTrigger",
    "EventTrigger",
    "Guards",
    "QuietHours",
    "Reeligibility",
    "Rule",
    "ScoreTrigger",
    "SessionTrigger",
    "rule_schema",
    "scope_field",
]
