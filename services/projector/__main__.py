"""``python -m services.projector``: settings, telemetry and health, then the projection until SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from services.projector import metrics as projector_metrics
from services.projector.app import OWNED, Projector
from shared.health import kafka_reachable, start_health_server
from shared.logs import setup_logging
from shared.metrics import setup_metrics
from shared.settings import ProjectorSettings
from shared.store import database, ensure_indexes, mongo_client, ping
from shared.telemetry import setup_tracing


async def main() -> None:
    settings = ProjectorSettings()
    setup_logging("projector", settings.log_level)
    provider = setup_tracing("projector", settings)
    client = mongo_client(settings)
    projector = Projector(settings, database(client, settings))
    await ensure_indexes(projector.db, OWNED)

    async def ready() -> dict[str, bool]:
        return {"mongodb": await ping(client), "kafka": await kafka_reachable(settings.kafka_bootstrap_servers)}

    def stats() -> dict[str, object]:
        return {
            "written": projector.written,
            "skipped": projector.skipped,
            "decisions_written": projector.decisions_written,
            "interactions_written": projector.interactions_written,
            "unreadable_by_reason": dict(projector.unreadable),
            "lag": projector.total_lag,
            "lag_seconds": round(projector.lag_seconds, 3),
            "lag_by_partition": projector.lag,
        }

    setup_metrics("projector", settings)
    projector_metrics.observe(projector)
    health = start_health_server("projector", settings.http_port, ready, stats)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, projector.stop)
    try:
        await projector.run()
    finally:
        health.cancel()
        await client.close()
        provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
