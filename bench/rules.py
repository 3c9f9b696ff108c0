"""Benchmark: rule evaluation in the engine's code path with 10, 100 and 1,000 active rules.

A realistic mix of customer events (orders, tickets, surveys, message engagement) for 2,000
customers goes through the engine's handlers and rule runner on in-memory state, as in the engine
but without Kafka. Rules are spread over the event types a team would use, each with CEL
conditions over the event, the customer and the order. Printed per rule count: events/s, rule
evaluations/s, and the cost of one event relative to the same events with no rules at all
(the baseline, measured in the same run).

    python bench/rules.py [--events 20000]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from datetime import UTC, datetime, timedelta

from report import record  # bench/ is on the path when a benchmark runs as a script

from shared.contract import Event, new_event
from shared.engine.handlers import handle
from shared.engine.runner import RuleBook, RuleRunner
from shared.engine.state import PartitionState
from shared.rules import ContactPolicy, Rule, RuleSet

TRIGGERS = [
    "order.placed",
    "order.shipped",
    "order.eta_changed",
    "order.delivered",
    "order.cancelled",
    "order.return_requested",
    "ticket.opened",
    "ticket.updated",
    "ticket.resolved",
    "csat.submitted",
    "nps.submitted",
    "message.opened",
    "message.clicked",
    "service_case.opened",
    "customer.upserted",
]
CONDITIONS = [
    "customer.orders >= {n}",
    'count_since(customer.ticket_history, now - duration("720h")) > {n}',
    'has(order.status) && order.status != "cancelled"',
    "customer.tickets < {n} || customer.orders > {n}",
    '"email" in customer.consents && customer.consents.email',
]


def rules(count: int, rng: random.Random, triggers: list[str] = TRIGGERS) -> list[Rule]:
    out = []
    for i in range(count):
        conditions = [
            {"expr": rng.choice(CONDITIONS).format(n=rng.randrange(1, 6))} for _ in range(rng.randrange(1, 4))
        ]
        out.append(
            Rule.model_validate(
                {
                    "rule_id": f"bench-{i}",
                    "name": f"bench {i}",
                    "triggers": [{"kind": "event", "event": triggers[i % len(triggers)]}],
                    "conditions": conditions,
                    "action": {"template_id": "t", "priority": rng.randrange(100)},
                    "guards": {"cooldown": "P1D", "contact_policy": rng.random() < 0.5},
                }
            )
        )
    return out


def workload(n: int, rng: random.Random) -> list[Event]:
    now = datetime.now(UTC)
    customers = [f"c{i}" for i in range(2000)]
    out = [
        new_event(
            "customer.upserted",
            c,
            {"customer_id": c, "email": f"{c}@example.com", "consents": {"email": True}},
            source="bench",
        )
        for c in customers
    ]
    while len(out) < n:
        c = rng.choice(customers)
        order = f"o{rng.randrange(20000)}"
        r = rng.random()
        if r < 0.3:
            data = {
                "order_id": order,
                "customer_id": c,
                "total": {"amount": "20.00", "currency": "EUR"},
                "promised_ship_by": (now + timedelta(days=2)).isoformat(),
            }
            out.append(new_event("order.placed", c, data, source="bench"))
        elif r < 0.5:
            kind = rng.choice(["order.shipped", "order.delivered", "order.eta_changed"])
            data = {"order_id": order, "customer_id": c, "estimated_delivery": (now + timedelta(days=3)).isoformat()}
            out.append(new_event(kind, c, data, source="bench"))
        elif r < 0.7:
            data = {"ticket_id": f"t{rng.randrange(5000)}", "customer_id": c, "order_id": order}
            out.append(new_event(rng.choice(["ticket.opened", "ticket.resolved"]), c, data, source="bench"))
        elif r < 0.8:
            out.append(new_event("csat.submitted", c, {"customer_id": c, "score": rng.randrange(1, 6)}, source="bench"))
        else:
            out.append(new_event("message.opened", c, {"customer_id": c, "action_id": "a"}, source="bench"))
    return out


def run(events: list[Event], rule_set: RuleSet) -> tuple[float, int]:
    """Seconds for the events through handlers and rules, and the rule evaluations made."""
    state, runner = PartitionState(0, seen_ids_per_key=16), RuleRunner(RuleBook(rule_set))
    now = datetime.now(UTC)
    started = time.perf_counter()
    for e in events:
        handle(state, e, now, rules=runner)
        state.take_decisions()
        state.take_changes()
    return time.perf_counter() - started, sum(runner.evaluations.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    rng = random.Random(7)
    events = workload(args.events, rng)
    day = datetime.now(UTC).date()
    print(f"rules benchmark, {len(events):,} customer events, one process, {os.cpu_count()} cores, {day}")
    base, _ = run(events, RuleSet([], ContactPolicy()))
    print(f"  no rules (baseline):       {len(events) / base:10,.0f} events/s")
    figures = [("events/s with no rules (baseline)", f"{len(events) / base:,.0f}", "")]
    for count in (10, 100, 1000):
        rule_set = RuleSet(rules(count, rng), ContactPolicy())
        seconds, evaluations = run(events, rule_set)
        figures.append((f"events/s with {count:,} rules", f"{len(events) / seconds:,.0f}", ""))
        print(
            f"  {count:5,} rules: {len(events) / seconds:10,.0f} events/s  {evaluations / seconds:10,.0f} evaluations/s"
            f"  {evaluations / len(events):6.1f} evaluations/event  cost/event {seconds / base:5.1f}x baseline"
        )
    # the index at work: rules on event types that this traffic does not have cost it nothing
    elsewhere = RuleSet(rules(1000, rng, ["service_case.updated", "service_case.completed", "nps.submitted"]))
    seconds, _ = run(events, elsewhere)
    print(
        f"  1,000 rules on other event types: {len(events) / seconds:10,.0f} events/s"
        f"  cost/event {seconds / base:5.1f}x baseline"
    )
    record("rules", f"python bench/rules.py --events {args.events}", figures)


if __name__ == "__main__":
    main()
