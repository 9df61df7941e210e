"""Webhooks: when a job with a `callback_url` ends, its final state is POSTed there, signed with
HMAC-SHA256 under its owner's secret, and retried with exponential backoff.

The outbox is the `webhook_delivery` row that `jobs.submit` writes with the job. It waits until
the job row says the job ended, however it ended (a worker, recovery, a cancel), then becomes
due. Every API process runs `deliver_due` in a loop; each POST is claimed first with one
conditional UPDATE (the attempt number moves on only for the process that matched it), so
replicas never send the same attempt twice. A process that dies mid-POST leaves its claim to
expire (`_lease`), after which the attempt is sent again: delivery is at least once, and
receivers dedupe by `X-Dendrite-Delivery`.

Sends run independently, at most DENDRITE_WEBHOOK_CONCURRENCY at once and
DENDRITE_WEBHOOK_OWNER_CONCURRENCY of one owner's: the loop keeps claiming due deliveries while
slow ones are in flight. Each send has one deadline for the whole exchange and reads a bounded
answer; where it may connect is `network`'s business, how secrets are kept `keyring`'s.
"""

import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
import httpx2
from anyio.abc import TaskGroup
from sqlalchemy import case, func, literal, select, update
from sqlalchemy.orm import Session

from service import jobs, scoring
from service.core.config import get_settings
from service.core.db import session_scope
from service.core.orm import (
    FINAL_STATUSES,
    Job,
    JobKind,
    WebhookAttempt,
    WebhookDelivery,
    utcnow,
)
from service.keys import Principal
from service.schemas.webhooks import WebhookAttemptRead, WebhookDeliveryRead
from service.webhooks import keyring, network
from service.webhooks.signing import OwnerSecret as OwnerSecret
from service.webhooks.signing import encrypt_stored as encrypt_stored
from service.webhooks.signing import rotate as rotate
from service.webhooks.signing import secret as secret
from service.webhooks.signing import sign as sign

log = logging.getLogger(__name__)

WAITING, PENDING, DELIVERED, FAILED = "waiting", "pending", "delivered", "failed"
SIGNATURE_HEADER = "X-Dendrite-Signature"
TIMESTAMP_HEADER = "X-Dendrite-Timestamp"
# The reasons an attempt failed, as its owner sees them: never the exception's text, which told
# a closed port from an open one.
TIMED_OUT = "timed out"
CONNECTION_FAILED = "connection failed"
NOT_ALLOWED = "refused: address not allowed"
INVALID_ANSWER = "invalid HTTP answer"
UNSIGNABLE = "not sent: the webhook secret is unreadable (see GET /v1/webhooks/secret)"
INTERNAL_ERROR = "not sent: internal error"


# --- reading --------------------------------------------------------------------------------


def deliveries(session: Session, principal: Principal, job_id: str) -> list[WebhookDeliveryRead]:
    """A job's (or a batch prediction's) webhook delivery with its attempts (an empty list: it
    has no callback_url)."""
    found = session.get(Job, job_id)
    jobs.get(session, principal, job_id, JobKind(found.kind) if found else JobKind.training)
    rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)).all()
    return [
        WebhookDeliveryRead(
            id=row.id,
            job_id=row.job_id,
            url=row.url,
            state=row.state,
            next_attempt_at=row.next_attempt_at if row.state == PENDING else None,
            delivered_at=row.delivered_at,
            attempts=[
                WebhookAttemptRead(
                    number=a.number,
                    started_at=a.started_at,
                    seconds=a.seconds,
                    status_code=a.status_code,
                    error=a.error,
                )
                for a in row.history
            ],
        )
        for row in rows
    ]


# --- delivering -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """One attempt this process holds: what to send, where, and under which key (no key: the
    attempt cannot be sent, and `problem` says why)."""

    delivery_id: str
    owner: str
    url: str
    number: int
    body: bytes
    key: str | None
    problem: str | None = None


@dataclass(frozen=True)
class Outcome:
    started_at: datetime
    seconds: float
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def activate(session: Session, now: datetime) -> int:
    """Deliveries whose job has ended become due now. (Read first: an idle round writes nothing,
    so it never takes SQLite's write lock.)"""
    ended = session.scalars(
        select(WebhookDelivery.id)
        .join(Job, Job.id == WebhookDelivery.job_id)
        .where(WebhookDelivery.state == WAITING, Job.status.in_(FINAL_STATUSES))
        .limit(64)
    ).all()
    if not ended:
        return 0
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ended), WebhookDelivery.state == WAITING)
        .values(state=PENDING, next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def claim_due(
    session: Session,
    now: datetime,
    limit: int = 16,
    in_flight: Mapping[str, int] | None = None,
    per_owner: int | None = None,
) -> list[Claimed]:
    """Claim up to `limit` due deliveries' next attempts, oldest first, with the bodies to send;
    an owner with `in_flight` sends already gets at most `per_owner` in all."""
    per_owner = per_owner or limit
    busy = {owner: count for owner, count in (in_flight or {}).items() if count > 0}
    ranked = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.attempts,
            WebhookDelivery.next_attempt_at,
            func.row_number()
            .over(partition_by=WebhookDelivery.owner, order_by=WebhookDelivery.next_attempt_at)
            .label("rank"),
            (case(busy, value=WebhookDelivery.owner, else_=0) if busy else literal(0)).label(
                "busy"
            ),
        )
        .where(WebhookDelivery.state == PENDING, WebhookDelivery.next_attempt_at <= now)
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.id, ranked.c.attempts)
        .where(ranked.c.rank + ranked.c.busy <= per_owner)
        .order_by(ranked.c.next_attempt_at)
        .limit(limit)
    ).all()
    claimed = []
    for row in rows:
        taken = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == row.id,
                WebhookDelivery.state == PENDING,
                WebhookDelivery.attempts == row.attempts,
            )
            .values(attempts=row.attempts + 1, next_attempt_at=now + _lease())
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) != 1:
            continue  # another process took it
        claimed.append(_prepare(session, row.id, row.attempts + 1))
    return claimed


def _prepare(session: Session, delivery_id: str, number: int) -> Claimed:
    delivery = session.get_one(WebhookDelivery, delivery_id)
    key: str | None = None
    body, problem = b"", None
    try:  # a failure here is this delivery's alone
        job = session.get_one(Job, delivery.job_id)
        state = (
            scoring.state_of(session, job)
            if job.kind == JobKind.batch_prediction
            else jobs.to_read(job)
        )
        body = state.model_dump_json().encode()
        key = secret(session, delivery.owner).secret
    except keyring.SecretUnreadable:
        problem = UNSIGNABLE
    except Exception:
        log.exception("webhook %s: could not prepare attempt %d", delivery_id, number)
        problem = INTERNAL_ERROR
    return Claimed(delivery_id, delivery.owner, delivery.url, number, body, key, problem)


def record(session: Session, claimed: Claimed, outcome: Outcome, now: datetime) -> None:
    """Keep the attempt; the delivery is done, failed for good, or due again after a backoff."""
    settings = get_settings()
    session.add(
        WebhookAttempt(
            delivery_id=claimed.delivery_id,
            number=claimed.number,
            started_at=outcome.started_at,
            seconds=outcome.seconds,
            status_code=outcome.status_code,
            error=outcome.error,
        )
    )
    if outcome.ok:
        values: dict[str, object] = {"state": DELIVERED, "delivered_at": now}
    elif claimed.number >= settings.webhook_max_attempts:
        values = {"state": FAILED, "next_attempt_at": None}
        log.warning(
            "webhook %s: gave up after %d attempts (%s)",
            claimed.delivery_id,
            claimed.number,
            outcome.error,
        )
    else:
        delay = settings.webhook_retry_delay * 2 ** (claimed.number - 1)
        values = {"next_attempt_at": now + timedelta(seconds=delay)}
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == claimed.delivery_id,
            WebhookDelivery.state == PENDING,
            WebhookDelivery.attempts == claimed.number,  # still this process's attempt
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def _lease() -> timedelta:
    """How long a claimed attempt is this process's alone: well past the POST's deadline."""
    return timedelta(seconds=2 * get_settings().webhook_timeout + 30)


async def send(client: httpx2.AsyncClient, claimed: Claimed) -> Outcome:
    """POST one attempt within one deadline for all of it (a receiver that drips its answer
    a byte at a time gets no longer), reading at most DENDRITE_WEBHOOK_MAX_RESPONSE_BYTES of the
    answer's body. Any answer but a 2xx (redirects included) is a failure."""
    settings = get_settings()
    started_at, start = utcnow(), time.monotonic()
    if claimed.key is None:
        return Outcome(started_at, 0.0, None, claimed.problem or INTERNAL_ERROR)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "dendrite-webhooks",
        "X-Dendrite-Event": "job.ended",
        "X-Dendrite-Delivery": claimed.delivery_id,
        "X-Dendrite-Attempt": str(claimed.number),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(claimed.key, timestamp, claimed.body),
    }
    status_code, error = None, None
    try:
        with anyio.move_on_after(settings.webhook_timeout) as deadline:
            request = client.stream("POST", claimed.url, content=claimed.body, headers=headers)
            async with request as response:
                status_code = response.status_code
                await _read_at_most(response, settings.webhook_max_response_bytes)
        if deadline.cancelled_caught and status_code is None:
            error = TIMED_OUT  # (once the status came, the body is only read to reuse the line)
    except network.AddressNotAllowed:
        error = NOT_ALLOWED
    except httpx2.TimeoutException:
        error = TIMED_OUT
    except (httpx2.ProtocolError, httpx2.DecodingError):
        error = INVALID_ANSWER
    except httpx2.TransportError:
        error = CONNECTION_FAILED
    except (httpx2.HTTPError, httpx2.InvalidURL):
        error = INVALID_ANSWER if status_code else CONNECTION_FAILED
    if error is None and status_code is not None and not 200 <= status_code < 300:
        error = f"HTTP {status_code}"
    return Outcome(started_at, time.monotonic() - start, status_code, error)


async def _read_at_most(response: httpx2.Response, limit: int) -> None:
    """Read (and drop) up to `limit` bytes of the body, undecoded; leaving the rest unread closes
    the connection instead of returning it to the pool."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= limit:
            return


async def deliver(client: httpx2.AsyncClient, claimed: Claimed) -> Outcome:
    """Send one claimed attempt and record it. Whatever goes wrong is this attempt's outcome:
    nothing here ends the loop or touches another delivery."""
    started_at, start = utcnow(), time.monotonic()
    try:
        outcome = await send(client, claimed)
    except Exception:
        log.exception("webhook %s: attempt %d failed", claimed.delivery_id, claimed.number)
        outcome = Outcome(started_at, time.monotonic() - start, None, INTERNAL_ERROR)
    try:
        await anyio.to_thread.run_sync(_record, claimed, outcome)
    except Exception:  # the claim expires and the attempt goes out again
        log.exception(
            "webhook %s: could not record attempt %d", claimed.delivery_id, claimed.number
        )
    return outcome


def _encrypt_stored() -> int:
    with session_scope() as session:
        return encrypt_stored(session)


def _record(claimed: Claimed, outcome: Outcome) -> None:
    with session_scope() as session:
        record(session, claimed, outcome, utcnow())


def _claim(limit: int, in_flight: Mapping[str, int], per_owner: int) -> list[Claimed]:
    with session_scope() as session:
        now = utcnow()
        activate(session, now)
        return claim_due(session, now, limit, in_flight, per_owner)


class Outbox:
    """This process's sends in flight, per owner, and the claiming of more while they run."""

    def __init__(self, client: httpx2.AsyncClient, concurrency: int, per_owner: int) -> None:
        self.client = client
        self.concurrency = concurrency
        self.per_owner = per_owner
        self.in_flight: Counter[str] = Counter()

    async def claim(self, group: TaskGroup) -> int:
        """Claim what is due, as far as there are free slots (a short transaction), and start a
        send for each in `group`, holding no database connection; the count started."""
        free = self.concurrency - self.in_flight.total()
        if free <= 0:
            return 0
        claimed = await anyio.to_thread.run_sync(_claim, free, dict(self.in_flight), self.per_owner)
        for attempt in claimed:
            self.in_flight[attempt.owner] += 1
            group.start_soon(self._deliver, attempt)
        return len(claimed)

    async def _deliver(self, claimed: Claimed) -> None:
        try:
            await deliver(self.client, claimed)
        finally:
            self.in_flight[claimed.owner] -= 1
            if self.in_flight[claimed.owner] <= 0:
                del self.in_flight[claimed.owner]


def new_client() -> httpx2.AsyncClient:
    settings = get_settings()
    return network.client(
        settings.webhook_allowed_hosts, settings.webhook_concurrency, settings.webhook_timeout
    )


async def deliver_due(client: httpx2.AsyncClient) -> int:
    """One round that waits for its sends to end; the attempts made."""
    settings = get_settings()
    outbox = Outbox(client, settings.webhook_concurrency, settings.webhook_owner_concurrency)
    async with anyio.create_task_group() as group:
        started = await outbox.claim(group)
    return started


async def deliver_forever() -> None:
    """The loop each API process runs beside recovery (`service.recovery`): it claims due
    deliveries every DENDRITE_WEBHOOK_POLL_INTERVAL while earlier ones are still being sent."""
    try:
        if moved := await anyio.to_thread.run_sync(_encrypt_stored):
            log.info("encrypted %d stored webhook secrets", moved)
    except Exception:
        log.exception("could not encrypt the stored webhook secrets")
    settings = get_settings()
    async with new_client() as client, anyio.create_task_group() as group:
        outbox = Outbox(client, settings.webhook_concurrency, settings.webhook_owner_concurrency)
        while True:
            try:
                await outbox.claim(group)
            except Exception:
                log.exception("webhook delivery round failed")
            await anyio.sleep(settings.webhook_poll_interval)
