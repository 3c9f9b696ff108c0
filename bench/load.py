"""``make load``: the decision call at a fixed rate while the engine ingests a steady stream, with the
whole of proact running (engine, projector, dispatcher, storefront) against the local Kafka and
FerretDB. Reports the decision call's p50/p99/p99.9, errors and fail-safe answers, and the engine's
consumer lag over time, plotted to a PNG.

    python bench/load.py [--rate 500] [--events-per-s 2000] [--seconds 60] [--plot bench/load-lag.png]

Three processes of its own besides the services: the decide load generator (``bench/decide.py``'s,
open-loop), the event producer, and this one sampling the lag once a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from cleanup import cleanup  # bench/ is on the path when a benchmark runs as a script
from decide import cpu_s, seed_sessions, spawn, stack_env, wait_ready
from engine import mix
from report import record

from shared.catalogue import BY_NAME
from shared.contract import Topics
from shared.contract.topics import ensure_topics
from shared.settings import cache_dir

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = "127.0.0.1:9092"
PORTS = {"engine": 18281, "projector": 18282, "dispatcher": 18283, "storefront": 18080}


async def produce_steadily(prefix: str, per_s: int, seconds: float) -> int:
    """The event mix of the engine benchmark, paced to ``per_s`` (run as its own process)."""
    topics = Topics(prefix=prefix)
    events = mix(int(per_s * seconds), random.Random(5))
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5)
    await producer.start()
    start = time.perf_counter()
    for i, (attr, key, value) in enumerate(events):
        await producer.send(getattr(topics, attr), value, key=key)
        ahead = start + i / per_s - time.perf_counter()
        if ahead > 0:
            await asyncio.sleep(ahead)
    await producer.stop()
    return len(events)


async def engine_lag(admin: AIOKafkaAdminClient, probe: AIOKafkaConsumer, group: str, topics: Topics) -> int:
    """Records on the engine's input topics not yet committed by its group."""
    parts = [TopicPartition(t, p) for t in topics.engine_inputs for p in range(topics.partitions)]
    ends = await probe.end_offsets(parts)
    committed = await admin.list_consumer_group_offsets(group)
    return sum(
        max(end - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0), 0)
        for tp, end in ends.items()
    )


async def sample_lag(prefix: str, seconds: float, into: list[tuple[float, int]]) -> None:
    topics = Topics(prefix=prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    probe = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await probe.start()
    start = time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - start) < seconds:
            into.append((elapsed, await engine_lag(admin, probe, f"{prefix}-engine", topics)))
            await asyncio.sleep(1.0)
    finally:
        await probe.stop()
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--events-per-s", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--plot", type=Path, default=ROOT / "bench" / "load-lag.png")
    args = parser.parse_args()
    prefix = f"benchload{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="proact-load-") as tmp:
        work = Path(tmp)
        # one load generator is every visitor
        env = stack_env(prefix, work, PORTS, PROACT_STOREFRONT_EVENTS_PER_IP="10000000")
        asyncio.run(ensure_topics(BOOTSTRAP, Topics(prefix=prefix)))
        services = {
            name: spawn([sys.executable, "-m", BY_NAME[name].module], env, work / f"{name}.log") for name in PORTS
        }
        try:
            for name, proc in services.items():
                wait_ready(f"http://127.0.0.1:{PORTS[name]}/health/ready", proc, work / f"{name}.log", 120)
            bodies = seed_sessions(args.sessions, random.Random(11))
            bodies_file = work / "bodies.json"
            bodies_file.write_text(json.dumps([b.decode() for b in bodies]))
            producer = subprocess.Popen(
                [sys.executable, __file__, "--produce", prefix, str(args.events_per_s), str(args.seconds)],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
            )
            decide = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "bench" / "decide.py"),
                    "--generate",
                    str(PORTS["storefront"]),
                    "/v1/decide",
                    str(bodies_file),
                    str(args.rate),
                    str(args.seconds),
                ],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
            )
            lags: list[tuple[float, int]] = []
            pids = {name: p.pid for name, p in {**services, "event producer": producer, "decide": decide}.items()}
            run_dir = cache_dir() / "run"
            for infra in ("kafka", "ferretdb"):  # started by make infra-up, with their PID files
                if (pid_file := run_dir / f"{infra}.pid").exists():
                    pids[infra] = int(pid_file.read_text())
            cpu_before = {name: cpu_s(pid) for name, pid in pids.items()}
            asyncio.run(sample_lag(prefix, args.seconds, lags))
            cpu = {name: (cpu_s(pid) - cpu_before[name]) / args.seconds for name, pid in pids.items()}
            tail: list[tuple[float, int]] = []
            asyncio.run(sample_lag(prefix, 15, tail))  # 15 s more for the engine to catch up
            lags += [(t + args.seconds, lag) for t, lag in tail]
            answers = json.loads(decide.communicate(timeout=120)[0])
            produced = int(producer.communicate(timeout=120)[0])
            for name, proc in services.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited during the run: {(work / f'{name}.log').read_text()[-2000:]}")
        finally:
            for proc in services.values():
                proc.terminate()
                proc.wait(30)
            asyncio.run(cleanup(prefix))
    day = datetime.now(UTC).date()
    print(
        f"load, {args.seconds:.0f} s: POST /v1/decide at {args.rate:.0f} requests/s while the engine ingests "
        f"{args.events_per_s:,} events/s; engine, projector, dispatcher, storefront, Kafka and FerretDB on "
        f"{os.cpu_count()} cores, {day}"
    )
    print(
        f"  decide: {answers['rps']:.0f} req/s  p50 {answers['p50']:.2f} ms  p99 {answers['p99']:.2f} ms  "
        f"p99.9 {answers['p999']:.2f} ms  max {answers['max']:.2f} ms  errors {answers['errors']}  "
        f"fail-safe {answers['fail_safe']}  pop-ups {answers['shown']}"
    )
    during = [lag for t, lag in lags if t <= args.seconds]
    print(
        f"  events produced {produced:,}; engine lag during the run: max {max(during):,} records, "
        f"last {during[-1]:,}; {lags[-1][1]:,} records behind 15 s after the stream stopped"
    )
    figure, axes = plt.subplots(figsize=(8, 3.5))
    axes.plot([t for t, _ in lags], [lag for _, lag in lags], color="#1f6feb")
    axes.axvline(args.seconds, color="grey", linestyle="--", linewidth=1)
    axes.set_xlabel("seconds")
    axes.set_ylabel("engine lag (records)")
    axes.set_title(f"engine consumer lag at {args.events_per_s:,} events/s with decide at {args.rate:.0f} req/s")
    figure.tight_layout()
    figure.savefig(args.plot, dpi=100)
    print("  CPU during the run (cores): " + ", ".join(f"{name} {share:.2f}" for name, share in cpu.items()))
    print(f"  lag plot: {args.plot}")
    record(
        "load",
        f"python bench/load.py --rate {args.rate:.0f} --events-per-s {args.events_per_s} --seconds {args.seconds:.0f}",
        [
            (
                f"POST /v1/decide at {answers['rps']:.0f} req/s, whole stack: p50 / p99 / p99.9",
                f"{answers['p50']:.0f} / {answers['p99']:.0f} / {answers['p999']:.0f} ms",
                "p99 ≤ 10 ms",
            ),
            ("errors, fail-safe answers", f"{answers['errors']}, {answers['fail_safe']}", ""),
            (
                f"engine lag at {args.events_per_s:,} events/s: max, 15 s after",
                f"{max(during):,}, {lags[-1][1]:,} records",
                "",
            ),
        ],
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--produce":
        print(asyncio.run(produce_steadily(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))))
    else:
        main()
