"""``python -m services.admin``: serve the admin API with uvicorn.

``python -m services.admin create-key --name NAME --role ROLE`` makes an API key (the first admin
key, or one for a tool) and prints it once; only its hash is stored.

``python -m services.admin backtest --rule ID [--version N] --events FILE.ndjson [--until TIME]``
back-tests a rule (from MongoDB) over an NDJSON export of CloudEvents, one structured event per
line, and prints the result as JSON; lines that are not valid events are counted and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from services.admin import access
from services.admin.app import OWNED_COLLECTIONS, create_app
from shared.contract import ARCHIVE, InvalidEvent, decode
from shared.engine import backtest
from shared.rules import Rule
from shared.rules import store as rule_store
from shared.settings import AdminSettings
from shared.store import database, ensure_indexes, mongo_client
from shared.web import serve


async def create_key(settings: AdminSettings, name: str, role: access.Role) -> str:
    client = mongo_client(settings)
    try:
        db = database(client, settings)
        await ensure_indexes(db, OWNED_COLLECTIONS)
        key, _ = await access.create_key(db, name, role, by="command line")
    finally:
        await client.close()
    return key


async def backtest_file(
    settings: AdminSettings, rule_id: str, version: int | None, path: Path, until: datetime | None
) -> dict[str, Any]:
    client = mongo_client(settings)
    try:
        db = database(client, settings)
        docs = [d for d in await rule_store.versions(db, rule_id) if version is None or d["version"] == version]
        if not docs:
            raise SystemExit(f"no rule {rule_id}" + (f" version {version}" if version else ""))
        rule = Rule.model_validate(docs[0]["rule"])
        in_force, policy = await rule_store.published(db), await rule_store.policy(db)
    finally:
        await client.close()
    events, invalid = [], 0
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as lines:
        for line in lines:
            try:
                events.append(decode(line.strip(), window=ARCHIVE))
            except InvalidEvent:
                invalid += 1
    events.sort(key=lambda e: e.time)
    result = backtest.run(rule, in_force, policy, events, until)
    return {**result, "invalid_records": invalid}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.admin")
    commands = parser.add_subparsers(dest="command")
    create = commands.add_parser("create-key", help="make an API key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=access.ALL_ROLES)
    test = commands.add_parser("backtest", help="back-test a rule over an NDJSON export of events")
    test.add_argument("--rule", required=True)
    test.add_argument("--version", type=int)
    test.add_argument("--events", required=True, type=Path, help="CloudEvents, one JSON per line (.gz too)")
    test.add_argument("--until", type=datetime.fromisoformat, help="fire timers up to this time (ISO 8601)")
    args = parser.parse_args()
    settings = AdminSettings()
    if args.command == "create-key":
        sys.stdout.write(asyncio.run(create_key(settings, args.name, args.role)) + "\n")
        return
    if args.command == "backtest":
        result = asyncio.run(backtest_file(settings, args.rule, args.version, args.events, args.until))
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    serve("admin", settings, create_app)


if __name__ == "__main__":
    main()
