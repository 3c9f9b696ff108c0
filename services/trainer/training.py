"""Training and scoring flows behind the trainer's command line.

Validation follows how the models are used. Intent: rolling-origin, time-ordered splits by month
(train on the months up to a cut, test on the later ones), against a plain HistGradientBoosting
classifier on the raw UCI columns trained and tested on the same splits. Churn: 5-fold cross
validation over customers (every test customer unseen in training), against recency alone and a
logistic regression on recency, frequency and monetary value.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from services.trainer import data
from shared.features import churn, intent
from shared.features.page_stats import PageStats
from shared.models.evaluation import metrics, plots
from shared.models.registry import load_artifact, save_artifact, sha256_file

log = logging.getLogger(__name__)
SEED = 20261123


# --- intent -----------------------------------------------------------------------------------
def intent_estimator() -> HistGradientBoostingClassifier:
    # small, regularised trees: chosen by the rolling-origin validation below, where deeper or
    # longer ensembles gained nothing on later months
    return HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.05,
        max_leaf_nodes=8,
        min_samples_leaf=40,
        l2_regularization=1.0,
        random_state=SEED,
    )


def _raw_uci(path: Path) -> NDArray[np.float64]:
    """The raw UCI columns as numbers, for the baseline model only."""
    visitor = {"Returning_Visitor": 0.0, "New_Visitor": 1.0, "Other": 2.0}
    rows = []
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            row = []
            for col in intent.UCI_COLUMNS:
                value = r.get(col, "0")
                if col == "Month":
                    row.append(float(intent.MONTHS.index(value) + 1 if value in intent.MONTHS else 0))
                elif col == "VisitorType":
                    row.append(visitor.get(value, 2.0))
                elif col == "Weekend":
                    row.append(1.0 if str(value).upper() in ("TRUE", "1") else 0.0)
                else:
                    row.append(float(value))
            rows.append(row)
    return np.array(rows, dtype=np.float64)


def _time_splits(
    months: NDArray[np.int64], min_test: int = 300
) -> list[tuple[int, NDArray[np.bool_], NDArray[np.bool_]]]:
    """(cut month, train mask, test mask) for every cut with enough later sessions."""
    splits = []
    for cut in sorted(set(months.tolist()))[:-1]:
        train, test = months <= cut, months > cut
        if train.sum() >= 1000 and test.sum() >= min_test:
            splits.append((cut, train, test))
    return splits


def train_intent(csv_path: Path, out: Path, page_stats: PageStats | None = None) -> dict[str, Any]:
    """Train on UCI-format sessions; ``page_stats``, the shop's own page statistics
    (``shared.features.page_stats``), is written beside the model for the live path to read."""
    sessions, labels, months_list = data.read_sessions(csv_path)
    if labels is None:
        raise ValueError(f"{csv_path}: no {intent.LABEL} column to learn from")
    X = intent.intent_matrix(sessions)
    y = np.array(labels, dtype=int)
    months = np.array(months_list)
    raw = _raw_uci(csv_path)

    validation = []
    for _cut, train, test in _time_splits(months):
        ours = intent_estimator().fit(X[train], y[train]).predict_proba(X[test])[:, 1]
        base = (
            HistGradientBoostingClassifier(random_state=SEED).fit(raw[train], y[train]).predict_proba(raw[test])[:, 1]
        )
        validation.append(
            {
                "train_months": [intent.MONTHS[m - 1] for m in sorted(set(months[train].tolist()))],
                "test_months": [intent.MONTHS[m - 1] for m in sorted(set(months[test].tolist()))],
                "test_rows": int(test.sum()),
                "roc_auc": round(float(roc_auc_score(y[test], ours)), 4),
                "baseline_roc_auc": round(float(roc_auc_score(y[test], base)), 4),
            }
        )

    # Report: the calibrated model trained on all but the latest ~30% of sessions, tested on them.
    order = np.argsort(months, kind="stable")
    cut_index = int(len(order) * 0.7)
    past, future = order[:cut_index], order[cut_index:]
    est, cal = _fit_calibrated_intent(X[past], y[past], months[past])
    p_future = cal.predict(est.predict_proba(X[future])[:, 1])
    report = metrics(y[future], p_future)
    made = plots(y[future], p_future, out / "report", "purchase intent")

    estimator, calibrator = _fit_calibrated_intent(X, y, months)
    summary = {
        "mean_roc_auc": round(float(np.mean([v["roc_auc"] for v in validation])), 4) if validation else None,
        "mean_baseline_roc_auc": round(float(np.mean([v["baseline_roc_auc"] for v in validation])), 4)
        if validation
        else None,
    }
    metadata = {
        "kind": "intent",
        "features": list(intent.FEATURES),
        "feature_indices": list(range(len(intent.FEATURES))),
        "training": {
            "file": str(csv_path),
            "sha256": sha256_file(csv_path),
            "rows": len(y),
            "positives": int(y.sum()),
        },
        "params": {k: v for k, v in estimator.get_params().items() if isinstance(v, int | float | str | bool)},
        "validation": {"method": "rolling-origin by month", "splits": validation, **summary},
        "report": {"method": "trained on the earliest 70% of sessions, tested on the latest 30%", **report},
        "plots": [f"report/{name}" for name in made],
    }
    save_artifact(out, estimator, calibrator, metadata, _card("Purchase intent", metadata), page_stats)
    return load_artifact(out).metadata


def _fit_calibrated_intent(
    X: NDArray[np.float64], y: NDArray[np.int64], months: NDArray[np.int64]
) -> tuple[HistGradientBoostingClassifier, IsotonicRegression]:
    """The model on all rows, and an isotonic calibration fitted on out-of-fold predictions of the
    most recent 40% of them, so probabilities follow the latest conversion rate."""
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    oof = cross_val_predict(intent_estimator(), X, y, cv=folds, method="predict_proba")[:, 1]
    recent = np.argsort(months, kind="stable")[int(len(y) * 0.6) :]
    calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(oof[recent], y[recent])
    return intent_estimator().fit(X, y), calibrator


def score_intent(model_dir: Path, csv_path: Path, out: Path) -> int:
    model = load_artifact(model_dir, "intent")
    sessions, _, _ = data.read_sessions(csv_path)
    X = intent.intent_matrix(sessions)[:, model.feature_indices]
    probabilities = model.model.score_many(X) if len(X) else np.array([])
    _write_scores(out, ["row", "probability"], ((i, p) for i, p in enumerate(probabilities)))
    return len(probabilities)


# --- churn ------------------------------------------------------------------------------------
AUGMENT_DAYS_BACK = (30, 61, 91)
RFM = (
    churn.FEATURES.index("log_recency_days"),
    churn.FEATURES.index("log_purchase_days"),
    churn.FEATURES.index("log_total_spent"),
)


def churn_estimator() -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=5000))


@dataclass
class Snapshot:
    ids: list[str]
    X: NDArray[np.float64]
    y: NDArray[np.int64]


def snapshot(histories: dict[str, churn.CustomerHistory], as_of: datetime, horizon_days: int) -> Snapshot:
    ids = sorted(cid for cid, h in histories.items() if h.has_orders_by(as_of))
    hs = [histories[c] for c in ids]
    X = churn.churn_matrix(hs, as_of)
    y = np.array([churn.churned(h, as_of, horizon_days) for h in hs], dtype=int)
    return Snapshot(ids, X, y)


def train_churn(orders_path: Path, as_of: datetime, horizon_days: int, out: Path) -> dict[str, Any]:
    histories = data.read_histories(orders_path)
    return _train_churn(
        histories, as_of, horizon_days, out, {"file": str(orders_path), "sha256": sha256_file(orders_path)}
    )


def _train_churn(
    histories: dict[str, churn.CustomerHistory], as_of: datetime, horizon_days: int, out: Path, source: dict[str, Any]
) -> dict[str, Any]:
    main = snapshot(histories, as_of, horizon_days)
    if len(main.ids) < 50 or len(set(main.y.tolist())) < 2:
        raise ValueError(f"too little history to train on: {len(main.ids)} customers as of {as_of.date()}")
    last_order = max(o.at for h in histories.values() for o in h.orders)
    if last_order < as_of + timedelta(days=horizon_days) - timedelta(days=31):
        log.warning("the data ends before the label window does: late churn labels are uncertain")
    # Earlier snapshots of the same customers add training rows whose label windows are observed too.
    extra = [snapshot(histories, as_of - timedelta(days=d), horizon_days) for d in AUGMENT_DAYS_BACK]
    used = [i for i in range(len(churn.FEATURES)) if np.ptp(main.X[:, i]) > 0]

    folds = KFold(n_splits=5, shuffle=True, random_state=SEED)
    rows = []
    oof = np.zeros(len(main.y))
    for train_idx, test_idx in folds.split(main.X):
        train_ids = {main.ids[i] for i in train_idx}
        X_train, y_train = _with_snapshots(main, extra, train_idx, train_ids)
        model = churn_estimator().fit(X_train[:, used], y_train)
        p = model.predict_proba(main.X[test_idx][:, used])[:, 1]
        oof[test_idx] = p
        rfm = churn_estimator().fit(main.X[train_idx][:, list(RFM)], main.y[train_idx])
        rows.append(
            {
                "roc_auc": float(roc_auc_score(main.y[test_idx], p)),
                "recency_roc_auc": float(roc_auc_score(main.y[test_idx], main.X[test_idx, RFM[0]])),
                "rfm_logistic_roc_auc": float(
                    roc_auc_score(main.y[test_idx], rfm.predict_proba(main.X[test_idx][:, list(RFM)])[:, 1])
                ),
            }
        )
    validation = {
        "method": "5-fold cross-validation over customers (test customers unseen in training)",
        **{f"mean_{k}": round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]},
        **{f"std_{k}": round(float(np.std([r[k] for r in rows])), 4) for k in rows[0]},
        "out_of_time": out_of_time(histories, as_of, horizon_days, used),
    }
    report = metrics(main.y, oof)
    made = plots(main.y, oof, out / "report", "churn")
    X_all, y_all = _with_snapshots(main, extra, np.arange(len(main.ids)), set(main.ids))
    estimator = churn_estimator().fit(X_all[:, used], y_all)
    metadata = {
        "kind": "churn",
        "features": [churn.FEATURES[i] for i in used],
        "feature_indices": used,
        "as_of": as_of.isoformat(),
        "horizon_days": horizon_days,
        "training": {
            **source,
            "customers": len(main.ids),
            "churn_rate": round(float(main.y.mean()), 4),
            "rows_with_snapshots": len(y_all),
        },
        "params": {"C": 0.5, "snapshots_days_back": list(AUGMENT_DAYS_BACK)},
        "validation": validation,
        "report": {"method": "out-of-fold predictions of the cross-validation", **report},
        "plots": [f"report/{name}" for name in made],
    }
    save_artifact(out, estimator, None, metadata, _card("Churn risk", metadata))
    return load_artifact(out).metadata


def out_of_time(
    histories: dict[str, churn.CustomerHistory], as_of: datetime, horizon_days: int, used: list[int]
) -> dict[str, Any]:
    """Train on the past, test on the future: the model and the RFM logistic baseline fitted on the
    snapshot one horizon before ``as_of`` (whose churn labels end at ``as_of``, so nothing after
    ``as_of`` is seen), tested on the snapshot as of ``as_of`` with its labels of the next horizon.
    ``possible`` is false when the history before does not give enough customers to train on."""
    past = snapshot(histories, as_of - timedelta(days=horizon_days), horizon_days)
    future = snapshot(histories, as_of, horizon_days)
    if len(past.ids) < 50 or len(set(past.y.tolist())) < 2 or len(set(future.y.tolist())) < 2:
        return {"possible": False, "train_as_of": (as_of - timedelta(days=horizon_days)).date().isoformat()}
    ours = churn_estimator().fit(past.X[:, used], past.y).predict_proba(future.X[:, used])[:, 1]
    rfm = churn_estimator().fit(past.X[:, list(RFM)], past.y).predict_proba(future.X[:, list(RFM)])[:, 1]
    return {
        "possible": True,
        "train_as_of": (as_of - timedelta(days=horizon_days)).date().isoformat(),
        "train_customers": len(past.ids),
        "test_as_of": as_of.date().isoformat(),
        "test_customers": len(future.ids),
        "roc_auc": round(float(roc_auc_score(future.y, ours)), 4),
        "rfm_logistic_roc_auc": round(float(roc_auc_score(future.y, rfm)), 4),
        "recency_roc_auc": round(float(roc_auc_score(future.y, future.X[:, RFM[0]])), 4),
    }


def challenge(
    candidate_dir: Path, in_force_dir: Path | None, orders: dict[str, churn.CustomerHistory]
) -> dict[str, Any]:
    """Should the candidate churn model replace the one in force? Both are scored on the candidate's
    out-of-time test: the customers as of its ``as_of`` and whether they bought within its horizon.
    The candidate is judged by its out-of-time figure (fitted before ``as_of``); the model in force
    by its scores of the same customers (it may have seen some of that period in training, which
    favours it: the gate is conservative). Promote when the candidate is at least as good."""
    candidate = load_artifact(candidate_dir, "churn")
    oot = candidate.metadata["validation"].get("out_of_time") or {}
    if not oot.get("possible"):
        return {"promote": False, "why": "no out-of-time validation was possible for the candidate"}
    if in_force_dir is None:
        return {"promote": True, "why": f"no model in force; candidate out-of-time ROC AUC {oot['roc_auc']}"}
    current = load_artifact(in_force_dir, "churn")
    as_of = datetime.fromisoformat(candidate.metadata["as_of"])
    future = snapshot(orders, as_of, int(candidate.metadata["horizon_days"]))
    theirs = current.model.score_many(future.X[:, current.feature_indices])
    current_auc = round(float(roc_auc_score(future.y, theirs)), 4)
    better = oot["roc_auc"] >= current_auc
    verdict = "at least as good as" if better else "worse than"
    why = (
        f"candidate out-of-time ROC AUC {oot['roc_auc']} {verdict} the model in force "
        f"({current.version}: {current_auc}) on the customers as of {as_of.date()}"
    )
    return {"promote": better, "why": why, "candidate_roc_auc": oot["roc_auc"], "in_force_roc_auc": current_auc}


def _with_snapshots(
    main: Snapshot, extra: list[Snapshot], idx: NDArray[np.int64], ids: set[str]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    Xs, ys = [main.X[idx]], [main.y[idx]]
    for snap in extra:
        keep = np.array([c in ids for c in snap.ids], dtype=bool)
        if keep.any():
            Xs.append(snap.X[keep])
            ys.append(snap.y[keep])
    return np.vstack(Xs), np.concatenate(ys)


async def histories_from_mongo(settings: Any, as_of: datetime, horizon_days: int) -> dict[str, churn.CustomerHistory]:
    from shared.store import database, mongo_client

    client = mongo_client(settings)
    try:
        return await data.read_histories_from_mongo(database(client, settings), data.horizon_end(as_of, horizon_days))
    finally:
        await client.close()


async def train_churn_from_mongo(settings: Any, as_of: datetime, horizon_days: int, out: Path) -> dict[str, Any]:
    histories = await histories_from_mongo(settings, as_of, horizon_days)
    return _train_churn(histories, as_of, horizon_days, out, {"source": f"mongodb:{settings.mongo_database}.orders"})


def score_churn(model_dir: Path, orders_path: Path, as_of: datetime, out: Path) -> int:
    model = load_artifact(model_dir, "churn")
    histories = data.read_histories(orders_path)
    ids = sorted(cid for cid, h in histories.items() if h.has_orders_by(as_of))
    X = churn.churn_matrix([histories[c] for c in ids], as_of)[:, model.feature_indices]
    probabilities = model.model.score_many(X) if ids else np.array([])
    _write_scores(out, ["customer_id", "probability"], zip(ids, probabilities, strict=True))
    return len(ids)


# --- shared -----------------------------------------------------------------------------------
def _write_scores(out: Path, header: list[str], rows: Any) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for key, p in rows:
            writer.writerow([key, f"{float(p):.6f}"])


def _card(title: str, m: dict[str, Any]) -> str:
    v, r = m["validation"], m["report"]
    lines = [
        f"# Model card: {title}",
        "",
        f"- version: filled in metadata.json; kind `{m['kind']}`",
        f"- features ({len(m['features'])}): {', '.join(m['features'])}",
        f"- training data: {m['training']}",
        f"- validation: {v['method']}",
    ]
    lines += [f"  - {k}: {val}" for k, val in v.items() if k not in ("method", "splits", "out_of_time")]
    for s in v.get("splits", []):
        lines.append(
            f"  - train {'/'.join(s['train_months'])} → test {'/'.join(s['test_months'])} ({s['test_rows']} sessions): "
            f"ROC-AUC {s['roc_auc']} vs baseline {s['baseline_roc_auc']}"
        )
    oot = v.get("out_of_time")
    if isinstance(oot, dict):
        if oot.get("possible"):
            lines.append(
                f"- out of time (trained as of {oot['train_as_of']}, tested on the customers as of "
                f"{oot['test_as_of']}): ROC-AUC {oot['roc_auc']} vs RFM logistic {oot['rfm_logistic_roc_auc']}, "
                f"recency alone {oot['recency_roc_auc']}"
            )
        else:
            lines.append(f"- out of time: not possible (too little history before {oot['train_as_of']})")
    lines += [f"- report ({r['method']}):"] + [f"  - {k}: {val}" for k, val in r.items() if k != "method"]
    if m.get("page_stats"):
        lines.append(f"- live page statistics (shared/features/page_stats.py): {m['page_stats']}")
    lines += [
        "",
        "Intended use: ranking and thresholding by proact's rules. Probabilities are calibrated on the",
        "training period; a shop whose behaviour drifts should retrain (the trainer's CronJob does).",
        "Plots: " + ", ".join(m["plots"]),
    ]
    return "\n".join(lines) + "\n"
