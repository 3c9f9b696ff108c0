"""schemathesis against the storefront's and the admin's published OpenAPI, on running processes with
the real Kafka and FerretDB behind them: whatever the generated requests (valid, and invalid by the
schema), no answer is a 5xx, and every answer matches what the document says of it (its body's
schema for that status, its content type). The admin is called with an admin key, so every route is
reached.

The examples per operation are few (CI has two cores); ``PROACT_FUZZ_EXAMPLES`` raises them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from services.admin.app import create_app as create_admin
from services.storefront.app import create_app as create_storefront
from shared.settings import AdminSettings, Settings, StorefrontSettings
from shared.store import mongo_client
from tests.e2e.stack import Stack
from tests.factories import uid
from tests.integration.conftest import isolated_topics

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("PROACT_FUZZ_EXAMPLES", "25"))
SECRETS = {"PROACT_UNSUBSCRIBE_SECRET": "fuzz-unsubscribe", "PROACT_STOREFRONT_IDENTITY_SECRET": "fuzz-identity"}

storefront_schema = schemathesis.openapi.from_dict(create_storefront(StorefrontSettings()).openapi())
admin_schema = schemathesis.openapi.from_dict(create_admin(AdminSettings()).openapi())
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)  # same inputs every run: a failure can be replayed


@pytest.fixture(scope="module")
async def apis(tmp_path_factory: pytest.TempPathFactory, model_registry: Path) -> AsyncIterator[Stack]:
    prefix = uid("fuzz").replace("-", "")
    base = Settings()
    async with isolated_topics(base.kafka_bootstrap_servers, prefix):
        stack = Stack(prefix, prefix, Path(tmp_path_factory.mktemp(prefix)), model_registry)
        try:
            for name in ("storefront", "admin"):
                stack.start(name, **SECRETS)
            for name in ("storefront", "admin"):
                stack.wait_ready(name)
            yield stack
        finally:
            stack.close()
            client = mongo_client(base)
            await client.drop_database(prefix)
            await client.close()


@pytest.fixture(scope="module")
def admin_auth(apis: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {apis.api_key('admin')}"}


@storefront_schema.parametrize()
@FUZZ
def test_the_storefront_answers_any_request_without_a_server_error(case: schemathesis.Case, apis: Stack) -> None:
    response = case.call(base_url=apis.url("storefront", ""), timeout=10)
    case.validate_response(response, checks=CHECKS)


@admin_schema.parametrize()
@FUZZ
def test_the_admin_answers_any_request_without_a_server_error(
    case: schemathesis.Case, apis: Stack, admin_auth: dict[str, str]
) -> None:
    case.headers = {**(case.headers or {}), **admin_auth}
    response = case.call(base_url=apis.url("admin", ""), timeout=10)
    case.validate_response(response, checks=CHECKS)
    assert response.status_code != 401, "the admin key was refused"
