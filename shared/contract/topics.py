"""The topic registry: every Kafka topic proact uses, its partitions and settings, and how to create them.

Run ``python -m shared.contract ensure`` to create missing topics on the configured broker.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

if TYPE_CHECKING:
    from shared.settings import Settings

DLQ_SUFFIX = ".dlq"
DLQ_HEADER_PREFIX = "proact_dlq_"


def dead_letter_headers(exc: Exception, topic: str, partition: int, offset: int) -> dict[str, str]:
    """The headers that say why a record is on ``<topic>.dlq`` and where it came from."""
    reason = getattr(exc, "reason", None) or f"{exc.__class__.__name__}: {exc}"
    headers = {
        f"{DLQ_HEADER_PREFIX}error_type": error_type(exc),
        f"{DLQ_HEADER_PREFIX}reason": reason[:1000],
        f"{DLQ_HEADER_PREFIX}field": getattr(exc, "field", None) or "",
        f"{DLQ_HEADER_PREFIX}topic": topic,
        f"{DLQ_HEADER_PREFIX}partition": str(partition),
        f"{DLQ_HEADER_PREFIX}offset": str(offset),
    }
    for name in ("rule_id", "template_id"):  # what a marketer wrote that the record failed in
        if value := getattr(exc, name, None):
            headers[f"{DLQ_HEADER_PREFIX}{name}"] = str(value)
    return headers


def error_type(exc: BaseException) -> str:
    """The low-cardinality name a dead letter is counted under: the exception's class, or the class
    of the error a wrapper (a failed rule or template) carries."""
    return str(getattr(exc, "error_type", None) or exc.__class__.__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Topics:
    """Topic names for one prefix. All topics that carry a customer's events share one partition count,
    so partition N of each belongs to the same engine instance (co-partitioning)."""

    prefix: str = "proact"
    partitions: int = 6

    @property
    def customers(self) -> str:
        return f"{self.prefix}.customers"

    @property
    def orders(self) -> str:
        return f"{self.prefix}.orders"

    @property
    def browsing(self) -> str:
        return f"{self.prefix}.browsing"

    @property
    def support(self) -> str:
        return f"{self.prefix}.support"

    @property
    def actions(self) -> str:
        return f"{self.prefix}.actions"

    @property
    def outcomes(self) -> str:
        return f"{self.prefix}.outcomes"

    @property
    def timers(self) -> str:
        return f"{self.prefix}.timers"

    @property
    def engine_state(self) -> str:
        return f"{self.prefix}.engine.state"

    @property
    def decisions(self) -> str:
        """The engine's decision log (plain JSON, not CloudEvents), appended to MongoDB by the projector."""
        return f"{self.prefix}.engine.decisions"

    @property
    def actions_retry(self) -> str:
        """Actions whose delivery failed for a passing reason, waiting for their next attempt."""
        return f"{self.prefix}.actions.retry"

    @staticmethod
    def dlq(topic: str) -> str:
        return topic + DLQ_SUFFIX

    @property
    def event_topics(self) -> tuple[str, ...]:
        """Topics that carry CloudEvents; each has a dead-letter topic."""
        return (
            self.customers,
            self.orders,
            self.browsing,
            self.support,
            self.actions,
            self.outcomes,
            self.timers,
        )

    @property
    def engine_inputs(self) -> tuple[str, ...]:
        return (self.customers, self.orders, self.browsing, self.support, self.outcomes, self.timers)

    def specs(self) -> list[TopicSpec]:
        specs = [TopicSpec(t, self.partitions) for t in self.event_topics]
        specs += [
            TopicSpec(self.dlq(t), self.partitions, {"retention.ms": str(30 * 86400_000)}) for t in self.event_topics
        ]
        specs.append(TopicSpec(self.decisions, self.partitions, {"retention.ms": str(7 * 86400_000)}))
        specs.append(TopicSpec(self.actions_retry, self.partitions, {"retention.ms": str(7 * 86400_000)}))
        # The engine's changelog: only the latest value per entity matters, tombstones delete.
        specs.append(
            TopicSpec(
                self.engine_state,
                self.partitions,
                {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000", "segment.ms": "3600000"},
            )
        )
        return specs

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(prefix=settings.topic_prefix, partitions=settings.topic_partitions)


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The topic's partitions, fetching the cluster's metadata when the consumer has none of it yet
    (a consumer that assigns partitions by hand has subscribed to nothing that would fetch it)."""
    found = consumer.partitions_for_topic(topic)
    if not found:
        await consumer._client.force_metadata_update()  # aiokafka has no public call for this
        found = consumer.partitions_for_topic(topic)
    return set(found or ())


async def ensure_topics(bootstrap_servers: str, topics: Topics, timeout_s: float = 60.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Waits for the broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10000)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in topics.specs() if s.name not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(s.name, s.partitions, 1, topic_configs=s.config) for s in missing])
            except TopicAlreadyExistsError:
                pass  # another process created them between list and create
        await _wait_for_leaders(admin, [s.name for s in topics.specs()], deadline)
        return [s.name for s in missing]
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], deadline: float) -> None:
    """A new topic's first sends fail until its partitions have leaders; wait for them here instead."""
    while True:
        try:
            described = await admin.describe_topics(names)
            if all(
                t.get("error_code", 0) == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
        except KafkaError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics have no leaders yet: {names}")
        await asyncio.sleep(0.2)


def strimzi(topics: Topics, cluster: str = "proact-kafka", replicas: int = 3) -> str:
    """The registry as Strimzi ``KafkaTopic`` resources (what ``ensure`` creates, for Kubernetes)."""
    docs = [
        "# Generated from shared/contract/topics.py by `python -m shared.contract strimzi`; do not edit.",
    ]
    for spec in topics.specs():
        config = {"min.insync.replicas": "2", **spec.config}
        lines = [
            "---",
            "apiVersion: kafka.strimzi.io/v1beta2",
            "kind: KafkaTopic",
            "metadata:",
            f"  name: {spec.name.replace('.', '-')}",
            "  labels:",
            f"    strimzi.io/cluster: {cluster}",
            "spec:",
            f"  topicName: {spec.name}",
            f"  partitions: {spec.partitions}",
            f"  replicas: {replicas}",
            "  config:",
            *[f'    {key}: "{value}"' for key, value in sorted(config.items())],
        ]
        docs.append("\n".join(lines))
    return "\n".join(docs) + "\n"


def main(argv: list[str]) -> int:
    if argv[1:2] == ["reference"]:
        from shared.contract import reference

        return reference.main(argv[2:])
    if argv[1:] == ["strimzi"]:
        from shared.settings import Settings  # the contract is imported by the settings

        print(strimzi(Topics.from_settings(Settings())), end="")
        return 0
    if argv[1:] != ["ensure"]:
        print("usage: python -m shared.contract ensure|strimzi|reference [--check]", file=sys.stderr)
        return 2
    from shared.settings import Settings

    settings = Settings()
    topics = Topics.from_settings(settings)
    created = asyncio.run(ensure_topics(settings.kafka_bootstrap_servers, topics))
    print(f"topics ready ({len(topics.specs())}); created: {', '.join(created) or 'none'}")
    return 0
