"""How good a probability model is: ranking, precision, calibration, with PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_curve, roc_auc_score, roc_curve


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
    """ROC, precision-recall and calibration curves as PNG files in ``out``; returns their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y, dtype=int)
    made = []
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, p):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title}: ROC")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=100)
    made.append("roc.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    precision, recall, _ = precision_recall_curve(y, p)
    ax.plot(recall, precision, label=f"AP {average_precision_score(y, p):.3f}")
    ax.axhline(y.mean(), ls="--", color="grey")
    ax.set(xlabel="recall", ylabel="precision", title=f"{title}: precision-recall")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "precision_recall.png", dpi=100)
    made.append("precision_recall.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    ax.plot(predicted, observed, "o-", label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=f"{title}: calibration")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=100)
    made.append("calibration.png")
    plt.close(fig)
    return made
