"""Models: one feature implementation online and in training, fast scoring equal to scikit-learn,
a registry that promotes and rolls back, and refusal of tampered or foreign model files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from services.trainer import data
from shared.features import churn, intent
from shared.models.compiled import CompiledModel
from shared.models.registry import MODEL_FILE, ModelHandle, ModelRefused, Registry, load_artifact
from tests.conftest import ORDERS, SESSIONS


def test_a_live_session_gives_the_same_features_as_its_uci_row() -> None:
    stats = {"/p/1": intent.PageStat(0.1, 0.2, 30.0), "/help": intent.PageStat(0.0, 0.5, 0.0)}
    session = {
        "returning": False,
        "pages": [
            {"url": "/p/1", "page_type": "product", "duration_s": 40},
            {"url": "/help", "page_type": "help", "duration_s": 15},
            {"url": "/account", "page_type": "account", "duration_s": 5},
            {"url": "/", "page_type": "home", "duration_s": 3},
        ],
    }
    online = intent.from_session(session, stats, datetime(2026, 2, 7, 12, tzinfo=UTC), [date(2026, 2, 14)])
    row = {
        "Administrative": "1",
        "Administrative_Duration": "5",
        "Informational": "1",
        "Informational_Duration": "15",
        "ProductRelated": "1",
        "ProductRelated_Duration": "40",
        "BounceRates": str(0.1 / 4),
        "ExitRates": str(0.7 / 4),
        "PageValues": str(30.0 / 4),
        "SpecialDay": "0.5",
        "Month": "Feb",
        "VisitorType": "New_Visitor",
        "Weekend": "TRUE",
        "OperatingSystems": "1",
        "Browser": "1",
        "Region": "1",
        "TrafficType": "",
    }
    offline = intent.from_uci_record(row)
    assert intent.intent_vector(online) == pytest.approx(intent.intent_vector(offline))
    assert intent.intent_matrix([online])[0] == pytest.approx(intent.intent_vector(online))


def test_churn_features_ignore_events_after_the_as_of_date() -> None:
    t0 = datetime(1997, 1, 1, 12, tzinfo=UTC)
    h = churn.CustomerHistory("c", [churn.Order(t0, 10.0), churn.Order(t0 + timedelta(days=40), 20.0, 2)])
    later = churn.CustomerHistory("c", [*h.orders, churn.Order(t0 + timedelta(days=100), 99.0)])
    as_of = t0 + timedelta(days=60)
    assert churn.churn_vector(h, as_of) == churn.churn_vector(later, as_of)
    assert churn.churned(later, as_of, 30) is True
    assert churn.churned(later, as_of, 60) is False
    vector = dict(zip(churn.FEATURES, churn.churn_vector(h, as_of), strict=True))
    assert vector["log_recency_days"] == pytest.approx(np.log1p(20))
    assert vector["log_purchase_days"] == pytest.approx(np.log(2))


def test_churn_service_signals_count_up_to_the_as_of_date_and_tickets_over_90_days() -> None:
    t0 = datetime(1997, 1, 1, 12, tzinfo=UTC)
    as_of = t0 + timedelta(days=200)
    day = timedelta(days=1)
    h = churn.CustomerHistory(
        "c",
        [churn.Order(t0, 10.0)],
        late_deliveries=[t0 + 5 * day, as_of, as_of + day],
        tickets=[as_of - 120 * day, as_of - 90 * day, as_of - 89 * day, as_of, as_of + day],
        returns=[as_of + day],
        csat=[(t0, 2.0), (t0 + 10 * day, 4.0), (as_of + day, 1.0)],
        nps=[(t0 + 20 * day, 9.0), (t0 + 10 * day, 3.0), (as_of + day, 0.0)],
        messages_opened=[t0 + day, as_of],
    )
    vector = dict(zip(churn.FEATURES, churn.churn_vector(h, as_of), strict=True))
    assert vector["late_deliveries"] == 2.0  # the one after as_of is not known yet
    assert vector["tickets_90d"] == 2.0  # within (as_of - 90 days, as_of]
    assert vector["returns"] == 0.0
    assert vector["csat_mean"] == 3.0
    assert vector["nps_last"] == 9.0  # the latest by time, not by position
    assert vector["messages_opened"] == 2.0


def test_compiled_scoring_equals_scikit_learn(intent_model: Path, churn_model: Path) -> None:
    sessions, _, _ = data.read_sessions(SESSIONS)
    X = intent.intent_matrix(sessions[:500])
    model = load_artifact(intent_model, "intent").model
    assert np.array([model.score_one(list(x)) for x in X]) == pytest.approx(model.score_many(X), abs=1e-9)
    assert model.score_many(X[:5]) == pytest.approx(model.score_many(X)[:5], abs=1e-9)  # few rows: compiled path
    c = load_artifact(churn_model, "churn")
    histories = data.read_histories(ORDERS)
    hs = list(histories.values())[:300]
    Xc = churn.churn_matrix(hs, data.parse_as_of("1997-09-30"))
    assert np.array([c.score_one(list(x)) for x in Xc]) == pytest.approx(
        c.model.score_many(Xc[:, c.feature_indices]), abs=1e-9
    )


def test_training_reports_honest_validation(intent_model: Path, churn_model: Path) -> None:
    meta = json.loads((intent_model / "metadata.json").read_text())
    assert meta["validation"]["method"] == "rolling-origin by month"
    for split in meta["validation"]["splits"]:  # every test month is later than every training month
        assert max(intent.MONTHS.index(m) for m in split["train_months"]) < min(
            intent.MONTHS.index(m) for m in split["test_months"]
        )
    assert meta["validation"]["mean_roc_auc"] > meta["validation"]["mean_baseline_roc_auc"]
    assert {"roc_auc", "pr_auc", "brier", "calibration_error"} <= meta["report"].keys()
    assert all((intent_model / p).stat().st_size > 1000 for p in meta["plots"])
    cmeta = json.loads((churn_model / "metadata.json").read_text())
    assert cmeta["validation"]["mean_roc_auc"] > cmeta["validation"]["mean_recency_roc_auc"]
    assert "late_deliveries" not in cmeta["features"]  # CDNOW has no such signal: left out, not zero-weighted
    assert (churn_model / "card.md").read_text().startswith("# Model card: Churn risk")


def test_registry_promotes_rolls_back_and_handles_reload(tmp_path: Path, intent_model: Path) -> None:
    registry = Registry(tmp_path / "registry")
    first = registry.add(intent_model)
    assert registry.promoted("intent") is None
    handle = ModelHandle(registry, "intent", check_every_s=0)
    assert handle.current() is None
    registry.promote("intent", first)
    current = handle.current()
    assert current is not None
    assert current.version == first
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    meta = json.loads((intent_model / "metadata.json").read_text())
    meta["version"] = "second"
    for name in ("model.skops", "card.md"):
        (second_dir / name).write_bytes((intent_model / name).read_bytes())
    (second_dir / "metadata.json").write_text(json.dumps(meta))
    second = registry.add(second_dir)
    registry.promote("intent", second)
    assert handle.current().version == "second"  # type: ignore[union-attr]
    assert registry.rollback("intent") == first
    assert handle.current().version == first  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        registry.rollback("intent")


def test_a_tampered_model_file_is_refused(tmp_path: Path, intent_model: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in intent_model.iterdir():
        if p.is_file():
            (copy / p.name).write_bytes(p.read_bytes())
    blob = bytearray((copy / MODEL_FILE).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (copy / MODEL_FILE).write_bytes(bytes(blob))
    with pytest.raises(ModelRefused, match="SHA-256"):
        load_artifact(copy)


class Smuggled:
    """A type no proact model contains: loading it could run its code."""


def test_a_model_file_with_foreign_types_is_refused_even_with_a_matching_hash(
    tmp_path: Path, intent_model: Path
) -> None:
    import hashlib

    for p in intent_model.iterdir():
        if p.is_file():
            (tmp_path / p.name).write_bytes(p.read_bytes())
    sio.dump({"estimator": Smuggled(), "calibrator": None}, tmp_path / MODEL_FILE)
    meta = json.loads((tmp_path / "metadata.json").read_text())
    meta["artifact_sha256"] = hashlib.sha256((tmp_path / MODEL_FILE).read_bytes()).hexdigest()
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelRefused, match="allow-list"):
        load_artifact(tmp_path)


def test_a_scaled_logistic_model_compiles_to_a_dot_product() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(3, 2, size=(400, 4))
    y = (X[:, 0] - X[:, 2] + rng.normal(size=400)) > 0
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    model = CompiledModel(pipe)
    assert [model.score_one(list(x)) for x in X[:50]] == pytest.approx(pipe.predict_proba(X[:50])[:, 1])


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.trainer", *args], capture_output=True, text=True, timeout=300
    )


def test_score_commands_write_one_row_per_input(tmp_path: Path, intent_model: Path, churn_model: Path) -> None:
    sample = tmp_path / "sample.csv"
    with SESSIONS.open() as f:
        lines = f.readlines()[:101]
    header = lines[0].strip().split(",")
    keep = [i for i, c in enumerate(header) if c != "Revenue"]  # the label is optional
    sample.write_text("\n".join(",".join(line.strip().split(",")[i] for i in keep) for line in lines) + "\n")
    result = _run(
        "score", "intent", "--model", str(intent_model), "--data", str(sample), "--out", str(tmp_path / "i.csv")
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "i.csv").open()))
    assert [r["row"] for r in rows] == [str(i) for i in range(100)]
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)

    result = _run(
        "score",
        "churn",
        "--model",
        str(churn_model),
        "--orders",
        str(ORDERS),
        "--as-of",
        "1997-03-31",
        "--out",
        str(tmp_path / "c.csv"),
    )
    assert result.returncode == 0, result.stderr
    scored = list(csv.DictReader((tmp_path / "c.csv").open()))
    histories = data.read_histories(ORDERS)
    expected = {c for c, h in histories.items() if h.has_orders_by(data.parse_as_of("1997-03-31"))}
    assert {r["customer_id"] for r in scored} == expected
    assert len(scored) == len(expected)


def test_bad_input_gets_a_clear_error(tmp_path: Path, intent_model: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(intent.UCI_COLUMNS) + "\n" + ",".join(["x"] * len(intent.UCI_COLUMNS)) + "\n")
    result = _run("score", "intent", "--model", str(intent_model), "--data", str(bad), "--out", str(tmp_path / "o.csv"))
    assert result.returncode == 2
    assert "bad.csv:2: column Weekend: expected TRUE or FALSE" in result.stderr
    result = _run(
        "score", "churn", "--model", str(intent_model), "--orders", str(ORDERS), "--as-of", "1997-03-31", "--out", "x"
    )
    assert result.returncode == 2
    assert "not 'churn'" in result.stderr
