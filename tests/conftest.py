"""Fixtures shared by all tests: default models trained once per run from the shipped data."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.trainer import data, training

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = ROOT / "data" / "online_shoppers" / "sessions_feb_oct.csv"
ORDERS = ROOT / "data" / "cdnow" / "orders_dev.ndjson.gz"


@pytest.fixture(scope="session")
def intent_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("intent")
    training.train_intent(SESSIONS, out)
    return out


@pytest.fixture(scope="session")
def churn_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("churn")
    training.train_churn(ORDERS, data.parse_as_of("1997-09-30"), 273, out)
    return out


@pytest.fixture(scope="session")
def model_registry(tmp_path_factory: pytest.TempPathFactory, intent_model: Path, churn_model: Path) -> Path:
    """A registry with both default models promoted."""
    from shared.models.registry import Registry

    root = tmp_path_factory.mktemp("registry")
    registry = Registry(root)
    registry.promote("intent", registry.add(intent_model))
    registry.promote("churn", registry.add(churn_model))
    return root
