"""OpenTelemetry set-up for a service, and W3C trace context carried in Kafka headers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult
from opentelemetry.util.types import Attributes

from shared.settings import Settings

_configured = False
_mongo_traced = False


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


class _ChildSpansOnly(trace.Tracer):
    """A tracer that records a span only inside another recording span. The MongoDB command listener
    sees every command of the process; those a traced operation makes (a claim, a record write, a
    profile read) belong in its trace, but a background query on its own (the projector's batches, a
    health check, the hygiene job) would make one root trace per command and bury the journeys."""

    def __init__(self, name: str, version: str | None, schema_url: str | None) -> None:
        self._args = (name, version, schema_url)

    def _tracer(self) -> trace.Tracer:
        name, version, schema_url = self._args
        return trace.get_tracer(name, version, schema_url=schema_url)

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        context = kwargs.get("context") or (args[0] if args else None)
        if not trace.get_current_span(context).is_recording():
            return trace.INVALID_SPAN
        return self._tracer().start_span(name, *args, **kwargs)

    @contextmanager  # the SDK's own decorator is private; the listener calls start_span only
    def start_as_current_span(  # type: ignore[override]
        self, name: str, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        with trace.use_span(self.start_span(name, *args, **kwargs), end_on_exit=True) as span:
            yield span


class _ChildSpansOnlyProvider(trace.TracerProvider):
    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        return _ChildSpansOnly(instrumenting_module_name, instrumenting_library_version, schema_url)


def trace_mongodb() -> None:
    """Register OpenTelemetry's PyMongo command listener once per process, before any client is made
    (PyMongo hands the registered listeners to each client it creates). Spans follow the database
    semantic conventions (``db.system``, ``db.name``, the collection, the server); the statement is
    not captured, so no document, and no personal data in one, reaches a trace."""
    global _mongo_traced
    if _mongo_traced:
        return
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    PymongoInstrumentor().instrument(tracer_provider=_ChildSpansOnlyProvider(), capture_statement=False)
    _mongo_traced = True
