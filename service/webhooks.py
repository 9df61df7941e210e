"""Webhooks: when a job with a `callback_url` ends, its final state is POSTed there, signed with
HMAC-SHA256 under its owner's secret, and retried with exponential backoff.

The outbox is the `webhook_delivery` row that `jobs.submit` writes with the job. It waits until
the job row says the job ended, however it ended (a worker, the sweep, a cancel), then becomes
due. Every API process runs `deliver_due` in a loop; each POST is claimed first with one
conditional UPDATE (the attempt number moves on only for the process that matched it), so
replicas never send the same attempt twice. A process that dies mid-POST leaves its claim to
expire (`_lease`), after which the attempt is sent again: delivery is at least once, and
receivers dedupe by `X-Dendrite-Delivery`.
"""

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
import httpx2
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service import jobs
from service.config import get_settings
from service.db import session_scope
from service.keys import Principal
from service.orm import (
    FINAL_STATUSES,
    Job,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSecret,
    utcnow,
)
from service.schemas import WebhookAttemptRead, WebhookDeliveryRead

log = logging.getLogger(__name__)

WAITING, PENDING, DELIVERED, FAILED = "waiting", "pending", "delivered", "failed"
SIGNATURE_HEADER = "X-Dendrite-Signature"
TIMESTAMP_HEADER = "X-Dendrite-Timestamp"
BATCH = 16  # deliveries claimed per round; the rest wait for the next one


# --- secrets --------------------------------------------------------------------------------


def secret(session: Session, owner: str) -> WebhookSecret:
    """The owner's signing secret, made on first use.

    Two first uses at once (two submits, say) both find no row; the second insert does nothing,
    and both sign with the secret that was stored (a plain insert was a 500 for the second).
    """
    row = session.get(WebhookSecret, owner)
    if row is None:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        values = {"owner": owner, "secret": _new_secret(), "created_at": utcnow()}
        session.execute(
            dialect.insert(WebhookSecret)
            .values(values)
            .on_conflict_do_nothing(index_elements=["owner"])
        )
        row = session.get_one(WebhookSecret, owner)
    return row


def rotate(session: Session, owner: str) -> WebhookSecret:
    """A new secret for the owner; the old one signs nothing from now on."""
    row = secret(session, owner)
    row.secret = _new_secret()
    row.created_at = utcnow()
    session.flush()
    return row


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(key: str, timestamp: int, body: bytes) -> str:
    """The X-Dendrite-Signature value: HMAC-SHA256 of '<timestamp>.<body>'."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


# --- reading --------------------------------------------------------------------------------


def deliveries(session: Session, principal: Principal, job_id: str) -> list[WebhookDeliveryRead]:
    """A job's webhook delivery with its attempts (an empty list: the job has no callback_url)."""
    jobs.get(session, principal, job_id)
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
    """One attempt this process holds: what to send, where, and under which key."""

    delivery_id: str
    url: str
    number: int
    body: bytes
    key: str


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
        .limit(4 * BATCH)
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


def claim_due(session: Session, now: datetime, limit: int = BATCH) -> list[Claimed]:
    """Claim the due deliveries' next attempts, with the bodies to send."""
    rows = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.attempts)
        .where(WebhookDelivery.state == PENDING, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
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
        delivery = session.get_one(WebhookDelivery, row.id)
        job = session.get_one(Job, delivery.job_id)
        body = jobs.to_read(job).model_dump_json().encode()
        key = secret(session, delivery.owner).secret
        claimed.append(Claimed(delivery.id, delivery.url, row.attempts + 1, body, key))
    return claimed


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
    """How long a claimed attempt is this process's alone: well past the POST's timeout."""
    return timedelta(seconds=2 * get_settings().webhook_timeout + 30)


async def send(client: httpx2.AsyncClient, claimed: Claimed) -> Outcome:
    """POST one attempt; any answer but a 2xx (redirects included) is a failure."""
    started_at, start = utcnow(), time.monotonic()
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
        response = await client.post(claimed.url, content=claimed.body, headers=headers)
        status_code = response.status_code
        if not response.is_success:
            error = f"the receiver answered HTTP {status_code}"
    except httpx2.HTTPError as failure:
        error = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
    return Outcome(started_at, time.monotonic() - start, status_code, error)


def _claim_round() -> list[Claimed]:
    with session_scope() as session:
        now = utcnow()
        activate(session, now)
        return claim_due(session, now)


def _record_round(results: list[tuple[Claimed, Outcome]]) -> None:
    with session_scope() as session:
        now = utcnow()
        for claimed, outcome in results:
            record(session, claimed, outcome, now)


async def deliver_due(client: httpx2.AsyncClient) -> int:
    """One round: claim what is due (a short transaction), POST it concurrently holding no
    database connection, record the outcomes (another short one). Returns the attempts made."""
    claimed = await anyio.to_thread.run_sync(_claim_round)
    if not claimed:
        return 0
    outcomes = await asyncio.gather(*(send(client, c) for c in claimed))
    await anyio.to_thread.run_sync(_record_round, list(zip(claimed, outcomes, strict=True)))
    return len(claimed)


async def deliver_forever() -> None:
    """The loop each API process runs beside the sweep."""
    timeout = get_settings().webhook_timeout
    async with httpx2.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        while True:
            try:
                await deliver_due(client)
            except Exception:
                log.exception("webhook delivery round failed")
            await anyio.sleep(get_settings().webhook_poll_interval)
