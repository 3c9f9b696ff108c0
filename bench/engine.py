"""Benchmark: the engine on the real broker, against a raw aiokafka consume loop in the same run.

1. Produces N events of a realistic mix (mostly browsing) to fresh topics.
2. Baseline: a raw aiokafka ``getmany`` + ``json.loads`` loop over the same events.
3. Throughput: an engine process (transactions, changelog, scoring) works through the backlog;
   events/s from its start until its committed offsets reach the end, and sustained: from its
   first commit (imports, group join and restore done) to the end.
4. The projector process catches up with that backlog into MongoDB (FerretDB here).
5. Latency: at a fixed rate (default 1,000 events/s) with ETA slips mixed in, event-to-action p50/p99
   (produce time to the action's arrival at a read_committed reader), projector lag, peak RSS.

    python bench/engine.py [--events 100000] [--rate 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
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
from aiokafka.admin import AIOKafkaAdminClient
from cleanup import cleanup  # bench/ is on the path when a benchmark runs as a script
from cores import own_core
from decide import cpu_s
from report import record

from shared.catalogue import BY_NAME
from shared.contract import EVENT_TYPES, Topics, encode, new_event
from shared.contract.topics import ensure_topics
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = Settings().kafka_bootstrap_servers
NOW = datetime.now(UTC)


def mix(n: int, rng: random.Random, customers: int = 2000) -> list[tuple[str, bytes, bytes]]:
    """(topic attribute, key, value): 70% browsing, 15% orders, 10% support, 5% customer updates."""
    out: list[tuple[str, bytes, bytes]] = []
    sessions: dict[str, tuple[str, str]] = {}
    for i in range(n):
        r = rng.random()
        cid = f"c{rng.randrange(customers)}"
        if r < 0.70:
            visitor = f"v{rng.randrange(customers * 3)}"
            sid = sessions.setdefault(visitor, (visitor, f"s{i}"))[1]
            if rng.random() < 0.1:
                e = new_event(
                    "session.started",
                    visitor,
                    {"visitor_id": visitor, "session_id": sid, "traffic_source": "ads"},
                    source="bench",
                )
            else:
                page = rng.choice(["product", "category", "search", "cart", "help", "home"])
                e = new_event(
                    "page.viewed",
                    visitor,
                    {
                        "visitor_id": visitor,
                        "session_id": sid,
                        "url": f"/{page}/{rng.randrange(500)}",
                        "page_type": page,
                        "duration_s": rng.uniform(2, 120),
                    },
                    source="bench",
                )
        elif r < 0.85:
            e = new_event(
                "order.placed",
                cid,
                {
                    "order_id": f"o{i}",
                    "customer_id": cid,
                    "total": {"amount": "19.90", "currency": "EUR"},
                    "promised_ship_by": (NOW + timedelta(days=2)).isoformat(),
                },
                source="bench",
            )
        elif r < 0.95:
            e = new_event("ticket.opened", cid, {"ticket_id": f"t{i}", "customer_id": cid}, source="bench")
        else:
            e = new_event(
                "customer.upserted",
                cid,
                {"customer_id": cid, "consents": {"email": True}, "locale": "de-DE"},
                source="bench",
            )
        key, value, _ = encode(e)
        out.append((EVENT_TYPES[e.type][0], key, value))
    return out


async def produce(topics: Topics, events: list[tuple[str, bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, max_batch_size=262144, linger_ms=5, acks="all")
    await producer.start()
    t = time.perf_counter()
    futures = [await producer.send(getattr(topics, attr), value, key=key) for attr, key, value in events]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - t
    await producer.stop()
    return len(events) / elapsed


async def raw_loop(topics: Topics, total: int, passes: int = 2, pinned: bool = True) -> float:
    """Events/s of a bare ``getmany`` + ``orjson.loads`` loop over the backlog; the best of ``passes``.

    Like the engine's sustained figure, the clock starts at the first records, after the consumer's
    start-up (metadata, offsets): over a backlog read in a third of a second, that start-up alone
    moved the figure by a third from run to run."""
    with own_core([os.getpid()] if pinned else []):
        return await _raw_loop(topics, total, passes)


async def _raw_loop(topics: Topics, total: int, passes: int) -> float:
    best = 0.0
    for _ in range(passes):
        consumer = AIOKafkaConsumer(
            *topics.engine_inputs, bootstrap_servers=BOOTSTRAP, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        count, first, t = 0, 0, 0.0
        while count < total:
            for records in (await consumer.getmany(timeout_ms=500, max_records=1000)).values():
                for r in records:
                    orjson.loads(r.value)
                    count += 1
            if not first and count:
                first, t = count, time.perf_counter()
        best = max(best, (total - first) / (time.perf_counter() - t))
        await consumer.stop()
    return best


async def committed(group: str, topics: Topics) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return sum(m.offset for tp, m in offsets.items() if tp.topic in topics.engine_inputs and m.offset > 0)
    finally:
        await admin.close()


def start(module: str, prefix: str, port: int, workdir: Path, instance: int = 1) -> subprocess.Popen[bytes]:
    """The engine (HTTP on ``port``) or the projector (``port + 1``) as a process of its own."""
    env = {
        **os.environ,
        "PROACT_TOPIC_PREFIX": prefix,
        "PROACT_ENGINE_GROUP_ID": f"{prefix}-engine",
        "PROACT_INSTANCE_ID": f"{prefix}-{instance}",
        "PROACT_ENGINE_HTTP_PORT": str(port),
        "PROACT_PROJECTOR_HTTP_PORT": str(port + 1),
        "PROACT_MONGO_DATABASE": prefix,
        "OTEL_TRACES_EXPORTER": "none",
        "PROACT_LOG_LEVEL": "WARNING",
    }
    log = (workdir / f"{module}-{instance}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", module], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


PEER_REQUIREMENTS = ROOT / "bench" / "peers" / "quix-requirements.txt"


def peer_python() -> Path:
    """The Python of the Quix Streams peer: a virtual environment of its own in the cache, installed
    once from its pinned, hashed requirements (Quix Streams pins pydantic below proact's, so it
    cannot share proact's lock without changing what proact runs on)."""
    cache = Path(os.environ.get("PROACT_CACHE", Path.home() / ".cache" / "proact"))
    venv = cache / "peers" / "quix-3.28.1"
    python = venv / "bin" / "python"
    if not python.exists():
        uv = os.environ.get("PROACT_UV") or str(cache / "tools" / "uv-0.13.9" / "bin" / "uv")
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(python), "--require-hashes", "-r", str(PEER_REQUIREMENTS)],
            check=True,
        )
    return python


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def until_committed(
    group: str,
    topics: Topics,
    total: int,
    process: subprocess.Popen[bytes] | list[subprocess.Popen[bytes]],
    log: Path,
    cpu: list[float] | None = None,
) -> tuple[float, float, float]:
    """(events/s from the processes' start, events/s sustained: from the first commit to the last,
    seconds to the first commit) of a consumer group working through ``total`` events; with
    ``cpu``, the processes' CPU seconds per event over the sustained part is put in ``cpu[0]``."""
    processes = process if isinstance(process, list) else [process]
    t0 = time.perf_counter()
    first: tuple[float, int] | None = None  # the first commit seen: start-up (imports, group join) is over
    cpu_first = 0.0
    while (done := await committed(group, topics)) < total:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError(tail(log))
        if first is None and done > 0:
            first = (time.perf_counter(), done)
            cpu_first = sum(cpu_s(p.pid) for p in processes)
        await asyncio.sleep(0.25)
    end = time.perf_counter()
    if cpu is not None and first is not None:
        cpu.append((sum(cpu_s(p.pid) for p in processes) - cpu_first) / (total - first[1]))
    first = first or (t0, 0)
    return total / (end - t0), (total - first[1]) / (end - first[0]), first[0] - t0


async def two_engines(events: list[tuple[str, bytes, bytes]], workdir: Path) -> float:
    """Sustained events/s of two engine processes in one group over the same events, on topics of
    their own (the first run's changelog would make every event a duplicate)."""
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    topics = Topics(prefix=prefix)
    await ensure_topics(BOOTSTRAP, topics)
    try:
        await produce(topics, events)
        engines = [start(BY_NAME["engine"].module, prefix, port, workdir, n) for n, port in ((1, 18191), (2, 18193))]
        try:
            _, sustained, _ = await until_committed(
                f"{prefix}-engine", topics, len(events), engines, workdir / "services.engine-1.log"
            )
        finally:
            for engine in engines:
                engine.terminate()
                engine.wait(30)
        return sustained
    finally:
        await cleanup(prefix)


async def quix_peer(topics: Topics, prefix: str, total: int, workdir: Path, pinned: bool = True) -> float:
    """Sustained events/s of the Quix Streams peer (``bench/peers/quix_app.py``) over the backlog."""
    python = peer_python()
    log = workdir / "quix.log"
    command = [
        str(python),
        str(ROOT / "bench" / "peers" / "quix_app.py"),
        BOOTSTRAP,
        f"{prefix}-quix",
        f"{prefix}.quix.out",
        str(workdir / "quix-state"),
        *topics.engine_inputs,
    ]
    process = spawn(command, log)
    try:
        with own_core([process.pid] if pinned else []):
            _, sustained, _ = await until_committed(f"{prefix}-quix", topics, total, process, log)
    finally:
        process.terminate()
        process.wait(30)
    return sustained


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def latency(topics: Topics, port: int, rate: int, seconds: int, rng: random.Random) -> dict[str, float]:
    """At a fixed rate, one event in ten an ETA slip that must produce a delay notice at once."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0)
    await producer.start()
    reader = AIOKafkaConsumer(
        topics.actions,
        bootstrap_servers=BOOTSTRAP,
        group_id=None,
        auto_offset_reset="latest",
        isolation_level="read_committed",
        fetch_max_wait_ms=50,  # as a downstream service tuned for latency would
    )
    await reader.start()
    await asyncio.sleep(1.0)
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    lags: list[int] = []

    async def read() -> None:
        while True:
            for records in (await reader.getmany(timeout_ms=100)).values():
                for r in records:
                    order = orjson.loads(r.value)["data"]["context"]["order_id"]
                    arrived.setdefault(order, time.perf_counter())

    async def watch_lag() -> None:
        async with httpx.AsyncClient() as http:
            while True:
                lags.append((await http.get(f"http://127.0.0.1:{port + 1}/stats")).json()["lag_seconds"])
                await asyncio.sleep(1.0)

    background = mix(rate * seconds, rng)
    probes = range(0, len(background), 10)
    # the customers and orders of the probes exist before the clock starts: topics have no order
    # between them, so a consent sent with the slip could arrive after it
    for i in probes:
        cid, oid = f"lat{i}", f"lat-o{i}"
        profile = {"customer_id": cid, "email": f"{cid}@example.com", "consents": {"email": True}}
        consent = new_event("customer.upserted", cid, profile, source="bench")
        placed = new_event(
            "order.placed",
            cid,
            {
                "order_id": oid,
                "customer_id": cid,
                "total": {"amount": "5.00", "currency": "EUR"},
                "promised_delivery_by": (NOW + timedelta(days=1)).isoformat(),
            },
            source="bench",
        )
        await producer.send(topics.customers, encode(consent)[1], key=cid.encode())
        await producer.send(topics.orders, encode(placed)[1], key=cid.encode())
    await producer.flush()
    await asyncio.sleep(3.0)
    tasks = [asyncio.create_task(read()), asyncio.create_task(watch_lag())]
    start = time.perf_counter()
    for i, (attr, key, value) in enumerate(background):
        if i % 10 == 0:  # one event in ten is an ETA slip past the promise: a delay notice at once
            cid, oid = f"lat{i}", f"lat-o{i}"
            slip = new_event(
                "order.eta_changed",
                cid,
                {"order_id": oid, "customer_id": cid, "estimated_delivery": (NOW + timedelta(days=3)).isoformat()},
                source="bench",
            )
            sent[oid] = time.perf_counter()
            await producer.send(topics.orders, encode(slip)[1], key=cid.encode())
        else:
            await producer.send(getattr(topics, attr), value, key=key)
        ahead = start + i / rate - time.perf_counter()
        if ahead > 0:
            await asyncio.sleep(ahead)
    await producer.flush()
    await asyncio.sleep(3.0)
    for t in tasks:
        t.cancel()
    await producer.stop()
    await reader.stop()
    ms = sorted((arrived[o] - t) * 1000 for o, t in sent.items() if o in arrived)
    return {
        "samples": len(ms),
        "missing": len(sent) - len(ms),
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[int(len(ms) * 0.99) - 1],
        "max_projector_lag": max(lags) if lags else float("nan"),
        "achieved_rate": len(background) / (time.perf_counter() - start - 3.0),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument(
        "--shared-cores",
        action="store_true",
        help="leave the raw loop, the peer and the engine on the cores the scheduler picks, sharing them "
        "with Kafka (by default each runs on a core of its own, the rest on the other: bench/cores.py)",
    )
    args = parser.parse_args()
    rng = random.Random(11)
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    topics = Topics(prefix=prefix)
    await ensure_topics(BOOTSTRAP, topics)
    workdir = Path(tempfile.mkdtemp(prefix="proact-bench-"))
    port = 18181
    try:
        events = mix(args.events, rng)
        produce_rate = await produce(topics, events)
        pinned = not args.shared_cores
        raw = await raw_loop(topics, len(events), pinned=pinned)
        quix = await quix_peer(topics, prefix, len(events), workdir, pinned=pinned)
        engine = start(BY_NAME["engine"].module, prefix, port, workdir)
        cpu: list[float] = []
        with own_core([engine.pid] if pinned else []) as on_own_core:
            throughput, sustained, startup = await until_committed(
                f"{prefix}-engine", topics, len(events), engine, workdir / "services.engine-1.log", cpu
            )
        cpu_us = cpu[0] * 1e6 if cpu else float("nan")
        two = await two_engines(events, workdir)
        projector = start(BY_NAME["projector"].module, prefix, port, workdir)
        t0 = time.perf_counter()
        written = 0
        async with httpx.AsyncClient() as http:
            for _ in range(1200):
                await asyncio.sleep(0.5)
                try:
                    stats = (await http.get(f"http://127.0.0.1:{port + 1}/stats")).json()
                except httpx.HTTPError:
                    continue
                written = stats["written"]
                if written and stats["lag"] == 0 and len(stats["lag_by_partition"]) >= topics.partitions:
                    break
        catch_up = time.perf_counter() - t0
        lat = await latency(topics, port, args.rate, args.seconds, rng)
        rss = peak_rss_mb(engine.pid)
        for process in (engine, projector):
            process.terminate()
            process.wait(30)
        day = f"{datetime.now(UTC):%Y-%m-%d}"
        placement = "each on a core of its own, Kafka on the other" if on_own_core else "sharing the cores with Kafka"
        print(f"engine benchmark, {args.events:,} events, 6 partitions, {os.cpu_count()} cores, {day}")
        print(f"  raw loop, peer and engine: {placement}; two engines, latency and projector: shared cores")
        print(f"  producer (pre-encoded):           {produce_rate:10,.0f} events/s")
        print(f"  raw aiokafka getmany + json.loads: {raw:10,.0f} events/s   (baseline)")
        print(f"  engine, start to all committed:   {throughput:10,.0f} events/s   (with start-up {startup:.1f} s)")
        print(
            f"  engine, sustained (first commit to last): {sustained:,.0f} events/s   ratio to raw {sustained / raw:.3f}"
        )
        print(f"  engine CPU per event over the sustained part: {cpu_us:.1f} µs")
        print(f"  two engine processes in one group, sustained: {two:,.0f} events/s ({two / sustained:.2f}x one)")
        print(
            f"  Quix Streams 3.28.1 peer, exactly-once, sustained: {quix:,.0f} events/s   "
            f"ratio to raw {quix / raw:.3f}; engine / peer {sustained / quix:.2f}"
        )
        print(
            f"  at {lat['achieved_rate']:,.0f} events/s: event-to-action p50 {lat['p50_ms']:.1f} ms, "
            f"p99 {lat['p99_ms']:.1f} ms ({lat['samples']} actions, {lat['missing']} missing)"
        )
        rate = written / catch_up
        print(f"  projector: backlog of {written:,} entities into MongoDB in {catch_up:.1f} s ({rate:,.0f}/s)")
        print(f"  projector lag during the fixed-rate run: max {lat['max_projector_lag']:.2f} s")
        print(f"  engine peak RSS: {rss:.0f} MB")
        record(
            "engine",
            f"python bench/engine.py --events {args.events}" + (" --shared-cores" if args.shared_cores else ""),
            [
                ("raw loop, peer and engine placed", placement, ""),
                ("sustained events/s through the engine", f"{sustained:,.0f}", "≥ 10,000"),
                ("ratio to a raw aiokafka loop", f"{sustained / raw:.3f}", "≥ 0.15"),
                ("engine CPU per event (sustained part)", f"{cpu_us:.0f} µs", "≤ 25 µs"),
                ("Quix Streams 3.28.1 peer, exactly-once, sustained events/s", f"{quix:,.0f}", ""),
                ("ratio to the Quix Streams peer", f"{sustained / quix:.2f}", "≥ 2.0"),
                ("two engine processes, sustained events/s", f"{two:,.0f} ({two / sustained:.2f}x one)", ""),
                (
                    f"event-to-action p50 / p99 at {lat['achieved_rate']:,.0f} events/s",
                    f"{lat['p50_ms']:.0f} / {lat['p99_ms']:.0f} ms",
                    "p99 ≤ 100 ms",
                ),
                ("projector lag at that rate (max)", f"{lat['max_projector_lag']:.1f} s", "< 5 s"),
                ("engine peak RSS", f"{rss:.0f} MB", ""),
            ],
        )
    finally:
        await cleanup(prefix)


if __name__ == "__main__":
    asyncio.run(main())
