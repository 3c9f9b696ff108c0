"""``python -m services.engine``: settings, telemetry and health, then the consume loop until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from services.engine import metrics
from services.engine.app import Engine
from shared.health import kafka_reachable, start_health_server
from shared.logs import setup_logging
from shared.metrics import setup_metrics
from shared.rules.limits import WATCHDOG
from shared.settings import EngineSettings
from shared.telemetry import setup_tracing

SERVICE = "engine"


async def main() -> None:
    settings = EngineSettings()
    setup_logging(SERVICE, settings.log_level)
    provider = setup_tracing(SERVICE, settings)
    setup_metrics(SERVICE, settings)
    # Scoring batches are small (the sessions of one poll): OpenMP's worker threads would cost more
    # to wake, and spin, than they save. The engine scales by partitions and processes instead.
    threadpool_limits(1)
    engine = Engine(settings)
    metrics.observe(lambda: sum(st.pending_timers() for st in list(engine.states.values())), lambda: dict(engine.lag))

    async def ready() -> dict[str, bool]:
        polled_recently = time.monotonic() - engine.stats.last_poll_ok < 15
        broker = await kafka_reachable(settings.kafka_bootstrap_servers)
        return {"kafka": broker and polled_recently, "state_restored": not engine.restoring}

    def stats() -> dict[str, object]:
        s = engine.stats
        return {
            "consumed": s.consumed,
            "actions": s.actions,
            "dead_lettered": s.dead_lettered,
            "dead_letters_by_reason": dict(s.dead_letter_reasons),
            "failures": dict(s.failures),
            "timers_fired": s.timers_fired,
            "batches": s.batches,
            "partitions": sorted(engine.states),
            "timers_pending": sum(st.pending_timers() for st in engine.states.values()),
            "live_keys": sum(st.live_keys() for st in engine.states.values()),
            "expired": sum(st.expired for st in engine.states.values()),
            "rules": sorted(engine.rulebook.current.rules),
            "rule_evaluations": dict(engine.rules.evaluations),
            "expressions_over_budget": len(WATCHDOG.over_budget),
        }

    def models() -> dict[str, object]:
        return {"models": [engine.scorers.intent.status(), engine.scorers.churn.status()]}

    health = start_health_server(SERVICE, settings.http_port, ready, stats, detail=models)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, engine.stop)
    try:
        await engine.run()
    finally:
        health.cancel()
        provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
