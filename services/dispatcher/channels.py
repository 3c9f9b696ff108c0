"""Delivery channels. The walking skeleton has one: a file outbox, one NDJSON line per message.

A channel is idempotent by the action's idempotency key, so a dispatcher that crashed after
delivering and before recording it does not deliver again when the action is re-read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import orjson


class Channel(Protocol):
    name: str

    async def send(self, message: dict[str, Any]) -> bool:
        """Deliver; return False when this idempotency key was delivered before."""
        ...


class OutboxChannel:
    """Appends each message to ``<dir>/<channel>.ndjson``; a stand-in for e-mail, SMS and push."""

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._delivered: set[str] = set()
        for path in directory.glob("*.ndjson"):
            with path.open("rb") as f:
                for line in f:
                    if line.strip():
                        self._delivered.add(orjson.loads(line)["idempotency_key"])

    async def send(self, message: dict[str, Any]) -> bool:
        key = message["idempotency_key"]
        if key in self._delivered:
            return False
        line = orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)
        path = self.directory / f"{message['channel']}.ndjson"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._delivered.add(key)
        return True
