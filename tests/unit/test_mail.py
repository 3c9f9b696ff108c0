"""An e-mail as proact composes it: multipart/alternative, the text part plain (a value's ``&`` is an
``&``), the HTML part in the shared layout with the same value escaped, a template's own ``html`` part
as the body, and the layout's budget applied to it."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from shared import templates
from shared.mail import MAIL_POLICY, Mailer

MAILER = Mailer("127.0.0.1", 25, "shop <shop@example.com>")
HOSTILE = "Tom & <b>Jerry</b>"


def parts_of(mail: bytes) -> tuple[str, str]:
    parsed = message_from_bytes(mail, policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = parsed.iter_parts()
    return text.get_content(), html.get_content()


@pytest.mark.parametrize("locale", ["en", "pl", "lt", "hr", "ru"])
def test_every_builtin_email_has_both_parts_in_its_language(locale: str) -> None:
    for template_id in ("delay_notice", "checkin", "winback", "ticket_followup", "repair_overdue"):
        used, parts = templates.render(template_id, locale, {"order_id": HOSTILE, "case_id": HOSTILE})
        assert used == locale
        mail = MAILER.compose_rendered("a@example.com", used, parts, footer=("stop: u", 'stop: <a href="u">u</a>'))
        text, html = parts_of(mail.as_bytes(policy=MAIL_POLICY))
        assert f'<html lang="{locale}">' in html
        assert "<b>Jerry</b>" not in html  # a value never becomes markup
        assert "&lt;b&gt;Jerry&lt;/b&gt;" in html or HOSTILE not in templates.plain(parts["text"])
        assert "&amp;" not in text  # the text part is plain text
        assert "&lt;" not in text
        assert text.rstrip().endswith("stop: u")
        assert '<a href="u">u</a>' in html


def test_a_templates_own_html_part_is_the_body_escaped_where_it_shows_a_value() -> None:
    template = {"en": {"subject": "Hi", "text": "Hello {{ name }}", "html": "<p><strong>Hello</strong> {{ name }}</p>"}}
    used, parts = templates.render("custom", "en", {"name": HOSTILE}, template)
    mail = MAILER.compose_rendered("a@example.com", used, parts)
    text, html = parts_of(mail.as_bytes(policy=MAIL_POLICY))
    assert "<p><strong>Hello</strong> Tom &amp; &lt;b&gt;Jerry&lt;/b&gt;</p>" in html
    assert text.strip() == f"Hello {HOSTILE}"


def test_the_layout_is_under_the_render_budget() -> None:
    text = "x" * (templates.MAX_PART_CHARS - 10)  # fits as a part; with the layout around it, it does not
    with pytest.raises(ValueError, match="does not render"):
        templates.email_html("en", "s", text)
