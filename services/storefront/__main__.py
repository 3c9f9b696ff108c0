"""``python -m services.storefront``: serve the storefront API with uvicorn."""

from __future__ import annotations

import uvicorn
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from services.storefront.app import create_app
from shared.logs import setup_logging
from shared.settings import StorefrontSettings
from shared.telemetry import setup_tracing

SERVICE = "storefront"


def main() -> None:
    settings = StorefrontSettings()
    setup_logging(SERVICE, settings.log_level)
    setup_tracing(SERVICE, settings)
    app = create_app(settings)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health")
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
