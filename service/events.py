"""A job's live events (Server-Sent Events): its status as it changes and each epoch's metrics.

The database is the source of truth (workers are other processes), so it is read every
`DENDRITE_EVENTS_POLL_INTERVAL` seconds: one short transaction per read, only rows newer than
what was sent, and neither a connection nor a thread held while it waits. All the streams of one
job in one process share one reader (a `Feed`): 300 streams of a job cost one read per interval,
not 300. A stream whose position differs from its feed's (a new one, or one that resumes) reads
for itself until it catches up. An owner holds at most DENDRITE_MAX_EVENT_STREAMS_PER_OWNER
streams per process (`StreamSlots`).

An event's id is the stream's position after it, `<epoch>:<status>:<attempts>`: the last epoch
sent (its epoch part only grows), and the last status sent with the job's attempt number (empty
before the first one). A client that reconnects with it in `Last-Event-ID` gets exactly what it has
not seen: the status if it changed, then the epochs after that epoch.
"""

import asyncio
import logging
import re
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import jobs, scoring
from service.core.config import get_settings
from service.core.db import session_scope
from service.core.errors import InvalidInput, TooManyRequests
from service.core.orm import FINAL_STATUSES, EpochMetric, Job, JobKind, JobStatus
from service.keys import Principal
from service.schemas.jobs import EpochRead

log = logging.getLogger(__name__)

BATCH = 500  # epoch rows per read; a long job's history comes over several reads
SLOT_RETRY_AFTER = 10  # seconds, in the 429 of an owner who holds all their streams

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


def open_stream(principal: Principal, job_id: str, kind: JobKind = JobKind.training) -> None:
    """404 unless the job exists and is the principal's to see (checked before streaming)."""
    with session_scope() as session:
        jobs.get(session, principal, job_id, kind)


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
        if job.kind == JobKind.batch_prediction:
            return _read_batch(session, job, cursor)
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


def _read_batch(session: Session, job: Job, cursor: Cursor) -> Batch:
    """A batch prediction's events: its status as it changes, and a `progress` event (the batch
    prediction, with rows done) after each chunk; the cursor's epoch counts chunks."""
    state = scoring.state_of(session, job).model_dump_json()
    events: list[Event] = []
    running = job.status == JobStatus.running
    changed = (job.status, job.attempts) != (cursor.status, cursor.attempts)
    if changed and running:
        cursor = Cursor(cursor.epoch, job.status, job.attempts)
        events.append(Event("status", str(cursor), state))
    if job.epoch != cursor.epoch and (running or job.status == JobStatus.succeeded):
        cursor = Cursor(job.epoch, cursor.status, cursor.attempts)
        events.append(Event("progress", str(cursor), state))
    if changed and not running:
        cursor = Cursor(cursor.epoch, job.status, job.attempts)
        events.append(Event("status", str(cursor), state))
    return Batch(events, cursor, more=False, ended=cursor.ended)


class StreamSlots:
    """Open event streams per owner in this process; past the limit, a 429."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, owner: str) -> None:
        limit = get_settings().max_event_streams_per_owner
        with self._lock:
            if self._open.get(owner, 0) >= limit:
                raise TooManyRequests(
                    f"you have {limit} event streams open, as many as one owner may "
                    "(setting DENDRITE_MAX_EVENT_STREAMS_PER_OWNER); close one, or follow "
                    "several jobs with GET /v1/jobs?status=running",
                    retry_after=SLOT_RETRY_AFTER,
                )
            self._open[owner] = self._open.get(owner, 0) + 1

    def give_back(self, owner: str) -> None:
        with self._lock:
            left = self._open.get(owner, 0) - 1
            if left > 0:
                self._open[owner] = left
            else:
                self._open.pop(owner, None)

    def held(self, owner: str) -> int:
        with self._lock:
            return self._open.get(owner, 0)


SLOTS = StreamSlots()


class Feed:
    """One job's shared reader: it reads what happened since its cursor and hands each batch to
    every stream of the job that is at that cursor (they would have read the same)."""

    def __init__(self, job_id: str, cursor: Cursor, registry: dict[str, "Feed"]) -> None:
        self.job_id = job_id
        self.registry = registry  # the feeds of its event loop, which it leaves when done
        self.cursor = cursor  # where the next read starts
        self.last: tuple[Cursor, Batch] | None = None  # the latest batch and where it started
        self.changed = asyncio.Event()  # set (and replaced) when a batch is published
        self.streams = 0
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        interval = get_settings().events_poll_interval
        try:
            while True:
                try:
                    batch = await anyio.to_thread.run_sync(read, self.job_id, self.cursor)
                except Exception:  # the database is away: the streams wait (pinged) for it
                    log.exception("events: could not read job %s", self.job_id)
                    await anyio.sleep(interval)
                    continue
                if batch.events or batch.ended:
                    self.last = (self.cursor, batch)
                    self.cursor = batch.cursor
                    changed, self.changed = self.changed, asyncio.Event()
                    changed.set()
                if batch.ended:
                    return
                if not batch.more:
                    await anyio.sleep(interval)
        finally:
            self.forget()

    def forget(self) -> None:
        """Take no more streams: a stream that comes next starts a new feed."""
        if self.registry.get(self.job_id) is self:
            del self.registry[self.job_id]


# Per event loop: a feed's task and events belong to the loop that made them.
_FEEDS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Feed]]" = (
    weakref.WeakKeyDictionary()
)


def _feeds() -> dict[str, Feed]:
    return _FEEDS.setdefault(asyncio.get_running_loop(), {})


def _join(job_id: str, cursor: Cursor) -> Feed:
    feeds = _feeds()
    feed = feeds.get(job_id)
    if feed is None:
        feed = feeds[job_id] = Feed(job_id, cursor, feeds)
        feed.task = asyncio.get_running_loop().create_task(feed.run())
    feed.streams += 1
    return feed


def _leave(feed: Feed) -> None:
    feed.streams -= 1
    if feed.streams == 0:
        feed.forget()
        if feed.task is not None:
            feed.task.cancel()


def feeds_running() -> int:
    """Shared readers running in this event loop (one per job being streamed)."""
    return len(_feeds())


async def stream(
    job_id: str, cursor: Cursor, still_allowed: Callable[[], Awaitable[bool]] | None = None
) -> AsyncIterator[Event]:
    """Events from `cursor` on, until the job ends (after its final status event), or until
    `still_allowed`, asked every DENDRITE_EVENTS_KEY_CHECK_INTERVAL seconds, says no."""
    check_interval = get_settings().events_key_check_interval
    next_check = anyio.current_time() + check_interval
    feed = _join(job_id, cursor)
    try:
        while not cursor.ended:
            if cursor != feed.cursor:  # behind or ahead of the shared reader: read for itself
                batch = await anyio.to_thread.run_sync(read, job_id, cursor)
                for event in batch.events:
                    yield event
                cursor = batch.cursor
                if batch.ended:
                    return
                if batch.more or cursor == feed.cursor:
                    continue
            changed = feed.changed
            with anyio.move_on_after(max(next_check - anyio.current_time(), 0)):
                await changed.wait()
            if anyio.current_time() >= next_check:
                if still_allowed is not None and not await still_allowed():
                    return
                next_check = anyio.current_time() + check_interval
            if changed.is_set() and feed.last is not None and feed.last[0] == cursor:
                batch = feed.last[1]
                for event in batch.events:
                    yield event
                cursor = batch.cursor
    finally:
        _leave(feed)
