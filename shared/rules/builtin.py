"""The built-in rules, seeded as version 1 the first time proact starts and editable like any other.

The seed scenarios are on (a late order, a check-in after delivery, a lingering visitor), and so is
after-sales; the others are off until a team turns them on. Their parameters, and why these defaults:

* ``delay-notice``: the order is not shipped by ``promised_ship_by`` (an absence trigger), or a new
  ETA (``order.shipped``/``order.eta_changed``) is after ``promised_delivery_by``. Once per order,
  however many times the ETA moves; not subject to the marketing contact policy, because it is
  service information the customer needs (set ``guards.contact_policy`` to change that).
* ``post-purchase-checkin``: 3 days (``P3D``) after ``order.delivered``, if the order is still
  delivered (a return changes its status); a return request or a ticket about the order cancels
  it; quiet hours 21:00-08:00 in the customer's time zone postpone it; subject to the contact
  policy; 10 % hold-out so its uplift can be measured. It carries signed one-click CSAT links
  (context ``survey``; ``"csat nps"`` adds the 0-10 recommendation question).
* ``low-csat-callback``, on: a CSAT of 1 or 2 (from the check-in's links or the shop's own survey)
  offers a call from the support team, by phone if consented, else the preferred channel; at most
  once a week per customer, outside the contact policy (an unhappy customer asked for nothing
  else to be counted against).
* ``lingering-visitor-callback``: a pop-up evaluated by the storefront's decision call. The visit
  has lasted longer than 3,100 s, the 90th percentile of the total page time of the sessions that
  bought in the UCI online-shoppers data (``data/online_shoppers``, Feb-Oct); the intent model does
  not expect a purchase on its own (below 0.6) while the visitor has seen five pages or more (looking
  around, not lost); not in checkout, and not offered anything yet. "Hesitating" is a band below
  0.6 with no lower bound because live sessions have no page values (the model's strongest
  feature, a site statistic proact does not keep yet), so their scores sit low: a lower bound of
  0.2 would never be met.
* after-sales, on: ``repair-received`` (a service case opened), ``repair-ready`` (its status becomes
  ``ready``) and ``repair-overdue`` (a day before its ``promised_by``, the latest one an update
  gave, while it is not ready; only for promises longer than two days, or the warning would come
  with the receipt); once per case each, service information outside the contact policy, and a
  ``service_case.completed`` cancels what is pending.
* ``callback-apology``, on: a callback request not recorded as made (``callback.updated``) by the
  time the storefront promised (``PROACT_STOREFRONT_CALLBACK_PROMISE_MIN``, 120 minutes) gets an
  apology with a new time two hours on, once per request, to the address the person left.
* off: ``churn-winback`` (churn score reaches 0.7, at most every 90 days) and ``ticket-followup``
  (a ticket not resolved within 2 days).
"""

from __future__ import annotations

from typing import Any

from shared.rules.model import Rule

DELAY_NOTICE = "delay-notice"
CHECKIN = "post-purchase-checkin"
LINGERING = "lingering-visitor-callback"
REPAIR_RECEIVED = "repair-received"
REPAIR_READY = "repair-ready"
REPAIR_OVERDUE = "repair-overdue"
CALLBACK_APOLOGY = "callback-apology"

_ON_ITS_WAY = {"expr": 'order.status in ["placed", "shipped", "unknown"]', "description": "the order is on its way"}

# After-sales: a repair or service case (``service_case.*``) walks received → diagnosed →
# waiting_for_parts → ready → returned → closed (``shared.engine.handlers.service_case``). The customer
# hears when it is received, when it is ready, and a day before its promised date is broken, once
# each; closing the case (``service_case.completed``) cancels whatever is still pending.
_CASE_CLOSES = ["service_case.completed"]
_CASE_CONTEXT = {
    "case_id": "case.case_id",
    "promised_by": 'has(case.promised_by) ? case.promised_by : ""',
}
AFTER_SALES: list[dict[str, Any]] = [
    {
        "rule_id": REPAIR_RECEIVED,
        "name": "Repair received",
        "description": "A repair or service case is opened: we have it, and when it should be ready.",
        "triggers": [{"kind": "event", "event": "service_case.opened"}],
        "conditions": [
            {"expr": 'case.status in ["received", "diagnosed"]', "description": "the case has just started"}
        ],
        "action": {"channel": "preferred", "template_id": "repair_received", "priority": 70, "context": _CASE_CONTEXT},
        "guards": {"reeligibility": {"mode": "once_per_order"}, "contact_policy": False, "exit_events": _CASE_CLOSES},
    },
    {
        "rule_id": REPAIR_READY,
        "name": "Repair ready",
        "description": "A repair or service case is ready: the customer can have the item back.",
        "triggers": [{"kind": "event", "event": "service_case.updated"}],
        "conditions": [{"expr": 'case.status == "ready"', "description": "the case is ready"}],
        "action": {"channel": "preferred", "template_id": "repair_ready", "priority": 75, "context": _CASE_CONTEXT},
        "guards": {"reeligibility": {"mode": "once_per_order"}, "contact_policy": False, "exit_events": _CASE_CLOSES},
    },
    {
        "rule_id": REPAIR_OVERDUE,
        "name": "Repair promise about to be broken",
        "description": "A day before a case's promised date, if it is not ready: an apology and the status.",
        # the deadline is the promise given when the case opened, or the latest one an update gave
        "triggers": [
            {
                "kind": "absence",
                "after": event,
                "absent": ["service_case.completed"],
                "deadline_field": "promised_by",
                "before": "P1D",
            }
            for event in ("service_case.opened", "service_case.updated")
        ],
        "conditions": [
            {
                "expr": 'case.status in ["received", "diagnosed", "waiting_for_parts"]',
                "description": "the case is not ready yet",
            },
            {
                "expr": 'has(case.promised_by) && timestamp(case.promised_by) - now <= duration("24h")',
                "description": "its promised date (the latest one) is a day away or past",
            },
            {
                "expr": 'timestamp(case.promised_by) - timestamp(case.opened_at) > duration("48h")',
                "description": "the promise was more than two days (a shorter one gets no early warning)",
            },
        ],
        "action": {
            "channel": "preferred",
            "template_id": "repair_overdue",
            "priority": 80,
            "context": {**_CASE_CONTEXT, "status": "case.status"},
        },
        "guards": {"reeligibility": {"mode": "once_per_order"}, "contact_policy": False, "exit_events": _CASE_CLOSES},
    },
]

# A callback the shop promised (``callback.requested``'s ``promised_by``, set by the storefront) and
# no agent recorded as made by then (``callback.updated``): an apology to the person who asked, with a
# new promise two hours on (agents see it in the admin's callback queue).
CALLBACK_APOLOGY_RULE: dict[str, Any] = {
    "rule_id": CALLBACK_APOLOGY,
    "name": "Callback missed: apology",
    "description": "A callback not made by the time promised: an apology and a new time.",
    "triggers": [
        {
            "kind": "absence",
            "after": "callback.requested",
            "absent": ["callback.updated"],
            "deadline_field": "promised_by",
        }
    ],
    "action": {
        "channel": "preferred",
        "template_id": "callback_apology",
        "priority": 85,
        "context": {
            "request_id": "event.data.request_id",
            "promised_by": "event.data.promised_by",
            "new_promise": 'now + duration("2h")',
        },
    },
    # the request itself is the consent to be contacted about it; service information, not marketing
    "guards": {"reeligibility": {"mode": "once_per_order"}, "contact_policy": False, "require_consent": False},
}

BUILTIN: list[dict[str, Any]] = [
    {
        "rule_id": DELAY_NOTICE,
        "name": "Delay notice",
        "description": "An apology and the new date when an order will be late. One per order.",
        "triggers": [
            {
                "kind": "absence",
                "after": "order.placed",
                "absent": ["order.shipped", "order.cancelled", "order.delivered"],
                "deadline_field": "promised_ship_by",
            },
            {"kind": "event", "event": "order.shipped"},
            {"kind": "event", "event": "order.eta_changed"},
        ],
        "conditions": [
            _ON_ITS_WAY,
            {
                "expr": 'trigger.kind == "absence" || (order.promised_delivery_by != null && '
                "order.estimated_delivery != null && "
                "timestamp(order.estimated_delivery) > timestamp(order.promised_delivery_by))",
                "description": "not shipped by the promised date, or the new ETA is after the promised delivery date",
            },
        ],
        "action": {
            "channel": "preferred",
            "template_id": "delay_notice",
            "priority": 80,
            "context": {
                "order_id": "order.order_id",
                "reason": 'trigger.kind == "absence" ? "not_shipped_by_promise" : "eta_past_promise"',
                "promised_ship_by": "order.promised_ship_by",
                "promised_delivery_by": "order.promised_delivery_by",
                "estimated_delivery": "has(order.estimated_delivery) ? order.estimated_delivery : null",
            },
        },
        "guards": {"reeligibility": {"mode": "once_per_order"}, "contact_policy": False},
    },
    {
        "rule_id": CHECKIN,
        "name": "Post-purchase check-in",
        "description": "Three days after delivery: is all well? With one-click CSAT links.",
        "triggers": [{"kind": "delay", "after": "order.delivered", "delay": "P3D"}],
        "conditions": [{"expr": 'order.status == "delivered"', "description": "the order is delivered, not returned"}],
        "action": {
            "channel": "preferred",
            "template_id": "checkin",
            "priority": 40,
            "context": {
                "order_id": "order.order_id",
                # the first thing in the order, when the shop sent its items
                "product": 'has(order.products) && size(order.products) > 0 ? order.products[0] : ""',
                # signed one-click CSAT links (add "nps" for the 0-10 question too)
                "survey": '"csat"',
            },
        },
        "guards": {
            "reeligibility": {"mode": "once_per_order"},
            "exit_events": ["order.return_requested", "ticket.opened"],
            "quiet_hours": {"start": "21:00", "end": "08:00"},
            "holdout_pct": 10,
        },
    },
    {
        "rule_id": LINGERING,
        "name": "Lingering visitor: callback offer",
        "description": "A visitor who lingers far longer than buying takes and hesitates is offered a callback.",
        "triggers": [{"kind": "session"}],
        "conditions": [
            {"expr": "session.duration_s > 3100.0", "description": "the visit is longer than 90% of buying visits"},
            {
                "expr": "scores.intent != null && scores.intent < 0.6",
                "description": "the intent model does not expect them to buy on their own",
            },
            {"expr": "session.page_count >= 5", "description": "they are looking around, not lost"},
            {"expr": "!session.checkout", "description": "not in checkout"},
            {"expr": "!session.offered", "description": "nothing offered in this session yet"},
        ],
        "action": {"channel": "popup", "template_id": "callback_offer", "priority": 60},
        # a known customer's pop-up counts against the contact policy like a message (an anonymous
        # visitor's history is their pop-ups only)
        "guards": {"cooldown": "P1D", "contact_policy": True, "require_consent": False},
    },
    {
        "rule_id": "churn-winback",
        "name": "Churn-risk win-back",
        "description": "A customer whose churn risk climbs gets a message built from what they bought.",
        "enabled": False,
        "triggers": [{"kind": "score", "score": "churn", "at_least": 0.7}],
        "conditions": [{"expr": "customer.orders >= 2", "description": "a repeat customer"}],
        "action": {
            "channel": "preferred",
            "template_id": "winback",
            "priority": 30,
            "context": {
                "orders": "customer.orders",
                "last_order_at": "customer.last_order_at",
                "last_order_amount": "customer.order_history[size(customer.order_history) - 1].amount",
                # what they bought (order.placed's items, when the shop sends them)
                "last_item": "has(customer.purchases) && size(customer.purchases) > 0 ? "
                'customer.purchases[size(customer.purchases) - 1].name : ""',
                "favourite_category": "has(customer.favourite_categories) && size(customer.favourite_categories) > 0 ? "
                'customer.favourite_categories[0] : ""',
            },
        },
        "guards": {"reeligibility": {"mode": "every", "every": "P90D"}, "holdout_pct": 10},
    },
    {
        "rule_id": "ticket-followup",
        "name": "Unresolved ticket follow-up",
        "description": "A ticket still open after its 2-day SLA: tell the customer it is being handled.",
        "enabled": False,
        "triggers": [{"kind": "absence", "after": "ticket.opened", "absent": ["ticket.resolved"], "delay": "P2D"}],
        "action": {"channel": "preferred", "template_id": "ticket_followup", "priority": 70},
        "guards": {"contact_policy": False},
    },
    {
        "rule_id": "low-csat-callback",
        "name": "Low CSAT callback",
        "description": "A CSAT of 1 or 2: offer a call from the support team.",
        "triggers": [{"kind": "event", "event": "csat.submitted"}],
        "conditions": [{"expr": "event.data.score <= 2", "description": "the customer was unhappy"}],
        "action": {"channel": "phone", "fallback": "preferred", "template_id": "low_csat_callback", "priority": 90},
        "guards": {"contact_policy": False, "cooldown": "P7D"},
    },
    *AFTER_SALES,
    CALLBACK_APOLOGY_RULE,
]


def builtin_rules() -> list[Rule]:
    return [Rule.model_validate(r) for r in BUILTIN]
