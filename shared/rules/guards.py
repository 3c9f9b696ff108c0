"""Guard arithmetic, pure and separately tested: quiet hours in the customer's time zone, hold-out
assignment, frequency caps and cool-downs over the customer's contact history, channel choice."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.rules.model import CHANNEL_PREFERENCE, QuietHours

Contact = Mapping[str, Any]  # {"rule_id", "at" (ISO 8601), "channel", "scope", "holdout"}
MAX_CONTACTS_KEPT = 50  # a customer's contacts kept (newest last): enough for every window the guards use


def with_contact(customer: Mapping[str, Any], contact: Contact) -> dict[str, Any]:
    """The customer record with ``contact`` added to its contacts, the oldest dropped past the bound."""
    return {**customer, "contacts": [*customer.get("contacts", []), contact][-MAX_CONTACTS_KEPT:]}


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    raise AssertionError("UTC is always known")


def in_quiet_hours(local: time, quiet: QuietHours) -> bool:
    """Whether a local wall-clock time falls in [start, end), a window that may span midnight."""
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def next_allowed(now: datetime, tz: ZoneInfo, quiet: QuietHours | None) -> datetime:
    """``now`` itself outside quiet hours, else the first instant at or after it that is outside
    (the quiet period's end, local time; across a daylight-saving change that is the first valid
    instant at or after that wall-clock time)."""
    if quiet is None:
        return now
    local = now.astimezone(tz)
    if not in_quiet_hours(local.time().replace(tzinfo=None), quiet):
        return now
    day = local.date()
    if quiet.start > quiet.end and local.time().replace(tzinfo=None) >= quiet.start:
        day += timedelta(days=1)  # the evening part of a window that ends tomorrow morning
    wall = datetime.combine(day, quiet.end)
    candidate = _first_instant_at_or_after(wall, tz)
    if candidate <= now:  # a window end that does not exist today (DST gap): a minute-by-minute walk
        candidate = now
        while in_quiet_hours(candidate.astimezone(tz).time().replace(tzinfo=None), quiet):
            candidate += timedelta(minutes=1)
    return candidate


def _first_instant_at_or_after(wall: datetime, tz: ZoneInfo) -> datetime:
    """The earliest UTC instant whose local time is ``wall`` or, in a DST gap, the end of the gap."""
    first = wall.replace(tzinfo=tz, fold=0)
    # a wall time in a gap round-trips to another wall time: move to the gap's end
    if first.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None) != wall:
        later = wall.replace(tzinfo=tz, fold=1).astimezone(ZoneInfo("UTC"))
        earlier = first.astimezone(ZoneInfo("UTC"))
        return max(later, earlier)
    return first.astimezone(ZoneInfo("UTC"))


def holdout_bucket(rule_id: str, customer_id: str) -> float:
    """A customer's place in [0, 100) for a rule: stable, independent between rules."""
    digest = hashlib.sha256(f"{rule_id}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def in_holdout(rule_id: str, customer_id: str, pct: float) -> bool:
    return pct > 0 and holdout_bucket(rule_id, customer_id) < pct


def _at(contact: Contact) -> datetime:
    return datetime.fromisoformat(str(contact["at"]))


def sent(contacts: Iterable[Contact], rule_id: str | None = None) -> list[Contact]:
    """Contacts that reached the customer (not hold-outs), optionally of one rule."""
    return [c for c in contacts if not c.get("holdout") and (rule_id is None or c.get("rule_id") == rule_id)]


def count_within(contacts: Iterable[Contact], now: datetime, window: timedelta) -> int:
    """How many contacts fell in the window (now - window, now]."""
    since = now - window
    return sum(1 for c in contacts if since < _at(c) <= now)


def last_at(contacts: Iterable[Contact]) -> datetime | None:
    times = [_at(c) for c in contacts]
    return max(times) if times else None


def within(contacts: Iterable[Contact], now: datetime, period: timedelta) -> bool:
    last = last_at(contacts)
    return last is not None and now - last < period


# In-app messages appear only on the shop's own pages, to the signed-in customer: like an order's status
# page they need no opt-in, but a profile can switch them off with ``consents.inapp: false``. They are
# never picked by "preferred" (which reaches out), only named by a rule.
NO_OPT_IN = frozenset({"inapp"})


def consented(consents: Mapping[str, Any], channel: str) -> bool:
    return bool(consents.get(channel, channel in NO_OPT_IN))


def choose_channel(
    wanted: str, fallback: str, consents: Mapping[str, Any], reachable: Mapping[str, bool], require_consent: bool
) -> str | None:
    """The channel to use: the wanted one if allowed, else the first allowed in the preference order
    when the rule falls back, else none. "Allowed" is consented to (unless the rule waives consent)
    and reachable (an address or number known)."""

    def allowed(channel: str) -> bool:
        return (not require_consent or consented(consents, channel)) and reachable.get(channel, True)

    if wanted != "preferred" and allowed(wanted):
        return wanted
    if wanted == "preferred" or fallback == "preferred":
        return next((c for c in CHANNEL_PREFERENCE if allowed(c)), None)
    return None
