"""Signed tokens: links and identities a browser carries that proact must be able to trust.

Three uses, one HMAC-SHA256 construction (the key is a secret from the environment, never in code):

- **unsubscribe links** in e-mails: ``unsubscribe_token(secret, customer_id, channel)`` names the
  customer and the channel, so the link needs no log-in and cannot be forged for someone else;
- **rating links** in check-ins: ``rating_token(secret, Rating(...))`` names the message, its
  customer, rule, channel and locale and the survey (CSAT or NPS), and expires; the score is the
  link's own query parameter (the customer picks it);
- **customer identity** for the in-app inbox: the shop's back end, which knows who is signed in,
  computes ``identity_signature(secret, customer_id)`` and hands it to its pages (the usual
  "identity verification" of chat widgets), so a visitor cannot read another customer's inbox.

And the signature on proact's webhook requests (``X-Proact-Signature: t=<unix time>,v1=<hex>``,
HMAC-SHA256 over ``<t>.<body>``): ``webhook_signature`` makes it, ``webhook_signature_holds`` is
the check a provider's receiver makes (a forged or altered request, or one replayed later than
the tolerance, is refused).

Unsubscribe tokens carry no expiry on purpose: an unsubscribe link must keep working for as long as
the e-mail may be read, and revoking an identity is done by changing the secret. A rating link
expires (``Rating.expires``): an answer months later says little about the order it asks about.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import astuple, dataclass
from typing import Literal

import orjson

_DIGEST_BYTES = 16  # 128 bits of the MAC: enough against forgery, short enough for a link


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:_DIGEST_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsubscribe_token(secret: str, customer_id: str, channel: str) -> str:
    payload = orjson.dumps(["unsubscribe", customer_id, channel])
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def read_unsubscribe_token(secret: str, token: str) -> tuple[str, str] | None:
    """(customer_id, channel), or None for a token that is malformed or not signed with ``secret``."""
    try:
        encoded, mac = token.split(".", 1)
        payload = _unb64(encoded)
        if not hmac.compare_digest(_unb64(mac), _mac(secret, payload)):
            return None
        purpose, customer_id, channel = orjson.loads(payload)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None
    if purpose != "unsubscribe" or not isinstance(customer_id, str) or not isinstance(channel, str):
        return None
    return customer_id, channel


Survey = Literal["csat", "nps"]


@dataclass(frozen=True)
class Rating:
    """What a rating link stands for: the survey, the message it answers and where that went."""

    survey: Survey
    action_id: str
    customer_id: str
    rule_id: str
    channel: str
    locale: str | None
    order_id: str | None
    expires: int  # Unix time after which the link is refused


def rating_token(secret: str, rating: Rating) -> str:
    payload = orjson.dumps(["rating", *astuple(rating)])
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def read_rating_token(secret: str, token: str) -> Rating | None:
    """The rating a token stands for, or None for a token that is malformed or not signed with
    ``secret`` (whether it has expired is the caller's check: ``Rating.expires``)."""
    try:
        encoded, mac = token.split(".", 1)
        payload = _unb64(encoded)
        if not hmac.compare_digest(_unb64(mac), _mac(secret, payload)):
            return None
        purpose, *fields = orjson.loads(payload)
        rating = Rating(*fields)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None
    if purpose != "rating" or rating.survey not in ("csat", "nps") or not isinstance(rating.expires, int):
        return None
    return rating


def identity_signature(secret: str, customer_id: str) -> str:
    return hmac.new(secret.encode(), b"identity:" + customer_id.encode(), hashlib.sha256).hexdigest()


def identity_holds(secret: str, customer_id: str, signature: str) -> bool:
    """Whether ``signature`` signs ``customer_id``; a header that is not even ASCII does not."""
    given = signature.strip().lower()
    return given.isascii() and hmac.compare_digest(identity_signature(secret, customer_id), given)


def webhook_signature(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_signature_holds(secret: str, body: bytes, header: str, now: float, tolerance_s: float = 300) -> bool:
    """Whether ``header`` signs exactly ``body`` with ``secret``, made within ``tolerance_s`` of ``now``."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(webhook_signature(secret, body, timestamp), f"t={timestamp},v1={fields.get('v1', '')}")
