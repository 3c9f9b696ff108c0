"""OpenTelemetry metrics for a service: a Prometheus endpoint always, OTLP export when a collector
is configured. Each service declares its instruments in its own ``metrics.py``."""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import make_asgi_app

from shared.settings import Settings

_provider: MeterProvider | None = None


def setup_metrics(service: str, settings: Settings) -> MeterProvider:
    """Install the global meter provider once per process."""
    global _provider
    if _provider is not None:
        return _provider
    readers: list[MetricReader] = [PrometheusMetricReader()]
    if settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    _provider = MeterProvider(
        resource=Resource.create({"service.name": settings.otel_service_name or service}), metric_readers=readers
    )
    metrics.set_meter_provider(_provider)
    return _provider


def prometheus_app() -> Any:
    """The ASGI app serving ``/metrics`` in Prometheus' text format."""
    return make_asgi_app()
