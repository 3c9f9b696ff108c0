"""Rules, the contact policy and explanations over HTTP.

A saved rule is a draft (a new version); publishing puts it in force and the engine picks it up at
its next refresh (``PROACT_ENGINE_RULES_REFRESH_S``). A rule that does not validate is refused
with 422 and the field that is wrong (``conditions.1.expr``), CEL errors with their position.
Every route needs an API key whose role allows it (``services.admin.access``); changes are in the
audit log under the key's name.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from pydantic import ValidationError

from services.admin.access import Admin, Publisher, Viewer
from services.admin.versioned_routes import add_versioned_routes, refusal
from shared.contract import events as ev
from shared.rules import ContactPolicy, rule_schema
from shared.rules import store as rule_store
from shared.rules.explain import explain
from shared.rules.model import RULE_ID, Reeligibility, RuleChannel
from shared.store import Collections

router = APIRouter(prefix="/v1", tags=["rules"])
RuleId = Annotated[str, Path(pattern=RULE_ID)]


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_id"}


@router.get("/rules/schema")
async def schema(_: Viewer) -> dict[str, Any]:
    """The JSON Schema a rule must follow."""
    return rule_schema()


# the facts a condition can read, offered by the UI's condition builder (any CEL over the facts works)
FACTS = (
    "order.status",
    "order.items",
    "order.total.amount",
    "order.promised_delivery_by",
    "order.estimated_delivery",
    "customer.orders",
    "customer.tickets",
    "customer.locale",
    "customer.has_email",
    "customer.has_phone",
    "customer.last_order_at",
    "customer.purchases",
    "customer.favourite_categories",
    "scores.churn",
    "trigger.kind",
    "event.type",
    "session.page_count",
    "session.duration_s",
    "session.checkout",
    "session.offered",
)


@router.get("/rules/vocabulary")
async def vocabulary(_: Viewer) -> dict[str, Any]:
    """What a rule can name: event types, channels, re-eligibility modes, and the facts conditions read."""
    return {
        "event_types": sorted(ev.EVENT_TYPES),
        "channels": list(get_args(RuleChannel)),
        "reeligibility": list(get_args(Reeligibility.model_fields["mode"].annotation)),
        "fields": list(FACTS),
    }


@router.get("/rules")
async def list_rules(
    request: Request,
    _: Viewer,
    q: Annotated[str | None, Query(max_length=100, description="in the rule's id or name")] = None,
    status: Annotated[
        Literal["published", "draft"] | None, Query(description="has a version in force / a draft")
    ] = None,
    enabled: Annotated[bool | None, Query(description="the version shown is on (or off)")] = None,
    trigger: Annotated[str | None, Query(pattern="^(event|delay|absence|score|session)$")] = None,
    channel: Annotated[str | None, Query(max_length=20)] = None,
) -> list[dict[str, Any]]:
    """Every rule: the version in force (if any) and the newest draft; filtered by the parameters given
    (the version a filter looks at is the draft where there is one, else the one in force)."""
    db = request.app.state.db
    rows: dict[str, dict[str, Any]] = {}
    async for doc in db[Collections.RULES].find({}, {"rule_id": 1, "version": 1, "status": 1, "rule": 1}):
        row = rows.setdefault(doc["rule_id"], {"rule_id": doc["rule_id"], "published": None, "draft": None})
        slot = "published" if doc["status"] == "published" else "draft"
        if row[slot] is None or doc["version"] > row[slot]["version"]:
            rule = doc["rule"]
            row[slot] = {
                "version": doc["version"],
                "name": rule["name"],
                "enabled": rule["enabled"],
                "triggers": [t["kind"] for t in rule["triggers"]],
                "channel": rule["action"]["channel"],
            }
    for row in rows.values():  # a draft older than what is in force is history, not work in progress
        if row["draft"] and row["published"] and row["draft"]["version"] < row["published"]["version"]:
            row["draft"] = None

    def wanted(row: dict[str, Any]) -> bool:
        shown = row["draft"] or row["published"]
        return (
            (not q or q.lower() in row["rule_id"] or q.lower() in shown["name"].lower())
            and (status is None or row[status] is not None)
            and (enabled is None or shown["enabled"] == enabled)
            and (trigger is None or trigger in shown["triggers"])
            and (channel is None or shown["channel"] == channel)
        )

    return sorted(filter(wanted, rows.values()), key=lambda r: r["rule_id"])


@router.get("/rules/{rule_id}")
async def rule_versions(request: Request, rule_id: RuleId, _: Viewer) -> list[dict[str, Any]]:
    """All versions of a rule, newest first."""
    found = await rule_store.versions(request.app.state.db, rule_id)
    if not found:
        raise HTTPException(404, f"no rule {rule_id}")
    return [_public(d) for d in found]


add_versioned_routes(router, rule_store.RULES, "rules", RULE_ID)


@router.post("/rules/{rule_id}/disable")
async def disable(request: Request, rule_id: RuleId, who: Publisher) -> dict[str, Any]:
    """Switch a rule off: its version in force again, off, as a new published version."""
    return await _switch(request, rule_id, False, who.who)


@router.post("/rules/{rule_id}/enable")
async def enable(request: Request, rule_id: RuleId, who: Publisher) -> dict[str, Any]:
    """Switch a rule back on (the version in force, on, as a new published version)."""
    return await _switch(request, rule_id, True, who.who)


async def _switch(request: Request, rule_id: str, on: bool, author: str) -> dict[str, Any]:
    db = request.app.state.db
    in_force = [d for d in await rule_store.versions(db, rule_id) if d["status"] == "published"]
    if not in_force:
        raise HTTPException(404, f"no rule {rule_id} in force")
    current = in_force[0]["rule"]
    if current["enabled"] == on:
        return {"rule_id": rule_id, "version": current["version"], "enabled": on}
    draft = await rule_store.save_draft(db, {**current, "enabled": on}, author=author)
    rule = await rule_store.publish(db, rule_id, draft.version, author=author)
    assert rule is not None
    return {"rule_id": rule_id, "version": rule.version, "enabled": on}


@router.get("/policy")
async def get_policy(request: Request, _: Viewer) -> dict[str, Any]:
    """The contact policy: messages per customer per window across all rules, and the cool-down."""
    return (await rule_store.policy(request.app.state.db)).model_dump(mode="json")


@router.put("/policy")
async def set_policy(request: Request, raw: Annotated[dict[str, Any], Body()], who: Admin) -> dict[str, Any]:
    try:
        value = ContactPolicy.model_validate(raw)
    except ValidationError as exc:
        raise refusal(exc) from None
    await rule_store.set_policy(request.app.state.db, value, author=who.who)
    return value.model_dump(mode="json")


@router.get("/customers/{customer_id}/why")
async def why(
    request: Request,
    _: Viewer,
    customer_id: Annotated[str, Path(min_length=1, max_length=200)],
    rule_id: Annotated[str | None, Query(pattern=RULE_ID)] = None,
    action_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Why did this customer get (or not get) message ``action_id`` / rule ``rule_id``? In plain words,
    with the decision records behind the answer (rule version, inputs, conditions, guard)."""
    db = request.app.state.db
    query: dict[str, Any] = {"customer_id": customer_id}
    if rule_id:
        query["rule_id"] = rule_id
    if action_id:
        query["action_id"] = action_id
    decisions = [d async for d in db[Collections.DECISIONS].find(query).sort("at", -1).limit(limit)]
    actions = [d["action_id"] for d in decisions if d.get("action_id")]
    messages = (
        [
            _public(m)
            async for m in db[Collections.MESSAGES].find(
                {"action_id": {"$in": actions}}, {"action_id": 1, "status": 1, "channel": 1, "updated_at": 1}
            )
        ]
        if actions
        else []
    )
    answer = explain(customer_id, [_public(d) for d in decisions], messages, rule_id, action_id)
    profile = await db[Collections.CUSTOMERS].find_one({"_id": customer_id}, {"churn": 1})
    churn = (profile or {}).get("churn")
    if churn:
        reasons = churn.get("reasons") or []
        words = ", ".join(r.get("label") or r["feature"] for r in reasons)
        churn["summary"] = f"churn risk {churn['score']:.2f}" + (f", raised most by: {words}" if words else "")
    answer["churn"] = churn
    return answer
