"""``python -m services.admin``: serve the admin API with uvicorn.

``python -m services.admin create-key --name NAME --role ROLE`` makes an API key (the first admin
key, or one for a tool) and prints it once; only its hash is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.admin import access
from services.admin.app import OWNED_COLLECTIONS, create_app
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.admin")
    commands = parser.add_subparsers(dest="command")
    create = commands.add_parser("create-key", help="make an API key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=access.ROLES)
    args = parser.parse_args()
    settings = AdminSettings()
    if args.command == "create-key":
        sys.stdout.write(asyncio.run(create_key(settings, args.name, args.role)) + "\n")
        return
    serve("admin", settings, create_app)


if __name__ == "__main__":
    main()
