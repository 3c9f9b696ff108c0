"""Plain-words answers to "why did customer C get (or not get) message M / rule R?", built from the
decision log (every evaluation that fired, was suppressed, deferred, held out or cancelled) and the
dispatcher's message records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

Doc = Mapping[str, Any]


def _when(value: Any) -> str:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def sentence(decision: Doc, message: Doc | None = None) -> str:
    """One decision in plain words."""
    who = decision["customer_id"]
    rule = (
        f"“{decision.get('rule_name') or decision['rule_id']}” (rule {decision['rule_id']} v{decision['rule_version']})"
    )
    when = _when(decision["at"])
    about = f" about order {decision['order_id']}" if decision.get("order_id") else ""
    outcome, why = decision["outcome"], decision.get("why") or ""
    if outcome == "fired":
        text = f"On {when} customer {who} was sent {rule}{about} by {decision.get('channel')}: {why}."
        if message is not None:
            text += f" The dispatcher's record says: {message.get('status')}."
        return text
    if outcome == "holdout":
        return f"On {when} customer {who} was due {rule}{about} but is in its hold-out group: recorded, not sent."
    if outcome == "deferred":
        return f"On {when} {rule}{about} for customer {who} was postponed: {why}."
    if outcome == "cancelled":
        return f"On {when} the pending {rule}{about} for customer {who} was cancelled: {why}."
    if outcome == "not_matched":
        return f"On {when} {rule}{about} did not apply to customer {who}: {why}."
    return f"On {when} customer {who} did not get {rule}{about}: the {decision.get('guard')} guard stopped it ({why})."


def explain(
    customer_id: str,
    decisions: Sequence[Doc],
    messages: Sequence[Doc] = (),
    rule_id: str | None = None,
    action_id: str | None = None,
) -> dict[str, Any]:
    """The answer (the latest relevant decision first, in words), every decision in words, and the
    structured records behind them."""
    if action_id:
        chosen = [d for d in decisions if d.get("action_id") == action_id]
    elif rule_id:
        chosen = [d for d in decisions if d["rule_id"] == rule_id]
    else:
        chosen = list(decisions)
    chosen.sort(key=lambda d: str(d["at"]), reverse=True)
    by_action = {m.get("action_id"): m for m in messages}
    lines = [sentence(d, by_action.get(d.get("action_id"))) for d in chosen]
    if lines:
        answer = lines[0]
        if len(lines) > 1:
            answer += f" ({len(lines) - 1} earlier decision{'s' if len(lines) > 2 else ''} below.)"
    elif action_id:
        answer = f"No decision of proact produced message {action_id} for customer {customer_id}."
    elif rule_id:
        answer = (
            f"Rule {rule_id} has not been evaluated for customer {customer_id}: nothing that triggers it has "
            "happened to them (or it was off at the time)."
        )
    else:
        answer = f"No rule has been evaluated for customer {customer_id} yet."
    return {"customer_id": customer_id, "answer": answer, "explanations": lines, "decisions": chosen}
