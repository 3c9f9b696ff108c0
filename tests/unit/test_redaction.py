"""Personal data and secrets out of logs and traces: redaction covers extras, nested values and
tracebacks without touching timestamps; a signed token is scrubbed from a span's URL."""

from __future__ import annotations

import io
import logging

import orjson
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import logs
from shared.web import scrub_secrets


def test_log_lines_lose_personal_data_everywhere_but_keep_their_times() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        _log_and_check()
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def _log_and_check() -> None:
    logs.setup_logging("test")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    handler.stream = stream  # type: ignore[attr-defined]
    log = logging.getLogger("redaction")
    stamp = "2026-12-07T02:00:23.123456+00:00"
    log.warning(
        "sent at %s to %s",
        "2026-12-07 02:00:23",
        "+48 123 456 789",
        extra={"detail": {"to": "anna@example.com", "numbers": ["555-010-9999"]}, "at": stamp},
    )
    try:
        raise ValueError("no customer with anna@example.com")
    except ValueError:
        log.exception("lookup failed")
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "sent at 2026-12-07 02:00:23 to [redacted]"
    assert first["detail"] == {"to": "[redacted]", "numbers": ["[redacted]"]}
    assert first["at"] == stamp
    assert "anna@example.com" not in second["exc_info"]
    assert "[redacted]" in second["exc_info"]


def test_an_unsubscribe_token_is_scrubbed_from_the_span_url() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI()

    @app.get("/unsubscribe")
    async def unsubscribe(token: str) -> dict[str, str]:
        return {"ok": token[:0]}

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, server_request_hook=scrub_secrets, exclude_spans=["receive", "send"]
    )
    TestClient(app).get("/unsubscribe?token=s3cr3t-token.mac&lang=pl")
    attributes = [str(v) for span in exporter.get_finished_spans() for v in (span.attributes or {}).values()]
    assert attributes
    assert not any("s3cr3t" in v for v in attributes)
    assert any("token=REDACTED" in v for v in attributes)
