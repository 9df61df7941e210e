"""A job's live events (Server-Sent Events): its status as it changes and each epoch's metrics.

The database is the source of truth (workers are other processes), so a stream reads it every
`DENDRITE_EVENTS_POLL_INTERVAL` seconds: one short transaction per read, only rows newer than
what was sent, and neither a connection nor a thread held while it waits.

An event's id is the stream's position after it, `<epoch>:<status>:<attempts>`: the last epoch
sent (its epoch part only grows), and the last status sent with the job's attempt number (empty
before the first one). A client that reconnects with it in `Last-Event-ID` gets exactly what it has
not seen: the status if it changed, then the epochs after that epoch.
"""

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
from sqlalchemy import select

from service import jobs
from service.config import get_settings
from service.db import session_scope
from service.errors import InvalidInput
from service.keys import Principal
from service.orm import FINAL_STATUSES, EpochMetric, Job, JobStatus
from service.schemas import EpochRead

BATCH = 500  # epoch rows per read; a long job's history comes over several reads

_CURSOR = re.compile(r"(\d{1,9}):(queued|running|succeeded|failed|cancelled|):(\d{1,9})")


@dataclass(frozen=True)
class Cursor:
    epoch: int = 0
    status: str = ""
    attempts: int = 0

    def __str__(self) -> str:
        return f"{self.epoch}:{self.status}:{self.attempts}"

    @property
    def ended(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class Event:
    name: str  # "status" or "epoch"
    id: str
    data: str  # JSON


def parse_cursor(last_event_id: str | None) -> Cursor:
    """The position a reconnecting client sends back; the start without one."""
    if last_event_id is None or not last_event_id.strip():
        return Cursor()
    match = _CURSOR.fullmatch(last_event_id.strip())
    if match is None:
        raise InvalidInput(
            "Last-Event-ID must be the id of an event this stream sent, like '12:running:1'; "
            "leave it out to start from the beginning",
            field="Last-Event-ID",
        )
    return Cursor(int(match[1]), match[2], int(match[3]))


def open_stream(principal: Principal, job_id: str) -> None:
    """404 unless the job exists and is the principal's to see (checked before streaming)."""
    with session_scope() as session:
        jobs.get(session, principal, job_id)


@dataclass(frozen=True)
class Batch:
    events: list[Event]
    cursor: Cursor
    more: bool  # epoch rows are left over for the next read, which need not wait
    ended: bool


def read(job_id: str, cursor: Cursor) -> Batch:
    """What happened since `cursor`. The job row is read before its epochs, so every epoch written
    before the job ended is seen with its final status, and goes out before it."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None:  # deleted with its dataset
            return Batch([], cursor, more=False, ended=True)
        rows = session.scalars(
            select(EpochMetric)
            .where(EpochMetric.job_id == job_id, EpochMetric.epoch > cursor.epoch)
            .order_by(EpochMetric.epoch)
            .limit(BATCH)
        ).all()
        more = len(rows) == BATCH
        # A job that (re)starts running does so before its new epochs; one that stops running
        # (queued again, or ended) after them, so that status waits until they are all out.
        running = job.status == JobStatus.running
        changed = (job.status, job.attempts) != (cursor.status, cursor.attempts)
        status_event = None
        if changed and (running or not more):
            status_event = jobs.to_read(job).model_dump_json()
        events: list[Event] = []
        if status_event is not None and running:
            cursor = Cursor(cursor.epoch, job.status, job.attempts)
            events.append(Event("status", str(cursor), status_event))
        for row in rows:
            cursor = Cursor(row.epoch, cursor.status, cursor.attempts)
            epoch = EpochRead(epoch=row.epoch, seconds=row.seconds, metrics=row.metrics)
            events.append(Event("epoch", str(cursor), epoch.model_dump_json()))
        if status_event is not None and not running:
            cursor = Cursor(cursor.epoch, job.status, job.attempts)
            events.append(Event("status", str(cursor), status_event))
    return Batch(events, cursor, more, cursor.ended)


async def stream(job_id: str, cursor: Cursor) -> AsyncIterator[Event]:
    """Events from `cursor` on, until the job ends (after its final status event)."""
    while not cursor.ended:
        batch = await anyio.to_thread.run_sync(read, job_id, cursor)
        for event in batch.events:
            yield event
        cursor = batch.cursor
        if batch.ended:
            return
        if not batch.more:
            await anyio.sleep(get_settings().events_poll_interval)
