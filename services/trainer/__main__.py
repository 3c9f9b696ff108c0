"""``python -m services.trainer``: train, score and register the intent and churn models.

    train intent --data FILE.csv [--page-stats-events FILE.ndjson] --out DIR
    page-stats --events FILE.ndjson (--out FILE.json | --model DIR --out DIR)
    score intent --model DIR --data FILE.csv --out SCORES.csv
    train churn --orders FILE.ndjson --as-of DATE --horizon-days N --out DIR
    train churn --from-mongo --as-of DATE --horizon-days N --out DIR
    score churn --model DIR --orders FILE.ndjson --as-of DATE --out SCORES.csv
    registry list|add DIR|promote KIND VERSION|rollback KIND
    health

``train`` with ``--register`` adds the artifact to the registry (``PROACT_MODEL_DIR``) and with
``--promote`` also makes it the version the services use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from services.trainer import data, training
from shared.features.page_stats import PageStats, sessions_from_events
from shared.logs import setup_logging
from shared.models.registry import KINDS, ModelRefused, Registry, attach_page_stats, sha256_file
from shared.settings import TrainerSettings
from shared.store import mongo_client, ping

SERVICE = "trainer"


async def _health(settings: TrainerSettings) -> int:
    client = mongo_client(settings)
    try:
        ok = await ping(client)
    finally:
        await client.close()
    print(f"trainer: mongodb {'reachable' if ok else 'unreachable'}; model dir {settings.model_dir}")
    return 0 if ok else 1


def _page_stats(path: Path) -> PageStats:
    recorded, _ = sessions_from_events(data.iter_events(path))
    return PageStats.from_sessions(recorded, source=f"{path.name} (sha256 {sha256_file(path)[:12]})")


def _promote_if_better(registry: Registry, args: argparse.Namespace, settings: TrainerSettings) -> int:
    """The retrain's gate: register the candidate; promote it only if it beats the model in force on
    the candidate's out-of-time test (``training.challenge``); the verdict goes to the registry."""
    version = registry.add(args.out)
    as_of = data.parse_as_of(args.as_of)
    if args.from_mongo:
        histories = asyncio.run(training.histories_from_mongo(settings, as_of, args.horizon_days))
    else:
        histories = data.read_histories(args.orders)
    current = registry.promoted("churn")
    verdict = training.challenge(args.out, registry.root / "churn" / current if current else None, histories)
    if verdict["promote"]:
        registry.promote("churn", version, why=verdict["why"])
        print(f"promoted churn {version}: {verdict['why']}")
    else:
        registry.note("churn", {"at": datetime.now(UTC).isoformat(), "refused": version, "why": verdict["why"]})
        print(f"registered churn {version}, not promoted: {verdict['why']}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.trainer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("health", help="check that the trainer can reach its history store")

    train = commands.add_parser("train", help="train a model and write its artifact folder")
    train_kinds = train.add_subparsers(dest="kind", required=True)
    ti = train_kinds.add_parser("intent")
    ti.add_argument("--data", type=Path, required=True, help="sessions in the UCI column format, with Revenue")
    ti.add_argument(
        "--page-stats-events",
        type=Path,
        help="the shop's recorded browsing and orders (CloudEvents NDJSON, .gz accepted): the page statistics "
        "the live path feeds the model are computed from them and kept beside it",
    )
    stats = commands.add_parser("page-stats", help="compute page statistics from recorded browsing and orders")
    stats.add_argument("--events", type=Path, required=True, help="CloudEvents NDJSON (.gz accepted)")
    stats.add_argument(
        "--model", type=Path, help="an intent artefact: --out is then a new artefact, the model with these statistics"
    )
    stats.add_argument("--out", type=Path, required=True)
    stats.add_argument("--register", action="store_true", help="(with --model) add to the registry")
    stats.add_argument("--promote", action="store_true", help="(with --model) register and promote")
    tc = train_kinds.add_parser("churn")
    source = tc.add_mutually_exclusive_group(required=True)
    source.add_argument("--orders", type=Path, help="CloudEvents NDJSON (.gz accepted)")
    source.add_argument("--from-mongo", action="store_true", help="the shop's own order history in MongoDB")
    tc.add_argument("--as-of", required=True, help="features from events up to this date (YYYY-MM-DD: end of day, UTC)")
    tc.add_argument("--horizon-days", type=int, required=True, help="churned = no order in this many days after")
    for p in (ti, tc):
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--register", action="store_true", help="add to the registry in PROACT_MODEL_DIR")
        p.add_argument("--promote", action="store_true", help="register and promote")
    tc.add_argument(
        "--promote-if-better",
        action="store_true",
        help="register, and promote only if the candidate's out-of-time ROC AUC is at least the in-force "
        "model's on the same customers (the verdict is kept in the registry)",
    )

    score = commands.add_parser("score", help="score a file with a trained model")
    score_kinds = score.add_subparsers(dest="kind", required=True)
    si = score_kinds.add_parser("intent")
    si.add_argument("--data", type=Path, required=True)
    sc = score_kinds.add_parser("churn")
    sc.add_argument("--orders", type=Path, required=True)
    sc.add_argument("--as-of", required=True)
    for p in (si, sc):
        p.add_argument("--model", type=Path, required=True)
        p.add_argument("--out", type=Path, required=True)

    registry = commands.add_parser("registry", help="list, add, promote, roll back")
    actions = registry.add_subparsers(dest="action", required=True)
    actions.add_parser("list")
    add = actions.add_parser("add")
    add.add_argument("artifact", type=Path)
    promote = actions.add_parser("promote")
    promote.add_argument("kind", choices=KINDS)
    promote.add_argument("version")
    rollback = actions.add_parser("rollback")
    rollback.add_argument("kind", choices=KINDS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = TrainerSettings()
    setup_logging(SERVICE, settings.log_level)
    registry = Registry(settings.model_dir)
    try:
        if args.command == "health":
            return asyncio.run(_health(settings))
        if args.command == "train":
            if args.kind == "intent":
                stats = _page_stats(args.page_stats_events) if args.page_stats_events else None
                metadata = training.train_intent(args.data, args.out, stats)
            elif args.from_mongo:
                as_of = data.parse_as_of(args.as_of)
                metadata = asyncio.run(training.train_churn_from_mongo(settings, as_of, args.horizon_days, args.out))
            else:
                metadata = training.train_churn(args.orders, data.parse_as_of(args.as_of), args.horizon_days, args.out)
            print(json.dumps({k: metadata[k] for k in ("kind", "version", "validation", "report")}, indent=2))
            if getattr(args, "promote_if_better", False):
                return _promote_if_better(registry, args, settings)
            if args.register or args.promote:
                version = registry.add(args.out)
                if args.promote:
                    registry.promote(args.kind, version)
                print(f"registered {args.kind} {version}{' and promoted it' if args.promote else ''}")
            return 0
        if args.command == "page-stats":
            stats = _page_stats(args.events)
            print(json.dumps(stats.summary()))
            if args.model is None:
                args.out.write_text(stats.to_json())
                return 0
            attach_page_stats(args.model, stats, args.out)
            if args.register or args.promote:
                version = registry.add(args.out)
                if args.promote:
                    registry.promote("intent", version)
                print(f"registered intent {version}{' and promoted it' if args.promote else ''}")
            return 0
        if args.command == "score":
            if args.kind == "intent":
                n = training.score_intent(args.model, args.data, args.out)
            else:
                n = training.score_churn(args.model, args.orders, data.parse_as_of(args.as_of), args.out)
            print(f"scored {n} rows into {args.out}")
            return 0
        if args.command == "registry":
            if args.action == "list":
                for kind in KINDS:
                    promoted = registry.promoted(kind)
                    for v in registry.versions(kind):
                        print(f"{kind}\t{v}\t{'promoted' if v == promoted else ''}")
            elif args.action == "add":
                print(registry.add(args.artifact))
            elif args.action == "promote":
                registry.promote(args.kind, args.version)
                print(f"promoted {args.kind} {args.version}")
            elif args.action == "rollback":
                print(f"rolled back {args.kind} to {registry.rollback(args.kind)}")
            return 0
    except (ValueError, KeyError, FileNotFoundError, ModelRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
