"""A demo shop: customers, orders (some late), browsing sessions, tickets and repairs, sent as
CloudEvents; and its customers and support team, who answer what proact sends.

Orders, customers, tickets and repair cases go straight to Kafka, as a shop's back end would send
them; browsing goes through the storefront API, as the widget would. Deadlines are seconds apart so
that a newcomer sees a delay notice within a minute, and, as a marketer would in the admin, the shop
shortens the post-purchase check-in from 3 days to 30 seconds (a new, published rule version), so
check-ins, returns that cancel them and check-ins postponed by quiet hours show up too.

The loops close as they would in a shop: customers click a rating in some check-in e-mails (read
from the local SMTP catcher's files, ``PROACT_MAIL_DIR``), now and then with a comment, and a low
one brings the low-CSAT callback offer; the support team works the callback queue through the
admin API (claims a request, records the call) and leaves some for later, which then get the
apology; a repair walks from received to returned with a message at each step that matters.
``python deploy/demo/shop.py --help`` for options.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from shared.contract import EVENT_TYPES, Event, Topics, encode, new_event
from shared.rules import Rule
from shared.rules.builtin import BUILTIN, CHECKIN
from shared.settings import AdminSettings, StorefrontSettings
from shared.telemetry import inject_headers, setup_tracing

tracer = trace.get_tracer("demo-shop")

SOURCE = "demo-shop/backend"
CUSTOMERS = [
    ("c-anna", "pl-PL", "Europe/Warsaw", {"email": True, "sms": True}),
    ("c-bruno", "de-DE", "Europe/Berlin", {"email": True}),
    ("c-chloe", "fr-FR", "Europe/Paris", {"sms": True}),
    ("c-dev", "en-GB", "Europe/London", {"email": True, "push": True}),
    ("c-eva", "pl-PL", "Europe/Warsaw", {}),  # no consent: proact must not write to her
    ("c-farid", "en-US", "America/New_York", {"email": True}),
    ("c-greta", "sv-SE", "Europe/Stockholm", {"email": True}),
    ("c-hugo", "es-ES", "Europe/Madrid", {"push": True}),
]
PAGES = [
    ("home", "/"),
    ("category", "/c/headphones"),
    ("product", "/p/aurora-x2"),
    ("search", "/search?q=usb"),
    ("product", "/p/nimbus-7"),
    ("help", "/help/shipping"),
    ("cart", "/cart"),
    ("info", "/about"),
]
# what the demo shop sells: order.placed carries the items, as a shop's back end would send them
CATALOGUE = [
    {
        "sku": "AUR-X2",
        "name": "Aurora X2 headphones",
        "category": "headphones",
        "qty": 1,
        "price": {"amount": "129.00", "currency": "EUR"},
    },
    {
        "sku": "NIM-7",
        "name": "Nimbus 7 earbuds",
        "category": "headphones",
        "qty": 1,
        "price": {"amount": "59.90", "currency": "EUR"},
    },
    {
        "sku": "USB-C2",
        "name": "USB-C cable, 2 m",
        "category": "cables",
        "qty": 2,
        "price": {"amount": "9.90", "currency": "EUR"},
    },
]
# a customer who stopped buying months ago (not one of those above, who buy during the demo)
SILENT = ("c-ines", "lt-LT", "Europe/Vilnius", {"email": True})
# a buying visit goes through the shop's catalogue to the cart and checkout
BUYING_PAGES = [("category", "/c/headphones"), ("product", "/p/aurora-x2"), ("product", "/p/nimbus-7")]


def visit(
    rng: random.Random, base: dict[str, str], kind: str, start: datetime, end: datetime, customer: str | None
) -> list[dict[str, Any]]:
    """The browsing events of one visit (``/v1/events``'s batch format), from ``start``: a short
    browse, a lingering one that lasts until ``end``, or a signed-in customer's purchase."""
    started = {**base, "landing_url": "/", "traffic_source": "search"}
    if customer:
        started["customer_id"] = customer
    events: list[dict[str, Any]] = [{"type": "session.started", "time": start.isoformat(), "data": started}]
    if kind == "buy":
        pages = [rng.choice(PAGES[:4]), *rng.sample(BUYING_PAGES, rng.randint(1, 3)), ("cart", "/cart")]
        pages.append(("checkout", "/checkout"))
    else:
        pages = rng.sample(PAGES, rng.randint(5, 8) if kind == "linger" else rng.randint(1, 6))
    step = (end - start) / (len(pages) + 1) if kind == "linger" else timedelta(seconds=20)
    for i, (page_type, url) in enumerate(pages):
        at = start + step * (i + 1)
        duration = round(step.total_seconds() if kind == "linger" else rng.uniform(3, 90), 1)
        data = {**base, "url": url, "page_type": page_type, "duration_s": duration}
        events.append({"type": "page.viewed", "time": at.isoformat(), "data": data})
    if kind == "buy":
        cart = {"amount": f"{rng.uniform(20, 200):.2f}", "currency": "EUR"}
        at = start + step * (len(pages) + 1)
        events.append({"type": "checkout.started", "time": at.isoformat(), "data": {**base, "cart_value": cart}})
    events.append({"type": "session.heartbeat", "data": base})
    return events


def history(sessions: int, seed: int, end: datetime, days: float = 30) -> list[Event]:
    """``days`` (a month) of the demo shop's recorded visits before ``end`` and the orders of the
    buying ones, as CloudEvents: what the trainer computes the demo's page statistics from
    (``--export-history``)."""
    rng = random.Random(seed)
    out: list[Event] = []
    for n in range(sessions):
        start = end - timedelta(days=days) + timedelta(seconds=rng.uniform(0, days * 86400))
        base = {"visitor_id": f"v-h{n:05d}", "session_id": f"s-h{n:05d}"}
        kind = rng.choices(["browse", "linger", "buy"], weights=[5, 3, 2])[0]
        customer = rng.choice(CUSTOMERS)[0] if kind == "buy" else None
        last = start
        for e in visit(rng, base, kind, start, start + timedelta(minutes=rng.uniform(55, 75)), customer):
            last = datetime.fromisoformat(e["time"]) if "time" in e else last
            out.append(new_event(e["type"], base["visitor_id"], e["data"], source=SOURCE, time=last))
        if customer:
            order = {
                "order_id": f"o-h{n:05d}",
                "customer_id": customer,
                "total": {"amount": f"{rng.uniform(20, 200):.2f}", "currency": "EUR"},
            }
            out.append(new_event("order.placed", customer, order, source=SOURCE, time=last + timedelta(seconds=30)))
    return out


# a rating link in a check-in's text part: its token and score
RATING_LINK = re.compile(r"/ratings\?token=([A-Za-z0-9_.-]+)&score=(\d+)")


def rating_tokens(folder: Path, seen: set[str]) -> list[str]:
    """The rating token of each e-mail with rating links the SMTP catcher kept since the last call."""
    tokens = []
    for path in sorted(folder.glob("*.eml")) if folder.is_dir() else []:
        if path.name in seen:
            continue
        seen.add(path.name)
        body = message_from_bytes(path.read_bytes(), policy=policy.default).get_body(("plain",))
        found = RATING_LINK.findall(body.get_content() if body is not None else "")  # type: ignore[union-attr]
        if found:
            tokens.append(found[0][0])
    return tokens


class Agent:
    """The shop's support team at the admin's callback queue: claims a request, calls, records it."""

    def __init__(self, admin_url: str, key: str) -> None:
        self.http = httpx.AsyncClient(base_url=admin_url, timeout=10, headers={"Authorization": f"Bearer {key}"})

    async def call(self, request_id: str, rng: random.Random) -> None:
        for _ in range(20):  # the dispatcher queues it a moment after the storefront took it
            if (await self.http.post(f"/v1/callbacks/{request_id}/claim")).status_code != 404:
                break
            await asyncio.sleep(1)
        outcome = rng.choice(["called", "resolved", "no_answer"])
        answer = await self.http.post(f"/v1/callbacks/{request_id}/outcome", json={"outcome": outcome})
        if answer.is_success:
            print(f"demo shop: the support team recorded a callback: {outcome.replace('_', ' ')}", flush=True)


class Shop:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        http: httpx.AsyncClient,
        topics: Topics,
        rng: random.Random,
        agent: Agent | None = None,
    ):
        self.producer, self.http, self.topics, self.rng, self.agent = producer, http, topics, rng, agent
        self.sent = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def emit(
        self, type_: str, subject: str, data: dict[str, Any], time: datetime | None = None, id: str | None = None
    ) -> None:
        event = new_event(type_, subject, data, source=SOURCE, time=time, id=id)
        key, value, headers = encode(event)
        topic = getattr(self.topics, EVENT_TYPES[type_][0])
        # the shop's back end traces what it sends, so each journey starts here
        with tracer.start_as_current_span(
            f"{topic} publish", kind=SpanKind.PRODUCER, attributes={"cloudevents.event_type": type_}
        ):
            await self.producer.send_and_wait(topic, value, key=key, headers=inject_headers(headers))
        self.sent += 1

    def later(self, seconds: float, type_: str, subject: str, data: dict[str, Any]) -> None:
        self.soon(seconds, self.emit(type_, subject, data))

    def soon(self, seconds: float, work: Any) -> None:
        async def run() -> None:
            await asyncio.sleep(seconds)
            await work

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def rate_checkins(self, folder: Path, seen: set[str]) -> None:
        """Customers who got a check-in e-mail since the last look click a rating in some of them (as
        the rating page does, a POST of the link's token and score), now and then with a comment."""
        for token in await asyncio.to_thread(rating_tokens, folder, seen):
            if self.rng.random() < 0.3:  # not answered
                continue
            score = self.rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 5])[0]
            form = {"token": token, "score": str(score)}
            if score <= 2:
                form["comment"] = "The parcel arrived damaged."
            response = await self.http.post("/ratings", data=form, headers={"Accept": "application/json"})
            if response.is_success:
                print(f"demo shop: a customer rated a check-in {score} of 5", flush=True)

    async def customers(self) -> None:
        for cid, locale, tz, consents in CUSTOMERS:
            await self.emit(
                "customer.upserted",
                cid,
                {
                    "customer_id": cid,
                    "email": f"{cid[2:]}@demo-shop.example",
                    "locale": locale,
                    "timezone": tz,
                    "consents": consents,
                },
            )

    async def silent_customer(self) -> None:
        """A customer who bought twice about seven months ago and has said nothing since: the engine's
        churn refresh scores her again as her silence grows, and the win-back reaches her. The events'
        ids are fixed, so a second start of the demo sends nothing new (the engine drops repeats)."""
        cid = SILENT[0]
        await self.emit(
            "customer.upserted",
            cid,
            {
                "customer_id": cid,
                "email": f"{cid[2:]}@demo-shop.example",
                "locale": SILENT[1],
                "timezone": SILENT[2],
                "consents": SILENT[3],
            },
            time=datetime.now(UTC) - timedelta(days=400),
            id=f"demo-{cid}-profile",
        )
        for k, days_ago in enumerate((221, 214)):
            at = datetime.now(UTC) - timedelta(days=days_ago)
            order = {
                "order_id": f"o-ines-{k}",
                "customer_id": cid,
                "total": {"amount": "64.90", "currency": "EUR"},
                "items": [CATALOGUE[1 + k]],
            }
            await self.emit("order.placed", cid, order, time=at, id=f"demo-{cid}-order-{k}")

    async def order(self, customer_id: str | None = None) -> None:
        cid = customer_id or self.rng.choice(CUSTOMERS)[0]
        oid = f"o-{uuid.uuid4().hex[:8]}"
        now = datetime.now(UTC)
        ship_in = self.rng.uniform(15, 35)
        await self.emit(
            "order.placed",
            cid,
            {
                "order_id": oid,
                "customer_id": cid,
                "total": {"amount": f"{self.rng.uniform(15, 300):.2f}", "currency": "EUR"},
                "items": [self.rng.choice(CATALOGUE)],
                "promised_ship_by": (now + timedelta(seconds=ship_in)).isoformat(),
                "promised_delivery_by": (now + timedelta(seconds=ship_in + 60)).isoformat(),
            },
        )
        fate = self.rng.random()
        ref = {"order_id": oid, "customer_id": cid}
        if fate < 0.55:  # ships in time, then arrives
            self.later(ship_in * 0.5, "order.shipped", cid, {**ref, "carrier": "DHL"})
            self.later(ship_in * 0.5 + 20, "order.delivered", cid, ref)
            if self.rng.random() < 0.25:  # and goes back: the return cancels the check-in
                self.later(ship_in * 0.5 + 35, "order.return_requested", cid, {**ref, "reason": "too small"})
        elif fate < 0.7:  # ships in time, but the carrier's ETA slips past the promise, twice
            self.later(ship_in * 0.5, "order.shipped", cid, {**ref, "carrier": "DPD"})
            late = (now + timedelta(seconds=ship_in + 600)).isoformat()
            self.later(
                ship_in * 0.5 + 5,
                "order.eta_changed",
                cid,
                {**ref, "estimated_delivery": late, "reason": "hub delay"},
            )
            later = (now + timedelta(seconds=ship_in + 900)).isoformat()
            self.later(
                ship_in * 0.5 + 10,
                "order.eta_changed",
                cid,
                {**ref, "estimated_delivery": later, "reason": "weather"},
            )
        elif fate < 0.8:  # cancelled before the deadline
            self.later(ship_in * 0.3, "order.cancelled", cid, {**ref, "reason": "changed mind"})
        # else: the warehouse forgets it, and the promise passes

    async def session(self) -> None:
        """A visit: most are short; some linger for an hour (they started before the demo did) and are
        offered a callback, which some accept; some are signed-in customers who go to checkout and
        buy, and are offered nothing."""
        visitor = f"v-{uuid.uuid4().hex[:8]}"
        session = f"s-{uuid.uuid4().hex[:8]}"
        base = {"visitor_id": visitor, "session_id": session}
        kind = self.rng.choices(["browse", "linger", "buy"], weights=[5, 3, 2])[0]
        now = datetime.now(UTC)
        start = now - (timedelta(minutes=self.rng.uniform(55, 75)) if kind == "linger" else timedelta(0))
        customer = self.rng.choice(CUSTOMERS)[0] if kind == "buy" else None
        events = visit(self.rng, base, kind, start, now, customer)
        response = await self.http.post("/v1/events", json={"events": events})
        response.raise_for_status()
        self.sent += len(events)
        if customer:
            await self.order(customer)
        locale = self.rng.choice(["en-GB", "pl-PL", "hr-HR", "lt-LT", "ru-RU"])
        answer = (await self.http.post("/v1/decide", json={**base, "locale": locale})).raise_for_status().json()
        shown = "pop-up" if answer["show"] else "none"
        print(f"demo shop: decide for a {kind} visit: {shown} ({answer['reason'][:90]})", flush=True)
        if answer["show"]:
            await self.popup(base, answer)

    async def popup(self, base: dict[str, str], answer: dict[str, Any]) -> None:
        """The widget shows the pop-up; the visitor accepts and leaves a number, or dismisses it."""
        ref = {**base, "decision_id": answer["decision_id"], "rule_id": answer.get("rule_id")}
        await self.http.post("/v1/outcomes", json={"type": "popup.shown", **ref})
        if self.rng.random() < 0.5:
            await self.http.post("/v1/outcomes", json={"type": "popup.dismissed", **ref})
            return
        await self.http.post("/v1/outcomes", json={"type": "popup.accepted", **ref})
        phone = f"+4860{self.rng.randrange(10**7):07d}"
        callback = {
            "visitor_id": base["visitor_id"],
            "session_id": base["session_id"],
            "decision_id": answer["decision_id"],
            "phone": phone,
            "consent": True,
            "preferred_time": "after 17:00",
            "locale": self.rng.choice(["en-GB", "pl-PL", "hr-HR", "lt-LT", "ru-RU"]),
            "timezone": "Europe/Warsaw",
        }
        accepted = (await self.http.post("/v1/callbacks", json=callback)).raise_for_status().json()
        print(f"demo shop: the widget says: {accepted['message']}", flush=True)
        if self.agent is not None and self.rng.random() < 0.6:  # the rest wait past their promise
            self.soon(self.rng.uniform(5, 25), self.agent.call(accepted["request_id"], self.rng))

    async def repair(self) -> None:
        """A repair case: opened (three days ago, for the demo, with the promise a day and 40 s away, so
        the warning before the promise comes within a minute), diagnosed, waiting for parts, ready,
        returned, closed: the customer hears when it is received, before the promise, and when ready."""
        cid = self.rng.choice(CUSTOMERS)[0]
        ref = {"case_id": f"k-{uuid.uuid4().hex[:6]}", "customer_id": cid}
        now = datetime.now(UTC)
        promised = (now + timedelta(days=1, seconds=40)).isoformat()
        await self.emit("service_case.opened", cid, {**ref, "promised_by": promised}, time=now - timedelta(days=3))
        for after, status in ((10, "diagnosed"), (20, "waiting_for_parts"), (60, "ready"), (75, "returned")):
            self.later(after, "service_case.updated", cid, {**ref, "status": status})
        self.later(80, "service_case.completed", cid, {**ref, "status": "closed"})

    async def ticket(self) -> None:
        cid = self.rng.choice(CUSTOMERS)[0]
        await self.emit(
            "ticket.opened",
            cid,
            {
                "ticket_id": f"t-{uuid.uuid4().hex[:6]}",
                "customer_id": cid,
                "channel": "email",
                "topic": "where is my order",
            },
        )


async def demo_enable_winback(admin_url: str, key: str) -> None:
    """Switch the churn-risk win-back on (it is off until a marketing team decides to use it), through
    the admin API, as a publisher would."""
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=admin_url, timeout=10, headers=auth) as admin:
        versions = (await admin.get("/v1/rules/churn-winback")).raise_for_status().json()
        in_force = next(v for v in versions if v["status"] == "published")["rule"]
        if not in_force["enabled"]:
            (await admin.post("/v1/rules/churn-winback/enable")).raise_for_status()
            print("demo shop: churn-winback switched on", flush=True)


async def demo_policy(admin_url: str, key: str) -> None:
    """A contact policy for a demo that squeezes days into minutes (an admin's change, through the
    admin API): with the default three messages a week, the delay notices of the first minute would
    leave no room for a check-in, so nobody could rate one."""
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=admin_url, timeout=10, headers=auth) as admin:
        policy = (await admin.get("/v1/policy")).raise_for_status().json()
        demo = {**policy, "max_messages": 30, "window": "P1D", "cooldown": "PT20S"}
        if policy != demo:
            (await admin.put("/v1/policy", json=demo)).raise_for_status()
            print("demo shop: contact policy for the demo: 30 messages a day, 20 s apart", flush=True)


async def demo_speed_checkin(admin_url: str, delay: str, key: str) -> None:
    """Publish a version of the check-in rule with a delay of seconds, through the admin API (as a
    publisher, with the API key ``make run`` made): proact's built-in check-in with the demo's delay,
    so a machine that ran an older demo gets the check-in of this version (its rating links)."""
    auth = {"Authorization": f"Bearer {key}"}
    builtin = next(r for r in BUILTIN if r["rule_id"] == CHECKIN)
    wanted = Rule.model_validate({**builtin, "triggers": [{**builtin["triggers"][0], "delay": delay}]})
    async with httpx.AsyncClient(base_url=admin_url, timeout=10, headers=auth) as admin:
        versions = (await admin.get(f"/v1/rules/{CHECKIN}")).raise_for_status().json()
        in_force = Rule.model_validate(next(v for v in versions if v["status"] == "published")["rule"])
        if in_force.model_copy(update={"version": 1}) == wanted:
            return
        body = wanted.model_dump(mode="json")
        draft = (await admin.put(f"/v1/rules/{CHECKIN}", json=body)).raise_for_status().json()
        (await admin.post(f"/v1/rules/{CHECKIN}/versions/{draft['version']}/publish")).raise_for_status()
        print(f"demo shop: {CHECKIN} now {delay} after delivery (version {draft['version']})", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=0, help="seconds to run; 0 runs until stopped")
    parser.add_argument("--orders-per-minute", type=float, default=12)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--checkin-delay", default="PT30S", help="the check-in's delay for the demo; '' leaves it")
    parser.add_argument("--storefront-url", default=None, help="default: the storefront's host and port settings")
    parser.add_argument("--admin-url", default=None, help="default: the admin's host and port settings")
    parser.add_argument(
        "--export-history",
        type=Path,
        default=None,
        help="write a month of recorded visits and orders as CloudEvents NDJSON to this file, then stop",
    )
    parser.add_argument("--history-sessions", type=int, default=3000)
    args = parser.parse_args()
    if args.export_history:
        events = history(args.history_sessions, args.seed or 1, datetime.now(UTC))
        args.export_history.write_bytes(b"".join(encode(e)[1] + b"\n" for e in events))
        print(f"demo shop: {len(events)} recorded events written to {args.export_history}")
        return
    settings = StorefrontSettings()
    admin = AdminSettings()
    provider = setup_tracing("demo-shop", settings)
    rng = random.Random(args.seed)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True)
    await producer.start()
    base_url = args.storefront_url or f"http://{settings.http_host}:{settings.http_port}"
    key = os.environ.get("PROACT_ADMIN_KEY")
    admin_url = args.admin_url or f"http://{admin.http_host}:{admin.http_port}"
    if args.checkin_delay and key:
        await demo_speed_checkin(admin_url, args.checkin_delay, key)
    if key:
        await demo_enable_winback(admin_url, key)
        await demo_policy(admin_url, key)
    elif args.checkin_delay:
        print("demo shop: no PROACT_ADMIN_KEY, the check-in keeps its delay", flush=True)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        agent = Agent(admin_url, key) if key else None
        shop = Shop(producer, http, Topics.from_settings(settings), rng, agent)
        mail_dir = Path(os.environ["PROACT_MAIL_DIR"]) if os.environ.get("PROACT_MAIL_DIR") else None
        mails_seen = {p.name for p in mail_dir.glob("*.eml")} if mail_dir and mail_dir.is_dir() else set()
        try:
            await shop.customers()
            await shop.silent_customer()
            started = asyncio.get_running_loop().time()
            tick = 60 / args.orders_per_minute
            while not args.duration or asyncio.get_running_loop().time() - started < args.duration:
                await shop.order()
                await shop.session()
                if rng.random() < 0.2:
                    await shop.ticket()
                if rng.random() < 0.1:
                    await shop.repair()
                if mail_dir is not None:
                    await shop.rate_checkins(mail_dir, mails_seen)
                await asyncio.sleep(tick)
            if shop.tasks:
                await asyncio.gather(*shop.tasks)
        finally:
            for task in shop.tasks:
                task.cancel()
            await producer.stop()
            provider.shutdown()
    print(f"demo shop: {shop.sent} events sent")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:  # Ctrl-C in make run: the shop closes quietly
        pass
