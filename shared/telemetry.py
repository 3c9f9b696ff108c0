"""OpenTelemetry set-up for a service, and W3C trace context carried in Kafka headers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult

from shared.settings import Settings

_configured = False


class JsonLinesSpanExporter(SpanExporter):
    """Appends finished spans to a file, one compact JSON object per line (for ``make traces``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.get_span_context()
            if ctx is None:
                continue
            lines.append(
                orjson.dumps(
                    {
                        "trace_id": format(ctx.trace_id, "032x"),
                        "span_id": format(ctx.span_id, "016x"),
                        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                        "name": span.name,
                        "service": span.resource.attributes.get("service.name"),
                        "start": span.start_time,
                        "end": span.end_time,
                        "kind": span.kind.name,
                        "status": span.status.status_code.name,
                        "links": [format(link.context.span_id, "016x") for link in span.links],
                    }
                )
            )
        with self.path.open("ab") as f:
            f.write(b"\n".join(lines) + b"\n")
        return SpanExportResult.SUCCESS


def setup_tracing(service: str, settings: Settings, exporter: SpanExporter | None = None) -> TracerProvider:
    """Install the global tracer provider once per process. ``exporter`` overrides the configured one
    (tests pass an in-memory exporter)."""
    global _configured
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": settings.otel_service_name or service,
                "service.instance.id": settings.instance_id,
            }
        )
    )
    if exporter is None:
        if settings.traces_exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        elif settings.traces_exporter == "console":
            exporter = ConsoleSpanExporter(service_name=service)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if settings.traces_file is not None:
        provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(settings.traces_file)))
    if not _configured:
        trace.set_tracer_provider(provider)
        _configured = True
    return provider


def inject_headers(headers: list[tuple[str, bytes]], context: Context | None = None) -> list[tuple[str, bytes]]:
    """Append ``traceparent``/``tracestate`` of the current (or given) context to Kafka headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    headers.extend((k, v.encode()) for k, v in carrier.items())
    return headers


def current_carrier() -> dict[str, str]:
    """The current trace context as W3C headers, to be stored and continued later."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract_context(headers: Sequence[tuple[str, bytes]] | None) -> Context:
    carrier = {k: v.decode("latin-1") for k, v in headers or () if k in ("traceparent", "tracestate")}
    return propagate.extract(carrier)
