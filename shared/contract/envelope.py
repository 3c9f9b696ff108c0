"""CloudEvents 1.0 on Kafka: read structured or binary mode, write structured mode.

Binary mode (``ce_*`` headers) is decoded by the CloudEvents SDK's Kafka binding. Structured mode, which
proact itself writes, is read and written with orjson: it is the hot path, and the SDK's generic JSON
format costs several times more per message. Both paths end in the same pydantic validation, so an
event is accepted or refused the same way whatever its mode.

An event is validated in one call: the contract's event types form a union discriminated by
``type``, each member the envelope with that type's ``data`` model (``EVENT_MODELS``), so pydantic
picks the member from the type and validates the envelope and the data in one pass (half the cost
of validating them apart, on the engine's hot path). Only an event that fails is looked at again
step by step, for the error that names its first wrong field the way the contract words it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Union

import orjson
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from shared.contract.events import EVENT_TYPES, EventData

CONTENT_TYPE = "application/cloudevents+json"
DEFAULT_MAX_EVENT_BYTES = 256 * 1024
Headers = Sequence[tuple[str, bytes]]
_JSON_FORMAT = JSONFormat()


class InvalidEvent(ValueError):
    """An event that breaks the contract; ``field`` names the first offending attribute or data field."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class Envelope(BaseModel):
    """The CloudEvents context attributes proact requires (extensions are kept)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: AwareDatetime
    subject: str = Field(min_length=1, max_length=200)
    datacontenttype: str | None = None
    dataschema: str | None = None


def _event_models() -> dict[str, type[Envelope]]:
    """Per event type, the envelope with that type's ``data``: one model per data model, whose
    ``type`` is the literal of the event types that carry it (``ticket.opened``, ``.updated``…)."""
    types_of: dict[type[EventData], list[str]] = {}
    for event_type, (_, model) in EVENT_TYPES.items():
        types_of.setdefault(model, []).append(event_type)
    by_type: dict[str, type[Envelope]] = {}
    for model, types in types_of.items():
        structured = create_model(
            f"{model.__name__}Event",
            __base__=Envelope,
            __module__=__name__,
            type=(Literal[tuple(types)], ...),  # type: ignore[arg-type]
            data=(model, ...),
        )
        by_type.update(dict.fromkeys(types, structured))
    return by_type


EVENT_MODELS = _event_models()
_models = tuple(dict.fromkeys(EVENT_MODELS.values()))
_EVENT_UNION: Any = Annotated[Union[_models], Field(discriminator="type")]  # noqa: UP007
_EVENT = TypeAdapter(_EVENT_UNION).validator.validate_python


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The times an event may carry, relative to the clock of whoever receives it.

    A well-formed but absurd time is refused like a malformed one: an ``order.delivered`` dated
    9999-12-31 once made the check-in's ``time + delay`` overflow and stopped the engine. The event's
    own ``time`` may be at most ``ahead`` in the future (clocks drift, not by days); the dates in its
    data (promised delivery, an ETA) may be further ahead, up to ``data_ahead`` (a pre-order ships
    months later). Nothing before ``earliest``. The window is checked against the clock at the
    moment of decoding, so an event accepted once is accepted again when it is re-read later."""

    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    ahead: timedelta = timedelta(days=1)
    data_ahead: timedelta = timedelta(days=3 * 366)
    # the same in seconds: on the hot path, one timestamp and float comparisons cost a third of
    # comparing datetimes of different time zone objects (pydantic's and the clock's)
    _earliest_s: float = field(init=False, repr=False, compare=False)
    _ahead_s: float = field(init=False, repr=False, compare=False)
    _data_ahead_s: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_earliest_s", self.earliest.timestamp())
        object.__setattr__(self, "_ahead_s", self.ahead.total_seconds())
        object.__setattr__(self, "_data_ahead_s", self.data_ahead.total_seconds())

    def check(self, envelope: Envelope, data: EventData, now: datetime) -> None:
        self.check_at(envelope, data, now.timestamp())

    def check_at(self, envelope: Envelope, data: EventData, now_s: float) -> None:
        """``check`` against a clock read as epoch seconds."""
        if not self._earliest_s <= envelope.time.timestamp() <= now_s + self._ahead_s:
            latest = datetime.fromtimestamp(now_s, UTC) + self.ahead
            raise InvalidEvent(self._refusal("time", envelope.time, latest), "time")
        fields = _DATE_FIELDS.get(type(data))
        if fields is None:
            fields = _date_fields(type(data))
        if not fields:
            return
        latest_s = now_s + self._data_ahead_s
        for name in fields:
            value = getattr(data, name)
            if value is not None and not self._earliest_s <= value.timestamp() <= latest_s:
                latest = datetime.fromtimestamp(now_s, UTC) + self.data_ahead
                raise InvalidEvent(self._refusal(f"data.{name}", value, latest), f"data.{name}")

    def _refusal(self, field: str, value: datetime, latest: datetime) -> str:
        return (
            f"{field}: {value.isoformat()} is outside the accepted window "
            f"{self.earliest.isoformat()} .. {latest.replace(microsecond=0).isoformat()}"
        )


# For data read from an archive (training sets, exports): any time from 1970 on is plausible there.
ARCHIVE = TimeWindow(earliest=datetime(1970, 1, 1, tzinfo=UTC))
_window = TimeWindow()


def set_time_window(window: TimeWindow) -> None:
    """The window ``decode`` checks live events against (from the settings, at a service's start)."""
    global _window
    _window = window


_DATE_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _date_fields(model: type[EventData]) -> tuple[str, ...]:
    fields = _DATE_FIELDS.get(model)
    if fields is None:
        fields = _DATE_FIELDS[model] = tuple(
            name for name, info in model.model_fields.items() if "datetime" in str(info.annotation).lower()
        )
    return fields


@dataclass(frozen=True, slots=True)
class Event:
    envelope: Envelope
    data: EventData
    _time_iso: str | None = field(default=None, init=False, compare=False, repr=False)  # see time_iso

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def subject(self) -> str:
        return self.envelope.subject

    @property
    def time(self) -> datetime:
        return self.envelope.time

    @property
    def time_iso(self) -> str:
        """``time.isoformat()``, made once: the handlers write it into several records, and each
        formatting costs about as much as a small handler's own work."""
        iso = self._time_iso
        if iso is None:
            iso = self.envelope.time.isoformat()
            object.__setattr__(self, "_time_iso", iso)  # a cache, not a change: the event stays as it was
        return iso

    def to_dict(self) -> dict[str, Any]:
        doc = self.envelope.model_dump(mode="json", exclude_none=True, exclude={"data"})
        doc["datacontenttype"] = "application/json"
        doc["data"] = self.data.model_dump(mode="json", exclude_none=True)
        return doc


def new_event(
    type: str,
    subject: str,
    data: EventData | dict[str, Any],
    *,
    source: str,
    time: datetime | None = None,
    id: str | None = None,
) -> Event:
    """Build a valid event; raises InvalidEvent if the data does not fit the type."""
    if type not in EVENT_TYPES:
        raise InvalidEvent(f"unknown event type {type!r}", "type")
    model = EVENT_TYPES[type][1]
    if isinstance(data, EventData):
        if not isinstance(data, model):
            raise InvalidEvent(f"{type} carries {model.__name__}, not {data.__class__.__name__}", "data")
        typed = data
    else:
        typed = _validate_data(model, data)
    envelope = EVENT_MODELS[type](
        specversion="1.0",
        id=id or str(uuid.uuid4()),
        source=source,
        type=type,
        time=time or datetime.now(UTC),
        subject=subject,
        data=typed,
    )
    return Event(envelope, typed)


def check_times(event: Event, window: TimeWindow | None = None) -> None:
    """Refuse (InvalidEvent) an event built from a client's input whose times are out of the window."""
    (window or _window).check(event.envelope, event.data, datetime.now(UTC))


def encode(event: Event) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Kafka key, value and headers of an event in structured mode; the key is the subject."""
    return (
        event.subject.encode(),
        orjson.dumps(event.to_dict()),
        [("content-type", CONTENT_TYPE.encode())],
    )


def decode(
    value: bytes | None,
    headers: Headers = (),
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    window: TimeWindow | None = None,
) -> Event:
    """Parse a Kafka record into an Event, in structured or binary mode. Raises InvalidEvent.

    Its times must lie in ``window`` (by default the live one, see ``TimeWindow``)."""
    if value is None:
        raise InvalidEvent("empty record (tombstone) is not an event", "value")
    if len(value) > max_bytes:
        raise InvalidEvent(f"event of {len(value)} bytes exceeds the limit of {max_bytes}", "value")
    if headers and _binary_mode(headers):
        attributes = _binary_attributes(value, headers)
    else:
        try:
            attributes = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"value is not valid JSON: {exc}", "value") from None
        if not isinstance(attributes, dict):
            raise InvalidEvent("a structured CloudEvent must be a JSON object", "value")
    return _validate(attributes, window)


def from_dict(attributes: dict[str, Any], window: TimeWindow | None = None) -> Event:
    """Validate a structured CloudEvent already parsed from JSON (the caller's dict is left as it is)."""
    return _validate(attributes, window)


def _validate(attributes: dict[str, Any], window: TimeWindow | None = None) -> Event:
    """Validate a parsed structured CloudEvent in one call (see the module's docstring).

    The validator is called directly: ``model_validate`` adds a Python call and checks around the
    same validator, a tenth of the cost of an event on the engine's hot path."""
    try:
        envelope: Any = _EVENT(attributes)
    except ValidationError as exc:
        raise _refusal(attributes, exc) from None
    extra = envelope.__pydantic_extra__
    if extra and "data_base64" in extra:
        raise InvalidEvent("data_base64 is not accepted: proact events carry JSON data", "data_base64")
    data = envelope.data
    (window or _window).check_at(envelope, data, time.time())
    return Event(envelope, data)


def _refusal(attributes: dict[str, Any], exc: ValidationError) -> InvalidEvent:
    """Why an event failed, in the contract's words: the envelope first, then its type, then its
    data (field names relative to the event, as in ``data.order_id``)."""
    attributes = dict(attributes)
    data = attributes.pop("data", None)
    if "data_base64" in attributes:
        return InvalidEvent("data_base64 is not accepted: proact events carry JSON data", "data_base64")
    try:
        envelope = _ENVELOPE(attributes)
    except ValidationError as envelope_exc:
        return _invalid(envelope_exc, prefix="")
    spec = EVENT_TYPES.get(envelope.type)
    if spec is None:
        return InvalidEvent(f"unknown event type {envelope.type!r}", "type")
    if not isinstance(data, dict):
        return InvalidEvent("data must be a JSON object", "data")
    try:
        _validate_data(spec[1], data)
    except InvalidEvent as data_exc:
        return data_exc
    return _invalid(exc, prefix="", tagged=True)


_ENVELOPE = Envelope.__pydantic_validator__.validate_python


def _validate_data(model: type[EventData], data: dict[str, Any]) -> EventData:
    try:
        return model.__pydantic_validator__.validate_python(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise _invalid(exc, prefix="data.") from None


def _binary_mode(headers: Headers) -> bool:
    for key, _ in headers:  # a loop, not any() over a generator: this runs for every event
        if key.lower() == "ce_specversion":
            return True
    return False


def _binary_attributes(value: bytes, headers: Headers) -> dict[str, Any]:
    try:
        event = from_binary(KafkaMessage(headers=dict(headers), key=None, value=value), _JSON_FORMAT)
    except BaseCloudEventException as exc:
        raise InvalidEvent(f"invalid binary-mode CloudEvent: {exc}", "headers") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"invalid binary-mode CloudEvent: {exc}", "value") from None
    attributes = dict(event.get_attributes())
    data = event.get_data()
    if isinstance(data, bytes | str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"data is not valid JSON: {exc}", "data") from None
    else:
        # The SDK parsed it with the standard library, which takes NaN, Infinity and integers of any
        # size: what orjson, which writes proact's state and outputs, could not write back.
        try:
            data = orjson.loads(orjson.dumps(data))
        except (TypeError, orjson.JSONEncodeError, orjson.JSONDecodeError) as exc:
            raise InvalidEvent(f"data holds a value JSON cannot carry: {exc}", "data") from None
    attributes["data"] = data
    return attributes


def _invalid(exc: ValidationError, prefix: str, tagged: bool = False) -> InvalidEvent:
    """``tagged``: the errors of the discriminated union, whose locations start with the event type."""
    errors = exc.errors(include_url=False)
    parts = []
    fields = []
    for err in errors[:5]:
        where = err["loc"][1:] if tagged else err["loc"]
        field = prefix + ".".join(str(p) for p in where) if where else prefix.rstrip(".") or None
        fields.append(field)
        parts.append(f"{field or 'event'}: {err['msg']}")
    return InvalidEvent("; ".join(parts), fields[0])
