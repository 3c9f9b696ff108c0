"""`make run`'s SMTP catcher (deploy/local/mailcatcher.sh): a real SMTP server that keeps each e-mail
the dispatcher's mailer sends as an .eml file with both parts, recognised by its banner, and a port
another mail server holds is refused rather than used."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from shared import templates
from shared.mail import Mailer
from tests.integration.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def script(action: str, port: int, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PROACT_CACHE": str(cache),
        "PROACT_SMTP_PORT": str(port),
        "PROACT_MAIL_DIR": str(cache / "mail"),
    }
    return subprocess.run(
        ["bash", "deploy/local/mailcatcher.sh", action], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def catcher(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    started = script("start", port, tmp_path)
    assert started.returncode == 0, started.stderr
    yield port, tmp_path
    script("stop", port, tmp_path)


async def test_the_catcher_keeps_each_email_as_a_file_with_both_parts(catcher: tuple[int, Path]) -> None:
    port, cache = catcher
    mailer = Mailer("127.0.0.1", port, "shop <shop@example.com>")
    for locale in ("pl", "ru"):
        used, parts = templates.render("delay_notice", locale, {"order_id": "o-7"})
        await mailer.send(mailer.compose_rendered("anna@example.com", used, parts), "anna@example.com")
    kept = sorted((cache / "mail").glob("*.eml"))
    assert len(kept) == 2
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in kept)  # addresses: the owner's only
    mails = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in kept]
    assert [m["Content-Language"] for m in mails] == ["pl", "ru"]
    assert mails[0]["Subject"] == "Twoje zamówienie o-7 się opóźnia"
    assert {p.get_content_type() for p in mails[1].iter_parts()} == {"text/plain", "text/html"}
    again = script("start", port, cache)  # a second start finds its own catcher by the banner
    assert again.returncode == 0
    assert "already running" in again.stderr


def test_a_port_held_by_another_server_is_refused(tmp_path: Path) -> None:
    with socket.socket() as stray:
        stray.bind(("127.0.0.1", 0))
        stray.listen()
        refused = script("start", stray.getsockname()[1], tmp_path)
    assert refused.returncode != 0
    assert "is taken by another process" in refused.stderr
