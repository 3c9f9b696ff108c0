"""Templates in MongoDB, versioned like the rules (draft, publish, roll back), and how services follow them.

The built-in templates (``shared.templates.BUILTIN``) are in force until a team publishes its own
version of one; a published template replaces the built-in one of its id as a whole. The dispatcher
(messages) and the storefront (pop-ups) re-read what is published every ``PROACT_TEMPLATES_REFRESH_S``.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from shared import templates, versioned
from shared.settings import Settings
from shared.store import Collections, Document
from shared.templates import Template
from shared.versioned import VersionedStore

log = logging.getLogger(__name__)

TEMPLATES: VersionedStore[Template] = VersionedStore(Collections.TEMPLATES, "template", Template.parse)


def builtin(template_id: str) -> dict[str, Any] | None:
    """A built-in template in the shape of a stored one (version 0: never saved)."""
    parts = templates.BUILTIN.get(template_id)
    if parts is None:
        return None
    return {
        "template_id": template_id,
        "version": 0,
        "status": "built-in",
        "template": {"template_id": template_id, "version": 0, "description": "built in", "locales": parts},
    }


async def published(db: AsyncDatabase[Document]) -> dict[str, dict[str, templates.Parts]]:
    """The parts per locale of every published template, by id (a stored one that no longer
    validates is left out, and the built-in one stays in force)."""
    found: dict[str, dict[str, templates.Parts]] = {}
    for key, doc in (await TEMPLATES.in_force(db)).items():
        try:
            found[key] = Template.parse(doc["template"]).locales
        except ValidationError as exc:
            log.error("invalid template %s in the store, left out: %s", key, str(exc)[:300])
    return found


async def follow(settings: Settings, interval_s: float, in_force: templates.InForce) -> None:
    """Put what is published in force now, then again whenever that changes (``shared.versioned.follow``)."""

    async def load(db: AsyncDatabase[Document]) -> None:
        in_force.replace(await published(db))
        log.info("templates loaded", extra={"templates": sorted(in_force.published)})

    await versioned.follow(settings, interval_s, "templates", TEMPLATES.signature, load)
