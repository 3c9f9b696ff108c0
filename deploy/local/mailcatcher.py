"""The local SMTP catcher of `make run`: a real SMTP server (aiosmtpd) on loopback that keeps every
message it receives as an ``.eml`` file, so a newcomer can open what proact sent (any mail client
opens the files; ``deploy/demo/watch.py`` prints each subject as it arrives).

    python deploy/local/mailcatcher.py --port 2525 --dir ~/.cache/proact/mail

It delivers nothing anywhere. Files are written whole (a temporary name, then a rename), named by
arrival time, and readable by their owner only: they hold the demo customers' addresses.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

BANNER = "proact-mailcatcher"


class Keeper:
    """aiosmtpd's handler: each message's bytes to one file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = itertools.count()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook name
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{next(self.count):06d}.eml"
        partial = self.folder / f".{name}.tmp"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        partial.rename(self.folder / name)
        return "250 kept"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    controller = Controller(Keeper(args.dir), hostname=args.host, port=args.port, ident=BANNER)
    controller.start()
    print(f"{BANNER} on {args.host}:{args.port}, keeping messages in {args.dir}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
