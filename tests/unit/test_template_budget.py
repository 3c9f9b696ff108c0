"""Budgets for templates (shared.templates): each way a marketer's text could make a message huge,
slow or recursive is refused when the template is saved (naming the field) and fails at render
time, never hanging or crashing the service that renders it."""

from __future__ import annotations

import time

import pytest

from shared import templates
from shared.templates import Template

BOMBS = {
    "string formatting": "{{ '%50000000s' % 'x' }}",
    "doubling with set": "{% set s = 'xx' %}" + "{% set s = s ~ s %}" * 25 + "{{ s }}",
    "padding batches": "{{ [1] | batch(5000000, 'x') | list }}",
    "a self-calling macro": "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "a chain of replace": "{{ 'x'" + " | replace('x', 'xxxxxxxxxx')" * 10 + " }}",
    "a padding method": "{{ 'x'.ljust(100000000) }}",
    "nested loops over long literals": "{% for a in '" + "x" * 9000 + "' %}{% for b in '" + "x" * 9000 + "' %}"
    "{% endfor %}{% endfor %}",
    "an include": "{% include 'x' %}",
}


@pytest.mark.parametrize("source", BOMBS.values(), ids=BOMBS.keys())
def test_a_template_bomb_is_refused_when_saved_and_fails_when_rendered(source: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"not allowed|line 1|took longer|at most|more than") as refused:
        Template.parse({"template_id": "winback", "version": 1, "locales": {"en": {"subject": source, "text": "x"}}})
    assert "locales.en.subject" in str(refused.value)
    with pytest.raises(ValueError, match="does not render"):
        templates.render("winback", "en", {"order_id": "o-1"}, template={"en": {"subject": source}})
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("part", ["subject", "title"])
def test_a_header_part_with_a_line_break_is_refused(part: str) -> None:
    with pytest.raises(ValueError, match="one line") as refused:
        Template.parse(
            {"template_id": "x-promo", "version": 1, "locales": {"en": {part: "Hi\r\nBcc: all", "text": "x"}}}
        )
    assert f"locales.en.{part}" in str(refused.value)


def test_ordinary_templates_still_render() -> None:
    source = (
        "{% for i in items %}{{ i.name | upper }}{% if not loop.last %}, {% endif %}{% endfor %} ~ {{ 'a' ~ name }}"
    )
    values = {"items": [{"name": "tea"}, {"name": "cup"}], "name": "nna"}
    assert templates.render("x", "en", values, template={"en": {"text": source}})[1]["text"] == "TEA, CUP ~ anna"
    for template_id, parts in templates.BUILTIN.items():  # every built-in text is within the budget
        Template.parse({"template_id": template_id.replace("_", "-"), "version": 1, "locales": parts})
