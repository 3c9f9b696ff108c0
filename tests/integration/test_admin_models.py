"""The models page's API on a real registry folder: versions and metrics, the card and plots,
promote and roll back by role, a tampered file never promoted, every change in the audit log."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.admin import access
from shared.models.registry import MODEL_FILE, Registry

pytestmark = pytest.mark.integration


def copy_version(source: Path, dest: Path, version: str) -> Path:
    shutil.copytree(source, dest)
    meta = json.loads((dest / "metadata.json").read_text())
    (dest / "metadata.json").write_text(json.dumps({**meta, "version": version}))
    return dest


@pytest.fixture
async def registry(admin_app: FastAPI, tmp_path: Path, churn_model: Path) -> AsyncIterator[Registry]:
    registry = Registry(tmp_path / "registry")
    first = registry.add(churn_model)
    registry.promote("churn", first)
    registry.add(copy_version(churn_model, tmp_path / "v2", "v2"))
    tampered = registry.add(copy_version(churn_model, tmp_path / "v3", "v3"))
    with (registry.root / "churn" / tampered / MODEL_FILE).open("ab") as f:
        f.write(b"\0")  # after it was registered: its hash no longer matches
    settings = admin_app.state.settings
    admin_app.state.settings = settings.model_copy(update={"model_dir": registry.root})
    yield registry
    admin_app.state.settings = settings


async def test_models_are_listed_shown_promoted_and_rolled_back(admin_app: FastAPI, registry: Registry) -> None:
    db = admin_app.state.db
    keys = {r: (await access.create_key(db, f"m-{r}", r, by="tests"))[0] for r in ("viewer", "marketer", "publisher")}
    first = registry.promoted("churn")

    def as_(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[role]}"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=admin_app), base_url="http://admin") as http:
        listed = (await http.get("/v1/models", headers=as_("viewer"))).json()
        assert listed["churn"]["promoted"] == first
        assert {v["version"] for v in listed["churn"]["versions"]} == {first, "v2", "v3"}
        assert 0.5 < listed["churn"]["versions"][0]["roc_auc"] < 1
        shown = (await http.get("/v1/models/churn/v2", headers=as_("viewer"))).json()
        assert shown["promoted"] is False
        assert shown["card"]
        image = await http.get(shown["plots"][0], headers=as_("viewer"))
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG")
        assert (await http.get("/v1/models/churn/v2/plots/..%2Fmodel.png", headers=as_("viewer"))).status_code == 404
        assert (await http.get("/v1/models/churn/nope", headers=as_("viewer"))).status_code == 404

        assert (await http.post("/v1/models/churn/versions/v2/promote", headers=as_("marketer"))).status_code == 403
        promoted = await http.post("/v1/models/churn/versions/v2/promote", headers=as_("publisher"))
        assert promoted.status_code == 200
        assert registry.promoted("churn") == "v2"
        refused = await http.post("/v1/models/churn/versions/v3/promote", headers=as_("publisher"))
        assert refused.status_code == 422
        assert registry.promoted("churn") == "v2"
        back = await http.post("/v1/models/churn/rollback", headers=as_("publisher"))
        assert back.json()["promoted"] == first
        assert (await http.post("/v1/models/churn/rollback", headers=as_("publisher"))).status_code == 409
        audit = (await http.get("/v1/audit", params={"subject": "churn:"}, headers=as_("viewer"))).json()
        assert [a["action"] for a in audit] == ["model.rolled_back", "model.promoted"]
