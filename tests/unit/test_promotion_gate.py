"""A retrain promotes only a churn model that beats the one in force on the same out-of-time test,
and the registry keeps the verdict either way."""

from __future__ import annotations

from pathlib import Path

from services.trainer import data, training
from shared.models.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
ORDERS = ROOT / "data" / "cdnow" / "orders_dev.ndjson.gz"


def test_the_gate_promotes_the_first_and_refuses_a_candidate_that_is_not_better(tmp_path: Path) -> None:
    as_of = data.parse_as_of("1997-09-30")
    histories = data.read_histories(ORDERS)
    first = training.train_churn(ORDERS, as_of, 90, tmp_path / "first")
    oot = first["validation"]["out_of_time"]
    assert oot["possible"]  # trained before 1997-07-02 + 90 days, tested on the customers after
    assert oot["train_as_of"] == "1997-07-02"
    registry = Registry(tmp_path / "registry")
    verdict = training.challenge(tmp_path / "first", None, histories)
    assert verdict["promote"]
    registry.promote("churn", registry.add(tmp_path / "first"), why=verdict["why"])
    # the same data again: its out-of-time figure cannot beat a model that saw those labels
    training.train_churn(ORDERS, as_of, 90, tmp_path / "second")
    current = registry.root / "churn" / str(registry.promoted("churn"))
    verdict = training.challenge(tmp_path / "second", current, histories)
    assert not verdict["promote"]
    assert "worse than the model in force" in verdict["why"]
    registry.note("churn", {"refused": "second", "why": verdict["why"]})
    log = registry.decisions("churn")
    assert [("promoted" in e, "refused" in e) for e in log] == [(True, False), (False, True)]
    assert registry.versions("churn") == [registry.promoted("churn")]  # the log is not a version
