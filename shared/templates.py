"""Message and pop-up content: templates per locale, rendered in Jinja2's sandbox.

A template is a set of named parts (``title``, ``body``, ``cta`` …) per locale. The locale asked for
falls back to its language and then to English (``pl-PL`` → ``pl`` → ``en``). Rendering runs in
``SandboxedEnvironment`` with autoescaping, so a marketer's template can reach neither Python
internals nor inject markup through the values it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

Parts = dict[str, str]

BUILTIN: dict[str, dict[str, Parts]] = {
    "callback_offer": {
        "en": {
            "title": "Can we help?",
            "body": "Leave your number or e-mail and one of our team will call you back at a time that suits you.",
            "cta": "Call me back",
            "dismiss": "No, thanks",
        },
        "pl": {
            "title": "Możemy pomóc?",
            "body": "Zostaw numer telefonu lub e-mail, a ktoś z naszego zespołu oddzwoni w dogodnym dla Ciebie czasie.",
            "cta": "Proszę o telefon",
            "dismiss": "Nie, dziękuję",
        },
        "ru": {
            "title": "Вам помочь?",
            "body": "Оставьте номер телефона или e-mail, и наш сотрудник перезвонит вам в удобное время.",
            "cta": "Перезвоните мне",
            "dismiss": "Нет, спасибо",
        },
        "lt": {
            "title": "Ar galime padėti?",
            "body": "Palikite telefono numerį arba el. paštą ir mūsų komandos narys jums paskambins patogiu laiku.",
            "cta": "Paskambinkite man",
            "dismiss": "Ne, ačiū",
        },
        "hr": {
            "title": "Možemo li pomoći?",
            "body": "Ostavite broj telefona ili e-mail i netko iz našeg tima nazvat će vas kad vam odgovara.",
            "cta": "Nazovite me",
            "dismiss": "Ne, hvala",
        },
    },
}


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)


def locale_chain(locale: str | None) -> list[str]:
    """``pt-BR`` → ``["pt-BR", "pt", "en"]``."""
    chain = []
    if locale:
        chain.append(locale)
        language = locale.replace("_", "-").split("-", 1)[0].lower()
        if language not in chain:
            chain.append(language)
    if "en" not in chain:
        chain.append("en")
    return chain


def pick(template: Mapping[str, Parts], locale: str | None) -> tuple[str, Parts]:
    for candidate in locale_chain(locale):
        if candidate in template:
            return candidate, template[candidate]
    first = next(iter(template))
    return first, template[first]


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Any:
    return _environment().from_string(source)


def render(template_id: str, locale: str | None, values: Mapping[str, Any] | None = None) -> tuple[str, Parts]:
    """The template's parts in the best locale, rendered with ``values``; (locale used, parts)."""
    template = BUILTIN.get(template_id)
    if template is None:
        raise KeyError(f"no template {template_id!r}")
    used, parts = pick(template, locale)
    try:
        return used, {name: _compiled(source).render(**(values or {})) for name, source in parts.items()}
    except TemplateError as exc:
        raise ValueError(f"template {template_id} ({used}) does not render: {exc}") from None
