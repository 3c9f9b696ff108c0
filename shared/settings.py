"""Settings for every service, read only from the environment (twelve-factor, prefix ``PROACT_``)."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contract import TimeWindow, set_time_window


def cache_dir() -> Path:
    """``PROACT_CACHE``: where the local scripts keep infrastructure, models, logs and the outbox."""
    return Path(os.environ.get("PROACT_CACHE") or Path.home() / ".cache" / "proact")


class Settings(BaseSettings):
    """What every service needs: where Kafka and MongoDB are, how to log and trace."""

    model_config = SettingsConfigDict(env_prefix="PROACT_", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # A prefix other than "proact" gives a test or a second shop its own set of topics on one broker.
    topic_prefix: str = "proact"
    # Partitions per topic: the most engine (and dispatcher) instances that can share the work, fixed
    # when the topics are made (Kafka can add partitions, but keys then move to other partitions and
    # per-key state with them). 6 here, for one machine; production sets more, with room to grow
    # (k8s/base/config.yaml, and docs/capacity.md for how many).
    topic_partitions: int = Field(6, ge=1, le=1000)
    # May carry credentials, hence secret: it is never logged.
    mongo_url: SecretStr = SecretStr("mongodb://127.0.0.1:27017")
    mongo_database: str = "proact"
    mongo_timeout_ms: int = 5000
    log_level: str = "INFO"
    # Standard OpenTelemetry variables, not home-made ones. With no OTLP endpoint the console exporter
    # is used (docs/architecture.md); "none" switches tracing export off.
    otel_service_name: str | None = Field(None, validation_alias="OTEL_SERVICE_NAME")
    otel_traces_exporter: Literal["otlp", "console", "none"] | None = Field(
        None, validation_alias="OTEL_TRACES_EXPORTER"
    )
    otel_exporter_otlp_endpoint: str | None = Field(None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    instance_id: str = Field(default_factory=socket.gethostname)
    # Local runs without a collector: finished spans as JSON lines in this file (read by `make traces`),
    # in addition to whatever OTEL_TRACES_EXPORTER says.
    traces_file: Path | None = None
    # the model registry (a shared volume in Kubernetes): services score with its promoted models
    # (default: the models folder of PROACT_CACHE, where `make run` and `make models` put them)
    model_dir: Path = Field(
        default_factory=lambda: cache_dir() / "models",
        validation_alias=AliasChoices("PROACT_MODEL_DIR", "model_dir"),
    )

    # signs the links in messages (unsubscribe, ratings): the dispatcher signs, the storefront (which
    # serves the links) checks; the same secret in both
    unsubscribe_secret: SecretStr | None = Field(None, validation_alias=AliasChoices("PROACT_UNSUBSCRIBE_SECRET"))
    # how often services that render messages re-read the published templates from MongoDB
    templates_refresh_s: float = Field(5.0, gt=0, validation_alias=AliasChoices("PROACT_TEMPLATES_REFRESH_S"))

    # The times an event may carry (shared.contract.TimeWindow): its own time at most this far ahead
    # of the receiving clock, dates in its data (promised delivery) at most data_ahead; none before
    # the earliest. Absurd times are refused with the field named, not carried into timers.
    event_time_ahead_s: float = Field(86400.0, gt=0, le=366 * 86400)
    event_data_ahead_days: float = Field(3 * 366, gt=0, le=100 * 366)
    event_time_earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)

    def model_post_init(self, context: Any, /) -> None:
        # The contract's decoder is plain functions called everywhere; each service builds its
        # settings once at start, so this is where the window it reads comes from.
        set_time_window(
            TimeWindow(
                earliest=self.event_time_earliest,
                ahead=timedelta(seconds=self.event_time_ahead_s),
                data_ahead=timedelta(days=self.event_data_ahead_days),
            )
        )

    @property
    def traces_exporter(self) -> str:
        if self.otel_traces_exporter:
            return self.otel_traces_exporter
        return "otlp" if self.otel_exporter_otlp_endpoint else "console"


class EngineSettings(Settings):
    group_id: str = Field("proact-engine", validation_alias=AliasChoices("PROACT_ENGINE_GROUP_ID"))
    http_port: int = Field(8081, validation_alias=AliasChoices("PROACT_ENGINE_HTTP_PORT"))
    # the most events one batch (and transaction per partition) takes; only a backlog fills it, and
    # there the fixed costs of a batch (commits, one scoring call per partition) are shared by more events
    batch_max_records: int = Field(5000, gt=0, validation_alias=AliasChoices("PROACT_ENGINE_BATCH_MAX_RECORDS"))
    poll_timeout_ms: int = Field(100, validation_alias=AliasChoices("PROACT_ENGINE_POLL_TIMEOUT_MS"))
    # after a poll returns records, what else arrives this soon joins the same batch (and transaction)
    batch_linger_ms: int = Field(20, ge=0, validation_alias=AliasChoices("PROACT_ENGINE_BATCH_LINGER_MS"))
    fetch_max_wait_ms: int = Field(20, ge=0, validation_alias=AliasChoices("PROACT_ENGINE_FETCH_MAX_WAIT_MS"))
    # how many CloudEvents ids are remembered per key for de-duplication
    seen_ids_per_key: int = Field(64, validation_alias=AliasChoices("PROACT_ENGINE_SEEN_IDS_PER_KEY"))
    # How long browsing state and the memory of event ids live untouched (shared.engine.state.Expiry):
    # a session idle for a day is over, a visitor not seen for 30 days is forgotten with its timers,
    # and a subject's event ids are kept for 7 days after its last event (redeliveries come sooner).
    session_idle_s: float = Field(86400.0, gt=0, validation_alias=AliasChoices("PROACT_ENGINE_SESSION_IDLE_S"))
    visitor_idle_days: float = Field(30.0, gt=0, validation_alias=AliasChoices("PROACT_ENGINE_VISITOR_IDLE_DAYS"))
    seen_ids_idle_days: float = Field(7.0, gt=0, validation_alias=AliasChoices("PROACT_ENGINE_SEEN_IDS_IDLE_DAYS"))
    transaction_timeout_ms: int = Field(60000, validation_alias=AliasChoices("PROACT_ENGINE_TRANSACTION_TIMEOUT_MS"))
    # needs a stable, unique PROACT_INSTANCE_ID per process (a StatefulSet pod name, or set by hand)
    static_membership: bool = Field(True, validation_alias=AliasChoices("PROACT_ENGINE_STATIC_MEMBERSHIP"))
    session_timeout_ms: int = Field(10000, validation_alias=AliasChoices("PROACT_ENGINE_SESSION_TIMEOUT_MS"))
    # how often the published rules and the contact policy are re-read from MongoDB
    rules_refresh_s: float = Field(5.0, gt=0, validation_alias=AliasChoices("PROACT_ENGINE_RULES_REFRESH_S"))
    # a rule due for a customer whose profile has not arrived yet is tried again after this, up to the max
    profile_wait_s: float = Field(30.0, gt=0, validation_alias=AliasChoices("PROACT_ENGINE_PROFILE_WAIT_S"))
    profile_wait_max_s: float = Field(600.0, ge=0, validation_alias=AliasChoices("PROACT_ENGINE_PROFILE_WAIT_MAX_S"))
    # a session's intent score (for the projection) is refreshed at most this often, in event time
    intent_refresh_s: float = Field(30.0, ge=0, validation_alias=AliasChoices("PROACT_ENGINE_INTENT_REFRESH_S"))
    # a known customer's churn score is refreshed this often without any event from them (a durable
    # timer per customer, spread over the interval; shared/engine/scoring.py); 0 switches it off
    churn_refresh_s: float = Field(86400.0, ge=0, validation_alias=AliasChoices("PROACT_ENGINE_CHURN_REFRESH_S"))
    # the longest a restore may take to read a partition's changelog to its end: past it the
    # engine starts over rather than run on part of its state
    restore_timeout_s: float = Field(600.0, gt=0, validation_alias=AliasChoices("PROACT_ENGINE_RESTORE_TIMEOUT_S"))


class ProjectorSettings(EngineSettings):
    """The projector reads the engine's changelog, so it shares the engine's topics and group name."""

    http_port: int = Field(8083, validation_alias=AliasChoices("PROACT_PROJECTOR_HTTP_PORT"))


class MailSettings(Settings):
    """The mail server: the dispatcher sends e-mail through it, the admin its template test-sends."""

    # e-mail over SMTP; without a host, the dispatcher's e-mail goes to the file outbox like the other channels
    smtp_host: str | None = Field(None, validation_alias=AliasChoices("PROACT_SMTP_HOST"))
    smtp_port: int = Field(25, validation_alias=AliasChoices("PROACT_SMTP_PORT"))
    smtp_username: str | None = Field(None, validation_alias=AliasChoices("PROACT_SMTP_USERNAME"))
    smtp_password: SecretStr | None = Field(None, validation_alias=AliasChoices("PROACT_SMTP_PASSWORD"))
    smtp_starttls: bool = Field(False, validation_alias=AliasChoices("PROACT_SMTP_STARTTLS"))
    smtp_timeout_s: float = Field(10.0, gt=0, validation_alias=AliasChoices("PROACT_SMTP_TIMEOUT_S"))
    email_from: str = Field("proact <noreply@localhost>", validation_alias=AliasChoices("PROACT_EMAIL_FROM"))


class DispatcherSettings(MailSettings):
    group_id: str = Field("proact-dispatcher", validation_alias=AliasChoices("PROACT_DISPATCHER_GROUP_ID"))
    http_port: int = Field(8082, validation_alias=AliasChoices("PROACT_DISPATCHER_HTTP_PORT"))
    outbox_dir: Path = Field(
        default_factory=lambda: cache_dir() / "outbox",
        validation_alias=AliasChoices("PROACT_DISPATCHER_OUTBOX_DIR"),
    )
    # SMS, push and phone through a provider's webhook: POST with an HMAC-SHA256 signature
    webhook_url: str | None = Field(None, validation_alias=AliasChoices("PROACT_WEBHOOK_URL"))
    webhook_secret: SecretStr | None = Field(None, validation_alias=AliasChoices("PROACT_WEBHOOK_SECRET"))
    webhook_timeout_s: float = Field(5.0, gt=0, validation_alias=AliasChoices("PROACT_WEBHOOK_TIMEOUT_S"))
    # a delivery that fails for a passing reason is tried again, with exponential back-off and jitter
    max_attempts: int = Field(5, ge=1, validation_alias=AliasChoices("PROACT_DISPATCHER_MAX_ATTEMPTS"))
    # static group membership (KIP-345) under PROACT_INSTANCE_ID: a restarted dispatcher takes its
    # partitions back at once instead of after the session time-out; needs a unique, stable id
    static_membership: bool = Field(True, validation_alias=AliasChoices("PROACT_DISPATCHER_STATIC_MEMBERSHIP"))
    retry_base_s: float = Field(2.0, gt=0, validation_alias=AliasChoices("PROACT_DISPATCHER_RETRY_BASE_S"))
    # the longest the retry subscriber waits for one held action before looking at it again (a
    # retry time far ahead, written by anyone, must not hold the partition for ever)
    retry_max_wait_s: float = Field(86400.0, gt=0, validation_alias=AliasChoices("PROACT_DISPATCHER_RETRY_MAX_WAIT_S"))
    # where customers reach the storefront (unsubscribe and rating links point here)
    public_url: str = Field("http://127.0.0.1:8080", validation_alias=AliasChoices("PROACT_STOREFRONT_PUBLIC_URL"))
    # the shop's help desk: each callback request is posted there, signed with the secret
    helpdesk_url: str | None = Field(None, validation_alias=AliasChoices("PROACT_HELPDESK_URL"))
    helpdesk_secret: SecretStr | None = Field(None, validation_alias=AliasChoices("PROACT_HELPDESK_SECRET"))
    # how long a rating link in a check-in works
    rating_link_days: int = Field(30, ge=1, le=365, validation_alias=AliasChoices("PROACT_DISPATCHER_RATING_LINK_DAYS"))


class StorefrontSettings(Settings):
    http_host: str = Field("127.0.0.1", validation_alias=AliasChoices("PROACT_STOREFRONT_HTTP_HOST"))
    # HTTP intake of back-end events (services/storefront/intake.py): JSON, source -> its key and topics
    intake_sources: SecretStr | None = Field(None, validation_alias=AliasChoices("PROACT_INTAKE_SOURCES"))
    intake_per_minute: int = Field(6000, ge=1, validation_alias=AliasChoices("PROACT_INTAKE_PER_MINUTE"))
    http_port: int = Field(8080, validation_alias=AliasChoices("PROACT_STOREFRONT_HTTP_PORT"))
    max_batch_events: int = Field(100, validation_alias=AliasChoices("PROACT_STOREFRONT_MAX_BATCH_EVENTS"))
    # a larger request body is refused with 413 before it is read whole (100 events fit in far less)
    max_body_bytes: int = Field(262144, ge=1024, validation_alias=AliasChoices("PROACT_STOREFRONT_MAX_BODY_BYTES"))
    # the decision call: an answer later than this is "no pop-up" (fail-safe)
    decide_budget_ms: float = Field(8.0, gt=0, validation_alias=AliasChoices("PROACT_STOREFRONT_DECIDE_BUDGET_MS"))
    # no pop-up for a visitor offered one this recently (besides never twice in one session)
    popup_cooldown_s: float = Field(3600.0, ge=0, validation_alias=AliasChoices("PROACT_STOREFRONT_POPUP_COOLDOWN_S"))
    # how much browsing history a (re)started storefront reads back to know the live sessions
    session_ttl_s: float = Field(7200.0, gt=0, validation_alias=AliasChoices("PROACT_STOREFRONT_SESSION_TTL_S"))
    rules_refresh_s: float = Field(5.0, gt=0, validation_alias=AliasChoices("PROACT_STOREFRONT_RULES_REFRESH_S"))
    # callbacks per visitor and per client address per hour
    callbacks_per_visitor_hour: int = Field(
        3, ge=1, validation_alias=AliasChoices("PROACT_STOREFRONT_CALLBACKS_PER_VISITOR")
    )
    callbacks_per_ip_hour: int = Field(20, ge=1, validation_alias=AliasChoices("PROACT_STOREFRONT_CALLBACKS_PER_IP"))
    # how soon a callback is promised: the visitor is told the time, agents see it as the due time, and
    # the built-in callback-apology rule writes to the visitor if no call is recorded by then
    callback_promise_min: int = Field(
        120, ge=1, le=7 * 24 * 60, validation_alias=AliasChoices("PROACT_STOREFRONT_CALLBACK_PROMISE_MIN")
    )
    # event batches per visitor and per client address per minute (a visible tab sends about 5)
    events_per_visitor_minute: int = Field(
        60, ge=1, validation_alias=AliasChoices("PROACT_STOREFRONT_EVENTS_PER_VISITOR")
    )
    events_per_ip_minute: int = Field(1200, ge=1, validation_alias=AliasChoices("PROACT_STOREFRONT_EVENTS_PER_IP"))
    # sessions a client address may start per minute: batches alone allowed 120,000 (1,200 of 100),
    # each a session the storefront and the engine keep until it expires; an office behind one
    # address starts a few a minute
    new_sessions_per_ip_minute: int = Field(
        120, ge=1, validation_alias=AliasChoices("PROACT_STOREFRONT_NEW_SESSIONS_PER_IP")
    )
    # pop-up outcomes per visitor per minute (a pop-up has three: shown, then accepted or dismissed)
    outcomes_per_visitor_minute: int = Field(
        20, ge=1, validation_alias=AliasChoices("PROACT_STOREFRONT_OUTCOMES_PER_VISITOR")
    )
    # the proxies (addresses or CIDR ranges, comma-separated) whose X-Forwarded-For is believed:
    # behind an ingress, the per-address limits must count the visitor's address, not the ingress's
    trusted_proxies: str = Field("127.0.0.1", validation_alias=AliasChoices("PROACT_TRUSTED_PROXIES"))
    # site key → the origins of that shop's pages (JSON); none: only the storefront's own pages
    sites: dict[str, list[str]] = Field(default_factory=dict, validation_alias=AliasChoices("PROACT_STOREFRONT_SITES"))
    # the shop's back end signs the signed-in customer's id with it (shared.signing) for the in-app
    # inbox; without it the inbox is closed
    identity_secret: SecretStr | None = Field(None, validation_alias=AliasChoices("PROACT_STOREFRONT_IDENTITY_SECRET"))


class AdminSettings(MailSettings):
    http_host: str = Field("127.0.0.1", validation_alias=AliasChoices("PROACT_ADMIN_HTTP_HOST"))
    http_port: int = Field(8090, validation_alias=AliasChoices("PROACT_ADMIN_HTTP_PORT"))
    # results per rule: an order this soon after a message counts as a conversion
    conversion_window_h: int = Field(168, ge=1, validation_alias=AliasChoices("PROACT_ADMIN_CONVERSION_WINDOW_H"))
    # the most events one back-test holds: each is kept as its record's bytes (about 700 bytes with its
    # headers) until the replay decodes it, so 1,000,000 needs about 0.7 GB; the admin's memory limit
    # in k8s/ (1.5 GiB) leaves room for that and the replay's state. A request may ask for fewer.
    backtest_max_events: int = Field(
        1_000_000, ge=1, le=20_000_000, validation_alias=AliasChoices("PROACT_ADMIN_BACKTEST_MAX_EVENTS")
    )


class TrainerSettings(Settings):
    pass
