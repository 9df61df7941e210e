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

from service import datasets, jobs, keys, leases, webhooks
from service.core import queue
from service.core.config import Settings, get_settings
from service.core.db import get_sessionmaker
from service.core.orm import Job, JobStatus, WebhookDelivery, utcnow
from service.schemas import examples
from service.schemas.jobs import JobCreate
from tests.conftest import DATA
from tests.webhooks.receiver import Receiver, closed_port, verify

OWNER = keys.Principal(owner="alice")


@pytest.fixture(autouse=True)
def broker(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DENDRITE_WEBHOOK_RETRY_DELAY", "10")
    monkeypatch.setenv("DENDRITE_WEBHOOK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("DENDRITE_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")  # the loopback receivers
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
    attempt = leases.claim(session, job.id, "w1@host")
    assert attempt is not None
    assert webhooks.activate(session, utcnow()) == 0  # running
    assert webhooks.claim_due(session, utcnow()) == []
    assert leases.end(session, attempt, JobStatus.succeeded)
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
    refused = webhooks.Outcome(now, 0.1, 503, "HTTP 503")
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
    assert (attempt.status_code, attempt.error) == (None, webhooks.CONNECTION_FAILED)


async def _deliver_once() -> int:
    async with webhooks.new_client() as client:
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


def _due(session: Session, owner: str, count: int) -> list[Job]:
    """`count` cancelled jobs of `owner`, their deliveries due."""
    principal = keys.Principal(owner=owner)
    with open(DATA / "concrete_data.csv", "rb") as handle:
        dataset = datasets.create(session, principal, handle, "c.csv", "text/csv", None)
    made = []
    for _ in range(count):
        body = copy.deepcopy(examples.CONCRETE_REGRESSION)
        body.update(dataset_id=dataset.id, callback_url="http://127.0.0.1:9/hook")
        job = jobs.submit(session, principal, JobCreate.model_validate(body))
        jobs.cancel(session, principal, job.id)
        made.append(job)
    session.commit()
    webhooks.activate(session, utcnow())
    return made


def test_one_owners_backlog_leaves_slots_for_other_owners(session: Session) -> None:
    _due(session, "alice", 6)
    time.sleep(0.01)  # bob's are due later than all of alice's
    _due(session, "bob", 2)
    # alice has 1 send in flight already; each owner may hold 2 of the 8 slots.
    claimed = webhooks.claim_due(session, utcnow(), limit=8, in_flight={"alice": 1}, per_owner=2)
    assert sorted(c.owner for c in claimed) == ["alice", "bob", "bob"]
    # The next round, with those in flight, claims none of alice's or bob's.
    assert webhooks.claim_due(session, utcnow(), 8, {"alice": 2, "bob": 2}, 2) == []


def test_an_exception_in_one_send_is_recorded_and_the_others_still_go(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver() as receiver:
        broken, fine = _submit(session, receiver.url), _submit(session, receiver.url)
        _cancel(session, broken)
        _cancel(session, fine)
        session.close()
        real_send = webhooks.send

        async def send(client: httpx2.AsyncClient, claimed: webhooks.Claimed) -> webhooks.Outcome:
            if claimed.delivery_id == _delivery(session, broken).id:
                raise RuntimeError("a bug in sending, with a secret text")
            return await real_send(client, claimed)

        monkeypatch.setattr(webhooks, "send", send)
        assert asyncio.run(_deliver_once()) == 2
        receiver.wait_for(1)
    [failed] = _delivery(session, broken).history
    assert failed.error == webhooks.INTERNAL_ERROR and "secret" not in failed.error
    assert _delivery(session, broken).state == webhooks.PENDING  # retried later
    assert _delivery(session, fine).state == webhooks.DELIVERED


def test_a_redirect_is_not_followed(session: Session) -> None:
    with Receiver() as target, Receiver(status=307, location=target.url) as redirecting:
        job = _submit(session, redirecting.url)
        _cancel(session, job)
        session.close()
        asyncio.run(_deliver_once())
        redirecting.wait_for(1)
        assert target.received == []
    [attempt] = _delivery(session, job).history
    assert (attempt.status_code, attempt.error) == (307, "HTTP 307")
