"""Request and response bodies of the storefront API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import phonenumbers
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.contract import events as ev


class BrowserEvent(BaseModel):
    """One event from the widget: a browsing event type and its data (``shared.contract.events``)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, min_length=1, max_length=200, description="client id for de-duplication")
    type: str = Field(examples=["page.viewed"])
    time: AwareDatetime | None = None
    data: dict[str, Any]


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[BrowserEvent] = Field(min_length=1)


class Accepted(BaseModel):
    accepted: int
    ids: list[str]


class Problem(BaseModel):
    detail: str
    field: str | None = None


class DecideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visitor_id: str = Field(min_length=1, max_length=200)
    session_id: str = Field(min_length=1, max_length=200)
    locale: str | None = Field(None, max_length=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
    url: str | None = Field(None, max_length=2000, description="the page being shown (for the record)")


class Popup(BaseModel):
    template_id: str
    locale: str
    title: str
    body: str
    cta: str
    dismiss: str
    field: str = Field(description="the label of the phone or e-mail field")
    consent: str = Field(description="the consent checkbox's text")


class DecideResponse(BaseModel):
    show: bool
    decision_id: str = Field(description="quote it in the pop-up outcomes and the callback")
    reason: str
    rule_id: str | None = None
    popup: Popup | None = None


class PopupOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["popup.shown", "popup.accepted", "popup.dismissed"]
    visitor_id: str = Field(min_length=1, max_length=200)
    session_id: str = Field(min_length=1, max_length=200)
    decision_id: str = Field(min_length=1, max_length=200)
    rule_id: str | None = Field(None, max_length=200)


class CallbackRequest(BaseModel):
    """A visitor asks to be called (or written) back. Phone in any usual form; it is checked and
    stored in E.164. Without ``consent: true`` nothing is recorded."""

    model_config = ConfigDict(extra="forbid")

    visitor_id: str = Field(min_length=1, max_length=200)
    session_id: str | None = Field(None, max_length=200)
    decision_id: str | None = Field(None, max_length=200)
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$", description="region for a phone without +prefix")
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    preferred_time: str | None = Field(None, max_length=100)
    topic: str | None = Field(None, max_length=200)
    consent: bool = Field(description="must be true: the visitor agreed to be contacted about this request")
    locale: ev.Locale | None = Field(None, description="the page's language, for the confirmation and replies")
    timezone: str | None = Field(
        None, max_length=64, description="the visitor's IANA time zone, for the promised time (an unknown one: UTC)"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        # a browser's zone the server does not know is not worth refusing a callback for
        return value if value and ev.known_timezone(value) else None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            number = phonenumbers.parse(value, info.data.get("country"))
        except phonenumbers.NumberParseException:
            raise ValueError("not a phone number") from None
        if not phonenumbers.is_valid_number(number):
            raise ValueError("not a valid phone number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    @field_validator("consent")
    @classmethod
    def _consented(cls, value: bool) -> bool:
        if value is not True:
            raise ValueError("a callback needs the visitor's explicit consent")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> CallbackRequest:
        if not self.phone and not self.email:
            raise ValueError("phone or email is required")
        return self


class CallbackAccepted(BaseModel):
    request_id: str
    message: str = Field(description="the confirmation to show, in the visitor's language, with the promised time")
    promised_by: datetime = Field(description="when the shop promised to have called back")
