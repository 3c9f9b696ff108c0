"""``make load``: the decision call at a fixed rate while the engine ingests a steady stream, with the
whole of proact running (engine, projector, dispatcher, storefront) against the local Kafka and
FerretDB. Reports the decision call's p50/p99/p99.9, errors and fail-safe answers, and the engine's
consumer lag over time, plotted to a PNG.

    python bench/load.py [--rate 500] [--events-per-s 2000] [--seconds 60] [--plot bench/load-lag.png]
    python bench/load.py --pinned [--rate 500] [--events-per-s 1000]   # make load ARGS=--pinned

``--pinned`` runs the storefront on a core of its own and everything else (engine, projector,
dispatcher, Kafka, FerretDB, the event producer, the load generator, this process) on the other,
as separate pods would be, and measures a trivial FastAPI endpoint on the storefront's core in the
same run, before it, under the same stream of events: the decision call's server CPU per request
against the trivial endpoint's.

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
from cores import infra_pids, pin
from decide import TRIVIAL_PORT, cpu_s, seed_sessions, spawn, spawn_trivial, stack_env, wait_ready
from engine import mix
from report import record

from shared.catalogue import BY_NAME
from shared.contract import Topics
from shared.contract.topics import ensure_topics

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


def generator(
    port: int, path: str, bodies_file: Path, rate: float, seconds: float, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """``bench/decide.py``'s open-loop load generator, as a process of its own."""
    command = [sys.executable, str(ROOT / "bench" / "decide.py"), "--generate", str(port), path, str(bodies_file)]
    return subprocess.Popen([*command, str(rate), str(seconds)], env=env, cwd=ROOT, stdout=subprocess.PIPE)


def generate(
    port: int, path: str, bodies_file: Path, rate: float, seconds: float, env: dict[str, str]
) -> dict[str, float]:
    process = generator(port, path, bodies_file, rate, seconds, env)
    pin({process.pid}, {0})
    return json.loads(process.communicate(timeout=seconds + 120)[0])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--events-per-s", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--plot", type=Path, default=None, help="default: bench/load-lag.png (-pinned-lag.png)")
    parser.add_argument("--pinned", action="store_true", help="the storefront on a core of its own")
    args = parser.parse_args()
    if args.pinned and (os.cpu_count() or 1) < 2:
        raise SystemExit("--pinned needs two cores")
    args.plot = args.plot or ROOT / "bench" / ("load-pinned-lag.png" if args.pinned else "load-lag.png")
    prefix = f"benchload{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="proact-load-") as tmp:
        work = Path(tmp)
        # one load generator is every visitor
        env = stack_env(
            prefix,
            work,
            PORTS,
            PROACT_STOREFRONT_EVENTS_PER_IP="10000000",
            PROACT_STOREFRONT_NEW_SESSIONS_PER_IP="10000000",
        )
        asyncio.run(ensure_topics(BOOTSTRAP, Topics(prefix=prefix)))
        services = {
            name: spawn([sys.executable, "-m", BY_NAME[name].module], env, work / f"{name}.log") for name in PORTS
        }
        trivial = None
        infra: dict[str, int] = {}
        if args.pinned:
            trivial = spawn_trivial(work, env)
        try:
            for name, proc in services.items():
                wait_ready(f"http://127.0.0.1:{PORTS[name]}/health/ready", proc, work / f"{name}.log", 120)
            if trivial is not None:
                wait_ready(f"http://127.0.0.1:{TRIVIAL_PORT}/health/ready", trivial, work / "trivial.log", 60)
            bodies = seed_sessions(args.sessions, random.Random(11))
            bodies_file = work / "bodies.json"
            bodies_file.write_text(json.dumps([b.decode() for b in bodies]))
            # pinned: a first phase against the trivial endpoint, under the same stream of events
            baseline_s = args.seconds / 2 if args.pinned else 0.0
            producer = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--produce",
                    prefix,
                    str(args.events_per_s),
                    str(args.seconds + baseline_s),
                ],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
            )
            infra = infra_pids()
            trivial_answers: dict[str, float] | None = None
            if args.pinned:
                own = {p.pid for name, p in services.items() if name != "storefront"} | {producer.pid, os.getpid()}
                pin({services["storefront"].pid, *([trivial.pid] if trivial else [])}, {1})
                pin(own | set(infra.values()), {0})
                c0 = cpu_s(trivial.pid) if trivial else 0.0
                trivial_answers = generate(TRIVIAL_PORT, "/decide", bodies_file, args.rate, baseline_s, env)
                if trivial:
                    trivial_answers["cpu_ms"] = (cpu_s(trivial.pid) - c0) * 1000 / trivial_answers["requests"]
            decide = generator(PORTS["storefront"], "/v1/decide", bodies_file, args.rate, args.seconds, env)
            if args.pinned:
                pin({decide.pid}, {0})
            lags: list[tuple[float, int]] = []
            pids = {name: p.pid for name, p in {**services, "event producer": producer, "decide": decide}.items()}
            pids.update(infra)
            cpu_before = {name: cpu_s(pid) for name, pid in pids.items()}
            asyncio.run(sample_lag(prefix, args.seconds, lags))
            cpu = {name: (cpu_s(pid) - cpu_before[name]) / args.seconds for name, pid in pids.items()}
            tail: list[tuple[float, int]] = []
            asyncio.run(sample_lag(prefix, 15, tail))  # 15 s more for the engine to catch up
            lags += [(t + args.seconds, lag) for t, lag in tail]
            answers = json.loads(decide.communicate(timeout=120)[0])
            answers["cpu_ms"] = cpu["storefront"] * args.seconds * 1000 / max(answers["requests"], 1)
            produced = int(producer.communicate(timeout=120)[0])
            for name, proc in services.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited during the run: {(work / f'{name}.log').read_text()[-2000:]}")
        finally:
            for proc in [*services.values(), *([trivial] if trivial else [])]:
                proc.terminate()
                proc.wait(30)
            if args.pinned:
                pin(set(infra.values()), set(range(os.cpu_count() or 1)))  # Kafka and FerretDB go on unpinned
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
    if trivial_answers is not None:
        ratio = answers["cpu_ms"] / trivial_answers["cpu_ms"]
        print(
            f"  pinned: the storefront alone on core 1; trivial endpoint there first: p50 {trivial_answers['p50']:.2f} ms "
            f"p99 {trivial_answers['p99']:.2f} ms, server CPU {trivial_answers['cpu_ms']:.2f} ms/request; "
            f"decide server CPU {answers['cpu_ms']:.2f} ms/request, {ratio:.2f}x the trivial endpoint's"
        )
        record(
            "load-pinned",
            f"python bench/load.py --pinned --rate {args.rate:.0f} --events-per-s {args.events_per_s} "
            f"--seconds {args.seconds:.0f}",
            [
                (
                    f"POST /v1/decide at {answers['rps']:.0f} req/s, storefront on its own core, while the engine "
                    f"ingests {args.events_per_s:,} events/s: p50 / p99 / p99.9",
                    f"{answers['p50']:.1f} / {answers['p99']:.1f} / {answers['p999']:.1f} ms",
                    "p99 ≤ 10 ms",
                ),
                (
                    "server CPU per decision / per trivial request, same core, same run",
                    f"{answers['cpu_ms']:.2f} / {trivial_answers['cpu_ms']:.2f} ms ({ratio:.2f}x)",
                    "≤ 1.5x",
                ),
                ("errors, fail-safe answers", f"{answers['errors']}, {answers['fail_safe']}", ""),
            ],
        )
        return
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
