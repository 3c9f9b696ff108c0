"""Benchmark: bounded state. The engine over a long stream of page views, each from a visitor never
seen again (bots, one-off visits), on a clock that runs fast: simulated days pass in a minute.

Without expiry every event leaves a session, a visitor and a list of seen event ids behind, and
the engine's memory and its changelog grow for ever. With it (``shared.engine.state.Expiry``),
both stop growing once the simulated clock passes the longest idle time: this prints the engine's
RSS and its live keys (what the compacted changelog keeps) as the run goes, and the live keys read
back from the changelog at the end.

    python bench/state.py [--events 1000000] [--days 6] [--visitor-idle-days 2]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cleanup import cleanup  # bench/ is on the path when a benchmark runs as a script
from report import record

from services.engine.app import Engine
from shared.contract import Topics
from shared.contract.topics import ensure_topics
from shared.rules import RuleSet, builtin_rules
from shared.settings import EngineSettings, Settings

BOOTSTRAP = Settings().kafka_bootstrap_servers


class FastClock:
    """Real time since the start, ``speed`` times faster."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.start = datetime.now(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


async def produce(topics: Topics, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, max_batch_size=262144, linger_ms=5)
    await producer.start()
    stamp = datetime.now(UTC).isoformat()
    try:
        futures = []
        for i in range(n):
            visitor = f"v{i}"
            value = orjson.dumps(
                {
                    "specversion": "1.0",
                    "id": f"e{i}",
                    "source": "bench",
                    "type": "page.viewed",
                    "time": stamp,
                    "subject": visitor,
                    "datacontenttype": "application/json",
                    "data": {"visitor_id": visitor, "session_id": f"s{i}", "url": "/p/1", "page_type": "product"},
                }
            )
            futures.append(await producer.send(topics.browsing, value, key=visitor.encode()))
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def changelog_live_keys(topics: Topics) -> int:
    """Keys whose latest record in the changelog is a value, not a tombstone: what compaction keeps."""
    consumer = AIOKafkaConsumer(
        topics.engine_state,
        bootstrap_servers=BOOTSTRAP,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    live: dict[bytes, bool] = {}
    try:
        ends = await consumer.end_offsets(list(consumer.assignment()) or [])
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            for records in batch.values():
                for r in records:
                    live[r.key] = r.value is not None
            parts = consumer.assignment()
            ends = await consumer.end_offsets(list(parts))
            if not batch and all([await consumer.position(tp) >= ends[tp] for tp in parts]):
                break
    finally:
        await consumer.stop()
    return sum(live.values())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=6.0, help="simulated days the run spans")
    parser.add_argument("--visitor-idle-days", type=float, default=2.0)
    parser.add_argument("--expected-rate", type=float, default=15_000.0, help="events/s, to pace the clock")
    args = parser.parse_args()
    prefix = f"benchstate{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix=prefix)
    await ensure_topics(BOOTSTRAP, topics)
    try:
        t = time.perf_counter()
        await produce(topics, args.events)
        print(f"produced {args.events:,} page views from unique visitors in {time.perf_counter() - t:.0f} s")
        speed = args.days * 86400 / (args.events / args.expected_rate)
        settings = EngineSettings(
            topic_prefix=prefix,
            group_id=f"{prefix}-engine",
            model_dir=Path("/nonexistent"),
            session_idle_s=3600.0,
            visitor_idle_days=args.visitor_idle_days,
            seen_ids_idle_days=1.0,
            log_level="WARNING",
        )
        clock = FastClock(speed)
        engine = Engine(settings, clock=clock, rules=RuleSet(builtin_rules()))
        task = asyncio.create_task(engine.run())
        print("| simulated day | events applied | live keys | RSS MB |\n|---|---|---|---|")
        samples: list[tuple[float, int, int, float]] = []
        while engine.stats.consumed < args.events and not task.done():
            await asyncio.sleep(2)
            day = (clock.now() - clock.start).total_seconds() / 86400
            keys = sum(st.live_keys() for st in list(engine.states.values()))
            samples.append((day, engine.stats.consumed, keys, rss_mb()))
            print(f"| {day:.2f} | {engine.stats.consumed:,} | {keys:,} | {rss_mb():.0f} |")
        await asyncio.sleep(3)
        engine.stop()
        await asyncio.wait_for(task, 60)
        in_changelog = await changelog_live_keys(topics)
        horizon = args.visitor_idle_days
        after = [s for s in samples if s[0] >= horizon + 0.5]
        peak_after = max((s[2] for s in after), default=0)
        print(f"live keys in the changelog at the end: {in_changelog:,} (of {3 * args.events:,} written)")
        if after:
            low, high = min(s[3] for s in after), max(s[3] for s in after)
            rss_range = (
                f"{low:.0f}-{high:.0f} MB (+{(high / low - 1) * 100:.0f}% over {samples[-1][0] - after[0][0]:.1f} days)"
            )
            print(f"after the expiry horizon ({horizon} days): live keys at most {peak_after:,}, RSS {rss_range}")
            record(
                "state",
                f"python bench/state.py --events {args.events}",
                [
                    ("page views from unique visitors, simulated days", f"{args.events:,}, {samples[-1][0]:.1f}", ""),
                    ("live keys after the horizon (max)", f"{peak_after:,}", "flat"),
                    ("engine RSS after the horizon", rss_range, "flat"),
                    ("live keys left in the changelog", f"{in_changelog:,} of {3 * args.events:,}", ""),
                ],
            )
    finally:
        await cleanup(prefix)


if __name__ == "__main__":
    asyncio.run(main())
