"""OpenTelemetry set-up for a service, and W3C trace context carried in Kafka headers."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from shared.settings import Settings

_configured = False


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
