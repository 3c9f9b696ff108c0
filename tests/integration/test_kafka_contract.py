"""The contract on the real broker: every event type through Kafka, both CloudEvents modes, kcat."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from cloudevents.core.bindings.kafka import to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared.contract import EVENT_TYPES, Topics, decode
from tests.factories import event, uid
from tests.kafka_io import BOOTSTRAP, produce, produce_raw, read

pytestmark = pytest.mark.integration


async def test_every_event_type_round_trips_through_kafka(topics: Topics) -> None:
    subject = uid("c")
    sent = {t: event(t, subject=subject) for t in EVENT_TYPES}
    await produce(sent.values(), topics)
    received = {}
    for attr in sorted({topic for topic, _ in EVENT_TYPES.values()}):
        expected = {t for t, (a, _) in EVENT_TYPES.items() if a == attr}
        records = await read(
            getattr(topics, attr),
            lambda rs, expected=expected: (
                expected <= {decode(r.value, r.headers).type for r in rs if r.key == subject.encode()}
            ),
        )
        for r in records:
            if r.key == subject.encode():
                e = decode(r.value, r.headers)
                received[e.type] = e
    assert received.keys() == sent.keys()
    for t, e in sent.items():
        assert received[t].id == e.id
        assert received[t].data == e.data


async def test_binary_mode_event_from_another_producer_is_decoded(topics: Topics) -> None:
    subject = uid("c")
    message = to_binary(
        CloudEvent(
            {
                "type": "order.delivered",
                "source": "erp",
                "subject": subject,
                "datacontenttype": "application/json",
            },
            {"order_id": "o-b", "customer_id": subject},
        ),
        JSONFormat(),
    )
    await produce_raw(topics.orders, message.value, subject.encode(), list(message.headers.items()))
    records = await read(topics.orders, lambda rs: any(r.key == subject.encode() for r in rs))
    (record,) = [r for r in records if r.key == subject.encode()]
    assert decode(record.value, record.headers).data.model_dump()["order_id"] == "o-b"


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is installed by deploy/local/system-deps.sh")
async def test_structured_event_produced_by_kcat_is_consumed(topics: Topics) -> None:
    subject = uid("c")
    value = (
        '{"specversion":"1.0","id":"kcat-1","source":"kcat","type":"order.cancelled",'
        f'"time":"2026-11-23T10:00:00+01:00","subject":"{subject}",'
        f'"data":{{"order_id":"o-k","customer_id":"{subject}","reason":"test"}}}}'
    )
    subprocess.run(
        [
            "kcat",
            "-P",
            "-b",
            BOOTSTRAP,
            "-t",
            topics.orders,
            "-k",
            subject,
            "-H",
            "content-type=application/cloudevents+json",
            "-X",
            "partitioner=murmur2_random",
        ],
        input=value.encode(),
        check=True,
        timeout=30,
    )
    records = await read(topics.orders, lambda rs: any(r.key == subject.encode() for r in rs))
    (record,) = [r for r in records if r.key == subject.encode()]
    decoded = decode(record.value, record.headers)
    assert decoded.id == "kcat-1"
    assert decoded.type == "order.cancelled"
    assert decoded.data.model_dump()["reason"] == "test"
