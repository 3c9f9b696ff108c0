"""Message and pop-up content: templates per locale, rendered in Jinja2's sandbox.

A template is a set of named parts (``title``, ``body``, ``cta`` …) per locale. The locale asked for
falls back to its language and then to English (``pl-PL`` → ``pl`` → ``en``). Rendering runs in
``SandboxedEnvironment`` with autoescaping, so a marketer's template can reach neither Python
internals nor inject markup through the values it is given.
"""

from __future__ import annotations

import functools
import html
import signal
import threading
import time
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

from jinja2 import TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

Parts = dict[str, str]

# The built-in messages are content, not code: one TOML file per template and locale under
# shared/content/builtin/<template>/<locale>.toml, a key per part. They are loaded here and checked
# (every part compiles in the sandbox, every locale has the parts of English) when this module loads,
# so a broken file stops a service at start, not a message at send time.
CONTENT = Path(__file__).resolve().parent / "content" / "builtin"


def load_builtin(folder: Path = CONTENT) -> dict[str, dict[str, Parts]]:
    """``{template_id: {locale: {part: source}}}`` from the content folder."""
    found: dict[str, dict[str, Parts]] = {}
    for template in sorted(p for p in folder.iterdir() if p.is_dir()):
        found[template.name] = {
            f.stem: tomllib.loads(f.read_text(encoding="utf-8")) for f in sorted(template.glob("*.toml"))
        }
    return found


BUILTIN: dict[str, dict[str, Parts]] = load_builtin()


MAX_PART_CHARS = 64_000  # a rendered part, and any string or list a template makes on the way
RENDER_BUDGET_S = 0.25  # one render of all a message's parts
HEADER_PARTS = frozenset({"subject", "title"})  # one line each: a line break there breaks the e-mail
OPTIONAL_PARTS = frozenset({"html"})  # an e-mail's own HTML body; without it, its text as paragraphs


class BudgetExceeded(SecurityError):
    """A template that would make a message too large or take too long; it fails that message."""


class MessageSandbox(SandboxedEnvironment):
    """Jinja2's sandbox, narrowed for text a marketer writes: besides Python's internals, nothing that
    can make a message enormous or slow.

    - Statements: ``if`` and ``for`` only. ``set``, ``macro``, ``call``, ``import``, ``include``,
      ``extends``, ``block``, ``with`` and ``filter`` blocks are refused when a template is saved:
      with a variable or a macro, a few lines double a string 25 times (``s ~ s``), or recurse.
    - No global functions (``range``, ``lipsum`` …: a nested loop over ``range`` runs 10^10 times).
    - Operators: no ``*`` on strings or lists, no ``**``, no ``%`` formatting of strings
      (``'%50000000s' % 'x'``); ``+`` and ``~`` results are checked against ``MAX_PART_CHARS``.
    - Filters: the usual ones, not those whose output size is the author's to choose (``center``,
      ``indent``, ``wordwrap``, ``format``, ``batch``, ``slice``), each result checked against
      ``MAX_PART_CHARS`` (and ``replace`` before it runs).
    - Methods: only a few of strings and dicts that cannot grow a value (``upper``, ``get`` …).
    - Every render is budgeted: output past ``MAX_PART_CHARS`` a part, or ``RENDER_BUDGET_S`` of
      time (a loop over a long literal), stops it with ``BudgetExceeded``.
    """

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    REMOVED_FILTERS = ("center", "indent", "wordwrap", "format", "batch", "slice")
    FORBIDDEN_NODES = (
        nodes.Assign,
        nodes.AssignBlock,
        nodes.Macro,
        nodes.CallBlock,
        nodes.Import,
        nodes.FromImport,
        nodes.Include,
        nodes.Extends,
        nodes.Block,
        nodes.With,
        nodes.FilterBlock,
        nodes.Scope,
    )
    SAFE_METHODS = frozenset(
        {
            "upper",
            "lower",
            "title",
            "capitalize",
            "strip",
            "lstrip",
            "rstrip",
            "startswith",
            "endswith",
            "isdigit",
            "isalpha",
            "get",
            "keys",
            "values",
            "items",
        }
    )

    def __init__(self) -> None:
        # a value a template names but the message lacks renders empty rather than failing the message
        super().__init__(autoescape=True)
        self.globals.clear()
        for name in self.REMOVED_FILTERS:
            self.filters.pop(name, None)
        self.filters = {name: _bounded(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        sequences = (str, list, tuple)
        if operator == "**" or (operator == "*" and (isinstance(left, sequences) or isinstance(right, sequences))):
            raise SecurityError(f"'{operator}' is not allowed here")
        if operator == "%" and isinstance(left, str):
            raise SecurityError("'%' formatting of strings is not allowed here")
        return _checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        if owner is not None and not isinstance(owner, type | ModuleType) and __obj.__name__ not in __self.SAFE_METHODS:
            raise SecurityError(f"calling .{__obj.__name__}() is not allowed here")
        return _checked(super().call(__context, __obj, *args, **kwargs))

    def check_source(self, source: str) -> None:
        """Refuse the statements a message does not need (see the class); raises SecurityError."""
        tree = self.parse(source)
        for node in tree.find_all(self.FORBIDDEN_NODES):
            name = type(node).__name__.lower()
            raise SecurityError(f"'{name}' statements are not allowed in a message (line {node.lineno})")


def _checked(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_PART_CHARS:
        raise BudgetExceeded(f"a value of {len(value)} items or characters; at most {MAX_PART_CHARS}")
    return value


def _bounded(name: str, f: Any) -> Any:
    """A filter whose result is checked against the size budget (``replace``: before it runs, since
    a chain of them grows a value geometrically). Jinja's markers (``pass_eval_context`` …) are kept."""

    def checked(*args: Any, **kwargs: Any) -> Any:
        if name == "replace" and len(args) >= 4:  # (eval_ctx, value, old, new[, count])
            value, old, new = (str(a) for a in args[1:4])
            if old and len(value) + value.count(old) * max(len(new) - len(old), 0) > MAX_PART_CHARS:
                raise BudgetExceeded(f"replace would make more than {MAX_PART_CHARS} characters")
        return _checked(f(*args, **kwargs))

    return functools.wraps(f)(checked)


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise ``BudgetExceeded`` in the code running after ``seconds``: a timer signal, so that a loop
    inside the render is stopped too. Services render on their main thread (the event loop's);
    elsewhere (a worker thread) only the size budget applies. A timer already set (a test runner's
    time-out) is put back afterwards with what was left of it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    if outer_left and outer_left <= seconds:
        yield  # the outer timer comes first anyway
        return

    def expired(signum: int, frame: Any) -> None:
        raise BudgetExceeded(f"rendering took longer than {seconds * 1000:.0f} ms")

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - started), 0.001), outer_interval)


def _render_part(compiled: Any, values: Mapping[str, Any]) -> str:
    out: list[str] = []
    size = 0
    for chunk in compiled.generate(**values):
        size += len(chunk)
        if size > MAX_PART_CHARS:
            raise BudgetExceeded(f"the message would be longer than {MAX_PART_CHARS} characters")
        out.append(chunk)
    return "".join(out)


@lru_cache(maxsize=1)
def _environment() -> MessageSandbox:
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
    """The compiled template, for source that uses only the statements a message may (checked here,
    so a template published before a statement was forbidden is refused at render time too)."""
    environment = _environment()
    environment.check_source(source)
    return environment.from_string(source)


class InForce:
    """The templates in force in one service: what the marketing team published, over the built-in
    ones (a published template replaces the built-in one of its id as a whole). Each service holds
    one, which ``shared.template_store.follow`` keeps current, and renders through it."""

    def __init__(self, published: Mapping[str, Mapping[str, Parts]] | None = None) -> None:
        self.published: dict[str, dict[str, Parts]] = {}
        self.replace(published or {})

    def replace(self, published: Mapping[str, Mapping[str, Parts]]) -> None:
        self.published = {k: {loc: dict(p) for loc, p in v.items()} for k, v in published.items()}

    def lookup(self, template_id: str) -> dict[str, Parts] | None:
        return self.published.get(template_id) or BUILTIN.get(template_id)

    def render(
        self, template_id: str, locale: str | None, values: Mapping[str, Any] | None = None
    ) -> tuple[str, Parts]:
        template = self.lookup(template_id)
        if template is None:
            raise KeyError(f"no template {template_id!r}")
        return render(template_id, locale, values, template)


def render(
    template_id: str,
    locale: str | None,
    values: Mapping[str, Any] | None = None,
    template: Mapping[str, Parts] | None = None,
) -> tuple[str, Parts]:
    """The template's parts in the best locale, rendered with ``values``; (locale used, parts).
    ``template`` is the template's parts per locale (what is in force: ``InForce.render``; a draft, for
    a preview); without it, the built-in template of that id."""
    template = template or BUILTIN.get(template_id)
    if template is None:
        raise KeyError(f"no template {template_id!r}")
    used, parts = pick(template, locale)
    try:
        with _deadline(RENDER_BUDGET_S):
            return used, {name: _render_part(_compiled(source), values or {}) for name, source in parts.items()}
    except (TemplateError, BudgetExceeded) as exc:
        raise ValueError(f"template {template_id} ({used}) does not render: {exc}") from None
    except Exception as exc:  # a value the template cannot use, a recursion: this message fails, never the caller
        raise ValueError(f"template {template_id} ({used}) does not render: {type(exc).__name__}: {exc}") from None


# --- e-mail ------------------------------------------------------------------------------------------
EMAIL_LAYOUT = (Path(__file__).resolve().parent / "content" / "layout" / "email.html").read_text(encoding="utf-8")


def subject_of(parts: Parts) -> str:
    """A rendered message's one-line headline: an e-mail's ``subject``, or a pop-up's ``title``."""
    return parts.get("subject") or parts.get("title", "")


def text_of(parts: Parts) -> str:
    """A rendered message's text: ``text``, or a pop-up's ``body``."""
    return parts.get("text") or parts.get("body", "")


def plain(rendered: str) -> str:
    """A rendered part as plain text: parts render with autoescaping (a pop-up puts them into a page),
    so a value's ``&`` arrives as ``&amp;``; a text e-mail or an SMS wants the character itself."""
    return html.unescape(rendered)


def email_html(lang: str, subject: str, text: str, body: str | None = None, footer: str | None = None) -> str:
    """The HTML alternative of an e-mail: the shared layout (``content/layout/email.html``) with the
    message's own ``html`` part as ``body`` when it has one, else its text as paragraphs. ``subject``
    and ``text`` are rendered parts (already escaped), ``body`` and ``footer`` rendered HTML; the
    layout renders in the sandbox under the same budget as any message."""
    paragraphs = [Markup(p.strip()).replace("\n", Markup("<br>")) for p in text.split("\n\n") if p.strip()]  # noqa: S704 - rendered with autoescaping
    values = {
        "lang": lang,
        "subject": Markup(subject),  # noqa: S704 - rendered with autoescaping
        "paragraphs": paragraphs,
        "body": Markup(body) if body else None,  # noqa: S704 - rendered with autoescaping
        "footer": Markup(footer) if footer else None,  # noqa: S704 - rendered with autoescaping
    }
    try:
        with _deadline(RENDER_BUDGET_S):
            return _render_part(_compiled(EMAIL_LAYOUT), values)
    except (TemplateError, BudgetExceeded) as exc:
        raise ValueError(f"the e-mail layout does not render: {exc}") from None


# --- templates as the marketing team edits them ----------------------------------------------------
TEMPLATE_ID = r"^[a-z0-9][a-z0-9_-]{1,62}$"
LOCALE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"
PART = r"^[a-z][a-z0-9_]{0,39}$"


def _compiles(source: str) -> str:
    """A part must compile in the sandbox (a syntax error or an unknown filter is refused with its
    line, not at send time), use only the statements a message needs, and must not reach for what
    the sandbox forbids (``__class__`` and the like) or go over its budget when rendered (the same
    budgeted render as at send time): refused when it is saved rather than failing every message."""
    try:
        compiled = _compiled(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"line {exc.lineno}: {exc.message}") from None
    except SecurityError as exc:
        raise ValueError(f"not allowed in a template: {exc}") from None
    try:
        with _deadline(RENDER_BUDGET_S):
            _render_part(compiled, {})
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
        ``subject`` and ``text``; an ``html`` part is optional: without it the text is the e-mail's
        HTML body, as paragraphs); errors name the field, as pydantic's do."""
        template = cls.model_validate(raw)
        builtin = BUILTIN.get(template.template_id)
        required = set(builtin["en"]) - OPTIONAL_PARTS if builtin else set()
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
        errors += [
            InitErrorDetails(
                type=PydanticCustomError("one_line", "a {part} is one line: no line breaks", {"part": part}),
                loc=("locales", locale, part),
                input=source,
            )
            for locale, parts in template.locales.items()
            for part, source in parts.items()
            if part in HEADER_PARTS and ("\n" in source or "\r" in source)
        ]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return template


def _check_builtin() -> None:
    for template_id, locales in BUILTIN.items():
        Template.parse({"template_id": template_id, "version": 1, "locales": locales})


_check_builtin()
