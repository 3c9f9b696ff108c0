"""``python -m services.trainer``: the trainer's command line (``health`` so far)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared.logs import setup_logging
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.trainer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("health", help="check that the trainer can reach its history store")
    args = parser.parse_args(argv)
    settings = TrainerSettings()
    setup_logging(SERVICE, settings.log_level)
    if args.command == "health":
        return asyncio.run(_health(settings))
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
