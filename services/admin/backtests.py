"""Back-test jobs: "what would this draft have done over the recorded history?", before it is published.

``POST /v1/rules/{id}/backtests`` starts a job in the background and answers 202 with its id;
``GET /v1/backtests/{job}`` shows its progress (``reading``, then ``replaying``, as a fraction) and,
once ``done``, the result: messages, customers, when (per day), per channel, each guard's
suppressions, hold-outs and sample messages (``shared.engine.backtest``).

**History** is Kafka itself: the shop's event topics, read from their beginning (as far as their
retention keeps, 7 days by the broker's default; set ``retention.ms`` on the topics to keep more),
with ``read_committed``, up to where they ended when the job started. Kafka is where every event is
kept in order already; a copy in MongoDB would be a second store to keep in step (and FerretDB
slows as a collection grows). An NDJSON export of CloudEvents runs through the same code on the
command line: ``python -m services.admin backtest``.

Jobs run in the admin process that took them (the replay in a worker thread, so the API stays
responsive) and store their result in MongoDB's ``backtests`` collection. A job whose process died
stops sending its heartbeat and is shown as ``interrupted``: start it again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, Field, model_validator
from pymongo.asynchronous.database import AsyncDatabase

from services.admin.access import Marketer, Viewer
from services.storefront import backtest as popups
from shared.contract import Event, InvalidEvent, Topics, decode
from shared.contract.topics import partitions_of
from shared.engine import backtest
from shared.engine.scoring import Scorers
from shared.models.registry import ModelHandle, Registry
from shared.rules import Rule
from shared.rules import store as rule_store
from shared.rules.model import RULE_ID
from shared.settings import AdminSettings, StorefrontSettings
from shared.store import Collections, Document

router = APIRouter(prefix="/v1", tags=["back-tests"])
log = logging.getLogger(__name__)
HEARTBEAT_S = 1.0
STALE_AFTER = timedelta(seconds=60)


class NewBacktest(BaseModel):
    version: int | None = Field(None, ge=1, description="default: the newest version, draft or not")
    since: AwareDatetime | None = Field(None, description="only events from this time on")
    until: AwareDatetime | None = Field(None, description="only events before this time; timers fire up to it")
    max_events: int | None = Field(
        None, ge=1, le=20_000_000, description="stop reading after this many (default and ceiling: the service's)"
    )

    @model_validator(mode="after")
    def _window(self) -> NewBacktest:
        if self.since and self.until and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


def _public(job: Document) -> dict[str, Any]:
    out = {k: v for k, v in job.items() if k != "_id"}
    out["job_id"] = job["_id"]
    beat = job.get("heartbeat_at")
    if job["status"] in ("queued", "running") and beat and datetime.now(UTC) - beat > STALE_AFTER:
        out["status"] = "interrupted"  # its process stopped: no heartbeat for a minute
    return out


Recorded = tuple[datetime, bytes, list[tuple[str, bytes]]]


def decoded(history: list[Recorded]) -> Iterator[Event]:
    """The recorded events, decoded one at a time as the replay reads them (see ``read_history``)."""
    for _, value, headers in history:
        yield decode(value, headers)


async def read_history(
    settings: AdminSettings, since: datetime | None, until: datetime | None, max_events: int, on_read: Any
) -> tuple[list[Recorded], int, bool]:
    """The events of the shop's topics up to their end now, in time order, as (time, value, headers):
    the record's bytes, not the decoded event, which takes five to six times the memory; the replay
    decodes each again as it goes (``decoded``). Also: records that are not valid events, and whether
    ``max_events`` cut the reading short. ``on_read(read, total)`` is told of the progress."""
    topics = Topics.from_settings(settings)
    names = [topics.customers, topics.orders, topics.browsing, topics.support, topics.outcomes]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="proact-admin-backtest",
    )
    await consumer.start()
    events: list[Recorded] = []
    invalid = read = 0
    try:
        partitions = [TopicPartition(t, p) for t in names for p in await partitions_of(consumer, t)]
        consumer.assign(partitions)
        start = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        total = sum(end[tp] - start[tp] for tp in partitions)
        for tp in partitions:  # an explicit position: seek_to_beginning resets lazily, and a position
            consumer.seek(tp, start[tp])  # read before that happened was the end (0 events read)
        remaining = {tp for tp in partitions if end[tp] > start[tp]}
        while remaining and len(events) < max_events:
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp]:
                        continue
                    read += 1
                    try:
                        event = decode(record.value, record.headers)
                    except InvalidEvent:
                        invalid += 1
                        continue
                    if (since is None or event.time >= since) and (until is None or event.time < until):
                        events.append((event.time, record.value, list(record.headers or ())))
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            on_read(read, total)
    finally:
        await consumer.stop()
    events.sort(key=lambda e: e[0])
    return events[:max_events], invalid, len(events) >= max_events


def _scorers(settings: AdminSettings, rule: Rule) -> Scorers | None:
    """For a rule with a score trigger, the promoted models, as the engine scores with them (churn
    refreshed daily on the simulated clock); None without a promoted churn model (the result warns)."""
    if not any(t.kind == "score" for t in rule.triggers):
        return None
    scorers = Scorers(Registry(settings.model_dir), intent_refresh=timedelta(hours=1))
    return scorers if scorers.churn.current() is not None else None


async def _run(app_state: Any, job_id: str, rule: Rule, body: NewBacktest) -> None:
    db: AsyncDatabase[Document] = app_state.db
    jobs = db[Collections.BACKTESTS]
    progress: dict[str, Any] = {"phase": "reading", "done": 0, "total": None}

    async def beat() -> None:
        while True:  # only while running: a late beat cannot touch a finished job
            beat_fields = {"progress": dict(progress), "heartbeat_at": datetime.now(UTC)}
            await jobs.update_one({"_id": job_id, "status": "running"}, {"$set": beat_fields})
            await asyncio.sleep(HEARTBEAT_S)

    def on_read(done: int, total: int) -> None:
        progress.update(done=done, total=total)

    async def finish(fields: dict[str, Any]) -> None:
        heart.cancel()
        with suppress(asyncio.CancelledError):
            await heart
        await jobs.update_one({"_id": job_id}, {"$set": {"finished_at": datetime.now(UTC), **fields}})

    await jobs.update_one({"_id": job_id}, {"$set": {"status": "running", "started_at": datetime.now(UTC)}})
    heart = asyncio.create_task(beat())
    try:
        limit = min(body.max_events or app_state.settings.backtest_max_events, app_state.settings.backtest_max_events)
        events, invalid, cut = await read_history(app_state.settings, body.since, body.until, limit, on_read)
        in_force = await rule_store.published(db)
        policy = await rule_store.policy(db)
        progress.update(phase="replaying", done=0, total=len(events))

        scorers = _scorers(app_state.settings, rule)
        popup = any(t.kind == "session" for t in rule.triggers)

        def replay(history: list[Recorded]) -> dict[str, Any]:
            def done(n: int) -> None:
                progress.update(done=n)

            if popup:  # decided by the storefront: replayed through its decision path
                intent = ModelHandle(Registry(app_state.settings.model_dir), "intent")
                cooldown = timedelta(seconds=StorefrontSettings().popup_cooldown_s)
                return popups.run(rule, in_force, policy, decoded(history), intent, cooldown, body.until, done)
            return backtest.run(rule, in_force, policy, decoded(history), body.until, done, scorers)

        result = await asyncio.to_thread(replay, events)
        result["invalid_records"] = invalid
        if cut:
            result["warnings"].append(f"stopped after {limit} events: the result covers the oldest ones")
        await finish(
            {
                "status": "done",
                "result": result,
                "progress": {"phase": "done", "done": len(events), "total": len(events)},
            }
        )
    except asyncio.CancelledError:  # the service is stopping
        await asyncio.shield(finish({"status": "interrupted", "error": "the admin service stopped"}))
        raise
    except Exception as exc:  # a job's failure is its own: recorded on it, the service goes on
        log.exception("back-test %s failed", job_id)
        await finish({"status": "failed", "error": f"{type(exc).__name__}: {str(exc)[:300]}"})


@router.post("/rules/{rule_id}/backtests", status_code=202)
async def start(
    request: Request,
    rule_id: Annotated[str, Path(pattern=RULE_ID)],
    body: Annotated[NewBacktest, Body()],
    who: Marketer,
) -> dict[str, Any]:
    """Back-test a version of a rule (by default the newest, draft or not) over the recorded events."""
    db = request.app.state.db
    docs = await rule_store.versions(db, rule_id)
    if body.version is not None:
        docs = [d for d in docs if d["version"] == body.version]
    if not docs:
        raise HTTPException(404, f"no rule {rule_id}" + (f" version {body.version}" if body.version else ""))
    rule = Rule.model_validate(docs[0]["rule"])
    now = datetime.now(UTC)
    job_id = uuid.uuid4().hex
    job = {
        "_id": job_id,
        "rule_id": rule_id,
        "rule_version": rule.version,
        "status": "queued",
        "created_at": now,
        "created_by": who.who,
        "heartbeat_at": now,
        "request": body.model_dump(mode="json"),
        "progress": {"phase": "queued", "done": 0, "total": None},
    }
    await db[Collections.BACKTESTS].insert_one(job)
    task = asyncio.create_task(_run(request.app.state, job_id, rule, body))
    request.app.state.jobs.add(task)
    task.add_done_callback(request.app.state.jobs.discard)
    return _public(job)


@router.get("/backtests/{job_id}")
async def show(request: Request, job_id: Annotated[str, Path(pattern="^[0-9a-f]{32}$")], _: Viewer) -> dict[str, Any]:
    """A back-test job: its status and progress, and its result once done."""
    job = await request.app.state.db[Collections.BACKTESTS].find_one({"_id": job_id})
    if job is None:
        raise HTTPException(404, f"no back-test {job_id}")
    return _public(job)


@router.get("/rules/{rule_id}/backtests")
async def list_jobs(
    request: Request,
    rule_id: Annotated[str, Path(pattern=RULE_ID)],
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[dict[str, Any]]:
    """The rule's back-tests, newest first (without their sample messages)."""
    cursor = (
        request.app.state.db[Collections.BACKTESTS]
        .find({"rule_id": rule_id}, {"result.samples": 0})
        .sort("created_at", -1)
        .limit(limit)
    )
    return [_public(job) async for job in cursor]
