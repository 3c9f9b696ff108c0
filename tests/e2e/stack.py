"""The whole of proact as separate processes against the local Kafka and FerretDB, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from shared.catalogue import BY_NAME

SERVICES = tuple(BY_NAME)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Stack:
    def __init__(self, prefix: str, database: str, workdir: Path, model_dir: Path) -> None:
        self.workdir = workdir
        self.ports = {name: free_port() for name in SERVICES}
        self.env = {
            **os.environ,
            "PROACT_TOPIC_PREFIX": prefix,
            "PROACT_MONGO_DATABASE": database,
            "PROACT_DISPATCHER_OUTBOX_DIR": str(workdir / "outbox"),
            "PROACT_INSTANCE_ID": f"{prefix}-1",
            "PROACT_MODEL_DIR": str(model_dir),
            "PROACT_ENGINE_GROUP_ID": f"{prefix}-engine",
            "PROACT_DISPATCHER_GROUP_ID": f"{prefix}-dispatcher",
            "OTEL_TRACES_EXPORTER": "none",
            **{BY_NAME[name].port_env: str(port) for name, port in self.ports.items()},
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def start(self, name: str, module: str | None = None, **env: str) -> None:
        """Start a service; ``module`` and extra environment start a second instance of one."""
        log = (self.workdir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", module or BY_NAME[name].module],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def api_key(self, role: str = "viewer") -> str:
        """An admin API key, made the way an operator makes one (the command line)."""
        made = subprocess.run(
            [sys.executable, "-m", "services.admin", "create-key", "--name", f"e2e-{role}", "--role", role],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return made.stdout.strip()

    def kill(self, name: str) -> None:
        """SIGKILL: no drain, no commit, no goodbye to the group."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self, name: str) -> int:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        return process.wait(30)

    def wait_ready(self, name: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited: {self.log_tail(name)}")
            try:
                response = httpx.get(self.url(name, BY_NAME[name].ready), timeout=2)
                if response.status_code in (200, 204):
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready after {timeout_s}s ({last}): {self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def outbox_lines(self) -> list[bytes]:
        lines: list[bytes] = []
        for path in sorted((self.workdir / "outbox").glob("*.ndjson")):
            lines += [line for line in path.read_bytes().splitlines() if line.strip()]
        return lines

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name)


@asynccontextmanager
async def own_stack(name: str, workdir: Path, model_dir: Path) -> AsyncIterator[Stack]:
    """A stack (nothing started yet) on topics and a database of its own, removed afterwards."""
    from shared.settings import Settings
    from shared.store import mongo_client
    from tests.factories import uid
    from tests.integration.conftest import isolated_topics
    from tests.kafka_io import BOOTSTRAP

    prefix = uid(name).replace("-", "")
    async with isolated_topics(BOOTSTRAP, prefix):
        stack = Stack(prefix, prefix, workdir, model_dir)
        try:
            yield stack
        finally:
            stack.close()
            client = mongo_client(Settings())
            await client.drop_database(prefix)
            await client.close()
