"""Dry run: "for customer C now, would rule R fire, and why (not)?"

The rule (the version in force, or any version asked for, drafts included) is evaluated by the same
evaluator and guards as the engine's, on what the engine's projection in MongoDB knows of the
customer (profile, consents, counters, contact history, churn score) and of the order the rule is
about (the one named, else the customer's latest). Nothing is sent and nothing is recorded. The
projection is written behind the engine's state (its lag is a metric), so a change of the last
seconds may not be in it yet.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.admin.access import Viewer
from shared.rules import Rule, evaluate
from shared.rules import store as rule_store
from shared.rules.conditions import context
from shared.rules.facts import build as build_facts
from shared.rules.model import RULE_ID, scope_field
from shared.store import Collections, Document

router = APIRouter(prefix="/v1", tags=["rules"])


def _trigger_event(rule: Rule) -> str | None:
    """The event type the rule's first trigger waits for (what the dry run pretends just happened)."""
    trigger = rule.triggers[0]
    return getattr(trigger, "event", None) or getattr(trigger, "after", None)


async def known_facts(
    db: AsyncDatabase[Document], rule: Rule | None, customer_id: str, order_id: str | None, now: datetime
) -> dict[str, Any]:
    """The facts a rule would see for this customer now, from the engine's projection: the customer,
    the order named (else their latest, when the rule is about orders), and the rule's trigger
    pretended to have just happened. 404 naming the field for an unknown customer or order."""
    customer = await db[Collections.CUSTOMERS].find_one({"_id": customer_id}, {"_id": 0, "projected_at": 0})
    if customer is None:
        raise HTTPException(404, {"detail": f"the engine knows no customer {customer_id}", "field": "customer_id"})
    event_type = _trigger_event(rule) if rule else None
    order: dict[str, Any] = {}
    if order_id or (event_type and scope_field(event_type) == "order_id"):
        query = {"_id": order_id} if order_id else {"customer_id": customer_id}
        order = (
            await db[Collections.ORDERS].find_one(
                query, {"_id": 0, "projected_at": 0}, sort=[("placed_at", DESCENDING)]
            )
            or {}
        )
        if order_id and not order:
            raise HTTPException(404, {"detail": f"the engine knows no order {order_id}", "field": "order_id"})
    data = {"customer_id": customer_id, **({"order_id": order["order_id"]} if order else {})}
    return build_facts(
        event={"type": event_type or "dry_run", "id": "dry-run", "time": now.isoformat(), "data": data},
        trigger=rule.triggers[0].kind if rule else "event",
        now=now,
        customer=customer,
        order=order,
    )


@router.get("/rules/{rule_id}/dry-run")
async def dry_run(
    request: Request,
    rule_id: Annotated[str, Path(pattern=RULE_ID)],
    _: Viewer,
    customer_id: Annotated[str, Query(min_length=1, max_length=200)],
    order_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """Would this rule fire for this customer now? The outcome (fired, held out, suppressed by a
    guard, deferred, or not matched), the reason in words, each condition and whether it held."""
    db = request.app.state.db
    docs = await rule_store.versions(db, rule_id)
    if version is not None:
        docs = [d for d in docs if d["version"] == version]
    else:  # the version in force, else the newest draft
        docs = [d for d in docs if d["status"] == "published"][:1] or docs[:1]
    if not docs:
        raise HTTPException(404, f"no rule {rule_id}" + (f" version {version}" if version else ""))
    rule = Rule.model_validate(docs[0]["rule"])
    now = datetime.now(UTC)
    facts = await known_facts(db, rule, customer_id, order_id, now)
    order = facts["order"]
    scope = str(order.get("order_id") or customer_id)
    verdict = evaluate(rule, context(facts), facts["customer"], scope, now, await rule_store.policy(db))
    return {
        "rule_id": rule.rule_id,
        "version": rule.version,
        "customer_id": customer_id,
        "order_id": order.get("order_id"),
        "at": now.isoformat(),
        "outcome": verdict.outcome,
        "would_send": verdict.outcome == "fired",
        "why": verdict.why,
        "guard": verdict.guard,
        "channel": verdict.channel,
        "conditions": verdict.conditions,
        "defer_until": verdict.defer_until.isoformat() if verdict.defer_until else None,
    }
