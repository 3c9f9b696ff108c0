"""Signed unsubscribe links and customer identities: they round-trip, and any change is refused."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared import signing
from shared.signing import identity_holds, identity_signature, read_unsubscribe_token, unsubscribe_token

SECRET = "s3cret-for-tests"  # noqa: S105 - a test value
ids = st.text(min_size=1, max_size=80)


@given(ids, st.sampled_from(["email", "sms", "push"]))
def test_an_unsubscribe_token_names_its_customer_and_channel(customer_id: str, channel: str) -> None:
    token = unsubscribe_token(SECRET, customer_id, channel)
    assert read_unsubscribe_token(SECRET, token) == (customer_id, channel)
    assert read_unsubscribe_token("another secret", token) is None


@given(ids, st.integers(min_value=0, max_value=200), st.characters(codec="ascii"))
def test_a_changed_token_is_refused(customer_id: str, where: int, char: str) -> None:
    token = unsubscribe_token(SECRET, customer_id, "email")
    i = where % len(token)
    changed = token[:i] + char + token[i + 1 :]
    if changed != token:
        assert read_unsubscribe_token(SECRET, changed) in (None, (customer_id, "email"))
        # a change that still decodes to the same payload (base64 padding bits) is the only one accepted


def test_garbage_is_refused_without_an_error() -> None:
    for junk in ("", ".", "abc", "a.b.c", "!!!.???", "eyJ9.AAAA"):
        assert read_unsubscribe_token(SECRET, junk) is None


def test_an_identity_holds_only_for_its_customer() -> None:
    signature = identity_signature(SECRET, "c-1")
    assert identity_holds(SECRET, "c-1", signature)
    assert identity_holds(SECRET, "c-1", signature.upper())
    assert not identity_holds(SECRET, "c-2", signature)
    assert not identity_holds("other", "c-1", signature)


def test_a_forged_altered_or_replayed_webhook_request_is_refused() -> None:
    body, now = b'{"id":"a-1","text":"hello"}', 1_800_000_000
    header = signing.webhook_signature("provider-secret", body, now)
    assert signing.webhook_signature_holds("provider-secret", body, header, now + 10)
    assert not signing.webhook_signature_holds(
        "provider-secret", body, signing.webhook_signature("guess", body, now), now
    )
    assert not signing.webhook_signature_holds("provider-secret", body + b" ", header, now)  # altered body
    assert not signing.webhook_signature_holds("provider-secret", body, header, now + 301)  # replayed later
    for bad in ("", "t=abc,v1=00", "v1=00", f"t={now}", f"t={now},v1={'0' * 64}", "garbage"):
        assert not signing.webhook_signature_holds("provider-secret", body, bad, now)


@given(ids, st.sampled_from(["csat", "nps"]), st.none() | st.text(max_size=10))
def test_a_rating_token_names_its_message_and_survey_and_refuses_any_other_use(
    action_id: str, survey: str, locale: str | None
) -> None:
    rating = signing.Rating(survey, action_id, "c-1", "post-purchase-checkin", "email", locale, "o-1", 2_000_000_000)  # type: ignore[arg-type]
    token = signing.rating_token(SECRET, rating)
    assert signing.read_rating_token(SECRET, token) == rating
    assert signing.read_rating_token("another secret", token) is None
    # an unsubscribe token is not a rating token, nor the other way round
    assert signing.read_rating_token(SECRET, unsubscribe_token(SECRET, "c-1", "email")) is None
    assert read_unsubscribe_token(SECRET, token) is None
