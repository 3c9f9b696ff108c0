"""Message templates over HTTP: list, versions, validate, save a draft, publish or roll back, preview
per locale, and a test-send by e-mail.

A template's parts (``subject``, ``text`` for messages; ``title``, ``body``, ``cta`` … for pop-ups)
are Jinja2, rendered in the sandbox. Until a team publishes its own version, the built-in template
of an id is in force (shown as version 0). A preview renders the draft being edited, a stored
version, or what is in force, in every locale side by side, with the values a real message would
have for a chosen customer (the action context of the rule that sends the template, evaluated on
what the engine knows of them), or with sample values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Request
from pydantic import BaseModel, EmailStr, Field, ValidationError

from services.admin.access import Marketer, Viewer
from services.admin.dryrun import known_facts
from services.admin.versioned_routes import add_versioned_routes, refusal
from shared import templates
from shared.mail import Mailer, MailRefused
from shared.rules import store as rule_store
from shared.rules.conditions import context, value_of
from shared.template_store import TEMPLATES, builtin
from shared.templates import TEMPLATE_ID, Locale, Template
from shared.versioned import audit

router = APIRouter(prefix="/v1", tags=["templates"])
TemplateId = Annotated[str, Path(pattern=TEMPLATE_ID)]
Value = str | int | float | bool | None


def sample_values(now: datetime) -> dict[str, Any]:
    """What a preview without a customer fills the built-in templates' placeholders with."""
    return {
        "customer_id": "C-SAMPLE",
        "order_id": "SAMPLE-1001",
        "estimated_delivery": (now + timedelta(days=3)).date().isoformat(),
        "last_order_at": (now - timedelta(days=90)).date().isoformat(),
        "orders": 3,
    }


class Preview(BaseModel):
    """What to render: ``template`` (unsaved parts being edited), else ``version``, else what is in force."""

    template: dict[Locale, dict[str, str]] | None = Field(None, description="parts per locale, not saved")
    version: int | None = Field(None, ge=0)
    locales: list[Locale] | None = Field(None, max_length=50, description="default: the template's own")
    customer_id: str | None = Field(None, min_length=1, max_length=200)
    order_id: str | None = Field(None, min_length=1, max_length=200)
    values: dict[str, Value] = Field(default_factory=dict, max_length=50, description="override any value")


class TestSend(Preview):
    to: EmailStr
    locale: Locale = "en"


async def _stored(request: Request, template_id: str, version: int | None) -> dict[str, Any]:
    """The parts of a version (0: the built-in one), or of what is in force."""
    docs = await TEMPLATES.versions(request.app.state.db, template_id)
    if version is not None:
        docs = [d for d in docs if d["version"] == version]
    else:
        docs = [d for d in docs if d["status"] == "published"][:1]
    if docs:
        return dict(docs[0]["template"]["locales"])
    if version in (None, 0) and (found := builtin(template_id)):
        return dict(found["template"]["locales"])
    raise HTTPException(404, f"no template {template_id}" + (f" version {version}" if version is not None else ""))


async def _parts(request: Request, template_id: str, body: Preview) -> dict[str, Any]:
    if body.template is None:
        return await _stored(request, template_id, body.version)
    try:
        return Template.parse({"template_id": template_id, "version": 1, "locales": body.template}).locales
    except ValidationError as exc:
        raise refusal(exc, within="template") from None


async def _values(request: Request, template_id: str, body: Preview, now: datetime) -> dict[str, Any]:
    """A real message's values for the customer asked for: the action context of the rule that sends
    this template (the one in force first), evaluated as the engine would; else sample values."""
    if body.customer_id is None:
        return {**sample_values(now), **body.values}
    db = request.app.state.db
    rules = [r for r in await rule_store.published(db) if r.action.template_id == template_id]
    rule = rules[0] if rules else None
    facts = await known_facts(db, rule, body.customer_id, body.order_id, now)
    if rule is not None:
        ctx = context(facts)
        found = {name: value_of(expr, ctx) for name, expr in rule.action.context.items()}
    else:  # no rule sends it yet: what the engine knows, flat
        found = {**facts["customer"], **facts["order"]}
    return {**found, "customer_id": body.customer_id, **body.values}


def _render(template_id: str, parts: dict[str, Any], locale: str, values: dict[str, Any]) -> dict[str, Any]:
    try:
        used, rendered = templates.render(template_id, locale, values, template=parts)
    except ValueError as exc:
        raise HTTPException(422, {"detail": str(exc), "field": f"template.{locale}"}) from None
    return {"locale": used, "parts": rendered}


@router.get("/templates")
async def list_templates(request: Request, _: Viewer) -> list[dict[str, Any]]:
    """Every template: the version in force (0 for a built-in one), the newest draft, the locales."""
    db = request.app.state.db
    rows: dict[str, dict[str, Any]] = {}
    for key, parts in templates.BUILTIN.items():
        rows[key] = {"template_id": key, "published": 0, "draft": None, "locales": sorted(parts)}
    async for doc in db[TEMPLATES.collection].find({}, {"template_id": 1, "version": 1, "status": 1, "template": 1}):
        row = rows.setdefault(
            doc["template_id"], {"template_id": doc["template_id"], "published": None, "draft": None, "locales": []}
        )
        slot = "published" if doc["status"] == "published" else "draft"
        if row[slot] is None or doc["version"] > row[slot]:
            row[slot] = doc["version"]
            if slot == "published":
                row["locales"] = sorted(doc["template"]["locales"])
    for row in rows.values():
        if row["draft"] is not None and row["published"] is not None and row["draft"] < row["published"]:
            row["draft"] = None
    return sorted(rows.values(), key=lambda r: r["template_id"])


@router.get("/templates/{template_id}")
async def template_versions(request: Request, template_id: TemplateId, _: Viewer) -> list[dict[str, Any]]:
    """All versions, newest first; the built-in template last, as version 0."""
    found = [
        {k: v for k, v in d.items() if k != "_id"} for d in await TEMPLATES.versions(request.app.state.db, template_id)
    ]
    if (original := builtin(template_id)) is not None:
        found.append(original)
    if not found:
        raise HTTPException(404, f"no template {template_id}")
    return found


add_versioned_routes(router, TEMPLATES, "templates", TEMPLATE_ID)


@router.post("/templates/{template_id}/preview")
async def preview(
    request: Request, template_id: TemplateId, body: Annotated[Preview, Body()], _: Viewer
) -> dict[str, Any]:
    """The template rendered in each locale side by side (a locale it lacks falls back as a message
    would: ``pl-PL`` → ``pl`` → ``en``), and the values used."""
    now = datetime.now(UTC)
    parts = await _parts(request, template_id, body)
    values = await _values(request, template_id, body, now)
    locales = body.locales or sorted(parts)
    return {
        "template_id": template_id,
        "values": values,
        "previews": {loc: _render(template_id, parts, loc, values) for loc in locales},
    }


@router.post("/templates/{template_id}/test-send", status_code=202)
async def test_send(
    request: Request, template_id: TemplateId, body: Annotated[TestSend, Body()], who: Marketer
) -> dict[str, Any]:
    """Send the rendered template to one address, marked as a test, through the configured mail
    server. The address is not stored nor logged (the audit log keeps its domain only)."""
    mailer: Mailer | None = request.app.state.mailer
    if mailer is None:
        raise HTTPException(409, "no mail server is configured for the admin (PROACT_SMTP_HOST)")
    now = datetime.now(UTC)
    parts = await _parts(request, template_id, body)
    values = await _values(request, template_id, body, now)
    rendered = _render(template_id, parts, body.locale, values)
    try:
        mail = mailer.compose_rendered(str(body.to), rendered["locale"], rendered["parts"], subject_prefix="[test] ")
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        await mailer.send(mail, str(body.to))
    except MailRefused as exc:
        raise HTTPException(422 if exc.permanent else 502, exc.reason) from None
    domain = str(body.to).rsplit("@", 1)[-1]
    await audit(
        request.app.state.db,
        who.who,
        "template.test_sent",
        template_id,
        None,
        {"locale": rendered["locale"], "to_domain": domain, "version": body.version},
    )
    return {"sent": True, "locale": rendered["locale"], "subject": mail["Subject"]}
