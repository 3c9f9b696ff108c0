"""Structured JSON logging with trace and span ids, and redaction of personal data (e-mail, phone)."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

_EMAIL = re.compile(r"[^@\s\"'<>]+@[^@\s\"'<>]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?\d[\d \-()]{7,}\d")
_PERSONAL_KEYS = frozenset({"email", "phone", "address", "full_name", "first_name", "last_name"})
REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    return _PHONE.sub(REDACTED, _EMAIL.sub(REDACTED, text))


def redact(value: Any) -> Any:
    """Personal data out of a value about to be logged or put on a span: keys by name, text by pattern."""
    if isinstance(value, dict):
        return {k: REDACTED if k in _PERSONAL_KEYS else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        # the message is formatted here so that redaction also covers %-arguments
        record.msg = redact_text(record.getMessage())
        record.args = None
        for key in _PERSONAL_KEYS & record.__dict__.keys():
            setattr(record, key, REDACTED)
        return True


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every retry of a new topic's first send at WARNING; keep its errors only
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
