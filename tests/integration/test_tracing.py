"""One trace per journey: a traced order.placed becomes, through the engine, its timer, the dispatcher
and the channel call, a single connected trace (spans collected with the SDK's in-memory exporter)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pymongo.asynchronous.database import AsyncDatabase

from services.dispatcher.app import build_broker
from services.dispatcher.channels import OutboxChannel
from services.engine.app import Engine
from services.storefront.app import create_app
from shared.clock import SystemClock
from shared.contract import EVENT_TYPES, Topics, encode
from shared.rules import RuleSet, builtin_rules
from shared.settings import DispatcherSettings, EngineSettings, StorefrontSettings
from shared.store import Document, mongo_client
from shared.telemetry import inject_headers
from tests.factories import event, uid
from tests.integration.conftest import profiles_known
from tests.kafka_io import BOOTSTRAP, produce

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        pytest.skip("another tracer provider was installed first in this process")
    return exporter


async def test_a_delay_notice_is_one_connected_trace_from_order_to_message(
    spans: InMemorySpanExporter, topics: Topics, db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    from aiokafka import AIOKafkaProducer

    settings = EngineSettings(
        topic_prefix=topics.prefix,
        group_id=uid("engine"),
        instance_id=uid("i"),
        poll_timeout_ms=50,
        model_dir=tmp_path / "models",
    )
    engine = Engine(settings, rules=RuleSet(builtin_rules()))
    running = asyncio.create_task(engine.run())
    broker = build_broker(
        DispatcherSettings(topic_prefix=topics.prefix, group_id=uid("dispatcher")),
        db,
        OutboxChannel(tmp_path),
        SystemClock(),
    )
    cid, order = uid("c"), uid("o")
    await produce([event("customer.upserted", subject=cid, consents={"email": True})], topics)
    await profiles_known(engine, [cid])
    tracer = trace.get_tracer("tests.shop")
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    try:
        async with broker:
            await broker.start()
            with tracer.start_as_current_span("shop: place order", kind=SpanKind.PRODUCER) as root:
                placed = event(
                    "order.placed",
                    subject=cid,
                    order_id=order,
                    promised_ship_by=(datetime.now(UTC) + timedelta(seconds=2)).isoformat(),
                )
                key, value, headers = encode(placed)
                await producer.send_and_wait(
                    getattr(topics, EVENT_TYPES["order.placed"][0]), value, key=key, headers=inject_headers(headers)
                )
            ours = root.get_span_context().trace_id
            for _ in range(150):  # older actions on the shared topics are delivered too: wait for ours
                if any(s.name == "send email" and s.context.trace_id == ours for s in spans.get_finished_spans()):
                    break
                await asyncio.sleep(0.2)
    finally:
        await producer.stop()
        engine.stop()
        await asyncio.wait_for(running, 30)

    trace_id = root.get_span_context().trace_id
    journey = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    names = [s.name for s in journey]
    assert f"process {topics.orders}" in names
    assert "timer rule delay-notice" in names
    assert f"process {topics.timers}" in names
    assert "send email" in names
    assert any(topics.actions in n for n in names), names  # the dispatcher's consumer span
    ids = {s.context.span_id for s in journey}
    orphans = [s.name for s in journey if s.parent is not None and s.parent.span_id not in ids]
    assert orphans == []  # every span hangs from another span of the same trace: one connected tree
    timer = next(s for s in journey if s.name == "timer rule delay-notice")
    assert timer.links  # and the firing is linked to the span that set the timer
    send = next(s for s in journey if s.name == "send email")
    assert "@" not in str(dict(send.attributes or {}))  # no e-mail address on the span
    # the dispatcher's MongoDB commands are spans of the same journey: the claim (an insert into
    # messages), then the record of what happened (updates), with the database semantic conventions
    mongo = [s for s in journey if (s.attributes or {}).get("db.system") == "mongodb"]
    commands = {(s.name.rsplit(".", 1)[-1], (s.attributes or {}).get("db.mongodb.collection")) for s in mongo}
    assert ("insert", "messages") in commands, commands
    assert ("update", "messages") in commands, commands
    assert {s.kind for s in mongo} == {SpanKind.CLIENT}
    # the statement is the command's name only: no document, so no address or phone number, is kept
    assert all((s.attributes or {}).get("db.statement") == s.name.rsplit(".", 1)[-1] for s in mongo)
    # and a command made outside any traced operation (the engine's and dispatcher's start-up reads,
    # index creation) starts no trace of its own
    every = [s for s in spans.get_finished_spans() if (s.attributes or {}).get("db.system") == "mongodb"]
    assert all(s.parent is not None for s in every)


async def test_the_decision_call_is_traced_when_the_caller_traces(
    spans: InMemorySpanExporter, topics: Topics, model_registry: Path
) -> None:
    settings = StorefrontSettings(
        topic_prefix=topics.prefix, mongo_database=uid("trace").replace("-", ""), model_dir=model_registry
    )
    app = create_app(settings)
    body = {"visitor_id": uid("v"), "session_id": uid("s")}
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
            traced = await client.post(
                "/v1/decide", json=body, headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
            )
            untraced = await client.post("/v1/decide", json=body)
    mongo = mongo_client(settings)
    await mongo.drop_database(settings.mongo_database)
    await mongo.close()
    assert traced.status_code == untraced.status_code == 200
    decide_spans = [s for s in spans.get_finished_spans() if s.name == "POST /v1/decide"]
    (span,) = decide_spans  # the untraced call made none
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.kind == SpanKind.SERVER
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200
