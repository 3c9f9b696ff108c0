"""Benchmark: how fast state comes back, and how long a partition is without an engine when its owner dies.

1. Writes N customers (default 1,000,000, about 480 bytes each, as the engine writes them) to
   partition 0 of a fresh changelog, and a customer with an order of partition 0 for the probe.
2. Restore rate: an engine restores partition 0 in this process (``Engine._restore``): entities/s
   and MB/s.
3. Take-over: two engine processes in one group (static membership, the default 10 s session
   time-out); once both run, the owner of partition 0 is SIGKILLed and a probe (an ETA slip past its
   promise, which must bring a delay notice at once) is produced to partition 0 at the same moment.
   Take-over time: from the kill to the probe's action at a read_committed reader; what the survivor
   spent restoring is read from its log.

    python bench/takeover.py [--entities 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from cleanup import cleanup  # bench/ is on the path when a benchmark runs as a script
from report import record

from services.engine.app import Engine, send_batched
from shared.catalogue import BY_NAME
from shared.contract import Topics, encode, new_event
from shared.contract.topics import ensure_topics
from shared.settings import EngineSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = Settings().kafka_bootstrap_servers
NOW = datetime.now(UTC)


def in_partition(partition: int, partitions: int, count: int, prefix: str = "c") -> list[str]:
    """``count`` customer ids whose events go to ``partition`` (Kafka's default partitioner)."""
    choose = DefaultPartitioner()
    every = list(range(partitions))
    found: list[str] = []
    i = 0
    while len(found) < count:
        cid = f"{prefix}{i}"
        if choose(cid.encode(), every, every) == partition:
            found.append(cid)
        i += 1
    return found


def customer(cid: str) -> bytes:
    stamp = (NOW - timedelta(days=40)).isoformat()
    return orjson.dumps(
        {
            "customer_id": cid,
            "orders": 3,
            "tickets": 1,
            "locale": "pl-PL",
            "timezone": "Europe/Warsaw",
            "consents": {"email": True, "sms": False, "push": False, "phone": False},
            "has_email": True,
            "has_phone": False,
            "updated_at": stamp,
            "last_order_at": stamp,
            "order_history": [{"at": stamp, "amount": "49.90", "items": 2}] * 3,
            "ticket_history": [stamp],
            "contacts": [
                {"rule_id": "delay-notice", "at": stamp, "channel": "email", "scope": "o-1", "holdout": False}
            ],
            "churn": {"score": 0.31, "model_version": "20261201", "at": stamp},
        }
    )


async def fill(topics: Topics, customers: list[str], probe: str) -> int:
    """The changelog of partition 0: every customer, and the probe's customer and order; bytes written."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, max_batch_size=1 << 20, linger_ms=20, acks="all")
    await producer.start()
    size = 0
    try:
        chunk: list[tuple[bytes, bytes]] = []
        for cid in customers:
            value = customer(cid)
            size += len(value)
            chunk.append((f"customer:{cid}".encode(), value))
            if len(chunk) == 20_000:
                await send_batched(producer, topics.engine_state, 0, chunk)
                chunk = []
        order = {
            "order_id": f"{probe}-o",
            "customer_id": probe,
            "status": "shipped",
            "placed_at": NOW.isoformat(),
            "promised_delivery_by": (NOW + timedelta(days=1)).isoformat(),
        }
        chunk += [(f"customer:{probe}".encode(), customer(probe)), (f"order:{probe}-o".encode(), orjson.dumps(order))]
        await send_batched(producer, topics.engine_state, 0, chunk)
        await producer.flush()
    finally:
        await producer.stop()
    return size


def start(prefix: str, instance: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PROACT_TOPIC_PREFIX": prefix,
        "PROACT_ENGINE_GROUP_ID": f"{prefix}-engine",
        "PROACT_INSTANCE_ID": instance,
        "PROACT_ENGINE_HTTP_PORT": str(port),
        "PROACT_MONGO_DATABASE": prefix,
        "OTEL_TRACES_EXPORTER": "none",
        "PROACT_LOG_LEVEL": "INFO",
    }
    log = (workdir / f"{instance}.log").open("wb")
    module = BY_NAME["engine"].module
    return subprocess.Popen([sys.executable, "-m", module], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


async def partitions_of(port: int) -> list[int] | None:
    async with httpx.AsyncClient(timeout=2) as http:
        try:
            return list((await http.get(f"http://127.0.0.1:{port}/stats")).json()["partitions"])
        except (httpx.HTTPError, ValueError, KeyError):
            return None


def restored_seconds(log: Path) -> list[float]:
    """What each "state restored" line of an engine's JSON log says it took."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if "state restored" in line and (m := re.search(r'"seconds": ?([0-9.]+)', line)):
            found.append(float(m.group(1)))
    return found


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=1_000_000)
    args = parser.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    topics = Topics(prefix=prefix)
    await ensure_topics(BOOTSTRAP, topics)
    workdir = Path(tempfile.mkdtemp(prefix="proact-takeover-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        customers = in_partition(0, topics.partitions, args.entities)
        probe = in_partition(0, topics.partitions, 1, prefix="probe")[0]
        t = time.perf_counter()
        size = await fill(topics, customers, probe)
        print(
            f"  wrote {len(customers):,} entities ({size / 1e6:,.0f} MB) to one changelog partition in {time.perf_counter() - t:.0f} s"
        )

        engine = Engine(EngineSettings(topic_prefix=prefix, mongo_database=prefix))
        t = time.perf_counter()
        states = await engine._restore([0])
        restore_s = time.perf_counter() - t
        restored = states[0].live_keys()
        del states, engine
        rate, mb_rate = restored / restore_s, size / 1e6 / restore_s

        ports = {"a": 18291, "b": 18293}
        processes.append(start(prefix, f"{prefix}-a", ports["a"], workdir))
        for _ in range(600):
            if await partitions_of(ports["a"]):
                break
            await asyncio.sleep(0.5)
        processes.append(start(prefix, f"{prefix}-b", ports["b"], workdir))
        owners: dict[str, list[int]] = {}
        for _ in range(600):
            owners = {k: await partitions_of(p) or [] for k, p in ports.items()}
            if all(owners.values()) and sum(len(v) for v in owners.values()) == topics.partitions:
                break
            await asyncio.sleep(0.5)
        owner = next(k for k, v in owners.items() if 0 in v)
        survivor = "b" if owner == "a" else "a"
        await asyncio.sleep(3)  # both settled, their transactions flowing

        reader = AIOKafkaConsumer(
            topics.actions, bootstrap_servers=BOOTSTRAP, group_id=None, isolation_level="read_committed"
        )
        await reader.start()
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
        await producer.start()
        slip = new_event(
            "order.eta_changed",
            probe,
            {
                "order_id": f"{probe}-o",
                "customer_id": probe,
                "estimated_delivery": (NOW + timedelta(days=3)).isoformat(),
            },
            source="bench",
        )
        victim = processes[0 if owner == "a" else 1]
        killed = time.perf_counter()
        victim.send_signal(signal.SIGKILL)
        await producer.send_and_wait(topics.orders, encode(slip)[1], key=probe.encode())
        takeover = float("nan")
        deadline = killed + 180
        while time.perf_counter() < deadline:
            batches = await reader.getmany(timeout_ms=200)
            if any(orjson.loads(r.value)["data"]["customer_id"] == probe for rs in batches.values() for r in rs):
                takeover = time.perf_counter() - killed
                break
        await producer.stop()
        await reader.stop()
        survivor_restores = restored_seconds(workdir / f"{prefix}-{survivor}.log")
        day = f"{datetime.now(UTC):%Y-%m-%d}"
        print(f"take-over benchmark, {args.entities:,} entities in one partition, {os.cpu_count()} cores, {day}")
        print(f"  restore: {restored:,} entities in {restore_s:.1f} s: {rate:,.0f} entities/s, {mb_rate:.1f} MB/s")
        print(f"  take-over after SIGKILL of the owner: {takeover:.1f} s to the probe's action")
        print(
            f"    (session time-out 10 s; the survivor's restores took {', '.join(f'{s:.1f} s' for s in survivor_restores)})"
        )
        record(
            "takeover",
            f"python bench/takeover.py --entities {args.entities}",
            [
                ("restore rate (one partition)", f"{rate:,.0f} entities/s, {mb_rate:.1f} MB/s", ""),
                (
                    f"take-over of a partition with {args.entities:,} entities after SIGKILL",
                    f"{takeover:.1f} s",
                    "≤ 30 s",
                ),
            ],
        )
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
        await cleanup(prefix)


if __name__ == "__main__":
    asyncio.run(main())
