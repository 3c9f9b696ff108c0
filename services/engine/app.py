"""The engine's read-process-write loop: batches from Kafka, state in memory, Kafka transactions.

Partition N of every input topic is one unit of work ("task") with its own state, its own partition
of the changelog and its own transactional producer, whose id names the partition
(``<group>-<N>``). Per batch and task, in one Kafka transaction: the requested actions, fired
timers, dead letters, the changed state and the consumer offsets. A crash at any point aborts the
open transaction; the task's next owner re-reads from the last committed offsets against state
restored from the changelog, so no event is lost and none has a second effect. When a task moves,
its new owner's producer starts with the same transactional id and so fences the old owner: a
zombie that still thinks it owns the partition cannot commit (aiokafka does not send the consumer
group generation with the offsets, so this classic per-partition fencing is what protects us).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from aiokafka.producer import sender as _aiokafka_sender
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from services.engine import metrics
from shared.clock import Clock, SystemClock
from shared.contract import EVENT_TYPES, Event, InvalidEvent, Topics, decode, encode
from shared.contract.topics import DLQ_HEADER_PREFIX, dead_letter_headers, error_type
from shared.engine.handlers import handle, timer_event
from shared.engine.runner import RuleBook, RuleRunner
from shared.engine.scoring import Scorers
from shared.engine.state import TRACE_FIELD, Expiry, PartitionState, Timer
from shared.models.registry import Registry
from shared.rules import RuleSet
from shared.rules import store as rule_store
from shared.settings import EngineSettings
from shared.telemetry import current_carrier, extract_context, inject_headers

log = logging.getLogger(__name__)
tracer = trace.get_tracer("proact.engine")

# A task's next transaction starts right after its last commit, and the broker answers its first
# AddPartitionsToTxn with CONCURRENT_TRANSACTIONS until that commit's markers are written: a
# millisecond or two here. aiokafka then waits a fixed 20 ms (KAFKA-5477's compromise; it has no
# setting for it), which was most of a batch's time at 1,000 events/s: one transaction measured
# 25 ms at p50 with it and 5.6 ms with 2 ms (bench/README.md, "Engine"). The retry is cheap for the broker.
TXN_RETRY_BACKOFF_S = 0.002
_aiokafka_sender.BACKOFF_OVERRIDE = TXN_RETRY_BACKOFF_S
Encoded = tuple[str, bytes, bytes, list[tuple[str, bytes]]]  # topic, key, value, headers


@dataclass
class Stats:
    consumed: int = 0
    dead_lettered: int = 0
    actions: int = 0
    timers_fired: int = 0
    batches: int = 0
    last_poll_ok: float = 0.0
    by_type: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)  # by error type
    failures: Counter[str] = field(default_factory=Counter)  # batch work that failed for one entity


class RestoreIncomplete(KafkaError):  # type: ignore[misc]
    """The changelog could not be read to the end measured at assignment."""


class Engine:
    def __init__(self, settings: EngineSettings, clock: Clock | None = None, rules: RuleSet | None = None) -> None:
        """``rules`` pins the rule set (benchmarks, tests); without it the published rules are read
        from MongoDB before the first event and re-read every ``rules_refresh_s``."""
        self.settings = settings
        self.clock = clock or SystemClock()
        self.rulebook = RuleBook(rules)
        self._rules_from_store = rules is None
        self.rules = RuleRunner(
            self.rulebook, timedelta(seconds=settings.profile_wait_s), timedelta(seconds=settings.profile_wait_max_s)
        )
        self.topics = Topics.from_settings(settings)
        self._topic_of = {t: getattr(self.topics, spec[0]) for t, spec in EVENT_TYPES.items()}
        self.states: dict[int, PartitionState] = {}
        self.scorers = Scorers(
            Registry(settings.model_dir),
            timedelta(seconds=settings.intent_refresh_s),
            timedelta(seconds=settings.churn_refresh_s) if settings.churn_refresh_s else None,
        )
        self.stats = Stats()
        self.lag: dict[tuple[str, int], int] = {}  # (topic, partition) -> records behind, after the last batch
        self._consumed: Counter[tuple[str, str]] = Counter()  # (topic, event type) -> events, this batch
        self.restoring = True
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._rules_loaded = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._broken: KafkaError | None = None  # set by a rebalance that could not restore: start over

    # --- lifecycle --------------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Run until stop(); a Kafka failure closes the clients and starts over from committed state."""
        refresher = None
        if self._rules_from_store:
            follow = rule_store.follow(
                self.settings, self.rulebook.replace, self._rules_loaded, self.settings.rules_refresh_s
            )
            refresher = asyncio.create_task(follow)
        try:
            if refresher is not None:  # no event is judged by an empty rule set
                waits = [asyncio.create_task(e.wait()) for e in (self._rules_loaded, self._stopping)]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
            while not self._stopping.is_set():
                try:
                    await self._run_once()
                except KafkaError as exc:
                    log.warning("kafka error, restarting the consume loop: %s", exc.__class__.__name__)
                    await asyncio.sleep(1.0)
                finally:
                    await self._close()
        finally:
            if refresher is not None:
                refresher.cancel()

    async def _run_once(self) -> None:
        s = self.settings
        self.states.clear()
        self.restoring = True
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=s.group_id,
            client_id=f"{s.group_id}-{s.instance_id}",
            # static membership: a restarted instance takes its partitions back at once, without
            # waiting for the dead member's session to expire and without moving state around
            group_instance_id=s.instance_id if s.static_membership else None,
            session_timeout_ms=s.session_timeout_ms,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # range assignment gives partition N of every input topic to one instance (co-partitioning)
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_poll_interval_ms=300000,
            # how long the broker may hold a fetch that has nothing (committed) to return: an event
            # that arrives meanwhile waits for it, so this bounds the latency added at each hop
            fetch_max_wait_ms=s.fetch_max_wait_ms,
        )
        await self._consumer.start()
        self._consumer.subscribe(list(self.topics.engine_inputs), listener=_Rebalance(self))
        log.info("engine started", extra={"group_id": s.group_id, "instance_id": s.instance_id})
        while not self._stopping.is_set():
            batch = await self._poll()
            if self._broken is not None:
                broken, self._broken = self._broken, None
                raise broken
            self.stats.last_poll_ok = time.monotonic()
            async with self._lock:
                await self._process(batch)
        log.info("engine draining: last batch committed, leaving the group")

    async def _poll(self) -> dict[TopicPartition, list[Any]]:
        """One batch: what the poll returns, plus what arrives within ``batch_linger_ms`` after it.
        Each batch costs a transaction per partition whatever its size; at a low rate, polls that
        return a record or two each made the engine (and the broker) busier than at a high one."""
        s = self.settings
        assert self._consumer is not None
        batch: dict[TopicPartition, list[Any]] = await self._consumer.getmany(
            timeout_ms=s.poll_timeout_ms, max_records=s.batch_max_records
        )
        count = sum(len(records) for records in batch.values())
        if not count or s.batch_linger_ms <= 0:
            return batch
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.batch_linger_ms / 1000
        while count < s.batch_max_records and (left := deadline - loop.time()) > 0:
            wait_ms = max(int(left * 1000), 1)
            more = await self._consumer.getmany(timeout_ms=wait_ms, max_records=s.batch_max_records - count)
            for tp, records in more.items():
                batch.setdefault(tp, []).extend(records)
                count += len(records)
        return batch

    async def _close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        await self._stop_producers(list(self._producers))

    def _new_producer(self, partition: int) -> AIOKafkaProducer:
        s = self.settings
        return AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            transactional_id=f"{s.group_id}-{partition}",
            enable_idempotence=True,
            transaction_timeout_ms=s.transaction_timeout_ms,
            max_batch_size=262144,
            # A transaction's own commit is the batch boundary, so lingering gains nothing. The
            # broker answers "concurrent transactions" while the previous commit's markers are
            # written; the default 100 ms back-off before retrying made the tail latency.
            linger_ms=0,
            retry_backoff_ms=10,
        )

    async def _stop_producers(self, partitions: list[int]) -> None:
        for p in partitions:
            producer = self._producers.pop(p, None)
            if producer is not None:
                await producer.stop()

    # --- one batch --------------------------------------------------------------------------
    async def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        now = self.clock.now()
        by_partition: dict[int, list[tuple[TopicPartition, list[Any]]]] = defaultdict(list)
        for tp, records in batch.items():
            if tp.partition in self.states:  # else revoked while polling: the new owner re-reads it
                by_partition[tp.partition].append((tp, records))
        due = {p: st.due(now) for p, st in self.states.items()}
        work = [p for p in self.states if by_partition.get(p) or due.get(p)]
        if not work:
            return
        started = time.perf_counter()
        # one transaction per task; their commits overlap
        with _no_collection():
            await asyncio.gather(*(self._process_task(p, by_partition.get(p, []), due.get(p, []), now) for p in work))
        self.stats.batches += 1
        metrics.batch_duration.record(time.perf_counter() - started)
        # counted per batch, not per event: a metric update costs about as much as a small event
        for (topic, event_type), n in self._consumed.items():
            metrics.events.add(n, {"messaging.destination.name": topic, "cloudevents.event_type": event_type})
        self._consumed.clear()
        assert self._consumer is not None
        for tp, records in batch.items():
            stable = self._consumer.last_stable_offset(tp)
            if stable is not None:
                self.lag[(tp.topic, tp.partition)] = max(stable - records[-1].offset - 1, 0)

    async def _process_task(
        self, partition: int, batch: list[tuple[TopicPartition, list[Any]]], due: list[Timer], now: datetime
    ) -> None:
        state = self.states[partition]
        state.now_s = now.timestamp()
        producer = self._producers[partition]
        try:
            await self._transact(producer, state, partition, batch, due, now)
        except BaseException as exc:  # aiokafka has aborted the transaction; the batch is read again
            metrics.transactions.add(1, {"outcome": "aborted", "error.type": error_type(exc)})
            raise
        metrics.transactions.add(1, {"outcome": "committed"})

    async def _transact(
        self,
        producer: AIOKafkaProducer,
        state: PartitionState,
        partition: int,
        batch: list[tuple[TopicPartition, list[Any]]],
        due: list[Timer],
        now: datetime,
    ) -> None:
        async with producer.transaction():
            for tp, records in batch:
                for record in records:
                    await self._process_record(producer, state, tp, record, now)
            for timer in due:
                await self._fire(producer, timer, now, partition)
            for out in self._on_scores(state, now):
                await self._emitted(producer, out)
            state.expire(now)  # idle sessions, visitors and seen ids: tombstones in this transaction
            decisions = state.take_decisions()
            for decision in decisions:
                metrics.decisions.add(
                    1,
                    {
                        "proact.rule.id": decision["rule_id"],
                        "proact.rule.outcome": decision["outcome"],
                        "proact.rule.guard": decision.get("guard") or "none",
                    },
                )
            decision_records = ((d["customer_id"].encode(), orjson.dumps(d)) for d in decisions)
            await send_batched(producer, self.topics.decisions, partition, decision_records)
            await send_batched(producer, self.topics.engine_state, partition, state.changelog_records())
            if batch:
                offsets = {tp: records[-1].offset + 1 for tp, records in batch}
                await producer.send_offsets_to_transaction(offsets, self.settings.group_id)

    def _on_scores(self, state: PartitionState, now: datetime) -> list[Event]:
        """Re-score what the batch changed, then the rules of the score bands entered, each customer
        apart: a model or a rule that fails for one customer is logged and counted, and that
        customer's half-made changes are undone (there is no one record to dead-letter)."""
        out: list[Event] = []
        for change in self.scorers.flush(state, self._failed):
            state.savepoint()
            try:
                out += self.rules.on_scores(state, [change], now)
            except Exception as exc:
                state.rollback()
                self._failed("score rules", exc, customer_id=change[0])
            else:
                state.release()
        return out

    def _failed(self, what: str, exc: Exception, **where: Any) -> None:
        kind = error_type(exc)
        self.stats.failures[f"{what}: {kind}"] += 1
        metrics.failures.add(1, {"proact.engine.step": what, "error.type": kind})
        log.warning("%s failed", what, extra={**where, "error_type": kind, "reason": str(exc)[:200]})

    async def _fire(self, producer: AIOKafkaProducer, timer: Timer, now: datetime, partition: int) -> None:
        """Publish a due timer as ``timer.fired``; when the event that set it was traced, the firing is
        a span in that trace (and linked to it), so one trace runs from the order to the message.
        A timer that cannot become an event (a payload no longer valid) goes to the dead-letter
        topic of the changelog, with its reason; the others fire."""
        try:
            fired = timer_event(timer, now)
        except Exception as exc:
            self._failed("timer", exc, timer_id=timer.timer_id)
            why = {k: v.encode() for k, v in dead_letter_headers(exc, self.topics.engine_state, partition, -1).items()}
            await producer.send(
                self.topics.dlq(self.topics.engine_state),
                value=orjson.dumps(timer.to_doc(), default=str),
                key=timer.timer_id.encode(),
                headers=list(why.items()),
            )
            return
        self.stats.timers_fired += 1
        metrics.timers_fired.add(1, {"proact.timer.kind": timer.kind})
        carrier = timer.payload.get(TRACE_FIELD)
        if not carrier:
            await self._publish(producer, fired, partition=partition)
            return
        setter = extract_context([(k, v.encode()) for k, v in carrier.items()])
        links = [trace.Link(span.get_span_context())] if (span := trace.get_current_span(setter)) else []
        rule_id = timer.payload.get("rule_id")
        with tracer.start_as_current_span(
            f"timer {timer.kind} {rule_id}" if rule_id else f"timer {timer.kind}",  # few names: rules are few
            context=setter,
            kind=SpanKind.INTERNAL,
            links=links,
            attributes={
                "proact.timer.id": timer.timer_id,
                "proact.timer.due_at": timer.due_at.isoformat(),
                **({"proact.rule.id": rule_id} if rule_id else {}),
            },
        ):
            await self._publish(producer, fired, partition=partition)

    async def _process_record(
        self, producer: AIOKafkaProducer, state: PartitionState, tp: TopicPartition, record: Any, now: Any
    ) -> None:
        self.stats.consumed += 1
        headers = record.headers or ()
        if not _traced(headers):
            # An untraced producer: no per-event span (most of a busy shop's browsing traffic); what
            # the event causes is still traced from the engine on.
            await self._apply(producer, state, tp, record, now, None)
            return
        with tracer.start_as_current_span(
            f"process {tp.topic}",
            context=extract_context(headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": tp.topic,
                "messaging.destination.partition.id": str(tp.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.consumer.group.name": self.settings.group_id,
            },
        ) as span:
            state.trace_carrier = current_carrier()
            try:
                await self._apply(producer, state, tp, record, now, span)
            finally:
                state.trace_carrier = None

    async def _apply(
        self,
        producer: AIOKafkaProducer,
        state: PartitionState,
        tp: TopicPartition,
        record: Any,
        now: Any,
        span: trace.Span | None,
    ) -> None:
        try:
            event = decode(record.value, record.headers)
        except InvalidEvent as exc:
            if span:
                span.set_attribute("error.type", "InvalidEvent")
            await self._dead_letter(producer, tp, record, exc)
            return
        if span:
            span.set_attribute("messaging.message.id", event.id)
            span.set_attribute("cloudevents.event_type", event.type)
        if self._topic_of[event.type] != tp.topic:
            # e.g. a timer.fired or an action.requested written to proact.orders by a shop's
            # producer: internal events come only from their own topics
            spoofed = InvalidEvent(f"{event.type} events belong on {self._topic_of[event.type]}, not here", "type")
            await self._dead_letter(producer, tp, record, spoofed)
            return
        self.stats.by_type[event.type] += 1
        self._consumed[(tp.topic, event.type)] += 1
        # The failure model: whatever one event does to the code that applies it (a rule, a score,
        # the arithmetic on its times, the encoding of what it causes), only that event is
        # dead-lettered, and its half-made changes are undone (``handle`` undoes its own; this
        # savepoint holds the encoding of the outputs too). Kafka errors are not raised here: they
        # come from the sends below, and restart the loop from the last commit.
        state.savepoint()
        try:
            outputs = [(out, self._encoded(out)) for out in handle(state, event, now, self.scorers, self.rules)]
        except Exception as exc:
            state.rollback()
            if span:
                span.record_exception(exc)
                span.set_attribute("error.type", error_type(exc))
            await self._dead_letter(producer, tp, record, exc)
            return
        state.release()
        for out, encoded in outputs:
            await self._emitted(producer, out, encoded)

    async def _emitted(self, producer: AIOKafkaProducer, out: Event, encoded: Encoded | None = None) -> None:
        await self._publish(producer, out, encoded=encoded)
        if out.type == "action.requested":
            self.stats.actions += 1
            metrics.actions.add(1, {"proact.rule.id": out.data.rule_id, "proact.channel": out.data.channel})  # type: ignore[attr-defined]
            log.info("action requested", extra={"rule_id": getattr(out.data, "rule_id", None), "action_id": out.id})

    def _encoded(self, event: Event) -> Encoded:
        key, value, headers = encode(event)
        return self._topic_of[event.type], key, value, inject_headers(headers)

    async def _publish(
        self, producer: AIOKafkaProducer, event: Event, partition: int | None = None, encoded: Encoded | None = None
    ) -> None:
        topic, key, value, headers = encoded or self._encoded(event)
        await producer.send(topic, value=value, key=key, headers=headers, partition=partition)

    async def _dead_letter(self, producer: AIOKafkaProducer, tp: TopicPartition, record: Any, exc: Exception) -> None:
        self.stats.dead_lettered += 1
        kind = error_type(exc)
        self.stats.dead_letter_reasons[kind] += 1
        metrics.dead_letters.add(1, {"messaging.destination.name": tp.topic, "error.type": kind})
        why = dead_letter_headers(exc, tp.topic, tp.partition, record.offset)
        reason = why[f"{DLQ_HEADER_PREFIX}reason"]
        headers = [
            *[(k, v) for k, v in (record.headers or ()) if not k.startswith(DLQ_HEADER_PREFIX)],
            *[(k, v.encode()) for k, v in why.items()],
        ]
        log.warning(
            "event dead-lettered",
            extra={
                "topic": tp.topic,
                "partition": tp.partition,
                "offset": record.offset,
                "reason": reason[:200],
            },
        )
        await producer.send(self.topics.dlq(tp.topic), value=record.value, key=record.key, headers=headers)

    # --- rebalancing ------------------------------------------------------------------------
    async def assign(self, partitions: set[int]) -> None:
        async with self._lock:
            dropped = [p for p in self.states if p not in partitions]
            for p in dropped:
                del self.states[p]
            await self._stop_producers(dropped)
            missing = sorted(partitions - self.states.keys())
            for p in missing:
                # starting the producer fences the task's previous owner and aborts its open
                # transaction, so the changelog read next holds only committed state
                producer = self._new_producer(p)
                await producer.start()
                self._producers[p] = producer
            if missing:
                started = time.monotonic()
                try:
                    restored = await self._restore(missing)
                    await self._seek_committed(missing)
                except KafkaError as exc:
                    # never go on with half a state: the consume loop starts over from committed offsets
                    self._broken = exc
                    return
                self.states.update(restored)
                log.info(
                    "state restored",
                    extra={"partitions": missing, "seconds": round(time.monotonic() - started, 3)},
                )
            _settle_heap()
            self.restoring = False

    async def _seek_committed(self, partitions: list[int]) -> None:
        """Position the new partitions at their committed offsets, read now: after this instance's
        producers have fenced the partitions' previous owner. The consumer may have fetched them
        before, when the previous owner could still commit a transaction; reading from there would
        apply that transaction's events a second time over a state that already has them."""
        assert self._consumer is not None
        for tp in self._consumer.assignment():
            if tp.partition in partitions:
                committed = await self._consumer.committed(tp)
                if committed is None:
                    await self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek(tp, committed)

    async def revoke(self) -> None:
        # wait for the batch in flight to commit; the state stays until the new assignment is known
        async with self._lock:
            self.restoring = True

    async def _restore(self, partitions: list[int]) -> dict[int, PartitionState]:
        expiry = Expiry(
            session=timedelta(seconds=self.settings.session_idle_s),
            visitor=timedelta(days=self.settings.visitor_idle_days),
            seen=timedelta(days=self.settings.seen_ids_idle_days),
        )
        states = {p: PartitionState(p, self.settings.seen_ids_per_key, expiry) for p in partitions}
        tps = [TopicPartition(self.topics.engine_state, p) for p in partitions]
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
        )
        await reader.start()
        try:
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            # The end measured now, after this instance's producers fenced the previous owner and
            # aborted its open transaction: the last stable offset, which a read_committed reader
            # reaches (its position moves over transaction markers too). Read exactly to there;
            # a broker too slow to get there in time is an error, never a partial state.
            end = await reader.end_offsets(tps)
            remaining = {tp for tp in tps if end[tp] > 0}
            deadline = time.monotonic() + self.settings.restore_timeout_s
            while remaining:
                if time.monotonic() >= deadline:
                    behind = {tp.partition: end[tp] - await reader.position(tp) for tp in remaining}
                    raise RestoreIncomplete(f"changelog not read to its end in time; records left: {behind}")
                records = await reader.getmany(*remaining, timeout_ms=200, max_records=5000)
                for tp, recs in records.items():
                    for r in recs:
                        if r.offset < end[tp]:
                            states[tp.partition].restore(r.key, r.value, r.timestamp / 1000)
                for tp in list(remaining):
                    if await reader.position(tp) >= end[tp]:
                        remaining.discard(tp)
        finally:
            await reader.stop()
        for st in states.values():
            st.finish_restore()
        return states


async def send_batched(
    producer: AIOKafkaProducer, topic: str, partition: int, records: Iterable[tuple[bytes, bytes | None]]
) -> None:
    """Send records to one partition as whole record batches (aiokafka's ``send_batch``).

    ``producer.send`` costs a coroutine, a future and its completion per record, which made up
    about a fifth of the engine's time (two or three changelog records per event); a batch has
    one future. Records to a partition keep their order. The batches join the open transaction
    like single sends, and, like them, are delivered before it commits."""
    batch = producer.create_batch()
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start the next
            await producer.send_batch(batch, topic, partition=partition)
            batch = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any one record
    if batch.record_count():
        await producer.send_batch(batch, topic, partition=partition)


def _settle_heap() -> None:
    """Collect everything once, then exempt what is alive from later collections (``gc.freeze``).

    Python's full collections walk every tracked object: the loaded modules and models alone are
    about 180,000, ~100 ms a walk here, and they came every few seconds under load, holding up
    the batch in flight (the engine's worst latencies). What is alive after a restore (code,
    models, clients, timers) stays, so it is frozen; the state itself is bytes, never walked.
    Done at each assignment, where the restore already pauses work: unfreezing first lets the
    collection also reclaim anything that became garbage since the last one."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _traced(headers: Any) -> bool:
    for key, _ in headers:  # a loop, not any() over a generator: this runs for every event
        if key == "traceparent":
            return True
    return False


@contextmanager
def _no_collection() -> Iterator[None]:
    """No cycle collection while a batch is worked on; the collector runs again after it.

    A batch's objects (its records, events, the entities it decodes and the changes it keeps) live
    until its transaction is written and nearly all are then freed by reference counting, so a
    young collection in the middle of a batch walks thousands of live objects to find no garbage,
    and pushes them into the older generation for later collections to walk again. Measured over
    the benchmark's mix in batches of 5,000, that was about a tenth of the engine's CPU per event.
    What a batch leaves in cycles is collected as soon as the collector is back on, so memory stays
    bounded by one batch."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# Python's default (700, 10, 10) collects the young generation every 700 allocations: a batch
# allocates a few dozen containers per event (the decoded events and entities, the outputs), so it
# collected every few events and pushed the batch's live objects on to the older generations, whose
# collections walk the pending timers too. In `bench/engine.py --events 100000` the collector took
# 1.24 s of the engine's 13.6 s of CPU with the defaults (1,159 collections), 0.52 s with these (68);
# a young collection takes about 5 ms.
GC_THRESHOLDS = (20_000, 50, 50)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.engine.revoke()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.engine.assign({tp.partition for tp in assigned})
