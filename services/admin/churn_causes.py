"""The top churn causes per segment: what raises the churn risk of the shop's customers.

Each churn score the engine keeps comes with its reasons: the features that raised it most, with
their exact contribution to the score's log-odds (``shared/models/compiled.py``; the churn model is
a logistic regression, whose score decomposes exactly into one share per feature against the
average training customer). Here they are counted per risk segment, from the customers MongoDB
holds (the projector's copy of the engine's state): for each cause, how many of the segment's
customers have it among their top reasons and its mean contribution. Counted in Python over one
find, as the overview is (FerretDB does part of the aggregation language only).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request

from services.admin.access import Viewer
from shared.features.churn import WORDS
from shared.store import Collections

router = APIRouter(prefix="/v1", tags=["churn"])
SEGMENTS = (
    ("high risk (0.7 and above)", 0.7, 1.01),
    ("medium risk (0.4 to 0.7)", 0.4, 0.7),
    ("low risk (below 0.4)", 0.0, 0.4),
)


@router.get("/churn/causes")
async def churn_causes(request: Request, _viewer: Viewer) -> dict[str, Any]:
    """Per risk segment: its customers, their mean churn score, and the causes most often among
    their top reasons, with the mean contribution of each."""
    counts: dict[str, dict[str, list[float]]] = {segment[0]: defaultdict(list) for segment in SEGMENTS}
    customers: dict[str, list[float]] = {segment[0]: [] for segment in SEGMENTS}
    models: set[str] = set()
    async for doc in request.app.state.db[Collections.CUSTOMERS].find({"churn": {"$exists": True}}, {"churn": 1}):
        churn = doc.get("churn") or {}
        score = churn.get("score")
        if not isinstance(score, int | float):
            continue
        models.add(str(churn.get("model_version")))
        name = next(n for n, low, high in SEGMENTS if low <= score < high)
        customers[name].append(float(score))
        for reason in churn.get("reasons") or []:
            counts[name][reason["feature"]].append(float(reason["contribution"]))
    segments = []
    for name, *_ in SEGMENTS:
        n = len(customers[name])
        causes = sorted(counts[name].items(), key=lambda kv: (-len(kv[1]), kv[0]))
        segments.append(
            {
                "segment": name,
                "customers": n,
                "mean_score": round(sum(customers[name]) / n, 3) if n else None,
                "causes": [
                    {
                        "feature": feature,
                        "label": WORDS.get(feature, feature),
                        "customers": len(shares),
                        "share": round(len(shares) / n, 3),
                        "mean_contribution": round(sum(shares) / len(shares), 3),
                    }
                    for feature, shares in causes
                ],
            }
        )
    return {"segments": segments, "model_versions": sorted(models)}
