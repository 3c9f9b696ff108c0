"""Conditions are CEL expressions (Common Expression Language, via ``common-expression-language``,
a binding of the Rust implementation): data that is parsed and compiled once, never Python ``eval``.

What a condition can see (the *facts*: ``event``, ``customer``, ``order``, ``case``, ``session``,
``scores``, ``trigger``, ``now``) is built by ``shared.rules.facts``, the same for every evaluator.

Absent records are empty maps, so ``has(order.status)`` is the way to test for one. Timestamps in
records are ISO 8601 strings: ``timestamp(order.promised_delivery_by)``. One function is added to
CEL's own: ``count_since(list, timestamp)`` counts the items of a history (timestamps, or objects
with an ``at``) at or after a time, so "more than 2 tickets in 30 days" is
``count_since(customer.ticket_history, now - duration("720h")) > 2``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import cel

from shared.rules import limits

VARIABLES = frozenset({"event", "customer", "order", "case", "session", "scores", "trigger", "now"})
FUNCTIONS = {"count_since"}


class ConditionError(ValueError):
    """A condition that cannot be used, with the position of the error when CEL gives one."""


def count_since(items: Iterable[Any], since: datetime) -> int:
    count = 0
    for item in items:
        raw = item.get("at") if isinstance(item, dict) else item
        if not isinstance(raw, str):
            continue
        try:
            at = datetime.fromisoformat(raw)
        except ValueError:
            continue
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if at >= since:
            count += 1
    return count


@lru_cache(maxsize=4096)
def compile_expression(expr: str) -> Any:
    """A compiled CEL program (cached: the same text compiles once per process), for an expression
    within the static budget of ``shared.rules.limits`` (checked here, before CEL parses it)."""
    try:
        limits.check(expr)
    except limits.ExpressionTooCostly as exc:
        raise ConditionError(f"too costly: {exc}") from None
    try:
        return cel.compile(expr)
    except ValueError as exc:
        message = str(exc)
        # the library's message: "Failed to parse expression '…': ERROR: <input>:1:20: Syntax error: …"
        where = message.split("<input>:", 1)
        detail = where[1].split("\n", 1)[0] if len(where) == 2 else message
        raise ConditionError(f"syntax error at {detail}") from None


def check_expression(expr: str) -> None:
    """Refuse an expression that does not compile, names an unknown variable or function, or has a
    type error on a complete example of the facts (e.g. comparing a number with a string)."""
    if _PERSONAL.search(expr):
        raise ConditionError("phone numbers and e-mail addresses are not available to rules (has_email, has_phone are)")
    program = compile_expression(expr)
    refs = program.references()
    bound = {m.group(2) for m in _BOUND.finditer(expr)}  # a comprehension's own variable: `.all(o, o.x > 1)`
    unknown = sorted(set(refs["variables"]) - VARIABLES - bound)
    if unknown:
        raise ConditionError(f"unknown variable {', '.join(unknown)}; known: {', '.join(sorted(VARIABLES))}")
    try:
        program.execute(context(example_facts()))
    except KeyError:
        pass  # a field the example lacks; real records may have it (has() guards it at run time)
    except Exception as exc:  # a type error, a division by zero on the example, anything the binding raises
        raise ConditionError(str(exc).split(". ", 1)[0] or type(exc).__name__) from None


_PERSONAL = re.compile(r"\.\s*(phone|email)\b|\[\s*[\"'](phone|email)[\"']\s*\]")
_BOUND = re.compile(r"\.\s*(all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
_FIELD = re.compile(rf"\b({'|'.join(sorted(VARIABLES))})\b(\s*\.\s*([A-Za-z_][A-Za-z0-9_]*))?")


def needs(exprs: Iterable[str]) -> dict[str, set[str] | None]:
    """The facts some expressions read: root → the top-level fields used, or None for "all of it"
    (a root used other than as ``root.field``). Lets the engine convert only those to CEL values,
    which matters for the customer's long histories. Names inside string literals may add a field
    that is not needed; that costs a little time, never a wrong answer."""
    out: dict[str, set[str] | None] = {}
    for expr in exprs:
        for match in _FIELD.finditer(expr):
            root, field = match.group(1), match.group(3)
            if field is None or root in ("now",):
                out[root] = None
            elif root not in out:
                out[root] = {field}
            elif (known := out[root]) is not None:
                known.add(field)
    return out


def select(facts: dict[str, Any], needed: dict[str, set[str] | None]) -> dict[str, Any]:
    """The part of the facts that ``needed`` names (see ``needs``)."""
    out: dict[str, Any] = {}
    for root, fields in needed.items():
        value = facts.get(root)
        if fields is None or not isinstance(value, dict):
            out[root] = value
        else:
            out[root] = {k: value[k] for k in fields if k in value}
    return out


def context(facts: dict[str, Any]) -> Any:
    """One CEL context per evaluation, shared by all the rules it evaluates (the conversion of the
    facts to CEL values is the costly part, done once)."""
    ctx = cel.Context(facts)
    ctx.add_function("count_since", count_since)
    return ctx


def evaluate(expr: str, ctx: Any) -> tuple[bool, str | None]:
    """(held, error): an expression that fails at run time (a missing field, a wrong type) does not hold."""
    try:
        program = compile_expression(expr)
        value = limits.WATCHDOG.run(expr, lambda: program.execute(ctx))
    except Exception as exc:  # whatever the expression does on these facts, it does not hold
        return False, f"{type(exc).__name__}: {str(exc).split('. ', 1)[0]}"
    if not isinstance(value, bool):
        return False, f"the expression gave {type(value).__name__}, not a boolean"
    return value, None


def value_of(expr: str, ctx: Any) -> Any:
    """The value of a context expression, made JSON-able (timestamps as ISO 8601)."""
    try:
        program = compile_expression(expr)
        value = limits.WATCHDOG.run(expr, lambda: program.execute(ctx))
    except Exception:
        return None
    return _jsonable(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def example_facts() -> dict[str, Any]:
    """Facts with every documented field filled, to type-check expressions at save time (built like
    every evaluator's, by ``shared.rules.facts``)."""
    from shared.rules.facts import build  # the facts module reads sessions, which reads the contract

    now = datetime(2026, 1, 1, tzinfo=UTC)
    stamp = now.isoformat()
    customer = {
        "customer_id": "c-1",
        "orders": 2,
        "tickets": 1,
        "locale": "en-GB",
        "timezone": "Europe/London",
        "consents": {"email": True, "sms": False, "push": False, "phone": False},
        "has_email": True,
        "has_phone": False,
        "last_order_at": stamp,
        "order_history": [{"at": stamp, "amount": "10.00", "items": 1}],
        "ticket_history": [stamp],
        "return_history": [stamp],
        "late_history": [stamp],
        "opened_history": [stamp],
        "csat_history": [{"at": stamp, "score": 4}],
        "nps_history": [{"at": stamp, "score": 8}],
        "contacts": [{"rule_id": "r", "at": stamp, "channel": "email", "scope": "o-1", "holdout": False}],
        "churn": {"score": 0.5, "model_version": "v1", "at": stamp},
    }
    order = {
        "order_id": "o-1",
        "customer_id": "c-1",
        "status": "delivered",
        "placed_at": stamp,
        "total": {"amount": "10.00", "currency": "EUR"},
        "items": 1,
        "promised_ship_by": stamp,
        "promised_delivery_by": stamp,
        "estimated_delivery": stamp,
    }
    case = {
        "case_id": "k-1",
        "customer_id": "c-1",
        "order_id": "o-1",
        "status": "received",
        "status_at": stamp,
        "opened_at": stamp,
        "promised_by": stamp,
        "steps": [{"status": "received", "at": stamp}],
    }
    session = {
        "session_id": "s-1",
        "visitor_id": "v-1",
        "started_at": stamp,
        "returning": False,
        "pages": [{"url": "/", "page_type": "home", "duration_s": 10.0}],
        "intent": {"score": 0.5, "model_version": "v1", "at": stamp},
    }
    event = {"type": "order.delivered", "id": "e-1", "time": stamp, "data": {"order_id": "o-1"}}
    return build(event=event, trigger="event", now=now, customer=customer, order=order, case=case, session=session)
