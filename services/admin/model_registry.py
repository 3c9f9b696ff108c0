"""The scoring models over HTTP: each kind's versions, the promoted one, the trainer's metrics, model
card and plots; promote a version or roll back to the one before.

The registry is the folder the trainer writes (``PROACT_MODEL_DIR``, a shared volume in Kubernetes);
promoting rewrites its pointer file atomically and the engine and storefront load the new model
within seconds, without a restart. A version whose file fails its integrity check is never promoted.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import FileResponse

from services.admin.access import Publisher, Viewer
from shared.models.registry import METADATA_FILE, ModelRefused, Registry, load_artifact
from shared.versioned import audit

router = APIRouter(prefix="/v1", tags=["models"])
Kind = Annotated[Literal["churn", "intent"], Path()]
Version = Annotated[str, Path(pattern=r"^[0-9A-Za-z._-]{1,80}$")]
PLOT = r"^[a-z0-9_]{1,40}\.png$"


def _registry(request: Request) -> Registry:
    return Registry(request.app.state.settings.model_dir)


def _metadata(registry: Registry, kind: str, version: str) -> dict[str, Any]:
    path = registry.root / kind / version / METADATA_FILE
    if version not in registry.versions(kind) or not path.is_file():
        raise HTTPException(404, f"no {kind} model version {version}")
    found: dict[str, Any] = json.loads(path.read_text())
    return found


def _headline(meta: dict[str, Any]) -> dict[str, Any]:
    report = meta.get("report") or {}
    return {
        "version": meta.get("version"),
        "created_at": meta.get("created_at"),
        "roc_auc": report.get("roc_auc"),
        "pr_auc": report.get("pr_auc"),
        "brier": report.get("brier"),
        "rows": report.get("rows"),
    }


@router.get("/models")
async def list_models(request: Request, _: Viewer) -> dict[str, Any]:
    """Per kind: the promoted version and every version with its headline metrics, newest first."""
    registry = _registry(request)
    return {
        kind: {
            "promoted": registry.promoted(kind),
            # in words, for the page: a folder without a promoted model is the usual cause of "no scores"
            "status": _status(registry, kind),
            "versions": [_headline(_metadata(registry, kind, v)) for v in reversed(registry.versions(kind))],
        }
        for kind in ("churn", "intent")
    }


def _status(registry: Registry, kind: str) -> str:
    version = registry.promoted(kind)
    if version is None:
        return f"no {kind} model promoted in {registry.root}: {kind} scores are off"
    try:
        load_artifact(registry.root / kind / version, kind)
    except ModelRefused as exc:
        return f"the promoted {kind} model is refused ({exc}): services keep their last good one, or score nothing"
    return f"{version} in force"


@router.get("/models/{kind}/{version}")
async def model(request: Request, kind: Kind, version: Version, _: Viewer) -> dict[str, Any]:
    """A version's metadata (features, training data, validation, report), its model card and plots."""
    registry = _registry(request)
    meta = _metadata(registry, kind, version)
    card = registry.root / kind / version / "card.md"
    plots = [FilePath(p).name for p in meta.get("plots", [])]
    return {
        "kind": kind,
        "promoted": registry.promoted(kind) == version,
        "metadata": meta,
        "card": card.read_text() if card.is_file() else None,
        "plots": [f"/v1/models/{kind}/{version}/plots/{name}" for name in plots],
    }


@router.get("/models/{kind}/{version}/plots/{name}", response_class=FileResponse)
async def plot(
    request: Request, kind: Kind, version: Version, name: Annotated[str, Path(pattern=PLOT)], _: Viewer
) -> FileResponse:
    """One of the trainer's plots (ROC, precision-recall, calibration) as PNG."""
    registry = _registry(request)
    _metadata(registry, kind, version)
    path = registry.root / kind / version / "report" / name
    if not path.is_file():
        raise HTTPException(404, f"no plot {name}")
    return FileResponse(path, media_type="image/png")


@router.post("/models/{kind}/versions/{version}/promote")
async def promote(request: Request, kind: Kind, version: Version, who: Publisher) -> dict[str, Any]:
    """Put a version in force (the services load it within seconds)."""
    registry = _registry(request)
    before = registry.promoted(kind)
    _metadata(registry, kind, version)
    try:
        await asyncio.to_thread(registry.promote, kind, version)
    except ModelRefused as exc:
        raise HTTPException(422, {"detail": f"this model file is refused: {exc}", "field": "version"}) from None
    await audit(
        request.app.state.db, who.who, "model.promoted", f"{kind}:{version}", {"version": before}, {"version": version}
    )
    return {"kind": kind, "promoted": version}


@router.post("/models/{kind}/rollback")
async def rollback(request: Request, kind: Kind, who: Publisher) -> dict[str, Any]:
    """Go back to the version promoted before this one."""
    registry = _registry(request)
    before = registry.promoted(kind)
    try:
        version = await asyncio.to_thread(registry.rollback, kind)
    except KeyError as exc:
        raise HTTPException(409, str(exc.args[0])) from None
    except ModelRefused as exc:
        raise HTTPException(409, f"the version to roll back to is refused, nothing changed: {exc}") from None
    await audit(
        request.app.state.db,
        who.who,
        "model.rolled_back",
        f"{kind}:{version}",
        {"version": before},
        {"version": version},
    )
    return {"kind": kind, "promoted": version}
