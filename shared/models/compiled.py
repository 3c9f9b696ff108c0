"""Fast scoring of the trained models: a compiled form of each estimator for single rows.

``predict_proba`` on one row costs hundreds of microseconds in scikit-learn's machinery. The
compiled forms do the same arithmetic directly: a logistic model is a dot product, a gradient-boosted
ensemble is a walk down flat arrays of every tree at once, and isotonic calibration is a lookup.
Batches still go through scikit-learn, which is fast per row. ``tests/unit/test_models.py`` checks
that both paths agree.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


class _Trees:
    """A fitted binary HistGradientBoostingClassifier as flat node arrays (numeric features only)."""

    def __init__(self, model: HistGradientBoostingClassifier) -> None:
        feats, thresholds, lefts, rights, values, roots = [], [], [], [], [], []
        offset = 0
        depth = 0
        for (predictor,) in model._predictors:  # one tree per iteration for a binary classifier
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not compiled")
            n = len(nodes)
            leaf = nodes["is_leaf"].astype(bool)
            index = np.arange(n) + offset
            feats.append(np.where(leaf, 0, nodes["feature_idx"]))
            thresholds.append(np.where(leaf, np.inf, nodes["num_threshold"]))
            # a leaf points at itself, so a walk of fixed length ends on it
            lefts.append(np.where(leaf, index, nodes["left"] + offset))
            rights.append(np.where(leaf, index, nodes["right"] + offset))
            values.append(np.where(leaf, nodes["value"], 0.0))
            roots.append(offset)
            depth = max(depth, int(nodes["depth"].max()))
            offset += n
        self.feature = np.concatenate(feats).astype(np.intp)
        self.threshold = np.concatenate(thresholds)
        self.left = np.concatenate(lefts).astype(np.intp)
        self.right = np.concatenate(rights).astype(np.intp)
        self.value = np.concatenate(values)
        self.roots = np.array(roots, dtype=np.intp)
        self.depth = depth
        self.baseline = float(np.asarray(model._baseline_prediction).ravel()[0])

    def raw_one(self, x: NDArray[np.float64]) -> float:
        idx = self.roots
        for _ in range(self.depth):
            idx = np.where(x[self.feature[idx]] <= self.threshold[idx], self.left[idx], self.right[idx])
        return self.baseline + float(self.value[idx].sum())


# Below this many rows the single-row path, row by row, is faster than one predict_proba call.
FEW_ROWS = 32


class CompiledModel:
    """A probability model with a fast single-row path and a batch path."""

    def __init__(self, estimator: Any, calibrator: IsotonicRegression | None = None) -> None:
        self.estimator = estimator
        self.calibrator = calibrator
        self._trees: _Trees | None = None
        self._linear: tuple[list[float], float] | None = None
        self._centre: list[float] | None = None  # the training mean of each feature (linear models)
        if isinstance(estimator, HistGradientBoostingClassifier):
            self._trees = _Trees(estimator)
        elif isinstance(estimator, Pipeline) and isinstance(estimator[-1], LogisticRegression):
            scaler = estimator[0] if len(estimator) == 2 and isinstance(estimator[0], StandardScaler) else None
            if len(estimator) > 2 or (len(estimator) == 2 and scaler is None):
                raise ValueError("only StandardScaler + LogisticRegression pipelines are compiled")
            coef = estimator[-1].coef_.ravel().astype(float)
            intercept = float(estimator[-1].intercept_[0])
            self._centre = scaler.mean_.astype(float).tolist() if scaler is not None else [0.0] * len(coef)
            if scaler is not None:
                # fold the scaling into the weights: w·((x-m)/s) + b = (w/s)·x + (b - w·m/s)
                scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
                intercept -= float(np.sum(coef * scaler.mean_ / scale))
                coef = coef / scale
            self._linear = (coef.tolist(), intercept)
        else:
            raise ValueError(f"no compiled form for {type(estimator).__name__}")
        if calibrator is not None:
            self._cal_x = calibrator.X_thresholds_.tolist()
            self._cal_y = calibrator.y_thresholds_.tolist()

    def score_one(self, x: Sequence[float]) -> float:
        """Calibrated probability for one feature vector."""
        if self._linear is not None:
            weights, raw = self._linear
            for w, v in zip(weights, x, strict=True):
                raw += w * v
        else:
            assert self._trees is not None
            raw = self._trees.raw_one(np.asarray(x, dtype=np.float64))
        p = 1.0 / (1.0 + math.exp(-raw)) if raw > -700 else 0.0
        return self._calibrate_one(p) if self.calibrator is not None else p

    def contributions(self, x: Sequence[float]) -> list[float] | None:
        """Each feature's exact share of the score's log-odds against the average training customer:
        ``w_i * (x_i - mean_i)``; they sum, with the log-odds of the average customer, to the
        model's log-odds (before calibration, which keeps their order). None for a tree model, which
        has no exact additive decomposition (proact's churn model is linear)."""
        if self._linear is None or self._centre is None:
            return None
        weights, _ = self._linear
        return [w * (v - m) for w, v, m in zip(weights, x, self._centre, strict=True)]

    def _calibrate_one(self, p: float) -> float:
        xs, ys = self._cal_x, self._cal_y
        if p <= xs[0]:
            return float(ys[0])
        if p >= xs[-1]:
            return float(ys[-1])
        i = bisect.bisect_right(xs, p)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return float(y0 + (y1 - y0) * (p - x0) / (x1 - x0)) if x1 > x0 else float(y1)

    def score_many(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        if len(X) <= FEW_ROWS:  # scikit-learn's fixed cost per call (validation, threads) is the larger part
            return np.array([self.score_one(row) for row in X], dtype=np.float64)
        p = self.estimator.predict_proba(X)[:, 1]
        if self.calibrator is not None:
            p = self.calibrator.predict(p)
        return np.asarray(p, dtype=np.float64)
