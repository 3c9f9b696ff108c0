"""The event contract: every type validates, errors name the field, both CloudEvents modes are read."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_structured, to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.contract import EVENT_TYPES, InvalidEvent, decode, encode, from_dict, new_event
from shared.contract.examples import example_data
from tests.factories import event


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_every_event_type_round_trips_in_structured_mode(type_: str) -> None:
    original = event(type_)
    key, value, headers = encode(original)
    decoded = decode(value, headers)
    assert key == b"c-1"
    assert decoded.type == type_
    assert decoded.id == original.id
    assert decoded.data == original.data


def test_a_decoded_event_has_the_envelope_and_data_encoded_and_formats_its_time_once() -> None:
    original = event("order.shipped", estimated_delivery="2026-12-09T10:00:00+01:00")
    decoded = decode(encode(original)[1])
    assert decoded.envelope.model_dump(exclude={"datacontenttype"}) == original.envelope.model_dump(
        exclude={"datacontenttype"}
    )
    assert decoded.data == original.data
    assert type(decoded.envelope) is type(original.envelope)  # the type's own envelope model, both ways
    assert decoded.time_iso == decoded.time.isoformat() == original.time_iso
    assert decoded.time_iso is decoded.time_iso  # made once


def test_structured_output_is_read_by_the_cloudevents_sdk() -> None:
    original = event("order.placed")
    key, value, headers = encode(original)
    parsed = from_structured(KafkaMessage(headers=dict(headers), key=key, value=value), JSONFormat())
    assert parsed.get_attributes()["type"] == "order.placed"
    assert parsed.get_attributes()["subject"] == "c-1"
    assert parsed.get_data()["order_id"] == "o-1"  # type: ignore[index]


def test_binary_mode_written_by_the_sdk_is_accepted() -> None:
    sdk_event = CloudEvent(
        {"type": "order.delivered", "source": "erp", "subject": "c-9", "datacontenttype": "application/json"},
        {"order_id": "o-9", "customer_id": "c-9"},
    )
    message = to_binary(sdk_event, JSONFormat())
    decoded = decode(message.value, list(message.headers.items()))
    assert decoded.type == "order.delivered"
    assert decoded.subject == "c-9"
    assert decoded.data.model_dump()["order_id"] == "o-9"


def test_unknown_fields_are_kept() -> None:
    data = {**example_data("order.delivered", datetime.now(UTC)), "warehouse": "WAW-2"}
    e = new_event("order.delivered", "c-1", data, source="t")
    assert decode(encode(e)[1]).data.model_dump()["warehouse"] == "WAW-2"


def _structured(**overrides: object) -> bytes:
    doc = event("order.placed").to_dict()
    doc.update(overrides)
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        (b'{"specversion": "1.0", "id": ', "value", "not valid JSON"),
        (b"[1, 2]", "value", "JSON object"),
        (_structured(specversion="0.3"), "specversion", "1.0"),
        (_structured(time="yesterday"), "time", "datetime"),
        (_structured(type="order.teleported"), "type", "unknown event type"),
        (_structured(subject=""), "subject", "at least 1"),
        (_structured(data={"order_id": "o-1", "customer_id": "c-1"}), "data.total", "Field required"),
        (
            _structured(
                data={**example_data("order.placed", datetime.now(UTC)), "total": {"amount": "ten", "currency": "EUR"}}
            ),
            "data.total.amount",
            "decimal",
        ),
        (
            _structured(
                data={**example_data("order.placed", datetime.now(UTC)), "promised_ship_by": "2026-01-01T10:00:00"}
            ),
            "data.promised_ship_by",
            "timezone",
        ),
    ],
)
def test_invalid_events_are_refused_naming_the_field(value: bytes, field: str, words: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode(value)
    assert info.value.field == field
    assert words.lower() in info.value.reason.lower()


def test_an_oversized_event_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidEvent, match="exceeds the limit"):
        decode(b"{" + b" " * (1024 * 1024) + b"}")


def test_callback_without_consent_or_contact_is_refused() -> None:
    data = example_data("callback.requested", datetime.now(UTC))
    with pytest.raises(InvalidEvent) as info:
        new_event("callback.requested", "v-1", {**data, "consent": False}, source="t")
    assert info.value.field == "data.consent"
    with pytest.raises(InvalidEvent, match="phone or email"):
        new_event("callback.requested", "v-1", {**data, "phone": None}, source="t")
    with pytest.raises(InvalidEvent) as info:
        new_event("callback.requested", "v-1", {**data, "phone": "0048 123"}, source="t")
    assert info.value.field == "data.phone"


def test_a_data_base64_event_is_refused() -> None:
    doc = event("order.delivered").to_dict()
    doc.pop("data")
    doc["data_base64"] = "e30="
    with pytest.raises(InvalidEvent) as info:
        from_dict(doc)
    assert info.value.field == "data_base64"


# --- fuzzing: whatever arrives on a topic, decoding answers with an event or a reason, never a crash ---
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def _decodes_or_refuses(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
    reason = "decoded"
    try:
        decode(value, headers or [])
    except InvalidEvent as exc:
        reason = exc.reason
    assert reason  # a refusal always says why; anything but InvalidEvent fails the test


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_are_refused_with_a_reason(value: bytes) -> None:
    _decodes_or_refuses(value)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(EVENT_TYPES)), st.data())
def test_a_valid_event_with_any_field_changed_decodes_or_is_refused(type_: str, data: st.DataObject) -> None:
    attributes = orjson.loads(encode(event(type_))[1])
    target = data.draw(st.sampled_from(["envelope", "data"]))
    where = attributes if target == "envelope" or not isinstance(attributes.get("data"), dict) else attributes["data"]
    name = data.draw(st.sampled_from(sorted(where)))
    if data.draw(st.booleans()):
        del where[name]
    else:
        where[name] = data.draw(JSON)
    _decodes_or_refuses(json.dumps(attributes).encode())  # the standard library writes any integer


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["ce_specversion", "ce_type", "ce_id", "ce_source", "ce_subject", "ce_time", "content-type"]),
        st.binary(max_size=40),
    ),
    st.binary(max_size=200),
)
def test_binary_mode_headers_of_any_value_decode_or_are_refused(headers: dict[str, bytes], value: bytes) -> None:
    _decodes_or_refuses(value, list(headers.items()))
