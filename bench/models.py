"""Benchmark: model scoring speed, compiled single-row path and batch path, against scikit-learn's
``predict_proba`` measured in the same run. ``make bench`` runs it; figures go to bench/README.md.

    python bench/models.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from report import record  # bench/ is on the path when a benchmark runs as a script

from services.trainer import data, training
from shared.features import intent
from shared.models.registry import load_artifact

ROOT = Path(__file__).resolve().parents[1]


def per_call_us(fn, args_list, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Median over calls of the time of one call, in microseconds."""
    samples = []
    for _ in range(repeat):
        for args in args_list:
            t = time.perf_counter_ns()
            fn(args)
            samples.append((time.perf_counter_ns() - t) / 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000, help="rows in the batch measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        intent_dir, churn_dir = Path(tmp) / "intent", Path(tmp) / "churn"
        training.train_intent(ROOT / "data/online_shoppers/sessions_feb_oct.csv", intent_dir)
        training.train_churn(ROOT / "data/cdnow/orders_dev.ndjson.gz", data.parse_as_of("1997-09-30"), 273, churn_dir)
        sessions, _, _ = data.read_sessions(ROOT / "data/online_shoppers/sessions_feb_oct.csv")
        X = intent.intent_matrix(sessions)
        rows = [list(x) for x in X[:2000]]
        figures: list[tuple[str, str, str]] = []
        for name, path in (("intent (gradient boosting, 150 trees)", intent_dir), ("churn (logistic)", churn_dir)):
            model = load_artifact(path).model
            width = model.estimator.n_features_in_
            sample = [r[:width] + [0.0] * (width - len(r[:width])) for r in rows]
            compiled = per_call_us(model.score_one, sample)
            estimator = model.estimator
            plain = per_call_us(lambda r, e=estimator: e.predict_proba(np.asarray(r).reshape(1, -1)), sample[:300], 1)
            big = np.asarray(sample)[np.arange(args.rows) % len(sample)]
            t = time.perf_counter()
            model.score_many(big)
            batch = args.rows / (time.perf_counter() - t)
            t = time.perf_counter()
            model.estimator.predict_proba(big)
            plain_batch = args.rows / (time.perf_counter() - t)
            print(f"{name}")
            print(f"  single row, compiled:        median {compiled:8.1f} µs")
            print(
                f"  single row, predict_proba:   median {plain:8.1f} µs   (compiled is {plain / compiled:.0f}x faster)"
            )
            print(f"  batch of {args.rows:,}, score_many: {batch:12,.0f} rows/s")
            print(f"  batch of {args.rows:,}, predict_proba alone: {plain_batch:,.0f} rows/s")
            figures += [
                (f"{name}: one row, compiled / predict_proba", f"{compiled:.0f} / {plain:.0f} µs", ""),
                (f"{name}: batch of {args.rows:,}", f"{batch:,.0f} rows/s", ""),
            ]
    record("models", "python bench/models.py", figures)


if __name__ == "__main__":
    main()
