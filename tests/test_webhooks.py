"""The webhook outbox against the real database: when a delivery becomes due, claims that several
API processes cannot both win, backoff, and giving up."""

import asyncio
import copy
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx2
import pytest
from sqlalchemy.orm import Session

from service import attempts, datasets, examples, jobs, keys, queue, webhooks
from service.config import Settings, get_settings
from service.db import get_sessionmaker
from service.orm import Job, JobStatus, WebhookDelivery, utcnow
from service.schemas import JobCreate
from tests.conftest import DATA
from tests.webhook_receiver import Receiver, closed_port, verify

OWNER = keys.Principal(owner="alice")


@pytest.fixture(autouse=True)
def broker(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DENDRITE_WEBHOOK_RETRY_DELAY", "10")
    monkeypatch.setenv("DENDRITE_WEBHOOK_MAX_ATTEMPTS", "3")
    get_settings.cache_clear()
    queue.celery.cache_clear()
    yield
    queue.celery.cache_clear()


def _submit(session: Session, callback_url: str = "http://127.0.0.1:9/hook") -> Job:
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, OWNER, handle, "concrete_data.csv", "text/csv", None)
    body = copy.deepcopy(examples.CONCRETE_REGRESSION)
    body.update(dataset_id=dataset.id, callback_url=callback_url)
    job = jobs.submit(session, OWNER, JobCreate.model_validate(body))
    session.commit()
    return job


def _cancel(session: Session, job: Job) -> None:
    jobs.cancel(session, OWNER, job.id)
    session.commit()


def _delivery(session: Session, job: Job) -> WebhookDelivery:
    session.expire_all()
    return session.query(WebhookDelivery).filter_by(job_id=job.id).one()


def test_a_delivery_waits_until_its_job_ends(session: Session) -> None:
    job = _submit(session)
    attempt = attempts.claim(session, job.id, "w1@host")
    assert attempt is not None
    assert webhooks.activate(session, utcnow()) == 0  # running
    assert webhooks.claim_due(session, utcnow()) == []
    assert attempts.end(session, attempt, JobStatus.succeeded)
    assert webhooks.activate(session, utcnow()) == 1
    assert webhooks.activate(session, utcnow()) == 0  # another process finds nothing left
    [claimed] = webhooks.claim_due(session, utcnow())
    assert claimed.number == 1 and claimed.url == "http://127.0.0.1:9/hook"


def test_an_attempt_is_claimed_once_until_its_lease_runs_out(session: Session) -> None:
    job = _submit(session)
    _cancel(session, job)
    now = utcnow()
    webhooks.activate(session, now)
    [first] = webhooks.claim_due(session, now)
    session.commit()
    assert webhooks.claim_due(session, now) == []  # a second API process, same moment
    # The first process died mid-POST: once its lease ends, the attempt goes out again.
    later = now + timedelta(minutes=5)
    [again] = webhooks.claim_due(session, later)
    assert (again.delivery_id, again.number) == (first.delivery_id, 2)
    # The late process's outcome no longer counts.
    ok = webhooks.Outcome(now, 0.1, 200, None)
    webhooks.record(session, first, ok, now)
    assert _delivery(session, job).state == webhooks.PENDING


def test_failures_back_off_exponentially_then_give_up(session: Session) -> None:
    job = _submit(session)
    _cancel(session, job)
    now = utcnow()
    webhooks.activate(session, now)
    refused = webhooks.Outcome(now, 0.1, 503, "the receiver answered HTTP 503")
    for number, delay in ((1, 10), (2, 20)):
        [claimed] = webhooks.claim_due(session, now)
        assert claimed.number == number
        webhooks.record(session, claimed, refused, now)
        assert _delivery(session, job).next_attempt_at == now + timedelta(seconds=delay)
        assert webhooks.claim_due(session, now + timedelta(seconds=delay - 1)) == []
        now += timedelta(seconds=delay)
    [last] = webhooks.claim_due(session, now)
    webhooks.record(session, last, refused, now)
    delivery = _delivery(session, job)
    assert (delivery.state, delivery.attempts) == (webhooks.FAILED, 3)
    assert [a.status_code for a in delivery.history] == [503, 503, 503]
    assert webhooks.claim_due(session, now + timedelta(days=1)) == []


def test_deliver_due_posts_a_signed_body_to_a_real_receiver(session: Session) -> None:
    with Receiver() as receiver:
        job = _submit(session, receiver.url)
        _cancel(session, job)
        session.close()
        assert asyncio.run(_deliver_once()) == 1
        [received] = receiver.wait_for(1)
    key = webhooks.secret(session, OWNER.owner).secret
    assert verify(key, received)
    assert not verify(key + "x", received)
    delivery = _delivery(session, job)
    assert delivery.state == webhooks.DELIVERED and delivery.delivered_at is not None


def test_an_unreachable_receiver_is_a_recorded_error(session: Session) -> None:
    job = _submit(session, f"http://127.0.0.1:{closed_port()}/hook")
    _cancel(session, job)
    session.close()
    assert asyncio.run(_deliver_once()) == 1
    [attempt] = _delivery(session, job).history
    assert attempt.status_code is None and attempt.error and "Connect" in attempt.error


async def _deliver_once() -> int:
    async with httpx2.AsyncClient(timeout=10) as client:
        return await webhooks.deliver_due(client)


def test_two_first_uses_of_a_secret_at_once_share_the_stored_one() -> None:
    """The second first use finds no row (the first is not committed yet), inserts, and waits
    for the first: it then signs with the first one's secret instead of failing."""
    first, second = get_sessionmaker()(), get_sessionmaker()()
    made = webhooks.secret(first, "carol").secret  # uncommitted: a row lock / the write turn

    def second_use() -> str:
        found = webhooks.secret(second, "carol").secret
        second.commit()
        return found

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(second_use)
        time.sleep(0.3)  # the second is waiting on the first's insert
        first.commit()
        found = future.result(timeout=30)
    first.close()
    second.close()
    assert found == made
