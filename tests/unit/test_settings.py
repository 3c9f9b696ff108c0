"""Settings come from the environment, and tests can override them by field name."""

from __future__ import annotations

import pytest

from shared.settings import EngineSettings, Settings


def test_environment_sets_service_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROACT_ENGINE_GROUP_ID", "shop-a-engine")
    monkeypatch.setenv("PROACT_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    settings = EngineSettings()
    assert settings.group_id == "shop-a-engine"
    assert settings.kafka_bootstrap_servers == "kafka:9092"


def test_field_names_override_defaults() -> None:
    assert EngineSettings(group_id="g", topic_prefix="p").group_id == "g"


def test_the_mongo_url_is_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROACT_MONGO_URL", "mongodb://proact:s3cret@db:27017")
    settings = Settings()
    assert "s3cret" not in repr(settings)
    assert settings.mongo_url.get_secret_value().endswith("@db:27017")


def test_console_exporter_is_the_default_without_a_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert Settings().traces_exporter == "console"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert Settings().traces_exporter == "otlp"
