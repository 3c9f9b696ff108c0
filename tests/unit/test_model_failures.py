"""Models never stop a service and never go missing quietly: PROACT_CACHE decides where they are,
a promoted model that fails to load leaves the last good one in use (and says so), and a rollback
checks its target first."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from shared.models.registry import METADATA_FILE, MODEL_FILE, ModelHandle, ModelRefused, Registry
from shared.settings import EngineSettings


def test_the_model_folder_follows_proact_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PROACT_MODEL_DIR", raising=False)
    monkeypatch.setenv("PROACT_CACHE", str(tmp_path))
    assert EngineSettings().model_dir == tmp_path / "models"
    monkeypatch.setenv("PROACT_MODEL_DIR", str(tmp_path / "elsewhere"))
    assert EngineSettings().model_dir == tmp_path / "elsewhere"


def two_versions(intent_model: Path, root: Path) -> tuple[Registry, str, str]:
    registry = Registry(root)
    first = registry.add(intent_model)
    copy = root.parent / "copy"
    shutil.copytree(intent_model, copy)
    meta = json.loads((copy / METADATA_FILE).read_text())
    (copy / METADATA_FILE).write_text(json.dumps({**meta, "version": f"{first}-b"}))
    second = registry.add(copy)
    return registry, first, second


def test_a_promoted_model_that_fails_to_load_leaves_the_last_good_one_in_use(
    intent_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry, first, second = two_versions(intent_model, tmp_path / "registry")
    registry.promote("intent", first)
    handle = ModelHandle(registry, "intent", check_every_s=0)
    assert handle.current() is not None
    registry.promote("intent", second)
    (registry.root / "intent" / second / MODEL_FILE).write_bytes(b"altered")  # after its promotion
    with caplog.at_level(logging.ERROR):
        model = handle.current()  # noticed, refused, and the service goes on
    assert model is not None
    assert model.version == first
    assert handle.status()["refused"] is not None
    assert "still scoring with" in caplog.text


def test_without_a_promoted_model_a_service_says_scores_are_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        handle = ModelHandle(Registry(tmp_path / "empty"), "intent")
    assert handle.current() is None
    assert handle.status()["scores"] == "off: no model promoted"
    assert "scores are off" in caplog.text


def test_a_rollback_verifies_its_target_first(intent_model: Path, tmp_path: Path) -> None:
    registry, first, second = two_versions(intent_model, tmp_path / "registry")
    registry.promote("intent", first)
    registry.promote("intent", second)
    (registry.root / "intent" / first / MODEL_FILE).unlink()  # the older version's file is gone
    with pytest.raises(ModelRefused):
        registry.rollback("intent")
    assert registry.promoted("intent") == second  # nothing changed
