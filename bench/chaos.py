"""``make chaos``: steady shop traffic through the whole of proact while the engine, the dispatcher,
the storefront, the Kafka broker and FerretDB are each killed with SIGKILL at a random moment and
started again; afterwards the output is compared with the input.

    python bench/chaos.py [--seconds 150] [--orders-per-s 3] [--seed N]

The traffic has one outcome per order, so counting is exact: a *late* order (promised to ship 3 s
after it is placed, never shipped) must get exactly one delay notice, fired by the engine's durable
ship-by timer; an *on-time* order (shipped at once, promised in 40 s, delivered) must get exactly one
check-in, fired by a 5 s delay timer. Each customer has one order; a third of them can be reached by
SMS only, so their messages go through the webhook provider. Browsing events are posted to the
storefront besides. A real SMTP server and a webhook receiver in this process count what arrives,
by idempotency key.

Reported: events lost (acknowledged by Kafka or by the storefront, then missing from the engine's
projection or the topic), messages delivered twice (at the SMTP server and the webhook receiver),
timers lost (orders without their message), and the time to recover from each kill: until a probe
message (a late order with an immediate deadline, sent just after the kill) arrives, or, for the
storefront, until it accepts events again. The script also plays the supervisor Kubernetes would
be: a service that exits on its own is started again (and counted).

Every event is retried by its source until acknowledged, with the same CloudEvents id, as a shop's
outbox would: the engine's de-duplication makes that harmless.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from cleanup import cleanup  # bench/ is on the path when a benchmark runs as a script
from decide import stack_env, wait_ready
from pymongo.errors import PyMongoError
from report import record

from shared.catalogue import BY_NAME
from shared.contract import Topics, encode, new_event
from shared.contract.topics import ensure_topics
from shared.rules import ContactPolicy
from shared.rules import store as rule_store
from shared.rules.builtin import CHECKIN
from shared.settings import Settings, cache_dir
from shared.store import Collections, mongo_client
from tests.receivers import Receivers

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = "127.0.0.1:9092"
PORTS = {"engine": 18381, "projector": 18382, "dispatcher": 18383, "storefront": 18180}
MODULES = {name: BY_NAME[name].module for name in PORTS}  # the services it runs, from the catalogue
TARGETS = ("engine", "dispatcher", "storefront", "kafka", "ferretdb")
RUN_DIR = cache_dir() / "run"


class Services:
    """The services as processes; the supervisor that starts again one that exited."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env, self.work = env, work
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.exits: Counter[str] = Counter()
        self.paused: set[str] = set()

    def start(self, name: str) -> None:
        with (self.work / f"{name}.log").open("ab") as log:  # appended: a restart keeps what came before
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", MODULES[name]], env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )

    def ready(self, name: str, timeout_s: float = 120) -> None:
        url = f"http://127.0.0.1:{PORTS[name]}/health/ready"
        wait_ready(url, self.procs[name], self.work / f"{name}.log", timeout_s)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    async def supervise(self) -> None:
        while True:
            for name, proc in self.procs.items():
                if name not in self.paused and proc.poll() is not None:
                    self.exits[name] += 1
                    self.start(name)
            await asyncio.sleep(1)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def kill_infra(name: str) -> None:
    pid = int((RUN_DIR / f"{name}.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def start_infra(name: str) -> None:
    subprocess.run(
        ["bash", str(ROOT / "deploy" / "local" / f"{name}.sh"), "start"],  # noqa: S607
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class Shop:
    """The traffic: orders with exactly one expected message each, and browsing through the storefront."""

    def __init__(self, topics: Topics, rng: random.Random) -> None:
        self.topics, self.rng = topics, rng
        self.producer: AIOKafkaProducer | None = None
        self.orders: dict[str, str] = {}  # idempotency key of the expected message -> kind
        self.customers: set[str] = set()
        self.acked = 0
        self.retries = 0
        self.browsing_accepted: set[str] = set()
        self.browsing_retries = 0

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, request_timeout_ms=5000)
        await self.producer.start()

    async def send(self, type_: str, subject: str, data: dict[str, Any]) -> None:
        """Until Kafka acknowledges it: the same event (same id) each time."""
        assert self.producer is not None
        event = new_event(type_, subject, data, source="chaos-shop")
        key, value, headers = encode(event)
        topic = getattr(self.topics, {"customer": "customers", "order": "orders"}[type_.split(".")[0]])
        while True:
            try:
                await asyncio.wait_for(self.producer.send_and_wait(topic, value, key=key, headers=headers), 15)
                self.acked += 1
                return
            except (KafkaError, TimeoutError):
                self.retries += 1
                await asyncio.sleep(0.5)

    async def order(self, late: bool, deadline_s: float = 3.0) -> str:
        cid, oid = f"c-{uuid.uuid4().hex[:10]}", f"o-{uuid.uuid4().hex[:10]}"
        self.customers.add(cid)
        by_sms = self.rng.random() < 1 / 3
        consents = {"email": False, "sms": True} if by_sms else {"email": True}
        profile = {
            "customer_id": cid,
            "email": f"{cid}@example.com",
            "phone": "+48601234567",
            "locale": "pl-PL",
            "timezone": "UTC",
            "consents": consents,
        }
        await self.send("customer.upserted", cid, profile)
        now = datetime.now(UTC)
        money = {"amount": "49.90", "currency": "EUR"}
        placed = {
            "order_id": oid,
            "customer_id": cid,
            "total": money,
            "items": [{"sku": "A1", "name": "Aurora", "qty": 1, "price": money}],
            "promised_ship_by": (now + timedelta(seconds=deadline_s if late else 40)).isoformat(),
            "promised_delivery_by": (now + timedelta(days=2)).isoformat(),
        }
        await self.send("order.placed", cid, placed)
        key = f"delay-notice:{oid}" if late else f"{CHECKIN}:{oid}"
        self.orders[key] = "late" if late else "on time"
        if not late:
            await asyncio.sleep(1)
            await self.send(
                "order.shipped",
                cid,
                {
                    "order_id": oid,
                    "customer_id": cid,
                    "carrier": "DHL",
                    "estimated_delivery": (now + timedelta(days=1)).isoformat(),
                },
            )
            await asyncio.sleep(1)
            await self.send("order.delivered", cid, {"order_id": oid, "customer_id": cid})
        return key

    async def browse(self, client: httpx.AsyncClient) -> None:
        """One page view, posted until the storefront accepts it (the widget retries the same way)."""
        visitor = f"v-{uuid.uuid4().hex[:10]}"
        event_id = str(uuid.uuid4())
        body = {
            "events": [
                {
                    "id": event_id,
                    "type": "page.viewed",
                    "time": datetime.now(UTC).isoformat(),
                    "data": {
                        "visitor_id": visitor,
                        "session_id": f"s-{visitor}",
                        "url": "/p/1",
                        "page_type": "product",
                    },
                }
            ]
        }
        while True:
            try:
                answer = await client.post("/v1/events", json=body)
                if answer.status_code == 202:
                    self.browsing_accepted.add(event_id)
                    return
            except httpx.HTTPError:
                pass
            self.browsing_retries += 1
            await asyncio.sleep(0.5)


async def prepare(settings: Settings) -> None:
    """The shop's rules: a check-in 5 s after delivery, no hold-out, and a contact policy that lets
    every order's one message through."""
    client = mongo_client(settings)
    db = client[settings.mongo_database]
    await rule_store.seed(db)
    current = (await rule_store.versions(db, CHECKIN))[0]["rule"]
    draft = await rule_store.save_draft(
        db,
        {
            **current,
            "triggers": [{"kind": "delay", "after": "order.delivered", "delay": "PT5S"}],
            "guards": {**current["guards"], "holdout_pct": 0, "quiet_hours": None},
        },
        author="chaos",
    )
    await rule_store.publish(db, CHECKIN, draft.version, author="chaos")
    await rule_store.set_policy(db, ContactPolicy(max_messages=1000, cooldown=timedelta(0)), author="chaos")
    await client.close()


async def browsing_on_topic(topics: Topics) -> set[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    ids: set[str] = set()
    try:
        tps = [TopicPartition(topics.browsing, p) for p in range(topics.partitions)]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                ids.update(json.loads(r.value)["id"] for r in records)
    finally:
        await consumer.stop()
    return ids


class ChaosRun:
    """One run, in phases: ``start`` the stack and the receivers, ``traffic`` and ``chaos`` side by
    side for ``--seconds``, ``settle`` until the expected messages are in, ``count`` what arrived,
    was lost or came twice, ``stop``."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str], work: Path, prefix: str) -> None:
        self.args, self.env, self.work, self.prefix = args, env, work, prefix
        self.rng = random.Random(args.seed)
        self.topics = Topics(prefix=prefix)
        self.settings = Settings(topic_prefix=prefix, mongo_database=prefix)
        self.receivers = Receivers()
        self.services = Services(env, work)
        self.shop = Shop(self.topics, self.rng)
        self.recoveries: list[dict[str, Any]] = []
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        await ensure_topics(BOOTSTRAP, self.topics)
        await prepare(self.settings)
        webhook_port = int(self.env["PROACT_WEBHOOK_URL"].rsplit(":", 1)[1].split("/")[0])
        self.servers = self.receivers.serve(int(self.env["PROACT_SMTP_PORT"]), webhook_port)
        for name in MODULES:
            self.services.start(name)
        for name in MODULES:
            self.services.ready(name)
        await self.shop.start()
        self.supervisor = asyncio.create_task(self.services.supervise())

    async def traffic(self) -> None:
        flows: set[asyncio.Task[Any]] = set()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORTS['storefront']}", timeout=5) as client:
            while not self.stopping.is_set():
                for coro in (self.shop.order(late=self.rng.random() < 0.5), self.shop.browse(client)):
                    task = asyncio.create_task(coro)
                    flows.add(task)
                    task.add_done_callback(flows.discard)
                await asyncio.sleep(1 / self.args.orders_per_s)
            await asyncio.gather(*flows)

    async def chaos(self) -> None:
        """Each target once, at a random moment, at least 15 s apart, the last 25 s before the end."""
        span = self.args.seconds - 40
        moments = sorted(
            15 + i * span / len(TARGETS) + self.rng.uniform(0, span / len(TARGETS) - 12) for i in range(len(TARGETS))
        )
        order = list(TARGETS)
        self.rng.shuffle(order)
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORTS['storefront']}", timeout=2) as client:
            for moment, target in zip(moments, order, strict=True):
                await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
                pause = self.rng.uniform(1, 4)
                killed_at = time.monotonic()
                await self._kill_and_restart(target, pause)
                await self._probe(target, client, killed_at)
                recovered = round(time.monotonic() - killed_at, 1)
                self.recoveries.append({"target": target, "down_s": round(pause, 1), "recovered_s": recovered})
                print(f"  killed {target} (down {pause:.1f} s): working again after {recovered} s", flush=True)

    async def _kill_and_restart(self, target: str, pause: float) -> None:
        if target in MODULES:
            self.services.paused.add(target)
            self.services.kill(target)
            await asyncio.sleep(pause)
            self.services.start(target)
            self.services.paused.discard(target)
        else:
            await asyncio.to_thread(kill_infra, target)
            await asyncio.sleep(pause)
            await asyncio.to_thread(start_infra, target)

    async def _probe(self, target: str, client: httpx.AsyncClient, killed_at: float) -> None:
        """Wait until proact works again: the storefront takes an event, or a message that needs
        every part (a late order whose deadline is now) arrives."""
        if target == "storefront":
            probe = str(uuid.uuid4())
            data = {"visitor_id": "v-probe", "session_id": "s-probe", "url": "/", "page_type": "home"}
            body = {
                "events": [{"id": probe, "type": "page.viewed", "time": datetime.now(UTC).isoformat(), "data": data}]
            }
            while True:
                try:
                    if (await client.post("/v1/events", json=body)).status_code == 202:
                        self.shop.browsing_accepted.add(probe)
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        key = await self.shop.order(late=True, deadline_s=0)
        # the receivers count in their own threads: polled, not awaited
        while self.receivers.count(key) == 0 and time.monotonic() - killed_at < 300:  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    async def settle(self) -> None:
        """Every expected message has arrived, or two minutes passed; then 5 s for a late duplicate."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(self.receivers.count(k) == 0 for k in self.shop.orders):  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        await asyncio.sleep(5)
        self.supervisor.cancel()
        await self.shop.producer.stop()  # type: ignore[union-attr]

    async def count(self, elapsed: float) -> dict[str, Any]:
        shop, receivers = self.shop, self.receivers
        missing = sorted(k for k in shop.orders if receivers.count(k) == 0)
        twice = {k: n for k in shop.orders if (n := receivers.count(k)) > 1}
        client = mongo_client(self.settings)
        try:
            projected = await self._projected_orders(client)
            why_missing = [await self._why_missing(client, key) for key in missing[:5]]
        finally:
            await client.close()
        events_lost = sum(1 for c in shop.customers if projected.get(c) != 1)
        on_topic = await browsing_on_topic(self.topics)
        return {
            "date": datetime.now(UTC).date().isoformat(),
            "cores": os.cpu_count(),
            "seconds": round(elapsed),
            "orders": len(shop.orders),
            "events_acknowledged": shop.acked + len(shop.browsing_accepted),
            "source_retries": shop.retries + shop.browsing_retries,
            "messages_expected": len(shop.orders),
            "messages_received": sum(receivers.smtp.values()) + sum(receivers.webhook.values()),
            "by_smtp": sum(receivers.smtp.values()),
            "by_webhook": sum(receivers.webhook.values()),
            "events_lost": events_lost + len(shop.browsing_accepted - on_topic),
            "delivered_twice": len(twice),
            "timers_lost": len(missing),
            "restarted_by_supervisor": dict(self.services.exits),
            "recoveries": self.recoveries,
            "missing": why_missing,
        }

    async def _projected_orders(self, client: Any) -> dict[str, int]:
        """Each customer's order count in the projection (the projector writes behind the engine)."""
        projected: dict[str, int] = {}
        wanted = sorted(self.shop.customers)
        for _ in range(60):
            try:
                cursor = client[self.prefix][Collections.CUSTOMERS].find({"_id": {"$in": wanted}}, {"orders": 1})
                projected = {d["_id"]: d.get("orders", 0) async for d in cursor}
            except PyMongoError:
                projected = {}
            if len(projected) == len(wanted) and all(n == 1 for n in projected.values()):
                break
            await asyncio.sleep(1)
        return projected

    async def _why_missing(self, client: Any, key: str) -> dict[str, Any]:
        """What proact recorded about a message that never arrived."""
        db = client[self.prefix]
        message = await db[Collections.MESSAGES].find_one({"idempotency_key": key}) or {}
        decisions = [
            f"{d.get('outcome')}/{d.get('guard')}"
            async for d in db[Collections.DECISIONS].find({"order_id": key.split(":", 1)[1]})
        ]
        return {"key": key, "message": message.get("status"), "reason": message.get("reason"), "decisions": decisions}

    def stop(self) -> None:
        self.services.stop()
        Receivers.stop(self.servers)


async def run(args: argparse.Namespace, env: dict[str, str], work: Path, prefix: str) -> dict[str, Any]:
    chaos = ChaosRun(args, env, work, prefix)
    await chaos.start()
    began = time.monotonic()
    killing, traffic = asyncio.create_task(chaos.chaos()), asyncio.create_task(chaos.traffic())
    await asyncio.sleep(args.seconds)
    await killing
    chaos.stopping.set()
    await traffic
    await chaos.settle()
    result = await chaos.count(time.monotonic() - began)
    chaos.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--orders-per-s", type=float, default=3)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    if args.seconds < 100:
        parser.error("--seconds must be at least 100: five kills, 15 s apart, and time to recover")
    prefix = f"chaos{uuid.uuid4().hex[:6]}"
    smtp_port, hook_port = 18325, 18326
    with tempfile.TemporaryDirectory(prefix="proact-chaos-") as tmp:
        work = Path(tmp)
        env = stack_env(
            prefix,
            work,
            PORTS,
            PROACT_SMTP_HOST="127.0.0.1",
            PROACT_SMTP_PORT=str(smtp_port),
            PROACT_UNSUBSCRIBE_SECRET=uuid.uuid4().hex,
            PROACT_WEBHOOK_URL=f"http://127.0.0.1:{hook_port}/sms",
            PROACT_WEBHOOK_SECRET=uuid.uuid4().hex,
            PROACT_DISPATCHER_RETRY_BASE_S="0.5",
            PROACT_DISPATCHER_MAX_ATTEMPTS="12",
        )
        print(f"chaos: {args.seconds:.0f} s of traffic, {args.orders_per_s:g} orders/s, seed {args.seed}", flush=True)
        try:
            result = asyncio.run(run(args, env, work, prefix))
        finally:
            for infra in ("kafka", "ferretdb"):  # whatever happened, leave the infrastructure running
                start_infra(infra)
            asyncio.run(cleanup(prefix))
    result["seed"] = args.seed
    print(json.dumps(result, indent=2))
    recovered = ", ".join(f"{r['target']} {r['recovered_s']} s" for r in result["recoveries"])
    record(
        "chaos",
        f"python bench/chaos.py --seconds {args.seconds:.0f} --seed {args.seed}",
        [
            (
                f"{result['orders']} orders, {result['events_acknowledged']:,} events; each of 5 parts killed once",
                f"{result['messages_received']} of {result['messages_expected']} messages",
                "",
            ),
            ("events lost", str(result["events_lost"]), "0"),
            ("messages delivered twice (SMTP, webhook)", str(result["delivered_twice"]), "0"),
            ("timers lost", str(result["timers_lost"]), "0"),
            ("working again after SIGKILL (kill to probe message)", recovered, ""),
        ],
    )
    ok = result["events_lost"] == 0 and result["delivered_twice"] == 0 and result["timers_lost"] == 0
    print("chaos: " + ("no event lost, no message twice, no timer lost" if ok else "FAILED: see the figures above"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
