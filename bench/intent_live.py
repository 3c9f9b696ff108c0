"""What the intent model says live about the demo shop's visits, without and with the page
statistics (``shared.features.page_stats``): the score distribution of browsing, lingering and buying
visits, and how well it ranks the buying ones (ROC AUC), on visits the statistics were not computed
from. Before page statistics existed the live path fed the model zeros for its three page columns.

    python bench/intent_live.py [--sessions 3000]

The model is trained here from the shipped UCI data, as ``make models`` does; the statistics come
from one simulated month of the demo shop (seed 1), the scored visits from another (seed 2).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from report import record  # bench/ is on the path when a benchmark runs as a script
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.demo.shop import history  # noqa: E402
from services.trainer import training  # noqa: E402
from shared.features import intent  # noqa: E402
from shared.features.page_stats import PageStat, PageStats, sessions_from_events  # noqa: E402
from shared.models.registry import load_artifact  # noqa: E402


def kind_of(session: dict[str, object], bought: bool) -> str:
    if bought:
        return "buying"
    return "lingering" if len(session.get("pages") or []) >= 5 else "browsing"  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=3000)
    args = parser.parse_args()
    now = datetime.now(UTC)
    stats = PageStats.from_sessions(sessions_from_events(history(args.sessions, 1, now))[0], source="seed 1")
    scored, states = sessions_from_events(history(args.sessions, 2, now))
    with tempfile.TemporaryDirectory() as tmp:
        training.train_intent(ROOT / "data/online_shoppers/sessions_feb_oct.csv", Path(tmp))
        model = load_artifact(Path(tmp), "intent")
    figures: list[tuple[str, str, str]] = []
    for label, page_stats in (("without page statistics", {}), ("with page statistics", stats.stats)):
        by_kind: dict[str, list[float]] = {}
        labels, scores = [], []
        for session in scored:
            state = states[session.session_id]
            typed: dict[str, PageStat] = page_stats  # type: ignore[assignment]
            view = intent.from_session(state, typed, datetime.fromisoformat(state["started_at"]))
            score = model.score_one(intent.intent_vector(view))
            by_kind.setdefault(kind_of(state, session.revenue > 0), []).append(score)
            labels.append(session.revenue > 0)
            scores.append(score)
        auc = roc_auc_score(labels, scores)
        high = sum(s >= 0.6 for s in scores) / len(scores)
        print(f"{label}: ROC AUC {auc:.3f}, share >= 0.6 {high:.1%}")
        for kind, values in sorted(by_kind.items()):
            share = sum(v >= 0.6 for v in values) / len(values)
            print(f"  {kind:<10} n={len(values):>5}  mean {statistics.fmean(values):.3f}  >= 0.6: {share:.1%}")
        means = ", ".join(f"{k} {statistics.fmean(v):.2f}" for k, v in sorted(by_kind.items()))
        figures += [
            (f"live intent, {label}: ROC AUC buying vs not", f"{auc:.3f}", ""),
            (f"live intent, {label}: mean score by visit", means, ""),
            (f"live intent, {label}: share of visits >= 0.6", f"{high:.1%}", ""),
        ]
    record("intent-live", "python bench/intent_live.py", figures)


if __name__ == "__main__":
    main()
