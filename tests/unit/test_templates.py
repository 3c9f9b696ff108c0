"""Every built-in rule's message exists in the five shipped languages and renders in the sandbox."""

from __future__ import annotations

import pytest

from shared.rules.builtin import BUILTIN as RULES
from shared.templates import BUILTIN, render

LOCALES = ("en", "pl", "ru", "lt", "hr")
CONTEXT = {
    "order_id": "o-1",
    "estimated_delivery": "2026-12-01T10:00:00+00:00",
    "orders": 3,
    "last_order_at": "2026-06-01T10:00:00+00:00",
    "last_order_amount": "49.90",
}


@pytest.mark.parametrize("template_id", sorted({r["action"]["template_id"] for r in RULES}))
def test_each_builtin_rule_has_its_template_in_five_languages(template_id: str) -> None:
    assert set(LOCALES) <= set(BUILTIN[template_id])
    texts = set()
    for locale in LOCALES:
        used, parts = render(template_id, f"{locale}-XX", CONTEXT)
        assert used == locale
        assert all(parts.values())
        texts.add(parts.get("subject") or parts["title"])
    assert len(texts) == len(LOCALES)  # really translated, not copied


def test_the_sandbox_refuses_python_internals_and_escapes_values() -> None:
    from jinja2.exceptions import SecurityError

    from shared.templates import _compiled

    with pytest.raises(SecurityError):
        _compiled("{{ ''.__class__.__mro__[1].__subclasses__() }}").render()
    assert render("checkin", "en", {"order_id": "<script>"})[1]["subject"].count("&lt;script&gt;") == 1
