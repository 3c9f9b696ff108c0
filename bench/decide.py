"""Benchmark: ``POST /v1/decide`` at a fixed request rate, against a trivial FastAPI endpoint served
the same way (uvicorn, one process) in the same run. The storefront runs as its own process with
its session view, rules and intent model, against the local Kafka and FerretDB; the load generator
is a third process, open-loop (requests leave on schedule whether or not earlier ones returned;
latency is counted from the scheduled time, so a stall is not hidden) over keep-alive connections.

    python bench/decide.py [--rate 500] [--seconds 30] [--sessions 2000]
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cleanup import cleanup  # bench/ is on the path when a benchmark runs as a script
from report import record

from shared.catalogue import BY_NAME

ROOT = Path(__file__).resolve().parents[1]
STOREFRONT_PORT, TRIVIAL_PORT = 18080, 18081


# --- the load generator (run as its own process) -------------------------------------------------
async def generate(port: int, path: str, bodies: list[bytes], rate: float, seconds: float, connections: int) -> dict:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = fail_safe = shown = 0
    loop = asyncio.get_running_loop()

    async def one(body: bytes, due: float) -> None:
        nonlocal errors, fail_safe, shown
        reader, writer = await pool.get()
        try:
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            answer = await reader.readexactly(length)
            latencies.append(loop.time() - due)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            fail_safe += b'"fail-safe' in answer
            shown += b'"show":true' in answer
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            pool.put_nowait((reader, writer))

    tasks = []
    start = loop.time() + 0.1
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(bodies[i % len(bodies)], due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(int(len(latencies) * p), len(latencies) - 1)] * 1000

    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50": pct(0.5),
        "p99": pct(0.99),
        "p999": pct(0.999),
        "max": latencies[-1] * 1000,
        "errors": errors,
        "fail_safe": fail_safe,
        "shown": shown,
    }


# --- the orchestration ------------------------------------------------------------------------------
def stack_env(prefix: str, work: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    """The environment of a whole stack (engine, projector, dispatcher, storefront) of its own: topics
    and database under ``prefix``, HTTP on ``ports``, quiet logs, no trace export."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PROACT_TOPIC_PREFIX": prefix,
        "PROACT_MONGO_DATABASE": prefix,
        "PROACT_ENGINE_GROUP_ID": f"{prefix}-engine",
        "PROACT_DISPATCHER_GROUP_ID": f"{prefix}-dispatcher",
        "PROACT_INSTANCE_ID": f"{prefix}-1",
        "PROACT_DISPATCHER_OUTBOX_DIR": str(work / "outbox"),
        "OTEL_TRACES_EXPORTER": "none",
        "PROACT_LOG_LEVEL": "WARNING",
        **{BY_NAME[name].port_env: str(port) for name, port in ports.items()},
        **extra,
    }


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-3000:])
        try:
            if httpx.get(url, timeout=2).is_success:  # 200, or 204 (the dispatcher)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready: {log.read_text()[-2000:]}")


def cpu_s(pid: int) -> float:
    """User and system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(port: int, path: str, bodies_file: Path, rate: float, seconds: float) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--generate", str(port), path, str(bodies_file), str(rate), str(seconds)],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return json.loads(out.stdout)


def seed_sessions(n: int, rng: random.Random) -> list[bytes]:
    """Sessions of all kinds (short, long, in checkout), posted as the widget would; the bodies of
    the decision calls about them."""
    bodies = []
    with httpx.Client(base_url=f"http://127.0.0.1:{STOREFRONT_PORT}", timeout=10) as client:
        for i in range(n):
            visitor, session = f"v-{uuid.uuid4().hex[:10]}", f"s-{i}-{uuid.uuid4().hex[:6]}"
            start = datetime.now(UTC) - timedelta(minutes=rng.choice([2, 10, 40, 70]))
            base = {"visitor_id": visitor, "session_id": session}
            events = [{"type": "session.started", "time": start.isoformat(), "data": {**base, "landing_url": "/"}}]
            for j in range(rng.randint(2, 12)):
                page = rng.choice(["product", "product", "category", "search", "help", "cart", "home"])
                data = {**base, "url": f"/{page}/{j}", "page_type": page, "duration_s": rng.uniform(5, 200)}
                events.append(
                    {"type": "page.viewed", "time": (start + timedelta(seconds=30 * j)).isoformat(), "data": data}
                )
            client.post("/v1/events", json={"events": events}).raise_for_status()
            bodies.append(
                json.dumps({**base, "locale": rng.choice(["en-GB", "pl-PL", "hr-HR", "ru-RU", "lt-LT"])}).encode()
            )
    return bodies


TRIVIAL = """
from fastapi import FastAPI
app = FastAPI()

@app.post("/decide")
async def decide(body: dict) -> dict:
    return {"show": False, "decision_id": "-", "reason": "trivial"}

@app.get("/health/ready")
async def ready() -> dict:
    return {"status": "ready"}
"""


def spawn_trivial(work: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The baseline: a trivial FastAPI endpoint served by uvicorn as the storefront is, on ``TRIVIAL_PORT``."""
    (work / "trivial_app.py").write_text(TRIVIAL)
    command = [sys.executable, "-m", "uvicorn", "trivial_app:app", "--port", str(TRIVIAL_PORT)]
    command += ["--log-level", "warning", "--no-access-log", "--app-dir", str(work)]
    return spawn(command, env, work / "trivial.log")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--sessions", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(11)
    prefix = f"benchdecide{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="proact-bench-") as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PROACT_TOPIC_PREFIX": prefix,
            "PROACT_MONGO_DATABASE": prefix,
            "PROACT_STOREFRONT_HTTP_PORT": str(STOREFRONT_PORT),
            "OTEL_TRACES_EXPORTER": "none",
            "PROACT_LOG_LEVEL": "WARNING",
            "PROACT_MODEL_DIR": str(work / "models"),
            "PROACT_STOREFRONT_EVENTS_PER_IP": "10000000",
            "PROACT_STOREFRONT_NEW_SESSIONS_PER_IP": "10000000",
        }  # one load generator is every visitor
        from services.trainer import training
        from shared.models.registry import Registry

        registry = Registry(work / "models")
        training.train_intent(ROOT / "data/online_shoppers/sessions_feb_oct.csv", work / "intent")
        registry.promote("intent", registry.add(work / "intent"))
        subprocess.run(
            [sys.executable, "-m", "shared.contract", "ensure"], env=env, cwd=ROOT, check=True, capture_output=True
        )
        storefront = spawn([sys.executable, "-m", "services.storefront"], env, work / "storefront.log")
        trivial = spawn_trivial(work, env)
        try:
            wait_ready(f"http://127.0.0.1:{STOREFRONT_PORT}/health/ready", storefront, work / "storefront.log")
            wait_ready(f"http://127.0.0.1:{TRIVIAL_PORT}/health/ready", trivial, work / "trivial.log")
            bodies = seed_sessions(args.sessions, rng)
            rng.shuffle(bodies)
            bodies_file = work / "bodies.json"
            bodies_file.write_text(json.dumps([b.decode() for b in bodies]))
            load(STOREFRONT_PORT, "/v1/decide", bodies_file, args.rate, 3)  # warm-up
            load(TRIVIAL_PORT, "/decide", bodies_file, args.rate, 3)
            c0 = cpu_s(trivial.pid)
            base = load(TRIVIAL_PORT, "/decide", bodies_file, args.rate, args.seconds)
            base["cpu_ms"] = (cpu_s(trivial.pid) - c0) * 1000 / base["requests"]
            c0 = cpu_s(storefront.pid)
            real = load(STOREFRONT_PORT, "/v1/decide", bodies_file, args.rate, args.seconds)
            real["cpu_ms"] = (cpu_s(storefront.pid) - c0) * 1000 / real["requests"]
        finally:
            for proc in (storefront, trivial):
                proc.terminate()
                proc.wait(20)
            asyncio.run(cleanup(prefix))
    day = datetime.now(UTC).date()
    print(
        f"decide benchmark, {args.rate:.0f} requests/s for {args.seconds:.0f} s, {args.sessions} sessions, "
        f"{os.cpu_count()} cores, {day} (Kafka, FerretDB, server and load generator on the same machine)"
    )
    for name, r in (("trivial FastAPI endpoint (baseline)", base), ("POST /v1/decide", real)):
        print(
            f"  {name:38s} {r['rps']:7.0f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms  "
            f"p99.9 {r['p999']:6.2f} ms  max {r['max']:7.2f} ms  errors {r['errors']}  fail-safe {r['fail_safe']}  "
            f"pop-ups {r['shown']}  server CPU {r['cpu_ms']:.2f} ms/request"
        )
    print(f"  ratio decide/trivial: p50 {real['p50'] / base['p50']:.2f}x  p99 {real['p99'] / base['p99']:.2f}x")
    record(
        "decide",
        f"python bench/decide.py --rate {args.rate:.0f} --seconds {args.seconds:.0f}",
        [
            (
                f"POST /v1/decide at {real['rps']:.0f} req/s, p50 / p99 / p99.9",
                f"{real['p50']:.1f} / {real['p99']:.1f} / {real['p999']:.1f} ms",
                "p99 ≤ 10 ms",
            ),
            ("trivial FastAPI endpoint, p50 / p99", f"{base['p50']:.1f} / {base['p99']:.1f} ms", ""),
            ("errors, fail-safe answers", f"{real['errors']}, {real['fail_safe']}", "0"),
            ("server CPU per request", f"{real['cpu_ms']:.2f} ms", ""),
        ],
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        port, path, file, rate, seconds = sys.argv[2:7]
        bodies = [b.encode() for b in json.loads(Path(file).read_text())]
        print(json.dumps(asyncio.run(generate(int(port), path, bodies, float(rate), float(seconds), 32))))
    else:
        main()
