"""Request and response bodies of the storefront API."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class BrowserEvent(BaseModel):
    """One event from the widget: a browsing event type and its data (DESIGN.md, ``proact.browsing``)."""

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
