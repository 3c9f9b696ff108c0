"""The routes every versioned document has (rules, templates): validate without saving, save a
draft, publish a version. One factory, so the two behave the same way: a refusal is a 422 naming
the field (``conditions.1.expr``, ``locales.en.subject``), a draft saved by two people at once is a
409 for the second, publishing an older version again is a rollback."""

# no ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, and
# ``ItemId`` is local to the factory (a string annotation would not resolve)
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Request
from pydantic import ValidationError
from pymongo.errors import DuplicateKeyError

from services.admin.access import Marketer, Publisher, Viewer
from shared.versioned import VersionedStore


def refusal(exc: ValidationError, within: str | None = None) -> HTTPException:
    """422 naming the field that is wrong (``conditions.1.expr``); ``within`` replaces the first part
    of each field's path (the body names it otherwise)."""
    errors = [
        {
            "field": ".".join(str(p) for p in ((within, *e["loc"][1:]) if within and e["loc"] else e["loc"])),
            "message": e["msg"],
        }
        for e in exc.errors()
    ]
    first = errors[0]
    return HTTPException(
        422, {"detail": f"{first['field']}: {first['message']}", "field": first["field"], "errors": errors}
    )


def add_versioned_routes(router: APIRouter, store: VersionedStore[Any], path: str, id_pattern: str) -> None:
    """``POST /{path}/validate``, ``PUT /{path}/{id}``, ``POST /{path}/{id}/versions/{n}/publish``."""
    kind, id_field = store.kind, store.id_field
    ItemId = Annotated[str, Path(pattern=id_pattern, alias=id_field)]

    @router.post(
        f"/{path}/validate",
        name=f"validate_{kind}",
        description=f"Check a {kind} without saving it: `valid` and the errors with their fields.",
    )
    async def validate(raw: Annotated[dict[str, Any], Body()], _: Viewer) -> dict[str, Any]:
        try:
            store.parse({**raw, "version": 1})
        except ValidationError as exc:
            return {"valid": False, "errors": refusal(exc).detail["errors"]}  # type: ignore[index]
        return {"valid": True, "errors": []}

    @router.put(
        f"/{path}/{{{id_field}}}",
        status_code=201,
        name=f"save_{kind}_draft",
        description=f"Save a {kind} as a new draft version (publish it to put it in force).",
    )
    async def save_draft(
        request: Request, item_id: ItemId, raw: Annotated[dict[str, Any], Body()], who: Marketer
    ) -> dict[str, Any]:
        if raw.get(id_field, item_id) != item_id:
            raise HTTPException(422, {"detail": f"{id_field}: differs from the path", "field": id_field})
        try:
            saved = await store.save_draft(request.app.state.db, {**raw, id_field: item_id}, author=who.who)
        except ValidationError as exc:
            raise refusal(exc) from None
        except DuplicateKeyError:  # two saves took the same next version: the unique _id refused the second
            raise HTTPException(
                409, f"another version of this {kind} was saved at the same moment; reload and retry"
            ) from None
        return {id_field: item_id, "version": saved.version, "status": "draft", kind: saved.model_dump(mode="json")}

    @router.post(
        f"/{path}/{{{id_field}}}/versions/{{version}}/publish",
        name=f"publish_{kind}",
        description=f"Put a version of a {kind} in force (the services pick it up within seconds); "
        "publishing an older version again is a rollback.",
    )
    async def publish(
        request: Request, item_id: ItemId, version: Annotated[int, Path(ge=1)], who: Publisher
    ) -> dict[str, Any]:
        saved = await store.publish(request.app.state.db, item_id, version, author=who.who)
        if saved is None:
            raise HTTPException(404, f"no version {version} of {kind} {item_id}")
        return {id_field: item_id, "version": saved.version, "status": "published"}
