"""The rule scenarios on the real broker and FerretDB: rules edited and published in MongoDB, the
engine reading them, its clock made fast (a check-in 2 s after delivery) and, for quiet hours, moved
ahead by a night. Each scenario has its own customers; all run through one engine at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.engine.app import Engine
from shared.clock import ShiftedClock
from shared.contract import Event, Topics, decode
from shared.rules import ContactPolicy
from shared.rules import store as rule_store
from shared.rules.builtin import CHECKIN
from shared.rules.guards import in_holdout
from shared.settings import EngineSettings, Settings
from shared.store import INDEXES, Document, ensure_indexes, mongo_client
from tests.factories import event, uid
from tests.integration.conftest import isolated_topics, profiles_known
from tests.kafka_io import BOOTSTRAP, produce, read

pytestmark = pytest.mark.integration
LOW_CSAT = "low-csat-callback"


def zone_at_local_hour(hour: int) -> str:
    """A fixed-offset zone in which it is now ``hour`` o'clock (give or take the current minutes)."""
    offset = (hour - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # POSIX signs


def customer_id(held_out: bool = False) -> str:
    while True:
        cid = uid("c")
        if in_holdout(CHECKIN, cid, 10) == held_out:
            return cid


@dataclass
class World:
    topics: Topics
    db: AsyncDatabase[Document]
    engine: Engine
    clock: ShiftedClock
    people: dict[str, str] = field(default_factory=dict)

    async def actions(self, until: Any = None, settle_s: float = 0) -> list[dict[str, Any]]:
        records = await read(
            self.topics.actions,
            lambda rs: until is None or until([decode(r.value, r.headers).data.model_dump() for r in rs]),
            timeout_s=40,
            settle_s=settle_s,
        )
        return [decode(r.value, r.headers).data.model_dump() for r in records]

    async def decisions(self, until: Any) -> list[dict[str, Any]]:
        records = await read(self.topics.decisions, lambda rs: until([orjson.loads(r.value) for r in rs]), 40)
        return [orjson.loads(r.value) for r in records]


async def publish(db: AsyncDatabase[Document], rule_id: str, **changes: Any) -> None:
    """What a marketer does in the admin: edit the rule in force, save it as a draft, publish it."""
    current = (await rule_store.versions(db, rule_id))[0]["rule"]
    draft = await rule_store.save_draft(db, {**current, **changes}, author="tests")
    await rule_store.publish(db, rule_id, draft.version, author="tests")


def upserted(cid: str, zone: str | None = None, **consents: bool) -> Event:
    """A customer for whom it is now midday, unless another zone is given."""
    return event(
        "customer.upserted", subject=cid, timezone=zone or zone_at_local_hour(12), consents=consents or {"email": True}
    )


def delivered(cid: str) -> list[Event]:
    order = f"o-{cid}"
    return [event("order.placed", subject=cid, order_id=order), event("order.delivered", subject=cid, order_id=order)]


@pytest.fixture(scope="module")
async def world(base_settings: Settings, model_registry: Path) -> AsyncIterator[World]:
    prefix = uid("rules").replace("-", "")
    client = mongo_client(base_settings)
    db = client[prefix]
    await ensure_indexes(db, INDEXES)
    await rule_store.seed(db)
    checkin = (await rule_store.versions(db, CHECKIN))[0]["rule"]
    await publish(db, CHECKIN, triggers=[{**checkin["triggers"][0], "delay": "PT2S"}])
    csat = (await rule_store.versions(db, LOW_CSAT))[0]["rule"]
    await publish(db, LOW_CSAT, enabled=True, guards={**csat["guards"], "contact_policy": True})
    await rule_store.set_policy(db, ContactPolicy(max_messages=1, window=timedelta(days=3), cooldown=timedelta(0)))
    clock = ShiftedClock()
    settings = EngineSettings(
        topic_prefix=prefix,
        group_id=uid("engine"),
        instance_id=uid("i"),
        poll_timeout_ms=50,
        model_dir=model_registry,
        mongo_database=prefix,
        rules_refresh_s=0.5,
    )
    async with isolated_topics(BOOTSTRAP, prefix) as topics:
        engine = Engine(settings, clock=clock)
        running = asyncio.create_task(engine.run())
        try:
            world = World(topics, db, engine, clock)
            await _play(world)
            yield world
        finally:
            engine.stop()
            await asyncio.wait_for(running, 30)
            await client.drop_database(prefix)
            await client.close()


async def _play(world: World) -> None:
    """Every scenario's input at once."""
    p = world.people
    now = datetime.now(UTC)
    p |= {
        "in_time": customer_id(),
        "slips": customer_id(),
        "returned": customer_id(),
        "checkin": customer_id(),
        "capped": customer_id(),
        "held_out": customer_id(held_out=True),
        "night": customer_id(),
        "fallback": customer_id(),
        "no_consent": customer_id(),
        "night_zone": zone_at_local_hour(2),
    }
    promise = {
        "promised_ship_by": (now + timedelta(seconds=2)).isoformat(),
        "promised_delivery_by": (now + timedelta(days=1)).isoformat(),
    }
    slips = f"o-{p['slips']}"
    events = [
        upserted(p["in_time"]),
        event("order.placed", subject=p["in_time"], order_id=f"o-{p['in_time']}", **promise),
        event(
            "order.shipped",
            subject=p["in_time"],
            order_id=f"o-{p['in_time']}",
            estimated_delivery=(now + timedelta(hours=20)).isoformat(),
        ),
        upserted(p["slips"]),
        event("order.placed", subject=p["slips"], order_id=slips, **promise),
        event(
            "order.shipped",
            subject=p["slips"],
            order_id=slips,
            estimated_delivery=(now + timedelta(hours=20)).isoformat(),
        ),
        event(
            "order.eta_changed",
            subject=p["slips"],
            order_id=slips,
            estimated_delivery=(now + timedelta(days=2)).isoformat(),
        ),
        event(
            "order.eta_changed",
            subject=p["slips"],
            order_id=slips,
            estimated_delivery=(now + timedelta(days=3)).isoformat(),
        ),
        upserted(p["returned"]),
        *delivered(p["returned"]),
        event("order.return_requested", subject=p["returned"], order_id=f"o-{p['returned']}"),
        *[e for who in ("checkin", "capped", "held_out") for e in (upserted(p[who]), *delivered(p[who]))],
        upserted(p["night"], zone=p["night_zone"]),
        *delivered(p["night"]),
        upserted(p["fallback"], email=True, sms=False, phone=False),
        event("csat.submitted", subject=p["fallback"], score=1),
        upserted(p["no_consent"], email=False),
        event("csat.submitted", subject=p["no_consent"], score=2),
    ]
    profiles = [e for e in events if e.type == "customer.upserted"]
    await produce(profiles, world.topics)
    await profiles_known(world.engine, [e.subject for e in profiles])
    await produce([e for e in events if e.type != "customer.upserted"], world.topics)
    # the capped customer's low score comes after their check-in went out
    await world.actions(lambda acts: any(a["customer_id"] == p["capped"] for a in acts))
    await produce([event("csat.submitted", subject=p["capped"], score=1)], world.topics)


def mine(items: list[dict[str, Any]], cid: str, rule_id: str | None = None) -> list[dict[str, Any]]:
    return [i for i in items if i["customer_id"] == cid and rule_id in (None, i["rule_id"])]


async def test_shipped_in_time_nothing_and_eta_slipping_twice_one_notice(world: World) -> None:
    p = world.people
    decisions = await world.decisions(lambda ds: len(mine(ds, p["slips"])) >= 2)
    actions = await world.actions(settle_s=3)
    assert mine(actions, p["in_time"]) == []
    (notice,) = mine(actions, p["slips"])
    assert (notice["rule_id"], notice["context"]["reason"]) == ("delay-notice", "eta_past_promise")
    # the second slip finds the order already notified (shipping cancelled the ship-by deadline)
    outcomes = sorted((d["outcome"], d["guard"]) for d in mine(decisions, p["slips"]))
    assert outcomes == [("fired", None), ("suppressed", "reeligibility")]


async def test_checkin_after_delivery_but_not_after_a_return(world: World) -> None:
    p = world.people
    actions = await world.actions(lambda acts: mine(acts, p["checkin"], CHECKIN), settle_s=3)
    (checkin,) = mine(actions, p["checkin"], CHECKIN)
    assert (checkin["template_id"], checkin["channel"], checkin["holdout"]) == ("checkin", "email", False)
    assert mine(actions, p["returned"]) == []
    decisions = await world.decisions(lambda ds: mine(ds, p["returned"]))
    (cancelled,) = mine(decisions, p["returned"], CHECKIN)
    assert (cancelled["outcome"], cancelled["guard"]) == ("cancelled", "exit_event")


async def test_a_holdout_customer_is_recorded_not_sent(world: World) -> None:
    p = world.people
    actions = await world.actions(lambda acts: mine(acts, p["held_out"]))
    (held,) = mine(actions, p["held_out"], CHECKIN)
    assert held["holdout"] is True  # the dispatcher records it and sends nothing


async def test_the_contact_policy_cap_suppresses_the_second_rule_with_its_reason(world: World) -> None:
    p = world.people
    decisions = await world.decisions(lambda ds: mine(ds, p["capped"], LOW_CSAT))
    (capped,) = mine(decisions, p["capped"], LOW_CSAT)
    assert (capped["outcome"], capped["guard"]) == ("suppressed", "frequency_cap")
    assert "1 message per 3 days" in capped["why"]
    assert [a["rule_id"] for a in mine(await world.actions(), p["capped"])] == [CHECKIN]


async def test_without_consent_for_the_channel_it_falls_back_or_is_suppressed(world: World) -> None:
    p = world.people
    actions = await world.actions(lambda acts: mine(acts, p["fallback"]))
    # the rule asks for a phone call; this customer only consented to e-mail, and the rule falls back
    assert [a["channel"] for a in mine(actions, p["fallback"], LOW_CSAT)] == ["email"]
    decisions = await world.decisions(lambda ds: mine(ds, p["no_consent"]))
    assert [(d["outcome"], d["guard"]) for d in mine(decisions, p["no_consent"])] == [("suppressed", "consent")]
    assert mine(await world.actions(), p["no_consent"]) == []


async def test_checkin_falling_in_the_customers_night_is_sent_at_eight(world: World) -> None:
    """Runs last: it moves the engine's clock past the customer's night."""
    p = world.people
    decisions = await world.decisions(lambda ds: mine(ds, p["night"]))
    (deferred,) = mine(decisions, p["night"])
    assert (deferred["outcome"], deferred["guard"]) == ("deferred", "quiet_hours")
    until = datetime.fromisoformat(deferred["defer_until"])
    assert until.astimezone(ZoneInfo(p["night_zone"])).strftime("%H:%M") == "08:00"
    assert mine(await world.actions(), p["night"]) == []
    world.clock.advance(until - world.clock.now() + timedelta(seconds=1))
    actions = await world.actions(lambda acts: mine(acts, p["night"]))
    (checkin,) = mine(actions, p["night"])
    assert checkin["rule_id"] == CHECKIN
    decisions = await world.decisions(lambda ds: len(mine(ds, p["night"])) >= 2)
    fired = next(d for d in mine(decisions, p["night"]) if d["outcome"] == "fired")
    assert datetime.fromisoformat(fired["at"]) >= until
