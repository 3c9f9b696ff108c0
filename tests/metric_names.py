"""Prints the name of every metric proact's services export in Prometheus' text format, one a line:
each instrument the services declare, given one value, through the same Prometheus reader the
services use (shared/metrics.py). Run as ``python -m tests.metric_names``, in a process of its own
(the reader registers with prometheus_client's global registry)."""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Counter, Histogram
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

DECLARING = (
    "services.engine.metrics",
    "services.storefront.metrics",
    "services.dispatcher.app",
    "services.dispatcher.delivery",
    "shared.models.registry",
)


def main() -> None:
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    for module in map(importlib.import_module, DECLARING):
        for value in vars(module).values():
            if isinstance(value, Counter):
                value.add(1)
            elif isinstance(value, Histogram):
                value.record(0.1)
    from services.engine import metrics as engine_metrics
    from services.projector import metrics as projector_metrics
    from shared.models.registry import ModelHandle, Registry

    engine_metrics.observe(lambda: 1, lambda: {("topic", 0): 1})
    projector_metrics.observe(type("Projector", (), {"total_lag": 1, "lag_seconds": 1.0})())  # type: ignore[arg-type]
    handle = ModelHandle(Registry(Path(tempfile.mkdtemp())), "intent")
    from prometheus_client import generate_latest

    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for sample in family.samples:
            print(sample.name)
    del handle


if __name__ == "__main__":
    main()
