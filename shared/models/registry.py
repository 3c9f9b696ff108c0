"""Model artifacts and the versioned registry: save, load safely, promote, roll back, hot reload.

An artifact is a folder: ``model.skops`` (the fitted estimator and calibrator, in skops' format,
which loads without running arbitrary code), ``metadata.json`` (kind, version, features, metrics,
data fingerprint, library versions, the artifact's SHA-256), ``card.md`` and ``report/*.png``.
Loading refuses a file whose hash differs from its metadata and any type outside an explicit
allow-list. The registry is a folder of artifacts per kind plus ``promoted.json``; services hold a
``ModelHandle`` that notices a new promotion and loads it without a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import skops.io as sio
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from shared.features.churn import WORDS
from shared.features.intent import PageStat
from shared.features.page_stats import PAGE_STATS_FILE, PageStats
from shared.models.compiled import CompiledModel

log = logging.getLogger(__name__)
_meter = metrics.get_meter("proact.models")
load_failures = _meter.create_counter(
    "proact.model.load_failures", unit="{failure}", description="promoted models refused at load, by kind"
)
_handles: weakref.WeakSet[ModelHandle] = weakref.WeakSet()


def _in_use(_: CallbackOptions) -> Iterable[Observation]:
    for handle in list(_handles):
        yield Observation(1 if handle._model is not None else 0, {"proact.model.kind": handle.kind})


# 1 while this process scores with a model of the kind, 0 while that kind's scores are off (none
# promoted, or the promoted one refused): what the ProactModelMissing alert watches
_meter.create_observable_gauge(
    "proact.model.in_use", [_in_use], unit="1", description="whether a model of the kind is in use, by kind"
)
MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
KINDS = ("intent", "churn")
# Every type a proact model file may contain beyond skops' own defaults. Anything else is refused.
ALLOWED_TYPES = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn.isotonic.IsotonicRegression",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
    }
)


class ModelRefused(ValueError):
    """A model artifact that must not be loaded (tampered, unknown types, wrong kind)."""


@dataclass(frozen=True)
class LoadedModel:
    model: CompiledModel
    metadata: dict[str, Any]
    # an intent model's page statistics (shared.features.page_stats), promoted with it; empty without
    page_stats: dict[str, PageStat] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def feature_indices(self) -> list[int]:
        return list(self.metadata["feature_indices"])

    def score_one(self, full_vector: list[float]) -> float:
        idx = self.metadata["feature_indices"]
        return self.model.score_one([full_vector[i] for i in idx])

    def reasons(self, full_vector: list[float], top: int = 3) -> list[dict[str, Any]]:
        """The features that raise this score most, with their exact contribution to its log-odds
        (``CompiledModel.contributions``) and their value; empty for a model without one."""
        idx = self.metadata["feature_indices"]
        shares = self.model.contributions([full_vector[i] for i in idx])
        if shares is None:
            return []
        names = list(self.metadata["features"])  # the features the model uses, in its order
        ranked = sorted(zip(names, shares, (full_vector[i] for i in idx), strict=True), key=lambda r: -r[1])
        words = WORDS if self.metadata.get("kind") == "churn" else {}
        return [
            {"feature": name, "label": words.get(name, name), "contribution": round(share, 3), "value": round(value, 3)}
            for name, share, value in ranked[:top]
            if share > 0
        ]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        **{name: package_version(name) for name in ("scikit-learn", "numpy", "skops")},
    }


def save_artifact(
    out: Path,
    estimator: Any,
    calibrator: Any,
    metadata: dict[str, Any],
    card: str,
    page_stats: PageStats | None = None,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    if page_stats is not None:
        metadata = {**metadata, "page_stats": _write_page_stats(out, page_stats)}
    model_path = out / MODEL_FILE
    sio.dump({"estimator": estimator, "calibrator": calibrator}, model_path)
    digest = sha256_file(model_path)
    created = datetime.now(UTC)
    metadata = {
        **metadata,
        "version": metadata.get("version") or f"{created:%Y%m%dT%H%M%SZ}-{digest[:8]}",
        "created_at": created.isoformat(),
        "artifact_sha256": digest,
        "libraries": library_versions(),
    }
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    (out / "card.md").write_text(card)
    return out


def load_artifact(path: Path, kind: str | None = None) -> LoadedModel:
    """Load an artifact folder, refusing anything tampered with or unexpected."""
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelRefused(f"{path}: unreadable metadata: {exc}") from None
    if kind is not None and metadata.get("kind") != kind:
        raise ModelRefused(f"{path}: a {metadata.get('kind')!r} model, not {kind!r}")
    model_path = path / MODEL_FILE
    if not model_path.is_file():
        raise ModelRefused(f"{path}: no {MODEL_FILE}")
    if sha256_file(model_path) != metadata.get("artifact_sha256"):
        raise ModelRefused(f"{model_path}: content does not match the SHA-256 in its metadata (tampered?)")
    try:
        untrusted = set(sio.get_untrusted_types(file=model_path))
    except Exception as exc:  # skops raises many types on a corrupt file; all mean "refuse"
        raise ModelRefused(f"{model_path}: not a readable skops file: {exc}") from None
    unexpected = untrusted - ALLOWED_TYPES
    if unexpected:
        raise ModelRefused(f"{model_path}: contains types outside the allow-list: {sorted(unexpected)}")
    loaded = sio.load(model_path, trusted=sorted(untrusted))
    return LoadedModel(CompiledModel(loaded["estimator"], loaded["calibrator"]), metadata, _page_stats(path, metadata))


def attach_page_stats(artifact: Path, stats: PageStats, out: Path) -> Path:
    """A new intent artefact in ``out``: ``artifact``'s model with fresh page statistics, as its own
    version (the statistics change with the shop's pages and sales; the model need not be retrained
    for them). The original is left as it is, so a rollback brings back its statistics too."""
    loaded = load_artifact(artifact, "intent")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(artifact, tmp)
    recorded = _write_page_stats(tmp, stats)
    base = str(loaded.metadata.get("model_version") or loaded.version)
    metadata = {
        **loaded.metadata,
        "model_version": base,
        "version": f"{base}-ps{recorded['sha256'][:8]}",
        "page_stats": recorded,
    }
    (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    load_artifact(out, "intent")  # what was written loads, or this raises
    return out


def _write_page_stats(folder: Path, stats: PageStats) -> dict[str, Any]:
    """Write the statistics into an artefact folder; what its metadata records of them (with the
    checksum ``_page_stats`` checks at load)."""
    (folder / PAGE_STATS_FILE).write_text(stats.to_json())
    return {**stats.summary(), "sha256": sha256_file(folder / PAGE_STATS_FILE)}


def _page_stats(path: Path, metadata: dict[str, Any]) -> dict[str, PageStat]:
    """The artefact's page statistics, checked against the checksum its metadata records."""
    recorded = metadata.get("page_stats")
    if not recorded:
        return {}
    stats_path = path / PAGE_STATS_FILE
    if not stats_path.is_file() or sha256_file(stats_path) != recorded.get("sha256"):
        raise ModelRefused(f"{stats_path}: missing, or not the file its metadata names (tampered?)")
    try:
        return PageStats.read(stats_path).stats
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelRefused(f"{stats_path}: unreadable: {exc}") from None


class Registry:
    """Versioned artifacts under ``root/<kind>/<version>/`` and the promoted version per kind."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _pointer(self, kind: str) -> Path:
        return self.root / kind / "promoted.json"

    def add(self, artifact: Path) -> str:
        loaded = load_artifact(artifact)
        kind = loaded.metadata["kind"]
        target = self.root / kind / loaded.version
        if not target.exists():
            tmp = target.with_name(target.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(artifact, tmp)
            os.replace(tmp, target)
        return loaded.version

    def versions(self, kind: str) -> list[str]:
        folder = self.root / kind
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / METADATA_FILE).is_file())

    def promoted(self, kind: str) -> str | None:
        pointer = self._pointer(kind)
        if not pointer.is_file():
            return None
        return str(json.loads(pointer.read_text())["version"])

    def promote(self, kind: str, version: str, why: str | None = None) -> None:
        """Make ``version`` the one the services use; ``why`` (a retrain's verdict, say) is kept with
        the pointer and in the registry's decision log (``decisions.ndjson`` beside it)."""
        if version not in self.versions(kind):
            raise KeyError(f"no {kind} model version {version}")
        load_artifact(self.root / kind / version, kind)  # never promote what would be refused
        pointer = self._pointer(kind)
        history = json.loads(pointer.read_text())["history"] if pointer.is_file() else []
        current = self.promoted(kind)
        if current == version:
            return
        if current:
            history.append(current)
        now = datetime.now(UTC).isoformat()
        self._write_pointer(kind, {"version": version, "history": history, "at": now, "why": why})
        self.note(kind, {"at": now, "promoted": version, "replaced": current, "why": why})

    def note(self, kind: str, entry: dict[str, Any]) -> None:
        """Append to the kind's decision log: what was promoted or refused, and why."""
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "decisions.ndjson").open("a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")

    def decisions(self, kind: str) -> list[dict[str, Any]]:
        path = self.root / kind / "decisions.ndjson"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []

    def rollback(self, kind: str) -> str:
        pointer = self._pointer(kind)
        history = json.loads(pointer.read_text())["history"] if pointer.is_file() else []
        if not history:
            raise KeyError(f"no earlier {kind} model to roll back to")
        version = history.pop()
        # the target must load as a promotion would: a model whose files went missing or changed
        # since it was in force is refused (ModelRefused), and the pointer stays where it is
        load_artifact(self.root / kind / str(version), kind)
        self._write_pointer(kind, {"version": version, "history": history, "at": datetime.now(UTC).isoformat()})
        return str(version)

    def _write_pointer(self, kind: str, doc: dict[str, Any]) -> None:
        pointer = self._pointer(kind)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, pointer)  # atomic: a reader sees the old or the new pointer, never half

    def load_promoted(self, kind: str) -> LoadedModel | None:
        version = self.promoted(kind)
        return load_artifact(self.root / kind / version, kind) if version else None


class ModelHandle:
    """The promoted model of one kind, reloaded when a new version is promoted (checked at most
    every ``check_every_s`` seconds, by one ``stat`` of the pointer file).

    A model never stops a service: a promoted model that fails to load (files missing or altered,
    types outside the allow-list) is refused with an error in the log and counted
    (``proact.model.load_failures``), and the last good model stays in use; with none, scores are
    off. ``status`` says which, for readiness details and the admin's models page."""

    def __init__(self, registry: Registry, kind: str, check_every_s: float = 5.0) -> None:
        self.registry = registry
        self.kind = kind
        self.check_every_s = check_every_s
        self._model: LoadedModel | None = None
        self._mtime: float | None = None
        self._checked = 0.0
        self.refused: str | None = None  # why the promoted version was not loaded, if it was not
        _handles.add(self)
        self.refresh(force=True)
        if self._model is None and self.refused is None:
            log.warning("no %s model promoted: %s scores are off", kind, kind, extra={"model_dir": str(registry.root)})

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.check_every_s:
            return
        self._checked = now
        pointer = self.registry._pointer(self.kind)
        try:
            mtime = pointer.stat().st_mtime if pointer.is_file() else None
        except OSError:
            return
        if mtime == self._mtime and not force:
            return
        self._mtime = mtime
        try:
            loaded = self.registry.load_promoted(self.kind)
        except (ModelRefused, OSError, KeyError, ValueError) as exc:
            self.refused = str(exc)[:500]
            load_failures.add(1, {"proact.model.kind": self.kind})
            log.error(
                "promoted %s model refused; %s",
                self.kind,
                f"still scoring with {self._model.version}" if self._model else "scores are off",
                extra={"reason": self.refused},
            )
            return
        if loaded is None and self._model is not None:
            return  # the pointer went away: keep scoring with what was promoted
        self._model, self.refused = loaded, None
        if loaded is not None:
            log.info("%s model in use", self.kind, extra={"version": loaded.version})

    def current(self) -> LoadedModel | None:
        self.refresh()
        return self._model

    def status(self) -> dict[str, Any]:
        """What this service scores with: the version in use, or why none is (for health and the UI)."""
        model = self._model
        return {
            "kind": self.kind,
            "version": model.version if model else None,
            "model_dir": str(self.registry.root),
            "refused": self.refused,
            "scores": "on" if model else "off: no model promoted" if not self.refused else "off: model refused",
        }
