"""How good a probability model is: ranking, precision, calibration, with PNG plots."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_curve, roc_auc_score, roc_curve

log = logging.getLogger(__name__)


def expected_calibration_error(y: NDArray[Any], p: NDArray[np.float64], bins: int = 10) -> float:
    """Mean gap between predicted and observed rates over equal-width bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(float(p[mask].mean()) - float(np.asarray(y)[mask].mean()))
    return total


def metrics(y: NDArray[Any], p: NDArray[np.float64]) -> dict[str, float]:
    y = np.asarray(y, dtype=int)
    return {
        "roc_auc": round(float(roc_auc_score(y, p)), 4),
        "pr_auc": round(float(average_precision_score(y, p)), 4),
        "brier": round(float(brier_score_loss(y, p)), 4),
        "calibration_error": round(expected_calibration_error(y, p), 4),
        "positive_rate": round(float(y.mean()), 4),
        "rows": len(y),
    }


def plots(y: NDArray[Any], p: NDArray[np.float64], out: Path, title: str) -> list[str]:
    """ROC, precision-recall and calibration curves as PNG files in ``out``; returns their names, none
    when matplotlib is not installed (it comes with the ``trainer`` extra, which service images leave out)."""
    try:
        import matplotlib
    except ImportError:
        log.warning("matplotlib is not installed (the trainer extra): the model report has no plots")
        return []

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y, dtype=int)
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    # (file, curve x, curve y, curve label, reference line, x label, y label, title, legend place)
    charts: list[tuple[Any, ...]] = [
        (
            "roc.png",
            fpr,
            tpr,
            f"AUC {roc_auc_score(y, p):.3f}",
            ([0, 1], [0, 1]),
            "false positive rate",
            "true positive rate",
            "ROC",
            "lower right",
        ),
        (
            "precision_recall.png",
            recall,
            precision,
            f"AP {average_precision_score(y, p):.3f}",
            ([0, 1], [y.mean(), y.mean()]),
            "recall",
            "precision",
            "precision-recall",
            "upper right",
        ),
        (
            "calibration.png",
            predicted,
            observed,
            "model",
            ([0, 1], [0, 1]),
            "predicted probability",
            "observed rate",
            "calibration",
            "upper left",
        ),
    ]
    for name, xs, ys, label, reference, xlabel, ylabel, what, legend in charts:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot(xs, ys, "o-" if name == "calibration.png" else "-", label=label)
        ax.plot(*reference, "--", color="grey")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{title}: {what}")
        ax.legend(loc=legend)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
    return [c[0] for c in charts]
