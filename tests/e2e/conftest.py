"""End-to-end fixtures: a whole proact stack as processes, on its own topics and database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.settings import Settings
from shared.store import mongo_client
from tests.e2e.stack import SERVICES, Stack
from tests.factories import uid
from tests.integration.conftest import isolated_topics


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, model_registry: Path) -> AsyncIterator[Stack]:
    prefix = uid("e2e").replace("-", "")
    settings = Settings()
    async with isolated_topics(settings.kafka_bootstrap_servers, prefix):
        stack = Stack(prefix, prefix, Path(tmp_path_factory.mktemp(prefix)), model_registry)
        try:
            for name in SERVICES:
                stack.start(name)
            for name in SERVICES:
                stack.wait_ready(name)
            yield stack
        finally:
            stack.close()
            client = mongo_client(settings)
            await client.drop_database(prefix)
            await client.close()
