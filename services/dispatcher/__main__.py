"""``python -m services.dispatcher``: connect MongoDB and Kafka, serve health and AsyncAPI, dispatch."""

from __future__ import annotations

import asyncio

import uvicorn

from services.dispatcher.app import build_app, build_broker
from services.dispatcher.channels import OutboxChannel
from shared.clock import SystemClock
from shared.logs import setup_logging
from shared.metrics import setup_metrics
from shared.settings import DispatcherSettings
from shared.store import Collections, database, ensure_indexes, mongo_client
from shared.telemetry import setup_tracing

SERVICE = "dispatcher"


async def main() -> None:
    settings = DispatcherSettings()
    setup_logging(SERVICE, settings.log_level)
    provider = setup_tracing(SERVICE, settings)
    setup_metrics(SERVICE, settings)
    client = mongo_client(settings)
    db = database(client, settings)
    await ensure_indexes(db, [Collections.MESSAGES])
    broker = build_broker(settings, db, OutboxChannel(settings.outbox_dir), SystemClock())
    app = build_app(broker)
    server = uvicorn.Server(uvicorn.Config(app, host="0.0.0.0", port=settings.http_port, log_level="warning"))  # noqa: S104
    try:
        await server.serve()  # runs the broker through the ASGI lifespan; SIGTERM drains it
    finally:
        await client.close()
        provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
