"""Integration fixtures: the real local Kafka broker and FerretDB (``make infra-up`` starts them).

Each test session gets its own topic prefix and database, so runs never see each other's events,
and removes them at the end.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from services.admin.app import create_app
from shared.contract import Topics
from shared.contract.topics import ensure_topics
from shared.rules import store as rule_store
from shared.rules.builtin import LINGERING
from shared.settings import AdminSettings, Settings
from shared.store import INDEXES, Document, database, ensure_indexes, mongo_client
from tests.factories import uid

RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings(topic_prefix=f"it{RUN}", mongo_database=f"it{RUN}")


@asynccontextmanager
async def isolated_topics(bootstrap_servers: str, prefix: str) -> AsyncIterator[Topics]:
    """A complete set of proact topics under its own prefix, deleted afterwards."""
    topics = Topics(prefix=prefix)
    await ensure_topics(bootstrap_servers, topics)
    try:
        yield topics
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
        await admin.start()
        try:
            await admin.delete_topics([s.name for s in topics.specs()])
        finally:
            await admin.close()


@pytest.fixture(scope="session")
async def topics(base_settings: Settings) -> AsyncIterator[Topics]:
    async with isolated_topics(base_settings.kafka_bootstrap_servers, base_settings.topic_prefix) as topics:
        yield topics


@pytest.fixture(scope="module")
async def admin_app(base_settings: Settings) -> AsyncIterator[FastAPI]:
    """The admin service in process, on a database of its own (dropped afterwards)."""
    name = f"admin{uuid.uuid4().hex[:10]}"
    app = create_app(AdminSettings(mongo_database=name, topic_prefix=base_settings.topic_prefix))
    async with app.router.lifespan_context(app):
        yield app
    client = mongo_client(base_settings)
    await client.drop_database(name)
    await client.close()


@pytest.fixture(scope="session")
async def mongo(base_settings: Settings) -> AsyncIterator[AsyncMongoClient[Document]]:
    client = mongo_client(base_settings)
    yield client
    await client.drop_database(base_settings.mongo_database)
    await client.close()


@pytest.fixture(scope="session")
async def db(mongo: AsyncMongoClient[Document], base_settings: Settings) -> AsyncDatabase[Document]:
    db = database(mongo, base_settings)
    await ensure_indexes(db, INDEXES)
    return db


async def profiles_known(engine: Any, customer_ids: Iterable[str], timeout_s: float = 20) -> None:
    """Wait until the engine holds these customers' profiles. Topics have no order between them: a
    test about a rule, not about a profile arriving late (which waits for it, see the unit tests),
    sends the profiles first and waits here before the events that trigger the rule."""
    wanted = set(customer_ids)
    for _ in range(int(timeout_s * 10)):
        if all(any("consents" in (st.get("customer", c) or {}) for st in engine.states.values()) for c in wanted):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the engine has not read the profiles of {sorted(wanted)}")


def free_port() -> int:
    """A port nothing listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def database_with_rules(
    base_settings: Settings, name: str, lingering_conditions: list[dict[str, str]]
) -> AsyncDatabase[Document]:
    """A database of its own with the built-in rules seeded and the shop's version of the
    lingering-visitor rule published with these conditions (tests cannot wait an hour)."""
    db = mongo_client(base_settings)[name]
    await rule_store.seed(db)
    current = (await rule_store.versions(db, LINGERING))[0]["rule"]
    draft = await rule_store.save_draft(db, {**current, "conditions": lingering_conditions}, author="tests")
    await rule_store.publish(db, LINGERING, draft.version, author="tests")
    return db


class Mailbox:
    """What a real SMTP server (aiosmtpd, the ``smtp`` fixture) received."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.raw: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook name
        self.raw.append(envelope.content)
        self.received.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    port = free_port()
    inbox = Mailbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def waiting(driver: webdriver.Chrome, timeout: float = 15) -> WebDriverWait[webdriver.Chrome]:
    """A wait that tries again while a page is being replaced (a link followed, a form posted): an
    element looked up in the page that is going away is stale, or answers "node does not belong to
    the document"."""
    return WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,))


async def finished(http: Any, job_id: str) -> dict[str, Any]:
    """A back-test job of the admin API once it is done or failed, with the phases seen on the way."""
    seen: set[str] = set()
    for _ in range(600):
        job: dict[str, Any] = (await http.get(f"/v1/backtests/{job_id}")).json()
        seen.add(job["progress"]["phase"])
        if job["status"] in ("done", "failed"):
            job["phases_seen"] = seen
            return job
        await asyncio.sleep(0.1)
    raise TimeoutError(job)


def engine_on(topics: Topics, model_dir: Any, rules: Any = None, **settings: Any) -> Any:
    """An engine of its own on ``topics`` (its own group and instance), polling fast."""
    from services.engine.app import Engine
    from shared.settings import EngineSettings

    options = {"group_id": uid("engine"), "instance_id": uid("i"), "poll_timeout_ms": 50, **settings}
    return Engine(EngineSettings(topic_prefix=topics.prefix, model_dir=model_dir, **options), rules=rules)


@asynccontextmanager
async def admin_api(
    base_settings: Settings, topics: Topics, model_dir: Any, role: str = "publisher"
) -> AsyncIterator[tuple[FastAPI, Any]]:
    """An admin service on a database of its own over ``topics``, and an HTTP client signed in with
    a key of ``role``; the database is dropped afterwards."""
    name = f"admin{uuid.uuid4().hex[:10]}"
    app = create_app(AdminSettings(mongo_database=name, topic_prefix=topics.prefix, model_dir=model_dir))
    try:
        async with app.router.lifespan_context(app), signed_in(app, role) as http:
            yield app, http
    finally:
        client = mongo_client(base_settings)
        await client.drop_database(name)
        await client.close()


@asynccontextmanager
async def signed_in(app: FastAPI, role: str, name: str | None = None) -> AsyncIterator[Any]:
    """An HTTP client of an admin ``app`` (its lifespan running), signed in with a new key of
    ``role`` named ``name`` (the role's name by default)."""
    import httpx

    from services.admin import access

    key, _ = await access.create_key(app.state.db, name or role, role, by="tests")  # type: ignore[arg-type]
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin", headers=auth) as http:
        yield http
