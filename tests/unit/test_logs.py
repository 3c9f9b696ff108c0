"""Logs are JSON with trace ids, and personal data never reaches them."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from shared.logs import redact, setup_logging


def test_log_lines_are_json_with_trace_ids_and_no_personal_data() -> None:
    setup_logging("test", "INFO")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)  # type: ignore[attr-defined]
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("s") as span:
        logging.getLogger("proact.test").info(
            "callback for %s at %s",
            "anna@example.com",
            "+48 123 456 789",
            extra={"email": "anna@example.com"},
        )
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["level"] == "INFO"
    assert line["service"] == "test"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "anna@example.com" not in stream.getvalue()
    # no part of the number survives in the message (trace and span ids are hex, checked apart)
    assert not any(part in line["message"] for part in ("123", "456", "789"))
    assert "+48" not in stream.getvalue()
    assert line["email"] == "[redacted]"


def test_redact_walks_nested_values() -> None:
    assert redact({"phone": "+48123456789", "note": "mail me: a@b.com", "n": 3}) == {
        "phone": "[redacted]",
        "note": "mail me: [redacted]",
        "n": 3,
    }
