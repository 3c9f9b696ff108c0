"""Message and pop-up content: templates per locale, rendered in Jinja2's sandbox.

A template is a set of named parts (``title``, ``body``, ``cta`` …) per locale. The locale asked for
falls back to its language and then to English (``pl-PL`` → ``pl`` → ``en``). Rendering runs in
``SandboxedEnvironment`` with autoescaping, so a marketer's template can reach neither Python
internals nor inject markup through the values it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Any

from jinja2 import TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

Parts = dict[str, str]

BUILTIN: dict[str, dict[str, Parts]] = {
    "callback_offer": {
        "en": {
            "title": "Can we help?",
            "body": "Leave your number or e-mail and one of our team will call you back at a time that suits you.",
            "cta": "Call me back",
            "dismiss": "No, thanks",
            "field": "Phone or e-mail",
            "consent": "I agree to be contacted about this request.",
        },
        "pl": {
            "title": "Możemy pomóc?",
            "body": "Zostaw numer telefonu lub e-mail, a ktoś z naszego zespołu oddzwoni w dogodnym dla Ciebie czasie.",
            "cta": "Proszę o telefon",
            "dismiss": "Nie, dziękuję",
            "field": "Telefon lub e-mail",
            "consent": "Zgadzam się na kontakt w tej sprawie.",
        },
        "ru": {
            "title": "Вам помочь?",
            "body": "Оставьте номер телефона или e-mail, и наш сотрудник перезвонит вам в удобное время.",
            "cta": "Перезвоните мне",
            "dismiss": "Нет, спасибо",
            "field": "Телефон или e-mail",
            "consent": "Я согласен(на), чтобы со мной связались по этому запросу.",
        },
        "lt": {
            "title": "Ar galime padėti?",
            "body": "Palikite telefono numerį arba el. paštą ir mūsų komandos narys jums paskambins patogiu laiku.",
            "cta": "Paskambinkite man",
            "dismiss": "Ne, ačiū",
            "field": "Telefonas arba el. paštas",
            "consent": "Sutinku, kad su manimi būtų susisiekta dėl šio prašymo.",
        },
        "hr": {
            "title": "Možemo li pomoći?",
            "body": "Ostavite broj telefona ili e-mail i netko iz našeg tima nazvat će vas kad vam odgovara.",
            "cta": "Nazovite me",
            "dismiss": "Ne, hvala",
            "field": "Telefon ili e-mail",
            "consent": "Pristajem da me kontaktirate u vezi s ovim zahtjevom.",
        },
    },
    "delay_notice": {
        "en": {
            "subject": "Your order {{ order_id }} is running late",
            "text": "We are sorry: your order {{ order_id }} will not reach you when we promised."
            "{% if estimated_delivery %} It should now arrive by {{ estimated_delivery[:10] }}.{% endif %}"
            " We are on it, and will let you know if anything changes.",
        },
        "pl": {
            "subject": "Twoje zamówienie {{ order_id }} się opóźnia",
            "text": "Przepraszamy: zamówienie {{ order_id }} nie dotrze w obiecanym terminie."
            "{% if estimated_delivery %} Nowy przewidywany termin to {{ estimated_delivery[:10] }}.{% endif %}"
            " Pilnujemy sprawy i damy znać, jeśli coś się zmieni.",
        },
        "ru": {
            "subject": "Ваш заказ {{ order_id }} задерживается",
            "text": "Приносим извинения: заказ {{ order_id }} не будет доставлен в обещанный срок."
            "{% if estimated_delivery %} Новая ожидаемая дата: {{ estimated_delivery[:10] }}.{% endif %}"
            " Мы следим за доставкой и сообщим, если что-то изменится.",
        },
        "lt": {
            "subject": "Jūsų užsakymas {{ order_id }} vėluoja",
            "text": "Atsiprašome: užsakymas {{ order_id }} nebus pristatytas pažadėtu laiku."
            "{% if estimated_delivery %} Nauja numatoma data: {{ estimated_delivery[:10] }}.{% endif %}"
            " Sekame situaciją ir pranešime, jei kas nors pasikeis.",
        },
        "hr": {
            "subject": "Vaša narudžba {{ order_id }} kasni",
            "text": "Ispričavamo se: narudžba {{ order_id }} neće stići u obećanom roku."
            "{% if estimated_delivery %} Novi očekivani datum je {{ estimated_delivery[:10] }}.{% endif %}"
            " Pratimo isporuku i javit ćemo vam ako se nešto promijeni.",
        },
    },
    "checkin": {
        "en": {
            "subject": "Is everything all right with order {{ order_id }}?",
            "text": "Your order {{ order_id }} arrived a few days ago. Is all well? Tell us in one click: "
            "how satisfied are you, from 1 to 5?",
        },
        "pl": {
            "subject": "Czy wszystko w porządku z zamówieniem {{ order_id }}?",
            "text": "Zamówienie {{ order_id }} dotarło kilka dni temu. Czy wszystko gra? Oceń nas jednym "
            "kliknięciem, od 1 do 5.",
        },
        "ru": {
            "subject": "Всё ли в порядке с заказом {{ order_id }}?",
            "text": "Заказ {{ order_id }} пришёл несколько дней назад. Всё ли хорошо? Оцените нас одним "
            "нажатием, от 1 до 5.",
        },
        "lt": {
            "subject": "Ar viskas gerai su užsakymu {{ order_id }}?",
            "text": "Užsakymą {{ order_id }} gavote prieš kelias dienas. Ar viskas gerai? Įvertinkite mus "
            "vienu paspaudimu, nuo 1 iki 5.",
        },
        "hr": {
            "subject": "Je li sve u redu s narudžbom {{ order_id }}?",
            "text": "Narudžba {{ order_id }} stigla je prije nekoliko dana. Je li sve u redu? Ocijenite nas "
            "jednim klikom, od 1 do 5.",
        },
    },
    "winback": {
        "en": {
            "subject": "We miss you",
            "text": "It has been a while since your last order{% if last_order_at %} ({{ last_order_at[:10] }}){% endif %}. Thank you for the {{ orders }} orders so far; here is what is new since your last visit.",
        },
        "pl": {
            "subject": "Tęsknimy za Tobą",
            "text": "Minęło trochę czasu od Twojego ostatniego zamówienia{% if last_order_at %} ({{ last_order_at[:10] }}){% endif %}. Dziękujemy za {{ orders }} dotychczasowe zamówienia; oto co nowego od Twojej ostatniej wizyty.",
        },
        "ru": {
            "subject": "Мы скучаем по вам",
            "text": "С вашего последнего заказа прошло немало времени{% if last_order_at %} ({{ last_order_at[:10] }}){% endif %}. Спасибо за {{ orders }} заказов; вот что нового с вашего последнего визита.",
        },
        "lt": {
            "subject": "Mes jūsų pasiilgome",
            "text": "Nuo paskutinio jūsų užsakymo praėjo nemažai laiko{% if last_order_at %} ({{ last_order_at[:10] }}){% endif %}. Ačiū už {{ orders }} užsakymus; štai kas naujo nuo jūsų paskutinio apsilankymo.",
        },
        "hr": {
            "subject": "Nedostajete nam",
            "text": "Prošlo je neko vrijeme od vaše posljednje narudžbe{% if last_order_at %} ({{ last_order_at[:10] }}){% endif %}. Hvala na dosadašnjih {{ orders }} narudžbi; evo što je novo od vašeg posljednjeg posjeta.",
        },
    },
    "ticket_followup": {
        "en": {
            "subject": "We are still on your request",
            "text": "Your request has not been solved yet, and we have not forgotten it. Someone from our team is working on it and will write to you soon.",
        },
        "pl": {
            "subject": "Wciąż zajmujemy się Twoim zgłoszeniem",
            "text": "Twoje zgłoszenie nie zostało jeszcze rozwiązane, ale o nim nie zapomnieliśmy. Ktoś z naszego zespołu nad nim pracuje i wkrótce się odezwie.",
        },
        "ru": {
            "subject": "Мы продолжаем работать над вашим обращением",
            "text": "Ваше обращение ещё не решено, но мы о нём не забыли. Наш сотрудник работает над ним и скоро вам напишет.",
        },
        "lt": {
            "subject": "Vis dar sprendžiame jūsų užklausą",
            "text": "Jūsų užklausa dar neišspręsta, bet mes apie ją nepamiršome. Mūsų komandos narys ją sprendžia ir netrukus jums parašys.",
        },
        "hr": {
            "subject": "I dalje radimo na vašem upitu",
            "text": "Vaš upit još nije riješen, ali nismo ga zaboravili. Netko iz našeg tima radi na njemu i uskoro će vam se javiti.",
        },
    },
    "low_csat_callback": {
        "en": {
            "subject": "We are sorry it did not go well",
            "text": "Thank you for telling us. May we call you to put it right? Reply to this message with a time that suits you.",
        },
        "pl": {
            "subject": "Przykro nam, że coś poszło nie tak",
            "text": "Dziękujemy za opinię. Czy możemy zadzwonić, żeby to naprawić? Odpowiedz na tę wiadomość, podając dogodny termin.",
        },
        "ru": {
            "subject": "Нам жаль, что всё прошло не так",
            "text": "Спасибо, что рассказали нам. Можно мы позвоним, чтобы всё исправить? Ответьте на это сообщение, указав удобное время.",
        },
        "lt": {
            "subject": "Atsiprašome, kad kažkas nepavyko",
            "text": "Ačiū, kad pranešėte. Ar galime paskambinti ir viską sutvarkyti? Atsakykite į šią žinutę nurodydami jums patogų laiką.",
        },
        "hr": {
            "subject": "Žao nam je što nije prošlo dobro",
            "text": "Hvala što ste nam javili. Smijemo li vas nazvati da to ispravimo? Odgovorite na ovu poruku s terminom koji vam odgovara.",
        },
    },
    "repair_overdue": {
        "en": {
            "subject": "Your repair is taking longer than promised",
            "text": "We are sorry: your repair was not finished by the date we promised. We are on it and will tell you as soon as it is ready.",
        },
        "pl": {
            "subject": "Naprawa trwa dłużej, niż obiecaliśmy",
            "text": "Przepraszamy: naprawa nie została ukończona w obiecanym terminie. Pilnujemy jej i damy znać, gdy tylko będzie gotowa.",
        },
        "ru": {
            "subject": "Ремонт занимает больше времени, чем мы обещали",
            "text": "Приносим извинения: ремонт не был завершён к обещанной дате. Мы следим за ним и сообщим, как только он будет готов.",
        },
        "lt": {
            "subject": "Jūsų remontas užtrunka ilgiau, nei žadėjome",
            "text": "Atsiprašome: remontas nebuvo baigtas pažadėtą dieną. Sekame jo eigą ir pranešime, kai tik jis bus baigtas.",
        },
        "hr": {
            "subject": "Popravak traje dulje nego što smo obećali",
            "text": "Ispričavamo se: popravak nije završen do obećanog datuma. Pratimo ga i javit ćemo vam čim bude gotov.",
        },
    },
}


# The unsubscribe footer every e-mail carries, and the page its link opens (served by the storefront).
UNSUBSCRIBE: dict[str, Parts] = {
    "en": {
        "footer": "You get this e-mail because you agreed to hear from us. To stop these e-mails: {{ url }}",
        "title": "Unsubscribe",
        "question": "Stop receiving our {{ channel }} messages?",
        "button": "Unsubscribe",
        "done": "Done: you will not receive our {{ channel }} messages any more.",
    },
    "pl": {
        "footer": "Otrzymujesz tę wiadomość, ponieważ zgodziłeś się na kontakt. Aby zrezygnować z tych e-maili: {{ url }}",
        "title": "Wypisz się",
        "question": "Zrezygnować z naszych wiadomości ({{ channel }})?",
        "button": "Wypisz mnie",
        "done": "Gotowe: nie będziesz już otrzymywać naszych wiadomości ({{ channel }}).",
    },
    "ru": {
        "footer": "Вы получили это письмо, потому что согласились получать от нас сообщения. Чтобы отписаться: {{ url }}",
        "title": "Отписаться",
        "question": "Больше не получать наши сообщения ({{ channel }})?",
        "button": "Отписаться",
        "done": "Готово: вы больше не будете получать наши сообщения ({{ channel }}).",
    },
    "lt": {
        "footer": "Gaunate šį laišką, nes sutikote gauti mūsų žinutes. Norėdami jų atsisakyti: {{ url }}",
        "title": "Atsisakyti",
        "question": "Nebegauti mūsų žinučių ({{ channel }})?",
        "button": "Atsisakyti",
        "done": "Atlikta: mūsų žinučių ({{ channel }}) nebegausite.",
    },
    "hr": {
        "footer": "Ovu poruku primate jer ste pristali na kontakt. Za odjavu s ovih e-poruka: {{ url }}",
        "title": "Odjava",
        "question": "Prestati primati naše poruke ({{ channel }})?",
        "button": "Odjavi me",
        "done": "Gotovo: više nećete primati naše poruke ({{ channel }}).",
    },
}
BUILTIN["unsubscribe"] = UNSUBSCRIBE


class MessageSandbox(SandboxedEnvironment):
    """Jinja2's sandbox, narrowed for text a marketer writes: besides Python's internals, nothing that
    can make a message enormous or slow. No global functions (``range``, ``lipsum`` …: a nested loop
    over ``range`` alone runs 10^10 times), no repeating strings or lists with ``*``, no ``**``, no
    padding filters whose width is the author's to choose (``center``, ``indent``, ``wordwrap``,
    ``format``). Loops run over the message's own values, which are small."""

    intercepted_binops = frozenset({"*", "**"})
    REMOVED_FILTERS = ("center", "indent", "wordwrap", "format")

    def __init__(self) -> None:
        # a value a template names but the message lacks renders empty rather than failing the message
        super().__init__(autoescape=True)
        self.globals.clear()
        for name in self.REMOVED_FILTERS:
            self.filters.pop(name, None)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        repeats = isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple)
        if operator == "**" or repeats:
            raise SecurityError(f"'{operator}' is not allowed here")
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    return MessageSandbox()


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


# What the marketing team published (``shared.template_store.follow`` keeps it current): a published
# template replaces the built-in one of its id as a whole.
PUBLISHED: dict[str, dict[str, Parts]] = {}


def install(published: Mapping[str, Mapping[str, Parts]]) -> None:
    PUBLISHED.clear()
    PUBLISHED.update({k: {loc: dict(p) for loc, p in v.items()} for k, v in published.items()})


def lookup(template_id: str) -> dict[str, Parts] | None:
    return PUBLISHED.get(template_id) or BUILTIN.get(template_id)


def render(
    template_id: str,
    locale: str | None,
    values: Mapping[str, Any] | None = None,
    template: Mapping[str, Parts] | None = None,
) -> tuple[str, Parts]:
    """The template's parts in the best locale, rendered with ``values``; (locale used, parts).
    ``template`` renders those parts instead of the ones in force (a preview of a draft)."""
    template = template or lookup(template_id)
    if template is None:
        raise KeyError(f"no template {template_id!r}")
    used, parts = pick(template, locale)
    try:
        return used, {name: _compiled(source).render(**(values or {})) for name, source in parts.items()}
    except TemplateError as exc:
        raise ValueError(f"template {template_id} ({used}) does not render: {exc}") from None


# --- templates as the marketing team edits them ----------------------------------------------------
TEMPLATE_ID = r"^[a-z0-9][a-z0-9_-]{1,62}$"
LOCALE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"
PART = r"^[a-z][a-z0-9_]{0,39}$"


def _compiles(source: str) -> str:
    """A part must compile in the sandbox (a syntax error or an unknown filter is refused with its
    line, not at send time) and must not reach for what the sandbox forbids (``__class__`` and the
    like), which is refused when it is saved rather than failing every message later."""
    try:
        compiled = _compiled(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"line {exc.lineno}: {exc.message}") from None
    try:
        compiled.render()
    except SecurityError as exc:
        raise ValueError(f"not allowed in a template: {exc}") from None
    except Exception:  # noqa: S110 - missing values and the like fail here, not with real values
        pass
    return source


Source = Annotated[str, StringConstraints(max_length=20_000), AfterValidator(_compiles)]
Locale = Annotated[str, StringConstraints(pattern=LOCALE)]
PartName = Annotated[str, StringConstraints(pattern=PART)]


class Template(BaseModel):
    """A message template: its parts (``subject``, ``text`` …) per locale, Jinja2 in the sandbox."""

    model_config = ConfigDict(extra="forbid")

    template_id: str = Field(pattern=TEMPLATE_ID)
    version: int = Field(ge=1)
    description: str = Field("", max_length=500)
    locales: dict[Locale, dict[PartName, Source]] = Field(min_length=1, max_length=50)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Template:
        """Validate, and check that every locale has the parts the template's users read (those of the
        built-in template of the same id: a pop-up needs its ``title``, ``cta`` …, an e-mail its
        ``subject`` and ``text``); errors name the field, as pydantic's do."""
        template = cls.model_validate(raw)
        builtin = BUILTIN.get(template.template_id)
        required = set(builtin["en"]) if builtin else set()
        errors = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "missing_parts", "missing parts: {parts}", {"parts": ", ".join(sorted(missing))}
                ),
                loc=("locales", locale),
                input=parts,
            )
            for locale, parts in template.locales.items()
            if (missing := required - set(parts))
        ]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return template
