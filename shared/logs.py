"""Structured JSON logging with trace and span ids, and redaction of personal data (e-mail, phone)."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

_EMAIL = re.compile(r"[^@\s\"'<>]+@[^@\s\"'<>]+\.[A-Za-z]{2,}")
# An international number (+48 123 456 789, +1 (555) 010-9999) or a national one of three groups of
# three or four digits (123 456 789, 555-010-9999); not a date or a time (2026-12-07 02:00:23), whose
# groups are shorter, which the old "any 9 digits and separators" pattern redacted from every line.
_PHONE = re.compile(r"(?<![\w+])\+\d[\d \-().]{6,}\d|(?<![\w-])\(?\d{3}\)?[ -]?\d{3}[ -]?\d{3,4}(?![\w-])")
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


class RedactingFormatter(JsonFormatter):
    """JSON lines with personal data redacted from every field the record carries: the message,
    the extras (nested values too) and the formatted traceback; the fields the logging machinery
    writes itself (time, level, logger, ids) are left as they are."""

    OWN_FIELDS = frozenset({"time", "level", "logger", "service", "trace_id", "span_id"})

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v if k in self.OWN_FIELDS else REDACTED if k in _PERSONAL_KEYS else redact(v)
            for k, v in log_record.items()
        }


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter(
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
